//! Waiting for a device's network services: poll ICMP echo and ports until
//! each reaches its wanted state or a deadline passes, recording a timeline of
//! every change (first echo reply at t1, port 21 RST until t2, SYN-ACK at t3).
//! This is the profile's `wait_for_network` step.
//!
//! Polling starts at a short interval and backs off to a bounded maximum; a
//! probe that gets no answer takes its own timeout, so a silent device is
//! polled slowly by itself. Every loop is bounded by the deadline.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::icmp::Pinger;
use super::{IcmpResult, IcmpState, NetError, PortResult, PortState, ProbeOptions, Prober};
use crate::progress::{Progress, ProgressEvent, TaskKind};

/// What to wait for.
#[derive(Debug, Clone)]
pub struct WaitSpec {
    pub target: Ipv4Addr,
    /// Wait for an echo reply.
    pub icmp: bool,
    /// Ports and the state each must reach.
    pub ports: Vec<(u16, PortState)>,
    pub timeout: Duration,
    /// First interval between polls; doubles up to `max_interval`.
    pub interval: Duration,
    pub max_interval: Duration,
    /// Per-probe answer timeout and retries.
    pub probe: ProbeOptions,
}

/// One change seen while waiting.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineEvent {
    /// Milliseconds since the wait started.
    pub t_ms: u64,
    pub event: String,
}

impl std::fmt::Display for TimelineEvent {
    /// `    120 ms  port 21 closed (RST)`: the timeline's line as printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:>7} ms  {}", self.t_ms, self.event)
    }
}

/// How a wait ended.
#[derive(Debug, Clone, Serialize)]
pub struct WaitOutcome {
    /// Every wanted state was reached.
    pub reached: bool,
    #[serde(serialize_with = "serialize_ms", rename = "elapsed_ms")]
    pub elapsed: Duration,
    /// The last ICMP result (the first reply once one came).
    pub icmp: Option<IcmpResult>,
    /// The last result of each port, in the order asked.
    pub ports: Vec<PortResult>,
    pub timeline: Vec<TimelineEvent>,
    /// Polling rounds made.
    pub rounds: u32,
}

fn serialize_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

/// Polls until `spec` is met or its timeout passes. Each timeline event is
/// reported to `progress` as it happens, as a [`TaskKind::NetworkWait`] note
/// (`+120 ms 21/tcp closed (RST)`).
pub async fn wait_for(spec: &WaitSpec, prober: &Prober, progress: &dyn Progress) -> Result<WaitOutcome, NetError> {
    let started = Instant::now();
    let deadline = started + spec.timeout;
    let mut pinger = if spec.icmp { Some(Pinger::new(spec.target)?) } else { None };
    let mut timeline = Vec::new();
    let record = |event: String, timeline: &mut Vec<TimelineEvent>| {
        let event = TimelineEvent { t_ms: started.elapsed().as_millis() as u64, event };
        progress.report(ProgressEvent::Note { kind: TaskKind::NetworkWait, text: event.to_string() });
        timeline.push(event);
    };
    let mut icmp_result: Option<IcmpResult> = None;
    let mut icmp_met = !spec.icmp;
    let mut ports: Vec<Option<PortResult>> = vec![None; spec.ports.len()];
    let mut met: Vec<bool> = vec![false; spec.ports.len()];
    let mut interval = spec.interval.max(Duration::from_millis(1));
    let mut rounds = 0u32;
    record(format!("waiting for {}", describe(spec)), &mut timeline);
    loop {
        rounds += 1;
        let remaining = deadline.saturating_duration_since(Instant::now());
        // The first round always gets the full answer timeout, so a wait of
        // zero is a single probe; later rounds stop at the deadline.
        let answer_timeout = if rounds == 1 {
            spec.probe.timeout
        } else {
            spec.probe.timeout.min(remaining).max(Duration::from_millis(1))
        };
        if let (Some(pinger), false) = (pinger.as_mut(), icmp_met) {
            let result = pinger.ping(answer_timeout).await?;
            let changed = icmp_result.as_ref().is_none_or(|last| last.state != result.state);
            if changed {
                let what = match result.state {
                    IcmpState::Reply => "first echo reply",
                    IcmpState::Timeout => "no echo reply",
                    IcmpState::Unreachable => "ICMP unreachable",
                };
                record(format!("{what} ({})", result.evidence), &mut timeline);
            }
            icmp_met = result.state == IcmpState::Reply;
            icmp_result = Some(result);
        }
        let pending: Vec<usize> = (0..spec.ports.len()).filter(|&i| !met[i]).collect();
        if !pending.is_empty() {
            let numbers: Vec<u16> = pending.iter().map(|&i| spec.ports[i].0).collect();
            let options = ProbeOptions {
                timeout: answer_timeout,
                retries: if Instant::now() + answer_timeout * 2 < deadline { spec.probe.retries } else { 0 },
            };
            let results = prober.probe(spec.target, &numbers, options).await?;
            for (&i, result) in pending.iter().zip(results) {
                let changed =
                    ports[i].as_ref().is_none_or(|last| last.state != result.state || last.reason != result.reason);
                if changed {
                    record(
                        format!("port {} {} ({})", result.port, state_word(result.state), result.evidence),
                        &mut timeline,
                    );
                }
                met[i] = result.state == spec.ports[i].1;
                ports[i] = Some(result);
            }
        }
        let reached = icmp_met && met.iter().all(|m| *m);
        let now = Instant::now();
        if reached || now >= deadline {
            record(
                if reached {
                    format!("all wanted states reached after {rounds} round(s)")
                } else {
                    format!("gave up after {} ms and {rounds} round(s)", spec.timeout.as_millis())
                },
                &mut timeline,
            );
            return Ok(WaitOutcome {
                reached,
                elapsed: started.elapsed(),
                icmp: icmp_result,
                ports: ports.into_iter().flatten().collect(),
                timeline,
                rounds,
            });
        }
        tokio::time::sleep(interval.min(deadline - now)).await;
        interval = (interval * 2).min(spec.max_interval.max(spec.interval));
    }
}

