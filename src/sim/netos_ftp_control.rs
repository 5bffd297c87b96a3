//! The simulated NET+OS FTP server's control connection, as the real one
//! words it. libunftp serves the session but only lets its greeting be set,
//! so a thin relay sits between the client and libunftp and:
//!
//! - rewrites the replies the vendor's transcript shows, byte for byte:
//!   `220 NET+OS 7.4.2 FTP server ready.` (the version of the simulated
//!   firmware), `331 User root OK, send password.`, `230 Password OK.`,
//!   `200 Type set to I.`, `200 PORT command Ok.`, `221 Goodbye.`; every
//!   other reply is libunftp's own (the real texts are not published);
//! - with `no_pasv`, answers PASV and EPSV itself with
//!   `502 Command not implemented.` (what the real server answers, if it
//!   refuses them, is not published);
//! - makes the active-mode (PORT) data connection from the device's own
//!   address, as a device does: libunftp would connect from whatever
//!   address the kernel picks, which a client that checks the data peer
//!   (suppaftp does) refuses. The relay connects to the client first and
//!   answers `425 Unable to open data connection, network error` (the
//!   transcript's text) when it cannot; otherwise it gives libunftp a PORT
//!   of its own and pipes the two data connections together.
//!
//! Replies are paired with commands in order (one reply outstanding, as FTP
//! clients work; preliminary 1xx replies and continuation lines pass
//! unchanged). Passwords pass through and are never logged. The rewriting
//! itself is [`netos_reply`], pure and unit-tested.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// A control line longer than this ends the session (libunftp's own limit
/// is larger; a real client never comes close).
const MAX_LINE: u64 = 4096;

/// The bound on the active-mode connection back to the client and on
/// libunftp taking the relay's PORT.
const DATA_CONNECT: Duration = Duration::from_secs(10);

/// The bound on one relayed data connection (a 64 MiB image at loopback
/// speed takes well under a second; a stalled client is dropped).
const DATA_LIFETIME: Duration = Duration::from_secs(600);

/// How long the relay waits for libunftp to finish after the client left.
const DRAIN: Duration = Duration::from_secs(10);

/// How the control connection behaves.
#[derive(Debug, Clone)]
pub struct ControlConfig {
    /// The NET+OS version the greeting prints, e.g. `7.4.2`.
    pub version: &'static str,
    /// Refuse PASV and EPSV.
    pub no_pasv: bool,
}

/// What the NET+OS server says instead of libunftp's `reply` to `command`
/// (`None` for the greeting), or None to pass it unchanged. `reply` is one
/// final reply line without its line ending.
pub fn netos_reply(config: &ControlConfig, command: Option<&str>, reply: &str) -> Option<String> {
    let code = reply.get(..3)?;
    let (verb, argument) = match command {
        None => return (code == "220").then(|| format!("220 NET+OS {} FTP server ready.", config.version)),
        Some(line) => {
            let line = line.trim_end();
            let (verb, argument) = line.split_once(' ').unwrap_or((line, ""));
            (verb.to_ascii_uppercase(), argument.trim())
        }
    };
    match (verb.as_str(), code) {
        ("USER", "331") => Some(format!("331 User {argument} OK, send password.")),
        ("PASS", "230") => Some("230 Password OK.".into()),
        ("TYPE", "200") => Some(format!("200 Type set to {}.", argument.to_ascii_uppercase())),
        ("PORT", "200") => Some("200 PORT command Ok.".into()),
        ("QUIT", "221") => Some("221 Goodbye.".into()),
        _ => None,
    }
}

/// Serves one control connection: libunftp's `service` runs on the inner
/// end of a loopback connection to `device` (so its passive replies and
/// listeners carry the device's address) made from the client's address
/// (libunftp takes a data connection only from its control connection's
/// peer), the relay on the outer.
pub async fn relay<F>(client: TcpStream, device: Ipv4Addr, config: ControlConfig, service: F) -> std::io::Result<()>
where
    F: FnOnce(TcpStream) -> tokio::task::JoinHandle<()>,
{
    let client_ip = match client.peer_addr()?.ip() {
        std::net::IpAddr::V4(ip) => ip,
        std::net::IpAddr::V6(_) => Ipv4Addr::LOCALHOST,
    };
    let listener = TcpListener::bind((device, 0)).await?;
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((client_ip, 0)))?;
    let inner = socket.connect(listener.local_addr()?).await?;
    let (libunftp_end, _) = listener.accept().await?;
    drop(listener);
    let served = service(libunftp_end);
    let relay = Relay { device, client_ip, config, pending: VecDeque::new(), greeted: false, multiline: None };
    let result = relay.run(client, inner).await;
    // libunftp ends its session when its control connection closes.
    let _ = tokio::time::timeout(DRAIN, served).await;
    result
}

