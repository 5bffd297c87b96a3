//! `flashline dashboard` against real peers: curl as the HTTP client, a
//! headless Chromium (through chromedriver) watching a line that the test
//! plays into the database with the store's own write calls, Python's
//! `prometheus_client` parser (Debian) reading `/metrics`, a PostgreSQL
//! cluster of the test's own, and a network namespace for the token rule.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use flashline::store::{DbUrl, Store};
use serde_json::Value;

use crate::util::child::{Bounded, LineChild, QUICK};
use crate::util::line::{self, UnitRun};
use crate::util::netns::NetnsPair;
use crate::util::postgres::{self, Postgres};
use crate::util::web::{Browser, Dashboard, browser_available, get};
use crate::util::{have_program, require, run_flashline, text};

fn curl_available() -> bool {
    require(have_program("curl"), "curl (Debian package curl) is not installed")
}

fn json(answer: &crate::util::web::Answer) -> Value {
    serde_json::from_str(&answer.body).unwrap_or_else(|e| panic!("{e}: {}", answer.body))
}

#[test]
fn dashboard_pages_api_and_csv_show_the_database() {
    if !curl_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = line::small_line(dir.path());
    let dashboard = Dashboard::start(&db, &[], None);
    let base = &dashboard.base;

    let home = get(&format!("{base}/"), &[], None);
    assert_eq!(home.status, 200, "{}", home.body);
    for expected in ["st-a", "st-b", "wait_for_network", &line::mac(102), &line::mac(101), "no-boot-prompt"] {
        assert!(home.body.contains(expected), "{expected} missing from /:\n{}", home.body);
    }
    assert!(home.body.contains("<svg class=\"chart\""), "the shift chart");
    assert!(home.body.contains("<noscript><meta http-equiv=\"refresh\""), "a refresh without scripts");
    assert!(
        home.headers.to_ascii_lowercase().contains("content-security-policy: default-src 'none'; script-src 'self'")
    );

    let failed = get(&format!("{base}/units?outcome=failed"), &[], None);
    assert_eq!(failed.status, 200);
    assert!(failed.body.contains(&line::mac(100)) && failed.body.contains(&line::mac(101)));
    assert!(!failed.body.contains(&format!(">{}<", line::mac(3))), "a passed unit is not listed");
    let bad = get(&format!("{base}/units?mac=zz"), &[], None);
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("`zz` is not (part of) a MAC"), "{}", bad.body);

    let page = get(&format!("{base}/units/{}", line::mac(100)), &[], None);
    assert_eq!(page.status, 200);
    for expected in ["530 Login incorrect", "ftp-refused-after-ping", "rom.bin", "c0ffee", "ftp_upload", "1048576"] {
        assert!(page.body.contains(expected), "{expected} missing:\n{}", page.body);
    }
    assert_eq!(get(&format!("{base}/units/00:40:9D:FF:FF:FF"), &[], None).status, 404);

    // The API and the CLI read the same rows.
    let api = json(&get(&format!("{base}/api/v1/runs?outcome=failed"), &[], None));
    let cli = run_flashline(&["units", "list", "--db", &db, "--outcome", "failed", "--json"]);
    let cli: Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(api["runs"], cli["runs"]);
    let stations = json(&get(&format!("{base}/api/v1/stations"), &[], None));
    assert_eq!(stations.as_array().unwrap().len(), 2);
    assert_eq!(stations[0]["status"], "running");
    assert_eq!(stations[0]["fixtures"][0]["unit_mac"], line::mac(102));
    let shift = json(&get(&format!("{base}/api/v1/shift?since=24h"), &[], None));
    assert_eq!(shift["total"]["passed"], 7, "{shift:#}");
    assert_eq!(shift["total"]["failed"], 2);
    assert_eq!(shift["total"]["running"], 1);
    let unit = get(&format!("{base}/api/v1/units/00409d000064"), &[], None);
    assert_eq!(json(&unit)["runs"].as_array().unwrap().len(), 2);
    assert_eq!(get(&format!("{base}/api/v1/units/00:40:9D:FF:FF:FF"), &[], None).status, 404);
    assert_eq!(get(&format!("{base}/api/v1/runs?since=yesterday"), &[], None).status, 400);

    // The CSV download is the export's.
    let csv_answer = get(&format!("{base}/units.csv?station=st-b"), &[], None);
    assert!(csv_answer.headers.contains("text/csv"));
    let export = run_flashline(&["units", "export", "--csv", "--db", &db, "--station", "st-b"]);
    assert_eq!(csv_answer.body, String::from_utf8_lossy(&export.stdout));
    assert_eq!(csv_answer.body.lines().count(), 1 + 5);

    // Live: an event stream announces a change in the database.
    let mut events = LineChild::spawn(
        std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("curl -sS -v -N --max-time 20 --noproxy '*' {base}/events 1>&2")),
    );
    // The stream is subscribed before its response head is sent: once curl
    // has the head, a change is announced (no sleep to guess it by).
    events.line_matching(QUICK, |line| line.starts_with("< HTTP/1.1 200"));
    let path = db.strip_prefix("sqlite:").unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let store = Store::open(&DbUrl::sqlite(std::path::Path::new(path))).await.unwrap();
        line::play(&store, &UnitRun::passed(&line::mac(7), "st-b", "f1", flashline::store::now_ms())).await;
    });
    let recorded = Instant::now();
    events.line_matching(Duration::from_secs(5), |line| line == "event: change");
    assert!(recorded.elapsed() < Duration::from_secs(2), "change announced after {:?}", recorded.elapsed());
}

