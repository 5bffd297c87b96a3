//! The control connection of an upload: the TCP connection and the greeting
//! (each within its deadline), explicit TLS when asked for, the login with
//! the credential candidates in order, binary type and the data connection
//! set-up suppaftp needs. It does not move any file: that is [`super::send`]
//! over a data connection from [`super::data`].
//!
//! A failed TCP connection gets the network's diagnosis; once connected, the
//! network is fine and an error says what the server sent (or that it sent
//! nothing).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use suppaftp::tokio::{AsyncRustlsConnector, AsyncRustlsFtpStream};
use suppaftp::types::FileType;
use suppaftp::{FtpError as SuppaError, ReplyTooLarge, Status};
use tokio::net::TcpStream;

use super::data_mode::{DataModes, PassiveProbe, suppa_mode};
use super::spec::{TlsSettings, UploadSpec};
use super::{FILE, FtpError};
use crate::net::report::{Investigation, investigate};
use crate::net::{ProbeOptions, Prober};
use crate::progress::{Progress, ProgressEvent, Silent};

/// A logged-in control connection, in binary type.
pub(super) struct Session {
    /// Plain until `AUTH TLS`; the same type either way.
    pub(super) ftp: AsyncRustlsFtpStream,
    pub(super) user: String,
    /// The server offers `REST STREAM`.
    pub(super) resumable: bool,
    /// What the passive data connection of the last transfer did.
    pub(super) passive: Arc<PassiveProbe>,
    /// The server accepted a PORT in this session: a later refusal of the
    /// transfer is the STOR's, not the PORT's.
    pub(super) port_accepted: bool,
}

/// The server's reply as it sent it, e.g. `530 Login incorrect.`
pub(super) fn reply_text(response: &suppaftp::types::Response) -> String {
    let body = String::from_utf8_lossy(&response.body).trim().to_string();
    let code = response.status.code().to_string();
    if body.starts_with(&code) { body } else { format!("{code} {body}").trim().to_string() }
}

/// How the server answered one candidate's USER and PASS.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LoginAnswer {
    Accepted,
    /// 530: not these credentials.
    Refused(String),
    /// 421: the server will not serve anyone now.
    Busy(String),
    /// The connection ended (some servers hang up after a refused login),
    /// as suppaftp describes it.
    HungUp(String),
    /// Anything else, as suppaftp describes it.
    Other(String),
}

impl LoginAnswer {
    fn of(answer: Result<(), SuppaError>) -> LoginAnswer {
        match answer {
            Ok(()) => LoginAnswer::Accepted,
            Err(SuppaError::UnexpectedResponse(response)) if response.status == Status::NotLoggedIn => {
                LoginAnswer::Refused(reply_text(&response))
            }
            Err(SuppaError::UnexpectedResponse(response)) if response.status.code() == 421 => {
                LoginAnswer::Busy(reply_text(&response))
            }
            Err(error @ SuppaError::ConnectionError(_)) => LoginAnswer::HungUp(error.to_string()),
            Err(other) => LoginAnswer::Other(other.to_string()),
        }
    }
}

/// What to do after a candidate's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum NextLogin {
    /// Logged in: set the session up.
    LoggedIn,
    /// Try the next candidate on this connection (or report them all
    /// refused when none is left), remembering this reply.
    NextCandidate {
        reply: String,
    },
    /// Connect again and try the next candidate there.
    Reconnect,
    Busy(String),
    /// Give up: not a refusal the next candidate could mend.
    Fail(String),
}

/// The decision after one candidate's answer; `more`: another candidate is
/// left. A hang-up is a refusal only when another candidate can use a new
/// connection; after the last one it is an error, not "refused".
fn next_login(answer: LoginAnswer, more: bool) -> NextLogin {
    match answer {
        LoginAnswer::Accepted => NextLogin::LoggedIn,
        LoginAnswer::Refused(reply) => NextLogin::NextCandidate { reply },
        LoginAnswer::Busy(reply) => NextLogin::Busy(reply),
        LoginAnswer::HungUp(_) if more => NextLogin::Reconnect,
        LoginAnswer::HungUp(error) | LoginAnswer::Other(error) => NextLogin::Fail(error),
    }
}

