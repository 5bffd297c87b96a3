//! TFTP Manage requests against bytes written by hand from the vendor's TFTP
//! Manage page and the EXS framing rules (both summarised in
//! docs/exs-tftp-manage.md), never produced by our encoder: the other EXS
//! tests use the same codec on both sides of the wire, so a wrong ICB type,
//! subtype, length or order would pass them.
//!
//! Wire frame: FE | Length (2, big-endian, counts Message Type through the
//! last data byte) | 00 3A | 00 reserved | sequence | node | ICB count | ICBs
//! | checksum. An ICB is type (01 Action, 02 Data) | subtype | data length |
//! data. The checksum is the assumed `sum8-twos` rule: the two's complement
//! of the 8-bit sum of the Length-counted bytes. Every frame here uses
//! sequence 00 and node FF, as the page's example does, except the settings
//! message.

use std::net::Ipv4Addr;
use std::path::Path;

use flashline::exs::frame::Form;
use flashline::exs::frame::{Frame, Framing};
use flashline::exs::message_type::TFTP_MANAGE;
use flashline::exs::tftp_manage::{ActionSubtype, DataValue, Filename, RequestIcb, TftpManageRequest};
use flashline::profile::{ExsChecksum, ExsMarkerRule, TftpManage};

const FRAMING: Framing = Framing { checksum: ExsChecksum::Sum8Twos, marker_rule: ExsMarkerRule::Refuse };

/// One golden frame per Action subtype 0x00-0x08, each alone in a request.
/// 0x00-0x06 carry no data ("the Data Length is 0x00 which you have to
/// indicate"); 0x07 and 0x08 are the two without the page's star, and carry
/// the load number (3 here) as one byte (an assumption of ours).
const ACTIONS: [&[u8]; 9] = [
    // 0x00 Begin Download
    &[0xFE, 0x00, 0x09, 0x00, 0x3A, 0x00, 0x00, 0xFF, 0x01, 0x01, 0x00, 0x00, 0xC5],
    // 0x01 Query Local Matrix Configuration Filename: the page's trace
    // `[00 09] [00 3A] 00 00 FF 01 01 01 00` with marker and checksum.
    &[0xFE, 0x00, 0x09, 0x00, 0x3A, 0x00, 0x00, 0xFF, 0x01, 0x01, 0x01, 0x00, 0xC4],
    // 0x02 Query Local Matrix Server IP Address
    &[0xFE, 0x00, 0x09, 0x00, 0x3A, 0x00, 0x00, 0xFF, 0x01, 0x01, 0x02, 0x00, 0xC3],
    // 0x03 Query Adjacent Matrix Configuration Filename
    &[0xFE, 0x00, 0x09, 0x00, 0x3A, 0x00, 0x00, 0xFF, 0x01, 0x01, 0x03, 0x00, 0xC2],
    // 0x04 Query Adjacent Matrix Server IP Address
    &[0xFE, 0x00, 0x09, 0x00, 0x3A, 0x00, 0x00, 0xFF, 0x01, 0x01, 0x04, 0x00, 0xC1],
    // 0x05 Query Timestamp
    &[0xFE, 0x00, 0x09, 0x00, 0x3A, 0x00, 0x00, 0xFF, 0x01, 0x01, 0x05, 0x00, 0xC0],
    // 0x06 Query Save Options
    &[0xFE, 0x00, 0x09, 0x00, 0x3A, 0x00, 0x00, 0xFF, 0x01, 0x01, 0x06, 0x00, 0xBF],
    // 0x07 Query Load Version, load 3
    &[0xFE, 0x00, 0x0A, 0x00, 0x3A, 0x00, 0x00, 0xFF, 0x01, 0x01, 0x07, 0x01, 0x03, 0xBA],
    // 0x08 Query Load Filename, load 3
    &[0xFE, 0x00, 0x0A, 0x00, 0x3A, 0x00, 0x00, 0xFF, 0x01, 0x01, 0x08, 0x01, 0x03, 0xB9],
];

/// The filename of the page's response trace, `c:\tftpboot\tftp_no_ts.cfg`
/// and its NUL: 27 bytes (data length 0x1B, as in the trace).
const PAGE_FILENAME: &str = "c:\\tftpboot\\tftp_no_ts.cfg";

