//! Device profiles and inventories: loading, validation and variables.
//!
//! A profile is read in four passes, each adding problems rather than stopping:
//! YAML syntax and duplicate keys (`source`), keys and shapes against the JSON
//! Schema (`structure`), typed deserialization (serde-saphyr), then the
//! semantic checks (`validate`). Nothing runs unless all pass. Per device, the
//! `${...}` variables are then filled in by [`resolve`], which checks the
//! expanded addresses with the same rules.

pub mod inventory;
pub mod problem;
pub mod source;
pub mod steps;
pub mod structure;
pub mod template;
pub mod types;
pub mod validate;
pub mod values;
pub mod vars;

use std::path::{Path, PathBuf};

pub use inventory::{Device, Inventory};
pub use problem::{Problem, Problems, Severity};
pub use types::*;
pub use validate::CheckOptions;
pub use values::{DeviceValues, ValueSource};

use crate::failure::{Classify, FailureClass};
use crate::input_file::{self, InputFileError};
use source::{Position, SourceTree};

/// Why a profile or inventory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The file could not be read (environment), or is no regular file
    /// or too large (bad input).
    #[error(transparent)]
    Read(#[from] InputFileError),
    /// The file has problems (bad input). `problems` holds every one, warnings
    /// included.
    #[error("{} has {} problem(s)", path.display(), problems.iter().filter(|p| p.is_error()).count())]
    Invalid { path: PathBuf, problems: Vec<Problem> },
}

impl Classify for ProfileError {
    fn class(&self) -> FailureClass {
        match self {
            ProfileError::Read(error) => error.class(),
            ProfileError::Invalid { .. } => FailureClass::Input,
        }
    }
}

/// A profile that passed every check, with what is needed to place later
/// problems (per-device values) in its file.
#[derive(Debug, Clone)]
pub struct LoadedProfile {
    pub path: PathBuf,
    pub tree: SourceTree,
    pub profile: Profile,
    /// Warnings found while loading (clear-text passwords, say).
    pub warnings: Vec<Problem>,
    /// SHA-256 (hex) of the bytes that were parsed: what runs is what a
    /// record names, even if the file is edited afterwards.
    pub sha256: String,
}

impl LoadedProfile {
    /// The folder relative paths in the profile start from.
    pub fn base_dir(&self) -> &Path {
        base_dir_of(&self.path)
    }
}

fn base_dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// The JSON Schema of the profile format, for editors and for the structural
/// check.
pub fn schema() -> serde_json::Value {
    let schema = schemars::schema_for!(Profile);
    serde_json::to_value(schema).expect("a schema is plain JSON")
}

/// Reads a text file of `kind` (a profile, station file or inventory).
pub(crate) fn read_text(path: &Path, kind: &input_file::Kind) -> Result<String, ProfileError> {
    let bytes = input_file::read(path, kind)?;
    String::from_utf8(bytes).map_err(|error| {
        let offset = error.utf8_error().valid_up_to();
        let text = String::from_utf8_lossy(&error.as_bytes()[..offset]);
        let line = text.matches('\n').count() + 1;
        let column = text.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        ProfileError::Invalid {
            path: path.to_path_buf(),
            problems: vec![Problem {
                severity: Severity::Error,
                file: path.to_path_buf(),
                line,
                column,
                path: String::new(),
                message: format!("the file is not UTF-8 text (byte offset {offset})"),
                help: None,
            }],
        }
    })
}

/// Checks the profile at `path` and returns every problem, warnings included,
/// in file order. `Err` only when the file cannot be read.
pub fn check_file(path: &Path) -> Result<Vec<Problem>, ProfileError> {
    match load_unchecked(path) {
        Ok((_, problems)) => Ok(problems),
        Err(ProfileError::Invalid { problems, .. }) => Ok(problems),
        Err(error) => Err(error),
    }
}

/// Loads and validates the profile at `path`. Any error, or under `strict` any
/// warning, makes it [`ProfileError::Invalid`] with the full list.
pub fn load(path: &Path, options: CheckOptions) -> Result<LoadedProfile, ProfileError> {
    let (loaded, problems) = load_unchecked(path)?;
    let refused = problems.iter().any(|p| p.is_error() || options.strict);
    match loaded {
        Some(loaded) if !refused => Ok(LoadedProfile { warnings: problems, ..loaded }),
        _ => Err(ProfileError::Invalid { path: path.to_path_buf(), problems }),
    }
}

