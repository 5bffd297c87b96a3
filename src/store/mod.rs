//! The unit database: every unit a line saw, every run of the profile on it
//! with its steps, the addresses leased from station pools, and the station
//! heartbeats that let a line get over a dead station.
//!
//! One code path for both backends: sqlx's `Any` driver on a URL
//! (`sqlite:PATH`, the embedded default, or `postgres://...` for many
//! stations), the same SQL text for both (kept to what both accept, `$N`
//! placeholders), and the versioned migrations in `migrations/`, applied at
//! start. Times are milliseconds since the Unix epoch.
//!
//! What makes a line safe with several stations lives in the schema, not in
//! the stations: an address is one primary-key row (`leases.address`), a
//! unit runs once at a time (a unique index on running runs), and run ids
//! are made by the station so a record delivered twice (from the spool) is
//! recognised. This module writes; `queries` reads.
//!
//! [`recorder`] keeps step and run-end records in a local spool while the
//! database is away. Not here: what a station does with a unit (`station`).

pub mod queries;
pub mod recorder;
mod url;

use std::borrow::Cow;
use std::net::Ipv4Addr;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyQueryResult};
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::{AnyPool, Row};

use crate::failure::{Classify, FailureClass};

pub use recorder::{Record, Recorder};
pub use url::{Backend, DbUrl, UrlError, redact};

/// The schema's versions, oldest first. Each file is applied once, in a
/// transaction; a changed file is refused (its checksum is stored).
const MIGRATIONS: &[(i64, &str, &str)] =
    &[(1, "units runs steps leases stations", include_str!("migrations/0001_units_runs.sql"))];

#[derive(Debug)]
struct Embedded;

impl MigrationSource<'static> for Embedded {
    fn resolve(
        self,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Vec<Migration>, sqlx::error::BoxDynError>> + Send + 'static>>
    {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|(version, description, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(description),
                        MigrationType::Simple,
                        Cow::Borrowed(sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot reach the database {url}: {message}")]
    Connect { url: String, message: String },
    #[error("cannot bring the database {url} to schema version {version}: {message}")]
    Migrate { url: String, version: i64, message: String },
    /// A statement failed: the connection went away, the disk is full...
    #[error("database {url}: {what} failed: {message}")]
    Query { url: String, what: &'static str, message: String },
}

impl Classify for StoreError {
    /// A database that cannot be reached or written is the station's
    /// environment, never the unit's fault.
    fn class(&self) -> FailureClass {
        FailureClass::Environment
    }
}

/// An open unit database.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    url: DbUrl,
}

// The pool and URL are left out: a URL may carry a password.
impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

/// Whether the unit may be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// Never passed, not running anywhere.
    Free,
    /// A run passed already.
    DoneBefore { run_id: String, station: String, ended_ms: i64 },
    /// Running now at this station's fixture.
    RunningAt { station: String, fixture: String },
}

/// A run's row as it is written before the unit is touched.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunStart {
    pub id: String,
    pub unit_mac: String,
    pub serial_number: Option<String>,
    pub station: String,
    pub fixture: String,
    pub operator: Option<String>,
    pub profile_name: String,
    pub profile_sha256: String,
    /// JSON: `[{"file", "sha256", "bytes"}]`, the images as hashed before
    /// anything was sent.
    pub images: String,
    pub ip: Option<String>,
    pub started_ms: i64,
}

/// One step's row.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepRow {
    pub run_id: String,
    pub idx: i64,
    pub kind: String,
    pub outcome: String,
    pub started_ms: i64,
    pub duration_ms: i64,
    pub retries: i64,
    pub detail: String,
    pub inputs_sha256: String,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunEnd {
    pub run_id: String,
    pub ended_ms: i64,
    /// `passed`, `failed` or `interrupted`.
    pub outcome: String,
    pub failure_class: Option<String>,
    pub finding: Option<String>,
    pub error: Option<String>,
    /// Updates the images when a run learned them late (resolved after
    /// the row was written).
    pub images: Option<String>,
}

/// What [`Store::lease`] is asked for.
#[derive(Debug, Clone, Copy)]
pub struct LeaseRequest<'a> {
    /// The pool's name (as the station file writes it).
    pub pool: &'a str,
    pub candidates: &'a [Ipv4Addr],
    pub unit: &'a str,
    pub station: &'a str,
    pub run_id: &'a str,
    /// The unit keeps the address between runs.
    pub kept: bool,
    pub now_ms: i64,
}

