//! Stable port names and `flashline ports`, on fake `/dev` and `/sys` trees
//! built in a temp folder (FLASHLINE_DEV_ROOT, FLASHLINE_SYS_ROOT): the
//! list in JSON and as text, a name matching nothing or several ports
//! failing as bad input with the candidates, and a `usb-serial:` name
//! opening the NET+OS simulator's PTY through its by-id link.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use crate::util::child::{Bounded, FLASHLINE};

/// A fake bench: `ttyUSB0` (FTDI, serial A50285BI) and a dual-port adapter
/// (serial FT4XJ7, interfaces 0 and 1); each tty's by-id and by-path links
/// lead to `target(dev, tty)`.
struct FakeTree {
    dir: tempfile::TempDir,
}

impl FakeTree {
    /// Every link leads to the tty's node in the tree's own /dev.
    fn new_in_dev() -> FakeTree {
        FakeTree::new(|dev, tty| dev.join(tty))
    }

    fn new(target: impl Fn(&Path, &str) -> PathBuf) -> FakeTree {
        let dir = tempfile::tempdir().unwrap();
        let (dev, sys) = (dir.path().join("dev"), dir.path().join("sys"));
        for folder in [dev.join("serial/by-id"), dev.join("serial/by-path"), sys.join("class/tty")] {
            std::fs::create_dir_all(folder).unwrap();
        }
        let ports = [
            ("ttyUSB0", "1-2", "1-2:1.0", "00", "6001", "FT232R USB UART", "A50285BI"),
            ("ttyUSB1", "1-3", "1-3:1.0", "00", "6010", "Dual RS232", "FT4XJ7"),
            ("ttyUSB2", "1-3", "1-3:1.1", "01", "6010", "Dual RS232", "FT4XJ7"),
        ];
        for (tty, usb, interface, number, pid, product, serial) in ports {
            let usb_dir = sys.join("devices/pci0000:00/0000:00:14.0/usb1").join(usb);
            let tty_dir = usb_dir.join(interface).join(tty);
            std::fs::create_dir_all(&tty_dir).unwrap();
            let attributes = [("idVendor", "0403"), ("idProduct", pid), ("manufacturer", "FTDI"), ("product", product)];
            for (name, value) in attributes.into_iter().chain([("serial", serial)]) {
                std::fs::write(usb_dir.join(name), format!("{value}\n")).unwrap();
            }
            std::fs::write(usb_dir.join(interface).join("bInterfaceNumber"), format!("{number}\n")).unwrap();
            std::fs::create_dir_all(sys.join("class/tty").join(tty)).unwrap();
            symlink(&tty_dir, sys.join("class/tty").join(tty).join("device")).unwrap();
            let node = target(&dev, tty);
            if node.starts_with(&dev) {
                std::fs::write(&node, "").unwrap();
            }
            let id = format!("usb-FTDI_{}_{serial}-if{number}-port0", product.replace(' ', "_"));
            symlink(&node, dev.join("serial/by-id").join(id)).unwrap();
            let path = format!("pci-0000:00:14.0-usb-0:{}:1.{}-port0", &usb[2..], number.trim_start_matches('0'));
            symlink(&node, dev.join("serial/by-path").join(path.replace(":1.-", ":1.0-"))).unwrap();
        }
        FakeTree { dir }
    }

    fn dev(&self) -> PathBuf {
        self.dir.path().join("dev")
    }

    fn flashline(&self, args: &[&str]) -> std::process::Output {
        crate::util::flashline()
            .args(args)
            .env("FLASHLINE_DEV_ROOT", self.dev())
            .env("FLASHLINE_SYS_ROOT", self.dir.path().join("sys"))
            .output_within(FLASHLINE)
    }
}

#[test]
fn ports_lists_usb_serial_ports_with_their_identity() {
    let tree = FakeTree::new_in_dev();
    let output = tree.flashline(&["ports", "--json"]);
    let (stdout, stderr) = crate::util::text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let ports: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    let ports = ports.as_array().unwrap();
    assert_eq!(ports.len(), 3, "{stdout}");
    let first = &ports[0];
    assert_eq!(first["port"], tree.dev().join("ttyUSB0").display().to_string());
    assert_eq!((first["vid"].as_str(), first["pid"].as_str()), (Some("0403"), Some("6001")));
    assert_eq!(first["serial_number"], "A50285BI");
    assert_eq!(first["by_path"][0], "pci-0000:00:14.0-usb-0:2:1.0-port0");
    assert_eq!(first["stable_name"], "usb-serial:A50285BI");
    assert_eq!(ports[2]["stable_name"], "usb-serial:FT4XJ7:1");
    let output = tree.flashline(&["ports"]);
    let (stdout, _) = crate::util::text(&output);
    assert!(
        stdout.contains("ttyUSB2  0403:6010  FTDI Dual RS232  serial FT4XJ7  interface 1  --port usb-serial:FT4XJ7:1")
    );
    assert!(stdout.contains("    by-path: pci-0000:00:14.0-usb-0:3:1.1-port0"), "{stdout}");
}

#[test]
fn ports_a_name_matching_nothing_or_several_fails_as_bad_input_listing_them() {
    let tree = FakeTree::new_in_dev();
    let image = tree.dir.path().join("rom.bin");
    std::fs::write(&image, b"boot loader").unwrap();
    let image = image.to_str().unwrap();
    let output = tree.flashline(&["serial", "send", image, "--port", "usb-serial:NOSUCH"]);
    let (_, stderr) = crate::util::text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`usb-serial:NOSUCH` matches no port in "), "{stderr}");
    assert!(stderr.contains("usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0 -> "), "{stderr}");
    assert!(stderr.contains("help: `flashline ports` lists the ports"), "{stderr}");
    let output = tree.flashline(&["serial", "send", image, "--port", "usb-serial:FT4XJ7"]);
    let (_, stderr) = crate::util::text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`usb-serial:FT4XJ7` matches 2 ports:"), "{stderr}");
    assert!(stderr.contains("usb-FTDI_Dual_RS232_FT4XJ7-if01-port0 -> "), "{stderr}");
    let output = tree.flashline(&["serial", "send", image, "--port", "usb-path:0:9:1.0"]);
    assert_eq!(output.status.code(), Some(2), "{}", crate::util::text(&output).1);
}

/// The name is resolved where the port is opened: `usb-serial:A50285BI`
/// reaches the simulator whose PTY its by-id link leads to.
#[test]
fn ports_a_usb_serial_name_opens_the_port_its_link_leads_to() {
    let sim = crate::serial::start_simulator(&["--recovery", "--c-interval", "200ms", "--cycle", "3s"]);
    let pty = std::fs::canonicalize(&sim.link).unwrap();
    let tree = FakeTree::new(|_, tty| if tty == "ttyUSB0" { pty.clone() } else { PathBuf::from("/dev/null") });
    let image = tree.dir.path().join("image.bin");
    let data: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 256) as u8).collect();
    std::fs::write(&image, flashline::netos::boot_header::build(&data, 0x0100_0000)).unwrap();
    let output = tree.flashline(&[
        "serial",
        "send",
        image.to_str().unwrap(),
        "--port",
        "usb-serial:A50285BI",
        "--baud",
        "115200",
        "--wait-for",
        "Starting serial recovery",
        "--wait-timeout",
        "10s",
    ]);
    let (stdout, stderr) = crate::util::text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("sent 3044 bytes"), "{stdout}");
}
