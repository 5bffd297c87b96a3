//! `flashline sim netos --link PATH`: a simulated NET+OS device's console on
//! a PTY, its device end symlinked at PATH, for `flashline serial ...` and
//! for people trying flashline without hardware. With `--addp ADDRESS` it
//! also answers ADDP on the network (`sim::addp`).

use std::path::PathBuf;

use clap::Args;

use super::{CommandResult, Context, Outcome};
use crate::profile::HumanDuration;
use crate::sim;
use crate::sim::addp::{AddpConfig, DeviceLink};
use crate::sim::netos::{AfterSave, BootScenario, Firmware, LineEnd, NetosConfig, NetosDevice, NvMemory, Refusal};
use crate::sync::lock;

#[derive(Debug, Args)]
pub struct NetosArgs {
    /// Create this symlink to the device's serial port (a PTY).
    #[arg(long, value_name = "PATH")]
    link: PathBuf,
    /// How long the `Press any key` window really lasts.
    #[arg(long, default_value = "5s")]
    key_window: HumanDuration,
    /// Boot into serial recovery (`Starting serial recovery...` and a stream of `C`).
    #[arg(long)]
    recovery: bool,
    /// Interval of the `C` stream in recovery.
    #[arg(long, default_value = "1s")]
    c_interval: HumanDuration,
    /// The NET+OS release: 6 (root password `Netsilicon`), 7.0 (the
    /// Programmer's Guide wording) or 7.4 (the later wording).
    #[arg(long, default_value = "7.4", value_name = "6|7.0|7.4")]
    firmware: Firmware,
    /// What the console does after saving: ask to accept again, reset, or continue booting.
    #[arg(long, default_value = "ask", value_name = "ask|reset|continue")]
    after_save: AfterSave,
    /// Which typed byte ends a line: CR or LF (a CR LF pair is one ending), CR only, or LF only.
    #[arg(long, default_value = "any", value_name = "any|cr|lf")]
    line_end: LineEnd,
    /// How a refused answer is worded: `Invalid subnet mask, please try
    /// again.` or the pSOSystem ancestor's `That is not a valid subnet mask`.
    #[arg(long, default_value = "invalid", value_name = "invalid|psos")]
    refusal: Refusal,
    /// The root password the dialog asks for (default: the firmware's factory password).
    #[arg(long, env = "FLASHLINE_SIM_ROOT_PASSWORD", hide_env_values = true)]
    root_password: Option<String>,
    /// Do not ask for the root password.
    #[arg(long)]
    no_root_password: bool,
    /// NV memory file (JSON): read at power-up when it exists, written on every save.
    #[arg(long, value_name = "FILE")]
    nv: Option<PathBuf>,
    /// Restart this long after a boot nobody interrupted, as a test rig that
    /// power-cycles the device would (also repeats the recovery banner).
    #[arg(long)]
    cycle: Option<HumanDuration>,
    /// Wait before the first boot.
    #[arg(long, default_value = "0s")]
    power_on_delay: HumanDuration,
    /// Stop after this long (for scripts and tests).
    #[arg(long)]
    exit_after: Option<HumanDuration>,
    /// A field failure the console shows: normal, app-without-ftp,
    /// ftp-not-started, backup-image or reset-after-download.
    #[arg(long, default_value = "normal", value_name = "NAME")]
    boot_scenario: BootScenario,
    /// Answer ADDP on this address while the application runs, as NET+OS
    /// 6.2 and later do (cookie DVKT, the NetSilicon GUID; the password is
    /// the root password). Multicast too, unless it is a loopback address.
    #[arg(long, value_name = "ADDRESS")]
    addp: Option<std::net::Ipv4Addr>,
    /// UDP port of the ADDP server (2362; tests on loopback pick another).
    #[arg(long, default_value_t = crate::addp::PORT, requires = "addp")]
    addp_port: u16,
    /// The device owns its address on this interface (inside a network
    /// namespace): each boot moves it to the NV static address, so ping
    /// answers there after an ADDP set-ip and reboot.
    #[arg(long, value_name = "IF", requires = "addp")]
    addp_interface: Option<String>,
    /// Ignore ADDP discoveries without the ADDPv2 options (VERSION, GUID):
    /// whether NET+OS insists on them is not confirmed.
    #[arg(long, requires = "addp")]
    addp_require_options: bool,
}