/// A station's row, written at start and at each heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct StationRow {
    pub name: String,
    pub host: String,
    pub pid: i64,
    pub profile_name: String,
    pub operator: Option<String>,
    pub started_ms: i64,
    pub heartbeat_ms: i64,
    pub heartbeat_expiry_ms: i64,
    /// `running` or `stopped`.
    pub state: String,
}

/// A fixture's live state.
#[derive(Debug, Clone, PartialEq)]
pub struct FixtureRow {
    pub station: String,
    pub name: String,
    pub port: String,
    /// `idle`, `running`, `removal`, `stopped`, `failed` (its loop panicked too
    /// often, see `station::supervise`) or `paused`.
    pub state: String,
    pub unit_mac: Option<String>,
    pub run_id: Option<String>,
    pub step: Option<String>,
    pub progress_pct: Option<i64>,
    pub last_outcome: Option<String>,
    pub updated_ms: i64,
}

/// A unit a station would not take.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub id: String,
    pub station: String,
    pub fixture: String,
    pub unit_mac: Option<String>,
    /// `done-before`, `running-elsewhere`, `no-identity`, `no-address`.
    pub reason: String,
    pub detail: String,
    pub at_ms: i64,
}

/// Outcome of [`Store::claim_station`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    Claimed,
    /// A live process of the station holds its row.
    HeldBy {
        host: String,
        pid: i64,
        heartbeat_ms: i64,
    },
}

/// What a reaping pass released.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reaped {
    pub stations: u64,
    pub runs: u64,
    pub leases: u64,
}

/// Outcome of [`Store::begin_run`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begun {
    Started,
    /// Another run of this unit holds the running slot (another fixture or
    /// station got there first).
    UnitBusy,
}

