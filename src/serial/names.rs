//! Stable names for USB serial ports, which renumber (`/dev/ttyUSB3` becomes
//! `/dev/ttyUSB5` after a reboot): `usb-serial:SERIAL[:INTERFACE]` and
//! `usb-path:PATH`, resolved through udev's `/dev/serial/by-id` and
//! `/dev/serial/by-path` links; and the list of USB serial ports with their
//! vendor, product, serial number and by-path name, read from sysfs (what
//! `flashline ports` prints).
//!
//! The roots (`/dev`, `/sys`) come from a [`DevRoot`], so tests build a fake
//! tree of symlinks in a temporary folder. This module only reads folders and
//! links; it does not open ports (see `port.rs`).

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::failure::{Classify, FailureClass};

/// Where the device and sysfs trees are: `/dev` and `/sys`, unless the
/// environment (`FLASHLINE_DEV_ROOT`, `FLASHLINE_SYS_ROOT`) says otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevRoot {
    pub dev: PathBuf,
    pub sys: PathBuf,
}

impl Default for DevRoot {
    fn default() -> Self {
        DevRoot { dev: PathBuf::from("/dev"), sys: PathBuf::from("/sys") }
    }
}

impl DevRoot {
    /// `/dev` and `/sys`, or `FLASHLINE_DEV_ROOT` and `FLASHLINE_SYS_ROOT`.
    pub fn from_env() -> DevRoot {
        let var = |name: &str, default: &str| {
            std::env::var_os(name).filter(|v| !v.is_empty()).map_or_else(|| PathBuf::from(default), PathBuf::from)
        };
        DevRoot { dev: var("FLASHLINE_DEV_ROOT", "/dev"), sys: var("FLASHLINE_SYS_ROOT", "/sys") }
    }
}

/// A stable name that does not name exactly one port. Bad input: the name
/// is wrong for this bench (exit code 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("`{name}` matches no port in {folder}{}", list(candidates, "; the ports there are"))]
    NoMatch { name: String, folder: String, candidates: Vec<String> },
    #[error("`{name}` matches {} ports{}", matches.len(), list(matches, ":"))]
    Ambiguous { name: String, matches: Vec<String> },
}

fn list(items: &[String], lead: &str) -> String {
    if items.is_empty() {
        return "; there are none".to_string();
    }
    let mut text = lead.to_string();
    for item in items {
        text.push_str("\n  ");
        text.push_str(item);
    }
    text
}

impl Classify for NameError {
    fn class(&self) -> FailureClass {
        match self {
            NameError::NoMatch { .. } | NameError::Ambiguous { .. } => FailureClass::Input,
        }
    }
}

/// At most this many links are read from one folder.
const MAX_ENTRIES: usize = 4096;

/// The links of `folder`, by name (sorted), at most [`MAX_ENTRIES`].
fn links(folder: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(folder) else { return Vec::new() };
    let mut found: Vec<(String, PathBuf)> = entries
        .take(MAX_ENTRIES)
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| Some((entry.file_name().into_string().ok()?, entry.path())))
        .collect();
    found.sort();
    found
}

/// The port a link leads to: its canonical target, or the link's target
/// joined to its folder when the target does not exist.
fn target(link: &Path) -> PathBuf {
    std::fs::canonicalize(link).unwrap_or_else(|_| match std::fs::read_link(link) {
        Ok(target) => link.parent().unwrap_or(Path::new("/")).join(target),
        Err(_) => link.to_path_buf(),
    })
}

/// Whether a by-id link name belongs to `serial` (and `interface`, if given).
/// udev names them `usb-VENDOR_MODEL_SERIAL-ifNN[-portN]`.
fn by_id_matches(link: &str, serial: &str, interface: Option<u8>) -> bool {
    let Some(rest) = link.strip_prefix("usb-") else { return false };
    let (identity, tail) = match rest.rfind("-if") {
        Some(at) => (&rest[..at], &rest[at + 3..]),
        None => (rest, ""),
    };
    let serial_ok = identity == serial || identity.ends_with(&format!("_{serial}"));
    let link_interface = tail.split('-').next().and_then(|n| n.parse::<u8>().ok());
    serial_ok && interface.is_none_or(|wanted| link_interface == Some(wanted))
}