/// Parses `/metrics` with Python's prometheus_client (Debian's
/// python3-prometheus-client) and returns its samples as
/// `[name, labels, value]`.
fn parse_metrics(body: &str) -> Vec<(String, Value, f64)> {
    let script = "import sys, json\nfrom prometheus_client.parser import text_string_to_metric_families\n\
                  out = []\nfor family in text_string_to_metric_families(sys.stdin.read()):\n\
                  \x20   for s in family.samples:\n\
                  \x20       out.append([s.name, s.labels, s.value, family.type])\nprint(json.dumps(out))\n";
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("metrics.txt");
    std::fs::write(&input, body).unwrap();
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("/usr/bin/python3 -c \"$0\" < {}", input.display()))
        .arg(script)
        .output_within(QUICK);
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "the Prometheus parser refused /metrics: {stderr}\n{body}");
    let samples: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    samples.into_iter().map(|s| (s[0].as_str().unwrap().to_string(), s[1].clone(), s[2].as_f64().unwrap())).collect()
}

#[test]
fn dashboard_metrics_parse_as_prometheus_text_and_match_the_database() {
    let parser = std::process::Command::new("/usr/bin/python3")
        .args(["-c", "import prometheus_client.parser"])
        .output_within(QUICK)
        .status
        .success();
    if !curl_available() || !require(parser, "python3-prometheus-client (Debian) is not installed") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = line::small_line(dir.path());
    let dashboard = Dashboard::start(&db, &[], None);
    let answer = get(&format!("{}/metrics", dashboard.base), &[], None);
    assert_eq!(answer.status, 200);
    assert!(answer.headers.contains("text/plain; version=0.0.4"), "{}", answer.headers);
    let samples = parse_metrics(&answer.body);
    let value = |name: &str, labels: &[(&str, &str)]| {
        samples
            .iter()
            .find(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l[*k] == *v))
            .map(|(_, _, v)| *v)
            .unwrap_or_else(|| panic!("no {name} {labels:?} in\n{}", answer.body))
    };

    // Counters against the database, read through the CLI's export.
    let export = run_flashline(&["units", "export", "--json", "--db", &db]);
    let runs: Vec<Value> = serde_json::from_slice(&export.stdout).unwrap();
    let mut expected = std::collections::BTreeMap::new();
    for run in &runs {
        let key =
            (run["station"].as_str().unwrap(), run["fixture"].as_str().unwrap(), run["outcome"].as_str().unwrap());
        *expected.entry(key).or_insert(0.0) += 1.0;
    }
    for ((station, fixture, outcome), count) in &expected {
        let got = if *outcome == "running" {
            value("flashline_runs_running", &[("station", station), ("fixture", fixture)])
        } else {
            value("flashline_runs_total", &[("station", station), ("fixture", fixture), ("outcome", outcome)])
        };
        assert_eq!(got, *count, "{station}/{fixture}/{outcome}");
    }
    let total: f64 = samples.iter().filter(|(n, _, _)| n == "flashline_runs_total").map(|(_, _, v)| v).sum();
    assert_eq!(total, runs.iter().filter(|r| r["outcome"] != "running").count() as f64);

    // Step histograms: every recorded step counted once, by its kind. The
    // small line recorded 9 load_image steps (all runs reach it).
    assert_eq!(value("flashline_step_duration_seconds_count", &[("kind", "load_image")]), 10.0);
    assert_eq!(value("flashline_step_duration_seconds_bucket", &[("kind", "load_image"), ("le", "+Inf")]), 10.0);
    assert_eq!(value("flashline_step_duration_seconds_bucket", &[("kind", "load_image"), ("le", "60")]), 0.0);
    assert_eq!(value("flashline_step_duration_seconds_bucket", &[("kind", "load_image"), ("le", "120")]), 10.0);
    assert_eq!(value("flashline_step_duration_seconds_sum", &[("kind", "load_image")]), 950.0);
    let age = value("flashline_station_heartbeat_age_seconds", &[("station", "st-a")]);
    assert!((0.0..60.0).contains(&age), "heartbeat age {age}");
    assert_eq!(value("flashline_station_up", &[("station", "st-a")]), 1.0);

    // A unit more: the next scrapes count it (the totals are kept only
    // while the database does not change).
    let before = value("flashline_runs_total", &[("station", "st-a"), ("fixture", "f1"), ("outcome", "passed")]);
    let path = db.strip_prefix("sqlite:").unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let store = Store::open(&DbUrl::sqlite(std::path::Path::new(path))).await.unwrap();
        line::play(&store, &UnitRun::passed(&line::mac(9), "st-a", "f1", flashline::store::now_ms())).await;
    });
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let samples = parse_metrics(&get(&format!("{}/metrics", dashboard.base), &[], None).body);
        let now = samples
            .iter()
            .find(|(n, l, _)| {
                n == "flashline_runs_total"
                    && l["station"] == "st-a"
                    && l["fixture"] == "f1"
                    && l["outcome"] == "passed"
            })
            .map(|(_, _, v)| *v);
        if now == Some(before + 1.0) {
            break;
        }
        assert!(Instant::now() < deadline, "the new unit never counted: {now:?} after {before}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Whether the latest runs show `mac`'s run as finished (its row is there
/// from the run's start, as `running`).
fn finished_row(text: &str, mac: &str) -> bool {
    text.lines().any(|row| row.contains(mac) && (row.contains("passed") || row.contains("failed")))
}

/// Plays units into `db` one after another from a thread of its own, telling
/// the test each MAC and when its run was recorded.
fn play_line(db: DbUrl, units: u32, hostile: String) -> mpsc::Receiver<(String, Instant)> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let store = Store::open(&db).await.unwrap();
            for n in 0..units {
                let now = flashline::store::now_ms();
                let (station, fixture) = if n % 2 == 0 { ("st-north", "f1") } else { ("st-south", "f2") };
                line::station(&store, "st-north", now, "running").await;
                line::station(&store, "st-south", now, "running").await;
                let mac = line::mac(0x5000 + n);
                line::fixture(&store, station, fixture, Some((&mac, "ftp_upload", 60)), now).await;
                tokio::time::sleep(Duration::from_millis(400)).await;
                let mut unit = UnitRun::passed(&mac, station, fixture, now);
                if n == 1 {
                    unit.serial = Some(hostile.clone());
                    unit = unit.failed("ftp-refused-after-ping", &hostile);
                }
                line::play(&store, &unit).await;
                line::fixture(&store, station, fixture, None, flashline::store::now_ms()).await;
                if sender.send((mac, Instant::now())).is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(1500)).await;
            }
        });
    });
    receiver
}

