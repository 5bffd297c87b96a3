//! A serial link emulator between two byte streams: bytes are paced at the
//! baud rate (10 bit times per byte for 8N1), delayed by a latency per
//! direction (a USB adapter's latency timer is 1-16 ms), and hit by bit errors
//! and dropped bytes at given rates, from a seed so a run can be repeated.
//!
//! It models the wire, not a UART: no framing errors, no flow control, no
//! buffer limits. Time is tokio's clock, so tests can run it with paused time
//! (pacing then costs no real time); `precise` spins for the last
//! millisecond of each wait, for benchmarks where tokio's 1 ms timer
//! granularity would blur the numbers.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::time::Instant;

/// One direction of the link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Direction {
    pub latency: Duration,
    /// Probability that each bit is flipped.
    pub bit_error_rate: f64,
    /// Probability that each byte is lost.
    pub drop_rate: f64,
}

impl Direction {
    pub fn clean(latency: Duration) -> Direction {
        Direction { latency, bit_error_rate: 0.0, drop_rate: 0.0 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkConfig {
    pub baud: u32,
    /// Bit times per byte: 10 for 8N1 (start, 8 data, stop).
    pub bits_per_byte: u32,
    pub a_to_b: Direction,
    pub b_to_a: Direction,
    pub seed: u64,
    /// Spin for the last millisecond of each wait (benchmarks).
    pub precise: bool,
}

impl LinkConfig {
    /// A clean 8N1 link with the same latency both ways.
    pub fn clean(baud: u32, latency: Duration) -> LinkConfig {
        LinkConfig {
            baud,
            bits_per_byte: 10,
            a_to_b: Direction::clean(latency),
            b_to_a: Direction::clean(latency),
            seed: 0,
            precise: false,
        }
    }

    /// Seconds one byte occupies the line.
    pub fn byte_time(&self) -> f64 {
        f64::from(self.bits_per_byte) / f64::from(self.baud.max(1))
    }
}

/// What happened on one direction of the link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirectionStats {
    pub bytes: u64,
    pub corrupted: u64,
    pub dropped: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub a_to_b: DirectionStats,
    pub b_to_a: DirectionStats,
}

/// A deterministic generator (SplitMix64): the noise must be repeatable.
#[derive(Debug, Clone)]
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn chance(&mut self, probability: f64) -> bool {
        probability > 0.0 && ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < probability
    }
}

/// Two connected streams with the emulated link between them, and the
/// link's counters.
pub fn link(config: LinkConfig) -> (DuplexStream, DuplexStream, Arc<Mutex<LinkStats>>) {
    let (a_outer, a_inner) = tokio::io::duplex(1 << 16);
    let (b_outer, b_inner) = tokio::io::duplex(1 << 16);
    let stats = Arc::new(Mutex::new(LinkStats::default()));
    tokio::spawn(bridge(a_inner, b_inner, config, stats.clone()));
    (a_outer, b_outer, stats)
}

/// Carries bytes between `a` and `b` through the emulated link until both
/// directions are closed.
pub async fn bridge<A, B>(a: A, b: B, config: LinkConfig, stats: Arc<Mutex<LinkStats>>) -> std::io::Result<()>
where
    A: AsyncRead + AsyncWrite + Send + 'static,
    B: AsyncRead + AsyncWrite + Send + 'static,
{
    let (a_read, a_write) = tokio::io::split(a);
    let (b_read, b_write) = tokio::io::split(b);
    let forward = pump(a_read, b_write, config, config.a_to_b, Noise(config.seed), stats.clone(), true);
    let backward =
        pump(b_read, a_write, config, config.b_to_a, Noise(config.seed ^ 0x5555_AAAA_5555_AAAA), stats, false);
    let (first, second) = tokio::join!(forward, backward);
    first.and(second)
}

async fn pump<R, W>(
    mut reader: R,
    mut writer: W,
    config: LinkConfig,
    direction: Direction,
    mut noise: Noise,
    stats: Arc<Mutex<LinkStats>>,
    a_to_b: bool,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let base = Instant::now();
    let byte_time = config.byte_time();
    // When the line is next free, in seconds since `base` (f64: no rounding
    // drift over a long transfer).
    let mut line_free = 0.0f64;
    let mut queue: VecDeque<(f64, u8)> = VecDeque::new();
    let mut buf = vec![0u8; 4096];
    let mut open = true;
    let mut out = Vec::with_capacity(4096);
    loop {
        if !open && queue.is_empty() {
            let _ = writer.shutdown().await;
            return Ok(());
        }
        let due = queue.front().map(|&(at, _)| base + Duration::from_secs_f64(at));
        tokio::select! {
            read = reader.read(&mut buf), if open => {
                // A read error ends this direction like a close.
                let n = read.unwrap_or(0);
                if n == 0 {
                    open = false;
                    continue;
                }
                let now = base.elapsed().as_secs_f64();
                let mut counts = DirectionStats::default();
                for &byte in &buf[..n] {
                    let start = line_free.max(now);
                    line_free = start + byte_time;
                    counts.bytes += 1;
                    if noise.chance(direction.drop_rate) {
                        counts.dropped += 1;
                        continue;
                    }
                    let mut noisy = byte;
                    for bit in 0..8 {
                        if noise.chance(direction.bit_error_rate) {
                            noisy ^= 1 << bit;
                        }
                    }
                    counts.corrupted += u64::from(noisy != byte);
                    queue.push_back((line_free + direction.latency.as_secs_f64(), noisy));
                }
                let mut stats = stats.lock().expect("stats lock");
                let side = if a_to_b { &mut stats.a_to_b } else { &mut stats.b_to_a };
                side.bytes += counts.bytes;
                side.dropped += counts.dropped;
                side.corrupted += counts.corrupted;
            }
            _ = wait_until(due, config.precise), if due.is_some() => {
                // Compare as Instants, the timer's own unit: comparing f64
                // seconds could leave a due byte undelivered by a rounding
                // error and spin on an expired timer.
                let now = Instant::now();
                out.clear();
                while let Some(&(at, byte)) = queue.front() {
                    if base + Duration::from_secs_f64(at) > now {
                        break;
                    }
                    out.push(byte);
                    queue.pop_front();
                }
                if writer.write_all(&out).await.is_err() {
                    // The far end is gone: keep draining so the near end
                    // does not block, and stop when it closes.
                    queue.clear();
                    continue;
                }
                let _ = writer.flush().await;
            }
        }
    }
}

async fn wait_until(due: Option<Instant>, precise: bool) {
    let Some(due) = due else { return std::future::pending().await };
    if !precise {
        return tokio::time::sleep_until(due).await;
    }
    let coarse = due.checked_sub(Duration::from_micros(1500)).unwrap_or(due);
    if Instant::now() < coarse {
        tokio::time::sleep_until(coarse).await;
    }
    while Instant::now() < due {
        tokio::task::yield_now().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn paces_at_the_baud_rate_with_latency() {
        let (mut a, mut b, _) = link(LinkConfig::clean(9600, Duration::from_millis(16)));
        let started = Instant::now();
        a.write_all(&[0x55; 960]).await.unwrap();
        let mut got = vec![0u8; 960];
        b.read_exact(&mut got).await.unwrap();
        // 960 bytes at 960 bytes/s, plus 16 ms: 1.016 s (1 ms timer steps).
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(1016) && elapsed <= Duration::from_millis(1020), "{elapsed:?}");
        assert_eq!(got, vec![0x55; 960]);
    }

    #[tokio::test(start_paused = true)]
    async fn noise_is_seeded_and_counted() {
        async fn run(seed: u64) -> (Vec<u8>, LinkStats) {
            let mut config = LinkConfig::clean(1_000_000, Duration::from_millis(1));
            config.a_to_b = Direction { latency: Duration::from_millis(1), bit_error_rate: 1e-3, drop_rate: 1e-3 };
            config.seed = seed;
            let (mut a, mut b, stats) = link(config);
            a.write_all(&[0u8; 20_000]).await.unwrap();
            a.shutdown().await.unwrap();
            let mut got = Vec::new();
            b.read_to_end(&mut got).await.unwrap();
            let stats = *stats.lock().unwrap();
            (got, stats)
        }
        let (first, stats) = run(7).await;
        let (again, _) = run(7).await;
        let (other, _) = run(8).await;
        assert_eq!(first, again, "same seed, same noise");
        assert_ne!(first, other);
        assert_eq!(first.len() as u64, 20_000 - stats.a_to_b.dropped);
        assert!(stats.a_to_b.dropped > 5 && stats.a_to_b.dropped < 60, "{stats:?}");
        let flipped = first.iter().filter(|&&b| b != 0).count();
        assert!(flipped > 60 && flipped < 260, "{flipped}");
    }
}