/// The four passes. Returns the profile when it deserialized, and every problem.
fn load_unchecked(path: &Path) -> Result<(Option<LoadedProfile>, Vec<Problem>), ProfileError> {
    let empty_help = "start from one of the examples in profiles/, or `flashline profile schema`";
    let (checked, tree, problems) = load_yaml_checked::<Profile>(
        path,
        &input_file::PROFILE,
        &schema(),
        "the profile is empty",
        empty_help,
        |profile, problems| validate::validate(profile, base_dir_of(path), problems),
    )?;
    Ok((
        checked.map(|profile| {
            let sha256 = tree.sha256().to_string();
            LoadedProfile { path: path.to_path_buf(), tree, profile, warnings: Vec::new(), sha256 }
        }),
        problems,
    ))
}

/// The passes every YAML file of flashline goes through (profiles, station
/// files): syntax and duplicate keys, keys and shapes against `schema`,
/// typed deserialization, then `validate`. Returns the value when it
/// deserialized, the source tree (to place later problems) and every
/// problem in file order. `Err` only when the file cannot be read.
pub(crate) fn load_yaml_checked<T: serde::de::DeserializeOwned>(
    path: &Path,
    kind: &input_file::Kind,
    schema: &serde_json::Value,
    empty: &str,
    empty_help: &str,
    validate: impl FnOnce(&T, &mut Problems<'_>),
) -> Result<(Option<T>, SourceTree, Vec<Problem>), ProfileError> {
    let text = read_text(path, kind)?;
    let (tree, syntax) = SourceTree::parse(&text);
    let mut problems = Problems::new(path, &tree);
    for problem in syntax {
        problems.at(Severity::Error, problem.at, &problem.path, problem.message);
    }
    let Some(root) = tree.root.as_ref().filter(|_| !problems.has_errors()) else {
        if !problems.has_errors() {
            problems.error("", empty).help(empty_help);
        }
        let list = sorted(problems.list);
        return Ok((None, tree, list));
    };
    structure::check(schema, root, &mut problems);
    if problems.has_errors() {
        let list = sorted(problems.list);
        return Ok((None, tree, list));
    }
    let value: T = match serde_saphyr::from_str(&text) {
        Ok(value) => value,
        Err(error) => {
            push_serde_error(&tree, &mut problems, &error);
            let list = sorted(problems.list);
            return Ok((None, tree, list));
        }
    };
    validate(&value, &mut problems);
    let list = sorted(problems.list);
    Ok((Some(value), tree, list))
}

/// Places a serde-saphyr error by its position and names the field there.
pub(crate) fn push_serde_error(tree: &SourceTree, problems: &mut Problems<'_>, error: &serde_saphyr::Error) {
    let at = error
        .location()
        .filter(|l| l.line() > 0)
        .map(|l| Position { line: l.line() as usize, column: l.column().max(1) as usize })
        .unwrap_or(Position { line: 1, column: 1 });
    let path = tree.path_near(at).unwrap_or_default();
    let message = error.without_snippet().to_string();
    // serde-saphyr appends the position in words; it is already in front.
    let message = match message.find(" at line ") {
        Some(cut) => message[..cut].to_string(),
        None => message,
    };
    problems.at(Severity::Error, at, &path, message);
}

fn sorted(mut problems: Vec<Problem>) -> Vec<Problem> {
    problems.sort_by_key(|a| (a.line, a.column));
    problems.dedup();
    problems
}

/// How values are put into a resolved profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolveMode {
    /// Real values, for running.
    Use,
    /// Secrets as `***`, for display.
    Display,
}

/// Fills in every `${...}` for one device (`values`: its inventory fields and
/// `--set` pairs) and checks the expanded addresses. Returns the resolved
/// profile, or every problem, each placed in the profile file and naming
/// where a value that caused it came from.
pub fn resolve(loaded: &LoadedProfile, values: &DeviceValues, mode: ResolveMode) -> Result<Profile, Vec<Problem>> {
    resolve_with_env(loaded, values, mode, Scope::All, &|name| std::env::var(name).ok())
}

