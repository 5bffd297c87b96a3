//! What the fuzz targets run: every decoder of `flashline::exs` that reads
//! outside input (frames, trace text, ICB lists, TFTP Manage bodies,
//! configuration files), plus the frame round trip; the batch journal's
//! reader with the resume decision over what it reads; and the console
//! boot-log reader; and, in [`targets`], every other decoder of outside
//! bytes. A panic is the finding.
//!
//! [`TARGETS`] names each body: the libFuzzer binaries in `fuzz_targets/`
//! call one each, and `tests/fuzz_seeds.rs` (stable, in the main crate's
//! test binary) replays `fuzz/seeds/<name>/` through the same bodies.

mod targets;
pub use targets::*;

use flashline::exs::config_file::{self, ConfigRules};
use flashline::exs::frame::Framing;
use flashline::exs::tftp_manage::{MAX_REQUEST_ICB_DATA, TftpManageError, TftpManageRequest, TftpManageResponse};
use flashline::exs::{icb, trace};
use flashline::pipeline::journal::{self, Resume};
use flashline::pipeline::report::ImageHash;
use flashline::profile::{ExsChecksum, ExsMarkerRule};

const RULES: [ExsChecksum; 4] = [ExsChecksum::Sum8Twos, ExsChecksum::Sum8, ExsChecksum::Xor8, ExsChecksum::None];

pub fn exercise(data: &[u8]) {
    for checksum in RULES {
        let framing = Framing { checksum, marker_rule: ExsMarkerRule::SendRaw };
        // Read frames back to back, as the client's buffer does.
        let mut rest = data;
        while let Ok(Some((frame, used))) = framing.decode(rest) {
            assert!(used > 0 && used <= rest.len());
            let mut wire = Vec::new();
            framing.encode(&frame, &mut wire).expect("a decoded frame encodes");
            // Rule `none` does not check the received checksum and sends 0.
            let compared = if checksum == ExsChecksum::None { used - 1 } else { used };
            assert_eq!(&wire[..compared], &rest[..compared], "round trip");
            let _ = TftpManageResponse::decode(&frame.body);
            let _ = TftpManageRequest::decode(&frame.body);
            rest = &rest[used..];
        }
        let _ = framing.decode_trace(data);
        let _ = trace::decode_all(&framing, data);
    }
    let _ = icb::decode_list(data);
    if let Ok(request) = TftpManageRequest::decode(data) {
        // What decodes re-encodes to a body that decodes the same, unless it
        // is longer than a request may be (a controller reads longer lists).
        match request.encode() {
            Ok(body) => assert_eq!(TftpManageRequest::decode(&body).ok(), Some(request)),
            Err(TftpManageError::RequestTooLong { len }) => assert!(len > MAX_REQUEST_ICB_DATA, "{len} bytes"),
            Err(error) => panic!("a decoded request does not encode: {error}"),
        }
    }
    let _ = TftpManageResponse::decode(data);
    let text = String::from_utf8_lossy(data);
    if let Ok(bytes) = trace::parse_hex(&text) {
        let _ = trace::decode_all(&Framing::default(), &bytes);
    }
    for message_has_timestamp in [None, Some(true), Some(false)] {
        let _ = config_file::check(&text, &ConfigRules::default(), message_has_timestamp);
    }
}

/// What the dashboard and `flashline units` read from a browser or the
/// command line: times, MACs (whole or part) and filters. A panic is the
/// finding; a decoded MAC must be canonical and decode to itself.
pub fn exercise_unit_queries(data: &[u8]) {
    use flashline::mac::Mac;
    use flashline::store::queries::RunFilter;
    use flashline::store::queries::when::{format_time, parse_time};
    let text = String::from_utf8_lossy(data);
    if let Ok(ms) = parse_time(&text, 1_800_000_000_000) {
        let _ = format_time(ms);
    }
    if let Some(mac) = Mac::parse_any_spelling(&text) {
        assert_eq!(Mac::parse_any_spelling(&mac.to_string()), Some(mac));
        assert_eq!(mac.to_string().parse::<Mac>(), Ok(mac));
    }
    let filter = RunFilter { mac: Some(text.to_string()), outcome: Some(text.to_string()), ..RunFilter::default() };
    let _ = filter.check();
}

