//! Inventories: the devices of a batch, each with its profile, serial port,
//! address and any other per-device variables.
//!
//! Two forms, chosen by the file extension: YAML (`defaults:` applied to every
//! device, then `devices:`) and CSV with a header row, as exported from the
//! spreadsheets used on manufacturing lines. Both give the same [`Inventory`];
//! every problem names its file, line and column.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::problem::{Problem, Problems, Severity};
use super::source::{NodeKind, Position, SourceTree};
use super::validate::check_addresses;
use super::{ProfileError, read_text, vars};

/// One device of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub name: String,
    /// The profile file, relative paths taken from the inventory's folder.
    pub profile: Option<PathBuf>,
    pub port: Option<String>,
    /// Every field but `profile`, as variables: `name`, `port`, `ip`, `mask`,
    /// `gateway` and any other column.
    pub values: BTreeMap<String, String>,
    /// Line of the device in the inventory file.
    pub line: usize,
}

#[derive(Debug, Clone)]
pub struct Inventory {
    pub path: PathBuf,
    pub devices: Vec<Device>,
}

impl Inventory {
    pub fn device(&self, name: &str) -> Option<&Device> {
        self.devices.iter().find(|d| d.name == name)
    }

    /// Reads and checks an inventory (`.csv` as CSV, anything else as YAML).
    pub fn load(path: &Path) -> Result<Inventory, ProfileError> {
        let text = read_text(path, &crate::input_file::INVENTORY)?;
        let is_csv = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        let (rows, mut problems) = if is_csv { parse_csv(path, &text) } else { parse_yaml(path, &text) };
        let base = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let devices = check_rows(path, &base, rows, &mut problems);
        if problems.iter().any(Problem::is_error) {
            problems.sort_by_key(|p| (p.line, p.column));
            return Err(ProfileError::Invalid { path: path.to_path_buf(), problems });
        }
        Ok(Inventory { path: path.to_path_buf(), devices })
    }
}

/// A device's fields as read, with the position of each.
struct Row {
    at: Position,
    fields: Vec<(String, String, Position)>,
}

fn problem(path: &Path, at: Position, field: &str, message: String) -> Problem {
    Problem {
        severity: Severity::Error,
        file: path.to_path_buf(),
        line: at.line,
        column: at.column,
        path: field.to_string(),
        message,
        help: None,
    }
}

fn parse_yaml(path: &Path, text: &str) -> (Vec<Row>, Vec<Problem>) {
    let (tree, syntax) = SourceTree::parse(text);
    let mut problems = Problems::new(path, &tree);
    for p in syntax {
        problems.at(Severity::Error, p.at, &p.path, p.message);
    }
    let mut rows = Vec::new();
    let Some(NodeKind::Mapping(top)) = tree.root.as_ref().map(|r| &r.kind) else {
        if !problems.has_errors() {
            problems
                .error("", "an inventory is a mapping with `devices:` (and optional `defaults:`)")
                .help("devices:\n    - {name: unit-01, port: /dev/ttyUSB0, ip: 192.168.1.51}");
        }
        return (rows, problems.list);
    };
    let scalars = |node: &super::source::Node, path: &str, problems: &mut Problems<'_>| {
        let mut fields = Vec::new();
        match &node.kind {
            NodeKind::Mapping(entries) => {
                for entry in entries {
                    match &entry.value.kind {
                        NodeKind::Scalar(value) => fields.push((entry.key.clone(), value.clone(), entry.value.at)),
                        _ => {
                            problems.error(
                                &format!("{path}.{}", entry.key),
                                format!("`{}` must be a single value, not a list or mapping", entry.key),
                            );
                        }
                    }
                }
            }
            _ => {
                problems.error(path, "expected a mapping of field: value");
            }
        }
        fields
    };
    let mut defaults = Vec::new();
    let mut saw_devices = false;
    for entry in top {
        match entry.key.as_str() {
            "defaults" => defaults = scalars(&entry.value, "defaults", &mut problems),
            "devices" => {
                saw_devices = true;
                let NodeKind::Sequence(items) = &entry.value.kind else {
                    problems.error("devices", "`devices` must be a list");
                    continue;
                };
                for (i, item) in items.iter().enumerate() {
                    let mut fields = scalars(item, &format!("devices[{i}]"), &mut problems);
                    for (key, value, at) in &defaults {
                        if !fields.iter().any(|(k, _, _)| k == key) {
                            fields.push((key.clone(), value.clone(), *at));
                        }
                    }
                    rows.push(Row { at: item.at, fields });
                }
            }
            other => {
                let guess = super::problem::did_you_mean(other, ["defaults", "devices"]);
                let p =
                    problems.at(Severity::Error, entry.key_at, other, format!("unknown key `{other}` in an inventory"));
                p.help(match guess {
                    Some(g) => format!("did you mean `{g}`?"),
                    None => "an inventory has `defaults:` and `devices:`".into(),
                });
            }
        }
    }
    if !saw_devices && !problems.has_errors() {
        problems.error("", "the inventory has no `devices:` list");
    }
    (rows, problems.list)
}

