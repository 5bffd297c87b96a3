//! Payload throughput of our XMODEM / XMODEM-1K / YMODEM sender over the link
//! emulator (9600 and 115200 baud, 1 ms and 16 ms latency each way), next to
//! lrzsz `sx` / `sx -k` / `sb -k` over the same emulated link to the same
//! receiver (ours), the protocol's theoretical ceiling at that latency, and
//! the line rate. Not a test: it prints ratios and never fails for speed.
//!
//! Run: `cargo bench --bench serial_throughput` (needs lrzsz for the sx column).

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flashline::profile::TransferProtocol;
use flashline::progress::Silent;
use flashline::serial::transfer;
use flashline::serial::xmodem::{Outgoing, ReceiverOptions, Sender, SenderOptions};
use flashline::sim::link::{self, LinkConfig, LinkStats};

/// Seconds for a stop-and-wait exchange: `out` bytes one way, `back` bytes back.
fn exchange(out: usize, back: usize, byte_time: f64, latency: f64) -> f64 {
    (out + back) as f64 * byte_time + 2.0 * latency
}

/// The fastest any sender can move `size` bytes to our receiver, which asks
/// with `C`, NAKs the first EOT, and (YMODEM) asks again after block 0 and EOT.
fn ceiling_seconds(protocol: TransferProtocol, size: usize, baud: u32, latency: f64) -> f64 {
    let b = 10.0 / f64::from(baud);
    let mut frames = Vec::new();
    let mut left = size;
    while left > 0 {
        let big = protocol != TransferProtocol::Xmodem && left > 128;
        let block = if big { 1024 } else { 128 };
        frames.push(block + 5);
        left = left.saturating_sub(block);
    }
    let mut total = b + latency; // the first C
    if protocol == TransferProtocol::Ymodem {
        total += exchange(133, 2, b, latency); // block 0, ACK + C
    }
    total += frames.iter().map(|&f| exchange(f, 1, b, latency)).sum::<f64>();
    total += exchange(1, 1, b, latency); // EOT, NAK
    if protocol == TransferProtocol::Ymodem {
        total += exchange(1, 2, b, latency); // EOT, ACK + C
        total += exchange(133, 1, b, latency); // closing block 0, ACK
    } else {
        total += exchange(1, 1, b, latency); // EOT, ACK
    }
    total
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 97) as u8).collect()
}

/// A stream to a child's stdin/stdout, relayed by blocking threads.
fn relay(mut from: impl Read + Send + 'static, mut to: impl Write + Send + 'static) -> tokio::io::DuplexStream {
    let (ours, relay) = tokio::io::duplex(1 << 16);
    let (mut relay_read, mut relay_write) = tokio::io::split(relay);
    let handle = tokio::runtime::Handle::current();
    let reader_handle = handle.clone();
    std::thread::spawn(move || {
        use tokio::io::AsyncWriteExt;
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = from.read(&mut buf) {
            if reader_handle.block_on(relay_write.write_all(&buf[..n])).is_err() {
                break;
            }
        }
    });
    std::thread::spawn(move || {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = handle.block_on(relay_read.read(&mut buf)) {
            if to.write_all(&buf[..n]).is_err() || to.flush().is_err() {
                break;
            }
        }
    });
    ours
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
    let have_lrzsz = ["sx", "sb"]
        .iter()
        .all(|p| Command::new(p).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok());
    println!("payload throughput over the link emulator (8N1), receiver: ours");
    println!(
        "| baud | latency | protocol | ours B/s | ours / ceiling | sx B/s | ours / sx | ours / line rate | ceiling / line rate |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
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
                println!(
                    "| {baud} | {latency_ms} ms | {name} | {} | {} | {} | {} | {} | {:.3} |",
                    show(&ours_rate),
                    ratio(&ours_rate, ceiling),
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
}
