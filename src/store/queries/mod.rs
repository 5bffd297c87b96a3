//! The read side of the unit database: what `flashline units` and the
//! dashboard show. Runs filtered and paged, one unit's history with its steps,
//! the stations with their fixtures and heartbeat age, the shift's counts and
//! yield per hour, the latest failures, and the aggregates `/metrics` exports.
//!
//! Reads only, through the same pool and SQL text for SQLite and PostgreSQL
//! as the write side; every query is bounded (a `LIMIT`, or a time window on
//! an indexed column), so a page stays fast with years of units. The types
//! serialise as the dashboard's versioned JSON API (`/api/v1`), so a field
//! added here is a field added there.
//!
//! Not here: writing (`store`), how it is drawn (`cli::units_cmd`,
//! `dashboard`).

pub mod export;
pub mod when;

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Backend, DbUrl, Store, StoreError};
use crate::mac::Mac;

/// The outcomes a run can have (the `runs.outcome` column).
pub const OUTCOMES: [&str; 4] = ["running", "passed", "failed", "interrupted"];

/// The most rows one page of runs holds.
pub const MAX_PAGE: i64 = 1000;

/// Which runs to list. Empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// Runs started at or after this (ms since epoch).
    pub since_ms: Option<i64>,
    /// Runs started before this.
    pub until_ms: Option<i64>,
    pub station: Option<String>,
    /// One of [`OUTCOMES`].
    pub outcome: Option<String>,
    /// Part of a MAC, any case, with or without separators (`00:40:9d:3a`,
    /// `00409D3A`): a full MAC finds the unit by its index.
    pub mac: Option<String>,
    /// Part of a serial number (exact characters).
    pub serial: Option<String>,
}

/// A filter value that cannot select anything sensible.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("`{0}` is not a run outcome: give running, passed, failed or interrupted")]
    Outcome(String),
    #[error("`{0}` is not (part of) a MAC: give hex digits, with or without `:` or `-`")]
    Mac(String),
}

impl crate::failure::Classify for FilterError {
    fn class(&self) -> crate::failure::FailureClass {
        crate::failure::FailureClass::Input
    }
}

impl RunFilter {
    /// Checks the outcome and MAC fields, so bad input is named before any
    /// query runs.
    pub fn check(&self) -> Result<(), FilterError> {
        if let Some(outcome) = &self.outcome
            && !OUTCOMES.contains(&outcome.as_str())
        {
            return Err(FilterError::Outcome(outcome.chars().take(64).collect()));
        }
        if let Some(mac) = &self.mac {
            mac_pattern(mac)?;
        }
        Ok(())
    }
}

/// What to search for in `runs.unit_mac` for a typed MAC (part): the stored
/// form is upper-case hex pairs with colons. A full MAC is an exact match
/// (indexed); a part is a substring: its digits one run, in order, nothing
/// between them.
fn mac_pattern(text: &str) -> Result<MacPattern, FilterError> {
    let bad = || FilterError::Mac(text.chars().take(64).collect());
    let digits: String = text.chars().filter(|c| !matches!(c, ':' | '-' | '.' | ' ')).collect();
    if digits.is_empty() || digits.len() > 12 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let digits = digits.to_ascii_uppercase();
    if let Some(mac) = Mac::parse_any_spelling(text) {
        return Ok(MacPattern::Exact(mac.to_string()));
    }
    // A part typed with separators keeps them (it says where the byte
    // boundaries are); bare digits match either alignment (`9D3A` is in
    // `9D:3A` and in `x9:D3:Ax`), so they are searched in the MAC with its
    // colons taken out. Only hex digits and colons reach the pattern: no
    // `%` or `_` to escape.
    let has_separators = text.contains([':', '-', '.']);
    if has_separators {
        return Ok(MacPattern::Like(format!("%{}%", text.trim().to_ascii_uppercase().replace(['-', '.'], ":"))));
    }
    Ok(MacPattern::Digits(format!("%{digits}%")))
}

enum MacPattern {
    Exact(String),
    /// A `LIKE` pattern for the stored form, colons included.
    Like(String),
    /// A `LIKE` pattern for the stored form without its colons.
    Digits(String),
}