struct Relay {
    device: Ipv4Addr,
    /// The client's address: libunftp's data connections must come from or
    /// go to it.
    client_ip: Ipv4Addr,
    config: ControlConfig,
    /// Commands sent to libunftp whose final reply has not come yet.
    pending: VecDeque<String>,
    greeted: bool,
    /// The code of a multi-line reply in progress (`211` after `211-`).
    multiline: Option<String>,
}

impl Relay {
    async fn run(mut self, client: TcpStream, inner: TcpStream) -> std::io::Result<()> {
        let (client_read, mut client_write) = client.into_split();
        let (inner_read, mut inner_write) = inner.into_split();
        let mut client_lines = BufReader::new(client_read);
        let mut inner_lines = BufReader::new(inner_read);
        let mut from_client = Vec::new();
        let mut from_server = Vec::new();
        let mut client_open = true;
        loop {
            tokio::select! {
                read = read_line(&mut client_lines, &mut from_client), if client_open => {
                    if read? == 0 {
                        // The client left: libunftp sees its connection close.
                        client_open = false;
                        inner_write.shutdown().await?;
                        continue;
                    }
                    let line = String::from_utf8_lossy(&from_client).into_owned();
                    from_client.clear();
                    match self.command(&line).await {
                        Forward::Line(text) => {
                            inner_write.write_all(text.as_bytes()).await?;
                            self.pending.push_back(line);
                        }
                        Forward::Answer(reply) => client_write.write_all(reply.as_bytes()).await?,
                    }
                }
                read = read_line(&mut inner_lines, &mut from_server) => {
                    if read? == 0 {
                        // libunftp closed the session (QUIT, idle timeout).
                        let _ = client_write.shutdown().await;
                        return Ok(());
                    }
                    let line = String::from_utf8_lossy(&from_server).into_owned();
                    from_server.clear();
                    let reply = self.reply(&line);
                    if client_open && client_write.write_all(reply.as_bytes()).await.is_err() {
                        client_open = false;
                        inner_write.shutdown().await?;
                    }
                }
            }
        }
    }

    /// What to do with a client's command line.
    async fn command(&mut self, line: &str) -> Forward {
        let verb = line.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
        match verb.as_str() {
            "PASV" | "EPSV" if self.config.no_pasv => Forward::Answer("502 Command not implemented.\r\n".into()),
            "PORT" => match self.active_data(line).await {
                Ok(relay_port) => Forward::Line(relay_port),
                Err(_) => Forward::Answer("425 Unable to open data connection, network error\r\n".into()),
            },
            _ => Forward::Line(line.to_string()),
        }
    }

    /// The rewritten reply line (with its line ending) for one line from
    /// libunftp.
    fn reply(&mut self, line: &str) -> String {
        let text = line.trim_end_matches(['\r', '\n']);
        let code = text.get(..3).filter(|c| c.bytes().all(|b| b.is_ascii_digit()));
        let separator = text.as_bytes().get(3).copied();
        if let Some(open) = &self.multiline {
            // Continuation lines pass; the reply ends at `CODE `.
            if code == Some(open.as_str()) && separator == Some(b' ') {
                self.multiline = None;
                self.pending.pop_front();
            }
            return format!("{text}\r\n");
        }
        let Some(code) = code else { return format!("{text}\r\n") };
        if separator == Some(b'-') {
            self.multiline = Some(code.to_string());
            return format!("{text}\r\n");
        }
        if code.starts_with('1') {
            // Preliminary (150): the command's final reply is still to come.
            return format!("{text}\r\n");
        }
        let command = if self.greeted { self.pending.pop_front() } else { None };
        let rewritten = if self.greeted {
            command.as_deref().and_then(|c| netos_reply(&self.config, Some(c), text))
        } else {
            self.greeted = true;
            netos_reply(&self.config, None, text)
        };
        format!("{}\r\n", rewritten.as_deref().unwrap_or(text))
    }

    /// Connects to the client's PORT address from the device's address,
    /// gives libunftp a PORT of its own, and pipes the two together. Returns
    /// the PORT line for libunftp.
    async fn active_data(&self, line: &str) -> std::io::Result<String> {
        let client = parse_port(line).ok_or_else(|| std::io::Error::other("not a PORT address"))?;
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::from((self.device, 0)))?;
        let outer = tokio::time::timeout(DATA_CONNECT, socket.connect(SocketAddr::V4(client)))
            .await
            .map_err(|_| std::io::Error::other("the client did not accept in time"))??;
        // libunftp connects to this; it takes only its control peer's address.
        let listener = TcpListener::bind((self.client_ip, 0)).await?;
        let port = listener.local_addr()?.port();
        tokio::spawn(async move {
            let Ok(Ok((inner, _))) = tokio::time::timeout(DATA_CONNECT, listener.accept()).await else { return };
            let (mut outer, mut inner) = (outer, inner);
            let _ = tokio::time::timeout(DATA_LIFETIME, tokio::io::copy_bidirectional(&mut outer, &mut inner)).await;
        });
        let [a, b, c, d] = self.client_ip.octets();
        Ok(format!("PORT {a},{b},{c},{d},{},{}\r\n", port >> 8, port & 0xff))
    }
}

