//! `flashline ftp put`: verified uploads with a progress bar per file on a
//! terminal, plain lines otherwise, or a JSON report.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::progress_view::TaskView;
use super::{CommandResult, Context, Outcome};
use crate::ftp::{self, Credential, UploadFile, UploadSpec};
use crate::ftp::{FtpMode, FtpVerify};
use crate::net::{ProbeMethod, resolve_ipv4};
use crate::profile::HumanDuration;

#[derive(Debug, Subcommand)]
pub enum FtpCommand {
    /// Upload files (rom.bin, image.bin...) and verify each one.
    ///
    /// Without --user, the NET+OS factory candidates are tried in order:
    /// root/Netsilicon (6.x firmware), then root/password (7.x).
    Put(PutArgs),
}

#[derive(Debug, Args)]
pub struct PutArgs {
    /// Files to upload, in order.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Device address (IPv4 or a name).
    #[arg(long)]
    host: String,
    /// The device's FTP port.
    #[arg(long, default_value_t = 21)]
    port: u16,
    /// User name; its password comes from --password-env.
    #[arg(long, requires = "password_env")]
    user: Option<String>,
    /// Environment variable holding the password (never put a password on the command line).
    #[arg(long, value_name = "VAR", requires = "user")]
    password_env: Option<String>,
    /// Name on the server (only with one FILE); defaults to the file's name.
    #[arg(long, value_name = "NAME")]
    remote: Option<String>,
    /// `size` (SIZE equals the local size), `readback` (download and compare SHA-256) or `none`.
    #[arg(long, value_enum, default_value_t = FtpVerify::Size)]
    verify: FtpVerify,
    /// Data connection: auto (EPSV, then PASV, then PORT when the server refuses passive mode), passive (PASV), epsv (EPSV) or active (PORT).
    #[arg(long, value_enum, default_value_t = FtpMode::Auto)]
    mode: FtpMode,
    /// Explicit TLS (FTPS: AUTH TLS, data connections protected too).
    #[arg(long)]
    tls: bool,
    /// PEM file of the CA (or the device's own certificate) to trust; default: the system's CAs.
    #[arg(long, value_name = "PEM", requires = "tls")]
    tls_ca: Option<PathBuf>,
    /// Name the device's certificate must carry; default: its address.
    #[arg(long, value_name = "NAME", requires = "tls")]
    tls_name: Option<String>,
    /// Send all files in one session (NET+OS needs one session per file, the default).
    #[arg(long)]
    one_session: bool,
    /// After each session, wait for the device to go down and come back.
    #[arg(long)]
    wait_for_restart: bool,
    /// How long the device may take to go down and come back (with --wait-for-restart).
    #[arg(long, default_value = "90s", value_name = "DURATION")]
    restart_timeout: HumanDuration,
    /// Extra attempts after a dropped connection.
    #[arg(long, default_value_t = 3)]
    retries: u32,
    /// How long to wait for the control connection and for each data connection.
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    connect_timeout: HumanDuration,
    /// How long to wait for the greeting, for each reply, and for a data connection that stops moving.
    #[arg(long, default_value = "15s", value_name = "DURATION")]
    reply_timeout: HumanDuration,
    /// Report each file's SHA-256, computed while sending (always done for --verify readback).
    #[arg(long)]
    hash: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(command: FtpCommand, context: &Context) -> CommandResult {
    match command {
        FtpCommand::Put(args) => put(args, context),
    }
}

fn put(args: PutArgs, context: &Context) -> CommandResult {
    let context = &context.for_json(args.json);
    if args.remote.is_some() && args.files.len() > 1 {
        return Err(
            context.fail(format!("--remote names one file; {} were given", args.files.len()), Outcome::BadInput)
        );
    }
    let credentials = match (&args.user, &args.password_env) {
        (Some(user), Some(var)) => match std::env::var(var) {
            Ok(password) => vec![Credential { user: user.clone(), password }],
            Err(_) => {
                return Err(context
                    .fail(format!("environment variable `{var}` (--password-env) is not set"), Outcome::BadInput));
            }
        },
        _ => crate::family::Family::default().factory_logins(),
    };
    let mut files = Vec::new();
    for path in &args.files {
        let remote = match (&args.remote, ftp::default_remote_name(path)) {
            (Some(remote), _) => remote.clone(),
            (None, Some(name)) => name,
            (None, None) => {
                return Err(context.fail(format!("`{}` is not a file name", path.display()), Outcome::BadInput));
            }
        };
        files.push(UploadFile { local: path.clone(), remote });
    }
    for (option, value) in [("--connect-timeout", &args.connect_timeout), ("--reply-timeout", &args.reply_timeout)] {
        if value.is_zero() {
            return Err(context.fail(format!("{option} must be above zero"), Outcome::BadInput));
        }
    }
    let runtime = context.runtime()?;
    let host = match runtime.block_on(resolve_ipv4(&args.host)) {
        Ok(host) => host,
        Err(error) => {
            return Err(context.fail(format!("{error}"), Outcome::BadInput));
        }
    };
    let spec = UploadSpec {
        host,
        port: args.port,
        credentials,
        mode: args.mode,
        verify: args.verify,
        files,
        session_per_file: !args.one_session,
        wait_for_restart: args.wait_for_restart,
        restart_timeout: args.restart_timeout.0,
        retries: args.retries,
        connect_timeout: args.connect_timeout.0,
        reply_timeout: args.reply_timeout.0,
        probe_method: ProbeMethod::Auto,
        hash: args.hash,
        tls: args.tls.then(|| ftp::TlsSettings { ca_file: args.tls_ca.clone(), name: args.tls_name.clone() }),
    };
    let view = TaskView::new(context.quiet || args.json);
    let result = runtime.block_on(ftp::upload(&spec, &view));
    view.finish();
    match result {
        Ok(report) => {
            if args.json {
                context.print_json(&report);
            } else {
                for file in &report.files {
                    let hash = file.sha256.as_deref().map(|h| format!("  sha256 {}", &h[..16])).unwrap_or_default();
                    println!(
                        "{}  {} bytes{hash}  via {}  {}: {}  ({} attempt{}, {:.2} s)",
                        file.remote,
                        file.bytes,
                        file.mode.command(),
                        context.out.good("verified"),
                        file.verified,
                        file.attempts,
                        if file.attempts == 1 { "" } else { "s" },
                        file.seconds
                    );
                    for given_up in &file.fallback {
                        println!("  given up: {given_up}");
                    }
                    if let Some(named) = &file.pasv_address_ignored {
                        println!("  ignored: the PASV reply's address {named} (the data went to {})", report.host);
                    }
                }
            }
            Ok(Outcome::Success)
        }
        Err(error) => Err(context.fail_with_finding(&error, error.finding().as_ref())),
    }
}