/// One run in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub mac: String,
    pub serial_number: Option<String>,
    pub station: String,
    pub fixture: String,
    pub operator: Option<String>,
    pub profile_name: String,
    pub ip: Option<String>,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub outcome: String,
    pub failure_class: Option<String>,
    pub finding: Option<String>,
    pub error: Option<String>,
}

/// One page of runs, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunPage {
    pub runs: Vec<RunSummary>,
    /// Whether a page follows this one.
    pub more: bool,
}

/// An image a run sent, as hashed before sending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Image {
    pub file: String,
    pub sha256: String,
    #[serde(default)]
    pub bytes: Option<u64>,
}

/// A step of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepView {
    pub idx: i64,
    pub kind: String,
    pub outcome: String,
    pub started_ms: i64,
    pub duration_ms: i64,
    pub retries: i64,
    pub detail: String,
    pub inputs_sha256: String,
}

/// A run with everything it recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunDetail {
    #[serde(flatten)]
    pub run: RunSummary,
    pub profile_sha256: String,
    /// The images; empty when the column held no readable list (see `images_raw`).
    pub images: Vec<Image>,
    /// The column as stored when it is not a readable image list.
    pub images_raw: Option<String>,
    pub steps: Vec<StepView>,
}

/// A unit and every run of it, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitHistory {
    pub mac: String,
    pub serial_number: Option<String>,
    pub first_seen_ms: i64,
    pub runs: Vec<RunDetail>,
}

/// A fixture as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FixtureView {
    pub name: String,
    pub port: String,
    pub state: String,
    pub unit_mac: Option<String>,
    pub step: Option<String>,
    pub progress_pct: Option<i64>,
    pub last_outcome: Option<String>,
    pub updated_ms: i64,
}

/// A station with its fixtures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StationView {
    pub name: String,
    pub host: String,
    pub profile_name: String,
    pub operator: Option<String>,
    pub started_ms: i64,
    pub heartbeat_ms: i64,
    pub heartbeat_age_ms: i64,
    /// `running`, `stale` (its heartbeat expired, whether or not another
    /// station reaped it yet) or `stopped`.
    pub status: String,
    pub fixtures: Vec<FixtureView>,
}

/// Counts of one hour (or of the whole shift).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub passed: i64,
    pub failed: i64,
    pub interrupted: i64,
    pub running: i64,
}

impl Counts {
    /// Passed over finished runs (passed, failed, interrupted); None before
    /// any finished.
    pub fn yield_ratio(&self) -> Option<f64> {
        let finished = self.passed + self.failed + self.interrupted;
        (finished > 0).then(|| self.passed as f64 / finished as f64)
    }

    fn add(&mut self, outcome: &str, count: i64) {
        match outcome {
            "passed" => self.passed += count,
            "failed" => self.failed += count,
            "interrupted" => self.interrupted += count,
            "running" => self.running += count,
            _ => {}
        }
    }
}

/// One hour of the shift, by the runs started in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Hour {
    pub start_ms: i64,
    #[serde(flatten)]
    pub counts: Counts,
}

/// The shift: runs started since `since_ms`, in total and per hour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shift {
    pub since_ms: i64,
    pub until_ms: i64,
    pub total: Counts,
    /// Every hour from the one holding `since_ms` to the one holding
    /// `until_ms`, empty hours included.
    pub hours: Vec<Hour>,
}

/// Runs per station, fixture and outcome (for `/metrics`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunCount {
    pub station: String,
    pub fixture: String,
    pub outcome: String,
    pub count: i64,
}

/// Step durations of one kind, counted into cumulative buckets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepHistogram {
    pub kind: String,
    /// `(upper bound in seconds, steps at or under it)`, bounds ascending.
    pub buckets: Vec<(f64, i64)>,
    pub count: i64,
    pub sum_seconds: f64,
}

/// The upper bounds (seconds) of the step duration histogram: a `configure_network`
/// dialog takes seconds, an image over serial minutes.
pub const STEP_BUCKETS_S: [f64; 10] = [0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0];

/// Everything `/metrics` exports, read in one go.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricsData {
    pub runs: Vec<RunCount>,
    pub steps: Vec<StepHistogram>,
    pub stations: Vec<StationView>,
}

/// What changes when anything a page shows changes: the dashboard polls it
/// (cheap: maxima over indexed columns and a window of recent runs) to know
/// when to tell browsers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Version(Vec<Option<i64>>);

