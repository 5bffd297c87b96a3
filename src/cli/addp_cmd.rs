//! `flashline discover` (find devices with ADDP) and `flashline addp
//! set-ip | dhcp | reboot` (change one device by its MAC). Passwords come
//! from an environment variable or a file, never from the command line, and
//! are never printed.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use super::{CommandResult, Context, Outcome};
use crate::addp::client::{self, DiscoverOptions, OperateOptions};
use crate::addp::frame::{BROADCAST_MAC, Cookie, Password, Request};
use crate::mac::Mac;
use crate::profile::HumanDuration;

/// The environment variable the password is read from by default.
const PASSWORD_ENV: &str = "FLASHLINE_ADDP_PASSWORD";

#[derive(Debug, Args)]
pub struct DiscoverArgs {
    /// Ask on this interface only; default: every interface that is up and can multicast.
    #[arg(long, value_name = "IF")]
    interface: Option<String>,
    /// How long to collect replies.
    #[arg(long, default_value = "2s")]
    timeout: HumanDuration,
    /// Also ask this address directly, by unicast (repeatable).
    #[arg(long = "address", value_name = "ADDRESS")]
    addresses: Vec<Ipv4Addr>,
    /// Ask by unicast only (the --address list), no multicast.
    #[arg(long, requires = "addresses")]
    unicast_only: bool,
    /// Ask with this cookie only (repeatable): DVKT (NET+OS), DIGI (Digi firmware), DGDP (NET+OS before 6.0).
    #[arg(long = "cookie", value_name = "COOKIE")]
    cookies: Vec<Cookie>,
    /// The devices' UDP port.
    #[arg(long, default_value_t = crate::addp::PORT)]
    port: u16,
    /// Print the devices as JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
pub enum AddpCommand {
    /// Give a device a static address (takes effect at its next boot: `addp reboot`).
    SetIp(SetIpArgs),
    /// Switch a device's DHCP on or off (takes effect at its next boot).
    Dhcp(DhcpArgs),
    /// Restart a device (it answers first, then restarts).
    Reboot(RebootArgs),
}

#[derive(Debug, Args)]
pub struct SetIpArgs {
    /// The device's MAC address (aa:bb:cc:dd:ee:ff).
    mac: Mac,
    /// The new IPv4 address.
    #[arg(long)]
    ip: Ipv4Addr,
    /// The new subnet mask.
    #[arg(long)]
    mask: Ipv4Addr,
    /// The new gateway (0.0.0.0: none).
    #[arg(long, default_value = "0.0.0.0")]
    gateway: Ipv4Addr,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Switch {
    On,
    Off,
}

#[derive(Debug, Args)]
pub struct DhcpArgs {
    /// The device's MAC address (aa:bb:cc:dd:ee:ff).
    mac: Mac,
    /// Turn DHCP on or off.
    #[arg(value_enum)]
    switch: Switch,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct RebootArgs {
    /// The device's MAC address (aa:bb:cc:dd:ee:ff).
    mac: Mac,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, Args)]
struct CommonArgs {
    /// Read the device's password from this environment variable (NET+OS: its root password).
    #[arg(long, value_name = "VAR", default_value = PASSWORD_ENV)]
    password_env: String,
    /// Read the password from this file instead (its first line).
    #[arg(long, value_name = "FILE", conflicts_with = "password_env")]
    password_file: Option<PathBuf>,
    /// Send by unicast to the device's current address instead of multicast.
    #[arg(long, value_name = "ADDRESS")]
    address: Option<Ipv4Addr>,
    /// Multicast on this interface only.
    #[arg(long, value_name = "IF")]
    interface: Option<String>,
    /// Send with this cookie only (repeatable); default DVKT, DIGI and DGDP (a device answers its own).
    #[arg(long = "cookie", value_name = "COOKIE")]
    cookies: Vec<Cookie>,
    /// How long to wait for the answer, per attempt.
    #[arg(long, default_value = "2s")]
    wait: HumanDuration,
    /// Attempts after the first when nothing answers.
    #[arg(long, default_value_t = 2)]
    retries: u32,
    /// The devices' UDP port.
    #[arg(long, default_value_t = crate::addp::PORT)]
    port: u16,
}

pub fn discover(args: DiscoverArgs, context: &Context) -> CommandResult {
    let context = &context.for_json(args.json);
    let options = DiscoverOptions {
        interface: args.interface,
        unicast: args.addresses,
        multicast: !args.unicast_only,
        cookies: if args.cookies.is_empty() { Cookie::ALL.to_vec() } else { args.cookies },
        window: args.timeout.0,
        port: args.port,
        mac: BROADCAST_MAC,
    };
    let runtime = context.runtime()?;
    let found = match runtime.block_on(client::discover(&options)) {
        Ok(found) => found,
        Err(error) => return Err(context.fail_with(&error)),
    };
    if args.json {
        context.print_json(&found);
        return Ok(Outcome::Success);
    }
    if found.is_empty() {
        eprintln!("no device answered within {}", args.timeout);
        return Ok(Outcome::Success);
    }
    let text = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".into());
    let address = |value: Option<Ipv4Addr>| value.map_or_else(|| "-".into(), |a| a.to_string());
    let mut rows =
        vec![["MAC", "IP", "MASK", "GATEWAY", "DHCP", "NAME", "HARDWARE", "FIRMWARE", "COOKIE"].map(String::from)];
    for device in &found {
        let info = &device.device;
        rows.push([
            info.mac.map_or_else(|| "-".into(), |m| m.to_string()),
            address(info.ip),
            address(info.mask),
            address(info.gateway),
            info.dhcp.map_or("-", |on| if on { "on" } else { "off" }).into(),
            text(&info.name),
            text(&info.hardware),
            text(&info.firmware),
            device.cookies.iter().map(Cookie::to_string).collect::<Vec<_>>().join(","),
        ]);
    }
    let widths: Vec<usize> = (0..9).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    for row in &rows {
        let line: Vec<String> = row.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        println!("{}", line.join("  ").trim_end());
    }
    for device in found.iter().filter(|d| d.other_subnet || d.device.advisory == Some(1)) {
        let mac = device.device.mac.map_or_else(|| device.from.to_string(), |m| m.to_string());
        let ip = address(device.device.ip);
        let mask = address(device.device.mask);
        let station = match &device.interface {
            Some(interface) => {
                format!("{} ({}/{})", interface.name, interface.address, interface.mask)
            }
            None => "any interface of this station".into(),
        };
        println!(
            "{}: {mac} has {ip} / {mask}, not on the subnet of {station}: it cannot be reached by IP from here; give it an address with `flashline addp set-ip {mac} --ip A --mask M`, then `flashline addp reboot {mac}`",
            context.out.warning("advisory")
        );
    }
    Ok(Outcome::Success)
}

/// Makes the request once the password is read.
type BuildRequest = Box<dyn FnOnce(Mac, Password) -> Request>;

pub fn run(command: AddpCommand, context: &Context) -> CommandResult {
    let (mac, common, build): (Mac, CommonArgs, BuildRequest) = match command {
        AddpCommand::SetIp(args) => {
            let (ip, mask, gateway) = (args.ip, args.mask, args.gateway);
            (
                args.mac,
                args.common,
                Box::new(move |mac, password| Request::SetStatic { ip, mask, gateway, mac, password }),
            )
        }
        AddpCommand::Dhcp(args) => {
            let enable = matches!(args.switch, Switch::On);
            (args.mac, args.common, Box::new(move |mac, password| Request::Dhcp { enable, mac, password }))
        }
        AddpCommand::Reboot(args) => {
            (args.mac, args.common, Box::new(move |mac, password| Request::Reboot { mac, password }))
        }
    };
    let password = match read_password(&common) {
        Ok(password) => password,
        Err((message, outcome)) => return Err(context.fail(message, outcome)),
    };
    let request = build(mac, password);
    let options = OperateOptions {
        address: common.address,
        interface: common.interface,
        cookies: if common.cookies.is_empty() { Cookie::ALL.to_vec() } else { common.cookies },
        wait: common.wait.0,
        retries: common.retries,
        port: common.port,
    };
    let runtime = context.runtime()?;
    match runtime.block_on(client::operate(&request, &options)) {
        Ok(done) => {
            let said = done.reply.result_message().map(|m| format!(" (it said `{m}`)")).unwrap_or_default();
            let next = match request {
                Request::SetStatic { .. } | Request::Dhcp { .. } => {
                    format!("; it takes effect at the next boot: `flashline addp reboot {mac}`")
                }
                _ => "; it restarts now".into(),
            };
            println!(
                "{mac}: {} accepted by {} (cookie {}, attempt {}){said}{next}",
                crate::addp::frame::command::describe(request.command()).replace(" request", ""),
                done.from.ip(),
                done.reply.cookie,
                done.attempts
            );
            Ok(Outcome::Success)
        }
        Err(error) => Err(context.fail_with(&error)),
    }
}

/// The password from the file or the environment variable; never echoed.
fn read_password(common: &CommonArgs) -> Result<Password, (String, Outcome)> {
    if let Some(path) = &common.password_file {
        let bytes = crate::input_file::read(path, &crate::input_file::SECRET)
            .map_err(|e| (e.to_string(), Outcome::from(crate::failure::Classify::class(&e))))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| (format!("the password file {} is not UTF-8 text", path.display()), Outcome::BadInput))?;
        let line = text.lines().next().unwrap_or("");
        return Ok(Password(line.as_bytes().to_vec()));
    }
    match std::env::var(&common.password_env) {
        Ok(value) => Ok(Password(value.into_bytes())),
        Err(_) => Err((
            format!(
                "no password: set the environment variable {} (or name another with --password-env), or give --password-file",
                common.password_env
            ),
            Outcome::BadInput,
        )),
    }
}
