//! A line station: fixtures where units arrive one after another, each taken
//! through the profile by the same pipeline as `run` and `batch`, and every
//! run recorded in the unit database.
//!
//! Per fixture, a loop ([`fixture`]): wait for a unit's banner, read its
//! identity (MAC, serial number), ask the database whether it may be taken
//! (not passed before, not running elsewhere), lease an address when the
//! fixture gives none, write the run (before the unit is touched), run the
//! steps, record each, then wait for the unit to go before taking the next.
//! Beside the fixtures, the heartbeat task writes the station's heartbeat and
//! releases what dead stations hold, and the store's recorder keeps records
//! in a local spool while the database is away.
//!
//! Not here: the database's rules (`store`), the steps (`pipeline`), and
//! drawing (`cli::station_cmd`).

mod admission;
pub mod file;
mod fixture;
pub mod identity;
pub mod pool;
mod restarts;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::failure::{Classify, FailureClass};
use crate::pipeline::device::JobProfile;
use crate::pipeline::report::StepRecord;
use crate::profile::{CheckOptions, ProfileError};
use crate::progress::Progress;
use crate::store::{Claim, DbUrl, StationRow, Store, StoreError, UrlError, now_ms};
use crate::sync::lock;

pub use file::{LoadedStation, StationFile};

/// What the command line adds to the station file.
#[derive(Debug, Clone, Default)]
pub struct StationOptions {
    /// Overrides the file's operator.
    pub operator: Option<String>,
    /// Overrides the file's database.
    pub database: Option<DbUrl>,
    /// Take units that passed before (a rework).
    pub reflash: bool,
    /// Warnings in the profile count as errors.
    pub strict: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StationError {
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another process of the same station is alive (its heartbeat has not
    /// expired): starting would interrupt its runs and free its addresses.
    #[error(
        "station {station} is already running (pid {pid} on host {host}, last heartbeat {age_ms} ms ago): \
         stop it first, or wait until its heartbeat expires ({expiry_ms} ms after the last one)"
    )]
    AlreadyRunning { station: String, host: String, pid: i64, age_ms: i64, expiry_ms: i64 },
}

impl Classify for StationError {
    fn class(&self) -> FailureClass {
        match self {
            StationError::Profile(error) => error.class(),
            StationError::Url(error) => error.class(),
            StationError::Store(error) => error.class(),
            StationError::AlreadyRunning { .. } => FailureClass::Environment,
        }
    }
}

/// What happens on the station, for the technician's screen, `--json` and tests.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum StationEvent {
    Started {
        station: String,
        fixtures: Vec<String>,
        database: String,
        profile: String,
    },
    /// Recovered at start: what an earlier process of this station left running.
    Recovered {
        runs: u64,
        leases: u64,
    },
    /// The fixture waits for a unit.
    Idle {
        fixture: String,
    },
    /// A unit's banner, with its identity.
    Arrived {
        fixture: String,
        mac: String,
        serial_number: Option<String>,
    },
    /// A unit not taken, and why (`done-before`, `running-elsewhere`,
    /// `no-identity`, `no-address`, `database-unavailable`).
    Refused {
        fixture: String,
        mac: Option<String>,
        reason: String,
        detail: String,
    },
    RunStarted {
        fixture: String,
        mac: String,
        run_id: String,
        ip: Option<String>,
    },
    StepEnded {
        fixture: String,
        mac: String,
        index: usize,
        kind: String,
        outcome: String,
        duration_ms: u64,
        detail: String,
    },
    RunEnded {
        fixture: String,
        mac: String,
        run_id: String,
        outcome: String,
        failure_class: Option<String>,
        finding: Option<String>,
        error: Option<String>,
    },
    /// The unit was unplugged (its console fell silent, or another unit's banner came).
    Gone {
        fixture: String,
        mac: String,
    },
    /// The fixture's port cannot be used; retried.
    PortTrouble {
        fixture: String,
        error: String,
    },
    /// The fixture's loop ended abnormally (its task panicked) and was
    /// started again: the `restart`th time within the bound.
    FixtureRestarted {
        fixture: String,
        error: String,
        restart: usize,
    },
    /// The fixture's loop ended abnormally too often: the fixture takes no
    /// unit until the station is started again.
    FixtureFailed {
        fixture: String,
        error: String,
        restarts: usize,
        within_s: u64,
    },
    /// The database cannot be reached: no new unit is taken, records spool.
    DatabaseLost {
        error: String,
    },
    /// The database answers again and the spool was delivered.
    DatabaseBack,
    /// Another station's heartbeat expired: what it held was released.
    Reaped {
        stations: u64,
        runs: u64,
        leases: u64,
    },
    Stopping,
    Stopped {
        passed: u64,
        failed: u64,
        refused: u64,
    },
}