const RUN_COLUMNS: &str = "r.id, r.unit_mac, u.serial_number, r.station, r.fixture, r.operator, r.profile_name, \
     r.ip, r.started_ms, r.ended_ms, r.outcome, r.failure_class, r.finding, r.error";

fn run_summary(row: &AnyRow) -> RunSummary {
    RunSummary {
        run_id: row.get(0),
        mac: row.get(1),
        serial_number: row.get(2),
        station: row.get(3),
        fixture: row.get(4),
        operator: row.get(5),
        profile_name: row.get(6),
        ip: row.get(7),
        started_ms: row.get(8),
        ended_ms: row.get(9),
        outcome: row.get(10),
        failure_class: row.get(11),
        finding: row.get(12),
        error: row.get(13),
    }
}

/// A value bound to a query.
enum Arg {
    Int(i64),
    Text(String),
}

impl Store {
    /// Opens the database to read it. Unlike [`Store::open`], a SQLite file
    /// that does not exist is an error, not a new empty database: a
    /// mistyped path must not show an empty line.
    pub async fn open_existing(url: &DbUrl) -> Result<Store, StoreError> {
        if url.backend() == Backend::Sqlite
            && let Some(path) =
                url.secret().strip_prefix("sqlite://").map(|rest| rest.split('?').next().unwrap_or(rest))
            && !std::path::Path::new(path).exists()
        {
            return Err(StoreError::Connect { url: url.redacted(), message: "no such database file".to_string() });
        }
        Store::open(url).await
    }