#[test]
fn dashboard_in_a_browser_follows_a_line_live_and_shows_hostile_text_as_text() {
    if !browser_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("line.db");
    let url = DbUrl::sqlite(&path);
    // The stations exist before the page loads; units come after.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let store = Store::open(&url).await.unwrap();
        let now = flashline::store::now_ms();
        line::station(&store, "st-north", now, "running").await;
        line::station(&store, "st-south", now, "running").await;
        store.close().await;
    });
    let db = format!("sqlite:{}", path.display());
    let browser = Browser::start();
    let dashboard = Dashboard::start(&db, &[], Some(browser.namespace()));
    browser.open(&format!("{}/", dashboard.base));
    let text = browser.text();
    assert!(text.contains("st-north") && text.contains("st-south"), "both stations on the page:\n{text}");
    browser.run("window.__loaded_once = true; return null;");

    let hostile = "<script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\">".to_string();
    let units = 4;
    let recorded = play_line(url, units, hostile.clone());
    let mut macs = Vec::new();
    for _ in 0..units {
        let (mac, at) = recorded.recv_timeout(Duration::from_secs(60)).expect("the line plays a unit");
        // Among the latest runs (the fixture showed the MAC already while
        // the unit ran): the run's record reached the page.
        browser
            .wait_for_text("#latest-runs", Duration::from_secs(2), |text| finished_row(text, &mac))
            .unwrap_or_else(|text| panic!("{mac} not among the latest runs 2 s after its run was recorded:\n{text}"));
        let after = at.elapsed();
        eprintln!("{mac} among the latest runs {after:?} after its run was recorded");
        // README: "within a second": the 500 ms poll, the page's fetch and
        // render, and this test's 50 ms sampling.
        assert!(after <= Duration::from_millis(1200), "{mac} took {after:?}");
        macs.push(mac);
    }
    assert_eq!(browser.run("return window.__loaded_once === true;"), Value::Bool(true), "updated without a reload");
    // The hostile serial number and error are on the line page as text.
    let text = browser.text();
    assert!(text.contains("<script>window.__pwned=1</script>"), "shown as text:\n{text}");
    assert_eq!(browser.run("return typeof window.__pwned;"), "undefined", "no script from a device ran");
    assert_eq!(browser.run("return document.querySelectorAll('main script, main img').length;"), 0);
    browser.screenshot(&std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png"));

    browser.open(&format!("{}/units/{}", dashboard.base, macs[1]));
    let text = browser.text();
    assert!(text.contains(&hostile), "the unit page shows the serial number as text:\n{text}");
    assert_eq!(browser.run("return typeof window.__pwned;"), "undefined");
    assert_eq!(browser.run("return document.querySelectorAll('main script, main img').length;"), 0);
}

