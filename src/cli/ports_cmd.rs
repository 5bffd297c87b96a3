//! `flashline ports [--json]`: the USB serial ports of this machine with
//! their vendor and product ids, names, serial numbers, udev links and the
//! stable name to give `--port` (`usb-serial:` or `usb-path:`), as espflash's
//! `list-ports` does. Reads `/dev` and `/sys` (or `FLASHLINE_DEV_ROOT` and
//! `FLASHLINE_SYS_ROOT`); opens no port.

use clap::Args;

use super::{CommandResult, Context, Outcome};
use crate::serial::names::{self, DevRoot, PortInfo};

#[derive(Debug, Args)]
pub struct PortsArgs {
    /// Print the list as JSON (an array, one object per port).
    #[arg(long)]
    json: bool,
}

pub fn run(args: PortsArgs, context: &Context) -> CommandResult {
    let context = &context.for_json(args.json);
    let root = DevRoot::from_env();
    let ports = names::list_ports(&root);
    if args.json {
        context.print_json(&ports);
        return Ok(Outcome::Success);
    }
    if ports.is_empty() {
        if !context.quiet {
            println!("no USB serial ports under {}", root.sys.join("class/tty").display());
        }
        return Ok(Outcome::Success);
    }
    for port in &ports {
        println!("{}", line(port));
        for link in &port.by_path {
            println!("    by-path: {link}");
        }
        for link in &port.by_id {
            println!("    by-id:   {link}");
        }
    }
    Ok(Outcome::Success)
}

fn line(port: &PortInfo) -> String {
    let or_dash = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".into());
    let mut text = format!(
        "{}  {}:{}  {} {}",
        port.port,
        or_dash(&port.vid),
        or_dash(&port.pid),
        or_dash(&port.manufacturer),
        or_dash(&port.product)
    );
    if let Some(serial) = &port.serial_number {
        text.push_str(&format!("  serial {serial}"));
    }
    if let Some(interface) = port.interface {
        text.push_str(&format!("  interface {interface}"));
    }
    if let Some(name) = &port.stable_name {
        text.push_str(&format!("  --port {name}"));
    }
    text
}
