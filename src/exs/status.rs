//! The status codes of a TFTP Manage response, with the vendor's numbers and
//! the spec's wording shortened for people: Status (TFTP Manage's own
//! 0x00-0x0E and the general 0x10-0x17) and More Status (the TFTP failure
//! reasons 0x00-0x21, also used by the TFTP alarm).
//!
//! What More Status means depends on the Status: a failure reason for 0x08 and
//! 0x09, an ICB type, subtype, length or load number for others
//! ([`more_status_meaning`]). Codes the spec does not list are kept and shown
//! as hex, never rejected.

use std::fmt;

use serde::{Serialize, Serializer};

code_table! {
    /// Status of a TFTP Manage response (bytes 8-9).
    StatusCode: u16 {
        NoTimestamp = 0x00 => "no timestamp: neither the message nor the configuration file has one",
        TwoTimestamps = 0x01 => "two timestamps: both the message and the configuration file have one",
        OldTimestamp = 0x02 => "old timestamp: older than the adjacent controller's load, which will be overwritten",
        TimestampEqual = 0x03 => "timestamp equal to the adjacent controller's load: the cards might run different loads",
        IncorrectIcbType = 0x04 => "incorrect ICB type",
        IncorrectIcbSubtype = 0x05 => "incorrect ICB subtype",
        IncorrectIcbLength = 0x06 => "incorrect ICB length: a fixed-length ICB has the wrong length or a filename is empty",
        InvalidMessageLength = 0x07 => "invalid message length: too short, or it ends inside an ICB",
        TftpFailed = 0x08 => "TFTP of the configuration file failed",
        LoadValidationFailed = 0x09 => "TFTP load validation failed",
        WrongRelease = 0x0A => "load is from a wrong release: not the release the CSP is running",
        FilenameTooLong = 0x0B => "filename is longer than 127 characters",
        UnknownLoadNumber = 0x0C => "unknown load number: greater than the known loads",
        ResponseTooLong = 0x0D => "response would be too long: too many queries in one message",
        SaveOptionWithoutBeginDownload = 0x0E => "configuration file changes a save option without a Begin Download ICB",
        PositiveAck = 0x10 => "positive acknowledgment",
        BadChecksum = 0x11 => "bad checksum",
        InvalidLogicalSpan = 0x12 => "invalid logical span ID",
        InvalidChannel = 0x13 => "invalid channel number",
        InvalidForState = 0x14 => "message invalid for the current matrix state",
        NegativeAck = 0x15 => "negative acknowledgment",
        InvalidAddressRange = 0x16 => "invalid address range",
        InvalidDataType = 0x17 => "invalid data type",
    }
}

code_table! {
    /// TFTP failure reasons: More Status for Status 0x08 and 0x09, and the
    /// alarm status of the TFTP alarm (0x1E).
    MoreStatus: u8 {
        NoStatus = 0x00 => "no status",
        ProtocolError = 0x01 => "TFTP protocol error (non-DATA packet or no acknowledgment): usually the file was not found",
        TimedOut = 0x02 => "TFTP timed out: usually a bad server IP address",
        OutOfSync = 0x03 => "TFTP device out of sync",
        NoFreeSocket = 0x04 => "no free TFTP socket: another TFTP was in progress and aborted",
        BadChannel = 0x05 => "TFTP device cannot use the channel number given to it",
        NotInitialized = 0x06 => "TFTP device not initialized",
        NoServerAddress = 0x07 => "no server IP address has been given",
        NoFilename = 0x08 => "no filename has been given",
        NoTimestamp = 0x09 => "no timestamp has been given",
        LineTooLong = 0x0A => "a TFTP configuration or BRecord file line is too long",
        BufferOverflow = 0x0B => "too much data for the internal buffer",
        NoEquals = 0x0C => "a TFTP configuration file line has no '='",
        NoSecondEquals = 0x0D => "a TFTP configuration file line has no second '='",
        TimestampMissingParameter = 0x0E => "the configuration file's timestamp is missing a parameter",
        LoadFilenameTooLong = 0x0F => "a load filename is longer than 127 characters",
        ControllerNotSaveLoadTrue = 0x10 => "the matrix controller label in the configuration file is not SAVE_LOAD_TRUE",
        InsufficientRam = 0x11 => "not enough RAM on the matrix controller to save all loads configured to be saved",
        BRecordFileOutOfSync = 0x12 => "BRecord file out of sync: no 'B' starting the record",
        BRecordReceiverOutOfSync = 0x13 => "BRecord receiver out of sync: expected a different record type",
        BRecordChecksum = 0x14 => "invalid BRecord checksum",
        BRecordCount = 0x15 => "invalid BRecord count",
        BRecordByteCount = 0x16 => "incorrect number of bytes in the BRecord load",
        LoadChecksum = 0x17 => "invalid load checksum",
        WrongCard = 0x18 => "incorrect load for the card",
        WrongSoftwareVersion = 0x19 => "load is from a different software version than the matrix controller's",
        StateMachineTimeout = 0x1A => "timeout waiting for the download state machine",
        DeniedTraditionalDownload = 0x1B => "denied by the download state machine: a traditional host download is in progress",
        TraditionalLoadStarted = 0x1C => "the download state machine started a traditional host load",
        BufferTimeout = 0x1D => "timeout waiting for a buffer: the download state machine has a problem",
        StoppedByHost = 0x1E => "stopped by the host starting another TFTP",
        NewSaveOption = 0x1F => "the configuration file has a new save option for an existing load",
        OsError = 0x20 => "operating system general error",
        OsIoError = 0x21 => "operating system I/O error",
    }
}

