//! How a station's events look: one line per event for the technician (the
//! day's counts on each run's end), or one JSON event per line (`--json`).
//! Used by `station` and `demo --station`.

use std::sync::Arc;

use crate::progress::{Progress, Silent};
use crate::station::{StationEvent, StationObserver};

/// Prints each event as a line (or JSON).
pub struct EventLines {
    json: bool,
    quiet: bool,
    counts: std::sync::Mutex<(u64, u64, u64)>,
}

impl EventLines {
    pub fn new(json: bool, quiet: bool) -> EventLines {
        EventLines { json, quiet, counts: Default::default() }
    }
}

impl StationObserver for EventLines {
    fn event(&self, event: &StationEvent) {
        if self.json {
            if let Ok(line) = serde_json::to_string(event) {
                println!("{line}");
            }
            return;
        }
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let line = match event {
            StationEvent::Started { station, fixtures, database, profile } => format!(
                "station {station}: profile {profile}, {} fixture(s) ({}), database {database}",
                fixtures.len(),
                fixtures.join(", ")
            ),
            StationEvent::Recovered { runs, leases } => {
                format!(
                    "recovered: {runs} run(s) left running by an earlier process marked interrupted, {leases} address(es) freed"
                )
            }
            StationEvent::Idle { fixture } => format!("{fixture}: idle, waiting for a unit"),
            StationEvent::Arrived { fixture, mac, serial_number } => format!(
                "{fixture}: unit {mac}{}",
                serial_number.as_ref().map(|s| format!(" (serial number {s})")).unwrap_or_default()
            ),
            StationEvent::Refused { fixture, mac, reason, detail } => {
                counts.2 += 1;
                format!("{fixture}: refused {} ({reason}): {detail}", mac.as_deref().unwrap_or("a unit"))
            }
            StationEvent::RunStarted { fixture, mac, ip, .. } => format!(
                "{fixture}: {mac} running{}",
                ip.as_ref().map(|ip| format!(" with address {ip}")).unwrap_or_default()
            ),
            StationEvent::StepEnded { fixture, mac, kind, outcome, duration_ms, detail, .. } => {
                format!("{fixture}: {mac} {kind} {outcome} in {:.1} s: {detail}", *duration_ms as f64 / 1000.0)
            }
            StationEvent::RunEnded { fixture, mac, outcome, finding, error, .. } => {
                if outcome == "passed" {
                    counts.0 += 1;
                } else {
                    counts.1 += 1;
                }
                format!(
                    "{fixture}: {mac} {}{}{} [today: {} passed, {} failed, {} refused]",
                    outcome.to_uppercase(),
                    finding.as_ref().map(|f| format!(" ({f})")).unwrap_or_default(),
                    error.as_ref().map(|e| format!(": {e}")).unwrap_or_default(),
                    counts.0,
                    counts.1,
                    counts.2
                )
            }
            StationEvent::Gone { fixture, mac } => format!("{fixture}: {mac} removed"),
            StationEvent::PortTrouble { fixture, error } => format!("{fixture}: port trouble, retrying: {error}"),
            StationEvent::DatabaseLost { error } => {
                format!("DATABASE UNAVAILABLE: no new unit is taken on any fixture; running units finish ({error})")
            }
            StationEvent::DatabaseBack { .. } => "database back: spooled records delivered, taking units again".into(),
            StationEvent::Reaped { stations, runs, leases } => format!(
                "released what {stations} silent station(s) held: {runs} run(s) marked interrupted, {leases} address(es) freed"
            ),
            StationEvent::Stopping => "stopping: no new unit; running units finish".into(),
            StationEvent::Stopped { passed, failed, refused } => {
                format!("station stopped: {passed} passed, {failed} failed, {refused} refused")
            }
        };
        if !self.quiet || matches!(event, StationEvent::RunEnded { .. } | StationEvent::DatabaseLost { .. }) {
            eprintln!("{line}");
        }
    }

    fn progress(&self, _fixture: &str) -> Arc<dyn Progress> {
        Arc::new(Silent)
    }
}
