//! The station file: which profile a station runs, its fixtures (a serial
//! port each, with per-fixture values), the address pool, the operator, the
//! database, and how units are recognised. Read with the same passes as a
//! profile (syntax, keys against the JSON Schema, types, then the checks
//! below), so every problem comes with its file, line and column and nothing
//! runs on an invalid file.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::pool::AddressPool;
use crate::family::Family;
use crate::profile::{HumanDuration, Problems, ProfileError};

/// A station file (format 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StationFile {
    /// Station file format version; must be 1.
    pub format: u32,
    /// The station's name, unique on the line (reports, the database, other stations).
    pub station: String,
    /// The profile every unit goes through, relative to this file's folder or absolute.
    pub profile: PathBuf,
    /// Who runs the station (recorded with every run); `--operator` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// The unit database: `sqlite:PATH` (relative to this file's folder) or
    /// `postgres://USER@HOST/DB` (a password in the URL is never printed; or
    /// give it in PGPASSWORD). Default: `sqlite:flashline.db` beside this file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// Addresses for units whose fixture gives none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_pool: Option<IpPool>,
    /// How a unit is recognised on its fixture's console.
    #[serde(default)]
    pub arrival: Arrival,
    /// The station's heartbeat in the database.
    #[serde(default)]
    pub heartbeat: Heartbeat,
    /// The fixtures: a serial port each.
    pub fixtures: Vec<Fixture>,
}

/// An address range leased to units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IpPool {
    /// `FIRST-LAST` (e.g. `192.168.1.100-192.168.1.149`) or a CIDR block
    /// (`192.168.1.96/27`: its network and broadcast addresses are left out).
    pub addresses: String,
    /// `mask` and `gateway` values given with a leased address.
    pub mask: Ipv4Addr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Ipv4Addr>,
    /// `run`: the address goes back to the pool when the unit leaves its
    /// fixture (it holds the address in NV memory until then), not when the
    /// run ends; `unit`: the unit keeps it (a re-run gets the same one).
    #[serde(default)]
    pub lease: LeaseKind,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LeaseKind {
    #[default]
    Run,
    Unit,
}

/// How units are recognised: the text that says one arrived, where its
/// identity is, and when it is gone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Arrival {
    /// The console text that starts a unit's boot (a regex). Default: the
    /// NET+OS banner's first line.
    #[serde(default = "default_banner")]
    pub expect: String,
    /// The banner line with the unit's Ethernet MAC (a regex whose first
    /// group is the MAC).
    #[serde(default = "default_mac")]
    pub mac: String,
    /// The banner line with its serial number (first group), if it prints one.
    #[serde(default = "default_serial")]
    pub serial_number: String,
    /// How long after the banner's start the MAC may take.
    #[serde(default = "default_identity_timeout")]
    pub identity_timeout: HumanDuration,
    /// After a run, the unit counts as removed once its console is silent
    /// this long (or a banner shows another MAC). Make it longer than the
    /// unit's start-up delay (NET+OS: the `Press any key in N seconds`
    /// window), or a unit restarting after its upload looks gone.
    #[serde(default = "default_gone_after")]
    pub gone_after: HumanDuration,
}

fn default_banner() -> String {
    Family::default().identity_patterns().banner.into()
}
fn default_mac() -> String {
    Family::default().identity_patterns().mac.into()
}
fn default_serial() -> String {
    Family::default().identity_patterns().serial_number.into()
}
fn default_identity_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}
fn default_gone_after() -> HumanDuration {
    HumanDuration::from_secs(8)
}

impl Default for Arrival {
    fn default() -> Self {
        Arrival {
            expect: default_banner(),
            mac: default_mac(),
            serial_number: default_serial(),
            identity_timeout: default_identity_timeout(),
            gone_after: default_gone_after(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// How often the station writes its heartbeat.
    #[serde(default = "default_interval")]
    pub interval: HumanDuration,
    /// A station silent this long is dead: its running units are marked
    /// interrupted and its leases go back to the pool.
    #[serde(default = "default_expiry")]
    pub expiry: HumanDuration,
}

fn default_interval() -> HumanDuration {
    HumanDuration::from_secs(2)
}
fn default_expiry() -> HumanDuration {
    HumanDuration::from_secs(15)
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat { interval: default_interval(), expiry: default_expiry() }
    }
}

/// One fixture: where a unit is plugged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    /// Its name on the station (`f1`, `left`...).
    pub name: String,
    /// Its serial port (a path, `usb-serial:...`, `rfc2217://...`).
    pub port: String,
    /// Values for the profile's variables at this fixture (`ip` for a fixed
    /// provisioning address, say).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
}

/// A station file that passed every check.
#[derive(Debug, Clone)]
pub struct LoadedStation {
    pub path: PathBuf,
    pub file: StationFile,
    pub pool: Option<AddressPool>,
}

impl LoadedStation {
    /// The folder relative paths start from.
    pub fn base_dir(&self) -> &Path {
        match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        }
    }

    /// The profile's path.
    pub fn profile_path(&self) -> PathBuf {
        self.base_dir().join(&self.file.profile)
    }
}

/// The JSON Schema of the station file.
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(StationFile)).expect("a schema is plain JSON")
}

