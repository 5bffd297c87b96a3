//! Payload throughput of our XMODEM / XMODEM-1K / YMODEM sender over the link
//! emulator (9600 and 115200 baud, 1 ms and 16 ms latency each way), next to
//! lrzsz `sx` / `sx -k` / `sb -k` over the same emulated link to the same
//! receiver (ours), the protocol's theoretical ceiling at that latency, and
//! the line rate. Not a test: it prints ratios and never fails for speed.
//! Time runs from our receiver's first request to its receipt of the last
//! unit, and the ceiling models exactly that span; a ratio to the ceiling
//! above 1.000 is flagged as a model error.
//!
//! Run: `cargo bench --bench serial_throughput` (needs lrzsz for the sx column).

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flashline::profile::TransferProtocol;
use flashline::progress::Silent;
use flashline::serial::transfer;
use flashline::serial::xmodem::{Outgoing, ReceiverOptions, Sender, SenderOptions};
use flashline::sim::link::{self, LinkConfig, LinkStats};

#[path = "../tests/util/relay.rs"]
mod relay;
use relay::relay;

/// The fastest any sender can move `size` bytes to our receiver, which asks
/// with `C`, NAKs the first EOT, and (YMODEM) asks again after block 0 and EOT.
///
/// It ends where the measurement ends: when the last byte of the last unit
/// (EOT, or YMODEM's closing block 0) reaches the receiver. The receiver's
/// final ACK is written then but its trip back is not in the measured time,
/// so it is not in the ceiling either. A measured rate above this ceiling is
/// a model error, not a fast sender.
fn ceiling_seconds(protocol: TransferProtocol, size: usize, baud: u32, latency: f64) -> f64 {
    let b = 10.0 / f64::from(baud);
    // Stop-and-wait exchanges: (bytes out, bytes of the reply back).
    let mut exchanges = Vec::new();
    if protocol == TransferProtocol::Ymodem {
        exchanges.push((133, 2)); // block 0, ACK + C
    }
    let mut left = size;
    while left > 0 {
        let big = protocol != TransferProtocol::Xmodem && left > 128;
        let block = if big { 1024 } else { 128 };
        exchanges.push((block + 5, 1)); // block, ACK
        left = left.saturating_sub(block);
    }
    exchanges.push((1, 1)); // EOT, NAK
    if protocol == TransferProtocol::Ymodem {
        exchanges.push((1, 2)); // EOT, ACK + C
        exchanges.push((133, 1)); // closing block 0, ACK
    } else {
        exchanges.push((1, 1)); // EOT, ACK
    }
    let (last_out, _last_ack) = exchanges.pop().expect("at least EOT");
    let first_request = b + latency;
    let round_trips: f64 = exchanges.iter().map(|&(out, back)| (out + back) as f64 * b + 2.0 * latency).sum();
    first_request + round_trips + last_out as f64 * b + latency
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 97) as u8).collect()
}