fn state_word(state: PortState) -> &'static str {
    match state {
        PortState::Open => "open",
        PortState::Closed => "closed",
        PortState::Filtered => "filtered",
    }
}

fn describe(spec: &WaitSpec) -> String {
    let mut parts = Vec::new();
    if spec.icmp {
        parts.push("echo reply".to_string());
    }
    for (port, state) in &spec.ports {
        parts.push(format!("port {port} {}", state_word(*state)));
    }
    format!("{} at {} (up to {} ms)", parts.join(", "), spec.target, spec.timeout.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::net::closed_loopback_port as closed_port;

    #[tokio::test]
    async fn notices_a_listener_that_starts_late() {
        // A socket bound but not listening: connect() is refused (closed)
        // until listen(), which the progress callback calls once the wait has
        // reported the port closed. No sleep, no freed port to rebind.
        let (socket, port) = closed_port();
        let spec = WaitSpec {
            target: Ipv4Addr::LOCALHOST,
            icmp: false,
            ports: vec![(port, PortState::Open)],
            timeout: Duration::from_secs(30),
            interval: Duration::from_millis(10),
            max_interval: Duration::from_millis(40),
            probe: ProbeOptions { timeout: Duration::from_millis(500), retries: 0 },
        };
        let closed = format!("port {port} closed");
        let seen = std::sync::Mutex::new(Vec::new());
        let on_event = |event: ProgressEvent| {
            let ProgressEvent::Note { text, .. } = event else { return };
            // The note is the timeline line: `    120 ms  port N closed ...`.
            let line = text.split_once(" ms  ").map_or(text.as_str(), |(_, line)| line).to_string();
            if line.starts_with(&closed) {
                socket.listen(16).unwrap();
            }
            seen.lock().unwrap().push(line);
        };
        let outcome = wait_for(&spec, &Prober::Connect, &on_event).await.unwrap();
        assert!(outcome.reached, "{:?}", outcome.timeline);
        let events: Vec<&str> = outcome.timeline.iter().map(|e| e.event.as_str()).collect();
        assert_eq!(events.len(), 4, "waiting, closed, open, reached: {events:?}");
        assert!(events[0].starts_with("waiting for port"), "{events:?}");
        assert!(events[1].starts_with(&closed), "{events:?}");
        assert!(events[2].starts_with(&format!("port {port} open")), "{events:?}");
        assert!(events[3].starts_with("all wanted states reached"), "{events:?}");
        assert!(outcome.rounds >= 2, "open only at a later poll than closed");
        assert_eq!(seen.into_inner().unwrap(), events, "the progress saw every event, in order, as it happened");
    }

    #[tokio::test]
    async fn gives_up_at_the_deadline() {
        let (_socket, port) = closed_port();
        let spec = WaitSpec {
            target: Ipv4Addr::LOCALHOST,
            icmp: false,
            ports: vec![(port, PortState::Open)],
            timeout: Duration::from_millis(300),
            interval: Duration::from_millis(10),
            max_interval: Duration::from_millis(40),
            probe: ProbeOptions::default(),
        };
        let started = Instant::now();
        let outcome = wait_for(&spec, &Prober::Connect, &crate::progress::Silent).await.unwrap();
        assert!(!outcome.reached);
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(outcome.ports[0].state, PortState::Closed);
        assert!(outcome.timeline.last().unwrap().event.starts_with("gave up"));
    }
}