/// A journal file's bytes: read as records or refused with a line number;
/// what is read, resume decides on without a panic, and a record with the
/// same digest as now is skipped.
pub fn exercise_journal(data: &[u8]) {
    let Ok(records) = journal::parse(data, std::path::Path::new("fuzz.jsonl")) else { return };
    let images = [ImageHash { file: "image.bin".into(), sha256: "0".repeat(64), bytes: 1 }];
    for steps in journal::done_steps(&records).values() {
        for step in steps.values() {
            let _ = journal::resume_decision(Some(step), "", &images);
            if let Some(then) = &step.inputs_sha256 {
                assert_eq!(journal::resume_decision(Some(step), then, &images), Resume::Skip);
            }
        }
    }
}

/// The boot-log reader on console bytes (a capture, a transcript, noise):
/// whole and split at every tenth offset, the same lines either way.
pub fn read_boot_log(data: &[u8]) {
    use flashline::netos::boot_log::{BootLog, BootLogReader};
    use std::time::Duration;
    let whole = BootLog::parse(data);
    let _ = (whole.network(), whole.application(), whole.addresses());
    for split in (0..=data.len()).step_by(10) {
        let mut reader = BootLogReader::default();
        reader.feed(Some(Duration::ZERO), &data[..split]);
        reader.feed(Some(Duration::from_secs(1)), &data[split..]);
        assert_eq!(reader.finish().boots, whole.boots);
    }
}

/// Every ADDP decoder on arbitrary bytes (`cargo +nightly fuzz run
/// addp_decoders`): the frame, a reply's fields and a request as a device
/// reads it. A frame read is written back byte for byte.
pub fn exercise_addp(data: &[u8]) {
    use flashline::addp::{Frame, Reply, Request};
    if let Ok(Some((frame, used))) = Frame::decode(data) {
        assert!(used >= 8 && used <= data.len());
        let mut wire = Vec::new();
        frame.encode(&mut wire).expect("a decoded frame encodes");
        assert_eq!(&wire[..], &data[..used], "frame round trip");
        if let Ok(reply) = Reply::from_frame(&frame) {
            let _ = reply.device();
            let _ = reply.to_frame();
        }
        if let Ok(Some(request)) = Request::decode(&frame) {
            let mut again = Vec::new();
            request.encode(frame.cookie, &mut again).expect("a decoded request encodes");
        }
    }
    let _ = Reply::decode(data);
}

/// What a target runs on one input.
pub type Body = fn(&[u8]);

/// Every fuzz target by name: its binary is `fuzz_targets/<name>.rs`, its
/// seeds are in `seeds/<name>/`.
pub const TARGETS: &[(&str, Body)] = &[
    ("exs_decoders", exercise),
    ("journal_lines", exercise_journal),
    ("boot_log", read_boot_log),
    ("addp_decoders", exercise_addp),
    ("unit_queries", exercise_unit_queries),
    ("tftp_packets", tftp_packets),
    ("rfc2217_frames", rfc2217_frames),
    ("ftp_replies", ftp_replies),
    ("probe_packets", probe_packets),
    ("xmodem", xmodem),
    ("console_dialog", console_dialog),
    ("boot_image", boot_image),
    ("profile_yaml", profile_yaml),
    ("station_file", station_file),
    ("inventory", inventory),
    ("serial_names", serial_names),
    ("dashboard_requests", dashboard_requests),
];

/// Runs the body of target `name` on `data`: what each libFuzzer binary does.
pub fn run(name: &str, data: &[u8]) {
    match TARGETS.iter().find(|(listed, _)| *listed == name) {
        Some((_, body)) => body(data),
        None => panic!("no fuzz target {name} in TARGETS"),
    }
}