#[test]
fn dashboard_off_loopback_needs_its_token_for_pages_and_api_alike() {
    if !curl_available() {
        return;
    }
    let Some(pair) = NetnsPair::create() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = line::small_line(dir.path());
    let listen = format!("{}:8080", pair.station_ip);

    let refused = pair
        .in_station(crate::util::flashline_bin())
        .args(["dashboard", "--db", &db, "--listen", &listen])
        .output_within(QUICK);
    assert_eq!(refused.status.code(), Some(2), "{:?}", text(&refused));
    assert!(text(&refused).1.contains("needs --token-file"), "{}", text(&refused).1);

    let token = "k7Hq2-line-dashboard-token-0042";
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let dashboard = Dashboard::start(
        &db,
        &["--listen", &listen, "--token-file", token_file.to_str().unwrap()],
        Some(&pair.station),
    );
    let base = &dashboard.base;
    let from_dut = Some(pair.dut.as_str());
    for path in
        ["/", "/units", "/units/00:40:9D:00:00:64", "/units.csv", "/api/v1", "/api/v1/runs", "/metrics", "/events"]
    {
        let answer = get(&format!("{base}{path}"), &[], from_dut);
        assert_eq!(answer.status, 401, "{path} without the token");
        assert!(
            answer.headers.contains("WWW-Authenticate: Bearer") || answer.headers.contains("www-authenticate: Bearer")
        );
        assert!(!answer.body.contains("00:40:9D:00:00:01"), "{path} leaks data without the token");
        let wrong =
            get(&format!("{base}{path}"), &["-H", "Authorization: Bearer k7Hq2-line-dashboard-token-0043"], from_dut);
        assert_eq!(wrong.status, 401, "{path} with a wrong token");
    }
    let bearer = format!("Authorization: Bearer {token}");
    for path in ["/", "/units", "/api/v1/runs", "/metrics"] {
        assert_eq!(get(&format!("{base}{path}"), &["-H", &bearer], from_dut).status, 200, "{path} with the token");
    }
    // The scheme is case-insensitive (RFC 7235).
    for scheme in ["bearer", "BEARER"] {
        let header = format!("Authorization: {scheme} {token}");
        assert_eq!(get(&format!("{base}/api/v1/runs"), &["-H", &header], from_dut).status, 200, "{scheme}");
    }
    // The login form sets a cookie that then opens the pages.
    let jar = dir.path().join("cookies");
    let login = get(
        &format!("{base}/login"),
        &["--data-urlencode", &format!("token={token}"), "-c", jar.to_str().unwrap()],
        from_dut,
    );
    assert_eq!(login.status, 303, "{}", login.headers);
    assert!(login.headers.contains("HttpOnly; SameSite=Strict"), "{}", login.headers);
    let with_cookie = get(&format!("{base}/units"), &["-b", jar.to_str().unwrap()], from_dut);
    assert_eq!(with_cookie.status, 200);
    let wrong_login = get(&format!("{base}/login"), &["--data-urlencode", "token=guess-guess-guess-guess"], from_dut);
    assert_eq!(wrong_login.status, 401);
    assert!(!wrong_login.body.contains(token));

    let output = stop(dashboard);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "Ctrl-C ends the dashboard cleanly: {stderr}");
    assert!(!stderr.contains(token) && !stdout.contains(token), "the token is never printed: {stderr}");
}