fn parse_csv(path: &Path, text: &str) -> (Vec<Row>, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut rows = Vec::new();
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).flexible(false).from_reader(text.as_bytes());
    let headers: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(str::to_string).collect(),
        Err(error) => {
            problems.push(problem(path, Position { line: 1, column: 1 }, "", format!("CSV header: {error}")));
            return (rows, problems);
        }
    };
    let mut seen = BTreeSet::new();
    for (i, header) in headers.iter().enumerate() {
        let at = Position { line: 1, column: i + 1 };
        if header.is_empty() {
            problems.push(problem(path, at, "", format!("column {} has an empty header", i + 1)));
        } else if !seen.insert(header.as_str()) {
            problems.push(problem(path, at, header, format!("column `{header}` appears twice in the header")));
        }
    }
    for record in reader.records() {
        match record {
            Ok(record) => {
                let line = record.position().map_or(0, |p| p.line() as usize);
                let fields = headers
                    .iter()
                    .zip(record.iter())
                    .enumerate()
                    .filter(|(_, (_, value))| !value.is_empty())
                    .map(|(i, (key, value))| (key.clone(), value.to_string(), Position { line, column: i + 1 }))
                    .collect();
                rows.push(Row { at: Position { line, column: 1 }, fields });
            }
            Err(error) => {
                let line = error.position().map_or(0, |p| p.line() as usize);
                let message = match error.kind() {
                    csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
                        format!("row has {len} fields; the header has {expected_len}")
                    }
                    _ => format!("CSV: {error}"),
                };
                problems.push(problem(path, Position { line, column: 1 }, "", message));
            }
        }
    }
    (rows, problems)
}

