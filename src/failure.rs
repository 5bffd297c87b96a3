//! The one failure taxonomy: every error that can stop a command or a device
//! is bad input, the environment, or the device. Reports, JUnit, the batch
//! summary and exit codes all derive from [`FailureClass`]; no module keeps a
//! mapping of its own.
//!
//! Each module's error type implements [`Classify`] next to its definition,
//! so the class of a new variant, and the hint for whoever has to fix it, are
//! decided where the variant is written. This module does not print or
//! decide wording.

use serde::{Deserialize, Serialize};

/// Who has to act to fix a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureClass {
    /// The profile, inventory, station file, an image or an argument is wrong:
    /// the user fixes the input. Nothing was sent to a device.
    Input,
    /// This machine is not set up for the job (a file that cannot be read or
    /// written, a busy port, no permission): the user fixes the bench.
    /// A device whose task ended abnormally (a flashline defect) is counted
    /// here too: nothing says the input or the unit is wrong, and the unit
    /// must be run again.
    Environment,
    /// The device said no, timed out, or answered wrongly.
    Device,
}

impl FailureClass {
    /// The name reports use (`input`, `environment`, `device`).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Input => "input",
            FailureClass::Environment => "environment",
            FailureClass::Device => "device",
        }
    }

    /// The exit code contract: 1 device or step failure, 2 bad input,
    /// 3 environment (0 is success, which is not a failure).
    pub fn exit_code(self) -> u8 {
        match self {
            FailureClass::Device => 1,
            FailureClass::Input => 2,
            FailureClass::Environment => 3,
        }
    }
}

impl std::fmt::Display for FailureClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error that knows its class. Implemented by every module's error type.
pub trait Classify {
    fn class(&self) -> FailureClass;

    /// What to try next, for the technician at the bench, when the variant
    /// knows more than its message says. The CLI prints it as `help:` under
    /// the error line and as `help` in the `--json` error object.
    fn help(&self) -> Option<&str> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exs::client::ClientError;
    use crate::exs::job::ExsError;
    use crate::exs::trace::TraceError;
    use crate::ftp::FtpError;
    use crate::input_file::InputFileError;
    use crate::netos::boot_header::ImageCheck;
    use crate::pipeline::batch::BatchError;
    use crate::pipeline::journal::JournalError;
    use crate::pipeline::steps::StepError;
    use crate::serial::console::ConsoleError;
    use crate::serial::transfer::TransferRunError;

    #[test]
    fn exit_codes_and_severity() {
        assert_eq!(
            [FailureClass::Device, FailureClass::Input, FailureClass::Environment].map(FailureClass::exit_code),
            [1, 2, 3]
        );
        assert_eq!(serde_json::to_string(&FailureClass::Environment).unwrap(), "\"environment\"");
    }