/// Stops the dashboard as Ctrl-C would and returns what it printed.
fn stop(dashboard: Dashboard) -> std::process::Output {
    dashboard.child.signal(nix::sys::signal::Signal::SIGINT);
    dashboard.child.finish_within(Duration::from_secs(10))
}

#[test]
fn dashboard_on_postgresql_never_shows_the_database_password() {
    if !curl_available() || !require(postgres::unavailable_reason().is_none(), "PostgreSQL is not installed") {
        return;
    }
    let mut postgres = Postgres::start();
    let url = postgres.url();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let store = Store::open(&DbUrl::parse(&url, std::path::Path::new(".")).unwrap()).await.unwrap();
        line::fill_small_line(&store).await;
        store.close().await;
    });
    let dashboard = Dashboard::start(&url, &[], None);
    let base = dashboard.base.clone();
    let home = get(&format!("{base}/"), &[], None);
    assert_eq!(home.status, 200, "{}", home.body);
    assert!(home.body.contains(&line::mac(101)));
    let failed = get(&format!("{base}/api/v1/runs?outcome=failed"), &[], None);
    assert_eq!(json(&failed)["runs"].as_array().unwrap().len(), 2, "the same rows as on SQLite");
    let metrics = get(&format!("{base}/metrics"), &[], None);
    assert_eq!(metrics.status, 200, "{}", metrics.body);
    assert!(
        metrics.body.contains("flashline_step_duration_seconds_sum{kind=\"load_image\"} 950\n"),
        "{}",
        metrics.body
    );
    let unit = get(&format!("{base}/units/{}", line::mac(100)), &[], None);
    assert!(unit.status == 200 && unit.body.contains("530 Login incorrect"));

    // The database goes away: pages and API say so, without naming it.
    postgres.stop();
    for path in ["/", "/api/v1/stations", "/metrics", "/units/00:40:9D:00:00:64"] {
        let answer = get(&format!("{base}{path}"), &[], None);
        assert_eq!(answer.status, 503, "{path}: {}", answer.body);
        assert!(!answer.body.contains(postgres::PASSWORD) && !answer.body.contains("127.0.0.1:"), "{}", answer.body);
    }
    let output = stop(dashboard);
    let (stdout, stderr) = text(&output);
    assert!(stderr.contains("cannot") || stderr.contains("failed"), "the log says why: {stderr}");
    assert!(!stderr.contains(postgres::PASSWORD) && !stdout.contains(postgres::PASSWORD), "{stderr}");
}

