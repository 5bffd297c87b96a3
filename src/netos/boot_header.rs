//! The NET+OS `bootHdr` check of `image.bin` files: before a load (catch a
//! truncated or wrong file) and in the simulator (after one).
//!
//! Layout (big-endian, see docs/netos.md): header size 0x28, 0x24, the
//! magic `bootHdr\0`, a zero word, flags, flash offset, RAM load address,
//! payload length, version; the payload from 0x28; then a CRC-32 (poly
//! 0x04C11DB7, not reflected, init 0, xorout 0) over everything before it.
//! Files without the magic are not judged: boot loaders (`rom.bin`) have none.

/// The CRC-32 of the `bootHdr` rule.
pub const BOOT_CRC: crc::Algorithm<u32> = crc::Algorithm {
    width: 32,
    poly: 0x04C1_1DB7,
    init: 0,
    refin: false,
    refout: false,
    xorout: 0,
    check: 0x89A1_897F,
    residue: 0,
};

pub const HEADER_LEN: usize = 0x28;
const MAGIC: &[u8; 8] = b"bootHdr\0";

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageCheck {
    /// No `bootHdr` magic at offset 8: not an application image.
    NoHeader,
    /// Header, length and CRC agree.
    Valid { payload_len: u32, crc: u32 },
    /// The file is shorter than the header says.
    Truncated { needed: usize, have: usize },
    /// The stored CRC differs from the computed one.
    BadCrc { stored: u32, computed: u32 },
}

impl std::fmt::Display for ImageCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImageCheck::NoHeader => f.write_str("no bootHdr header"),
            ImageCheck::Valid { payload_len, crc } => {
                write!(f, "bootHdr image, {payload_len} bytes, CRC 0x{crc:08X} OK")
            }
            ImageCheck::Truncated { needed, have } => {
                write!(f, "bootHdr image truncated: {have} bytes, the header needs {needed}")
            }
            ImageCheck::BadCrc { stored, computed } => {
                write!(f, "bootHdr image CRC mismatch: stored 0x{stored:08X}, computed 0x{computed:08X}")
            }
        }
    }
}

fn be32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Checks `data`; bytes after the CRC (XMODEM padding) are ignored.
pub fn check(data: &[u8]) -> ImageCheck {
    if data.len() < HEADER_LEN || &data[8..16] != MAGIC {
        return ImageCheck::NoHeader;
    }
    let payload_len = be32(data, 32);
    let crc_at = HEADER_LEN + payload_len as usize;
    let needed = crc_at + 4;
    if data.len() < needed {
        return ImageCheck::Truncated { needed, have: data.len() };
    }
    let computed = crc::Crc::<u32>::new(&BOOT_CRC).checksum(&data[..crc_at]);
    let stored = be32(data, crc_at);
    if stored == computed {
        ImageCheck::Valid { payload_len, crc: computed }
    } else {
        ImageCheck::BadCrc { stored, computed }
    }
}

/// Builds a valid image around `payload` (tests, the demo).
pub fn build(payload: &[u8], version: u32) -> Vec<u8> {
    let mut image = Vec::with_capacity(HEADER_LEN + payload.len() + 4);
    for word in [0x28u32, 0x24] {
        image.extend_from_slice(&word.to_be_bytes());
    }
    image.extend_from_slice(MAGIC);
    for word in [0u32, 0, 0x0001_0000, 0x0800_4000, payload.len() as u32, version] {
        image.extend_from_slice(&word.to_be_bytes());
    }
    image.extend_from_slice(payload);
    let crc = crc::Crc::<u32>::new(&BOOT_CRC).checksum(&image);
    image.extend_from_slice(&crc.to_be_bytes());
    image
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_rule() {
        // CRC-32 with poly 0x04C11DB7, init 0, no reflection, no xorout.
        assert_eq!(crc::Crc::<u32>::new(&BOOT_CRC).checksum(b"123456789"), 0x89A1_897F);
    }

    #[test]
    fn valid_truncated_corrupt_and_headerless() {
        let image = build(&[0xAB; 1000], 0x0100_0000);
        assert_eq!(check(&image), ImageCheck::Valid { payload_len: 1000, crc: be32(&image, image.len() - 4) });
        let mut padded = image.clone();
        padded.resize(image.len() + 100, 0x1A);
        assert!(matches!(check(&padded), ImageCheck::Valid { .. }));
        assert_eq!(check(&image[..500]), ImageCheck::Truncated { needed: 1044, have: 500 });
        let mut corrupt = image.clone();
        corrupt[100] ^= 1;
        assert!(matches!(check(&corrupt), ImageCheck::BadCrc { .. }));
        assert_eq!(check(b"rom.bin boot loader"), ImageCheck::NoHeader);
        let mut huge = image;
        huge[32..36].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(check(&huge), ImageCheck::Truncated { .. }));
    }
}
