//! One fixture's loop: wait for a unit, identify it, decide whether to take
//! it, run it through the profile, record, wait for it to go. The console
//! stays open across units (reopened only when the port fails); each unit
//! gets a fresh transcript.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::admission::{self, Admission, Facts, NotBegun, Plan, PoolFacts, Question, Reason};
use super::file::Fixture;
use super::identity::IdentityPatterns;
use super::{Shared, StationEvent};
use crate::pipeline::device::{DeviceJob, RunContext, run_device_on};
use crate::pipeline::recording::{LiveFixture, RunRecording};
use crate::pipeline::report::StepRecord;
use crate::serial::console::{Console, ConsoleError};
use crate::serial::names::DevRoot;
use crate::serial::port::{self, Port};
use crate::store::{FixtureRow, LeaseRequest, Refusal, RunEnd, RunStart, new_id, now_ms};

/// How long a fixture waits before trying a failed port again.
const PORT_RETRY: Duration = Duration::from_secs(2);
/// The slice in which a waiting fixture looks at the stop flag.
const LOOK: Duration = Duration::from_millis(500);

pub(super) async fn run(shared: Arc<Shared>, index: usize, stop: watch::Receiver<bool>) {
    let fixture = shared.station.file.fixtures[index].clone();
    let patterns =
        IdentityPatterns::new(&shared.station.file.arrival).expect("the station file's patterns were checked");
    let identity_timeout = shared.station.file.arrival.identity_timeout.0;
    let gone_after = shared.station.file.arrival.gone_after.0;
    let mut console: Option<Console<Port>> = None;
    // A unit whose banner came while the last one was being waited out.
    let mut next_mac: Option<String> = None;
    // Whether that unit's boot was stopped already (see `stop_boot`).
    let mut next_stopped = false;
    let mut idle_written = false;
    // The database work between units (the lease given back, the idle
    // row), in order, off the path between a banner and its key press:
    // waited for before the next unit's own database work.
    let mut between = Between::default();
    while !*stop.borrow() {
        let Some(open) = console.as_mut() else {
            match port::open_named(&fixture.port, &shared.profile.profile.serial, &DevRoot::from_env()).await {
                Ok(opened) => console = Some(Console::new(opened)),
                Err(error) => {
                    shared.emit(StationEvent::PortTrouble { fixture: fixture.name.clone(), error: error.to_string() });
                    pause(PORT_RETRY, &stop).await;
                }
            }
            continue;
        };
        if !idle_written {
            let row = fixture_row(&shared, &fixture.name, &fixture.port, "idle");
            let writer = shared.clone();
            between.then(async move { write_fixture(&writer, row).await });
            shared.emit(StationEvent::Idle { fixture: fixture.name.clone() });
            idle_written = true;
        }
        let (mac, stopped) = match next_mac.take() {
            Some(mac) => (mac, Some(next_stopped)),
            None => match identify(&shared, &fixture.name, open, &patterns, identity_timeout).await {
                Identified::Mac(mac) => (mac, None),
                Identified::Nothing => continue,
                Identified::Refused => {
                    idle_written = false;
                    continue;
                }
                Identified::PortFailed(error) => {
                    port_failed(&shared, &fixture.name, &error, &mut console, &stop).await;
                    continue;
                }
            },
        };
        let serial_number = patterns.serial_in(&open.transcript().render());
        shared.emit(StationEvent::Arrived {
            fixture: fixture.name.clone(),
            mac: mac.clone(),
            serial_number: serial_number.clone(),
        });
        let mut taken = console.take().expect("open above");
        // The key press first, the database after: a slow database must
        // not make the unit miss its key window.
        let boot_stopped = match stopped {
            Some(stopped) => stopped,
            None => *shared.recorder.health().borrow() && stop_boot(&shared, &mut taken).await,
        };
        between.done().await;
        let (back, run_id, ending) = take_unit(&shared, index, &mac, serial_number, taken, boot_stopped).await;
        // The run's end is recorded while the fixture already watches for
        // the next unit's banner.
        if let Some(ending) = ending {
            between.then(async move {
                let _ = ending.await;
            });
        }
        console = back.map(fresh);
        idle_written = false;
        // Wait for the unit to go: silence, or another unit's banner. Its
        // address is its own until then (it holds it in NV memory).
        let gone = match console.as_mut() {
            Some(open) => Some(wait_gone(open, &patterns, &mac, gone_after, &stop).await),
            None => None,
        };
        // The next unit's banner came: its key press before the database
        // work below (the lease given back, the fixture's row).
        next_stopped = match (&gone, console.as_mut()) {
            (Some(Ok(Some(_))), Some(open)) => *shared.recorder.health().borrow() && stop_boot(&shared, open).await,
            _ => false,
        };
        if let Some(run_id) = run_id {
            let releaser = shared.clone();
            between.then(async move {
                if releaser.store().release_lease(&run_id).await.is_err() {
                    releaser.recorder.set_healthy(false);
                }
            });
        }
        let Some(gone) = gone else { continue };
        match gone {
            Ok(Some(other)) => {
                shared.emit(StationEvent::Gone { fixture: fixture.name.clone(), mac: mac.clone() });
                next_mac = Some(other);
            }
            Ok(None) => {
                shared.emit(StationEvent::Gone { fixture: fixture.name.clone(), mac: mac.clone() });
                console = console.map(fresh);
            }
            Err(error) => port_failed(&shared, &fixture.name, &error, &mut console, &stop).await,
        }
    }
    between.done().await;
    write_fixture(&shared, fixture_row(&shared, &fixture.name, &fixture.port, "stopped")).await;
}

