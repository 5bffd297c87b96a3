//! The data connection of one transfer and the STOR that opens it: PORT
//! announced once per session (so that a refused PORT is named as such), REST
//! before a resumed STOR, and what a failure to open means: a mode to give up
//! (`auto` then tries the next, see [`super::data_mode`]), a refused file, or
//! a broken connection worth a retry. It neither sends the bytes
//! ([`super::send`]) nor keeps the modes' bookkeeping ([`DataModes`]).

use suppaftp::tokio::{AsyncRustlsStream, TransferStream};
use suppaftp::{FtpError as SuppaError, Status};

use super::data_mode::{DataModes, suppa_mode};
use super::session::{Session, reply_text};
use super::spec::UploadSpec;
use super::{FILE, FtpError, FtpMode};
use crate::progress::{Progress, ProgressEvent};

/// How one attempt at sending a file failed.
#[derive(Debug)]
pub(super) enum SendError {
    /// The server refused the file's own command (550 and kin to STOR).
    Refused {
        command: &'static str,
        reply: String,
    },
    /// The connection broke or timed out: worth a retry.
    Broken(String),
    /// A failure a retry would not mend (every data mode refused).
    Fatal(FtpError),
    Local(std::io::Error),
}

/// Opens the data connection and sends STOR, in the current data mode;
/// with `auto`, a refused or unreachable passive mode gives way to the next
/// (EPSV, PASV, then PORT) for the rest of the upload.
pub(super) async fn open_upload(
    session: &mut Session,
    spec: &UploadSpec,
    modes: &mut DataModes,
    remote: &str,
    offset: u64,
    progress: &dyn Progress,
) -> Result<TransferStream<AsyncRustlsStream>, SendError> {
    let stor = if offset > 0 { "REST/STOR" } else { "STOR" };
    // Each round either returns or gives a mode up: at most three rounds.
    for _ in 0..4 {
        let mode = modes.current();
        session.ftp.set_mode(suppa_mode(mode));
        if mode == FtpMode::Active && !session.port_accepted {
            match announce_port(session, spec).await {
                Ok(()) => session.port_accepted = true,
                Err(PortRefusal::Refused(reply)) => {
                    give_up(spec, modes, Abandoned::Refused(reply), progress)?;
                    continue;
                }
                Err(PortRefusal::Broken(error)) => return Err(SendError::Broken(error)),
            }
        }
        session.passive.reset();
        if offset > 0 {
            // Consumed by the next transfer command, even a failed one.
            let _ = session.ftp.resume_transfer(offset as usize).await;
        }
        // The mode's command and STOR (and REST) each get a reply, plus the
        // data connection.
        let limit = spec.reply_timeout * 3 + spec.connect_timeout;
        let opened = match tokio::time::timeout(limit, session.ftp.put_with_stream(remote)).await {
            Ok(opened) => opened,
            Err(_) => {
                let waiting_for = if mode == FtpMode::Active || session.passive.offered() {
                    format!("{stor} `{remote}` (over {})", mode.command())
                } else {
                    mode.command().to_string()
                };
                return Err(SendError::Broken(format!("no reply to {waiting_for} within {} s", limit.as_secs_f64())));
            }
        };
        let error = match opened {
            Ok(stream) => return Ok(stream),
            Err(error) => error,
        };
        let passive = PassiveOutcome { offered: session.passive.offered(), failure: session.passive.failure() };
        match failed_opening(mode, &passive, error) {
            FailedOpening::Abandon(abandoned) => give_up(spec, modes, abandoned, progress)?,
            FailedOpening::ModeRefused(reply) => {
                return Err(SendError::Fatal(FtpError::CommandRefused {
                    host: spec.host.to_string(),
                    port: spec.port,
                    command: mode.command().into(),
                    reply,
                }));
            }
            FailedOpening::FileRefused(reply) => return Err(SendError::Refused { command: stor, reply }),
            FailedOpening::NoConnectBack => {
                return Err(SendError::Broken(format!(
                    "the server did not connect back within {} s after PORT and {stor}",
                    spec.connect_timeout.as_secs_f64()
                )));
            }
            FailedOpening::Broken(error) => return Err(SendError::Broken(error)),
        }
    }
    Err(SendError::Fatal(no_data_connection(spec, modes)))
}