#[test]
fn dashboard_in_a_browser_follows_flashline_demo_station_filling_the_database() {
    if !browser_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("line.db");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async { Store::open(&DbUrl::sqlite(&path)).await.unwrap().close().await });
    let db = format!("sqlite:{}", path.display());
    let browser = Browser::start();
    let dashboard = Dashboard::start(&db, &[], Some(browser.namespace()));
    browser.open(&format!("{}/", dashboard.base));

    // The simulated line: a station taking units at two fixtures, writing
    // the database as a real one does.
    let mut demo = LineChild::spawn(crate::util::flashline().args([
        "demo",
        "--station",
        "--fixtures",
        "2",
        "--units",
        "4",
        "--db",
        &db,
    ]));
    browser
        .wait_for_text("main", Duration::from_secs(30), |text| text.contains("demo-line"))
        .unwrap_or_else(|text| panic!("the demo's station never showed:\n{text}"));
    let mut seen = 0;
    while seen < 4 {
        let line =
            demo.line_matching(Duration::from_secs(60), |line| line.contains(" PASSED") || line.contains(" FAILED"));
        let recorded = Instant::now();
        let mac = line.split_whitespace().nth(1).unwrap_or_default().to_string();
        assert!(mac.starts_with("00:40:9D:"), "a unit's line: {line}");
        browser
            .wait_for_text("#latest-runs", Duration::from_secs(2), |text| finished_row(text, &mac))
            .unwrap_or_else(|text| panic!("{mac} not among the latest runs 2 s after `{line}`:\n{text}"));
        eprintln!("{mac} finished among the latest runs {:?} after the station reported it", recorded.elapsed());
        seen += 1;
    }
    let output = demo.finish_within(Duration::from_secs(60));
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    browser.screenshot(&std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-demo.png"));
}

/// Reads from `stream` until it closes (or `limit` passes): what arrived,
/// and when the close came.
fn read_until_closed(mut stream: std::net::TcpStream, limit: Duration) -> (String, Option<Duration>) {
    use std::io::Read;
    let began = Instant::now();
    let mut got = Vec::new();
    let mut buffer = [0u8; 1024];
    while began.elapsed() < limit {
        stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        match stream.read(&mut buffer) {
            Ok(0) => return (String::from_utf8_lossy(&got).into_owned(), Some(began.elapsed())),
            Ok(n) => got.extend_from_slice(&buffer[..n]),
            Err(error) if matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), Some(began.elapsed())),
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), None)
}