impl Store {
    /// Connects and applies the migrations this build knows.
    pub async fn open(url: &DbUrl) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let connect_error =
            |error: sqlx::Error| StoreError::Connect { url: url.redacted(), message: url.scrub(&error.to_string()) };
        let options = AnyPoolOptions::new().max_connections(8).acquire_timeout(Duration::from_secs(5)).after_connect(
            |connection, _| {
                Box::pin(async move {
                    // WAL lets the dashboard read while a station writes;
                    // PostgreSQL has no such pragma and never sees these.
                    if connection.backend_name() == "SQLite" {
                        sqlx::query("PRAGMA journal_mode = WAL").execute(&mut *connection).await?;
                        sqlx::query("PRAGMA busy_timeout = 10000").execute(&mut *connection).await?;
                        sqlx::query("PRAGMA foreign_keys = ON").execute(&mut *connection).await?;
                    }
                    Ok(())
                })
            },
        );
        let pool = options.connect(url.secret()).await.map_err(connect_error)?;
        let migrator = Migrator::new(Embedded).await.map_err(|error| StoreError::Migrate {
            url: url.redacted(),
            version: MIGRATIONS.len() as i64,
            message: error.to_string(),
        })?;
        migrator.run(&pool).await.map_err(|error| StoreError::Migrate {
            url: url.redacted(),
            version: MIGRATIONS.len() as i64,
            message: url.scrub(&error.to_string()),
        })?;
        Ok(Store { pool, url: url.clone() })
    }

    pub fn url(&self) -> &DbUrl {
        &self.url
    }

    /// The pool, for the read side (`queries`).
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub(crate) fn failed(&self, what: &'static str) -> impl Fn(sqlx::Error) -> StoreError + '_ {
        move |error| StoreError::Query { url: self.url.redacted(), what, message: self.url.scrub(&error.to_string()) }
    }

    /// Whether `mac` passed before, or runs somewhere now.
    pub async fn standing(&self, mac: &str) -> Result<Standing, StoreError> {
        let running = sqlx::query("SELECT station, fixture FROM runs WHERE unit_mac = $1 AND outcome = 'running'")
            .bind(mac)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.failed("looking up the unit's runs"))?;
        if let Some(row) = running {
            return Ok(Standing::RunningAt { station: row.get(0), fixture: row.get(1) });
        }
        let passed = sqlx::query(
            "SELECT id, station, ended_ms FROM runs WHERE unit_mac = $1 AND outcome = 'passed' \
             ORDER BY ended_ms DESC LIMIT 1",
        )
        .bind(mac)
        .fetch_optional(&self.pool)
        .await
        .map_err(self.failed("looking up the unit's runs"))?;
        Ok(match passed {
            Some(row) => Standing::DoneBefore { run_id: row.get(0), station: row.get(1), ended_ms: row.get(2) },
            None => Standing::Free,
        })
    }

    /// Writes the unit (first time seen) and the run as `running`. The
    /// unique index on running runs makes this the one place that decides
    /// between two fixtures taking the same unit at once.
    pub async fn begin_run(&self, run: &RunStart) -> Result<Begun, StoreError> {
        let mut tx = self.pool.begin().await.map_err(self.failed("starting a run"))?;
        sqlx::query(
            "INSERT INTO units (mac, serial_number, first_seen_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (mac) DO UPDATE SET serial_number = COALESCE(excluded.serial_number, units.serial_number)",
        )
        .bind(&run.unit_mac)
        .bind(&run.serial_number)
        .bind(run.started_ms)
        .execute(&mut *tx)
        .await
        .map_err(self.failed("recording the unit"))?;
        let inserted = sqlx::query(
            "INSERT INTO runs (id, unit_mac, station, fixture, operator, profile_name, profile_sha256, images, ip, \
             started_ms, outcome) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'running') ON CONFLICT DO NOTHING",
        )
        .bind(&run.id)
        .bind(&run.unit_mac)
        .bind(&run.station)
        .bind(&run.fixture)
        .bind(&run.operator)
        .bind(&run.profile_name)
        .bind(&run.profile_sha256)
        .bind(&run.images)
        .bind(&run.ip)
        .bind(run.started_ms)
        .execute(&mut *tx)
        .await
        .map_err(self.failed("starting a run"))?;
        tx.commit().await.map_err(self.failed("starting a run"))?;
        if inserted.rows_affected() == 1 {
            return Ok(Begun::Started);
        }
        // Nothing inserted: either this very run exists (a repeat) or the
        // unit's running slot is taken.
        let mine = sqlx::query("SELECT outcome FROM runs WHERE id = $1")
            .bind(&run.id)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.failed("starting a run"))?;
        Ok(if mine.is_some() { Begun::Started } else { Begun::UnitBusy })
    }

    /// Writes a step's row; writing it again (from the spool) changes nothing.
    pub async fn record_step(&self, step: &StepRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO steps (run_id, idx, kind, outcome, started_ms, duration_ms, retries, detail, inputs_sha256) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (run_id, idx) DO UPDATE SET outcome = excluded.outcome, started_ms = excluded.started_ms, \
             duration_ms = excluded.duration_ms, retries = excluded.retries, detail = excluded.detail, \
             inputs_sha256 = excluded.inputs_sha256",
        )
        .bind(&step.run_id)
        .bind(step.idx)
        .bind(&step.kind)
        .bind(&step.outcome)
        .bind(step.started_ms)
        .bind(step.duration_ms)
        .bind(step.retries)
        .bind(&step.detail)
        .bind(&step.inputs_sha256)
        .execute(&self.pool)
        .await
        .map_err(self.failed("recording a step"))?;
        Ok(())
    }

    /// Closes a run. Its address stays leased until the unit is gone from
    /// its fixture ([`Store::release_lease`]): the unit holds it until then.
    pub async fn end_run(&self, end: &RunEnd) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE runs SET ended_ms = $2, outcome = $3, failure_class = $4, finding = $5, error = $6, \
             images = COALESCE($7, images) WHERE id = $1",
        )
        .bind(&end.run_id)
        .bind(end.ended_ms)
        .bind(&end.outcome)
        .bind(&end.failure_class)
        .bind(&end.finding)
        .bind(&end.error)
        .bind(&end.images)
        .execute(&self.pool)
        .await
        .map_err(self.failed("ending a run"))?;
        Ok(())
    }

    /// An address of `candidates` for `unit`: the one it keeps from an
    /// earlier run when there is one, else the first free one. Taken by
    /// inserting its row: of two stations racing for an address, the
    /// primary key lets one win and the other tries the next.
    pub async fn lease(&self, request: &LeaseRequest<'_>) -> Result<Option<Ipv4Addr>, StoreError> {
        let LeaseRequest { pool, candidates, unit, station, run_id, kept, now_ms } = *request;
        let held = sqlx::query("SELECT address FROM leases WHERE pool = $1 AND unit_mac = $2")
            .bind(pool)
            .bind(unit)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.failed("looking up leases"))?;
        if let Some(row) = held {
            let address: String = row.get(0);
            sqlx::query("UPDATE leases SET station = $2, run_id = $3, leased_ms = $4 WHERE address = $1")
                .bind(&address)
                .bind(station)
                .bind(run_id)
                .bind(now_ms)
                .execute(&self.pool)
                .await
                .map_err(self.failed("renewing a lease"))?;
            if let Ok(address) = address.parse() {
                return Ok(Some(address));
            }
        }
        let taken: Vec<String> = sqlx::query("SELECT address FROM leases WHERE pool = $1")
            .bind(pool)
            .fetch_all(&self.pool)
            .await
            .map_err(self.failed("looking up leases"))?
            .iter()
            .map(|row| row.get(0))
            .collect();
        for candidate in candidates {
            let text = candidate.to_string();
            if taken.contains(&text) {
                continue;
            }
            let inserted: AnyQueryResult = sqlx::query(
                "INSERT INTO leases (address, pool, unit_mac, station, run_id, kept, leased_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (address) DO NOTHING",
            )
            .bind(&text)
            .bind(pool)
            .bind(unit)
            .bind(station)
            .bind(run_id)
            .bind(i64::from(kept))
            .bind(now_ms)
            .execute(&self.pool)
            .await
            .map_err(self.failed("leasing an address"))?;
            if inserted.rows_affected() == 1 {
                return Ok(Some(*candidate));
            }
        }
        Ok(None)
    }

    /// Gives back a run's address (unless the unit keeps it): the unit is
    /// gone from its fixture, or its run never started.
    pub async fn release_lease(&self, run_id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM leases WHERE run_id = $1 AND kept = 0")
            .bind(run_id)
            .execute(&self.pool)
            .await
            .map_err(self.failed("releasing an address"))?;
        Ok(())
    }

    /// Writes the station's row (start, heartbeat, stop).
    pub async fn heartbeat(&self, station: &StationRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO stations (name, host, pid, profile_name, operator, started_ms, heartbeat_ms, \
             heartbeat_expiry_ms, state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (name) DO UPDATE SET host = excluded.host, pid = excluded.pid, \
             profile_name = excluded.profile_name, operator = excluded.operator, started_ms = excluded.started_ms, \
             heartbeat_ms = excluded.heartbeat_ms, heartbeat_expiry_ms = excluded.heartbeat_expiry_ms, \
             state = excluded.state",
        )
        .bind(&station.name)
        .bind(&station.host)
        .bind(station.pid)
        .bind(&station.profile_name)
        .bind(&station.operator)
        .bind(station.started_ms)
        .bind(station.heartbeat_ms)
        .bind(station.heartbeat_expiry_ms)
        .bind(&station.state)
        .execute(&self.pool)
        .await
        .map_err(self.failed("writing the heartbeat"))?;
        Ok(())
    }

    /// Takes the station's row for a starting process, unless a live
    /// process of the same station holds it: its state is `running` and its
    /// heartbeat has not expired at `now_ms`. One statement (a conditional
    /// upsert), so of two processes starting at once exactly one wins, on
    /// either backend. `dead_pid` lets a process take over from an earlier
    /// one on the same host that is known to be gone (killed before its
    /// heartbeat expired): only that process's row is replaced.
    pub async fn claim_station(
        &self,
        station: &StationRow,
        now_ms: i64,
        dead_pid: Option<i64>,
    ) -> Result<Claim, StoreError> {
        let failed = self.failed("claiming the station");
        let claimed = sqlx::query(
            "INSERT INTO stations (name, host, pid, profile_name, operator, started_ms, heartbeat_ms, \
             heartbeat_expiry_ms, state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (name) DO UPDATE SET host = excluded.host, pid = excluded.pid, \
             profile_name = excluded.profile_name, operator = excluded.operator, started_ms = excluded.started_ms, \
             heartbeat_ms = excluded.heartbeat_ms, heartbeat_expiry_ms = excluded.heartbeat_expiry_ms, \
             state = excluded.state \
             WHERE stations.state <> 'running' OR stations.heartbeat_ms + stations.heartbeat_expiry_ms < $10 \
             OR (stations.host = excluded.host AND stations.pid = $11)",
        )
        .bind(&station.name)
        .bind(&station.host)
        .bind(station.pid)
        .bind(&station.profile_name)
        .bind(&station.operator)
        .bind(station.started_ms)
        .bind(station.heartbeat_ms)
        .bind(station.heartbeat_expiry_ms)
        .bind(&station.state)
        .bind(now_ms)
        // No process has pid -1: without a dead pid, that branch never holds.
        .bind(dead_pid.unwrap_or(-1))
        .execute(&self.pool)
        .await
        .map_err(&failed)?;
        if claimed.rows_affected() == 1 {
            return Ok(Claim::Claimed);
        }
        // Nobody deletes a station's row: the one that kept us out is there.
        let holder = sqlx::query("SELECT host, pid, heartbeat_ms FROM stations WHERE name = $1")
            .bind(&station.name)
            .fetch_one(&self.pool)
            .await
            .map_err(&failed)?;
        Ok(Claim::HeldBy { host: holder.get(0), pid: holder.get(1), heartbeat_ms: holder.get(2) })
    }

    /// Releases what stations whose heartbeat expired still hold: their
    /// running runs become `interrupted`, their per-run leases go back to
    /// the pool, and they are marked `stale`. `own` is the station asking
    /// (never reaped by itself).
    pub async fn reap(&self, own: &str, now_ms: i64) -> Result<Reaped, StoreError> {
        let expired = "station IN (SELECT name FROM stations WHERE state = 'running' \
                       AND heartbeat_ms + heartbeat_expiry_ms < $1 AND name <> $2)";
        let failed = self.failed("releasing a dead station");
        let mut tx = self.pool.begin().await.map_err(&failed)?;
        let runs = interrupt(&mut tx, expired, now_ms, own, "its station stopped sending heartbeats")
            .await
            .map_err(&failed)?;
        let leases = sqlx::query(&format!("DELETE FROM leases WHERE kept = 0 AND {expired}"))
            .bind(now_ms)
            .bind(own)
            .execute(&mut *tx)
            .await
            .map_err(&failed)?
            .rows_affected();
        sqlx::query(&format!(
            "UPDATE fixtures SET state = 'idle', unit_mac = NULL, run_id = NULL, step = NULL, progress_pct = NULL \
             WHERE {expired}"
        ))
        .bind(now_ms)
        .bind(own)
        .execute(&mut *tx)
        .await
        .map_err(&failed)?;
        let stations = sqlx::query(
            "UPDATE stations SET state = 'stale' WHERE state = 'running' \
             AND heartbeat_ms + heartbeat_expiry_ms < $1 AND name <> $2",
        )
        .bind(now_ms)
        .bind(own)
        .execute(&mut *tx)
        .await
        .map_err(&failed)?
        .rows_affected();
        tx.commit().await.map_err(&failed)?;
        Ok(Reaped { stations, runs, leases })
    }

    /// At a station's start: what an earlier process of the same station
    /// left running (it was killed) is interrupted and its leases freed.
    /// At its stop, the same frees the addresses of units still on its
    /// fixtures (nothing runs any more).
    pub async fn recover_station(&self, station: &str, now_ms: i64) -> Result<Reaped, StoreError> {
        let failed = self.failed("recovering the station");
        let mut tx = self.pool.begin().await.map_err(&failed)?;
        let why = "the station stopped before the run ended";
        let runs = interrupt(&mut tx, "station = $2", now_ms, station, why).await.map_err(&failed)?;
        let leases = sqlx::query("DELETE FROM leases WHERE station = $1 AND kept = 0")
            .bind(station)
            .execute(&mut *tx)
            .await
            .map_err(&failed)?
            .rows_affected();
        tx.commit().await.map_err(&failed)?;
        Ok(Reaped { stations: 0, runs, leases })
    }

    /// Writes a fixture's live state.
    pub async fn set_fixture(&self, fixture: &FixtureRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO fixtures (station, name, port, state, unit_mac, run_id, step, progress_pct, last_outcome, \
             updated_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (station, name) DO UPDATE SET port = excluded.port, state = excluded.state, \
             unit_mac = excluded.unit_mac, run_id = excluded.run_id, step = excluded.step, \
             progress_pct = excluded.progress_pct, last_outcome = COALESCE(excluded.last_outcome, fixtures.last_outcome), \
             updated_ms = excluded.updated_ms",
        )
        .bind(&fixture.station)
        .bind(&fixture.name)
        .bind(&fixture.port)
        .bind(&fixture.state)
        .bind(&fixture.unit_mac)
        .bind(&fixture.run_id)
        .bind(&fixture.step)
        .bind(fixture.progress_pct)
        .bind(&fixture.last_outcome)
        .bind(fixture.updated_ms)
        .execute(&self.pool)
        .await
        .map_err(self.failed("writing a fixture's state"))?;
        Ok(())
    }

    /// Records a unit the station would not take.
    pub async fn refuse(&self, refusal: &Refusal) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO refusals (id, station, fixture, unit_mac, reason, detail, at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&refusal.id)
        .bind(&refusal.station)
        .bind(&refusal.fixture)
        .bind(&refusal.unit_mac)
        .bind(&refusal.reason)
        .bind(&refusal.detail)
        .bind(refusal.at_ms)
        .execute(&self.pool)
        .await
        .map_err(self.failed("recording a refusal"))?;
        Ok(())
    }

    /// Closes the pool (waits for its connections to finish).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Marks the running runs that `filter` selects as interrupted (in it, `$1`
/// is now and `$2` a station name).
async fn interrupt(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    filter: &str,
    now_ms: i64,
    station: &str,
    why: &str,
) -> Result<u64, sqlx::Error> {
    let sql = format!(
        "UPDATE runs SET outcome = 'interrupted', ended_ms = $1, failure_class = 'environment', error = $3 \
         WHERE outcome = 'running' AND {filter}"
    );
    let done = sqlx::query(&sql).bind(now_ms).bind(station).bind(why).execute(&mut **tx).await?;
    Ok(done.rows_affected())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// A fresh id for a run or refusal: 128 random bits, hex. Made by the
/// station, so the same record delivered twice is the same row.
pub fn new_id() -> String {
    let mut bytes = [0u8; 16];
    if let Ok(mut random) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = random.read_exact(&mut bytes);
    }
    // Mixed with the clock and a counter: distinct even if /dev/urandom
    // were missing.
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mix = (now_ms() as u64) ^ (count << 48) ^ u64::from(std::process::id());
    for (byte, extra) in bytes.iter_mut().zip(mix.to_le_bytes()) {
        *byte ^= extra;
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