/// What the passive data connection of a failed transfer did.
#[derive(Debug, Default)]
struct PassiveOutcome {
    /// The server answered EPSV or PASV with an address.
    offered: bool,
    /// `ADDRESS: WHY` when the connection to it failed.
    failure: Option<String>,
}

/// What a transfer that did not open means.
#[derive(Debug, PartialEq, Eq)]
enum FailedOpening {
    /// The mode is given up (the next one is tried with `auto`).
    Abandon(Abandoned),
    /// The server answered the passive command itself with neither a
    /// refusal nor an address.
    ModeRefused(String),
    /// The file's own command (STOR, REST/STOR) was refused.
    FileRefused(String),
    /// Active mode: the server did not connect back in time.
    NoConnectBack,
    /// The connection broke: worth a retry.
    Broken(String),
}

/// Tells a refused EPSV or PASV (answered before any address was offered)
/// from a refused STOR, and an unreachable passive data connection (another
/// passive command would not fare better) from a broken one.
fn failed_opening(mode: FtpMode, passive: &PassiveOutcome, error: SuppaError) -> FailedOpening {
    let passive_mode = matches!(mode, FtpMode::Epsv | FtpMode::Passive);
    match error {
        // The server answered EPSV or PASV itself, and not with an
        // address to connect to.
        SuppaError::UnexpectedResponse(response) if passive_mode && !passive.offered => {
            let reply = reply_text(&response);
            match response.status.code() {
                500..600 => FailedOpening::Abandon(Abandoned::Refused(reply)),
                227 | 229 => FailedOpening::Abandon(Abandoned::Unusable(format!("no address in `{reply}`"))),
                _ => FailedOpening::ModeRefused(reply),
            }
        }
        SuppaError::BadResponse if passive_mode && !passive.offered => {
            FailedOpening::Abandon(Abandoned::Unusable("the answer is not an FTP reply".into()))
        }
        // The passive data connection did not come up: another passive
        // command would not fare better.
        SuppaError::ConnectionError(_) if passive_mode && passive.failure.is_some() => {
            FailedOpening::Abandon(Abandoned::Unreachable(passive.failure.clone().unwrap_or_default()))
        }
        SuppaError::UnexpectedResponse(response) if (500..600).contains(&response.status.code()) => {
            FailedOpening::FileRefused(reply_text(&response))
        }
        SuppaError::UnexpectedResponse(response) if response.status.code() == 421 => {
            FailedOpening::Broken(reply_text(&response))
        }
        SuppaError::ConnectionError(error)
            if mode == FtpMode::Active && error.kind() == std::io::ErrorKind::TimedOut =>
        {
            FailedOpening::NoConnectBack
        }
        other => FailedOpening::Broken(other.to_string()),
    }
}

pub(super) fn no_data_connection(spec: &UploadSpec, modes: &DataModes) -> FtpError {
    FtpError::NoDataConnection { host: spec.host.to_string(), port: spec.port, tried: modes.given_up().to_vec() }
}

/// Why the current data mode is given up.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Abandoned {
    /// Its command got this 5xx reply.
    Refused(String),
    /// Its command's answer cannot be used (no address in it, not FTP).
    Unusable(String),
    /// Its data connection did not come up: `ADDRESS: WHY`.
    Unreachable(String),
}

/// Gives the current mode up and says which comes next, or fails when it
/// was the last one ([`next_mode`]).
fn give_up(
    spec: &UploadSpec,
    modes: &mut DataModes,
    abandoned: Abandoned,
    progress: &dyn Progress,
) -> Result<(), SendError> {
    let (next, why) = next_mode(spec, modes, abandoned)?;
    progress.report(ProgressEvent::Note { kind: FILE, text: format!("{why}; trying {}", next.command()) });
    Ok(())
}

/// The mode after `abandoned`, and why the current one went: with an
/// explicit mode, a refusal names the refused command and a data connection
/// that did not come up is retried like a dropped connection.
fn next_mode(spec: &UploadSpec, modes: &mut DataModes, abandoned: Abandoned) -> Result<(FtpMode, String), SendError> {
    let command = modes.current().command();
    let why = match &abandoned {
        Abandoned::Refused(reply) => format!("{command} refused: {reply}"),
        Abandoned::Unusable(detail) => format!("{command}: {detail}"),
        Abandoned::Unreachable(detail) => format!("{command} data connection to {detail}"),
    };
    let passive_unreachable = matches!(abandoned, Abandoned::Unreachable(_));
    if passive_unreachable && !modes.is_auto() {
        // The one mode asked for: a failed data connection is worth a retry,
        // as a dropped connection is.
        return Err(SendError::Broken(why));
    }
    match modes.give_up(why.clone(), passive_unreachable) {
        Some(next) => Ok((next, why)),
        None => match abandoned {
            Abandoned::Refused(reply) if !modes.is_auto() => Err(SendError::Fatal(FtpError::CommandRefused {
                host: spec.host.to_string(),
                port: spec.port,
                command: command.into(),
                reply,
            })),
            _ => Err(SendError::Fatal(no_data_connection(spec, modes))),
        },
    }
}

