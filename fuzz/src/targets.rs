//! The decoders added by issue 21: one body per fuzz target, each fed the
//! bytes of one input. Shared by the libFuzzer binaries (`fuzz_targets/`)
//! and the stable test that replays the seed corpus (`tests/fuzz_seeds.rs`).
//! A panic, or a failed assertion about what was decoded, is the finding.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use regex::bytes::Regex;

/// A folder of this thread's own for the decoders that read files
/// (profiles, station files, inventories, the dashboard's token).
fn scratch(name: &str) -> PathBuf {
    thread_local! {
        static DIR: PathBuf = {
            let dir = std::env::temp_dir().join(format!(
                "flashline-fuzz-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ).replace(['(', ')'], ""));
            std::fs::create_dir_all(&dir).expect("create the scratch folder");
            dir
        };
    }
    DIR.with(|dir| dir.join(name))
}

/// Removes this thread's scratch folder (the seed test calls it at the end).
pub fn remove_scratch() {
    if let Some(dir) = scratch("x").parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The first byte chooses a split point and options; the rest is the input.
fn split_first(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((&first, rest)) => (first, rest),
        None => (0, data),
    }
}

/// TFTP packets from any client (`flashline tftp serve` on port 69): a
/// decoded packet encodes to the bytes it came from, and netascii decodes
/// the same whole and split at any block boundary, and undoes the encoder.
pub fn tftp_packets(data: &[u8]) {
    use flashline::tftp::packet;
    use flashline::tftp::server::{NetasciiDecoder, netascii_encode};
    if let Ok(Some((decoded, used))) = packet::decode(data) {
        assert!(used >= 2 && used <= data.len(), "used {used} of {}", data.len());
        assert_eq!(packet::to_bytes(&decoded), &data[..used], "packet round trip: {decoded:?}");
        assert_eq!(packet::decode_datagram(&data[..used]).ok(), Some(decoded));
    }
    let _ = packet::decode_datagram(data);

    let (cut, text) = split_first(data);
    let mut whole = Vec::new();
    NetasciiDecoder::default().decode(text, &mut whole);
    let cut = usize::from(cut).min(text.len());
    let mut split = Vec::new();
    let mut decoder = NetasciiDecoder::default();
    decoder.decode(&text[..cut], &mut split);
    decoder.decode(&text[cut..], &mut split);
    assert_eq!(split, whole, "netascii split at {cut}");
    let mut wire = Vec::new();
    netascii_encode(text, &mut wire);
    let mut back = Vec::new();
    NetasciiDecoder::default().decode(&wire, &mut back);
    assert_eq!(back, text, "netascii round trip");
}

/// Telnet/RFC 2217 bytes from a serial server, read frame by frame as the
/// client's buffer does: each frame encodes to the bytes it came from,
/// COM-PORT replies parse, and our option policy answers what was asked.
/// Two of our negotiators fed each other's answers fall silent (RFC 854's
/// no-loop rule).
pub fn rfc2217_frames(data: &[u8]) {
    use flashline::serial::rfc2217::{self, ComPortReply, Frame, Negotiator, OPT_COM_PORT};
    let mut ours = Negotiator::new();
    let mut theirs = Negotiator::new();
    let mut to_us: Vec<Frame> = theirs.opening();
    let mut rest = data;
    while let Ok(Some((frame, used))) = rfc2217::decode(rest) {
        assert!(used > 0 && used <= rest.len());
        let mut wire = Vec::new();
        rfc2217::encode(&frame, &mut wire);
        assert_eq!(wire, &rest[..used], "frame round trip: {frame:?}");
        if let Frame::Subnegotiation { option: OPT_COM_PORT, payload } = &frame
            && let Some(ComPortReply::Ack { command, .. } | ComPortReply::Malformed { command }) =
                ComPortReply::parse(payload)
        {
            assert!(command < 100, "a server reply's command is its number less 100: {command}");
        }
        to_us.push(frame);
        rest = &rest[used..];
    }
    let mut to_them: Vec<Frame> = ours.opening();
    // Each side answers each option a bounded number of times: so many
    // rounds without silence is a loop.
    for _ in 0..2 * 256 * usize::from(rfc2217::ANSWERS_PER_OPTION) + 16 {
        if to_us.is_empty() && to_them.is_empty() {
            break;
        }
        let answers = |negotiator: &mut Negotiator, frames: Vec<Frame>| -> Vec<Frame> {
            frames
                .into_iter()
                .filter_map(|frame| match frame {
                    Frame::Negotiate { verb, option } => negotiator.answer(verb, option),
                    _ => None,
                })
                .collect()
        };
        let from_us = answers(&mut ours, std::mem::take(&mut to_us));
        let from_them = answers(&mut theirs, std::mem::take(&mut to_them));
        to_them = from_us;
        to_us = from_them;
    }
    assert!(to_us.is_empty() && to_them.is_empty(), "option negotiation does not end: {to_us:?} {to_them:?}");
    let _ = (ours.com_port_agreed(), ours.com_port_refused());
}

thread_local! {
    /// One runtime per thread: the FTP reply reader is async.
    static RUNTIME: tokio::runtime::Runtime =
        tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a current-thread runtime");
}

/// What an FTP server sends `diagnose` (greeting, replies to USER and PASS)
/// read reply after reply as `check_ftp` reads them, and a peer's first
/// bytes as an upload's error quotes them: one line of printable ASCII,
/// bounded.
pub fn ftp_replies(data: &[u8]) {
    use flashline::ftp::upload::{QUOTED, quote};
    use flashline::net::service::read_reply;
    RUNTIME.with(|runtime| {
        runtime.block_on(async {
            let mut stream = data;
            for _ in 0..4 {
                match read_reply(&mut stream, Duration::from_secs(5)).await {
                    Ok(Some((code, text))) => {
                        assert!(code <= 999, "code {code}");
                        assert!(!text.contains('\n'), "a reply is shown on one line: {text:?}");
                    }
                    Ok(None) | Err(_) => break,
                }
            }
        })
    });
    let quoted = quote(data);
    assert!(quoted.bytes().all(|b| (0x20..0x7f).contains(&b)), "quoted: {quoted:?}");
    assert!(quoted.len() <= QUOTED * 4 + 3, "quoted {} bytes", quoted.len());
}

/// What comes back to the probes: TCP answers and ICMP unreachables to our
/// SYNs, echo replies to our pings (raw and datagram sockets), ARP frames
/// during the address-conflict check. The expected numbers come from the
/// input's first bytes, so matches are reachable.
pub fn probe_packets(data: &[u8]) {
    use flashline::net::arp::{Mac, conflict_in};
    use flashline::net::icmp::{SocketKind, match_reply};
    use flashline::net::syn::{classify_tcp, flag_names, parse_tcp_answer, parse_unreachable, unreachable_name};
    let word = |at: usize| data.get(at..at + 4).map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    if let Some(answer) = parse_tcp_answer(data) {
        let _ = flag_names(answer.flags);
        for seq in [answer.acknowledgement.wrapping_sub(1), word(0)] {
            let _ = classify_tcp(&answer, seq);
        }
    }
    if let Some(unreachable) = parse_unreachable(data) {
        let _ = unreachable_name(unreachable.code);
    }
    let target = Ipv4Addr::from(word(16));
    let ours = (word(24) as u16, (word(24) >> 16) as u16);
    for kind in [SocketKind::Datagram, SocketKind::Raw] {
        for token in [&data[data.len().min(32)..data.len().min(36)], &[0u8; 4][..]] {
            let _ = match_reply(kind, target, ours, data, token);
        }
    }
    let our_mac = Mac([0x00, 0x40, 0x9D, 0x01, 0x02, 0x03]);
    for target in [Ipv4Addr::from(word(28)), Ipv4Addr::from(word(38)), Ipv4Addr::new(198, 18, 0, 5)] {
        if let Some(other) = conflict_in(data, our_mac, target) {
            assert_ne!(other, our_mac, "our own probe is no conflict");
        }
    }
}

/// Bytes from a sender into our XMODEM/YMODEM receiver, and bytes from a
/// receiver into our sender, cut into chunks with time passing between
/// them (so the timeouts fire too). Both stay within their limits and end.
pub fn xmodem(data: &[u8]) {
    use flashline::serial::xmodem::{
        Outgoing, Receiver, ReceiverOptions, Sender, SenderOptions, Status, TransferProtocol,
    };
    let (step, input) = split_first(data);
    let chunk = usize::from(step % 64) + 1;
    let pause = Duration::from_millis(u64::from(step) * 40);
    let start = Instant::now();
    for ymodem in [false, true] {
        let mut options = ReceiverOptions::for_baud(ymodem, 115_200);
        options.max_size = 4096;
        let max_size = options.max_size;
        let mut now = start;
        let mut out = Vec::new();
        let mut receiver = Receiver::new(options, now, &mut out);
        for piece in input.chunks(chunk) {
            let used = receiver.on_bytes(now, piece, &mut out);
            assert!(used <= piece.len());
            now += pause;
            if receiver.poll_timeout().is_some_and(|at| at <= now) {
                receiver.on_timeout(now, &mut out);
            }
        }
        assert!(receiver.received_bytes() as usize <= max_size, "{} bytes", receiver.received_bytes());
        let _ = (receiver.status(), receiver.stats());
        for file in receiver.into_files() {
            assert!(file.data.len() <= max_size, "a file of {} bytes", file.data.len());
        }
    }
    for protocol in [TransferProtocol::Xmodem, TransferProtocol::Xmodem1k, TransferProtocol::Ymodem] {
        let file = Outgoing { name: "image.bin".into(), data: (0..3000u32).map(|i| (i * 7) as u8).collect(), mtime: 0 };
        let options = SenderOptions::for_baud(protocol, 115_200);
        let retries = options.block_retries as usize;
        let mut now = start;
        let mut sender = Sender::new(file, options, now);
        let mut out = Vec::new();
        for piece in input.chunks(chunk) {
            let used = sender.on_bytes(now, piece, &mut out);
            assert!(used <= piece.len());
            now += pause;
            if sender.poll_timeout().is_some_and(|at| at <= now) {
                sender.on_timeout(now, &mut out);
            }
        }
        // Header, 3 or 24 data blocks, EOT twice and the end of batch, each
        // sent at most `retries` times: what a receiver's replies can draw.
        let bound = (24 + 5) * (retries + 1) * 1029;
        assert!(out.len() <= bound, "{protocol:?}: the sender wrote {} bytes", out.len());
        if *sender.status() != Status::Running {
            let _ = sender.on_line_closed();
        }
        let _ = (sender.stats(), sender.take_retries(), sender.total_bytes());
    }
}

/// The Digi profile's network dialog (as `profiles/digi-connectme-9210.yaml`
/// has it) driven by console text cut at the input's first byte, and the
/// expect engine over the same text: the dialog answers a bounded number
/// of times, a match lies inside what arrived.
pub fn console_dialog(data: &[u8]) {
    use flashline::serial::dialog::{Action, DEFAULT_MAX_KEPT, Dialog};
    use flashline::serial::expect::Matcher;
    // Every listed answer once, every kept default, the answer after done.
    let most = 2 + 5 + DEFAULT_MAX_KEPT + 1;
    let (cut, text) = split_first(data);
    let cut = usize::from(cut) % 16 + 1;
    let (script, patterns) = CONSOLE.with(|compiled| compiled.clone());
    let mut dialog = Dialog::new(script);
    let mut sends = 0;
    'feed: for piece in text.chunks(cut) {
        dialog.push(piece);
        for _ in 0..100 {
            match dialog.next_action() {
                Action::Send(reply) => {
                    sends += 1;
                    if reply.secret {
                        assert_eq!(reply.shown(), "***");
                    }
                }
                Action::NeedMore => break,
                Action::Done | Action::Failed(_) => break 'feed,
            }
        }
    }
    assert!(sends <= most, "{sends} answers");
    let _ = (dialog.timed_out(), dialog.quiet(), dialog.waiting_for(), dialog.summary());

    let patterns: Vec<&Regex> = patterns.iter().collect();
    let mut matcher = Matcher::new();
    for piece in text.chunks(cut) {
        matcher.push(piece);
        while let Some(found) = matcher.find(&patterns) {
            assert!(found.pattern < patterns.len());
            let within =
                found.matched.is_empty() || found.line.windows(found.matched.len()).any(|w| w == found.matched);
            assert!(within, "{found:?}");
        }
    }
    let _ = matcher.take_rest();
}

thread_local! {
    /// The dialog and the expect patterns, compiled once per thread.
    static CONSOLE: (flashline::serial::dialog::Script, Vec<Regex>) = console_script();
}

fn console_script() -> (flashline::serial::dialog::Script, Vec<Regex>) {
    use flashline::serial::dialog::{Answer, DEFAULT_MAX_KEPT, DEFAULT_PROMPT, Prompt, Script};
    let re = |pattern: &str| Regex::new(pattern).expect("a fixed pattern");
    let prompt = |expect: &str, answers: &[&str], secret: bool| Prompt {
        expect: re(expect),
        answers: answers.iter().map(|a| Answer { text: a.to_string(), secret }).collect(),
        optional: secret,
        no_line_ending: false,
    };
    let mut accept = prompt(r"Press A to Accept the settings, or M to Modify\?", &["M"], false);
    accept.no_line_ending = true;
    let mut again = accept.clone();
    again.answers = vec![Answer { text: "A".into(), secret: false }];
    let script = Script {
        prompts: vec![
            accept,
            prompt("Enter the root password", &["password", "Netsilicon"], true),
            prompt("(?i)obtain IP settings", &["N"], false),
            prompt(r"IP address +\[", &["198.18.0.5"], false),
            prompt(r"Subnet mask +\[", &["255.255.255.0"], false),
            prompt(r"Gateway address +\[", &["198.18.0.1"], false),
        ],
        done: re("Saving the changes in NV memory"),
        rejects: vec![re("(?i)invalid")],
        keep_defaults: Some((re(DEFAULT_PROMPT), DEFAULT_MAX_KEPT)),
        after_done: Some(again),
        line_ending: "\r",
    };
    (script, vec![re(r"login: ?$"), re(DEFAULT_PROMPT), re("(?i)error")])
}

/// A user's image file through the bootHdr check: a valid one's payload,
/// rebuilt, is valid with the same CRC.
pub fn boot_image(data: &[u8]) {
    use flashline::netos::boot_header::{HEADER_LEN, ImageCheck, build, check};
    match check(data) {
        ImageCheck::Valid { payload_len, crc } => {
            let payload = &data[HEADER_LEN..HEADER_LEN + payload_len as usize];
            let version = u32::from_be_bytes([data[36], data[37], data[38], data[39]]);
            let rebuilt = build(payload, version);
            if rebuilt[..HEADER_LEN] == data[..HEADER_LEN] {
                assert_eq!(check(&rebuilt), ImageCheck::Valid { payload_len, crc });
            } else {
                assert!(matches!(check(&rebuilt), ImageCheck::Valid { .. }));
            }
        }
        ImageCheck::Truncated { needed, have } => assert!(have < needed && have == data.len()),
        ImageCheck::NoHeader | ImageCheck::BadCrc { .. } => {}
    }
    let _ = check(data).to_string();
}

/// Problems name a place inside the file they are about. Lines as YAML
/// counts them: CR LF, LF and a bare CR each end one.
fn placed(problems: &[flashline::profile::Problem], path: &Path, text: &[u8]) {
    let breaks = text.windows(2).filter(|w| w[0] == b'\r' && w[1] != b'\n').count()
        + usize::from(text.last() == Some(&b'\r'))
        + text.iter().filter(|&&b| b == b'\n').count();
    let lines = breaks + 1;
    for problem in problems {
        assert_eq!(problem.file, path);
        assert!(problem.line <= lines + 1, "line {} of a {lines}-line file: {problem:?}", problem.line);
        assert!(!problem.message.is_empty());
    }
}

fn write(name: &str, data: &[u8]) -> PathBuf {
    let path = scratch(name);
    std::fs::write(&path, data).expect("write a scratch file");
    path
}

/// A profile's bytes (YAML with positions): checked and, when it loads,
/// resolved for display with no device values.
pub fn profile_yaml(data: &[u8]) {
    use flashline::profile::{self, CheckOptions, DeviceValues, ProfileError, ResolveMode};
    let path = write("profile.yaml", data);
    if let Ok(problems) = profile::check_file(&path) {
        placed(&problems, &path, data);
    }
    match profile::load(&path, CheckOptions::default()) {
        Ok(loaded) => {
            let _ = profile::resolve(&loaded, &DeviceValues::new(), ResolveMode::Display);
        }
        Err(ProfileError::Invalid { problems, .. }) => placed(&problems, &path, data),
        Err(ProfileError::Read { .. }) => {}
    }
    let _ = profile::source::SourceTree::parse(&String::from_utf8_lossy(data));
}

/// A station file's bytes, next to a profile file (so the `profile:` path
/// can be valid).
pub fn station_file(data: &[u8]) {
    use flashline::profile::ProfileError;
    write("p.yaml", include_bytes!("../seeds/profile_yaml/sim-netos.yaml"));
    let path = write("station.yaml", data);
    match flashline::station::file::load(&path) {
        Ok(loaded) => {
            let _ = loaded.profile_path();
        }
        Err(ProfileError::Invalid { problems, .. }) => placed(&problems, &path, data),
        Err(ProfileError::Read { .. }) => {}
    }
}

/// An inventory's bytes, read as YAML and as CSV.
pub fn inventory(data: &[u8]) {
    use flashline::profile::{Inventory, ProfileError};
    for name in ["inventory.yaml", "inventory.csv"] {
        let path = write(name, data);
        match Inventory::load(&path) {
            Ok(inventory) => {
                for device in &inventory.devices {
                    assert!(inventory.device(&device.name).is_some());
                }
            }
            Err(ProfileError::Invalid { problems, .. }) => {
                assert!(!problems.is_empty());
                placed(&problems, &path, data);
            }
            Err(ProfileError::Read { .. }) => {}
        }
    }
}

/// Port names from the command line and profiles: `rfc2217://` and
/// `tcp://` names print back as they parse, and stable names resolve
/// against an empty device tree without a panic.
pub fn serial_names(data: &[u8]) {
    use flashline::serial::names::{DevRoot, resolve};
    use flashline::serial::remote::RemoteName;
    let text = String::from_utf8_lossy(data);
    if let Ok(Some(name)) = RemoteName::parse(&text) {
        let shown = name.to_string();
        assert_eq!(RemoteName::parse(&shown), Ok(Some(name)), "{shown}");
    }
    let root = DevRoot { dev: scratch("dev"), sys: scratch("sys") };
    let _ = resolve(&text, &root);
}

/// A dashboard request: the first line is the query string, the others
/// `name: value` headers. The search's next-page link decodes to itself,
/// a search that decodes passes its own check, and only the token
/// presents the token.
pub fn dashboard_requests(data: &[u8]) {
    use flashline::dashboard::{Token, read_request};
    const TOKEN: &str = "0123456789abcdef-fuzz-TOKEN";
    let token_file = scratch("token");
    if !token_file.exists() {
        std::fs::write(&token_file, TOKEN).expect("write the token file");
    }
    let token = Token::from_file(&token_file).expect("a valid token");
    let mut lines = data.split(|&b| b == b'\n');
    let query = String::from_utf8_lossy(lines.next().unwrap_or_default());
    let headers: Vec<(&[u8], &[u8])> = lines
        .filter_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            Some((&line[..colon], line[colon + 1..].trim_ascii()))
        })
        .collect();
    let Some((filter, next, _page, presented)) = read_request(&query, &headers, &token) else { return };
    if presented {
        let offered = headers.iter().any(|(_, value)| value.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()));
        assert!(offered, "the token was presented without being sent: {headers:?}");
    }
    if let Ok(filter) = &filter {
        assert!(filter.check().is_ok());
    }
    let (again, next_again, _, _) = read_request(&next, &[], &token).expect("our own link is a query");
    assert_eq!(next_again, next, "the next-page link changes the search");
    assert_eq!(again.is_ok(), filter.is_ok(), "{next}: {again:?} vs {filter:?}");
}
