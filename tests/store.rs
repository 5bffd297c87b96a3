//! The unit database's rules, against a SQLite file and a real PostgreSQL
//! server (a throwaway cluster): the same test body runs on both, since both
//! go through the same code path. Among them: a station's row is its lock
//! (one live process per station), and a MAC part finds the units that hold
//! it as one run of digits.

use std::net::Ipv4Addr;

use flashline::store::queries::RunFilter;
use flashline::store::{Begun, Claim, DbUrl, LeaseRequest, RunEnd, RunStart, StationRow, Store, new_id};

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

    claims_hold(store).await;
    mac_parts_are_one_run_of_digits(store).await;
}

/// One live process per station: a second one is kept out while the first
/// one's heartbeat is fresh, and told who holds the station.
async fn claims_hold(store: &Store) {
    let first = StationRow { pid: 100, ..station("claimed", 50_000) };
    assert_eq!(store.claim_station(&first, 50_000, None).await.unwrap(), Claim::Claimed);
    let second = StationRow { pid: 200, host: "other".into(), heartbeat_ms: 51_000, ..first.clone() };
    assert_eq!(
        store.claim_station(&second, 51_000, None).await.unwrap(),
        Claim::HeldBy { host: "bench".into(), pid: 100, heartbeat_ms: 50_000 }
    );
    // The row is still the first process's.
    assert_eq!(
        store.claim_station(&second, 51_000, None).await.unwrap(),
        Claim::HeldBy { host: "bench".into(), pid: 100, heartbeat_ms: 50_000 }
    );
    // A dead pid only counts on the holder's own host.
    assert!(matches!(store.claim_station(&second, 51_000, Some(100)).await.unwrap(), Claim::HeldBy { .. }));
    let same_host = StationRow { pid: 300, heartbeat_ms: 52_000, ..first.clone() };
    assert!(matches!(store.claim_station(&same_host, 52_000, Some(999)).await.unwrap(), Claim::HeldBy { .. }));
    assert_eq!(store.claim_station(&same_host, 52_000, Some(100)).await.unwrap(), Claim::Claimed);
    // Once the holder's heartbeat expired (10 s), anyone may start it.
    assert_eq!(store.claim_station(&second, 62_001, None).await.unwrap(), Claim::Claimed);
    // A stopped station is free at once.
    store.heartbeat(&StationRow { state: "stopped".into(), ..second.clone() }).await.unwrap();
    assert_eq!(store.claim_station(&first, 62_002, None).await.unwrap(), Claim::Claimed);
}

/// The MACs of the runs at station `search` that `units list --mac PART` finds.
async fn found(store: &Store, part: &str) -> Vec<String> {
    let filter = RunFilter { mac: Some(part.into()), station: Some("search".into()), ..RunFilter::default() };
    filter.check().unwrap();
    let mut macs: Vec<String> =
        store.runs(&filter, 100, 0).await.unwrap().runs.into_iter().map(|run| run.mac).collect();
    macs.sort();
    macs
}

/// `units list --mac 9d3a` and the dashboard's search: the digits as one
/// run, across the colons, on rows in the database.
async fn mac_parts_are_one_run_of_digits(store: &Store) {
    for mac in ["00:40:9D:3A:00:01", "00:40:9D:13:0A:55", "00:40:9D:00:3A:9D"] {
        let run = RunStart { started_ms: 90_000, ..run_start(mac, "search", "f1") };
        store.begin_run(&run).await.unwrap();
    }
    assert_eq!(found(store, "9d3a").await, ["00:40:9D:3A:00:01"], "9D, 3 and A apart is not 9D3A");
    assert_eq!(found(store, "9D:3A").await, ["00:40:9D:3A:00:01"]);
    // Bare digits match across a colon, in either alignment.
    assert_eq!(found(store, "d3a0").await, ["00:40:9D:3A:00:01"]);
    assert_eq!(found(store, "3a9d").await, ["00:40:9D:00:3A:9D"]);
    assert_eq!(found(store, "130a").await, ["00:40:9D:13:0A:55"]);
    assert_eq!(found(store, "0a:55").await, ["00:40:9D:13:0A:55"]);
    assert_eq!(found(store, "409d").await.len(), 3);
    assert!(found(store, "3a0a").await.is_empty());
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

// A plain test with its own runtime: the cluster is started on the test's
// own thread, which it dies with (a blocking-pool thread could exit while
// the test still runs, taking the server along).
#[test]
fn postgresql_keeps_the_line_rules() {
    if !require(postgres::unavailable_reason().is_none(), &postgres::unavailable_reason().unwrap_or_default()) {
        return;
    }
    let server = Postgres::start();
    let url = DbUrl::parse(&server.url(), std::path::Path::new("/")).unwrap();
    assert!(!url.to_string().contains(PASSWORD));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let store = Store::open(&url).await.unwrap();
        rules_hold(&store).await;
        store.close().await;
        Store::open(&url).await.unwrap().close().await;
    });
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_is_named_without_its_password() {
    let closed = crate::util::ports::closed_tcp_port();
    let port = closed.port;
    let url =
        DbUrl::parse(&format!("postgres://line:{PASSWORD}@127.0.0.1:{port}/x"), std::path::Path::new("/")).unwrap();
    let error = match Store::open(&url).await {
        Err(error) => error.to_string(),
        Ok(_) => panic!("nothing listens on {port}"),
    };
    assert!(error.contains(&format!("postgres://line:***@127.0.0.1:{port}/x")), "{error}");
    assert!(!error.contains(PASSWORD), "{error}");
}