enum Peer {
    Ours,
    Lrzsz(&'static str, &'static [&'static str]),
}

/// Seconds from our receiver's first request to the end of the file.
async fn run(
    peer: &Peer,
    protocol: TransferProtocol,
    baud: u32,
    latency: Duration,
    data: &[u8],
) -> Result<f64, String> {
    let mut config = LinkConfig::clean(baud, latency);
    config.precise = true;
    let (sender_end, mut receiver_end, _stats): (_, _, Arc<Mutex<LinkStats>>) = link::link(config);
    let ymodem = protocol == TransferProtocol::Ymodem;
    let mut child = None;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let sending = match peer {
        Peer::Ours => {
            let file = Outgoing { name: "bench.bin".into(), data: data.to_vec(), mtime: 0 };
            let sender = Sender::new(file, SenderOptions::for_baud(protocol, baud), std::time::Instant::now());
            let mut end = sender_end;
            tokio::spawn(async move {
                transfer::send(&mut end, sender, "bench", Vec::new(), &Silent)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
        }
        Peer::Lrzsz(program, args) => {
            std::fs::write(dir.path().join("bench.bin"), data).map_err(|e| e.to_string())?;
            let mut spawned = Command::new(program)
                .args(*args)
                .arg("bench.bin")
                .current_dir(dir.path())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("{program}: {e}"))?;
            let stream = relay(spawned.stdout.take().unwrap(), spawned.stdin.take().unwrap());
            child = Some(spawned);
            tokio::spawn(async move {
                let mut stream = stream;
                let mut end = sender_end;
                let _ = tokio::io::copy_bidirectional(&mut stream, &mut end).await;
                Ok(())
            })
        }
    };
    let options = ReceiverOptions::for_baud(ymodem, baud);
    let received = transfer::receive(&mut receiver_end, options, Duration::ZERO).await;
    if let Some(mut child) = child {
        let _ = child.kill();
        let _ = child.wait();
    }
    sending.abort();
    let report = received.map_err(|e| e.to_string())?;
    let got = &report.files.first().ok_or("no file")?.data;
    if got[..data.len().min(got.len())] != data[..data.len().min(got.len())] || got.len() < data.len() {
        return Err("received data differ".into());
    }
    Ok(report.elapsed.as_secs_f64())
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let have_lrzsz = ["sx", "sb"].iter().all(|p| {
        std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(p).is_file()))
    });
    println!("payload throughput over the link emulator (8N1), receiver: ours");
    println!(
        "| baud | latency | protocol | ours B/s | ours / ceiling | sx B/s | ours / sx | ours / line rate | ceiling / line rate |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut model_errors = 0;
    for baud in [9600u32, 115_200] {
        let size = if baud == 9600 { 4 * 1024 } else { 48 * 1024 };
        let data = payload(size);
        for latency_ms in [1u64, 16] {
            let latency = Duration::from_millis(latency_ms);
            for (protocol, name, lrzsz) in [
                (TransferProtocol::Xmodem, "xmodem", Peer::Lrzsz("sx", &[])),
                (TransferProtocol::Xmodem1k, "xmodem-1k", Peer::Lrzsz("sx", &["-k"])),
                (TransferProtocol::Ymodem, "ymodem", Peer::Lrzsz("sb", &["-k"])),
            ] {
                let line_rate = f64::from(baud) / 10.0;
                let ceiling = size as f64 / ceiling_seconds(protocol, size, baud, latency.as_secs_f64());
                let ours = runtime.block_on(run(&Peer::Ours, protocol, baud, latency, &data));
                let theirs = if have_lrzsz {
                    runtime.block_on(run(&lrzsz, protocol, baud, latency, &data))
                } else {
                    Err("lrzsz not installed".into())
                };
                let ours_rate = ours.clone().map(|s| size as f64 / s);
                let theirs_rate = theirs.clone().map(|s| size as f64 / s);
                let show = |r: &Result<f64, String>| match r {
                    Ok(v) => format!("{v:.0}"),
                    Err(e) => format!("({e})"),
                };
                let ratio =
                    |a: &Result<f64, String>, b: f64| a.as_ref().map_or("-".to_string(), |a| format!("{:.3}", a / b));
                // Nothing beats the ceiling: a ratio above 1 means the model
                // (or the measurement) is wrong, and says so.
                let ceiling_ratio = match &ours_rate {
                    Ok(rate) if rate / ceiling > 1.0 => {
                        model_errors += 1;
                        format!("{:.3} MODEL ERROR", rate / ceiling)
                    }
                    other => ratio(other, ceiling),
                };
                println!(
                    "| {baud} | {latency_ms} ms | {name} | {} | {} | {} | {} | {} | {:.3} |",
                    show(&ours_rate),
                    ceiling_ratio,
                    show(&theirs_rate),
                    match (&ours_rate, &theirs_rate) {
                        (Ok(a), Ok(b)) => format!("{:.3}", a / b),
                        _ => "-".into(),
                    },
                    ratio(&ours_rate, line_rate),
                    ceiling / line_rate,
                );
            }
        }
    }
    if model_errors > 0 {
        println!(
            "MODEL ERROR: {model_errors} measured rate(s) above the protocol ceiling: the ceiling model or the timing is wrong"
        );
    }
}