    /// One page of the runs `filter` selects, newest first: `limit` rows
    /// (at most [`MAX_PAGE`]) after skipping `offset`.
    pub async fn runs(&self, filter: &RunFilter, limit: i64, offset: i64) -> Result<RunPage, StoreError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let mut conditions = Vec::new();
        let mut args = Vec::new();
        let mut bind = |condition: &str, arg: Arg| {
            args.push(arg);
            conditions.push(condition.replace('?', &format!("${}", args.len())));
        };
        if let Some(since) = filter.since_ms {
            bind("r.started_ms >= ?", Arg::Int(since));
        }
        if let Some(until) = filter.until_ms {
            bind("r.started_ms < ?", Arg::Int(until));
        }
        if let Some(station) = &filter.station {
            bind("r.station = ?", Arg::Text(station.clone()));
        }
        if let Some(outcome) = &filter.outcome {
            bind("r.outcome = ?", Arg::Text(outcome.clone()));
        }
        match filter.mac.as_deref().map(mac_pattern) {
            Some(Ok(MacPattern::Exact(mac))) => bind("r.unit_mac = ?", Arg::Text(mac)),
            // Through the units table: a part of a MAC matches few units,
            // found in the small table rather than along every run.
            Some(Ok(MacPattern::Like(like))) => {
                bind("r.unit_mac IN (SELECT mac FROM units WHERE mac LIKE ?)", Arg::Text(like))
            }
            Some(Ok(MacPattern::Digits(like))) => {
                bind("r.unit_mac IN (SELECT mac FROM units WHERE REPLACE(mac, ':', '') LIKE ?)", Arg::Text(like))
            }
            // An unreadable MAC matches no unit (`check` names it first).
            Some(Err(_)) => bind("1 = ?", Arg::Int(0)),
            None => {}
        }
        if let Some(serial) = &filter.serial {
            let escaped = serial.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            let condition = "r.unit_mac IN (SELECT mac FROM units WHERE serial_number LIKE ? ESCAPE '\\')";
            bind(condition, Arg::Text(format!("%{escaped}%")));
        }
        let condition =
            if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs r JOIN units u ON u.mac = r.unit_mac {condition} \
             ORDER BY r.started_ms DESC, r.id DESC LIMIT {} OFFSET {}",
            limit + 1,
            offset.max(0)
        );
        let mut query = sqlx::query(&sql);
        for arg in args {
            query = match arg {
                Arg::Int(value) => query.bind(value),
                Arg::Text(value) => query.bind(value),
            };
        }
        let rows = query.fetch_all(self.pool()).await.map_err(self.failed("listing runs"))?;
        let more = rows.len() as i64 > limit;
        Ok(RunPage { runs: rows.iter().take(limit as usize).map(run_summary).collect(), more })
    }

    /// A unit with every run and step, oldest run first; None for a MAC
    /// never seen.
    pub async fn unit(&self, mac: &str) -> Result<Option<UnitHistory>, StoreError> {
        let failed = self.failed("reading a unit's runs");
        let Some(unit) = sqlx::query("SELECT mac, serial_number, first_seen_ms FROM units WHERE mac = $1")
            .bind(mac)
            .fetch_optional(self.pool())
            .await
            .map_err(&failed)?
        else {
            return Ok(None);
        };
        let runs = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS}, r.profile_sha256, r.images FROM runs r JOIN units u ON u.mac = r.unit_mac \
             WHERE r.unit_mac = $1 ORDER BY r.started_ms, r.id"
        ))
        .bind(mac)
        .fetch_all(self.pool())
        .await
        .map_err(&failed)?;
        let steps = sqlx::query(
            "SELECT s.run_id, s.idx, s.kind, s.outcome, s.started_ms, s.duration_ms, s.retries, s.detail, \
             s.inputs_sha256 FROM steps s WHERE s.run_id IN (SELECT id FROM runs WHERE unit_mac = $1) \
             ORDER BY s.run_id, s.idx",
        )
        .bind(mac)
        .fetch_all(self.pool())
        .await
        .map_err(&failed)?;
        let runs = runs
            .iter()
            .map(|row| {
                let run = run_summary(row);
                let images_text: String = row.get(15);
                let (images, images_raw) = match serde_json::from_str::<Vec<Image>>(&images_text) {
                    Ok(images) => (images, None),
                    Err(_) => (Vec::new(), Some(images_text)),
                };
                let steps = steps
                    .iter()
                    .filter(|step| step.get::<String, _>(0) == run.run_id)
                    .map(|step| StepView {
                        idx: step.get(1),
                        kind: step.get(2),
                        outcome: step.get(3),
                        started_ms: step.get(4),
                        duration_ms: step.get(5),
                        retries: step.get(6),
                        detail: step.get(7),
                        inputs_sha256: step.get(8),
                    })
                    .collect();
                RunDetail { run, profile_sha256: row.get(14), images, images_raw, steps }
            })
            .collect();
        Ok(Some(UnitHistory { mac: unit.get(0), serial_number: unit.get(1), first_seen_ms: unit.get(2), runs }))
    }

    /// Every station with its fixtures, by name; `now_ms` gives the
    /// heartbeat ages.
    pub async fn stations(&self, now_ms: i64) -> Result<Vec<StationView>, StoreError> {
        let failed = self.failed("reading the stations");
        let stations = sqlx::query(
            "SELECT name, host, profile_name, operator, started_ms, heartbeat_ms, heartbeat_expiry_ms, state \
             FROM stations ORDER BY name",
        )
        .fetch_all(self.pool())
        .await
        .map_err(&failed)?;
        let fixtures = sqlx::query(
            "SELECT station, name, port, state, unit_mac, step, progress_pct, last_outcome, updated_ms \
             FROM fixtures ORDER BY station, name",
        )
        .fetch_all(self.pool())
        .await
        .map_err(&failed)?;
        Ok(stations
            .iter()
            .map(|row| {
                let name: String = row.get(0);
                let heartbeat_ms: i64 = row.get(5);
                let expiry_ms: i64 = row.get(6);
                let state: String = row.get(7);
                let status = if state == "running" && heartbeat_ms.saturating_add(expiry_ms) < now_ms {
                    "stale".to_string()
                } else {
                    state
                };
                let fixtures = fixtures
                    .iter()
                    .filter(|fixture| fixture.get::<String, _>(0) == name)
                    .map(|fixture| FixtureView {
                        name: fixture.get(1),
                        port: fixture.get(2),
                        state: fixture.get(3),
                        unit_mac: fixture.get(4),
                        step: fixture.get(5),
                        progress_pct: fixture.get(6),
                        last_outcome: fixture.get(7),
                        updated_ms: fixture.get(8),
                    })
                    .collect();
                StationView {
                    name,
                    host: row.get(1),
                    profile_name: row.get(2),
                    operator: row.get(3),
                    started_ms: row.get(4),
                    heartbeat_ms,
                    heartbeat_age_ms: (now_ms - heartbeat_ms).max(0),
                    status,
                    fixtures,
                }
            })
            .collect())
    }

    /// Runs started in `[since_ms, until_ms)`: counts in total and per hour.
    pub async fn shift(&self, since_ms: i64, until_ms: i64) -> Result<Shift, StoreError> {
        const HOUR: i64 = 3_600_000;
        let rows = sqlx::query(
            "SELECT started_ms / 3600000 AS hour, outcome, COUNT(*) FROM runs \
             WHERE started_ms >= $1 AND started_ms < $2 GROUP BY started_ms / 3600000, outcome",
        )
        .bind(since_ms)
        .bind(until_ms)
        .fetch_all(self.pool())
        .await
        .map_err(self.failed("counting the shift's runs"))?;
        let first = since_ms.div_euclid(HOUR);
        let last = (until_ms - 1).max(since_ms).div_euclid(HOUR);
        // A shift longer than a week is drawn as its last week: the chart
        // has one bar per hour.
        let first = first.max(last - 24 * 7);
        let mut hours: Vec<Hour> =
            (first..=last).map(|hour| Hour { start_ms: hour * HOUR, counts: Counts::default() }).collect();
        let mut total = Counts::default();
        for row in &rows {
            let hour: i64 = row.get(0);
            let outcome: String = row.get(1);
            let count: i64 = row.get(2);
            total.add(&outcome, count);
            if let Some(slot) = hours.get_mut((hour - first) as usize).filter(|_| hour >= first) {
                slot.counts.add(&outcome, count);
            }
        }
        Ok(Shift { since_ms, until_ms, total, hours })
    }

    /// The `limit` latest runs that failed or were interrupted, newest first.
    pub async fn latest_failures(&self, limit: i64) -> Result<Vec<RunSummary>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM runs r JOIN units u ON u.mac = r.unit_mac \
             WHERE r.outcome IN ('failed', 'interrupted') ORDER BY r.started_ms DESC, r.id DESC LIMIT {}",
            limit.clamp(1, MAX_PAGE)
        ))
        .fetch_all(self.pool())
        .await
        .map_err(self.failed("reading the latest failures"))?;
        Ok(rows.iter().map(run_summary).collect())
    }

    /// The counters and histograms `/metrics` exports. `stations` is left
    /// empty: heartbeat ages change without any write, so the caller reads
    /// them fresh for every scrape ([`Store::stations`]).
    pub async fn metrics(&self) -> Result<MetricsData, StoreError> {
        let failed = self.failed("reading the metrics");
        let runs = sqlx::query(
            "SELECT station, fixture, outcome, COUNT(*) FROM runs GROUP BY station, fixture, outcome \
             ORDER BY station, fixture, outcome",
        )
        .fetch_all(self.pool())
        .await
        .map_err(&failed)?
        .iter()
        .map(|row| RunCount { station: row.get(0), fixture: row.get(1), outcome: row.get(2), count: row.get(3) })
        .collect();
        // One bucket number per step (the first bound it fits under, or
        // the count of bounds for +Inf), summed up cumulatively here: one
        // CASE per row instead of one per row and bound.
        let mut bucket = String::from("CASE");
        for (index, bound) in STEP_BUCKETS_S.iter().enumerate() {
            bucket.push_str(&format!(" WHEN duration_ms <= {} THEN {index}", (bound * 1000.0) as i64));
        }
        bucket.push_str(&format!(" ELSE {} END", STEP_BUCKETS_S.len()));
        let rows = sqlx::query(&format!(
            "SELECT kind, {bucket} AS bucket, COUNT(*), CAST(SUM(duration_ms) AS BIGINT) FROM steps \
             GROUP BY kind, {bucket} ORDER BY kind"
        ))
        .fetch_all(self.pool())
        .await
        .map_err(&failed)?;
        let mut steps: Vec<StepHistogram> = Vec::new();
        for row in &rows {
            let kind: String = row.get(0);
            let bucket: i64 = row.get(1);
            let (count, sum_ms): (i64, i64) = (row.get(2), row.get(3));
            if steps.last().is_none_or(|last| last.kind != kind) {
                let buckets = STEP_BUCKETS_S.iter().map(|bound| (*bound, 0)).collect();
                steps.push(StepHistogram { kind, buckets, count: 0, sum_seconds: 0.0 });
            }
            if let Some(histogram) = steps.last_mut() {
                histogram.count += count;
                histogram.sum_seconds += sum_ms as f64 / 1000.0;
                // Cumulative: a step under bound i is under every later bound.
                for (_, under) in histogram.buckets.iter_mut().skip(bucket.max(0) as usize) {
                    *under += count;
                }
            }
        }
        Ok(MetricsData { runs, steps, stations: Vec::new() })
    }

    /// The database's change marker (see [`Version`]); `now_ms` bounds the
    /// window of runs whose end is watched.
    pub async fn version(&self, now_ms: i64) -> Result<Version, StoreError> {
        let row = sqlx::query(
            "SELECT (SELECT MAX(updated_ms) FROM fixtures), (SELECT MAX(heartbeat_ms) FROM stations), \
             (SELECT MAX(started_ms) FROM runs), \
             (SELECT MAX(ended_ms) FROM runs WHERE started_ms >= $1), \
             (SELECT COUNT(*) FROM runs WHERE started_ms >= $1), \
             (SELECT COUNT(*) FROM steps s JOIN runs r ON r.id = s.run_id WHERE r.started_ms >= $1), \
             (SELECT COUNT(*) FROM stations)",
        )
        .bind(now_ms - 86_400_000)
        .fetch_one(self.pool())
        .await
        .map_err(self.failed("checking for changes"))?;
        Ok(Version((0..7).map(|i| row.get::<Option<i64>, _>(i)).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The form a full MAC is looked up by, or None.
    fn canonical_mac(text: &str) -> Option<String> {
        match mac_pattern(text) {
            Ok(MacPattern::Exact(mac)) => Some(mac),
            _ => None,
        }
    }

    #[test]
    fn a_full_mac_in_any_spelling_is_found_exactly() {
        for spelling in ["00:40:9d:3a:00:01", "00-40-9D-3A-00-01", "00409d3a0001", " 00:40:9D:3A:00:01 "] {
            assert_eq!(canonical_mac(spelling).as_deref(), Some("00:40:9D:3A:00:01"), "{spelling}");
        }
    }

    #[test]
    fn a_part_of_a_mac_is_a_substring_search() {
        assert!(matches!(mac_pattern("9d3a"), Ok(MacPattern::Digits(p)) if p == "%9D3A%"));
        assert!(matches!(mac_pattern("9d:3a"), Ok(MacPattern::Like(p)) if p == "%9D:3A%"));
        for bad in ["", "zz", "00:40:9D:3A:00:01:02", "'; DROP TABLE units; --", "%"] {
            assert!(matches!(mac_pattern(bad), Err(FilterError::Mac(_))), "{bad}");
        }
    }

    #[test]
    fn a_filter_names_its_bad_field() {
        let filter = RunFilter { outcome: Some("maybe".into()), ..RunFilter::default() };
        assert_eq!(filter.check(), Err(FilterError::Outcome("maybe".into())));
        let filter = RunFilter { mac: Some("xyz".into()), ..RunFilter::default() };
        assert_eq!(filter.check(), Err(FilterError::Mac("xyz".into())));
        assert_eq!(RunFilter::default().check(), Ok(()));
    }

    proptest::proptest! {
        #[test]
        fn any_mac_spelling_finds_the_same_unit(bytes: [u8; 6], upper: bool, separator in "[:\\-]?") {
            let hex: Vec<String> = bytes.iter().map(|b| if upper { format!("{b:02X}") } else { format!("{b:02x}") }).collect();
            let canonical: Vec<String> = bytes.iter().map(|b| format!("{b:02X}")).collect();
            proptest::prop_assert_eq!(canonical_mac(&hex.join(&separator)), Some(canonical.join(":")));
        }

        #[test]
        fn any_text_is_a_mac_a_part_or_an_error(text in ".{0,30}") {
            if let Some(mac) = canonical_mac(&text) {
                proptest::prop_assert_eq!(canonical_mac(&mac), Some(mac.clone()));
            }
            let _ = RunFilter { mac: Some(text.clone()), outcome: Some(text), ..RunFilter::default() }.check();
        }
    }

    #[test]
    fn yield_is_passed_over_finished() {
        assert_eq!(Counts::default().yield_ratio(), None);
        let counts = Counts { passed: 3, failed: 1, interrupted: 0, running: 5 };
        assert_eq!(counts.yield_ratio(), Some(0.75));
    }
}