pub fn run(args: NetosArgs, context: &Context) -> CommandResult {
    let fail = |message: String, outcome: Outcome| context.fail(message, outcome);
    let mut nv = NvMemory::default();
    if let Some(path) = args.nv.as_ref().filter(|p| p.exists()) {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) => {
                return Err(fail(format!("cannot read NV memory {}: {error}", path.display()), Outcome::Environment));
            }
        };
        match serde_json::from_str(&text) {
            Ok(saved) => nv = saved,
            Err(error) => {
                return Err(fail(format!("NV memory {} is not valid: {error}", path.display()), Outcome::BadInput));
            }
        }
    }
    let addp = args.addp.map(|address| AddpConfig {
        address,
        port: args.addp_port,
        multicast: !address.is_loopback(),
        own_interface: args.addp_interface.clone(),
        password: (!args.no_root_password)
            .then(|| args.root_password.clone().unwrap_or_else(|| args.firmware.factory_password().to_string())),
        nv_file: args.nv.clone(),
        require_v2_options: args.addp_require_options,
        ..AddpConfig::default()
    });
    let config = NetosConfig {
        nv,
        key_window: args.key_window.0,
        recovery: args.recovery,
        c_interval: args.c_interval.0,
        root_password: (!args.no_root_password)
            .then(|| args.root_password.unwrap_or_else(|| args.firmware.factory_password().to_string())),
        firmware: args.firmware,
        after_save: args.after_save,
        line_end: args.line_end,
        refusal: args.refusal,
        nv_file: args.nv.clone(),
        cycle: args.cycle.map(|c| c.0),
        power_on_delay: args.power_on_delay.0,
        boot_scenario: args.boot_scenario,
        ..NetosConfig::default()
    };
    let runtime = context.runtime()?;
    Ok(runtime.block_on(async {
        let (controller, device) = match tokio_serial::SerialStream::pair() {
            Ok(pair) => pair,
            Err(error) => return fail(format!("cannot open a PTY pair: {error}"), Outcome::Environment),
        };
        let Some(device_path) = tokio_serial::SerialPort::name(&device) else {
            return fail("the PTY has no name".into(), Outcome::Environment);
        };
        if std::fs::symlink_metadata(&args.link).is_ok_and(|m| m.file_type().is_symlink()) {
            let _ = std::fs::remove_file(&args.link);
        }
        if let Err(error) = std::os::unix::fs::symlink(&device_path, &args.link) {
            return fail(format!("cannot create the link {}: {error}", args.link.display()), Outcome::Environment);
        }
        println!("link {} -> {device_path}", args.link.display());
        let simulator = NetosDevice::new(config);
        let state = simulator.state();
        let responder = addp.map(|config| {
            let link =
                DeviceLink { state: simulator.state(), network: simulator.network(), restart: simulator.restart() };
            sim::addp::serve(config, link)
        });
        let run = async {
            let console = simulator.run(controller);
            match responder {
                // The responder returns only on an error (or with the device).
                Some(responder) => tokio::select! {
                    result = console => result.map_err(|e| e.to_string()),
                    result = responder => match result {
                        Ok(()) => Ok(()),
                        Err(error) => Err(error.to_string()),
                    },
                },
                None => console.await.map_err(|e| e.to_string()),
            }
        };
        let result = match args.exit_after {
            Some(limit) => tokio::time::timeout(limit.0, run).await.unwrap_or(Ok(())),
            None => run.await,
        };
        // The device end stays open until here: without it the PTY hangs up.
        drop(device);
        let _ = std::fs::remove_file(&args.link);
        let state = lock(&state).clone();
        match serde_json::to_string(&state) {
            Ok(text) => println!("{text}"),
            Err(error) => context.warn(format!("cannot print the device state: {error}")),
        }
        match result {
            Ok(()) => Outcome::Success,
            Err(error) => fail(error, Outcome::DeviceFailure),
        }
    }))
}
