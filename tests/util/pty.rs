//! PTY pairs: two connected serial ports with no hardware. The "device" end is
//! handed to a simulator or an lrzsz receiver, the other to flashline.

use std::path::PathBuf;

use serialport::{SerialPort, TTYPort};

/// A connected pair of pseudo-terminals. Both stay open while this lives.
pub struct PtyPair {
    pub controller: TTYPort,
    pub device: TTYPort,
}

impl PtyPair {
    pub fn new() -> PtyPair {
        let (controller, device) = TTYPort::pair().expect("open a PTY pair");
        PtyPair { controller, device }
    }

    /// The path of the device end (`/dev/pts/N`), for tools that open by name.
    pub fn device_path(&self) -> PathBuf {
        PathBuf::from(self.device.name().expect("a PTY has a name"))
    }

    /// The path of the controller end.
    pub fn controller_path(&self) -> PathBuf {
        PathBuf::from(self.controller.name().expect("a PTY has a name"))
    }
}

impl Default for PtyPair {
    fn default() -> Self {
        Self::new()
    }
}