enum Forward {
    /// Send this line to libunftp.
    Line(String),
    /// Answer the client without libunftp.
    Answer(String),
}

/// One line (up to and with its LF), at most [`MAX_LINE`] bytes; 0 at EOF.
async fn read_line<R: AsyncRead + Unpin>(reader: &mut BufReader<R>, line: &mut Vec<u8>) -> std::io::Result<usize> {
    let read = (&mut *reader).take(MAX_LINE).read_until(b'\n', line).await?;
    if read > 0 && !line.ends_with(b"\n") && read as u64 >= MAX_LINE {
        return Err(std::io::Error::other("control line too long"));
    }
    Ok(read)
}

/// `PORT h1,h2,h3,h4,p1,p2` to its address.
fn parse_port(line: &str) -> Option<SocketAddrV4> {
    let argument = line.trim_end().split_once(' ')?.1.trim();
    let numbers: Vec<u8> = argument.split(',').map(|n| n.trim().parse().ok()).collect::<Option<_>>()?;
    let [a, b, c, d, high, low] = numbers.try_into().ok()?;
    Some(SocketAddrV4::new(Ipv4Addr::new(a, b, c, d), u16::from(high) << 8 | u16::from(low)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ControlConfig {
        ControlConfig { version: "7.4.2", no_pasv: false }
    }

    #[test]
    fn the_transcript_replies_byte_for_byte() {
        let c = config();
        let cases = [
            (None, "220 Welcome", "220 NET+OS 7.4.2 FTP server ready."),
            (Some("USER root\r\n"), "331 Password Required", "331 User root OK, send password."),
            (Some("PASS password\r\n"), "230 User logged in", "230 Password OK."),
            (Some("TYPE I\r\n"), "200 Always in binary mode", "200 Type set to I."),
            (Some("PORT 127,0,0,1,4,1\r\n"), "200 PORT command successful", "200 PORT command Ok."),
            (Some("QUIT\r\n"), "221 Bye!", "221 Goodbye."),
        ];
        for (command, libunftp, netos) in cases {
            assert_eq!(netos_reply(&c, command, libunftp).as_deref(), Some(netos), "{command:?}");
        }
    }

    #[test]
    fn other_replies_pass_unchanged() {
        let c = config();
        assert_eq!(netos_reply(&c, Some("PASS wrong\r\n"), "530 Invalid credentials"), None);
        assert_eq!(netos_reply(&c, Some("STOR image.bin\r\n"), "226 File successfully written"), None);
        assert_eq!(netos_reply(&c, Some("SIZE image.bin\r\n"), "213 4096"), None);
    }

    #[test]
    fn replies_pair_with_commands_in_order_across_preliminary_and_multiline_replies() {
        let mut relay = Relay {
            device: Ipv4Addr::LOCALHOST,
            client_ip: Ipv4Addr::LOCALHOST,
            config: config(),
            pending: VecDeque::new(),
            greeted: false,
            multiline: None,
        };
        assert_eq!(relay.reply("220 Welcome\r\n"), "220 NET+OS 7.4.2 FTP server ready.\r\n");
        relay.pending.extend(["FEAT\r\n".to_string(), "STOR image.bin\r\n".into(), "QUIT\r\n".into()]);
        assert_eq!(relay.reply("211-Extensions supported:\r\n"), "211-Extensions supported:\r\n");
        assert_eq!(relay.reply(" SIZE\r\n"), " SIZE\r\n");
        assert_eq!(relay.reply("211 END\r\n"), "211 END\r\n");
        assert_eq!(relay.reply("150 Ready to receive data\r\n"), "150 Ready to receive data\r\n");
        assert_eq!(relay.reply("226 File successfully written\r\n"), "226 File successfully written\r\n");
        assert_eq!(relay.reply("221 Bye!\r\n"), "221 Goodbye.\r\n");
        assert!(relay.pending.is_empty());
    }

    #[test]
    fn port_arguments() {
        assert_eq!(parse_port("PORT 127,0,0,1,4,1\r\n"), Some(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 1025)));
        assert_eq!(parse_port("PORT 127,0,0,1,4\r\n"), None);
        assert_eq!(parse_port("PORT 127,0,0,1,4,256\r\n"), None);
        assert_eq!(parse_port("PORT\r\n"), None);
    }
}
