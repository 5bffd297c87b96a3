//! What an open FTP port says: its greeting (220 ready, 421 busy, or
//! nothing) and, when credentials are given, whether a login is accepted
//! (230) or refused (530). Only the control connection is used; no file is
//! touched. Passwords are sent, never recorded: the result names users only.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt as _, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A user name and password to try.
#[derive(Clone)]
pub struct Credential {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credential({}, ***)", self.user)
    }
}

/// The result of looking at an FTP port.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceCheck {
    pub port: u16,
    /// The greeting's text, e.g. `220 NET+OS FTP server ready.`; None when
    /// nothing came.
    pub banner: Option<String>,
    /// The greeting's reply code (220, 421, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub banner_code: Option<u16>,
    pub login: Option<LoginResult>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoginResult {
    /// `accepted`, `refused` or `error`.
    pub result: LoginOutcome,
    /// The user that logged in, when one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Users tried, in order (never their passwords).
    pub tried: Vec<String>,
    /// The last reply, e.g. `530 Login incorrect.`
    pub reply: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoginOutcome {
    Accepted,
    Refused,
    Error,
}

/// Bounds on what a server may send: a greeting is a few lines.
const MAX_REPLY_LINES: usize = 32;
const MAX_LINE: usize = 1024;

/// Connects to `target:port`, reads the greeting, and tries `candidates` in
/// order until one logs in. `timeout` bounds each step.
pub async fn check_ftp(target: Ipv4Addr, port: u16, candidates: &[Credential], timeout: Duration) -> ServiceCheck {
    let mut check = ServiceCheck { port, banner: None, banner_code: None, login: None };
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(SocketAddr::from((target, port)))).await {
        Ok(Ok(stream)) => stream,
        _ => return check,
    };
    let mut stream = BufReader::new(stream);
    let Ok(Some((code, text))) = read_reply(&mut stream, timeout).await else {
        return check;
    };
    check.banner = Some(text);
    check.banner_code = Some(code);
    if code != 220 || candidates.is_empty() {
        return check;
    }
    let mut tried = Vec::new();
    let mut last = String::new();
    for candidate in candidates {
        tried.push(candidate.user.clone());
        match login(&mut stream, candidate, timeout).await {
            Ok((230, reply)) => {
                let _ = stream.get_mut().write_all(b"QUIT\r\n").await;
                check.login = Some(LoginResult {
                    result: LoginOutcome::Accepted,
                    user: Some(candidate.user.clone()),
                    tried,
                    reply,
                });
                return check;
            }
            Ok((530, reply)) => last = reply,
            Ok((_, reply)) | Err(reply) => {
                check.login = Some(LoginResult { result: LoginOutcome::Error, user: None, tried, reply });
                return check;
            }
        }
    }
    let _ = stream.get_mut().write_all(b"QUIT\r\n").await;
    check.login = Some(LoginResult { result: LoginOutcome::Refused, user: None, tried, reply: last });
    check
}

/// Servers delay the answer to a wrong password on purpose (PAM waits about
/// 2 s, vsftpd 1 s more): give PASS this long before calling it unanswered.
const PASS_REPLY_TIMEOUT: Duration = Duration::from_secs(10);

async fn login(
    stream: &mut BufReader<TcpStream>,
    candidate: &Credential,
    timeout: Duration,
) -> Result<(u16, String), String> {
    let (code, reply) = command(stream, &format!("USER {}\r\n", candidate.user), timeout).await?;
    if code != 331 {
        return Ok((code, reply));
    }
    command(stream, &format!("PASS {}\r\n", candidate.password), timeout.max(PASS_REPLY_TIMEOUT)).await
}

async fn command(stream: &mut BufReader<TcpStream>, line: &str, timeout: Duration) -> Result<(u16, String), String> {
    let verb = line.split_whitespace().next().unwrap_or("");
    stream.get_mut().write_all(line.as_bytes()).await.map_err(|e| format!("sending {verb}: {e}"))?;
    match read_reply(stream, timeout).await {
        Ok(Some(reply)) => Ok(reply),
        Ok(None) => Err(format!("no reply to {verb}")),
        Err(e) => Err(format!("after {verb}: {e}")),
    }
}