/// What a look at the console for a new unit found.
enum Identified {
    /// A unit arrived, with this MAC.
    Mac(String),
    /// No banner, or a banner whose MAC line does not give a MAC.
    Nothing,
    /// A banner without a MAC in time: refused as `no-identity`.
    Refused,
    PortFailed(ConsoleError),
}

/// Waits a moment for a unit's banner and, when one comes, for its MAC.
async fn identify(
    shared: &Shared,
    fixture: &str,
    open: &mut Console<Port>,
    patterns: &IdentityPatterns,
    identity_timeout: Duration,
) -> Identified {
    match open.expect(&[&patterns.banner], LOOK, "a unit's banner").await {
        Ok(_) => {}
        Err(ConsoleError::Timeout { .. }) => return Identified::Nothing,
        Err(error) => return Identified::PortFailed(error),
    }
    match open.expect(&[&patterns.mac_bytes], identity_timeout, "the unit's MAC in its banner").await {
        Ok(found) => {
            let line = String::from_utf8_lossy(&found.line).into_owned();
            let matched = String::from_utf8_lossy(&found.matched).into_owned();
            match patterns.mac_in(&line).or_else(|| patterns.mac_in(&matched)) {
                Some(mac) => Identified::Mac(mac),
                None => Identified::Nothing,
            }
        }
        Err(ConsoleError::Timeout { last_lines, .. }) => {
            let detail = format!(
                "its banner shows no MAC (pattern `{}`): {}",
                patterns.mac.as_str(),
                last_lines.iter().map(|l| format!("`{l}`")).collect::<Vec<_>>().join(" | ")
            );
            refuse(shared, fixture, None, Reason::NoIdentity, detail).await;
            Identified::Refused
        }
        Err(error) => Identified::PortFailed(error),
    }
}

/// Database work a fixture does between units, run in the background one
/// piece after the other.
#[derive(Default)]
struct Between(Option<tokio::task::JoinHandle<()>>);

impl Between {
    /// Runs `work` after what was queued before it.
    fn then(&mut self, work: impl Future<Output = ()> + Send + 'static) {
        let before = self.0.take();
        self.0 = Some(tokio::spawn(async move {
            if let Some(before) = before {
                let _ = before.await;
            }
            work.await;
        }));
    }

    /// Waits until everything queued is done.
    async fn done(&mut self) {
        if let Some(work) = self.0.take() {
            let _ = work.await;
        }
    }
}