/// Receives the station's events.
pub trait StationObserver: Send + Sync {
    fn event(&self, event: &StationEvent);
    /// Progress of the unit on `fixture`.
    fn progress(&self, fixture: &str) -> Arc<dyn Progress>;
}

/// The day's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub passed: u64,
    pub failed: u64,
    pub refused: u64,
}

/// Everything a fixture loop shares with the others.
struct Shared {
    station: LoadedStation,
    /// The profile, loaded and hashed once at start: every unit runs these
    /// bytes (`job_profile` holds the same for the device runner), and its
    /// run row names their SHA-256.
    profile: crate::profile::LoadedProfile,
    job_profile: Arc<JobProfile>,
    options: StationOptions,
    operator: Option<String>,
    recorder: crate::store::Recorder,
    observer: Arc<dyn StationObserver>,
    counts: std::sync::Mutex<Counts>,
}

impl Shared {
    fn emit(&self, event: StationEvent) {
        self.observer.event(&event);
    }

    fn store(&self) -> &Store {
        self.recorder.store()
    }

    fn count(&self, change: impl FnOnce(&mut Counts)) {
        change(&mut lock(&self.counts));
    }
}

/// Runs the station until `stop` turns true, then lets the running units
/// finish, delivers the spool (bounded) and returns the day's counts.
pub async fn run_station(
    station: LoadedStation,
    options: StationOptions,
    observer: Arc<dyn StationObserver>,
    stop: watch::Receiver<bool>,
) -> Result<Counts, StationError> {
    // Everything is checked before a port is opened or a row written.
    let profile_path = station.profile_path();
    let profile = crate::profile::load(&profile_path, CheckOptions { strict: options.strict })?;
    let database = match &options.database {
        Some(url) => url.clone(),
        None => DbUrl::parse(station.file.database.as_deref().unwrap_or("sqlite:flashline.db"), station.base_dir())?,
    };
    let store = Store::open(&database).await?;
    let spool_path = station.base_dir().join(format!("{}.spool.db", file_safe(&station.file.station)));
    let recorder = crate::store::Recorder::open(store.clone(), &DbUrl::sqlite(&spool_path)).await?;
    let name = station.file.station.clone();
    let operator = options.operator.clone().or_else(|| station.file.operator.clone());
    let heartbeat = station.file.heartbeat.clone();
    let profile_name = profile.profile.name.clone();
    let operator_row = operator.clone();
    let started_ms = now_ms();
    let row = |state: &str| StationRow {
        name: name.clone(),
        host: hostname(),
        pid: i64::from(std::process::id()),
        profile_name: profile_name.clone(),
        operator: operator_row.clone(),
        started_ms,
        heartbeat_ms: now_ms(),
        heartbeat_expiry_ms: heartbeat.expiry.0.as_millis() as i64,
        state: state.into(),
    };
    let started = row("running");
    // The station's row is its lock: taken before anything of an earlier
    // process is touched, so a second process of a live station leaves.
    claim(&store, &started).await?;
    let recovered = store.recover_station(&name, now_ms()).await?;
    observer.event(&StationEvent::Started {
        station: name.clone(),
        fixtures: station.file.fixtures.iter().map(|f| f.name.clone()).collect(),
        database: database.redacted(),
        profile: profile_name.clone(),
    });
    if recovered.runs + recovered.leases > 0 {
        observer.event(&StationEvent::Recovered { runs: recovered.runs, leases: recovered.leases });
    }
    let shared = Arc::new(Shared {
        job_profile: Arc::new(JobProfile::loaded(profile.clone())),
        profile,
        options,
        operator,
        recorder: recorder.clone(),
        observer: observer.clone(),
        counts: std::sync::Mutex::new(Counts::default()),
        station,
    });

    // The heartbeat, reaping and spool delivery run until the fixtures end.
    let (background_stop, background_stopped) = watch::channel(false);
    let beat = tokio::spawn(heartbeat_loop(shared.clone(), started.clone(), background_stopped.clone()));
    let deliver = {
        let recorder = recorder.clone();
        let stopped = background_stopped.clone();
        tokio::spawn(async move { recorder.keep_delivering(Duration::from_millis(500), stopped).await })
    };
    let mut fixtures = tokio::task::JoinSet::new();
    for index in 0..shared.station.file.fixtures.len() {
        fixtures.spawn(supervise(shared.clone(), index, stop.clone()));
    }
    let mut stopping = stop.clone();
    let announce = {
        let observer = observer.clone();
        tokio::spawn(async move {
            while !*stopping.borrow() {
                if stopping.changed().await.is_err() {
                    return;
                }
            }
            observer.event(&StationEvent::Stopping);
        })
    };
    while let Some(joined) = fixtures.join_next().await {
        if let Err(error) = joined {
            tracing::error!(%error, "a fixture task ended abnormally");
        }
    }
    announce.abort();
    let _ = background_stop.send(true);
    let _ = beat.await;
    let _ = deliver.await;
    // Last chance for spooled records: a bounded wait, then they stay in
    // the spool for the next start.
    for _ in 0..20 {
        if recorder.deliver().await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The units still on the fixtures are nobody's business any more.
    let _ = store.recover_station(&name, now_ms()).await;
    let _ = store.heartbeat(&StationRow { heartbeat_ms: now_ms(), ..row("stopped") }).await;
    let counts = *lock(&shared.counts);
    observer.event(&StationEvent::Stopped { passed: counts.passed, failed: counts.failed, refused: counts.refused });
    store.close().await;
    Ok(counts)
}

/// At most this many restarts of a fixture's loop within [`RESTART_WINDOW`].
const MOST_RESTARTS: usize = 5;
const RESTART_WINDOW: Duration = Duration::from_secs(10 * 60);
/// The pause before a fixture's loop is started again.
const RESTART_PAUSE: Duration = Duration::from_secs(2);

/// Runs a fixture's loop. A loop whose task panicked is started again
/// after a pause (a fresh console, a new idle row), at most
/// [`MOST_RESTARTS`] times within [`RESTART_WINDOW`]; then the fixture is
/// failed for the shift, its row says so, and the other fixtures go on.
async fn supervise(shared: Arc<Shared>, index: usize, stop: watch::Receiver<bool>) {
    let fixture = shared.station.file.fixtures[index].clone();
    let mut restarts = restarts::Restarts::new(MOST_RESTARTS, RESTART_WINDOW);
    loop {
        let Err(error) = tokio::spawn(fixture::run(shared.clone(), index, stop.clone())).await else { return };
        let error = panic_text(error);
        tracing::error!(fixture = %fixture.name, %error, "a fixture task ended abnormally");
        match restarts.after_failure(std::time::Instant::now()) {
            restarts::Verdict::Restart { nth } => {
                shared.emit(StationEvent::FixtureRestarted { fixture: fixture.name.clone(), error, restart: nth });
                fixture::pause(RESTART_PAUSE, &stop).await;
            }
            restarts::Verdict::GiveUp { within } => {
                shared.emit(StationEvent::FixtureFailed {
                    fixture: fixture.name.clone(),
                    error,
                    restarts: MOST_RESTARTS,
                    within_s: within.as_secs(),
                });
                fixture::write_failed(&shared, &fixture.name, &fixture.port).await;
                return;
            }
        }
    }
}

/// What a fixture task's panic said.
fn panic_text(error: tokio::task::JoinError) -> String {
    if !error.is_panic() {
        return error.to_string();
    }
    let payload = error.into_panic();
    match payload.downcast_ref::<&str>() {
        Some(text) => format!("panicked: {text}"),
        None => match payload.downcast_ref::<String>() {
            Some(text) => format!("panicked: {text}"),
            None => "panicked".into(),
        },
    }
}

/// Takes the station's row (see [`Store::claim_station`]). An earlier
/// process on this host that is gone (killed, its heartbeat not yet
/// expired) is taken over at once, so a restart after a crash need not wait.
async fn claim(store: &Store, row: &StationRow) -> Result<(), StationError> {
    let mut dead_pid = None;
    for _ in 0..2 {
        match store.claim_station(row, now_ms(), dead_pid).await? {
            Claim::Claimed => return Ok(()),
            Claim::HeldBy { host, pid, .. } if dead_pid.is_none() && host == row.host && !process_alive(pid) => {
                dead_pid = Some(pid);
            }
            Claim::HeldBy { host, pid, heartbeat_ms } => {
                return Err(StationError::AlreadyRunning {
                    station: row.name.clone(),
                    host,
                    pid,
                    age_ms: (now_ms() - heartbeat_ms).max(0),
                    expiry_ms: row.heartbeat_expiry_ms,
                });
            }
        }
    }
    Err(StationError::AlreadyRunning {
        station: row.name.clone(),
        host: row.host.clone(),
        pid: dead_pid.unwrap_or(-1),
        age_ms: 0,
        expiry_ms: row.heartbeat_expiry_ms,
    })
}

/// Whether another process `pid` of this host runs (a zombie does not;
/// our own pid in the row is a dead process's that the kernel reused).
fn process_alive(pid: i64) -> bool {
    if pid <= 0 || pid == i64::from(std::process::id()) {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command's closing parenthesis.
        Ok(stat) => {
            !matches!(stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next()), Some('Z' | 'X'))
        }
        Err(_) => false,
    }
}

