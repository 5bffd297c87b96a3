//! A unit's identity from its banner: the MAC (in [`crate::mac`]'s record
//! form, as the NET+OS console prints it) and the serial number.
//! Pure: the fixture loop feeds it console text.

use regex::Regex;
use regex::bytes::Regex as BytesRegex;

/// The patterns of a station file's `arrival:` block, compiled.
#[derive(Debug, Clone)]
pub struct IdentityPatterns {
    /// On console bytes (the expect engine's form).
    pub banner: BytesRegex,
    pub mac_bytes: BytesRegex,
    pub mac: Regex,
    pub serial_number: Regex,
}

impl IdentityPatterns {
    /// Compiles the station file's patterns (already checked when it was loaded).
    pub fn new(arrival: &super::file::Arrival) -> Result<IdentityPatterns, regex::Error> {
        Ok(IdentityPatterns {
            banner: BytesRegex::new(&arrival.expect)?,
            mac_bytes: BytesRegex::new(&arrival.mac)?,
            mac: Regex::new(&arrival.mac)?,
            serial_number: Regex::new(&arrival.serial_number)?,
        })
    }

    /// The MAC in `text` (the first group of the MAC pattern), in the form
    /// the records store.
    pub fn mac_in(&self, text: &str) -> Option<String> {
        self.mac.captures(text).and_then(|c| c.get(1)).map(|m| crate::mac::record_form(m.as_str()))
    }

    /// The last serial number in `text` (the banner printed just now).
    pub fn serial_in(&self, text: &str) -> Option<String> {
        self.serial_number.captures_iter(text).last().and_then(|c| c.get(1)).map(|m| m.as_str().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_netos_banner() {
        let patterns = IdentityPatterns::new(&super::super::file::Arrival::default()).unwrap();
        let banner = "NET+OS Version 7.4\r\nThis board's serial number is N20000001\r\n\
                      This board's Ethernet MAC Address is 00:40:9d:ab:cd:ef\r\n";
        assert!(patterns.banner.is_match(banner.as_bytes()));
        assert_eq!(patterns.mac_in(banner).as_deref(), Some("00:40:9D:AB:CD:EF"));
        assert_eq!(patterns.serial_in(banner).as_deref(), Some("N20000001"));
        assert_eq!(patterns.mac_in("no identity here"), None);
        let dashed = "This board's Ethernet MAC Address is 00-40-9d-01-02-03\r\n";
        assert_eq!(patterns.mac_in(dashed).as_deref(), Some("00:40:9D:01:02:03"));
    }
}