/// Stops the unit's boot at once: the first step's `interrupt` (expect the
/// key prompt, press the key), done here before the station's database
/// work instead of by the step after it. Only for a first
/// `configure_network` whose `interrupt` is plain text (no `${...}` to
/// resolve per unit) and that has no `skip_if` (which could show instead
/// of the prompt); otherwise the step does it as in `run`. False when not
/// done here: the step then waits for the prompt itself and reports it.
async fn stop_boot(shared: &Shared, console: &mut Console<Port>) -> bool {
    let Some(crate::profile::Step::ConfigureNetwork(step)) = shared.profile.profile.steps.first() else {
        return false;
    };
    let Some(entry) = &step.interrupt else { return false };
    if step.skip_if.is_some() || entry.expect.contains("${") || entry.send.as_str().contains("${") {
        return false;
    }
    let Ok(prompt) = regex::bytes::Regex::new(&entry.expect) else { return false };
    let timeout = entry.timeout.unwrap_or(step.timeout).0;
    if console.expect(&[&prompt], timeout, &format!("`{}`", entry.expect)).await.is_err() {
        return false;
    }
    let ending = if entry.no_line_ending { "" } else { step.line_ending.as_str() };
    // As the step would send it (see `serial::steps::configure_network`).
    let options = crate::serial::console::SendOptions {
        secret: entry.secret,
        char_delay: step.char_delay.0,
        echo_timeout: (step.echo_check && !entry.secret).then_some(step.timeout.0),
    };
    console.send(entry.send.as_str(), ending, options).await.is_ok()
}

/// A console with the same stream and unread text, and a new transcript.
fn fresh(console: Console<Port>) -> Console<Port> {
    let (stream, rest, _) = console.into_inner();
    let mut console = Console::new(stream);
    console.give_back(&rest);
    console
}

async fn port_failed(
    shared: &Shared,
    fixture: &str,
    error: &ConsoleError,
    console: &mut Option<Console<Port>>,
    stop: &watch::Receiver<bool>,
) {
    shared.emit(StationEvent::PortTrouble { fixture: fixture.into(), error: error.to_string() });
    *console = None;
    pause(PORT_RETRY, stop).await;
}

pub(super) async fn pause(duration: Duration, stop: &watch::Receiver<bool>) {
    let mut stop = stop.clone();
    tokio::select! {
        _ = tokio::time::sleep(duration) => {}
        _ = stop.changed() => {}
    }
}

/// Waits until the unit `mac` is gone: `Ok(None)` when the console was
/// silent for `quiet`, `Ok(Some(other))` when another unit's banner came.
/// Its own banner again (it restarted after the upload) keeps waiting.
async fn wait_gone(
    console: &mut Console<Port>,
    patterns: &IdentityPatterns,
    mac: &str,
    quiet: Duration,
    stop: &watch::Receiver<bool>,
) -> Result<Option<String>, ConsoleError> {
    while !*stop.borrow() {
        let mut stopped = stop.clone();
        let seen = tokio::select! {
            seen = console.expect_or_quiet(&patterns.mac_bytes, quiet) => seen?,
            _ = stopped.changed() => return Ok(None),
        };
        let Some(found) = seen else { return Ok(None) };
        let line = String::from_utf8_lossy(&found.line).into_owned();
        match patterns.mac_in(&line) {
            Some(other) if other != mac => return Ok(Some(other)),
            _ => {}
        }
    }
    Ok(None)
}

async fn refuse(shared: &Shared, fixture: &str, mac: Option<&str>, reason: Reason, detail: String) {
    shared.count(|c| c.refused += 1);
    shared.emit(StationEvent::Refused {
        fixture: fixture.into(),
        mac: mac.map(str::to_string),
        reason: reason.as_str().into(),
        detail: detail.clone(),
    });
    if reason == Reason::DatabaseUnavailable {
        return;
    }
    let refusal = Refusal {
        id: new_id(),
        station: shared.station.file.station.clone(),
        fixture: fixture.into(),
        unit_mac: mac.map(str::to_string),
        reason: reason.as_str().into(),
        detail,
        at_ms: now_ms(),
    };
    if shared.store().refuse(&refusal).await.is_err() {
        shared.recorder.set_healthy(false);
    }
}