/// Fills in only the variables step `index` uses (for a command that runs
/// that one step, such as `serial dialog`): a value the other steps need is
/// not asked for. The other steps are left as written.
pub fn resolve_step(
    loaded: &LoadedProfile,
    values: &DeviceValues,
    mode: ResolveMode,
    index: usize,
) -> Result<Profile, Vec<Problem>> {
    resolve_with_env(loaded, values, mode, Scope::Step(index), &|name| std::env::var(name).ok())
}

/// Which templates [`resolve_with_env`] fills in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The whole profile.
    All,
    /// One step, by index.
    Step(usize),
}

/// [`resolve`] with the scope and the environment given explicitly (tests).
pub fn resolve_with_env(
    loaded: &LoadedProfile,
    values: &DeviceValues,
    mode: ResolveMode,
    scope: Scope,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Profile, Vec<Problem>> {
    let profile = &loaded.profile;
    let sources = vars::Sources {
        device: values,
        defaults: profile
            .variables
            .iter()
            .filter_map(|(name, spec)| spec.default.clone().map(|d| (name.clone(), d)))
            .collect(),
        secret_variables: profile
            .variables
            .iter()
            .filter(|(_, spec)| spec.secret)
            .map(|(name, _)| name.clone())
            .collect(),
        base_dir: loaded.base_dir(),
        env,
        redact: mode == ResolveMode::Display,
    };
    let step_prefix = match scope {
        Scope::All => None,
        Scope::Step(index) => Some(format!("steps[{index}].")),
    };
    let mut problems = Problems::new(&loaded.path, &loaded.tree);
    let mut resolved = profile.clone();
    vars::visit_templates(&mut resolved, &mut |path, role, template| {
        if step_prefix.as_ref().is_some_and(|prefix| !path.starts_with(prefix.as_str())) {
            return;
        }
        let origin = value_origin(template.as_str(), values);
        match vars::expand(template.as_str(), role, &sources) {
            Ok(value) if role == vars::TemplateRole::Path => {
                // A path starts from the folder of whatever wrote it: the
                // profile's, the inventory's, or the current directory for a
                // value typed on the command line.
                let base = path_base(template.as_str(), values).unwrap_or_else(|| sources.base_dir.to_path_buf());
                let full = base.join(&value);
                if let Some(why) = input_file::unusable(&full) {
                    let from = origin.as_ref().map(|o| format!(", {o}")).unwrap_or_default();
                    problems.error(path, format!("file `{value}` {why} ({}{from})", full.display()));
                }
                // Relative to the profile's folder unless another folder applies.
                template.0 = if base == sources.base_dir { value } else { full.display().to_string() };
            }
            Ok(value) => template.0 = value,
            Err(error) => {
                let from = origin.map(|o| format!(" ({o})")).unwrap_or_default();
                let problem = problems.error(path, format!("{}{from}", error.message));
                if let Some(help) = error.help {
                    problem.help(help);
                }
            }
        }
    });
    if !problems.has_errors() && scope == Scope::All {
        let net = &resolved.network;
        let text = |t: &Option<Template>| t.as_ref().map(|t| t.0.clone());
        let (ip, mask, gateway) = (text(&net.ip), text(&net.mask), text(&net.gateway));
        for error in validate::check_addresses(ip.as_deref(), mask.as_deref(), gateway.as_deref()) {
            let path = format!("network.{}", error.field);
            let written = match error.field {
                "ip" => &profile.network.ip,
                "mask" => &profile.network.mask,
                _ => &profile.network.gateway,
            };
            let filled = match written.as_ref().and_then(|t| value_origin(t.as_str(), values)) {
                Some(origin) => format!("after filling in {origin}"),
                None => "after filling in variables".to_string(),
            };
            let problem = problems.error(&path, format!("{} ({filled})", error.message));
            if let Some(help) = error.help {
                problem.help(help);
            }
        }
    }
    if mode == ResolveMode::Display {
        for step in &mut resolved.steps {
            if let Step::ConfigureNetwork(s) = step {
                for entry in s.interrupt.iter_mut().chain(s.dialog.iter_mut()).chain(s.after_done.iter_mut()) {
                    if entry.secret {
                        // With candidates, `send` is empty (validation
                        // refuses both): `***` would say there is one.
                        entry.send = Template(if entry.candidates.is_empty() { "***" } else { "" }.into());
                        entry.candidates.iter_mut().for_each(|c| *c = Template("***".into()));
                    }
                }
            }
        }
    }
    if problems.has_errors() { Err(sorted(problems.list)) } else { Ok(resolved) }
}

/// The device variables a template uses.
fn device_variables(text: &str) -> Vec<String> {
    vars::parse(text)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|piece| match piece {
            vars::Piece::Reference(vars::Reference::Device(name)) => Some(name),
            _ => None,
        })
        .collect()
}