/// One golden frame per Data subtype 0x37-0x3E, each alone in a request, and
/// the value it carries.
fn data_goldens() -> Vec<(DataValue, &'static [u8])> {
    let name = |n: &str| Filename::new(n).unwrap();
    vec![
        // 0x37 Local Matrix Controller Configuration Filename: name + NUL.
        (
            DataValue::LocalConfig(name(PAGE_FILENAME)),
            &[
                0xFE, 0x00, 0x24, 0x00, 0x3A, 0x00, 0x00, 0xFF, 0x01, 0x02, 0x37, 0x1B, 0x63, 0x3A, 0x5C, 0x74, 0x66,
                0x74, 0x70, 0x62, 0x6F, 0x6F, 0x74, 0x5C, 0x74, 0x66, 0x74, 0x70, 0x5F, 0x6E, 0x6F, 0x5F, 0x74, 0x73,
                0x2E, 0x63, 0x66, 0x67, 0x00, 0x0D,
            ],
        ),
        // 0x38 Local Matrix Server IP Address: 4 bytes, network order.
        (
            DataValue::LocalServer(Ipv4Addr::new(10, 1, 2, 3)),
            &[0xFE, 0x00, 0x0D, 0x00, 0x3A, 0x00, 0x00, 0xFF, 0x01, 0x02, 0x38, 0x04, 0x0A, 0x01, 0x02, 0x03, 0x78],
        ),
        // 0x39 Adjacent Matrix Controller Configuration Filename `b.cfg`.
        (
            DataValue::AdjacentConfig(name("b.cfg")),
            &[
                0xFE, 0x00, 0x0F, 0x00, 0x3A, 0x00, 0x00, 0xFF, 0x01, 0x02, 0x39, 0x06, 0x62, 0x2E, 0x63, 0x66, 0x67,
                0x00, 0xC5,
            ],
        ),
        // 0x3A Adjacent Matrix Server IP Address.
        (
            DataValue::AdjacentServer(Ipv4Addr::new(10, 1, 2, 4)),
            &[0xFE, 0x00, 0x0D, 0x00, 0x3A, 0x00, 0x00, 0xFF, 0x01, 0x02, 0x3A, 0x04, 0x0A, 0x01, 0x02, 0x04, 0x75],
        ),
        // 0x3B Timestamp: raw bytes (encoding not published).
        (
            DataValue::Timestamp(vec![0x20, 0x26, 0x11, 0x29]),
            &[0xFE, 0x00, 0x0D, 0x00, 0x3A, 0x00, 0x00, 0xFF, 0x01, 0x02, 0x3B, 0x04, 0x20, 0x26, 0x11, 0x29, 0x05],
        ),
        // 0x3C Save Options: raw bytes.
        (
            DataValue::SaveOptions(vec![0x01]),
            &[0xFE, 0x00, 0x0A, 0x00, 0x3A, 0x00, 0x00, 0xFF, 0x01, 0x02, 0x3C, 0x01, 0x01, 0x86],
        ),
        // 0x3D Load Version: raw bytes.
        (
            DataValue::LoadVersion(vec![0x02, 0x03]),
            &[0xFE, 0x00, 0x0B, 0x00, 0x3A, 0x00, 0x00, 0xFF, 0x01, 0x02, 0x3D, 0x02, 0x02, 0x03, 0x80],
        ),
        // 0x3E Load Filename `l.bin`: name + NUL.
        (
            DataValue::LoadFilename(name("l.bin")),
            &[
                0xFE, 0x00, 0x0F, 0x00, 0x3A, 0x00, 0x00, 0xFF, 0x01, 0x02, 0x3E, 0x06, 0x6C, 0x2E, 0x62, 0x69, 0x6E,
                0x00, 0xAD,
            ],
        ),
    ]
}

/// The wire frame of `request` as flashline sends it.
fn wire(request: &TftpManageRequest, seq: u8, node: u8) -> Vec<u8> {
    let body = request.encode().unwrap_or_else(|e| panic!("{request:?}: {e}"));
    let mut out = Vec::new();
    FRAMING.encode(&Frame::new(TFTP_MANAGE, seq, node, body), &mut out).unwrap();
    out
}

/// The request body inside a golden frame (after the 8-byte header, before
/// the checksum).
fn body(golden: &[u8]) -> &[u8] {
    &golden[8..golden.len() - 1]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(" ")
}

