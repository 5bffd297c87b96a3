//! README's profile promises with no test before: `console_done` is refused
//! by `profile check` (and so by `run`) until it is implemented, rather than
//! accepted and ignored.

use crate::util::{run_flashline, text};

/// An upload profile with `console_done` on line 14.
const WITH_CONSOLE_DONE: &str = "\
format: 1
name: t
network:
  dhcp: false
  ip: 127.0.0.1
steps:
  - wait_for_network:
      icmp: false
      method: connect
      ports: [{port: 2121}]
  - ftp_upload:
      credentials: [{user: root, password: \"${env:PW}\"}]
      files: [{local: rom.bin}]
      console_done: 'FTP: Flash download complete\\.'
";

#[test]
fn console_done_is_refused_by_profile_check_naming_its_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rom.bin"), b"x").unwrap();
    let path = dir.path().join("upload.yaml");
    std::fs::write(&path, WITH_CONSOLE_DONE).unwrap();
    let output = run_flashline(&["profile", "check", path.to_str().unwrap()]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stdout}\n{stderr}");
    let expected = format!(
        "{}:14:21: error: steps[1].ftp_upload.console_done: console_done is not supported yet: \
         flashline does not watch the console during the upload",
        path.display()
    );
    assert!(stderr.contains(&expected), "expected {expected}\nin:\n{stderr}");
    assert!(stderr.contains("help: remove it; `wait_for_restart: true`"), "{stderr}");
    assert!(stdout.contains("invalid (1 errors)") || stdout.contains("invalid"), "{stdout}");

    // `run` loads the profile the same way: refused as bad input before any
    // connection (nothing listens on 127.0.0.1:2121 and nothing is tried).
    let output = run_flashline(&["run", path.to_str().unwrap(), "--json"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["devices"][0]["failure_class"], "input", "{report:#}");
    assert!(report["devices"][0]["steps"].as_array().unwrap().is_empty(), "{report:#}");
    assert!(stdout.contains("console_done is not supported yet"), "{stdout}");

    // Without the key the same profile is fine.
    std::fs::write(&path, WITH_CONSOLE_DONE.replace("      console_done: 'FTP: Flash download complete\\.'\n", ""))
        .unwrap();
    let output = run_flashline(&["profile", "check", path.to_str().unwrap()]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
}
