//! The unit database's rules, against a SQLite file and a real PostgreSQL
//! server (a throwaway cluster): the same test body runs on both, since both
//! go through the same code path.

use std::net::Ipv4Addr;

use flashline::store::{Begun, DbUrl, LeaseRequest, RunEnd, RunStart, StationRow, Store, new_id};

use crate::util::postgres::{self, PASSWORD, Postgres};
use crate::util::require;

fn run_start(mac: &str, station: &str, fixture: &str) -> RunStart {
    RunStart {
        id: new_id(),
        unit_mac: mac.into(),
        serial_number: Some("N20000001".into()),
        station: station.into(),
        fixture: fixture.into(),
        operator: Some("ana".into()),
        profile_name: "sim-netos".into(),
        profile_sha256: "ab".repeat(32),
        images: "[]".into(),
        ip: None,
        started_ms: 1_000,
    }
}

fn station(name: &str, heartbeat_ms: i64) -> StationRow {
    StationRow {
        name: name.into(),
        host: "bench".into(),
        pid: 1,
        profile_name: "sim-netos".into(),
        operator: None,
        started_ms: 0,
        heartbeat_ms,
        heartbeat_expiry_ms: 10_000,
        state: "running".into(),
    }
}

async fn rules_hold(store: &Store) {
    // A unit runs at one place at a time; a repeat of the same run is the same row.
    let first = run_start("00:40:9D:00:00:01", "st1", "f1");
    assert_eq!(store.begin_run(&first).await.unwrap(), Begun::Started);
    assert_eq!(store.begin_run(&first).await.unwrap(), Begun::Started);
    let elsewhere = run_start("00:40:9D:00:00:01", "st2", "f3");
    assert_eq!(store.begin_run(&elsewhere).await.unwrap(), Begun::UnitBusy);
    assert!(matches!(
        store.standing("00:40:9D:00:00:01").await.unwrap(),
        flashline::store::Standing::RunningAt { ref station, .. } if station == "st1"
    ));

    // Addresses: one unit each; the pool runs out rather than sharing.
    let pool: Vec<Ipv4Addr> = (10..13).map(|i| Ipv4Addr::new(198, 18, 0, i)).collect();
    let lease = |unit: &'static str, station: &'static str, run_id: &'static str, now_ms: i64| LeaseRequest {
        pool: "p",
        candidates: &pool,
        unit,
        station,
        run_id,
        kept: false,
        now_ms,
    };
    let a = store.lease(&LeaseRequest { run_id: &first.id, ..lease("00:40:9D:00:00:01", "st1", "", 1) }).await.unwrap();
    let b = store.lease(&lease("00:40:9D:00:00:02", "st2", "r2", 1)).await.unwrap();
    let c = store.lease(&lease("00:40:9D:00:00:03", "st2", "r3", 1)).await.unwrap();
    let d = store.lease(&lease("00:40:9D:00:00:04", "st2", "r4", 1)).await.unwrap();
    assert_eq!((a, b, c, d), (Some(pool[0]), Some(pool[1]), Some(pool[2]), None));
    // The same unit asking again keeps its address.
    assert_eq!(store.lease(&lease("00:40:9D:00:00:02", "st2", "r2", 2)).await.unwrap(), Some(pool[1]));

    // Ending the run frees its address and makes the unit "done before".
    let end = RunEnd {
        run_id: first.id.clone(),
        ended_ms: 2_000,
        outcome: "passed".into(),
        failure_class: None,
        finding: None,
        error: None,
        images: None,
    };
    store.end_run(&end).await.unwrap();
    // The unit holds its address until it is gone from the fixture.
    assert_eq!(store.lease(&lease("00:40:9D:00:00:04", "st2", "r4", 3)).await.unwrap(), None);
    store.release_lease(&first.id).await.unwrap();
    assert!(matches!(
        store.standing("00:40:9D:00:00:01").await.unwrap(),
        flashline::store::Standing::DoneBefore { .. }
    ));
    assert_eq!(store.lease(&lease("00:40:9D:00:00:04", "st2", "r4", 3)).await.unwrap(), Some(pool[0]));

    // A station whose heartbeat expired loses its running runs and leases to
    // the others; a station never reaps itself.
    store.heartbeat(&station("st2", 5_000)).await.unwrap();
    store.heartbeat(&station("st1", 30_000)).await.unwrap();
    let stuck = run_start("00:40:9D:00:00:05", "st2", "f1");
    store.begin_run(&stuck).await.unwrap();
    assert_eq!(store.reap("st2", 30_000).await.unwrap().runs, 0);
    let reaped = store.reap("st1", 30_000).await.unwrap();
    assert_eq!((reaped.stations, reaped.runs), (1, 1), "{reaped:?}");
    assert!(reaped.leases >= 2, "{reaped:?}");
    assert_eq!(
        store.standing("00:40:9D:00:00:05").await.unwrap(),
        flashline::store::Standing::Free,
        "an interrupted run is neither running nor done"
    );
    // A restarted station interrupts what its killed process left running.
    let left = run_start("00:40:9D:00:00:06", "st1", "f2");
    store.begin_run(&left).await.unwrap();
    assert_eq!(store.recover_station("st1", 40_000).await.unwrap().runs, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keeps_the_line_rules() {
    let dir = tempfile::tempdir().unwrap();
    let url = DbUrl::parse("sqlite:units.db", dir.path()).unwrap();
    let store = Store::open(&url).await.unwrap();
    rules_hold(&store).await;
    store.close().await;
    // Opening again applies no migration twice.
    Store::open(&url).await.unwrap().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_keeps_the_line_rules() {
    if !require(postgres::unavailable_reason().is_none(), &postgres::unavailable_reason().unwrap_or_default()) {
        return;
    }
    let server = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let url = DbUrl::parse(&server.url(), std::path::Path::new("/")).unwrap();
    assert!(!url.to_string().contains(PASSWORD));
    let store = Store::open(&url).await.unwrap();
    rules_hold(&store).await;
    store.close().await;
    Store::open(&url).await.unwrap().close().await;
    tokio::task::spawn_blocking(move || drop(server)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_is_named_without_its_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url =
        DbUrl::parse(&format!("postgres://line:{PASSWORD}@127.0.0.1:{port}/x"), std::path::Path::new("/")).unwrap();
    let error = match Store::open(&url).await {
        Err(error) => error.to_string(),
        Ok(_) => panic!("nothing listens on {port}"),
    };
    assert!(error.contains(&format!("postgres://line:***@127.0.0.1:{port}/x")), "{error}");
    assert!(!error.contains(PASSWORD), "{error}");
}