enum PortRefusal {
    Refused(String),
    Broken(String),
}

/// Sends PORT once in a session, for a listener of our own that nobody
/// uses, so that a refused PORT is named as such: suppaftp's transfer sends
/// PORT and STOR together and its error does not say which was refused.
async fn announce_port(session: &mut Session, spec: &UploadSpec) -> Result<(), PortRefusal> {
    let local = session.ftp.get_ref().await.local_addr().map_err(|e| PortRefusal::Broken(e.to_string()))?;
    let listener =
        tokio::net::TcpListener::bind((local.ip(), 0)).await.map_err(|e| PortRefusal::Broken(e.to_string()))?;
    let address = listener.local_addr().map_err(|e| PortRefusal::Broken(e.to_string()))?;
    let std::net::IpAddr::V4(ip) = address.ip() else {
        return Err(PortRefusal::Broken(format!(
            "PORT needs an IPv4 address, the control connection uses {ip}",
            ip = address.ip()
        )));
    };
    let [a, b, c, d] = ip.octets();
    let command = format!("PORT {a},{b},{c},{d},{},{}", address.port() >> 8, address.port() & 0xff);
    let sent = session.ftp.custom_command(command, &[Status::CommandOk]);
    let answer = tokio::time::timeout(spec.reply_timeout, sent).await;
    drop(listener);
    match answer {
        Err(_) => Err(PortRefusal::Broken(format!("no reply to PORT within {} s", spec.reply_timeout.as_secs_f64()))),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(SuppaError::UnexpectedResponse(response))) if response.status.code() >= 400 => {
            Err(PortRefusal::Refused(reply_text(&response)))
        }
        Ok(Err(error)) => Err(PortRefusal::Broken(format!("PORT: {error}"))),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use suppaftp::types::Response;

    use super::*;
    use crate::ftp::FtpVerify;
    use crate::net::ProbeMethod;

    fn spec(mode: FtpMode) -> UploadSpec {
        UploadSpec {
            host: [127, 0, 0, 1].into(),
            port: 2121,
            credentials: Vec::new(),
            mode,
            verify: FtpVerify::Size,
            files: Vec::new(),
            session_per_file: true,
            wait_for_restart: false,
            restart_timeout: Duration::from_secs(1),
            retries: 0,
            connect_timeout: Duration::from_secs(1),
            reply_timeout: Duration::from_secs(1),
            probe_method: ProbeMethod::Auto,
            tls: None,
            hash: false,
        }
    }

    fn reply(code: u32, text: &str) -> SuppaError {
        SuppaError::UnexpectedResponse(Response::new(Status::from(code), text.as_bytes().to_vec()))
    }

    fn offered() -> PassiveOutcome {
        PassiveOutcome { offered: true, failure: None }
    }

    #[test]
    fn a_refused_passive_command_gives_its_mode_up() {
        let refused = failed_opening(FtpMode::Epsv, &PassiveOutcome::default(), reply(550, "550 Permission denied."));
        assert_eq!(refused, FailedOpening::Abandon(Abandoned::Refused("550 Permission denied.".into())));
        let no_address = failed_opening(FtpMode::Passive, &PassiveOutcome::default(), reply(227, "227 Entering"));
        assert_eq!(no_address, FailedOpening::Abandon(Abandoned::Unusable("no address in `227 Entering`".into())));
        let not_ftp = failed_opening(FtpMode::Passive, &PassiveOutcome::default(), SuppaError::BadResponse);
        assert!(matches!(not_ftp, FailedOpening::Abandon(Abandoned::Unusable(_))), "{not_ftp:?}");
        let odd = failed_opening(FtpMode::Passive, &PassiveOutcome::default(), reply(200, "200 Sure"));
        assert_eq!(odd, FailedOpening::ModeRefused("200 Sure".into()));
    }

    #[test]
    fn a_refusal_after_the_address_is_the_files() {
        let refused = failed_opening(FtpMode::Passive, &offered(), reply(553, "553 Could not create file."));
        assert_eq!(refused, FailedOpening::FileRefused("553 Could not create file.".into()));
        let active = failed_opening(FtpMode::Active, &PassiveOutcome::default(), reply(550, "550 No."));
        assert_eq!(active, FailedOpening::FileRefused("550 No.".into()), "PORT was accepted before");
        let busy = failed_opening(FtpMode::Passive, &offered(), reply(421, "421 Timeout."));
        assert_eq!(busy, FailedOpening::Broken("421 Timeout.".into()));
    }

    #[test]
    fn a_passive_connection_that_did_not_come_up_gives_the_mode_up() {
        let passive = PassiveOutcome { offered: true, failure: Some("127.0.0.1:4000: refused".into()) };
        let error = SuppaError::ConnectionError(std::io::ErrorKind::TimedOut.into());
        assert_eq!(
            failed_opening(FtpMode::Epsv, &passive, error),
            FailedOpening::Abandon(Abandoned::Unreachable("127.0.0.1:4000: refused".into()))
        );
    }

    #[test]
    fn active_mode_tells_a_missing_connect_back_from_a_broken_connection() {
        let timed_out = SuppaError::ConnectionError(std::io::ErrorKind::TimedOut.into());
        assert_eq!(
            failed_opening(FtpMode::Active, &PassiveOutcome::default(), timed_out),
            FailedOpening::NoConnectBack
        );
        let reset = SuppaError::ConnectionError(std::io::ErrorKind::ConnectionReset.into());
        assert!(matches!(failed_opening(FtpMode::Active, &PassiveOutcome::default(), reset), FailedOpening::Broken(_)));
    }

    #[test]
    fn auto_moves_on_after_a_refusal_and_says_why() {
        let spec = spec(FtpMode::Auto);
        let mut modes = DataModes::new(FtpMode::Auto);
        let (next, why) = next_mode(&spec, &mut modes, Abandoned::Refused("500 no".into())).expect("PASV is left");
        assert_eq!((next, why.as_str()), (FtpMode::Passive, "EPSV refused: 500 no"));
        let (next, why) = next_mode(&spec, &mut modes, Abandoned::Unusable("no address".into())).expect("PORT is left");
        assert_eq!((next, why.as_str()), (FtpMode::Active, "PASV: no address"));
        let last = next_mode(&spec, &mut modes, Abandoned::Refused("500 PORT no".into()));
        assert!(
            matches!(last, Err(SendError::Fatal(FtpError::NoDataConnection { ref tried, .. })) if tried.len() == 3)
        );
    }

    #[test]
    fn an_unreachable_passive_connection_skips_the_other_passive_mode() {
        let spec = spec(FtpMode::Auto);
        let mut modes = DataModes::new(FtpMode::Auto);
        let (next, why) = next_mode(&spec, &mut modes, Abandoned::Unreachable("127.0.0.1:4000: refused".into()))
            .expect("PORT is left");
        assert_eq!((next, why.as_str()), (FtpMode::Active, "EPSV data connection to 127.0.0.1:4000: refused"));
    }

    #[test]
    fn an_explicit_mode_names_its_refused_command_and_retries_a_failed_connection() {
        let spec = spec(FtpMode::Passive);
        let mut modes = DataModes::new(FtpMode::Passive);
        let refused = next_mode(&spec, &mut modes, Abandoned::Refused("550 no".into()));
        assert!(
            matches!(refused, Err(SendError::Fatal(FtpError::CommandRefused { ref command, .. })) if command == "PASV"),
            "{refused:?}"
        );
        let mut modes = DataModes::new(FtpMode::Passive);
        let unreachable = next_mode(&spec, &mut modes, Abandoned::Unreachable("127.0.0.1:4000: refused".into()));
        assert!(matches!(unreachable, Err(SendError::Broken(_))), "{unreachable:?}");
        let mut modes = DataModes::new(FtpMode::Epsv);
        let unusable = next_mode(&spec, &mut modes, Abandoned::Unusable("no address".into()));
        assert!(matches!(unusable, Err(SendError::Fatal(FtpError::NoDataConnection { .. }))), "{unusable:?}");
    }
}
