//! How a station's events look. On a terminal: one live line per fixture
//! (idle, the unit's MAC, its step and progress, the last result) and the
//! day's counts, with results and refusals printed above them. Otherwise one
//! plain line per event (logs, line systems), or one JSON event per line
//! (`--json`). Used by `station` and `demo --station`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::progress::{Progress, ProgressEvent, Silent};
use crate::station::{StationEvent, StationObserver};
use crate::sync::lock;

/// The live lines, when stderr is a terminal.
struct Live {
    multi: MultiProgress,
    fixtures: Mutex<BTreeMap<String, ProgressBar>>,
    counts: ProgressBar,
}

impl Live {
    fn fixture(&self, name: &str) -> ProgressBar {
        let mut fixtures = lock(&self.fixtures);
        fixtures
            .entry(name.to_string())
            .or_insert_with(|| {
                let bar = self.multi.insert_before(&self.counts, ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{prefix:8} {spinner} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_prefix(name.to_string());
                bar.enable_steady_tick(Duration::from_millis(200));
                bar
            })
            .clone()
    }
}

/// A fixture's transfers and notes on its live line.
struct FixtureProgress {
    bar: ProgressBar,
    total: Mutex<Option<u64>>,
    label: Mutex<String>,
}

impl Progress for FixtureProgress {
    fn report(&self, event: ProgressEvent) {
        match event {
            ProgressEvent::Started { label, total, .. } => {
                *lock(&self.total) = total;
                self.bar.set_message(label.clone());
                *lock(&self.label) = label;
            }
            ProgressEvent::Advanced { done, .. } => {
                if let Some(total) = *lock(&self.total)
                    && total > 0
                {
                    let label = lock(&self.label).clone();
                    self.bar.set_message(format!("{label} {}%", done * 100 / total));
                }
            }
            ProgressEvent::Note { text, .. } => self.bar.set_message(text),
            _ => {}
        }
    }
}

/// Prints each event as a line (or JSON).
pub struct EventLines {
    json: bool,
    quiet: bool,
    counts: Mutex<(u64, u64, u64)>,
    live: Option<Live>,
}

impl EventLines {
    pub fn new(json: bool, quiet: bool) -> EventLines {
        let live = (!json && !quiet && std::io::stderr().is_terminal()).then(|| {
            let multi = MultiProgress::new();
            let counts = multi.add(ProgressBar::new_spinner());
            counts
                .set_style(ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()));
            counts.set_message("today: 0 passed, 0 failed, 0 refused");
            Live { multi, fixtures: Mutex::new(BTreeMap::new()), counts }
        });
        EventLines { json, quiet, counts: Default::default(), live }
    }

    /// Updates the fixture's live line; true when the event needs no line of its own.
    fn show_live(&self, live: &Live, event: &StationEvent) -> bool {
        let (fixture, message) = match event {
            StationEvent::Idle { fixture } => (fixture, "idle, waiting for a unit".to_string()),
            StationEvent::Arrived { fixture, mac, .. } => (fixture, format!("{mac}: identified")),
            StationEvent::RunStarted { fixture, mac, .. } => (fixture, format!("{mac}: running")),
            StationEvent::StepEnded { fixture, mac, kind, outcome, .. } => {
                (fixture, format!("{mac}: {kind} {outcome}"))
            }
            StationEvent::RunEnded { fixture, mac, outcome, finding, .. } => (
                fixture,
                format!(
                    "{mac}: {}{} - take it out",
                    outcome.to_uppercase(),
                    finding.as_ref().map(|f| format!(" ({f})")).unwrap_or_default()
                ),
            ),
            StationEvent::Gone { fixture, mac } => (fixture, format!("{mac} removed")),
            StationEvent::PortTrouble { fixture, error } => (fixture, format!("port trouble: {error}")),
            StationEvent::FixtureFailed { fixture, .. } => (fixture, "FIXTURE FAILED: takes no unit".to_string()),
            StationEvent::DatabaseLost { .. } => {
                for bar in lock(&live.fixtures).values() {
                    bar.set_message("DATABASE UNAVAILABLE: no new unit (a running unit finishes)");
                }
                return false;
            }
            _ => return false,
        };
        live.fixture(fixture).set_message(message);
        // Steps and arrivals only change the live line; results and
        // refusals are also kept as lines above it.
        matches!(
            event,
            StationEvent::Idle { .. }
                | StationEvent::Arrived { .. }
                | StationEvent::RunStarted { .. }
                | StationEvent::StepEnded { .. }
                | StationEvent::Gone { .. }
        )
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
        if let Some(live) = &self.live
            && self.show_live(live, event)
        {
            return;
        }
        let mut counts = lock(&self.counts);
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
            StationEvent::FixtureRestarted { fixture, error, restart } => {
                format!("{fixture}: its task ended abnormally ({error}); restarted (restart {restart})")
            }
            StationEvent::FixtureFailed { fixture, error, restarts, within_s } => format!(
                "{fixture}: FIXTURE FAILED: its task ended abnormally again ({error}) after {restarts} restart(s) \
                 within {within_s} s; it takes no unit until the station is started again"
            ),
            StationEvent::DatabaseBack => "database back: spooled records delivered, taking units again".into(),
            StationEvent::Reaped { stations, runs, leases } => format!(
                "released what {stations} silent station(s) held: {runs} run(s) marked interrupted, {leases} address(es) freed"
            ),
            StationEvent::Stopping => "stopping: no new unit; running units finish".into(),
            StationEvent::Stopped { passed, failed, refused } => {
                format!("station stopped: {passed} passed, {failed} failed, {refused} refused")
            }
        };
        if let Some(live) = &self.live {
            live.counts.set_message(format!("today: {} passed, {} failed, {} refused", counts.0, counts.1, counts.2));
            let _ = live.multi.println(line);
            if let StationEvent::Stopped { .. } = event {
                for bar in lock(&live.fixtures).values() {
                    bar.finish_and_clear();
                }
                live.counts.finish();
            }
        } else if !self.quiet
            || matches!(
                event,
                StationEvent::RunEnded { .. } | StationEvent::DatabaseLost { .. } | StationEvent::FixtureFailed { .. }
            )
        {
            eprintln!("{line}");
        }
    }

    fn progress(&self, fixture: &str) -> Arc<dyn Progress> {
        match &self.live {
            Some(live) => Arc::new(FixtureProgress {
                bar: live.fixture(fixture),
                total: Mutex::new(None),
                label: Mutex::new(String::new()),
            }),
            None => Arc::new(Silent),
        }
    }
}
