//! Block framing: the block layout (`SOH|STX, n, 255-n, data, check`), the
//! CRC-16 and checksum, the padding rule of the last block and YMODEM block 0
//! (name, size, time), and the file either end holds ([`Outgoing`],
//! [`Incoming`]): defined here, where block 0 is written and read, so the
//! sender and the receiver import the block layer and it imports neither.
//! No state: the sender and the receiver call these.

use super::{SOH, STX, TransferProtocol};

const CRC16: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_XMODEM);

/// A file to send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Name for YMODEM block 0 (no directories).
    pub name: String,
    pub data: Vec<u8>,
    /// Modification time, seconds since the epoch, for YMODEM block 0.
    pub mtime: u64,
}

/// A file the receiver got.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Incoming {
    /// From YMODEM block 0.
    pub name: Option<String>,
    /// From YMODEM block 0; XMODEM files keep their padding.
    pub declared_size: Option<u64>,
    pub mtime: Option<u64>,
    pub data: Vec<u8>,
}

/// How a block's data is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// CRC-16/XMODEM, two bytes big-endian.
    Crc16,
    /// 8-bit arithmetic sum, one byte.
    Checksum,
}

impl Check {
    pub(super) fn len(self) -> usize {
        match self {
            Check::Crc16 => 2,
            Check::Checksum => 1,
        }
    }

    pub(super) fn append(self, data: &[u8], out: &mut Vec<u8>) {
        match self {
            Check::Crc16 => out.extend_from_slice(&CRC16.checksum(data).to_be_bytes()),
            Check::Checksum => out.push(checksum(data)),
        }
    }

    pub(super) fn verify(self, data: &[u8], check: &[u8]) -> bool {
        match self {
            Check::Crc16 => check == CRC16.checksum(data).to_be_bytes(),
            Check::Checksum => check == [checksum(data)],
        }
    }
}

fn checksum(data: &[u8]) -> u8 {
    data.iter().fold(0u8, |sum, b| sum.wrapping_add(*b))
}

/// Appends one framed block to `out`.
pub fn encode_block(number: u8, data: &[u8], check: Check, out: &mut Vec<u8>) {
    debug_assert!(data.len() == 128 || data.len() == 1024);
    out.push(if data.len() == 1024 { STX } else { SOH });
    out.push(number);
    out.push(!number);
    out.extend_from_slice(data);
    check.append(data, out);
}

/// Splits `len` bytes into blocks: 1024 bytes while more than 128 remain (when
/// `big`), 128 bytes for the tail, so the padding never exceeds 127 bytes
/// beyond a 1K boundary.
pub(super) fn plan_blocks(len: usize, big: bool) -> Vec<(usize, usize)> {
    let mut blocks = Vec::new();
    let mut offset = 0;
    while offset < len {
        let size = if big && len - offset > 128 { 1024 } else { 128 };
        blocks.push((offset, size));
        offset += size;
    }
    blocks
}

/// The length an XMODEM receiver ends up with for a file of `len` bytes (the
/// padding rule of [`plan_blocks`]).
pub fn padded_len(len: usize, protocol: TransferProtocol) -> usize {
    plan_blocks(len, protocol != TransferProtocol::Xmodem).iter().map(|(_, size)| size).sum()
}

/// YMODEM block 0: `name NUL size mtime(octal) mode(octal)`, 128 bytes, or
/// 1024 when a long name needs it.
pub(super) fn ymodem_header(file: &Outgoing) -> Vec<u8> {
    let name = file.name.rsplit('/').next().unwrap_or(&file.name);
    let mut header = Vec::with_capacity(128);
    header.extend_from_slice(name.as_bytes());
    header.push(0);
    header.extend_from_slice(format!("{} {:o} 100644", file.data.len(), file.mtime).as_bytes());
    let size = if header.len() < 128 { 128 } else { 1024 };
    header.truncate(size - 1);
    header.resize(size, 0);
    header
}

/// Parses YMODEM block 0 data: `name NUL [size [mtime-octal [mode-octal ...]]]`.
pub(super) fn parse_ymodem_header(data: &[u8]) -> Result<Incoming, String> {
    let name_end = data.iter().position(|&b| b == 0).ok_or("no NUL after the file name")?;
    let name = String::from_utf8_lossy(&data[..name_end]).into_owned();
    let rest = &data[name_end + 1..];
    let info_end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    let info = String::from_utf8_lossy(&rest[..info_end]);
    let mut fields = info.split_ascii_whitespace();
    let declared_size = match fields.next() {
        Some(size) => Some(size.parse::<u64>().map_err(|_| format!("size `{size}` is not a number"))?),
        None => None,
    };
    let mtime = fields.next().and_then(|m| u64::from_str_radix(m, 8).ok());
    Ok(Incoming { name: Some(name), declared_size, mtime, data: Vec::new() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serial::xmodem::tests::file;

    #[test]
    fn block_encoding_matches_the_spec() {
        let mut out = Vec::new();
        encode_block(1, &[0x1A; 128], Check::Checksum, &mut out);
        assert_eq!(&out[..3], &[SOH, 0x01, 0xFE]);
        assert_eq!(out.len(), 132);
        assert_eq!(out[131], (0x1Au32 * 128 % 256) as u8);
        // CRC-16/XMODEM check value of "123456789" is 0x31C3.
        assert_eq!(CRC16.checksum(b"123456789"), 0x31C3);
        let mut out = Vec::new();
        encode_block(255, &[0u8; 1024], Check::Crc16, &mut out);
        assert_eq!(&out[..3], &[STX, 0xFF, 0x00]);
        assert_eq!(out.len(), 1029);
    }

    #[test]
    fn ymodem_header_parsing() {
        let header = ymodem_header(&file(1234));
        let parsed = parse_ymodem_header(&header).unwrap();
        assert_eq!(parsed.name.as_deref(), Some("image.bin"));
        assert_eq!(parsed.declared_size, Some(1234));
        assert!(parse_ymodem_header(&[b'a'; 128]).is_err());
        let mut bad = b"x\0notanumber".to_vec();
        bad.resize(128, 0);
        assert!(parse_ymodem_header(&bad).is_err());
        // A long name moves block 0 to 1K.
        let long = Outgoing { name: "n".repeat(200), data: vec![], mtime: 0 };
        assert_eq!(ymodem_header(&long).len(), 1024);
    }
}