/// A fixture's live row in `state`, nothing else set.
fn fixture_row(shared: &Shared, fixture: &str, port: &str, state: &str) -> FixtureRow {
    FixtureRow {
        station: shared.station.file.station.clone(),
        name: fixture.into(),
        port: port.into(),
        state: state.into(),
        unit_mac: None,
        run_id: None,
        step: None,
        progress_pct: None,
        last_outcome: None,
        updated_ms: now_ms(),
    }
}

/// Writes a fixture's row as failed for the shift (see `supervise`).
pub(super) async fn write_failed(shared: &Shared, fixture: &str, port: &str) {
    write_fixture(shared, fixture_row(shared, fixture, port, "failed")).await;
}

/// Writes a fixture's live row. A live view only: losing one update is
/// harmless, the next replaces it.
async fn write_fixture(shared: &Shared, row: FixtureRow) {
    let _ = shared.store().set_fixture(&row).await;
}

/// Decides whether to take the unit and runs it. Gives the console back,
/// and the run's id when it ran.
async fn take_unit(
    shared: &Arc<Shared>,
    index: usize,
    mac: &str,
    serial_number: Option<String>,
    console: Console<Port>,
    boot_stopped: bool,
) -> (Option<Console<Port>>, Option<String>, Option<tokio::task::JoinHandle<()>>) {
    let fixture = &shared.station.file.fixtures[index];
    let run_id = new_id();
    let Some((plan, recording, running)) = admit(shared, fixture, mac, serial_number.as_deref(), &run_id).await else {
        return (Some(console), None, None);
    };
    write_fixture(shared, running).await;
    shared.emit(StationEvent::RunStarted {
        fixture: fixture.name.clone(),
        mac: mac.into(),
        run_id: run_id.clone(),
        ip: plan.ip.map(|ip| ip.to_string()),
    });
    let job = DeviceJob {
        name: format!("{}:{mac}", fixture.name),
        profile: shared.job_profile.clone(),
        values: admission::values(&shared.station.path, fixture, mac, serial_number.as_deref(), &plan),
        port: Some(fixture.port.clone().into()),
    };
    let progress = shared.observer.progress(&fixture.name);
    // Ctrl-C lets a running unit finish: its run gets no cancel signal.
    let (_keep_running, never) = watch::channel(false);
    let on_step = |_: &str, step: &StepRecord| {
        shared.emit(shared.step_event(&fixture.name, mac, step));
        recording.step(step);
    };
    let context = RunContext {
        journal: None,
        done: std::collections::BTreeMap::new(),
        files_done: std::collections::BTreeMap::new(),
        progress: progress.as_ref(),
        cancel: never,
        on_step: &on_step,
        boot_stopped,
    };
    let (report, console) = run_device_on(&job, context, Some(console)).await;
    let (shared, name, port, mac) = (shared.clone(), fixture.name.clone(), fixture.port.clone(), mac.to_string());
    let ending = tokio::spawn(async move {
        let end = recording.end(&report).await;
        finish(&shared, &name, &port, &mac, end).await;
    });
    (console, Some(run_id), Some(ending))
}

