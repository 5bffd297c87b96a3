//! A line played into a unit database through the store's own write API
//! (the calls a station makes): stations with heartbeats, fixtures taking
//! units, steps recorded, runs ended passed or failed. Used by the `units`
//! and dashboard tests and by the dashboard benchmark.

use std::path::Path;

use flashline::store::{Begun, DbUrl, FixtureRow, RunEnd, RunStart, StationRow, StepRow, Store};

/// The steps a NET+OS unit goes through, with plausible durations (ms).
pub const STEPS: [(&str, i64); 4] =
    [("load_image", 95_000), ("configure_network", 6_000), ("wait_for_network", 2_500), ("ftp_upload", 40_000)];

/// One unit's run as a test wants it.
#[derive(Debug, Clone)]
pub struct UnitRun {
    pub mac: String,
    pub serial: Option<String>,
    pub station: String,
    pub fixture: String,
    pub started_ms: i64,
    /// `passed`, `failed` or `running` (left open).
    pub outcome: &'static str,
    /// How many of [`STEPS`] were recorded (the last one failed when the
    /// outcome is `failed`).
    pub steps: usize,
    pub finding: Option<String>,
    pub error: Option<String>,
}

impl UnitRun {
    /// A unit passing at `station`'s `fixture` at `started_ms`.
    pub fn passed(mac: &str, station: &str, fixture: &str, started_ms: i64) -> UnitRun {
        UnitRun {
            mac: mac.to_string(),
            serial: Some(format!("SN-{}", mac.replace(':', ""))),
            station: station.to_string(),
            fixture: fixture.to_string(),
            started_ms,
            outcome: "passed",
            steps: STEPS.len(),
            finding: None,
            error: None,
        }
    }

    /// The same unit failing its FTP upload with `finding`.
    pub fn failed(mut self, finding: &str, error: &str) -> UnitRun {
        self.outcome = "failed";
        self.finding = Some(finding.to_string());
        self.error = Some(error.to_string());
        self
    }
}

/// The MAC of unit number `n` (in the Digi OUI, as a line would see).
pub fn mac(n: u32) -> String {
    let [_, a, b, c] = n.to_be_bytes();
    format!("00:40:9D:{a:02X}:{b:02X}:{c:02X}")
}

/// Writes the station's row: running, heartbeat at `now_ms`.
pub async fn station(store: &Store, name: &str, heartbeat_ms: i64, state: &str) {
    store
        .heartbeat(&StationRow {
            name: name.to_string(),
            host: format!("{name}.line.test"),
            pid: 4242,
            profile_name: "connectme-netos7".to_string(),
            operator: Some("night shift".to_string()),
            started_ms: heartbeat_ms - 3_600_000,
            heartbeat_ms,
            heartbeat_expiry_ms: 15_000,
            state: state.to_string(),
        })
        .await
        .expect("write a heartbeat");
}

/// Writes a fixture's live state.
pub async fn fixture(store: &Store, station: &str, name: &str, unit: Option<(&str, &str, i64)>, now_ms: i64) {
    store
        .set_fixture(&FixtureRow {
            station: station.to_string(),
            name: name.to_string(),
            port: format!("/dev/ttyUSB-{name}"),
            state: if unit.is_some() { "running" } else { "idle" }.to_string(),
            unit_mac: unit.map(|(mac, _, _)| mac.to_string()),
            run_id: None,
            step: unit.map(|(_, step, _)| step.to_string()),
            progress_pct: unit.map(|(_, _, pct)| pct),
            last_outcome: None,
            updated_ms: now_ms,
        })
        .await
        .expect("write a fixture");
}

/// Plays one unit's run: begin, steps, end. Returns the run id.
pub async fn play(store: &Store, unit: &UnitRun) -> String {
    let run_id = flashline::store::new_id();
    let begun = store
        .begin_run(&RunStart {
            id: run_id.clone(),
            unit_mac: unit.mac.clone(),
            serial_number: unit.serial.clone(),
            station: unit.station.clone(),
            fixture: unit.fixture.clone(),
            operator: Some("night shift".to_string()),
            profile_name: "connectme-netos7".to_string(),
            profile_sha256: "ab".repeat(32),
            images: r#"[{"file":"rom.bin","sha256":"c0ffee","bytes":1048576},{"file":"image.bin","sha256":"beef","bytes":2097152}]"#
                .to_string(),
            ip: Some("198.18.0.10".to_string()),
            started_ms: unit.started_ms,
        })
        .await
        .expect("begin a run");
    assert_eq!(begun, Begun::Started, "{} already running", unit.mac);
    let mut at = unit.started_ms;
    for (idx, (kind, duration_ms)) in STEPS.iter().take(unit.steps).enumerate() {
        let last_failed = unit.outcome == "failed" && idx + 1 == unit.steps;
        store
            .record_step(&StepRow {
                run_id: run_id.clone(),
                idx: idx as i64,
                kind: kind.to_string(),
                outcome: if last_failed { "failed" } else { "passed" }.to_string(),
                started_ms: at,
                duration_ms: *duration_ms,
                retries: i64::from(last_failed),
                detail: if last_failed { unit.error.clone().unwrap_or_default() } else { format!("{kind} done") },
                inputs_sha256: "cd".repeat(32),
            })
            .await
            .expect("record a step");
        at += duration_ms;
    }
    if unit.outcome != "running" {
        store
            .end_run(&RunEnd {
                run_id: run_id.clone(),
                ended_ms: at,
                outcome: unit.outcome.to_string(),
                failure_class: (unit.outcome == "failed").then(|| "device".to_string()),
                finding: unit.finding.clone(),
                error: unit.error.clone(),
                images: None,
            })
            .await
            .expect("end a run");
    }
    run_id
}

const HOUR: i64 = 3_600_000;

/// A database with two stations: 6 units passed, 2 failed (one of them
/// twice, then passed), one running. Returns the database's `--db` URL.
pub fn small_line(dir: &Path) -> String {
    let path = dir.join("line.db");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let store = Store::open(&DbUrl::sqlite(&path)).await.unwrap();
        fill_small_line(&store).await;
        store.close().await;
    });
    format!("sqlite:{}", path.display())
}

/// Plays [`small_line`]'s units into `store` (any backend).
pub async fn fill_small_line(store: &Store) {
    let now = flashline::store::now_ms();
    station(store, "st-a", now, "running").await;
    station(store, "st-b", now, "running").await;
    for n in 0..6u32 {
        let station = if n % 2 == 0 { "st-a" } else { "st-b" };
        play(store, &UnitRun::passed(&mac(n), station, "f1", now - (10 - i64::from(n)) * HOUR)).await;
    }
    let flaky = mac(100);
    let failed =
        UnitRun::passed(&flaky, "st-a", "f2", now - 3 * HOUR).failed("ftp-refused-after-ping", "530 Login incorrect");
    play(store, &failed).await;
    play(store, &UnitRun::passed(&flaky, "st-b", "f2", now - 2 * HOUR)).await;
    let no_boot = UnitRun { steps: 1, ..UnitRun::passed(&mac(101), "st-b", "f1", now - HOUR) }
        .failed("no-boot-prompt", "no `Press any key` within 30 s");
    play(store, &no_boot).await;
    let running = UnitRun { outcome: "running", steps: 2, ..UnitRun::passed(&mac(102), "st-a", "f1", now - 60_000) };
    play(store, &running).await;
    fixture(store, "st-a", "f1", Some((&mac(102), "wait_for_network", 40)), now).await;
    fixture(store, "st-a", "f2", None, now).await;
    fixture(store, "st-b", "f1", None, now).await;
}
