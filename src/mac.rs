//! The one MAC address type: six bytes, printed one way everywhere.
//!
//! The canonical printed form is upper-case hex pairs with colons,
//! `00:40:9D:3A:00:01`: the form the unit records key on (the `units` and
//! `runs` tables) and the form NET+OS prints on its console, so what a
//! report shows. ARP and ADDP output, advice text and JSON print it the
//! same way.
//!
//! Parsing ([`FromStr`](std::str::FromStr)) takes six hex pairs separated by
//! `:` or `-`, in either case. [`Mac::parse_any_spelling`] takes what people
//! type into a search (bare digits, dots, spaces). This module does not know
//! where a MAC comes from (console regexes, ADDP frames, ARP replies): it is
//! only the value.

use std::fmt;

/// A MAC address, printed `00:40:9D:3A:00:01`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02X}:{b:02X}:{c:02X}:{d:02X}:{e:02X}:{g:02X}")
    }
}

impl serde::Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl std::str::FromStr for Mac {
    type Err = String;

    /// `aa:bb:cc:dd:ee:ff` or with `-`, any case.
    fn from_str(text: &str) -> Result<Mac, String> {
        let parts: Vec<&str> = text.trim().split([':', '-']).collect();
        let mut mac = [0u8; 6];
        if parts.len() != 6 {
            return Err(format!("`{text}` is not a MAC address (six hex pairs)"));
        }
        for (byte, part) in mac.iter_mut().zip(parts) {
            *byte = u8::from_str_radix(part, 16).map_err(|_| format!("`{text}` is not a MAC address"))?;
        }
        Ok(Mac(mac))
    }
}

impl Mac {
    /// A full MAC as typed into a search box: twelve hex digits in either
    /// case, with `:`, `-`, `.` or spaces anywhere between them or none
    /// (`00409d3a0001`, `0040.9d3a.0001`). None for anything else.
    pub fn parse_any_spelling(text: &str) -> Option<Mac> {
        let digits: Vec<u8> = text.bytes().filter(|c| !matches!(c, b':' | b'-' | b'.' | b' ')).collect();
        if digits.len() != 12 || !digits.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        let mut mac = [0u8; 6];
        for (byte, pair) in mac.iter_mut().zip(digits.chunks(2)) {
            *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
        }
        Some(Mac(mac))
    }
}

/// The text a record stores for a unit's MAC: the canonical form when `text`
/// is a MAC in any spelling, else `text` trimmed and upper-cased with `-` as
/// `:` (a record keeps what it was given rather than losing the unit).
pub fn record_form(text: &str) -> String {
    Mac::parse_any_spelling(text)
        .map_or_else(|| text.trim().replace('-', ":").to_ascii_uppercase(), |mac| mac.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_printed_form_for_every_spelling() {
        for spelling in ["00:40:9d:3a:00:01", "00-40-9D-3A-00-01", " 00:40:9D:3A:00:01 "] {
            assert_eq!(spelling.parse::<Mac>().unwrap().to_string(), "00:40:9D:3A:00:01", "{spelling}");
        }
        for spelling in ["00409d3a0001", "0040.9d3a.0001", "00:40:9d:3a:00:01"] {
            assert_eq!(Mac::parse_any_spelling(spelling).unwrap().to_string(), "00:40:9D:3A:00:01", "{spelling}");
        }
        assert_eq!(record_form("00-40-9d-01-02-03"), "00:40:9D:01:02:03");
        assert_eq!(record_form(" not-a-mac "), "NOT:A:MAC");
    }

    #[test]
    fn what_is_not_six_pairs_is_refused() {
        for bad in ["", "00:40:9d:3a:00", "00:40:9d:3a:00:01:02", "00:40:9d:3a:00:0g"] {
            assert!(bad.parse::<Mac>().is_err(), "{bad}");
        }
        assert_eq!(Mac::parse_any_spelling("00409d3a00"), None);
        assert_eq!(Mac::parse_any_spelling("00409d3a000g"), None);
    }

    proptest::proptest! {
        #[test]
        fn printing_then_parsing_gives_the_same_mac(bytes: [u8; 6]) {
            let mac = Mac(bytes);
            proptest::prop_assert_eq!(mac.to_string().parse::<Mac>(), Ok(mac));
            proptest::prop_assert_eq!(Mac::parse_any_spelling(&mac.to_string()), Some(mac));
        }
    }
}