async fn heartbeat_loop(shared: Arc<Shared>, row: StationRow, mut stop: watch::Receiver<bool>) {
    let every = shared.station.file.heartbeat.interval.0;
    let mut health = shared.recorder.health();
    while !*stop.borrow() {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => {}
            _ = health.changed() => {
                let healthy = *health.borrow_and_update();
                if healthy {
                    shared.emit(StationEvent::DatabaseBack);
                } else {
                    shared.emit(StationEvent::DatabaseLost { error: "a record could not be written: kept in the spool".into() });
                }
                continue;
            }
        }
        if *stop.borrow() {
            break;
        }
        let now = now_ms();
        let beat = StationRow { heartbeat_ms: now, ..row.clone() };
        match shared.store().heartbeat(&beat).await {
            Ok(()) => {
                if !*shared.recorder.health().borrow() {
                    // Back: deliver what waited, which also marks it healthy.
                    shared.recorder.deliver().await;
                }
                if let Ok(reaped) = shared.store().reap(&row.name, now).await
                    && reaped.runs + reaped.leases + reaped.stations > 0
                {
                    shared.emit(StationEvent::Reaped {
                        stations: reaped.stations,
                        runs: reaped.runs,
                        leases: reaped.leases,
                    });
                }
            }
            Err(_) => shared.recorder.set_healthy(false),
        }
    }
}

impl Shared {
    fn step_event(&self, fixture: &str, mac: &str, step: &StepRecord) -> StationEvent {
        StationEvent::StepEnded {
            fixture: fixture.into(),
            mac: mac.into(),
            index: step.index,
            kind: step.kind.clone(),
            outcome: step.outcome.as_str().into(),
            duration_ms: step.duration_ms,
            detail: step.detail.clone(),
        }
    }
}

/// The station's name as part of a file name.
fn file_safe(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default()
}