/// Connects, logs in with the first candidate that works, sets binary type
/// and the data connection mode.
pub(super) async fn open_session(
    spec: &UploadSpec,
    modes: &DataModes,
    progress: &dyn Progress,
) -> Result<Session, FtpError> {
    let host = spec.host.to_string();
    let mut tried = Vec::new();
    let mut last_reply = String::new();
    let mut candidates = spec.credentials.iter().peekable();
    'connect: loop {
        let mut ftp = connect(spec).await?;
        let banner = ftp.get_welcome_msg().unwrap_or("").trim().to_string();
        progress
            .report(ProgressEvent::Note { kind: FILE, text: format!("connected to {host}:{}: {banner}", spec.port) });
        while let Some(candidate) = candidates.next() {
            tried.push(candidate.user.clone());
            // USER and PASS: two replies, and servers delay a refused PASS.
            let login = ftp.login(candidate.user.as_str(), candidate.password.as_str());
            let answer = tokio::time::timeout(spec.reply_timeout * 2, login).await.map_err(|_| FtpError::NoReply {
                host: host.clone(),
                port: spec.port,
                command: format!("USER/PASS (login as {})", candidate.user),
                waited: spec.reply_timeout * 2,
            })?;
            match next_login(LoginAnswer::of(answer), candidates.peek().is_some()) {
                NextLogin::LoggedIn => {
                    progress
                        .report(ProgressEvent::Note { kind: FILE, text: format!("logged in as {}", candidate.user) });
                    return finish_session(ftp, spec, modes, candidate.user.clone()).await;
                }
                NextLogin::NextCandidate { reply } => last_reply = reply,
                NextLogin::Busy(reply) => return Err(FtpError::Busy { host, port: spec.port, reply }),
                NextLogin::Reconnect => continue 'connect,
                NextLogin::Fail(reply) => {
                    return Err(FtpError::Protocol { what: format!("login as {}", candidate.user), reply });
                }
            }
        }
        return Err(FtpError::CredentialsRefused { host, port: spec.port, users: tried, reply: last_reply });
    }
}

/// How much of a peer's first bytes an error quotes.
#[doc(hidden)]
pub const QUOTED: usize = 120;

/// Connects and reads the greeting, each within its deadline. A failed TCP
/// connection gets the network's diagnosis; once connected, the network is
/// fine and an error says what the server sent (or that it sent nothing).
async fn connect(spec: &UploadSpec) -> Result<AsyncRustlsFtpStream, FtpError> {
    let address = SocketAddr::from((spec.host, spec.port));
    let host = spec.host.to_string();
    let port = spec.port;
    let stream = match tokio::time::timeout(spec.connect_timeout, TcpStream::connect(address)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            let finding = diagnose(spec).await;
            return Err(FtpError::Unreachable { host, port, error: error.to_string(), finding });
        }
        Err(_) => {
            let finding = diagnose(spec).await;
            let error = format!("no connection within {} s", spec.connect_timeout.as_secs_f64());
            return Err(FtpError::Unreachable { host, port, error, finding });
        }
    };
    // The first bytes, kept (not consumed) to quote when they are not a
    // greeting: an application stuck before its FTP server starts may
    // accept and stay silent, another service may answer on the port.
    let mut first = [0u8; QUOTED + 1];
    let waited = spec.reply_timeout;
    let seen = match tokio::time::timeout(waited, stream.peek(&mut first)).await {
        Err(_) => return Err(FtpError::NoGreeting { host, port, waited, closed: false }),
        Ok(Ok(0)) | Ok(Err(_)) => return Err(FtpError::NoGreeting { host, port, waited, closed: true }),
        Ok(Ok(n)) => n,
    };
    let sent = quote(&first[..seen]);
    let not_ftp =
        |what: &str| FtpError::NotFtp { host: host.clone(), port, what: what.to_string(), sent: sent.clone() };
    let ftp = match tokio::time::timeout(waited, AsyncRustlsFtpStream::connect_with_stream(stream)).await {
        Err(_) => {
            return Err(not_ftp(&format!("no complete greeting within {} s", waited.as_secs_f64())));
        }
        Ok(Ok(ftp)) => ftp,
        Ok(Err(SuppaError::UnexpectedResponse(response))) if matches!(response.status.code(), 421 | 120) => {
            return Err(FtpError::Busy { host, port, reply: reply_text(&response) });
        }
        Ok(Err(SuppaError::UnexpectedResponse(response))) => {
            return Err(FtpError::Protocol { what: format!("greeting from {address}"), reply: reply_text(&response) });
        }
        Ok(Err(SuppaError::BadResponse)) => return Err(not_ftp("its greeting is not an FTP reply")),
        Ok(Err(SuppaError::ConnectionError(error)))
            if error.get_ref().is_some_and(|inner| inner.is::<ReplyTooLarge>()) =>
        {
            return Err(not_ftp(&format!("its greeting is longer than the limit ({error})")));
        }
        Ok(Err(SuppaError::ConnectionError(error))) => {
            return Err(not_ftp(&format!("the connection ended during the greeting ({error})")));
        }
        Ok(Err(other)) => return Err(not_ftp(&other.to_string())),
    };
    let Some(tls) = &spec.tls else { return Ok(ftp) };
    let connector = tls.connector()?;
    let name = tls.name.clone().unwrap_or_else(|| host.clone());
    // AUTH TLS's reply, then the handshake.
    match tokio::time::timeout(waited * 2, ftp.into_secure(connector, &name)).await {
        Err(_) => {
            Err(FtpError::NoReply { host, port, command: "AUTH TLS (and its handshake)".into(), waited: waited * 2 })
        }
        Ok(Ok(ftp)) => Ok(ftp),
        Ok(Err(e)) => Err(FtpError::Tls {
            host,
            port,
            // suppaftp wraps its own prefix twice.
            error: e.to_string().replace("Secure error: ", ""),
        }),
    }
}

