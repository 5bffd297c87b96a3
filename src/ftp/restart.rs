//! Starting again: a transfer after a dropped connection (the back-off, and
//! the REST offset when the server offers `REST STREAM` and holds a prefix of
//! the file), and the device's own restart after a session (its FTP port
//! goes away, then comes back), each within its deadline.

use std::time::{Duration, Instant};

use super::FtpError;
use super::session::Session;
use super::spec::UploadSpec;
use crate::net::wait::{WaitSpec, wait_for};
use crate::net::{PortState, ProbeOptions, Prober};
use crate::progress::{Progress, ProgressEvent, Silent, TaskKind};

/// How long to wait before attempt `attempts + 1` after a dropped
/// connection, or None when the `retries` allowed are spent.
pub(super) fn retry_delay(attempts: u32, retries: u32) -> Option<Duration> {
    (attempts <= retries).then(|| Duration::from_millis(200 * u64::from(attempts)))
}

/// Where attempt `attempt` of a `size`-byte file starts: a retry on a server
/// that resumes (`REST STREAM`) continues after what it holds, asked with
/// SIZE; anything else sends the whole file.
pub(super) async fn resume_offset(session: &mut Session, remote: &str, attempt: u32, size: u64) -> u64 {
    if attempt > 1 && session.resumable {
        resume_from(session.ftp.size(remote).await.ok().map(|n| n as u64), size)
    } else {
        0
    }
}

/// The offset to resume from when the server holds `on_server` bytes of a
/// `size`-byte file: more than the file (another file, or one that changed)
/// or an unknown size starts over.
fn resume_from(on_server: Option<u64>, size: u64) -> u64 {
    match on_server {
        Some(held) if held <= size => held,
        _ => 0,
    }
}

/// Waits for the FTP port to go away (the device resets) and to come back.
pub(super) async fn wait_for_restart(spec: &UploadSpec, progress: &dyn Progress) -> Result<Duration, FtpError> {
    let host = spec.host.to_string();
    progress
        .report(ProgressEvent::Note { kind: TaskKind::NetworkWait, text: format!("waiting for {host} to restart") });
    let prober = Prober::new(spec.probe_method)
        .map_err(|e| FtpError::Protocol { what: "probe for the restart".into(), reply: e.to_string() })?;
    let started = Instant::now();
    let deadline = started + spec.restart_timeout;
    let options = ProbeOptions { timeout: Duration::from_millis(300), retries: 0 };
    loop {
        let results = prober
            .probe(spec.host, &[spec.port], options)
            .await
            .map_err(|e| FtpError::Protocol { what: "probe for the restart".into(), reply: e.to_string() })?;
        if results.first().is_some_and(|r| r.state != PortState::Open) {
            break;
        }
        if Instant::now() >= deadline {
            return Err(FtpError::Restart { host, what: "go down", timeout: spec.restart_timeout });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let wait = WaitSpec {
        target: spec.host,
        icmp: false,
        ports: vec![(spec.port, PortState::Open)],
        timeout: deadline.saturating_duration_since(Instant::now()),
        interval: Duration::from_millis(10),
        max_interval: Duration::from_millis(40),
        probe: ProbeOptions::default(),
    };
    let outcome = wait_for(&wait, &prober, &Silent)
        .await
        .map_err(|e| FtpError::Protocol { what: "wait for the restart".into(), reply: e.to_string() })?;
    if !outcome.reached {
        return Err(FtpError::Restart { host, what: "come back", timeout: spec.restart_timeout });
    }
    let took = started.elapsed();
    let text = format!("{host} is back after {:.1} s", took.as_secs_f64());
    progress.report(ProgressEvent::Note { kind: TaskKind::NetworkWait, text });
    Ok(took)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_waits_longer_each_time_until_the_retries_are_spent() {
        assert_eq!(retry_delay(1, 2), Some(Duration::from_millis(200)));
        assert_eq!(retry_delay(2, 2), Some(Duration::from_millis(400)));
        assert_eq!(retry_delay(3, 2), None);
        assert_eq!(retry_delay(1, 0), None, "no retries: the first failure is the last");
    }

    #[test]
    fn a_resume_continues_after_what_the_server_holds() {
        assert_eq!(resume_from(Some(4096), 10_000), 4096);
        assert_eq!(resume_from(Some(10_000), 10_000), 10_000, "all of it: STOR of nothing more");
        assert_eq!(resume_from(Some(0), 10_000), 0);
        assert_eq!(resume_from(Some(10_001), 10_000), 0, "more than the file: start over");
        assert_eq!(resume_from(None, 10_000), 0, "SIZE failed: start over");
    }
}