/// Whether a by-path link name is `path`: the whole name, its USB part
/// (after `usb-` or `usbvN-`), or that part without `-portN`.
fn by_path_matches(link: &str, path: &str) -> bool {
    if link == path {
        return true;
    }
    let usb_part =
        link.rsplit_once("-usb-").or_else(|| link.rsplit_once("-usbv2-")).or_else(|| link.rsplit_once("-usbv3-"));
    let Some((_, usb)) = usb_part else { return false };
    let usb = usb.strip_prefix("usb-").unwrap_or(usb);
    let path = path.strip_prefix("usb-").unwrap_or(path);
    usb == path || usb.rsplit_once("-port").is_some_and(|(head, _)| head == path)
}

/// Tells the link names a stable name matches.
type LinkFilter = Box<dyn Fn(&str) -> bool>;

/// Resolves a stable name to the port's path; `Ok(None)` when `name` is no
/// stable name (a path or a network name).
pub fn resolve(name: &str, root: &DevRoot) -> Result<Option<PathBuf>, NameError> {
    let (folder, matches): (&str, LinkFilter) = if let Some(rest) = name.strip_prefix("usb-serial:") {
        let (serial, interface) = match rest.rsplit_once(':') {
            Some((serial, interface)) => {
                match interface.trim_start_matches("if").parse::<u8>() {
                    Ok(number) => (serial, Some(number)),
                    // A serial number with a colon in it.
                    Err(_) => (rest, None),
                }
            }
            None => (rest, None),
        };
        let serial = serial.to_string();
        ("by-id", Box::new(move |link| by_id_matches(link, &serial, interface)))
    } else if let Some(path) = name.strip_prefix("usb-path:") {
        let path = path.to_string();
        ("by-path", Box::new(move |link| by_path_matches(link, &path)))
    } else {
        return Ok(None);
    };
    let dir = root.dev.join("serial").join(folder);
    let all = links(&dir);
    let mut found: Vec<(String, PathBuf)> = Vec::new();
    for (link, path) in &all {
        if matches(link) {
            let port = target(path);
            // udev makes `usb-` and `usbv2-` links to one port: count it once.
            if !found.iter().any(|(_, seen)| *seen == port) {
                found.push((link.clone(), port));
            }
        }
    }
    match found.len() {
        1 => Ok(found.pop().map(|(_, port)| port)),
        0 => Err(NameError::NoMatch {
            name: name.to_string(),
            folder: dir.display().to_string(),
            candidates: all.iter().map(|(link, path)| format!("{link} -> {}", target(path).display())).collect(),
        }),
        _ => Err(NameError::Ambiguous {
            name: name.to_string(),
            matches: found.iter().map(|(link, port)| format!("{link} -> {}", port.display())).collect(),
        }),
    }
}

/// One USB serial port, as `flashline ports` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortInfo {
    /// The device path, e.g. `/dev/ttyUSB0`.
    pub port: String,
    /// USB vendor and product ids, four hex digits.
    pub vid: Option<String>,
    pub pid: Option<String>,
    pub manufacturer: Option<String>,
    pub product: Option<String>,
    pub serial_number: Option<String>,
    /// The USB interface number (several ports on one adapter).
    pub interface: Option<u8>,
    /// The `/dev/serial/by-id` and `/dev/serial/by-path` link names.
    pub by_id: Vec<String>,
    pub by_path: Vec<String>,
    /// The stable name to use for it, when it has a serial number or a path.
    pub stable_name: Option<String>,
}

