//! `flashline ftp put`: verified uploads with a progress bar per file on a
//! terminal, plain lines otherwise, or a JSON report.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use super::{Context, Outcome};
use crate::ftp::{self, Credential, FtpError, FtpEvent, UploadFile, UploadSpec};
use crate::net::{ProbeMethod, resolve_ipv4};
use crate::profile::{FtpMode, FtpVerify, HumanDuration};

#[derive(Debug, Subcommand)]
pub enum FtpCommand {
    /// Upload files (rom.bin, image.bin...) and verify each one.
    ///
    /// Without --user, the NET+OS factory candidates are tried in order:
    /// root/Netsilicon (6.x firmware), then root/password (7.5).
    Put(PutArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum VerifyArg {
    Size,
    Readback,
    None,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ModeArg {
    Passive,
    Epsv,
    Active,
}

#[derive(Debug, Args)]
pub struct PutArgs {
    /// Files to upload, in order.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Device address (IPv4 or a name).
    #[arg(long)]
    host: String,
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
    #[arg(long, value_enum, default_value_t = VerifyArg::Size)]
    verify: VerifyArg,
    /// Data connection: passive (PASV), epsv (EPSV) or active (PORT).
    #[arg(long, value_enum, default_value_t = ModeArg::Passive)]
    mode: ModeArg,
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
    #[arg(long, default_value = "90s", value_name = "DURATION")]
    restart_timeout: HumanDuration,
    /// Extra attempts after a dropped connection.
    #[arg(long, default_value_t = 3)]
    retries: u32,
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    connect_timeout: HumanDuration,
    /// Report each file's SHA-256, computed while sending (always done for --verify readback).
    #[arg(long)]
    hash: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(command: FtpCommand, context: &Context) -> Outcome {
    match command {
        FtpCommand::Put(args) => put(args, context),
    }
}

/// NET+OS factory credentials: public, printed on the vendor's pages.
fn factory_candidates() -> Vec<Credential> {
    vec![
        Credential { user: "root".into(), password: "Netsilicon".into() },
        Credential { user: "root".into(), password: "password".into() },
    ]
}

fn put(args: PutArgs, context: &Context) -> Outcome {
    if args.remote.is_some() && args.files.len() > 1 {
        eprintln!("{}: --remote names one file; {} were given", context.err.error("error"), args.files.len());
        return Outcome::BadInput;
    }
    let credentials = match (&args.user, &args.password_env) {
        (Some(user), Some(var)) => match std::env::var(var) {
            Ok(password) => vec![Credential { user: user.clone(), password }],
            Err(_) => {
                eprintln!("{}: environment variable `{var}` (--password-env) is not set", context.err.error("error"));
                return Outcome::BadInput;
            }
        },
        _ => factory_candidates(),
    };
    let mut files = Vec::new();
    for path in &args.files {
        let remote = match (&args.remote, path.file_name()) {
            (Some(remote), _) => remote.clone(),
            (None, Some(name)) => name.to_string_lossy().into_owned(),
            (None, None) => {
                eprintln!("{}: `{}` is not a file name", context.err.error("error"), path.display());
                return Outcome::BadInput;
            }
        };
        files.push(UploadFile { local: path.clone(), remote });
    }
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a tokio runtime");
    let host = match runtime.block_on(resolve_ipv4(&args.host)) {
        Ok(host) => host,
        Err(error) => {
            eprintln!("{}: {error}", context.err.error("error"));
            return Outcome::BadInput;
        }
    };
    let spec = UploadSpec {
        host,
        port: args.port,
        credentials,
        mode: match args.mode {
            ModeArg::Passive => FtpMode::Passive,
            ModeArg::Epsv => FtpMode::Epsv,
            ModeArg::Active => FtpMode::Active,
        },
        verify: match args.verify {
            VerifyArg::Size => FtpVerify::Size,
            VerifyArg::Readback => FtpVerify::Readback,
            VerifyArg::None => FtpVerify::None,
        },
        files,
        session_per_file: !args.one_session,
        wait_for_restart: args.wait_for_restart,
        restart_timeout: args.restart_timeout.0,
        retries: args.retries,
        connect_timeout: args.connect_timeout.0,
        probe_method: ProbeMethod::Auto,
        hash: args.hash,
        tls: args.tls.then(|| ftp::TlsSettings { ca_file: args.tls_ca.clone(), name: args.tls_name.clone() }),
    };
    let bars = !args.json && !context.quiet && std::io::stderr().is_terminal();
    let mut display = Display { bar: None, bars, quiet: context.quiet || args.json };
    let result = runtime.block_on(ftp::upload(&spec, &mut |event| display.show(event)));
    if let Some(bar) = display.bar.take() {
        bar.finish_and_clear();
    }
    match result {
        Ok(report) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report).expect("report is JSON"));
            } else {
                for file in &report.files {
                    let hash = file.sha256.as_deref().map(|h| format!("  sha256 {}", &h[..16])).unwrap_or_default();
                    println!(
                        "{}  {} bytes{hash}  {}: {}  ({} attempt{}, {:.2} s)",
                        file.remote,
                        file.bytes,
                        context.out.good("verified"),
                        file.verified,
                        file.attempts,
                        if file.attempts == 1 { "" } else { "s" },
                        file.seconds
                    );
                }
            }
            Outcome::Success
        }
        Err(error) => report_error(&error, args.json, context),
    }
}

