//! Which data connection an upload uses, and the fallback of `mode: auto`:
//! EPSV, then PASV, then PORT (active). A mode is given up when the server
//! refuses its command (a 5xx reply, or an answer without a usable address)
//! or when its data connection does not come up within the connect timeout;
//! a passive data connection that cannot be made skips the other passive
//! command, since it would be made the same way. A mode given up stays given
//! up for the rest of the upload (a device that refused PASV once refuses it
//! in the next session too).
//!
//! [`DataModes`] is the bookkeeping, without I/O; [`PassiveProbe`] makes the
//! passive data connection for suppaftp (bounded in time) and remembers
//! whether the server offered an address, which tells a refused EPSV or
//! PASV apart from a refused STOR.
//!
//! The data connection only ever goes to the host the control connection
//! dialled. A PASV reply carries an address as well as a port, and a hostile
//! or misconfigured server could name any host there (another device, a
//! host on another network) and have the image sent to it; as curl does by
//! default (`CURLOPT_FTP_SKIP_PASV_IP`), only the port of the reply is used
//! ([`passive_target`]), and an address other than the control peer's is
//! noted, never followed. EPSV replies carry no address (suppaftp uses the
//! control peer), and in active mode suppaftp accepts a data connection only
//! from the control peer (`ActivePeerCheck::ControlPeer`, set explicitly
//! where the session is made).

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use suppaftp::FtpError as SuppaError;
use suppaftp::Mode;
use tokio::net::TcpStream;

use super::FtpMode;
use crate::sync::lock;

/// The modes an upload may still use, in order, and why earlier ones were
/// given up.
#[derive(Debug, Clone)]
pub struct DataModes {
    auto: bool,
    left: Vec<FtpMode>,
    given_up: Vec<String>,
}

impl DataModes {
    pub fn new(mode: FtpMode) -> DataModes {
        let left = match mode {
            FtpMode::Auto => vec![FtpMode::Epsv, FtpMode::Passive, FtpMode::Active],
            one => vec![one],
        };
        DataModes { auto: mode == FtpMode::Auto, left, given_up: Vec::new() }
    }

    /// The mode to use now (never `Auto`). After the last mode was given up
    /// it stays the last one, so a report still names it.
    pub fn current(&self) -> FtpMode {
        self.left[0]
    }

    pub fn is_auto(&self) -> bool {
        self.auto
    }

    /// What happened to the modes given up, in order.
    pub fn given_up(&self) -> &[String] {
        &self.given_up
    }

    /// Gives up the current mode for `why`. `passive_unreachable`: a passive
    /// data connection could not be made, so the other passive mode is
    /// skipped too. Returns the next mode, or None when none is left.
    pub fn give_up(&mut self, why: String, passive_unreachable: bool) -> Option<FtpMode> {
        self.given_up.push(why);
        if self.left.len() == 1 {
            return None;
        }
        self.left.remove(0);
        if passive_unreachable {
            while self.left.len() > 1 && matches!(self.left[0], FtpMode::Epsv | FtpMode::Passive) {
                self.left.remove(0);
            }
        }
        Some(self.current())
    }
}

/// Where a passive data connection goes: the control connection's peer, at
/// the port the server offered. Also returns the address the reply named
/// when it was another one (it is not used).
pub fn passive_target(offered: SocketAddr, control_peer: IpAddr) -> (SocketAddr, Option<SocketAddr>) {
    let target = SocketAddr::new(control_peer, offered.port());
    (target, (offered.ip() != control_peer).then_some(offered))
}

/// The passive data connection of one transfer, as suppaftp asks for it.
#[derive(Debug, Default)]
pub struct PassiveProbe {
    /// The server answered EPSV or PASV with an address.
    offered: AtomicBool,
    /// Why the connection to that address failed.
    failure: Mutex<Option<String>>,
    /// The address a PASV reply named when it was not the control peer's.
    elsewhere: Mutex<Option<SocketAddr>>,
}

impl PassiveProbe {
    /// Forgets the last transfer.
    pub fn reset(&self) {
        self.offered.store(false, Ordering::SeqCst);
        *lock(&self.failure) = None;
        *lock(&self.elsewhere) = None;
    }

    /// The address the last PASV reply named when it was not the control
    /// connection's peer (ignored: the data connection went to the peer).
    pub fn elsewhere(&self) -> Option<SocketAddr> {
        *lock(&self.elsewhere)
    }

    pub fn offered(&self) -> bool {
        self.offered.load(Ordering::SeqCst)
    }