#[test]
fn dashboard_drops_slow_and_greedy_clients() {
    use flashline::dashboard::conn::{BODY_TIMEOUT, HEADER_TIMEOUT, PER_CLIENT};
    use std::io::Write;
    if !curl_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = line::small_line(dir.path());
    let dashboard = Dashboard::start(&db, &[], None);
    let address = dashboard.base.strip_prefix("http://").unwrap().to_string();
    let connect = || std::net::TcpStream::connect(&address).unwrap();
    // Clients that send half a request and then nothing: one client's share
    // of connections, each with half its headers; one more than its share.
    let mut slow = Vec::new();
    for _ in 0..PER_CLIENT - 1 {
        let mut stream = connect();
        stream.write_all(b"GET / HTTP/1.1\r\nHost: line\r\nX-Slow: ").unwrap();
        slow.push(stream);
    }
    let mut body = connect();
    body.write_all(b"POST /login HTTP/1.1\r\nHost: line\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ntoken=").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let began = Instant::now();
    let (answer, closed) = read_until_closed(connect(), QUICK);
    assert!(answer.starts_with("HTTP/1.1 503"), "over its share: {answer:?}");
    assert!(closed.is_some_and(|t| t < Duration::from_secs(2)), "closed at once: {closed:?}");
    // The slow ones are dropped once their time is up, not before.
    let readers: Vec<_> =
        slow.into_iter().map(|s| std::thread::spawn(move || read_until_closed(s, HEADER_TIMEOUT * 2))).collect();
    let body_reader = std::thread::spawn(move || read_until_closed(body, BODY_TIMEOUT * 2));
    for reader in readers {
        let (answer, closed) = reader.join().unwrap();
        let closed = closed.unwrap_or_else(|| panic!("a half-sent request held its connection: {answer:?}"));
        assert!(closed >= HEADER_TIMEOUT.saturating_sub(Duration::from_secs(2)), "dropped early: {closed:?}");
        assert!(!answer.contains("200 OK"), "{answer}");
    }
    let (answer, closed) = body_reader.join().unwrap();
    assert!(closed.is_some(), "a trickling body held its connection: {answer:?}");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    // The dashboard still serves, and the client has its share back.
    assert_eq!(get(&format!("{}/units", dashboard.base), &[], None).status, 200);
    assert!(began.elapsed() < HEADER_TIMEOUT * 2, "{:?}", began.elapsed());
}

/// Every table's rows, dumped with Python's sqlite3 (an independent reader).
fn sqlite_dump(path: &std::path::Path) -> String {
    let script = "import sqlite3,sys\nc=sqlite3.connect(sys.argv[1])\nprint('\\n'.join(c.iterdump()))";
    let output = std::process::Command::new("python3").args(["-c", script]).arg(path).output_within(QUICK);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// README: the dashboard is read-only. Every route, asked with every method
/// that could change something, changes nothing in the database; the
/// methods it does not serve are refused with 405.
#[test]
fn dashboard_is_read_only_for_every_route_and_method() {
    if !curl_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = line::small_line(dir.path());
    let path = dir.path().join("line.db");
    let before = sqlite_dump(&path);
    assert!(before.contains("INSERT INTO"), "the line has rows:\n{before}");
    let dashboard = Dashboard::start(&db, &[], None);
    let base = &dashboard.base;
    let mac = line::mac(100);
    let routes = [
        "/".to_string(),
        "/units".into(),
        "/units.csv".into(),
        format!("/units/{mac}"),
        "/metrics".into(),
        "/api/v1".into(),
        "/api/v1/stations".into(),
        "/api/v1/shift".into(),
        "/api/v1/failures".into(),
        "/api/v1/runs".into(),
        format!("/api/v1/units/{mac}"),
        "/static/style.css".into(),
    ];
    for route in &routes {
        let url = format!("{base}{route}");
        assert_eq!(get(&url, &[], None).status, 200, "GET {route}");
        for method in ["POST", "PUT", "PATCH", "DELETE"] {
            let answer = get(
                &url,
                &["-X", method, "-H", "Content-Type: application/json", "--data", "{\"outcome\":\"passed\"}"],
                None,
            );
            assert_eq!(answer.status, 405, "{method} {route}: {}", answer.body);
        }
    }
    let output = stop(dashboard);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(sqlite_dump(&path), before, "the dashboard changed the database");
}