fn report_error(error: &FtpError, json: bool, context: &Context) -> Outcome {
    let class = error.class();
    if json {
        let value = serde_json::json!({
            "ok": false,
            "class": class,
            "error": error.to_string(),
            "finding": error.finding(),
        });
        println!("{}", serde_json::to_string_pretty(&value).expect("JSON"));
    } else {
        eprintln!("{}: {error}", context.err.error("error"));
        if let Some(finding) = error.finding() {
            eprintln!("  finding: {}", finding.code.as_str());
            for advice in &finding.advice {
                eprintln!("  - {advice}");
            }
        }
    }
    Outcome::from(class)
}

/// Turns upload events into a progress bar (terminal) or plain lines.
struct Display {
    bar: Option<ProgressBar>,
    bars: bool,
    quiet: bool,
}

impl Display {
    fn show(&mut self, event: FtpEvent) {
        match event {
            FtpEvent::FileStarted { remote, total } if self.bars => {
                let bar = ProgressBar::new(total);
                bar.set_style(
                    ProgressStyle::with_template(
                        "{msg:12} {bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
                    )
                    .expect("a valid template"),
                );
                bar.set_message(remote);
                bar.enable_steady_tick(Duration::from_millis(200));
                self.bar = Some(bar);
            }
            FtpEvent::Bytes { sent, .. } => {
                if let Some(bar) = &self.bar {
                    bar.set_position(sent);
                }
            }
            FtpEvent::FileDone { .. } => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
            }
            other if !self.quiet => {
                let line = match other {
                    FtpEvent::Connected { host, port, banner } => format!("connected to {host}:{port}: {banner}"),
                    FtpEvent::LoggedIn { user } => format!("logged in as {user}"),
                    FtpEvent::FileStarted { remote, total } => format!("sending {remote} ({total} bytes)"),
                    FtpEvent::Retrying { remote, attempt, reason, .. } => {
                        format!("{remote}: attempt {attempt} after: {reason}")
                    }
                    FtpEvent::Verified { remote, how } => format!("{remote}: verified ({how})"),
                    FtpEvent::WaitingForRestart { host } => format!("waiting for {host} to restart"),
                    FtpEvent::Restarted { host, after } => format!("{host} is back after {:.1} s", after.as_secs_f64()),
                    FtpEvent::Bytes { .. } | FtpEvent::FileDone { .. } => return,
                };
                match &self.bar {
                    Some(bar) => bar.println(line),
                    None => eprintln!("{line}"),
                }
            }
            _ => {}
        }
    }
}