/// Bytes a peer sent, as an error quotes them: printable ASCII as is, the
/// rest escaped (`\r`, `\n`, `\x00`), at most [`QUOTED`] bytes. `pub` for
/// the fuzz targets only.
#[doc(hidden)]
pub fn quote(bytes: &[u8]) -> String {
    let mut text: String =
        bytes.iter().take(QUOTED).flat_map(|&b| std::ascii::escape_default(b)).map(char::from).collect();
    if bytes.len() > QUOTED {
        text.push_str("...");
    }
    text
}

/// The network's view of why a connection failed.
async fn diagnose(spec: &UploadSpec) -> Option<Box<crate::net::diagnose::Finding>> {
    let prober = Prober::new(spec.probe_method).ok()?;
    let investigation = Investigation {
        target: spec.host,
        ports: vec![spec.port],
        ftp_ports: vec![spec.port],
        credentials: Vec::new(),
        icmp: true,
        wait_until: None,
        timeout: Duration::ZERO,
        probe: ProbeOptions::default(),
    };
    let report = investigate(&investigation, &prober, &Silent).await.ok()?;
    Some(Box::new(report.finding))
}

async fn finish_session(
    ftp: AsyncRustlsFtpStream,
    spec: &UploadSpec,
    modes: &DataModes,
    user: String,
) -> Result<Session, FtpError> {
    let host = spec.host.to_string();
    let no_reply = |command: &str| FtpError::NoReply {
        host: host.clone(),
        port: spec.port,
        command: command.to_string(),
        waited: spec.reply_timeout,
    };
    let passive = Arc::new(PassiveProbe::default());
    // Active mode's wait for the server to connect back is the connect
    // timeout; the passive connection is made by `PassiveProbe`, bounded by
    // the same.
    // The data connection goes only to the host dialled: a passive one to
    // its address at the offered port (a PASV reply's address is never
    // followed), an active one is taken only from it.
    let peer = std::net::IpAddr::V4(spec.host);
    let mut ftp = ftp.active_mode(spec.connect_timeout).passive_stream_builder(PassiveProbe::builder(
        passive.clone(),
        spec.connect_timeout,
        peer,
    ));
    ftp.set_active_peer_check(suppaftp::ActivePeerCheck::ControlPeer);
    ftp.set_mode(suppa_mode(modes.current()));
    // suppaftp starts in ASCII, which would rewrite every LF in the image.
    match tokio::time::timeout(spec.reply_timeout, ftp.transfer_type(FileType::Binary)).await {
        Err(_) => return Err(no_reply("TYPE I")),
        Ok(Ok(())) => {}
        Ok(Err(SuppaError::UnexpectedResponse(response))) => {
            return Err(FtpError::CommandRefused {
                host,
                port: spec.port,
                command: "TYPE I (binary)".into(),
                reply: reply_text(&response),
            });
        }
        Ok(Err(e)) => return Err(FtpError::Protocol { what: "TYPE I (binary)".into(), reply: e.to_string() }),
    }
    let resumable = match tokio::time::timeout(spec.reply_timeout, ftp.feat()).await {
        Err(_) => return Err(no_reply("FEAT")),
        Ok(Ok(features)) => features.iter().any(|(name, value)| {
            name.eq_ignore_ascii_case("REST")
                && value.as_deref().is_some_and(|v| v.to_ascii_uppercase().contains("STREAM"))
        }),
        Ok(Err(_)) => false,
    };
    Ok(Session { ftp, user, resumable, passive, port_accepted: false })
}

