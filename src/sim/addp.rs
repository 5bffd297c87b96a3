//! The simulated NET+OS device's ADDP server (NET+OS 6.2 and later run one by
//! default): cookie `DVKT`, the NetSilicon GUID and the BSP's defaults
//! (hardware name and firmware `Unknown`, hardware revision 1), answering
//! from the device's running network settings.
//!
//! It follows the vendor's server where the notes confirm it: frames with
//! another cookie, any structural fault, or set / reboot / DHCP for the
//! broadcast MAC get no reply; a discovery whose GUID option is not the
//! device's is ignored; replies go by unicast to the sender. The password
//! is the device's root password (the NET+OS default is not confirmed:
//! docs/addp.md). Set static and DHCP write NV memory (and its file); they
//! take effect at the next boot, which a reboot request starts after the
//! reply is sent. While the device is down (booting, in its dialog) nothing
//! answers.
//!
//! The device's IP stack is the kernel's: on an interface of its own
//! ([`AddpConfig::own_interface`], inside a network namespace) the device
//! moves its address to the NV one each time its network comes up, so the
//! kernel answers ping there; elsewhere (loopback) it answers on the fixed
//! address it was given. It does not implement the MD5 challenge or the
//! wireless command.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::{Notify, watch};

use super::netos::{NetosState, NvMemory, store_nv, valid_field};
use crate::addp::frame::{
    BROADCAST_MAC, Cookie, ErrorCode, Field, Frame, NETSILICON_GUID, Password, Reply, Request, ResultFlag, VERSION_2,
    command,
};
use crate::addp::{GROUP, PORT};
use crate::mac::Mac;
use crate::sync::lock;

/// How the responder answers.
#[derive(Debug, Clone)]
pub struct AddpConfig {
    /// The address it answers on (unicast), and whose interface joins the group.
    pub address: Ipv4Addr,
    pub port: u16,
    pub cookie: Cookie,
    /// Join 224.0.5.128 (off on loopback, which cannot multicast).
    pub multicast: bool,
    /// The device owns its address on this interface: it is moved to the NV
    /// address each time the network comes up (a static one; with DHCP the
    /// given address is kept, as no DHCP server is simulated).
    pub own_interface: Option<String>,
    /// The root password when NV memory holds none (the factory one);
    /// `None`: the device asks for no password and takes any.
    pub password: Option<String>,
    pub nv_file: Option<PathBuf>,
    pub hardware_name: String,
    pub firmware: String,
    pub hardware_revision: u8,
    /// Ignore a discovery without the ADDPv2 options (VERSION and the GUID),
    /// as a server that insists on them would. Unconfirmed for NET+OS
    /// (docs/addp.md): off answers the plain form too.
    pub require_v2_options: bool,
}

impl Default for AddpConfig {
    fn default() -> AddpConfig {
        AddpConfig {
            address: Ipv4Addr::LOCALHOST,
            port: PORT,
            cookie: Cookie::DVKT,
            multicast: true,
            own_interface: None,
            password: Some("password".into()),
            nv_file: None,
            hardware_name: "Unknown".into(),
            firmware: "Unknown".into(),
            hardware_revision: 1,
            require_v2_options: false,
        }
    }
}

/// The device the responder speaks for (the hooks of `NetosDevice`).
pub struct DeviceLink {
    pub state: Arc<Mutex<NetosState>>,
    /// The running settings; `None` while the device is down.
    pub network: watch::Receiver<Option<NvMemory>>,
    pub restart: Arc<Notify>,
}

impl std::fmt::Debug for DeviceLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceLink").finish_non_exhaustive()
    }
}

