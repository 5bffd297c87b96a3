//! Information Control Blocks (ICBs), the generic part: type (1 byte),
//! subtype (1 byte), data length (1 byte), data; and a counted list of them
//! (count byte, then the ICBs). Pure, no I/O.
//!
//! Type 0x01 is Action, 0x02 Data, 0x03 Extended. Extended ICBs have a 2-byte
//! ID and length; TFTP Manage does not use them, so this module refuses them
//! rather than guess. What a subtype means is `tftp_manage`'s business.

use serde::Serialize;

/// ICB type: Action (subtype numbers unique within one message type).
pub const ACTION: u8 = 0x01;
/// ICB type: Data (subtype numbers unique system-wide).
pub const DATA: u8 = 0x02;
/// ICB type: Extended (2-byte ID and length; not used by TFTP Manage).
pub const EXTENDED: u8 = 0x03;

/// One ICB, undecoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Icb {
    pub kind: u8,
    pub subtype: u8,
    #[serde(serialize_with = "serialize_hex")]
    pub data: Vec<u8>,
}

fn serialize_hex<S: serde::Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&super::trace::hex(bytes))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IcbError {
    #[error("no ICB count byte")]
    NoCount,
    #[error("ICB {index} of {count} is cut off: it needs {needed} bytes, {available} are left")]
    Truncated { index: usize, count: usize, needed: usize, available: usize },
    #[error("{extra} bytes after the {count} ICBs the count announces")]
    Trailing { count: usize, extra: usize },
    #[error("ICB {index} is an Extended ICB (type 0x03), which TFTP Manage does not use")]
    Extended { index: usize },
    #[error("ICB data of {len} bytes is over the 255 a length byte can say")]
    DataTooLong { len: usize },
    #[error("{count} ICBs are more than a count byte can say")]
    TooMany { count: usize },
}

impl Icb {
    pub fn new(kind: u8, subtype: u8, data: Vec<u8>) -> Icb {
        Icb { kind, subtype, data }
    }

    pub fn encoded_len(&self) -> usize {
        3 + self.data.len()
    }

    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), IcbError> {
        let len = u8::try_from(self.data.len()).map_err(|_| IcbError::DataTooLong { len: self.data.len() })?;
        out.extend_from_slice(&[self.kind, self.subtype, len]);
        out.extend_from_slice(&self.data);
        Ok(())
    }
}

/// The count byte and the ICBs.
pub fn encode_list(icbs: &[Icb], out: &mut Vec<u8>) -> Result<(), IcbError> {
    let count = u8::try_from(icbs.len()).map_err(|_| IcbError::TooMany { count: icbs.len() })?;
    let start = out.len();
    out.push(count);
    for icb in icbs {
        if let Err(error) = icb.encode(out) {
            out.truncate(start);
            return Err(error);
        }
    }
    Ok(())
}

/// A count byte and exactly that many ICBs, using all of `bytes`.
pub fn decode_list(bytes: &[u8]) -> Result<Vec<Icb>, IcbError> {
    let (&count, mut rest) = bytes.split_first().ok_or(IcbError::NoCount)?;
    let count = usize::from(count);
    let mut icbs = Vec::with_capacity(count);
    for index in 1..=count {
        if rest.len() < 3 {
            return Err(IcbError::Truncated { index, count, needed: 3, available: rest.len() });
        }
        if rest[0] == EXTENDED {
            return Err(IcbError::Extended { index });
        }
        let needed = 3 + usize::from(rest[2]);
        if rest.len() < needed {
            return Err(IcbError::Truncated { index, count, needed, available: rest.len() });
        }
        icbs.push(Icb::new(rest[0], rest[1], rest[3..needed].to_vec()));
        rest = &rest[needed..];
    }
    if !rest.is_empty() {
        return Err(IcbError::Trailing { count, extra: rest.len() });
    }
    Ok(icbs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_page_query_icb() {
        let icbs = decode_list(&[0x01, 0x01, 0x01, 0x00]).unwrap();
        assert_eq!(icbs, vec![Icb::new(ACTION, 0x01, vec![])]);
        let mut out = Vec::new();
        encode_list(&icbs, &mut out).unwrap();
        assert_eq!(out, [0x01, 0x01, 0x01, 0x00]);
    }

    #[test]
    fn invalid_lists() {
        assert_eq!(decode_list(&[]), Err(IcbError::NoCount));
        assert_eq!(
            decode_list(&[2, 1, 1, 0, 1]),
            Err(IcbError::Truncated { index: 2, count: 2, needed: 3, available: 1 })
        );
        assert_eq!(
            decode_list(&[1, 2, 0x37, 4, b'a']),
            Err(IcbError::Truncated { index: 1, count: 1, needed: 7, available: 4 })
        );
        assert_eq!(decode_list(&[0, 1]), Err(IcbError::Trailing { count: 0, extra: 1 }));
        assert_eq!(decode_list(&[1, 3, 0, 0, 0, 0]), Err(IcbError::Extended { index: 1 }));
        let mut out = vec![9];
        assert_eq!(
            encode_list(&[Icb::new(DATA, 0x37, vec![0; 256])], &mut out),
            Err(IcbError::DataTooLong { len: 256 })
        );
        assert_eq!(out, [9], "nothing appended on error");
    }

    proptest! {
        #[test]
        fn round_trip(icbs in proptest::collection::vec(
            (prop_oneof![Just(ACTION), Just(DATA), 4u8..], any::<u8>(), proptest::collection::vec(any::<u8>(), 0..40))
                .prop_map(|(k, s, d)| Icb::new(k, s, d)), 0..8)) {
            let mut out = Vec::new();
            encode_list(&icbs, &mut out).unwrap();
            prop_assert_eq!(decode_list(&out).unwrap(), icbs);
        }
    }
}
