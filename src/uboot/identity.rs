//! Where a U-Boot console names the unit: `printenv` prints `ethaddr=MAC`
//! and, where the board sets it, `serial#=...`. U-Boot's banner names
//! neither, so a profile reads them with a command (`printenv ethaddr`) and
//! the run's report takes them from the transcript. Pure: text in, values out.

use regex::Regex;

use crate::netos::identity::{BannerPatterns, ConsoleIdentity};

/// A station's defaults for U-Boot: the banner's first line; the MAC and
/// serial number as `printenv` prints them, at a line's start (or after the
/// direction mark of a transcript's line).
pub const ARRIVAL: BannerPatterns = BannerPatterns {
    banner: r"U-Boot \d{4}\.\d{2}",
    mac: r"(?m)(?:^|\s)ethaddr=((?:[0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2})",
    serial_number: r"(?m)(?:^|\s)serial#=(\S+)",
};

/// The first `ethaddr=` and `serial#=` in a console transcript.
pub fn report_identity(text: &str) -> ConsoleIdentity {
    let first = |pattern: &str| Regex::new(pattern).ok()?.captures(text).map(|c| c[1].to_string());
    ConsoleIdentity { mac: first(ARRIVAL.mac), serial_number: first(ARRIVAL.serial_number) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_reads_printenv_lines_and_nothing_else() {
        let text = "=> printenv ethaddr\r\nethaddr=52:54:00:12:34:56\r\n=> printenv serial#\r\nserial#=QX-0042\r\n=> ";
        let identity = report_identity(text);
        assert_eq!(identity.mac.as_deref(), Some("52:54:00:12:34:56"));
        assert_eq!(identity.serial_number.as_deref(), Some("QX-0042"));
        // A transcript's line, as a run's report reads it.
        let transcript = "[   1.322] < ethaddr=52:54:00:12:34:56\r\n";
        assert_eq!(report_identity(transcript).mac.as_deref(), Some("52:54:00:12:34:56"));
        // The command line itself (`setenv ethaddr ...`) is not a value printed.
        assert_eq!(report_identity("=> setenv ethaddr 52:54:00:12:34:57\r\n=> "), ConsoleIdentity::default());
    }
}