#[test]
fn the_page_trace_of_query_local_filename_is_what_we_send() {
    let request = TftpManageRequest { icbs: vec![RequestIcb::action(ActionSubtype::QueryLocalConfig)] };
    let mut trace = Vec::new();
    let frame = Frame::new(TFTP_MANAGE, 0, 0xFF, request.encode().unwrap());
    FRAMING.encode_form(&frame, Form::Trace, &mut trace).unwrap();
    assert_eq!(hex(&trace), "00 09 00 3A 00 00 FF 01 01 01 00", "the page's Host to CSP trace");
}

#[test]
fn one_request_per_action_subtype_matches_the_page() {
    for (code, golden) in ACTIONS.iter().enumerate() {
        let subtype = ActionSubtype::ALL[code];
        assert_eq!(usize::from(subtype.code()), code);
        let load = subtype.takes_load().then_some(3);
        let request = TftpManageRequest { icbs: vec![RequestIcb::Action { subtype, load }] };
        assert_eq!(hex(&wire(&request, 0, 0xFF)), hex(golden), "action subtype {code:#04x}");
        assert_eq!(TftpManageRequest::decode(body(golden)).unwrap(), request, "action subtype {code:#04x}");
    }
}

#[test]
fn every_query_of_a_profile_step_is_the_golden_request() {
    // `query: [all]` with `load: 3`: one message per query, 0x01 to 0x08.
    let step = step("host: 127.0.0.1\nquery: [all]\nload: 3\n");
    let job = flashline::pipeline::steps::tftp_manage::job(&step, None, Path::new(".")).unwrap();
    let bodies: Vec<String> = job.messages().iter().map(|(_, request)| hex(&request.encode().unwrap())).collect();
    let goldens: Vec<String> = ACTIONS[1..].iter().map(|golden| hex(body(golden))).collect();
    assert_eq!(bodies, goldens);
}

#[test]
fn one_request_per_data_subtype_matches_the_page() {
    let goldens = data_goldens();
    let codes: Vec<u8> = goldens.iter().map(|(value, _)| value.subtype().code()).collect();
    assert_eq!(codes, (0x37..=0x3E).collect::<Vec<u8>>(), "every Data subtype, in order");
    for (value, golden) in goldens {
        let request = TftpManageRequest { icbs: vec![RequestIcb::Data(value.clone())] };
        assert_eq!(hex(&wire(&request, 0, 0xFF)), hex(golden), "{value:?}");
        assert_eq!(TftpManageRequest::decode(body(golden)).unwrap(), request, "{value:?}");
    }
}

/// A profile's `tftp_manage` step, as a user writes it.
fn step(yaml: &str) -> TftpManage {
    serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"))
}

#[test]
fn settings_with_begin_download_are_one_golden_message() {
    // What the page asks for a software change: both filenames, both server
    // addresses, a timestamp and Begin Download. The page gives no order;
    // ours is the Data subtypes in number order, then Begin Download last,
    // so the controller has every value when it reads the action.
    let step = step(
        "host: 127.0.0.1\nnode: 1\nlocal_config: a.cfg\nlocal_server: 10.1.2.3\nadjacent_config: b.cfg\n\
         adjacent_server: 10.1.2.4\ntimestamp: \"20 26 11 29\"\nbegin_download: true\n",
    );
    let job = flashline::pipeline::steps::tftp_manage::job(&step, None, Path::new(".")).unwrap();
    let messages = job.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    #[rustfmt::skip]
    let golden: &[u8] = &[
        0xFE, 0x00, 0x30,                   // marker, Length 48
        0x00, 0x3A, 0x00, 0x07, 0x01,       // TFTP Manage, reserved, seq 7, node 1
        0x06,                               // 6 ICBs
        0x02, 0x37, 0x06, 0x61, 0x2E, 0x63, 0x66, 0x67, 0x00, // local config `a.cfg`
        0x02, 0x38, 0x04, 0x0A, 0x01, 0x02, 0x03,             // local server 10.1.2.3
        0x02, 0x39, 0x06, 0x62, 0x2E, 0x63, 0x66, 0x67, 0x00, // adjacent config `b.cfg`
        0x02, 0x3A, 0x04, 0x0A, 0x01, 0x02, 0x04,             // adjacent server 10.1.2.4
        0x02, 0x3B, 0x04, 0x20, 0x26, 0x11, 0x29,             // timestamp
        0x01, 0x00, 0x00,                                     // Begin Download
        0x58,                               // checksum (sum8-twos)
    ];
    assert_eq!(hex(&wire(&messages[0].1, 7, step.node)), hex(golden));
}
