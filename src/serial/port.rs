//! Opening a serial port with a profile's line settings, async: a local
//! port by path, exclusively; a network port (`rfc2217://HOST:PORT`,
//! `tcp://HOST:PORT`, see [`remote`](super::remote)); or a stable USB name
//! (`usb-serial:SERIAL[:INTERFACE]`, `usb-path:PATH`, see
//! [`names`](super::names)). [`open_named`] is the one place a port name
//! from a profile, an inventory or `--port` is turned into a [`Port`].
//!
//! Exclusive means a second opener fails at once with "port ... is in use"
//! instead of sharing a garbled session. serialport takes both locks on open:
//! `TIOCEXCL` (refuses other opens, except for root) and an exclusive `flock`
//! (which also holds against root, and against tools that honour it, such as
//! another flashline). This module does not read or write the port: callers
//! get an `AsyncRead + AsyncWrite` stream.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_serial::{SerialPortBuilderExt, SerialStream};

use super::names::{self, DevRoot, NameError};
use super::remote::{self, RemoteError, RemoteName, RemotePort, RemoteTimeouts};
use super::settings::{FlowControl, Parity, SerialSettings};
use crate::failure::{Classify, FailureClass};

/// Why a port could not be opened. All are environment problems.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("port {} is in use (another program has it open)", path.display())]
    InUse { path: PathBuf },
    #[error("port {} does not exist", path.display())]
    NotFound { path: PathBuf },
    #[error("no permission to open port {} (add yourself to the `dialout` group)", path.display())]
    PermissionDenied { path: PathBuf },
    #[error("cannot open port {}: {message}", path.display())]
    Other { path: PathBuf, message: String },
    /// A network port: connection refused, no answer, a server that is not
    /// RFC 2217.
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// A port name that cannot be a port (a malformed `rfc2217://` or USB name).
    #[error("`{name}` is not a port name: {message}")]
    BadName { name: String, message: String },
    /// A stable name that matches no port, or several.
    #[error(transparent)]
    Name(#[from] NameError),
}

impl Classify for PortError {
    fn class(&self) -> FailureClass {
        match self {
            PortError::InUse { .. }
            | PortError::NotFound { .. }
            | PortError::PermissionDenied { .. }
            | PortError::Other { .. }
            | PortError::Remote(_) => FailureClass::Environment,
            PortError::BadName { .. } => FailureClass::Input,
            PortError::Name(error) => error.class(),
        }
    }

    fn help(&self) -> Option<&str> {
        Some(match self {
            PortError::InUse { .. } => {
                "close the other program (minicom, screen, another flashline) or pick another port"
            }
            PortError::NotFound { .. } => "check the cable and the port name (ls /dev/ttyUSB* /dev/ttyACM*)",
            PortError::PermissionDenied { .. } | PortError::Other { .. } => "check the port and your permissions",
            PortError::Remote(_) => {
                "check the serial server's address, that it runs, and its accepter (telnet(rfc2217) or tcp)"
            }
            PortError::BadName { .. } => {
                "a port is a path, rfc2217://HOST:PORT, tcp://HOST:PORT, usb-serial:SERIAL[:INTERFACE] or usb-path:PATH"
            }
            PortError::Name(_) => "`flashline ports` lists the ports with their serial numbers and paths",
        })
    }
}

/// An open, exclusively held serial port.
pub struct SerialPort {
    stream: SerialStream,
    path: PathBuf,
}

impl std::fmt::Debug for SerialPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SerialPort").field("path", &self.path).finish()
    }
}