/// ``ip` from line3.csv:4`: where the device values a template uses came
/// from, for a problem about its expanded text.
fn value_origin(text: &str, values: &DeviceValues) -> Option<String> {
    let origins: Vec<String> = device_variables(text)
        .iter()
        .filter_map(|name| values.source(name).map(|source| format!("`{name}` from {source}")))
        .collect();
    (!origins.is_empty()).then(|| origins.join(" and "))
}

/// The folder a path template starts from when it begins with a device value
/// (`${rom_image}`): that value's own folder. `None` for the profile's.
fn path_base(text: &str, values: &DeviceValues) -> Option<PathBuf> {
    let Ok(pieces) = vars::parse(text) else { return None };
    let Some(vars::Piece::Reference(vars::Reference::Device(name))) = pieces.first() else { return None };
    match values.source(name)? {
        ValueSource::CommandLine => std::env::current_dir().ok(),
        source => source.base_dir().map(Path::to_path_buf),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Text built from YAML's own punctuation and the profile's keys, so the
    /// generator reaches deep into the checks rather than failing at once.
    fn yamlish() -> impl Strategy<Value = String> {
        let pieces = prop::sample::select(vec![
            "format: 1\n",
            "name: x\n",
            "steps:\n",
            "  - ",
            "load_image:",
            "ftp_upload:",
            "tftp_manage:",
            "wait_for_network:",
            "configure_network:",
            " {",
            "}",
            "[",
            "]",
            ",",
            ":",
            " ",
            "\n",
            "    ",
            "file: a.bin",
            "port: 70000",
            "ip: ${ip}",
            "${",
            "${env:",
            "&a ",
            "*a",
            "<<: *a",
            "---\n",
            "\"",
            "'",
            "- ",
            "network:\n",
            "  mask: 255.0.255.0\n",
            "serial: {baud: x}\n",
            "\t",
            "#",
            "? ",
            "|\n",
            ">-\n",
            "\u{e9}",
            "0x",
            "null",
            "~",
            "!!str ",
            "dialog: []",
            "done: (",
            "query: [all]",
        ]);
        prop::collection::vec(pieces, 0..40).prop_map(|parts| parts.concat())
    }

    #[test]
    fn family_defaults_to_netos_and_an_unknown_one_is_refused() {
        use crate::family::Family;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.yaml");
        let steps = "steps:\n  - wait_for_network: {host: 198.18.0.2, ports: [{port: 21}]}\n";
        for (family, want) in [
            ("", Some(Family::Netos)),
            ("family: netos\n", Some(Family::Netos)),
            ("family: uboot\n", Some(Family::Uboot)),
            ("family: vxworks\n", None),
        ] {
            std::fs::write(&path, format!("format: 1\nname: x\n{family}{steps}")).unwrap();
            let loaded = load(&path, CheckOptions::default());
            assert_eq!(loaded.as_ref().ok().map(|l| l.profile.family), want, "{family}: {loaded:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn any_text_gives_problems_not_panics(text in yamlish()) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("p.yaml");
            std::fs::write(&path, &text).unwrap();
            let problems = check_file(&path).unwrap();
            for problem in &problems {
                prop_assert!(problem.line >= 1 && problem.column >= 1, "{problem}");
            }
            if let Ok(loaded) = load(&path, CheckOptions::default()) {
                let _ = resolve(&loaded, &DeviceValues::new(), ResolveMode::Display);
            }
        }
    }
}