/// Reads and checks the station file at `path`.
pub fn load(path: &Path) -> Result<LoadedStation, ProfileError> {
    let base = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut pool = None;
    let help = "a station file names `station`, `profile` and `fixtures`: see docs/station.md";
    let (file, _tree, problems) = crate::profile::load_yaml_checked::<StationFile>(
        path,
        &crate::input_file::STATION,
        &schema(),
        "the station file is empty",
        help,
        |file, problems| pool = validate(file, &base, problems),
    )?;
    match file {
        Some(file) if !problems.iter().any(|p| p.is_error()) => {
            Ok(LoadedStation { path: path.to_path_buf(), file, pool })
        }
        _ => Err(ProfileError::Invalid { path: path.to_path_buf(), problems }),
    }
}

/// A heartbeat more often than this would be the station's main work.
const MIN_HEARTBEAT: std::time::Duration = std::time::Duration::from_millis(200);

/// The pool's addresses with its `mask` and `gateway` as a device gets them:
/// checked as `profile check` checks a profile's address triple
/// ([`crate::profile::validate::check_addresses`]), for the first and last address,
/// and the pool in one subnet.
fn check_pool_subnet(settings: &IpPool, pool: &AddressPool, problems: &mut Problems<'_>) {
    let (Some(first), Some(last)) = (pool.addresses.first(), pool.addresses.last()) else { return };
    let mask = settings.mask.to_string();
    let gateway = settings.gateway.map(|g| g.to_string());
    for address in [first, last] {
        let errors =
            crate::profile::validate::check_addresses(Some(&address.to_string()), Some(&mask), gateway.as_deref());
        if errors.is_empty() {
            continue;
        }
        for error in errors {
            let field = match error.field {
                "ip" => "ip_pool.addresses",
                "mask" => "ip_pool.mask",
                _ => "ip_pool.gateway",
            };
            let problem = problems.error(field, format!("pool address {address}: {}", error.message));
            if let Some(help) = error.help {
                problem.help(help);
            }
        }
        return;
    }
    let bits = u32::from(settings.mask);
    if u32::from(*first) & bits != u32::from(*last) & bits {
        problems.error(
            "ip_pool.addresses",
            format!("the pool {} spans more than one subnet of mask {}", pool.text, settings.mask),
        );
    }
}

fn validate(file: &StationFile, base: &Path, problems: &mut Problems<'_>) -> Option<AddressPool> {
    if file.format != 1 {
        problems.error(
            "format",
            format!("station file format {} is not known; this flashline reads format 1", file.format),
        );
    }
    if file.station.trim().is_empty() {
        problems.error("station", "the station needs a name");
    }
    if !base.join(&file.profile).is_file() {
        problems
            .error("profile", format!("no profile at {}", base.join(&file.profile).display()))
            .help("the path is taken from the station file's folder");
    }
    if file.fixtures.is_empty() {
        problems.error("fixtures", "a station needs at least one fixture");
    }
    for (index, fixture) in file.fixtures.iter().enumerate() {
        let at = format!("fixtures[{index}]");
        if file.fixtures[..index].iter().any(|f| f.name == fixture.name) {
            problems.error(&format!("{at}.name"), format!("fixture name `{}` is used twice", fixture.name));
        }
        if file.fixtures[..index].iter().any(|f| f.port == fixture.port) {
            problems.error(&format!("{at}.port"), format!("port `{}` is given to two fixtures", fixture.port));
        }
        if let Some(ip) = fixture.set.get("ip")
            && ip.parse::<Ipv4Addr>().is_err()
        {
            problems.error(&format!("{at}.set.ip"), format!("`{ip}` is not an IPv4 address"));
        }
    }
    for (name, pattern) in [
        ("arrival.expect", &file.arrival.expect),
        ("arrival.mac", &file.arrival.mac),
        ("arrival.serial_number", &file.arrival.serial_number),
    ] {
        match regex::Regex::new(pattern) {
            Ok(regex) if name != "arrival.expect" && regex.captures_len() < 2 => {
                problems.error(name, "the pattern needs a group `(...)` around the value");
            }
            Ok(_) => {}
            Err(error) => {
                problems.error(name, format!("not a regular expression: {error}"));
            }
        }
    }
    if file.heartbeat.interval.0 < MIN_HEARTBEAT {
        problems
            .error(
                "heartbeat.interval",
                format!(
                    "a heartbeat every {} ms is too often: at least {} ms",
                    file.heartbeat.interval.0.as_millis(),
                    MIN_HEARTBEAT.as_millis()
                ),
            )
            .help("each heartbeat is a database write; 2s is the default");
    } else if file.heartbeat.expiry.0 <= file.heartbeat.interval.0 * 2 {
        problems
            .error("heartbeat.expiry", "the expiry must be more than two heartbeat intervals")
            .help("otherwise one late heartbeat makes the other stations release this one's units");
    }
    if let Some(database) = &file.database
        && let Err(error) = crate::store::DbUrl::parse(database, base)
    {
        problems.error("database", error.to_string());
    }
    let pool = file.ip_pool.as_ref().and_then(|pool| match AddressPool::parse(&pool.addresses) {
        Ok(parsed) => Some(parsed),
        Err(message) => {
            problems.error("ip_pool.addresses", message);
            None
        }
    });
    if let (Some(settings), Some(parsed)) = (&file.ip_pool, &pool) {
        check_pool_subnet(settings, parsed, problems);
    }
    let needs_address = file.fixtures.iter().any(|f| !f.set.contains_key("ip"));
    if needs_address && file.ip_pool.is_none() {
        problems
            .warning("fixtures", "some fixtures give no `ip` and there is no `ip_pool`")
            .help("fine when the profile needs no address (DHCP); otherwise add `ip_pool:` or `set: {ip: ...}`");
    }
    pool
}