/// The system's CA bundle on Debian and its kin.
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

impl TlsSettings {
    fn connector(&self) -> Result<AsyncRustlsConnector, FtpError> {
        use rustls_pki_types::pem::PemObject;
        let path = self.ca_file.clone().unwrap_or_else(|| SYSTEM_CA_BUNDLE.into());
        let certificates = rustls_pki_types::CertificateDer::pem_file_iter(&path)
            .and_then(|items| items.collect::<Result<Vec<_>, _>>())
            .map_err(|e| FtpError::LocalFile {
                path: path.clone(),
                error: format!("not a PEM certificate file: {e}"),
            })?;
        let mut roots = rustls::RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(certificates);
        if added == 0 {
            return Err(FtpError::LocalFile { path, error: "holds no usable certificate".into() });
        }
        let config =
            rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| FtpError::Protocol { what: "TLS set-up".into(), reply: e.to_string() })?
                .with_root_certificates(roots)
                .with_no_client_auth();
        Ok(AsyncRustlsConnector::from(tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use suppaftp::types::Response;

    fn reply(code: u32, text: &str) -> Result<(), SuppaError> {
        Err(SuppaError::UnexpectedResponse(Response::new(Status::from(code), text.as_bytes().to_vec())))
    }

    #[test]
    fn what_a_peer_sent_is_quoted_escaped_and_bounded() {
        assert_eq!(quote(b"SSH-2.0-OpenSSH_9.2\r\n"), "SSH-2.0-OpenSSH_9.2\\r\\n");
        assert_eq!(quote(&[0x16, 0x03, 0x01, b'A']), "\\x16\\x03\\x01A");
        let long = vec![b'a'; QUOTED + 1];
        assert_eq!(quote(&long), format!("{}...", "a".repeat(QUOTED)));
    }

    #[test]
    fn a_reply_is_quoted_with_its_code_once() {
        let with_code = Response::new(Status::NotLoggedIn, b"530 Login incorrect.\r\n".to_vec());
        assert_eq!(reply_text(&with_code), "530 Login incorrect.");
        let without = Response::new(Status::NotLoggedIn, b"Login incorrect.".to_vec());
        assert_eq!(reply_text(&without), "530 Login incorrect.");
    }

    #[test]
    fn a_refused_candidate_gives_way_to_the_next_on_the_same_connection() {
        for more in [true, false] {
            assert_eq!(
                next_login(LoginAnswer::of(reply(530, "530 Login incorrect.")), more),
                NextLogin::NextCandidate { reply: "530 Login incorrect.".into() }
            );
        }
        assert_eq!(next_login(LoginAnswer::of(Ok(())), true), NextLogin::LoggedIn);
    }

    #[test]
    fn a_hang_up_reconnects_only_while_a_candidate_is_left() {
        let hung_up = || Err(SuppaError::ConnectionError(std::io::ErrorKind::UnexpectedEof.into()));
        assert_eq!(next_login(LoginAnswer::of(hung_up()), true), NextLogin::Reconnect);
        let last = next_login(LoginAnswer::of(hung_up()), false);
        assert!(matches!(last, NextLogin::Fail(_)), "{last:?}");
    }

    #[test]
    fn a_busy_server_or_an_odd_answer_ends_the_login() {
        assert_eq!(
            next_login(LoginAnswer::of(reply(421, "421 Too many users.")), true),
            NextLogin::Busy("421 Too many users.".into())
        );
        let odd = next_login(LoginAnswer::of(reply(500, "500 What?")), true);
        assert!(matches!(odd, NextLogin::Fail(_)), "{odd:?}");
        assert_eq!(
            next_login(LoginAnswer::of(Err(SuppaError::BadResponse)), true),
            NextLogin::Fail(SuppaError::BadResponse.to_string())
        );
    }
}