/// Asks the database what [`admission::decide`] needs, in its order, and
/// acts on the decision: the run's recording begun and the fixture's
/// running row when the unit is taken; the refusal recorded otherwise.
async fn admit(
    shared: &Shared,
    fixture: &Fixture,
    mac: &str,
    serial_number: Option<&str>,
    run_id: &str,
) -> Option<(Plan, RunRecording, FixtureRow)> {
    let pool = match (&shared.station.pool, &shared.station.file.ip_pool) {
        (Some(pool), Some(settings)) => Some((pool, settings)),
        _ => None,
    };
    let mut facts = Facts {
        healthy: *shared.recorder.health().borrow(),
        reflash: shared.options.reflash,
        fixed_ip: fixture.set.get("ip").and_then(|ip| ip.parse().ok()),
        pool: pool.map(|(pool, settings)| PoolFacts {
            text: &pool.text,
            lease: settings.lease,
            mask: settings.mask,
            gateway: settings.gateway,
        }),
        standing: None,
        lease: None,
        begun: None,
    };
    let mut began = None;
    loop {
        match admission::decide(&facts) {
            Admission::Ask(Question::Standing) => {
                facts.standing = Some(shared.store().standing(mac).await.map_err(|error| error.to_string()));
            }
            Admission::Ask(Question::Lease { kept }) => {
                let (pool, _) = pool.expect("a lease is asked for only with a pool");
                let request = LeaseRequest {
                    pool: &pool.text,
                    candidates: &pool.addresses,
                    unit: mac,
                    station: &shared.station.file.station,
                    run_id,
                    kept,
                    now_ms: now_ms(),
                };
                facts.lease = Some(shared.store().lease(&request).await.map_err(|error| error.to_string()));
            }
            Admission::Ask(Question::Begin(plan)) => {
                facts.begun = Some(match begin(shared, fixture, mac, serial_number, run_id, &plan).await {
                    Ok(begun) => {
                        began = Some(begun);
                        Ok(())
                    }
                    Err(not_begun) => Err(not_begun),
                });
            }
            Admission::Take(plan) => {
                let (recording, running) = began.expect("taken only once begun");
                return Some((plan, recording, running));
            }
            Admission::Refuse(refusal) => {
                if refusal.release_lease {
                    let _ = shared.store().release_lease(run_id).await;
                }
                if refusal.database_lost {
                    shared.recorder.set_healthy(false);
                }
                refuse(shared, &fixture.name, Some(mac), refusal.reason, refusal.detail).await;
                return None;
            }
        }
    }
}

/// Writes the run's row (before the unit is touched), with the fixture's
/// running row as the live view.
async fn begin(
    shared: &Shared,
    fixture: &Fixture,
    mac: &str,
    serial_number: Option<&str>,
    run_id: &str,
    plan: &Plan,
) -> Result<(RunRecording, FixtureRow), NotBegun> {
    let start = RunStart {
        id: run_id.into(),
        unit_mac: mac.into(),
        serial_number: serial_number.map(str::to_string),
        station: shared.station.file.station.clone(),
        fixture: fixture.name.clone(),
        operator: shared.operator.clone(),
        profile_name: shared.profile.profile.name.clone(),
        profile_sha256: shared.profile.sha256.clone(),
        images: "[]".into(),
        ip: plan.ip.map(|ip| ip.to_string()),
        started_ms: now_ms(),
    };
    let first_step = shared.profile.profile.steps.first().map(|s| s.kind().to_string());
    let running = FixtureRow {
        unit_mac: Some(mac.into()),
        run_id: Some(run_id.into()),
        step: first_step,
        ..fixture_row(shared, &fixture.name, &fixture.port, "running")
    };
    let live = LiveFixture {
        row: running.clone(),
        kinds: shared.profile.profile.steps.iter().map(|s| s.kind().to_string()).collect(),
    };
    match RunRecording::begin(&shared.recorder, &start, Some(live)).await {
        Ok(Ok(recording)) => Ok((recording, running)),
        Ok(Err(_busy)) => Err(NotBegun::Busy),
        Err(error) => Err(NotBegun::Failed(error.to_string())),
    }
}

async fn finish(shared: &Shared, fixture: &str, port: &str, mac: &str, end: RunEnd) {
    let passed = end.outcome == "passed";
    shared.count(|c| if passed { c.passed += 1 } else { c.failed += 1 });
    let run_id = end.run_id.clone();
    let outcome = end.outcome.clone();
    shared.emit(StationEvent::RunEnded {
        fixture: fixture.into(),
        mac: mac.into(),
        run_id: end.run_id,
        outcome: end.outcome,
        failure_class: end.failure_class,
        finding: end.finding,
        error: end.error,
    });
    let removal = FixtureRow {
        unit_mac: Some(mac.into()),
        run_id: Some(run_id),
        last_outcome: Some(outcome),
        ..fixture_row(shared, fixture, port, "removal")
    };
    write_fixture(shared, removal).await;
}