/// Why the responder stopped.
#[derive(Debug, thiserror::Error)]
pub enum AddpSimError {
    #[error("ADDP responder: cannot {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("ADDP responder: `ip {args}` failed: {stderr}")]
    Address { args: String, stderr: String },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> AddpSimError {
    let what = what.into();
    move |source| AddpSimError::Io { what, source }
}

fn udp(bind: SocketAddrV4) -> Result<UdpSocket, AddpSimError> {
    let what = format!("bind {bind}");
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(io(&what))?;
    // Many simulated devices share the port (one address each, one group).
    socket.set_reuse_address(true).map_err(io(&what))?;
    socket.set_nonblocking(true).map_err(io(&what))?;
    socket.bind(&SocketAddr::V4(bind).into()).map_err(io(&what))?;
    UdpSocket::from_std(socket.into()).map_err(io(&what))
}

fn prefix(mask: Ipv4Addr) -> u32 {
    u32::from(mask).leading_ones()
}

fn ip_command(args: &[String]) -> Result<(), AddpSimError> {
    let output =
        std::process::Command::new("ip").args(args).output().map_err(io(format!("run `ip {}`", args.join(" "))))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(AddpSimError::Address {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

/// Serves ADDP for the device until it is dropped.
pub async fn serve(config: AddpConfig, mut link: DeviceLink) -> Result<(), AddpSimError> {
    // The address the device holds on its own interface, with its prefix.
    let mut held: Option<(Ipv4Addr, u32)> = None;
    loop {
        let running = match link.network.wait_for(Option::is_some).await {
            Ok(running) => running.clone().expect("waited for Some"),
            Err(_) => return Ok(()), // the device is gone
        };
        let mut address = config.address;
        if let Some(interface) = &config.own_interface
            && !running.dhcp
        {
            let wanted = (running.ip, prefix(running.mask));
            if held != Some(wanted) {
                // The old address goes first: deleting a primary address
                // also deletes the secondaries of its subnet.
                if let Some((old, bits)) = held.filter(|(old, _)| *old != wanted.0) {
                    ip_command(&[
                        "addr".into(),
                        "del".into(),
                        format!("{old}/{bits}"),
                        "dev".into(),
                        interface.clone(),
                    ])?;
                }
                // Already there at the first boot (the address it was started on).
                let _ = ip_command(&[
                    "addr".into(),
                    "add".into(),
                    format!("{}/{}", wanted.0, wanted.1),
                    "dev".into(),
                    interface.clone(),
                ]);
                held = Some(wanted);
            }
            address = running.ip;
        }
        let unicast = udp(SocketAddrV4::new(address, config.port))?;
        let group = if config.multicast {
            let socket = udp(SocketAddrV4::new(GROUP, config.port))?;
            socket.join_multicast_v4(GROUP, address).map_err(io(format!("join {GROUP} on {address}")))?;
            Some(socket)
        } else {
            None
        };
        tracing::info!("ADDP: answering on {address}:{} ({})", config.port, config.cookie);
        let mut buf = vec![0u8; 2048];
        let mut group_buf = vec![0u8; 2048];
        loop {
            let received = tokio::select! {
                changed = link.network.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    break; // down, or up with other settings: bind again
                }
                got = unicast.recv_from(&mut buf) => got.map(|(len, from)| (&buf[..len], from)),
                got = async {
                    match &group {
                        Some(group) => group.recv_from(&mut group_buf).await,
                        None => std::future::pending().await,
                    }
                } => got.map(|(len, from)| (&group_buf[..len], from)),
            };
            let (datagram, from) = match received {
                Ok(got) => got,
                Err(error) => {
                    tracing::debug!("ADDP receive: {error}");
                    continue;
                }
            };
            let Some((reply, restart)) = answer(&config, &link, &running, datagram, from) else { continue };
            let mut wire = Vec::new();
            if reply.encode(&mut wire).is_ok()
                && let Err(error) = unicast.send_to(&wire, from).await
            {
                tracing::debug!("ADDP reply to {from}: {error}");
            }
            if restart {
                link.restart.notify_one();
            }
        }
    }
}

/// The reply to one datagram, and whether the device restarts after it;
/// `None`: no reply (not ours, malformed, another device's).
pub fn answer(
    config: &AddpConfig,
    link: &DeviceLink,
    running: &NvMemory,
    datagram: &[u8],
    from: SocketAddr,
) -> Option<(Reply, bool)> {
    let Ok(Some((frame, used))) = Frame::decode(datagram) else { return None };
    if used != datagram.len() || frame.cookie != config.cookie {
        return None;
    }
    let request = Request::decode(&frame).ok()??;
    let own_mac: Mac = running.mac.parse().ok()?;
    let reply = |command, fields| Reply { cookie: config.cookie, command, fields };
    match request {
        Request::Discovery { mac, options } => {
            let other_guid = options.iter().any(|o| matches!(o, Field::Guid(g) if *g != NETSILICON_GUID));
            let v2 = options.iter().any(|o| matches!(o, Field::Version(_)))
                && options.iter().any(|o| matches!(o, Field::Guid(_)));
            if (mac != BROADCAST_MAC && mac != own_mac) || other_guid || (config.require_v2_options && !v2) {
                return None;
            }
            let (ip, mask) =
                if running.dhcp { (config.address, Ipv4Addr::new(255, 255, 0, 0)) } else { (running.ip, running.mask) };
            let asker_elsewhere = match from {
                SocketAddr::V4(v4) => !crate::addp::client::same_subnet(*v4.ip(), ip, mask),
                SocketAddr::V6(_) => true,
            };
            let fields = vec![
                Field::Mac(own_mac),
                Field::Ip(ip),
                Field::Mask(mask),
                Field::Gateway(running.gateway),
                Field::HardwareName(config.hardware_name.clone()),
                Field::Dhcp { enabled: running.dhcp, wide: false },
                Field::HardwareRevision(config.hardware_revision),
                Field::Firmware(config.firmware.clone()),
                Field::Advisory(u16::from(asker_elsewhere)),
                Field::SerialPorts(1),
                Field::Version(VERSION_2),
                Field::Guid(NETSILICON_GUID),
            ];
            Some((reply(command::DISCOVERY_REPLY, fields), false))
        }
        Request::SetStatic { mac, password, ip, mask, gateway } => {
            let verdict = operate(config, link, own_mac, mac, &password, |nv| {
                let new = NvMemory { ip, mask, ..nv.clone() };
                (valid_field(0, ip, nv) && valid_field(1, mask, nv) && valid_field(2, gateway, &new))
                    .then_some(NvMemory { dhcp: false, gateway, ..new })
            })?;
            Some((reply(command::SET_STATIC_REPLY, result_fields(verdict, own_mac)), false))
        }
        Request::Dhcp { mac, password, enable } => {
            let verdict =
                operate(config, link, own_mac, mac, &password, |nv| Some(NvMemory { dhcp: enable, ..nv.clone() }))?;
            Some((reply(command::DHCP_REPLY, result_fields(verdict, own_mac)), false))
        }
        Request::Reboot { mac, password } => {
            let verdict = operate(config, link, own_mac, mac, &password, |nv| Some(nv.clone()))?;
            Some((reply(command::REBOOT_REPLY, result_fields(verdict, own_mac)), verdict == ErrorCode::None))
        }
    }
}

/// Checks the target and the password, then applies `change` to NV memory
/// (`None` from it: the value is refused). `None`: no reply at all.
fn operate(
    config: &AddpConfig,
    link: &DeviceLink,
    own_mac: Mac,
    mac: Mac,
    password: &Password,
    change: impl FnOnce(&NvMemory) -> Option<NvMemory>,
) -> Option<ErrorCode> {
    if mac != own_mac {
        return None; // the broadcast MAC included: ignored
    }
    let mut state = lock(&link.state);
    let expected = state.nv.root_password.clone().or_else(|| config.password.clone());
    if expected.is_some_and(|p| p.as_bytes() != password.0.as_slice()) {
        return Some(ErrorCode::AuthenticationFailure);
    }
    let Some(nv) = change(&state.nv) else { return Some(ErrorCode::InvalidValue) };
    if let Some(path) = &config.nv_file
        && let Err(error) = store_nv(path, &nv)
    {
        tracing::warn!("{error}");
        return Some(ErrorCode::UnableToSave);
    }
    state.nv = nv;
    Some(ErrorCode::None)
}

/// The result fields in the order of the real Connect ME's replies.
fn result_fields(code: ErrorCode, mac: Mac) -> Vec<Field> {
    let (flag, message) = match code {
        ErrorCode::None => (ResultFlag::Success, "Operation Successful"),
        ErrorCode::AuthenticationFailure => (ResultFlag::Failure, "Authentication Failure"),
        ErrorCode::InvalidValue => (ResultFlag::Failure, "Invalid value"),
        ErrorCode::UnableToSave => (ResultFlag::Failure, "Unable to save"),
        _ => (ResultFlag::Failure, "Operation Failed"),
    };
    vec![Field::ResultFlag(flag), Field::ResultMessage(message.into()), Field::ErrorCode(code), Field::Mac(mac)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(nv: NvMemory) -> (DeviceLink, watch::Sender<Option<NvMemory>>) {
        let (network, receiver) = watch::channel(Some(nv.clone()));
        let state = Arc::new(Mutex::new(NetosState { nv, ..NetosState::default() }));
        (DeviceLink { state, network: receiver, restart: Arc::new(Notify::new()) }, network)
    }

    fn static_nv() -> NvMemory {
        NvMemory {
            dhcp: false,
            ip: Ipv4Addr::new(10, 0, 0, 231),
            mask: Ipv4Addr::new(255, 255, 255, 0),
            gateway: Ipv4Addr::new(10, 0, 0, 1),
            mac: "00:40:9D:31:A9:0A".into(),
            ..NvMemory::default()
        }
    }

    fn ask(config: &AddpConfig, link: &DeviceLink, request: &Request, cookie: Cookie) -> Option<(Reply, bool)> {
        let mut wire = Vec::new();
        request.encode(cookie, &mut wire).unwrap();
        let running = link.network.borrow().clone().unwrap();
        answer(config, link, &running, &wire, "10.0.0.5:40000".parse().unwrap())
    }

    const MAC: Mac = Mac([0x00, 0x40, 0x9d, 0x31, 0xa9, 0x0a]);

    #[test]
    fn discovery_answers_its_cookie_and_guid_only() {
        let config = AddpConfig::default();
        let (link, _network) = device(static_nv());
        let (reply, restart) = ask(&config, &link, &Request::discovery(BROADCAST_MAC), Cookie::DVKT).unwrap();
        assert!(!restart);
        let info = reply.device();
        assert_eq!(
            (info.mac, info.ip, info.dhcp, info.advisory),
            (Some(MAC), Some(static_nv().ip), Some(false), Some(0))
        );
        assert_eq!(info.guid.as_deref(), Some("bf6db409-c83d-44a3-a36d-21797d2f73f9"));
        assert!(ask(&config, &link, &Request::discovery(BROADCAST_MAC), Cookie::DIGI).is_none(), "other cookie");
        let other_guid = Request::Discovery { mac: BROADCAST_MAC, options: vec![Field::Guid([7; 16])] };
        assert!(ask(&config, &link, &other_guid, Cookie::DVKT).is_none(), "other GUID");
        // The plain form (no options) is answered unless the switch asks for v2.
        let plain = Request::Discovery { mac: BROADCAST_MAC, options: vec![] };
        assert!(ask(&config, &link, &plain, Cookie::DVKT).is_some());
        let strict = AddpConfig { require_v2_options: true, ..AddpConfig::default() };
        assert!(ask(&strict, &link, &plain, Cookie::DVKT).is_none(), "plain form to a v2-only server");
        assert!(ask(&strict, &link, &Request::discovery(BROADCAST_MAC), Cookie::DVKT).is_some());
        let other_mac = Request::Discovery { mac: Mac([2; 6]), options: vec![] };
        assert!(ask(&config, &link, &other_mac, Cookie::DVKT).is_none(), "another device's MAC");
        // A structural fault: silence.
        let running = static_nv();
        assert!(answer(&config, &link, &running, b"DVKT\x00\x01\x00\x06\xff", "10.0.0.5:1".parse().unwrap()).is_none());
    }

    #[test]
    fn set_static_checks_password_and_values_and_writes_nv() {
        let dir = tempfile::tempdir().unwrap();
        let config = AddpConfig { nv_file: Some(dir.path().join("nv.json")), ..AddpConfig::default() };
        let (link, _network) = device(static_nv());
        let set = |password: &str, ip: [u8; 4]| Request::SetStatic {
            ip: Ipv4Addr::from(ip),
            mask: Ipv4Addr::new(255, 255, 255, 0),
            gateway: Ipv4Addr::new(10, 0, 0, 1),
            mac: MAC,
            password: Password(password.as_bytes().to_vec()),
        };
        let (reply, _) = ask(&config, &link, &set("dbps", [10, 0, 0, 9]), Cookie::DVKT).unwrap();
        assert_eq!(
            (reply.result_flag(), reply.error_code()),
            (Some(ResultFlag::Failure), Some(ErrorCode::AuthenticationFailure))
        );
        assert_eq!(reply.result_message().as_deref(), Some("Authentication Failure"));
        let (reply, _) = ask(&config, &link, &set("password", [0, 0, 0, 0]), Cookie::DVKT).unwrap();
        assert_eq!(reply.error_code(), Some(ErrorCode::InvalidValue));
        assert_eq!(link.state.lock().unwrap().nv.ip, static_nv().ip, "nothing written");
        let (reply, _) = ask(&config, &link, &set("password", [10, 0, 0, 9]), Cookie::DVKT).unwrap();
        assert_eq!(
            (reply.command, reply.result_flag(), reply.mac()),
            (command::SET_STATIC_REPLY, Some(ResultFlag::Success), Some(MAC))
        );
        assert_eq!(link.state.lock().unwrap().nv.ip, Ipv4Addr::new(10, 0, 0, 9));
        let saved: NvMemory =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("nv.json")).unwrap()).unwrap();
        assert_eq!(saved.ip, Ipv4Addr::new(10, 0, 0, 9));
        // Running settings are unchanged until the next boot.
        let (reply, _) = ask(&config, &link, &Request::discovery(BROADCAST_MAC), Cookie::DVKT).unwrap();
        assert_eq!(reply.device().ip, Some(static_nv().ip));
        // The broadcast MAC: no reply.
        let broadcast = Request::Reboot { mac: BROADCAST_MAC, password: Password(b"password".to_vec()) };
        assert!(ask(&config, &link, &broadcast, Cookie::DVKT).is_none());
    }

    #[test]
    fn reboot_restarts_after_replying_and_dhcp_is_saved() {
        let config = AddpConfig::default();
        let (link, _network) = device(static_nv());
        let reboot = |password: &str| Request::Reboot { mac: MAC, password: Password(password.as_bytes().to_vec()) };
        let (reply, restart) = ask(&config, &link, &reboot("wrong"), Cookie::DVKT).unwrap();
        assert_eq!((reply.error_code(), restart), (Some(ErrorCode::AuthenticationFailure), false));
        let (reply, restart) = ask(&config, &link, &reboot("password"), Cookie::DVKT).unwrap();
        assert_eq!(
            (reply.command, reply.result_flag(), restart),
            (command::REBOOT_REPLY, Some(ResultFlag::Success), true)
        );
        let dhcp = Request::Dhcp { enable: true, mac: MAC, password: Password(b"password".to_vec()) };
        let (reply, _) = ask(&config, &link, &dhcp, Cookie::DVKT).unwrap();
        assert_eq!(reply.result_flag(), Some(ResultFlag::Success));
        assert!(link.state.lock().unwrap().nv.dhcp);
        // No root password configured: any password is taken.
        let open = AddpConfig { password: None, ..AddpConfig::default() };
        assert_eq!(ask(&open, &link, &reboot("anything"), Cookie::DVKT).unwrap().0.error_code(), Some(ErrorCode::None));
    }
}