fn attribute(dir: &Path, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(name)).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// The USB serial ports under `root`: each tty in `sys/class/tty` whose
/// device sits below a USB device (a folder with `idVendor`), sorted by path.
pub fn list_ports(root: &DevRoot) -> Vec<PortInfo> {
    let by_id = links(&root.dev.join("serial/by-id"));
    let by_path = links(&root.dev.join("serial/by-path"));
    let mut ports = Vec::new();
    for (tty, class_dir) in links(&root.sys.join("class/tty")) {
        let Ok(device) = std::fs::canonicalize(class_dir.join("device")) else { continue };
        let mut usb = None;
        let mut interface = None;
        // Up from the tty's device: the interface, then the USB device (a few levels).
        for dir in device.ancestors().take(6) {
            if !dir.starts_with(&root.sys) {
                break;
            }
            if interface.is_none() {
                interface = attribute(dir, "bInterfaceNumber").and_then(|n| u8::from_str_radix(&n, 16).ok());
            }
            if dir.join("idVendor").is_file() {
                usb = Some(dir.to_path_buf());
                break;
            }
        }
        let Some(usb) = usb else { continue };
        let node = root.dev.join(&tty);
        let node_target = std::fs::canonicalize(&node).unwrap_or_else(|_| node.clone());
        let linked = |links: &[(String, PathBuf)]| -> Vec<String> {
            links.iter().filter(|(_, path)| target(path) == node_target).map(|(name, _)| name.clone()).collect()
        };
        let serial_number = attribute(&usb, "serial");
        let by_path_names = linked(&by_path);
        let stable_name = match (&serial_number, interface) {
            (Some(serial), Some(number)) if number > 0 => Some(format!("usb-serial:{serial}:{number}")),
            (Some(serial), _) => Some(format!("usb-serial:{serial}")),
            (None, _) => by_path_names.first().map(|name| format!("usb-path:{name}")),
        };
        ports.push(PortInfo {
            port: node.display().to_string(),
            vid: attribute(&usb, "idVendor"),
            pid: attribute(&usb, "idProduct"),
            manufacturer: attribute(&usb, "manufacturer"),
            product: attribute(&usb, "product"),
            serial_number,
            interface,
            by_id: linked(&by_id),
            by_path: by_path_names,
            stable_name,
        });
    }
    ports.sort_by(|a, b| a.port.cmp(&b.port));
    ports
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A fake bench: two FTDI adapters (one with two interfaces) and a CP2102.
    pub(crate) fn fake_tree() -> (tempfile::TempDir, DevRoot) {
        let dir = tempfile::tempdir().unwrap();
        let root = DevRoot { dev: dir.path().join("dev"), sys: dir.path().join("sys") };
        std::fs::create_dir_all(root.dev.join("serial/by-id")).unwrap();
        std::fs::create_dir_all(root.dev.join("serial/by-path")).unwrap();
        std::fs::create_dir_all(root.sys.join("class/tty")).unwrap();
        let ports = [
            ("ttyUSB0", "1-2", "1-2:1.0", "00", "0403", "6001", "FTDI", "FT232R USB UART", Some("A50285BI")),
            ("ttyUSB1", "1-3", "1-3:1.0", "00", "0403", "6010", "FTDI", "Dual RS232", Some("FT4XJ7")),
            ("ttyUSB2", "1-3", "1-3:1.1", "01", "0403", "6010", "FTDI", "Dual RS232", Some("FT4XJ7")),
            ("ttyUSB3", "1-4", "1-4:1.0", "00", "10c4", "ea60", "Silicon Labs", "CP2102", None),
        ];
        for (tty, usb, interface, number, vid, pid, maker, product, serial) in ports {
            let usb_dir = root.sys.join("devices/pci0000:00/usb1").join(usb);
            let tty_dir = usb_dir.join(interface).join(tty);
            std::fs::create_dir_all(&tty_dir).unwrap();
            for (name, value) in [("idVendor", vid), ("idProduct", pid), ("manufacturer", maker), ("product", product)]
            {
                std::fs::write(usb_dir.join(name), format!("{value}\n")).unwrap();
            }
            if let Some(serial) = serial {
                std::fs::write(usb_dir.join("serial"), format!("{serial}\n")).unwrap();
            }
            std::fs::write(usb_dir.join(interface).join("bInterfaceNumber"), format!("{number}\n")).unwrap();
            let class = root.sys.join("class/tty").join(tty);
            std::fs::create_dir_all(&class).unwrap();
            symlink(&tty_dir, class.join("device")).unwrap();
            std::fs::write(root.dev.join(tty), "").unwrap();
            let link_name =
                format!("usb-{maker}_{product}_{}-if{number}-port0", serial.unwrap_or("0001")).replace(' ', "_");
            symlink(format!("../../{tty}"), root.dev.join("serial/by-id").join(link_name)).unwrap();
            let path = format!("pci-0000:00:14.0-usb-0:{}:1.{}-port0", &usb[2..], number.trim_start_matches('0'));
            let path = path.replace(":1.-", ":1.0-");
            symlink(format!("../../{tty}"), root.dev.join("serial/by-path").join(&path)).unwrap();
            symlink(format!("../../{tty}"), root.dev.join("serial/by-path").join(path.replace("-usb-", "-usbv2-")))
                .unwrap();
        }
        // A virtual tty: no device link, not listed.
        std::fs::create_dir_all(root.sys.join("class/tty/tty0")).unwrap();
        (dir, root)
    }

    fn resolved(name: &str, root: &DevRoot) -> Result<Option<String>, NameError> {
        resolve(name, root).map(|p| p.map(|p| p.file_name().unwrap().to_string_lossy().into_owned()))
    }

    #[test]
    fn serial_numbers_and_interfaces_resolve_through_by_id() {
        let (_dir, root) = fake_tree();
        assert_eq!(resolved("usb-serial:A50285BI", &root).unwrap().as_deref(), Some("ttyUSB0"));
        assert_eq!(resolved("usb-serial:FT4XJ7:1", &root).unwrap().as_deref(), Some("ttyUSB2"));
        assert_eq!(resolved("usb-serial:FT4XJ7:if00", &root).unwrap().as_deref(), Some("ttyUSB1"));
        assert_eq!(resolved("/dev/ttyUSB0", &root).unwrap(), None);
        let ambiguous = resolve("usb-serial:FT4XJ7", &root).unwrap_err();
        assert!(matches!(&ambiguous, NameError::Ambiguous { matches, .. } if matches.len() == 2), "{ambiguous}");
        assert_eq!(ambiguous.class(), FailureClass::Input);
        let text = ambiguous.to_string();
        assert!(text.starts_with("`usb-serial:FT4XJ7` matches 2 ports:\n  usb-FTDI_Dual_RS232_FT4XJ7-if00-port0 -> "));
        let none = resolve("usb-serial:NOPE", &root).unwrap_err();
        let text = none.to_string();
        assert!(text.contains("matches no port in ") && text.contains("; the ports there are\n  usb-"), "{text}");
        assert_eq!(text.matches("\n  ").count(), 4, "{text}");
        // A serial number's suffix alone is not that serial number.
        assert!(resolve("usb-serial:285BI", &root).is_err());
    }

    #[test]
    fn usb_paths_resolve_through_by_path_once_per_port() {
        let (_dir, root) = fake_tree();
        assert_eq!(resolved("usb-path:0:4:1.0", &root).unwrap().as_deref(), Some("ttyUSB3"));
        assert_eq!(resolved("usb-path:pci-0000:00:14.0-usb-0:2:1.0-port0", &root).unwrap().as_deref(), Some("ttyUSB0"));
        assert_eq!(resolved("usb-path:usb-0:3:1.1-port0", &root).unwrap().as_deref(), Some("ttyUSB2"));
        assert!(matches!(resolve("usb-path:0:9:1.0", &root), Err(NameError::NoMatch { .. })));
        let empty = DevRoot { dev: root.dev.join("nothing"), sys: root.sys.clone() };
        assert!(resolve("usb-path:0:4:1.0", &empty).unwrap_err().to_string().ends_with("; there are none"));
    }

    #[test]
    fn ports_are_listed_with_their_usb_identity() {
        let (_dir, root) = fake_tree();
        let ports = list_ports(&root);
        assert_eq!(ports.len(), 4, "{ports:#?}");
        let first = &ports[0];
        assert!(first.port.ends_with("/ttyUSB0"));
        assert_eq!((first.vid.as_deref(), first.pid.as_deref()), (Some("0403"), Some("6001")));
        assert_eq!(first.product.as_deref(), Some("FT232R USB UART"));
        assert_eq!(first.serial_number.as_deref(), Some("A50285BI"));
        assert_eq!(first.by_id, ["usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0"]);
        assert_eq!(first.by_path, ["pci-0000:00:14.0-usb-0:2:1.0-port0", "pci-0000:00:14.0-usbv2-0:2:1.0-port0"]);
        assert_eq!(first.stable_name.as_deref(), Some("usb-serial:A50285BI"));
        assert_eq!(ports[2].interface, Some(1));
        assert_eq!(ports[2].stable_name.as_deref(), Some("usb-serial:FT4XJ7:1"));
        assert_eq!(ports[3].serial_number, None);
        assert_eq!(ports[3].stable_name.as_deref(), Some("usb-path:pci-0000:00:14.0-usb-0:4:1.0-port0"));
    }
}