impl SerialPort {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Opens `path` with `settings`, exclusively. Must run inside a tokio runtime.
pub fn open(path: &Path, settings: &SerialSettings) -> Result<SerialPort, PortError> {
    let data_bits = match settings.data_bits {
        5 => tokio_serial::DataBits::Five,
        6 => tokio_serial::DataBits::Six,
        7 => tokio_serial::DataBits::Seven,
        _ => tokio_serial::DataBits::Eight,
    };
    let parity = match settings.parity {
        Parity::None => tokio_serial::Parity::None,
        Parity::Even => tokio_serial::Parity::Even,
        Parity::Odd => tokio_serial::Parity::Odd,
    };
    let stop_bits = if settings.stop_bits == 2 { tokio_serial::StopBits::Two } else { tokio_serial::StopBits::One };
    let flow_control = match settings.flow_control {
        FlowControl::None => tokio_serial::FlowControl::None,
        FlowControl::Software => tokio_serial::FlowControl::Software,
        FlowControl::Hardware => tokio_serial::FlowControl::Hardware,
    };
    let builder = tokio_serial::new(path.to_string_lossy(), settings.baud)
        .data_bits(data_bits)
        .parity(parity)
        .stop_bits(stop_bits)
        .flow_control(flow_control);
    let stream = builder.open_native_async().map_err(|error| classify(path, error))?;
    Ok(SerialPort { stream, path: path.to_path_buf() })
}

fn classify(path: &Path, error: tokio_serial::Error) -> PortError {
    let path = path.to_path_buf();
    match error.kind {
        // serialport reports both EBUSY (TIOCEXCL) and a held flock as NoDevice.
        tokio_serial::ErrorKind::NoDevice => PortError::InUse { path },
        tokio_serial::ErrorKind::Io(io::ErrorKind::NotFound) => PortError::NotFound { path },
        tokio_serial::ErrorKind::Io(io::ErrorKind::PermissionDenied) => PortError::PermissionDenied { path },
        _ => PortError::Other { path, message: error.description },
    }
}

/// Any open port: local or over the network, one byte stream.
#[derive(Debug)]
pub enum Port {
    Local(SerialPort),
    Remote(RemotePort),
}

/// Checks the form of a port name without opening or resolving anything
/// (for an inventory's `port`, before any port is opened): a malformed
/// network name, or a stable name with nothing after its prefix.
pub fn check_name(name: &str) -> Result<(), String> {
    RemoteName::parse(name)?;
    for prefix in ["usb-serial:", "usb-path:"] {
        if name.strip_prefix(prefix).is_some_and(|rest| rest.trim().is_empty()) {
            return Err(format!("`{prefix}` needs what to look for after it"));
        }
    }
    if name.trim().is_empty() {
        return Err("the port name is empty".into());
    }
    Ok(())
}

/// Opens the port `name` names, with `settings`: a network name connects
/// (see [`remote::connect`]), a USB name is resolved under `dev_root` (see
/// [`names::resolve`]), anything else is a local path, opened exclusively.
pub async fn open_named(name: &str, settings: &SerialSettings, dev_root: &DevRoot) -> Result<Port, PortError> {
    let bad = |message: String| PortError::BadName { name: name.to_string(), message };
    check_name(name).map_err(bad)?;
    if let Some(remote) = RemoteName::parse(name).map_err(bad)? {
        return Ok(Port::Remote(remote::connect(&remote, settings, RemoteTimeouts::default()).await?));
    }
    let path = match names::resolve(name, dev_root)? {
        Some(path) => path,
        None => PathBuf::from(name),
    };
    Ok(Port::Local(open(&path, settings)?))
}

impl AsyncRead for Port {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Port::Local(port) => Pin::new(port).poll_read(cx, buf),
            Port::Remote(port) => Pin::new(port).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Port {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Port::Local(port) => Pin::new(port).poll_write(cx, buf),
            Port::Remote(port) => Pin::new(port).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Port::Local(port) => Pin::new(port).poll_flush(cx),
            Port::Remote(port) => Pin::new(port).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Port::Local(port) => Pin::new(port).poll_shutdown(cx),
            Port::Remote(port) => Pin::new(port).poll_shutdown(cx),
        }
    }
}

impl AsyncRead for SerialPort {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for SerialPort {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn second_open_of_a_pty_is_refused_as_in_use() {
        let (_controller, device) = tokio_serial::SerialStream::pair().expect("pty pair");
        let path = PathBuf::from(tokio_serial::SerialPort::name(&device).expect("a pty has a name"));
        let settings = SerialSettings::default();
        let first = open(&path, &settings).expect("first open");
        let error = open(&path, &settings).expect_err("second open must fail");
        assert!(matches!(error, PortError::InUse { .. }), "{error:?}");
        assert_eq!(error.to_string(), format!("port {} is in use (another program has it open)", path.display()));
        drop(first);
        open(&path, &settings).expect("free again after the first closes");
        let missing = open(Path::new("/dev/flashline-no-such-port"), &settings).unwrap_err();
        assert!(matches!(missing, PortError::NotFound { .. }), "{missing:?}");
    }

    #[test]
    fn port_names_are_checked_before_anything_opens() {
        for good in
            ["/dev/ttyUSB0", "rfc2217://10.0.0.9:4001", "tcp://[::1]:2000", "usb-serial:A50285BI:1", "usb-path:0:2:1.0"]
        {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        assert!(check_name("rfc2217://host").unwrap_err().contains("port is missing"));
        assert!(check_name("usb-serial:").unwrap_err().contains("needs what to look for"));
        assert!(check_name("").is_err());
    }
}
