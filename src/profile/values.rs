//! A device's values (what `${name}` expands to) and where each came from:
//! `--set` on the command line or a row of an inventory. The source decides
//! two things: which folder a relative path starts from (a path typed on the
//! command line starts from the current directory, one written in an
//! inventory from the inventory's folder, as one written in a profile starts
//! from the profile's), and what an error about the value names as its origin.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::inventory::{Device, Inventory};
use super::vars;

/// Where a device's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueSource {
    /// `--set name=value`, or an option such as `--port`.
    CommandLine,
    /// A row of an inventory file.
    Inventory { file: PathBuf, line: usize },
    /// A station file: a fixture's `set:`, or an address from its pool.
    Station { file: PathBuf },
}

impl ValueSource {
    /// The folder a relative path given this way starts from; `None` for the
    /// current directory.
    pub fn base_dir(&self) -> Option<&Path> {
        match self {
            ValueSource::CommandLine => None,
            ValueSource::Inventory { file, .. } | ValueSource::Station { file } => {
                Some(file.parent().unwrap_or(Path::new(".")))
            }
        }
    }
}

impl std::fmt::Display for ValueSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ValueSource::CommandLine => f.write_str("the command line (--set)"),
            ValueSource::Inventory { file, line } => write!(f, "{}:{line}", file.display()),
            ValueSource::Station { file } => write!(f, "the station file {}", file.display()),
        }
    }
}

/// A device's values by name, each with its source.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DeviceValues {
    entries: BTreeMap<String, (String, ValueSource)>,
}

/// Names and sources only: a value may be a password given with `--set`.
impl std::fmt::Debug for DeviceValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.entries.iter().map(|(name, (_, source))| (name, source))).finish()
    }
}

impl DeviceValues {
    pub fn new() -> DeviceValues {
        DeviceValues::default()
    }

    /// Sets `name`, replacing an earlier value (the command line overrides
    /// the inventory by being inserted after it).
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>, source: ValueSource) {
        self.entries.insert(name.into(), (value.into(), source));
    }

    /// Every field of an inventory row.
    pub fn from_inventory(inventory: &Inventory, device: &Device) -> DeviceValues {
        let source = ValueSource::Inventory { file: inventory.path.clone(), line: device.line };
        let mut values = DeviceValues::new();
        for (name, value) in &device.values {
            values.insert(name.clone(), value.clone(), source.clone());
        }
        values
    }

    /// `name=value` pairs typed on the command line.
    pub fn from_set_pairs(pairs: &[String]) -> Result<DeviceValues, String> {
        let mut values = DeviceValues::new();
        for pair in pairs {
            let Some((key, value)) = pair.split_once('=') else {
                return Err(format!("`--set {pair}` is not of the form name=value"));
            };
            let key = key.trim();
            if key.is_empty() || vars::parse(&format!("${{{key}}}")).is_err() {
                return Err(format!("`--set {pair}`: `{key}` is not a variable name"));
            }
            values.insert(key, value, ValueSource::CommandLine);
        }
        Ok(values)
    }

    /// `other`'s values on top of these.
    pub fn extend(&mut self, other: DeviceValues) {
        self.entries.extend(other.entries);
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries.get(name).map(|(value, _)| value.as_str())
    }

    pub fn source(&self, name: &str) -> Option<&ValueSource> {
        self.entries.get(name).map(|(_, source)| source)
    }
}

impl<const N: usize> From<[(&str, &str); N]> for DeviceValues {
    /// Values typed on the command line (tests, and options like `--port`).
    fn from(pairs: [(&str, &str); N]) -> DeviceValues {
        let mut values = DeviceValues::new();
        for (name, value) in pairs {
            values.insert(name, value, ValueSource::CommandLine);
        }
        values
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_overrides_the_inventory_and_keeps_its_source() {
        let row = ValueSource::Inventory { file: PathBuf::from("lines/line3.csv"), line: 4 };
        let mut values = DeviceValues::new();
        values.insert("ip", "10.0.0.1", row.clone());
        values.insert("mask", "255.0.0.0", row.clone());
        values.extend(DeviceValues::from_set_pairs(&["ip=10.0.0.2".into()]).unwrap());
        assert_eq!(values.get("ip"), Some("10.0.0.2"));
        assert_eq!(values.source("ip"), Some(&ValueSource::CommandLine));
        assert_eq!(values.source("mask"), Some(&row));
        assert_eq!(row.base_dir(), Some(Path::new("lines")));
        assert_eq!(row.to_string(), "lines/line3.csv:4");
        assert!(DeviceValues::from_set_pairs(&["novalue".into()]).is_err());
        assert!(DeviceValues::from_set_pairs(&["a b=1".into()]).is_err());
    }
}