/// Checks each device and across devices (unique names, ports and addresses).
fn check_rows(path: &Path, base: &Path, rows: Vec<Row>, problems: &mut Vec<Problem>) -> Vec<Device> {
    let mut devices = Vec::new();
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    let mut ports: BTreeMap<String, String> = BTreeMap::new();
    let mut ips: BTreeMap<String, String> = BTreeMap::new();
    for row in rows {
        let get = |key: &str| row.fields.iter().find(|(k, _, _)| k == key);
        let Some((_, name, name_at)) = get("name") else {
            problems.push(problem(path, row.at, "name", "device has no `name`".into()));
            continue;
        };
        if let Some(first) = names.insert(name.clone(), row.at.line) {
            problems.push(problem(
                path,
                *name_at,
                "name",
                format!("device name `{name}` is used twice (first on line {first})"),
            ));
        }
        for (key, _, at) in &row.fields {
            if key != "profile" && vars::parse(&format!("${{{key}}}")).is_err() {
                problems.push(problem(
                    path,
                    *at,
                    key,
                    format!("`{key}` is not a usable variable name (letters, digits, `_`, `-`)"),
                ));
            }
        }
        if let Some((_, port, at)) = get("port")
            && let Err(message) = crate::serial::port::check_name(port)
        {
            problems.push(problem(
                path,
                *at,
                "port",
                format!("device `{name}`: `{port}` is not a port name: {message}"),
            ));
        }
        if let Some((_, port, at)) = get("port")
            && let Some(other) = ports.insert(port.clone(), name.clone())
        {
            problems.push(problem(path, *at, "port", format!("port `{port}` is also used by device `{other}`")));
        }
        if let Some((_, ip, at)) = get("ip")
            && let Some(other) = ips.insert(ip.clone(), name.clone())
        {
            problems.push(problem(path, *at, "ip", format!("address {ip} is also given to device `{other}`")));
        }
        let field = |key: &str| get(key).map(|(_, v, _)| v.as_str());
        for error in check_addresses(field("ip"), field("mask"), field("gateway")) {
            let at = get(error.field).map_or(row.at, |(_, _, at)| *at);
            let mut p = problem(path, at, error.field, format!("device `{name}`: {}", error.message));
            p.help = error.help;
            problems.push(p);
        }
        let profile = get("profile").map(|(_, p, at)| (base.join(p), *at));
        if let Some((file, at)) = &profile
            && let Some(why) = crate::input_file::unusable(file)
        {
            problems.push(problem(path, *at, "profile", format!("profile `{}` {why}", file.display())));
        }
        devices.push(Device {
            name: name.clone(),
            profile: profile.map(|(p, _)| p),
            port: field("port").map(str::to_string),
            values: row
                .fields
                .iter()
                .filter(|(k, _, _)| k != "profile")
                .map(|(k, v, _)| (k.clone(), v.clone()))
                .collect(),
            line: row.at.line,
        });
    }
    if devices.is_empty() && !problems.iter().any(Problem::is_error) {
        problems.push(problem(
            path,
            Position { line: 1, column: 1 },
            "devices",
            "the inventory lists no devices".into(),
        ));
    }
    devices
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn yaml_and_csv_give_the_same_devices() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "p.yaml", "");
        let yaml = write(
            dir.path(),
            "inv.yaml",
            "defaults:\n  profile: p.yaml\n  mask: 255.255.255.0\ndevices:\n  - {name: a, port: /dev/ttyUSB0, ip: 10.0.0.2, serial: 17}\n  - {name: b, port: /dev/ttyUSB1, ip: 10.0.0.3}\n",
        );
        let csv = write(
            dir.path(),
            "inv.csv",
            "name,profile,port,ip,mask,serial\na,p.yaml,/dev/ttyUSB0,10.0.0.2,255.255.255.0,17\nb,p.yaml,/dev/ttyUSB1,10.0.0.3,255.255.255.0,\n",
        );
        let from_yaml = Inventory::load(&yaml).unwrap();
        let from_csv = Inventory::load(&csv).unwrap();
        assert_eq!(from_yaml.devices.len(), 2);
        assert_eq!(from_csv.devices.len(), 2, "every CSV row is a device");
        for (y, c) in from_yaml.devices.iter().zip(&from_csv.devices) {
            assert_eq!(y.name, c.name);
            assert_eq!(y.values, c.values);
            assert_eq!(y.profile, c.profile);
        }
        assert_eq!(from_yaml.device("a").unwrap().values["serial"], "17");
        assert_eq!(from_csv.device("b").unwrap().line, 3);
    }

    #[test]
    fn duplicates_and_bad_rows_are_reported_together() {
        let dir = tempfile::tempdir().unwrap();
        let csv = write(
            dir.path(),
            "inv.csv",
            "name,port,ip,mask,gateway\na,/dev/ttyUSB0,10.0.0.2,255.255.255.0,10.0.1.1\na,/dev/ttyUSB0,10.0.0.2,255.255.255.0,10.0.0.1\nc,x\n",
        );
        let Err(ProfileError::Invalid { problems, .. }) = Inventory::load(&csv) else {
            panic!("expected problems");
        };
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        let all = text.join("\n");
        assert!(all.contains("inv.csv:2:5: error: gateway: device `a`: gateway 10.0.1.1 is outside"), "{all}");
        assert!(all.contains("inv.csv:3:1: error: name: device name `a` is used twice"), "{all}");
        assert!(all.contains("port `/dev/ttyUSB0` is also used by device `a`"), "{all}");
        assert!(all.contains("address 10.0.0.2 is also given"), "{all}");
        assert!(all.contains("inv.csv:4:1: error: row has 2 fields; the header has 5"), "{all}");
    }

    #[test]
    fn malformed_port_names_are_problems_before_anything_opens() {
        let dir = tempfile::tempdir().unwrap();
        let csv = write(
            dir.path(),
            "inv.csv",
            "name,port\na,rfc2217://bench:4001\nb,tcp://bench\nc,usb-serial:A50285BI\nd,usb-path:\n",
        );
        let Err(ProfileError::Invalid { problems, .. }) = Inventory::load(&csv) else {
            panic!("expected problems");
        };
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(text.len(), 2, "{text:#?}");
        let first = "port: device `b`: `tcp://bench` is not a port name: the port is missing";
        assert!(text[0].contains(first), "{text:#?}");
        assert!(text[1].contains("device `d`: `usb-path:` is not a port name"), "{text:#?}");
    }
}