    /// Every error variant a command can end with, and its class: the one
    /// table exit codes, reports and JUnit derive from. A new variant must
    /// be added here (the `match`es in each `Classify` impl are exhaustive).
    #[test]
    fn every_error_variant_has_its_class() {
        use std::path::PathBuf;
        use std::time::Duration;

        use FailureClass::{Device, Environment, Input};

        let path = || PathBuf::from("x");
        let io = || std::io::Error::other("x");
        let s = || String::from("x");
        let check = |error: &dyn Classify, class: FailureClass, what: &str| assert_eq!(error.class(), class, "{what}");
        let unreadable = || InputFileError::Unreadable { noun: "x", path: path(), source: io() };
        let empty = || InputFileError::Empty { noun: "x", path: path() };
        check(&unreadable(), Environment, "input file unreadable");
        check(&InputFileError::NotRegular { noun: "x", path: path(), what: "is a FIFO" }, Input, "input file a FIFO");
        check(
            &InputFileError::TooLarge { noun: "x", path: path(), bytes: None, limit: 1 },
            Input,
            "input file too large",
        );
        check(&empty(), Input, "input file empty");
        check(&crate::profile::ProfileError::Read(unreadable()), Environment, "profile unreadable");
        check(&crate::profile::ProfileError::Invalid { path: path(), problems: vec![] }, Input, "profile invalid");
        check(&crate::serial::port::PortError::InUse { path: path() }, Environment, "port in use");
        check(&crate::serial::port::PortError::NotFound { path: path() }, Environment, "port missing");
        check(&crate::serial::port::PortError::PermissionDenied { path: path() }, Environment, "port permission");
        check(&crate::serial::port::PortError::Other { path: path(), message: s() }, Environment, "port other");
        {
            use crate::serial::names::NameError;
            use crate::serial::port::PortError;
            use crate::serial::remote::RemoteError;
            check(&PortError::Remote(RemoteError::Connect { name: s(), message: s() }), Environment, "no server");
            check(&PortError::Remote(RemoteError::NoComPort { name: s() }), Environment, "not RFC 2217");
            check(&PortError::Remote(RemoteError::Protocol { name: s(), message: s() }), Environment, "telnet");
            check(&PortError::BadName { name: s(), message: s() }, Input, "bad port name");
            let no_match = NameError::NoMatch { name: s(), folder: s(), candidates: vec![] };
            check(&PortError::Name(no_match), Input, "stable name matches nothing");
            check(&PortError::Name(NameError::Ambiguous { name: s(), matches: vec![] }), Input, "ambiguous name");
        }
        check(&StepError::BadPattern { pattern: s(), message: s() }, Input, "bad regex");
        check(&StepError::ImageUnreadable(unreadable()), Environment, "image unreadable");
        check(&StepError::ImageUnreadable(empty()), Input, "image empty");
        check(&StepError::ImageInvalid { path: s(), check: ImageCheck::NoHeader }, Input, "image fails bootHdr");
        {
            use crate::serial::dialog::DialogFailure;
            let dialog = |failure: DialogFailure| StepError::Dialog(failure);
            let rejected = DialogFailure::Rejected { prompt: s(), answer: s(), words: s() };
            check(&dialog(rejected), Device, "answer rejected");
            check(&dialog(DialogFailure::AskedAgain { prompt: s(), answer: s(), words: vec![] }), Device, "re-asked");
            check(&dialog(DialogFailure::UnknownPrompt { prompt: s(), offers_default: false }), Device, "unknown");
            check(&dialog(DialogFailure::TooManyDefaults { cap: 32, prompt: s() }), Device, "defaults cap");
            check(&dialog(DialogFailure::NotAsked { prompts: vec![s()] }), Device, "saved without asking");
        }
        check(&StepError::Console(ConsoleError::Io(io())), Device, "console line error");
        check(&StepError::Transfer(TransferRunError::Closed), Device, "line closed in transfer");
        {
            use std::net::Ipv4Addr;

            use crate::net::diagnose::address_in_use;
            let address = Ipv4Addr::new(198, 18, 0, 2);
            let finding = || address_in_use(address, "00:40:9d:00:00:01");
            check(&StepError::NoPort, Input, "console step without a port");
            check(&StepError::NotAnAddress { text: s(), purpose: "to reach" }, Input, "address field not an address");
            check(&StepError::NotAMac(s()), Input, "addp mac not a MAC");
            check(
                &StepError::NotReached { host: address, timeout_ms: 1, finding: finding() },
                Device,
                "wait timed out",
            );
            check(&StepError::ControllerRefused { answers: s() }, Device, "controller refused");
            let in_use = StepError::AddressInUse { address, mac: s(), interface: s(), finding: finding() };
            check(&in_use, Device, "address in use");
        }
        check(
            &ConsoleError::Timeout { waiting_for: s(), waited: Duration::ZERO, last_lines: vec![] },
            Device,
            "console silent",
        );
        check(&ConsoleError::Closed { waiting_for: s(), last_lines: vec![] }, Device, "console closed");
        check(&ConsoleError::EchoMismatch { sent: s(), got: s() }, Device, "no echo");
        check(&TransferRunError::Io(io()), Device, "serial I/O in transfer");
        check(&crate::net::NetError::PermissionDenied { what: "raw" }, Environment, "no CAP_NET_RAW");
        check(&crate::net::NetError::Io { what: s(), source: io() }, Environment, "socket error");
        check(&crate::net::NetError::Resolve { host: s(), detail: None }, Input, "name does not resolve");
        check(&FtpError::LocalFile { path: path(), error: s() }, Environment, "local file");
        check(&FtpError::Image(empty()), Input, "empty local file");
        check(&FtpError::CredentialsRefused { host: s(), port: 21, users: vec![], reply: s() }, Device, "530");
        check(&FtpError::FileRefused { command: "STOR", remote: s(), reply: s() }, Device, "550");
        check(&FtpError::CommandRefused { host: s(), port: 21, command: s(), reply: s() }, Device, "PASV refused");
        check(&FtpError::NoDataConnection { host: s(), port: 21, tried: vec![] }, Device, "no data mode");
        let waited = Duration::from_secs(15);
        check(&FtpError::NoGreeting { host: s(), port: 21, waited, closed: false }, Device, "silent server");
        check(&FtpError::NoReply { host: s(), port: 21, command: s(), waited }, Device, "no reply");
        check(&FtpError::NotFtp { host: s(), port: 21, what: s(), sent: s() }, Device, "not FTP");
        check(&FtpError::Busy { host: s(), port: 21, reply: s() }, Device, "421");
        check(&FtpError::Unreachable { host: s(), port: 21, error: s(), finding: None }, Device, "refused");
        check(&FtpError::Transfer { remote: s(), attempts: 1, error: s() }, Device, "transfer cut");
        check(&FtpError::VerifyFailed { remote: s(), detail: s() }, Device, "verify");
        check(&FtpError::Protocol { what: s(), reply: s() }, Device, "odd reply");
        check(&FtpError::Tls { host: s(), port: 21, error: s() }, Device, "TLS");
        check(&FtpError::Restart { host: s(), what: "come back", timeout: Duration::ZERO }, Device, "restart");
        check(&ExsError::BadInput { field: "f", message: s() }, Input, "EXS argument");
        check(&ExsError::ReadConfig(unreadable()), Environment, "EXS config unreadable");
        check(&ClientError::Connect { peer: s(), source: io() }, Device, "controller refused");
        check(
            &ClientError::Timeout { message: s(), seq: 1, peer: s(), waited: Duration::ZERO, seen: vec![] },
            Device,
            "controller silent",
        );
        check(
            &ClientError::Closed { message: s(), seq: 1, peer: s(), times: 2, reason: s() },
            Device,
            "controller closed",
        );
        check(
            &ExsError::Client {
                purpose: s(),
                source: ClientError::Closed { message: s(), seq: 1, peer: s(), times: 2, reason: s() },
            },
            Device,
            "EXS client",
        );
        check(&TraceError::Empty, Input, "hex typed by the user");
        check(&JournalError::Open { path: path(), source: io() }, Environment, "journal cannot be opened");
        check(&JournalError::Write { path: path(), source: io() }, Environment, "journal cannot be written");
        check(&JournalError::Malformed { path: path(), line: 1, message: s() }, Input, "not a journal");
        check(&BatchError::Journal(JournalError::Open { path: path(), source: io() }), Environment, "batch journal");
        check(&BatchError::JournalInUse { path: path(), records: 1 }, Input, "journal without --resume");
        {
            use crate::net::arp::ArpError;
            let address = std::net::Ipv4Addr::new(198, 18, 0, 1);
            check(&ArpError::PermissionDenied, Environment, "no CAP_NET_RAW for ARP");
            check(&ArpError::NoRoute { address }, Environment, "no interface on the network");
            check(&ArpError::NotOnLink { address, gateway: address, interface: s() }, Environment, "behind a gateway");
            check(&ArpError::NoInterface { name: s() }, Input, "--interface typo");
            check(&ArpError::NotEthernet { name: s(), link_type: s() }, Input, "--interface lo");
            check(&ArpError::Io { what: s(), source: io() }, Environment, "ARP socket");
        }
        {
            use crate::addp::{AddpError, ErrorCode, FrameError};
            use crate::mac::Mac;
            let mac = Mac([0, 0x40, 0x9d, 1, 2, 3]);
            let waited = Duration::from_secs(2);
            check(&AddpError::NoInterface { name: s(), have: s() }, Input, "ADDP --interface typo");
            check(&AddpError::NoMulticastInterface, Environment, "no interface for multicast");
            check(&AddpError::Io { what: s(), source: io() }, Environment, "ADDP socket");
            check(&AddpError::Encode(FrameError::PayloadTooLong { len: 70_000 }), Input, "password too long");
            check(&AddpError::BroadcastMac { what: s() }, Input, "set for every device");
            check(&AddpError::NoAnswer { what: s(), mac, attempts: 3, waited }, Environment, "nothing answered");
            let refused = AddpError::Refused {
                what: s(),
                mac,
                code: ErrorCode::AuthenticationFailure,
                flag: None,
                message: None,
            };
            check(&refused, Device, "device refused");
        }
        {
            use crate::tftp::ServeError;
            let address = std::net::SocketAddr::from(([127, 0, 0, 1], 69));
            check(&ServeError::Root { path: path(), source: io() }, Environment, "TFTP root missing");
            check(&ServeError::Bind { address, source: io() }, Environment, "TFTP port taken");
            check(&ServeError::Io(io()), Environment, "TFTP socket");
            check(&ExsError::Serve(ServeError::Bind { address, source: io() }), Environment, "step's TFTP port taken");
        }
        {
            use crate::serial::tap::TapError;
            check(&TapError::Read { side: "A", source: io() }, Environment, "tap port read fails");
            check(&TapError::Write { side: "B", source: io() }, Environment, "tap port write fails");
            check(&TapError::Closed { side: "A" }, Environment, "tap port unplugged");
            check(&TapError::Record(io()), Environment, "tap record unwritable");
        }
        {
            use crate::dashboard::{DashboardError, TokenError};
            use crate::store::queries::FilterError;
            use crate::store::queries::when::TimeError;
            let address = std::net::SocketAddr::from(([198, 18, 0, 1], 8080));
            check(&TimeError { text: s() }, Input, "unreadable time");
            check(&FilterError::Outcome(s()), Input, "unknown run outcome");
            check(&FilterError::Mac(s()), Input, "unreadable MAC");
            check(&TokenError::Read { path: path(), source: io() }, Environment, "token file unreadable");
            check(&TokenError::TooShort { path: path(), len: 3 }, Input, "token too short");
            check(&TokenError::BadCharacters { path: path() }, Input, "token unsendable");
            check(&DashboardError::TokenRequired { address }, Input, "off loopback without a token");
            check(&DashboardError::Bind { address, source: io() }, Environment, "dashboard port taken");
            check(&DashboardError::Serve { source: io() }, Environment, "dashboard server failed");
        }
        {
            use crate::pipeline::batch::BatchError;
            use crate::station::StationError;
            use crate::store::{StoreError, UrlError};
            let store = || StoreError::Connect { url: s(), message: s() };
            check(&store(), Environment, "database unreachable");
            check(&StoreError::Migrate { url: s(), version: 1, message: s() }, Environment, "schema not applied");
            check(&StoreError::Query { url: s(), what: "a step", message: s() }, Environment, "statement failed");
            check(&UrlError::Scheme(s()), Input, "not a database URL");
            check(&UrlError::NoPath(s()), Input, "SQLite URL without a path");
            check(&StationError::Store(store()), Environment, "station's database");
            check(&StationError::Url(UrlError::Scheme(s())), Input, "station's database URL");
            check(&BatchError::Store(store()), Environment, "batch's database");
            check(&BatchError::NoMac { devices: vec![s()] }, Input, "batch --db without MACs");
        }
    }
}
