//! A device job: one device, its values, and the profile it runs, loaded
//! and hashed once however many devices run it (a station's units, a
//! batch's rows), so what runs is what is recorded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::outcome::Failure;
use super::report::{DeviceOutcome, DeviceReport};
use crate::profile::{self, CheckOptions, Device, DeviceValues, Inventory, LoadedProfile};

/// A profile loaded and checked once for every device that runs it, with
/// the SHA-256 of the bytes that were parsed: a station or a batch records
/// the hash of what its units really ran, even if the file is edited
/// meanwhile.
#[derive(Debug)]
pub struct JobProfile {
    /// The file, as the user named it.
    pub path: PathBuf,
    /// The profile, or why no device can run it (its problems placed in
    /// the file).
    pub loaded: Result<LoadedProfile, Failure>,
}

impl JobProfile {
    /// Loads and checks the profile at `path` (all four passes).
    pub fn load(path: &Path, options: CheckOptions) -> JobProfile {
        let loaded = profile::load(path, options).map_err(|error| {
            let problems = match &error {
                profile::ProfileError::Invalid { problems, .. } => {
                    problems.iter().filter(|p| p.is_error()).cloned().collect()
                }
                profile::ProfileError::Read(_) => Vec::new(),
            };
            Failure { problems, ..Failure::of(error) }
        });
        JobProfile { path: path.to_path_buf(), loaded }
    }

    /// A profile a caller already loaded and checked (a station checks it
    /// at start, with its own messages).
    pub fn loaded(loaded: LoadedProfile) -> JobProfile {
        JobProfile { path: loaded.path.clone(), loaded: Ok(loaded) }
    }

    /// SHA-256 of the profile's bytes as parsed; `None` when it could not
    /// be read or did not parse.
    pub fn sha256(&self) -> Option<&str> {
        self.loaded.as_ref().ok().map(|l| l.sha256.as_str())
    }

    /// The name records give the profile: its own `name:`, else (a profile
    /// that did not load) the file's stem.
    pub fn name(&self) -> String {
        match &self.loaded {
            Ok(loaded) => loaded.profile.name.clone(),
            Err(_) => self.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
        }
    }
}

/// The profiles of a batch, each loaded once however many devices name it.
#[derive(Debug)]
pub struct ProfileCache {
    options: CheckOptions,
    loaded: BTreeMap<PathBuf, Arc<JobProfile>>,
}

impl ProfileCache {
    pub fn new(options: CheckOptions) -> ProfileCache {
        ProfileCache { options, loaded: BTreeMap::new() }
    }

    /// The profile at `path`, loaded on first use.
    pub fn get(&mut self, path: &Path) -> Arc<JobProfile> {
        let options = self.options;
        self.loaded.entry(path.to_path_buf()).or_insert_with(|| Arc::new(JobProfile::load(path, options))).clone()
    }
}

/// One device of a run or a batch.
#[derive(Debug, Clone)]
pub struct DeviceJob {
    pub name: String,
    pub profile: Arc<JobProfile>,
    /// Its variables: `name`, `port`, `ip`, `mask`, `gateway` and the rest,
    /// each with where it came from.
    pub values: DeviceValues,
    /// The serial port, for profiles with serial steps.
    pub port: Option<PathBuf>,
}

impl DeviceJob {
    /// A device of an inventory, run with `profile` (the row's own, or the
    /// caller's default).
    pub fn from_inventory(inventory: &Inventory, device: &Device, profile: Arc<JobProfile>) -> DeviceJob {
        DeviceJob {
            name: device.name.clone(),
            profile,
            values: DeviceValues::from_inventory(inventory, device),
            port: device.port.as_ref().map(PathBuf::from),
        }
    }

    /// A report of this device with nothing run yet.
    pub fn report(&self, outcome: DeviceOutcome) -> DeviceReport {
        DeviceReport {
            name: self.name.clone(),
            profile: self.profile.path.display().to_string(),
            profile_sha256: None,
            port: self.port.as_ref().map(|p| p.display().to_string()),
            ip: self.values.get("ip").map(str::to_string),
            mac: None,
            serial_number: None,
            images: Vec::new(),
            outcome,
            failure_class: None,
            error: None,
            problems: Vec::new(),
            finding: None,
            steps: Vec::new(),
        }
    }
}