    /// `ADDRESS: WHY` when the connection failed.
    pub fn failure(&self) -> Option<String> {
        lock(&self.failure).clone()
    }

    /// suppaftp's passive stream builder: connects to `control_peer` at the
    /// offered port ([`passive_target`]) within `limit`, noting what
    /// happened in `probe`.
    #[allow(clippy::type_complexity)]
    pub fn builder(
        probe: Arc<PassiveProbe>,
        limit: Duration,
        control_peer: IpAddr,
    ) -> impl Fn(SocketAddr) -> Pin<Box<dyn Future<Output = Result<TcpStream, SuppaError>> + Send + Sync>>
    + Send
    + Sync
    + 'static {
        move |offered| {
            let probe = probe.clone();
            Box::pin(async move {
                probe.offered.store(true, Ordering::SeqCst);
                let (address, elsewhere) = passive_target(offered, control_peer);
                *lock(&probe.elsewhere) = elsewhere;
                // A task's handle is Sync where the connect future is not.
                let connecting =
                    tokio::spawn(async move { tokio::time::timeout(limit, TcpStream::connect(address)).await });
                let why = match connecting.await {
                    Ok(Ok(Ok(stream))) => return Ok(stream),
                    Ok(Ok(Err(error))) => error.to_string(),
                    Ok(Err(_)) => format!("no connection within {} s", limit.as_secs_f64()),
                    Err(error) => error.to_string(),
                };
                let why = match elsewhere {
                    Some(named) => format!(
                        "{address}: {why} (the reply named {named}, which is not the control connection's \
                         peer {control_peer}: flashline never follows it)"
                    ),
                    None => format!("{address}: {why}"),
                };
                *lock(&probe.failure) = Some(why.clone());
                Err(SuppaError::ConnectionError(std::io::Error::new(std::io::ErrorKind::TimedOut, why)))
            })
        }
    }
}

/// suppaftp's mode for one of ours; `auto` is never current.
pub(super) fn suppa_mode(mode: FtpMode) -> Mode {
    match mode {
        FtpMode::Epsv => Mode::ExtendedPassive,
        FtpMode::Active => Mode::Active,
        FtpMode::Passive | FtpMode::Auto => Mode::Passive,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_goes_epsv_pasv_port_and_stays() {
        let mut modes = DataModes::new(FtpMode::Auto);
        assert_eq!(modes.current(), FtpMode::Epsv);
        assert_eq!(modes.give_up("EPSV refused: 550 Permission denied.".into(), false), Some(FtpMode::Passive));
        assert_eq!(modes.give_up("PASV refused: 550 Permission denied.".into(), false), Some(FtpMode::Active));
        assert_eq!(modes.current(), FtpMode::Active);
        assert_eq!(modes.give_up("PORT refused: 500 no".into(), false), None);
        assert_eq!(modes.current(), FtpMode::Active, "the last mode stays named");
        assert_eq!(modes.given_up().len(), 3);
    }

    #[test]
    fn an_unreachable_passive_connection_skips_to_port() {
        let mut modes = DataModes::new(FtpMode::Auto);
        assert_eq!(
            modes.give_up("EPSV data connection to 127.0.0.1:4000: no connection".into(), true),
            Some(FtpMode::Active)
        );
    }

    #[test]
    fn a_passive_reply_gives_only_its_port() {
        let peer: IpAddr = [127, 0, 0, 1].into();
        let (target, elsewhere) = passive_target(([127, 0, 0, 2], 40001).into(), peer);
        assert_eq!(target, SocketAddr::from(([127, 0, 0, 1], 40001)));
        assert_eq!(elsewhere, Some(SocketAddr::from(([127, 0, 0, 2], 40001))));
        let (target, elsewhere) = passive_target(([198, 18, 0, 1], 21).into(), peer);
        assert_eq!(target, SocketAddr::from(([127, 0, 0, 1], 21)), "another network is never dialled");
        assert!(elsewhere.is_some());
        let (target, elsewhere) = passive_target(([127, 0, 0, 1], 5000).into(), peer);
        assert_eq!((target, elsewhere), (SocketAddr::from(([127, 0, 0, 1], 5000)), None));
    }

    #[test]
    fn an_explicit_mode_has_no_fallback() {
        for mode in [FtpMode::Passive, FtpMode::Epsv, FtpMode::Active] {
            let mut modes = DataModes::new(mode);
            assert_eq!(modes.current(), mode);
            assert!(!modes.is_auto());
            assert_eq!(modes.give_up("refused".into(), true), None);
        }
    }
}
