//! `flashline units` against a SQLite database filled through the store's
//! write API (the station's own calls): list with filters, show one unit's
//! history, export CSV and JSON that match the database, and the errors for a
//! database that is not there (exit 3, no password shown) or a bad filter.

use serde_json::Value;

use crate::util::line;
use crate::util::{run_flashline, text};

fn json(args: &[&str]) -> Value {
    let output = run_flashline(args);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{args:?}\n{stdout}\n{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn macs(page: &Value) -> Vec<String> {
    page["runs"].as_array().unwrap().iter().map(|run| run["mac"].as_str().unwrap().to_string()).collect()
}

#[test]
fn units_list_filters_by_station_outcome_time_and_mac() {
    let dir = tempfile::tempdir().unwrap();
    let db = line::small_line(dir.path());
    let all = json(&["units", "list", "--db", &db, "--json"]);
    assert_eq!(all["runs"].as_array().unwrap().len(), 10, "{all:#}");
    assert_eq!(all["more"], false);
    let started: Vec<i64> = all["runs"].as_array().unwrap().iter().map(|r| r["started_ms"].as_i64().unwrap()).collect();
    assert!(started.windows(2).all(|w| w[0] >= w[1]), "newest first: {started:?}");

    let failed = json(&["units", "list", "--db", &db, "--outcome", "failed", "--json"]);
    assert_eq!(macs(&failed), [line::mac(101), line::mac(100)]);
    assert_eq!(failed["runs"][1]["finding"], "ftp-refused-after-ping");

    let st_b = json(&["units", "list", "--db", &db, "--station", "st-b", "--json"]);
    assert!(st_b["runs"].as_array().unwrap().iter().all(|r| r["station"] == "st-b"));
    assert_eq!(st_b["runs"].as_array().unwrap().len(), 5);

    let recent = json(&["units", "list", "--db", &db, "--since", "150m", "--json"]);
    assert_eq!(macs(&recent), [line::mac(102), line::mac(101), line::mac(100)]);

    let flaky = json(&["units", "list", "--db", &db, "--mac", "00409d000064", "--json"]);
    assert_eq!(macs(&flaky), [line::mac(100), line::mac(100)]);
    let part = json(&["units", "list", "--db", &db, "--mac", "00:64", "--json"]);
    assert_eq!(macs(&part), [line::mac(100), line::mac(100)]);

    // The serial number holds the text (the line's units are `SN-<MAC digits>`).
    let by_serial = json(&["units", "list", "--db", &db, "--serial", "9D000064", "--json"]);
    assert_eq!(macs(&by_serial), [line::mac(100), line::mac(100)]);
    assert_eq!(by_serial["runs"][0]["serial_number"], "SN-00409D000064", "{by_serial:#}");
    let none = json(&["units", "list", "--db", &db, "--serial", "SN-00409D0000FF", "--json"]);
    assert_eq!(macs(&none), Vec::<String>::new());

    let first_page = json(&["units", "list", "--db", &db, "--limit", "4", "--json"]);
    let second_page = json(&["units", "list", "--db", &db, "--limit", "4", "--offset", "4", "--json"]);
    assert_eq!(first_page["more"], true);
    assert_eq!(macs(&first_page).len() + macs(&second_page).len(), 8);
    assert_eq!(macs(&all)[4..8], macs(&second_page)[..]);

    let table = run_flashline(&["units", "list", "--db", &db, "--outcome", "failed"]);
    let (stdout, _) = text(&table);
    assert!(stdout.starts_with("MAC"), "{stdout}");
    assert!(stdout.contains("no-boot-prompt") && stdout.contains(&line::mac(101)), "{stdout}");
}

#[test]
fn units_show_gives_every_run_with_steps_images_and_finding() {
    let dir = tempfile::tempdir().unwrap();
    let db = line::small_line(dir.path());
    let unit = json(&["units", "show", "00-40-9d-00-00-64", "--db", &db, "--json"]);
    assert_eq!(unit["mac"], line::mac(100));
    let runs = unit["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!((runs[0]["outcome"].as_str(), runs[1]["outcome"].as_str()), (Some("failed"), Some("passed")));
    assert_eq!(runs[0]["error"], "530 Login incorrect");
    assert_eq!(runs[0]["steps"].as_array().unwrap().len(), 4);
    assert_eq!(runs[0]["steps"][3]["outcome"], "failed");
    assert_eq!(runs[1]["images"][0]["file"], "rom.bin");
    assert_eq!(runs[1]["images"][0]["sha256"], "c0ffee");

    let output = run_flashline(&["units", "show", &line::mac(100), "--db", &db]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    for expected in ["load_image", "ftp_upload", "rom.bin", "c0ffee", "530 Login incorrect", "ftp-refused-after-ping"] {
        assert!(stdout.contains(expected), "{expected} missing:\n{stdout}");
    }

    let missing = run_flashline(&["units", "show", "00:40:9D:FF:FF:FF", "--db", &db]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing).1.contains("00:40:9D:FF:FF:FF is not in the database"));
    let bad = run_flashline(&["units", "show", "<script>", "--db", &db]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad).1.contains("is not a MAC"), "{}", text(&bad).1);
}

#[test]
fn units_export_csv_and_json_hold_every_matching_run() {
    let dir = tempfile::tempdir().unwrap();
    let db = line::small_line(dir.path());
    let out = dir.path().join("export.csv");
    let output = run_flashline(&["units", "export", "--csv", "--db", &db, "--output", out.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    let mut reader = csv::Reader::from_path(&out).unwrap();
    assert_eq!(reader.headers().unwrap().iter().take(3).collect::<Vec<_>>(), ["run_id", "mac", "serial_number"]);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 10);
    let failed: Vec<&csv::StringRecord> = rows.iter().filter(|row| &row[10] == "failed").collect();
    assert_eq!(failed.len(), 2);
    assert!(failed.iter().any(|row| &row[13] == "530 Login incorrect" && &row[12] == "ftp-refused-after-ping"));
    assert!(rows.iter().all(|row| row[8].ends_with('Z')), "UTC times");

    let output = run_flashline(&["units", "export", "--json", "--db", &db, "--station", "st-a"]);
    let exported: Value = serde_json::from_slice(&output.stdout).unwrap();
    let listed = json(&["units", "list", "--db", &db, "--station", "st-a", "--json"]);
    assert_eq!(exported, listed["runs"]);

    let neither = run_flashline(&["units", "export", "--db", &db]);
    assert_eq!(neither.status.code(), Some(2), "--csv or --json is required");
}

#[test]
fn units_without_a_database_exit_3_and_never_show_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let missing = format!("sqlite:{}", dir.path().join("nowhere.db").display());
    let output = run_flashline(&["units", "list", "--db", &missing]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("nowhere.db") && stderr.contains("no such database file"), "{stderr}");
    assert!(!dir.path().join("nowhere.db").exists(), "a read must not create the database");

    // Port 1 on loopback: nothing listens, the connection is refused at once.
    let output = run_flashline(&["units", "list", "--db", "postgres://line:Sup3rSecretPw@127.0.0.1:1/units"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("127.0.0.1:1"), "names the database: {stderr}");
    assert!(!stderr.contains("Sup3rSecretPw") && !stdout.contains("Sup3rSecretPw"), "{stderr}");
}

#[test]
fn units_with_a_bad_filter_exit_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = line::small_line(dir.path());
    for (args, expected) in [
        (vec!["--outcome", "maybe"], "`maybe` is not a run outcome"),
        (vec!["--since", "yesterday"], "`yesterday` is not a time"),
        (vec!["--mac", "xyz"], "`xyz` is not (part of) a MAC"),
    ] {
        let output = run_flashline(&[&["units", "list", "--db", &db][..], &args].concat());
        let (_, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn units_export_csv_to_a_terminal_shows_escape_codes_instead_of_obeying_them() {
    use crate::util::child::{Bounded, FLASHLINE};
    use std::io::Read;
    use std::process::Stdio;
    // A serial number a hostile unit reported: clear the screen, retitle.
    let hostile = "SN\u{1b}[2J\u{1b}]0;pwned\u{7}";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("line.db");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let store = flashline::store::Store::open(&flashline::store::DbUrl::sqlite(&path)).await.unwrap();
        let now = flashline::store::now_ms();
        line::station(&store, "st-a", now, "running").await;
        let unit =
            line::UnitRun { serial: Some(hostile.into()), ..line::UnitRun::passed(&line::mac(7), "st-a", "f1", now) };
        line::play(&store, &unit).await;
        store.close().await;
    });
    let db = format!("sqlite:{}", path.display());

    // To a pipe: the data unchanged (a CSV file keeps what the unit sent).
    let piped = run_flashline(&["units", "export", "--csv", "--db", &db]);
    assert_eq!(piped.status.code(), Some(0), "{}", text(&piped).1);
    assert!(text(&piped).0.contains(hostile), "{}", text(&piped).0);

    // To a terminal: visible escapes, no ESC or BEL byte reaches the screen.
    let pty = crate::util::pty::PtyPair::new();
    let status = crate::util::flashline()
        .args(["units", "export", "--csv", "--db", &db])
        .stdout(Stdio::from(std::fs::OpenOptions::new().write(true).open(pty.device_path()).unwrap()))
        .stderr(Stdio::null())
        .status_within(FLASHLINE);
    assert!(status.success());
    let mut controller = pty.controller;
    serialport::SerialPort::set_timeout(&mut controller, std::time::Duration::from_millis(500)).unwrap();
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = controller.read(&mut chunk) {
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&chunk[..n]);
    }
    let seen = String::from_utf8_lossy(&seen);
    assert!(seen.contains("SN\\u{1b}[2J\\u{1b}]0;pwned\\u{7}"), "{seen}");
    assert!(!seen.contains('\u{1b}') && !seen.contains('\u{7}'), "{seen:?}");
}