/// Reads one FTP reply (multi-line `220-...` up to `220 ...`). Ok(None) when
/// the server sent nothing in time or closed. Generic, and `pub`, for the
/// fuzz targets (which feed it bytes from memory).
#[doc(hidden)]
pub async fn read_reply<R: AsyncBufRead + Unpin>(
    stream: &mut R,
    timeout: Duration,
) -> Result<Option<(u16, String)>, String> {
    let mut lines = Vec::new();
    for _ in 0..MAX_REPLY_LINES {
        let mut line = Vec::new();
        let read =
            tokio::time::timeout(timeout, (&mut *stream).take(MAX_LINE as u64).read_until(b'\n', &mut line)).await;
        match read {
            Err(_) | Ok(Ok(0)) => return Ok(None),
            Ok(Err(e)) => return Err(e.to_string()),
            Ok(Ok(_)) => {}
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        let code = parse_code(&text);
        let last = text.as_bytes().get(3) != Some(&b'-');
        lines.push(text);
        if let (Some(code), true) = (code, last) {
            return Ok(Some((code, lines.join(" | "))));
        }
    }
    Err(format!("reply longer than {MAX_REPLY_LINES} lines"))
}

fn parse_code(line: &str) -> Option<u16> {
    let digits = line.get(..3)?;
    if digits.bytes().all(|b| b.is_ascii_digit()) { digits.parse().ok() } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    /// A scripted FTP control peer: greets, then answers USER/PASS.
    async fn server(greeting: &'static str, good_password: &'static str) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            socket.write_all(greeting.as_bytes()).await.unwrap();
            let mut buffer = [0u8; 256];
            for _ in 0..8 {
                let Ok(n) = socket.read(&mut buffer).await else { return };
                if n == 0 {
                    return;
                }
                let line = String::from_utf8_lossy(&buffer[..n]).to_string();
                let reply = if line.starts_with("USER") {
                    "331 Password required.\r\n".to_string()
                } else if line.starts_with("PASS") {
                    if line.trim_end() == format!("PASS {good_password}") {
                        "230 User logged in.\r\n".to_string()
                    } else {
                        "530 Login incorrect.\r\n".to_string()
                    }
                } else {
                    "221 Bye.\r\n".to_string()
                };
                if socket.write_all(reply.as_bytes()).await.is_err() {
                    return;
                }
            }
        });
        port
    }

    fn candidates() -> Vec<Credential> {
        vec![
            Credential { user: "root".into(), password: "Netsilicon".into() },
            Credential { user: "root".into(), password: "password".into() },
        ]
    }

    #[tokio::test]
    async fn second_candidate_logs_in() {
        let port = server("220-NET+OS\r\n220 NET+OS FTP server ready.\r\n", "password").await;
        let check = check_ftp(Ipv4Addr::LOCALHOST, port, &candidates(), Duration::from_secs(2)).await;
        assert_eq!(check.banner_code, Some(220));
        assert_eq!(check.banner.as_deref(), Some("220-NET+OS | 220 NET+OS FTP server ready."));
        let login = check.login.unwrap();
        assert_eq!(login.result, LoginOutcome::Accepted);
        assert_eq!(login.tried, vec!["root", "root"]);
    }

    #[tokio::test]
    async fn refused_credentials_and_busy_server() {
        let port = server("220 ready\r\n", "other").await;
        let check = check_ftp(Ipv4Addr::LOCALHOST, port, &candidates(), Duration::from_secs(2)).await;
        let login = check.login.unwrap();
        assert_eq!(login.result, LoginOutcome::Refused);
        assert_eq!(login.reply, "530 Login incorrect.");
        assert!(!format!("{login:?}").contains("Netsilicon"));

        let port = server("421 Too many connections.\r\n", "x").await;
        let check = check_ftp(Ipv4Addr::LOCALHOST, port, &candidates(), Duration::from_secs(2)).await;
        assert_eq!(check.banner_code, Some(421));
        assert!(check.login.is_none());
    }

    #[tokio::test]
    async fn silent_server_has_no_banner() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // Accepts, says so, and then says nothing, holding the connection open.
        let (accepted, mut seen) = tokio::sync::oneshot::channel();
        let silent = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let _ = accepted.send(());
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(stream);
        });
        let started = std::time::Instant::now();
        let check = check_ftp(Ipv4Addr::LOCALHOST, port, &[], Duration::from_millis(200)).await;
        let waited = started.elapsed();
        assert_eq!((check.banner, check.banner_code, check.login.is_none()), (None, None, true));
        // It connected (the server accepted) and waited out its reply timeout.
        assert!(seen.try_recv().is_ok(), "the server saw no connection");
        assert!(waited >= Duration::from_millis(200), "gave up after {waited:?}, before its 200 ms");
        assert!(waited < Duration::from_secs(3), "waited {waited:?} for a 200 ms timeout");
        silent.abort();
    }
}