/// A Status as received: any 16-bit value, known or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status(pub u16);

impl Status {
    pub const POSITIVE: Status = Status(StatusCode::PositiveAck as u16);

    pub fn known(self) -> Option<StatusCode> {
        StatusCode::from_code(self.0)
    }

    pub fn is_positive(self) -> bool {
        self == Status::POSITIVE
    }

    pub fn text(self) -> &'static str {
        self.known().map_or("unknown status", StatusCode::text)
    }
}

impl From<StatusCode> for Status {
    fn from(code: StatusCode) -> Status {
        Status(code.code())
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#06x} {}", self.0, self.text())
    }
}

impl Serialize for Status {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        CodeJson { code: format!("{:#06x}", self.0), value: self.0.into(), text: self.text().to_string() }
            .serialize(serializer)
    }
}

#[derive(Serialize)]
struct CodeJson {
    code: String,
    value: u32,
    text: String,
}

/// What a More Status byte says, given the Status it came with.
pub fn more_status_meaning(status: Status, more: u8) -> String {
    use StatusCode::*;
    let reason =
        || MoreStatus::from_code(more).map_or_else(|| "unknown failure reason".to_string(), |m| m.text().to_string());
    match status.known() {
        Some(TftpFailed | LoadValidationFailed) => reason(),
        Some(IncorrectIcbType) => format!("the ICB type {more:#04x}"),
        Some(IncorrectIcbSubtype | IncorrectIcbLength) => format!("the ICB subtype {more:#04x}"),
        Some(InvalidMessageLength | FilenameTooLong) => format!("the supplied length {more}"),
        Some(WrongRelease | UnknownLoadNumber | SaveOptionWithoutBeginDownload) => format!("load number {more}"),
        _ if more == 0 => MoreStatus::NoStatus.text().to_string(),
        _ => reason(),
    }
}

/// A More Status byte with its meaning in context, for reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MoreStatusReport {
    pub code: String,
    pub value: u8,
    pub text: String,
}

impl MoreStatusReport {
    pub fn new(status: Status, more: u8) -> MoreStatusReport {
        MoreStatusReport { code: format!("{more:#04x}"), value: more, text: more_status_meaning(status, more) }
    }
}

impl fmt::Display for MoreStatusReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_code_round_trips_and_has_a_text() {
        assert_eq!(StatusCode::ALL.len(), 15 + 8);
        for code in StatusCode::ALL {
            assert_eq!(StatusCode::from_code(code.code()), Some(*code));
            assert!(!code.text().is_empty());
        }
        assert_eq!(MoreStatus::ALL.len(), 0x22);
        for (i, code) in MoreStatus::ALL.iter().enumerate() {
            assert_eq!(code.code() as usize, i, "More Status is contiguous 0x00-0x21");
        }
        assert_eq!(StatusCode::from_code(0x0F), None);
        assert_eq!(StatusCode::from_code(0x18), None);
        assert_eq!(MoreStatus::from_code(0x22), None);
    }

    #[test]
    fn unknown_codes_print_as_hex() {
        assert_eq!(Status(0x0010).to_string(), "0x0010 positive acknowledgment");
        assert_eq!(Status(0x1234).to_string(), "0x1234 unknown status");
        assert_eq!(more_status_meaning(Status(0x08), 0x99), "unknown failure reason");
        assert_eq!(MoreStatusReport::new(Status(0x08), 0x99).to_string(), "0x99 unknown failure reason");
    }

    #[test]
    fn more_status_depends_on_status() {
        assert_eq!(more_status_meaning(Status(0x08), 0x01), MoreStatus::ProtocolError.text());
        assert_eq!(more_status_meaning(Status(0x09), 0x02), MoreStatus::TimedOut.text());
        assert_eq!(more_status_meaning(Status(0x05), 0x37), "the ICB subtype 0x37");
        assert_eq!(more_status_meaning(Status(0x04), 0x07), "the ICB type 0x07");
        assert_eq!(more_status_meaning(Status(0x0B), 200), "the supplied length 200");
        assert_eq!(more_status_meaning(Status(0x10), 0), "no status");
        let json = serde_json::to_value(Status(0x08)).unwrap();
        assert_eq!(json["code"], "0x0008");
        assert_eq!(json["value"], 8);
    }
}
