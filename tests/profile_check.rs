//! `flashline profile check | schema | show` against the example profiles and
//! a catalogue of malformed ones.

use crate::util::child::{Bounded, FLASHLINE};
use crate::util::{repo_root, run_flashline, text};

const EXAMPLES: [&str; 5] = [
    "profiles/digi-connectme-9210.yaml",
    "profiles/csp-matrix-controller.yaml",
    "profiles/sim-netos.yaml",
    "profiles/netos-addp.yaml",
    "profiles/uboot-qemu.yaml",
];

#[test]
fn example_profiles_pass_check() {
    for example in EXAMPLES {
        let path = repo_root().join(example);
        let output = run_flashline(&["profile", "check", path.to_str().unwrap()]);
        let (stdout, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(0), "{example}:\n{stdout}\n{stderr}");
        assert!(stdout.contains(": ok"), "{stdout}");
        assert!(!stderr.contains("error"), "{stderr}");
    }
}

/// A profile that passes, to which each malformed case makes one change.
const VALID: &str = "\
format: 1
name: t
network:
  dhcp: false
  ip: ${ip}
  mask: ${mask}
  gateway: ${gateway}
steps:
  - load_image:
      file: rom.bin
  - configure_network:
      dialog:
        - expect: 'IP address  \\['
          send: ${ip}
      done: Saving
  - wait_for_network:
      ports: [{port: 21}]
  - ftp_upload:
      credentials: [{user: root, password: \"${env:PW}\"}]
      files: [{local: rom.bin}]
";

struct Case {
    name: &'static str,
    /// (text to replace in VALID, replacement); empty `from` replaces all.
    edit: (&'static str, &'static str),
    /// `line:column: error: path: message start` expected on stderr.
    expect: &'static str,
    strict: bool,
}

const fn case(name: &'static str, from: &'static str, to: &'static str, expect: &'static str) -> Case {
    Case { name, edit: (from, to), expect, strict: false }
}

fn malformed_cases() -> Vec<Case> {
    vec![
        case(
            "addp_configure with a MAC that is not one",
            "  - configure_network:\n      dialog:\n        - expect: 'IP address  \\['\n          send: ${ip}\n      done: Saving\n",
            "  - addp_configure:\n      mac: 00:40:9d:zz:00:01\n      password: ${env:PW}\n",
            "12:12: error: steps[1].addp_configure.mac: `00:40:9d:zz:00:01` is not a MAC address",
        ),
        case(
            "addp_configure without its MAC",
            "  - configure_network:\n      dialog:\n        - expect: 'IP address  \\['\n          send: ${ip}\n      done: Saving\n",
            "  - addp_configure:\n      password: ${env:PW}\n",
            "11:5: error: steps[1].addp_configure: missing key `mac`",
        ),
        case(
            "wrong type",
            "name: t\n",
            "name: t\nserial: {baud: fast}\n",
            "3:16: error: serial.baud: expected an integer, found `fast`",
        ),
        case(
            "wrong type for a list",
            "      files: [{local: rom.bin}]",
            "      files: rom.bin",
            "20:14: error: steps[3].ftp_upload.files: expected a list, found `rom.bin`",
        ),
        case(
            "unknown top-level key",
            "name: t\n",
            "name: t\nnmae: u\n",
            "3:1: error: nmae: unknown key `nmae` at the top level\n  help: did you mean `name`?",
        ),
        case(
            "unknown nested key",
            "      ports: [{port: 21}]",
            "      ports: [{port: 21}]\n      timout: 5s",
            "18:7: error: steps[2].wait_for_network.timout: unknown key `timout` in `steps[2].wait_for_network`\n  help: did you mean `timeout`?",
        ),
        case(
            "unknown step kind",
            "  - load_image:",
            "  - load_imag:",
            "9:5: error: steps[0].load_imag: unknown step kind `load_imag`\n  help: did you mean `load_image`?",
        ),
        case(
            "two kinds in one step",
            "      ports: [{port: 21}]\n",
            "      ports: [{port: 21}]\n    tftp_manage: {}\n",
            "16:5: error: steps[2]: a step has exactly one kind, found 2: wait_for_network, tftp_manage",
        ),
        case(
            "bad enum value",
            "name: t\n",
            "name: t\nserial: {parity: oddd}\n",
            "3:18: error: serial.parity: `oddd` is not one of: none, even, odd\n  help: did you mean `odd`?",
        ),
        case(
            "number out of range",
            "{port: 21}",
            "{port: 70000}",
            "17:22: error: steps[2].wait_for_network.ports[0].port: 70000 is out of range (0..=65535)",
        ),
        case(
            "a negative count: a range with only a lower bound",
            "      files: [{local: rom.bin}]\n",
            "      files: [{local: rom.bin}]\n      retries: -1\n",
            "21:16: error: steps[3].ftp_upload.retries: -1 is out of range (at least 0)",
        ),
        case(
            "data bits",
            "name: t\n",
            "name: t\nserial: {data_bits: 9}\n",
            "3:21: error: serial.data_bits: data bits must be 5, 6, 7 or 8, not 9",
        ),
        case(
            "bad duration",
            "      ports: [{port: 21}]",
            "      ports: [{port: 21}]\n      timeout: 10 parsecs",
            "18:16: error: steps[2].wait_for_network.timeout: `10 parsecs` is not a duration",
        ),
        case(
            "bad ip",
            "  ip: ${ip}",
            "  ip: 10.0.0.300",
            "5:7: error: network.ip: `10.0.0.300` is not an IPv4 address",
        ),
        case(
            "non-contiguous mask",
            "  ip: ${ip}\n  mask: ${mask}",
            "  ip: 10.0.0.5\n  mask: 255.0.255.0",
            "6:9: error: network.mask: subnet mask 255.0.255.0 is not contiguous",
        ),
        case(
            "gateway outside the subnet",
            "  ip: ${ip}\n  mask: ${mask}\n  gateway: ${gateway}",
            "  ip: 10.0.0.5\n  mask: 255.255.255.0\n  gateway: 10.0.1.1",
            "7:12: error: network.gateway: gateway 10.0.1.1 is outside the device's subnet 10.0.0.0/24",
        ),
        case(
            "static address without ip",
            "  ip: ${ip}\n",
            "",
            "3:1: error: network: `network.ip` is required for a static address (dhcp: false)",
        ),
        case(
            "missing file",
            "      file: rom.bin",
            "      file: missing.bin",
            "10:13: error: steps[0].load_image.file: file `missing.bin` does not exist",
        ),
        case(
            "missing ${file:} source",
            "\"${env:PW}\"",
            "\"${file:pw.txt}\"",
            "19:44: error: steps[3].ftp_upload.credentials[0].password: file `pw.txt` does not exist",
        ),
        case(
            "undefined variable",
            "          send: ${ip}",
            "          send: ${serial_no}",
            "14:17: error: steps[1].configure_network.dialog[0].send: variable `serial_no` is not defined",
        ),
        case(
            "misspelt variable",
            "  gateway: ${gateway}",
            "  gateway: ${gatway}",
            "7:12: error: network.gateway: variable `gatway` is not defined\n  help: did you mean `${gateway}`?",
        ),
        case(
            "unterminated variable",
            "          send: ${ip}",
            "          send: ${ip",
            "14:17: error: steps[1].configure_network.dialog[0].send: unterminated `${` in `${ip`",
        ),
        case(
            "unknown variable source",
            "\"${env:PW}\"",
            "\"${vault:PW}\"",
            "19:44: error: steps[3].ftp_upload.credentials[0].password: `${vault:PW}`: unknown source `vault`",
        ),
        case(
            "declaring a built-in",
            "name: t\n",
            "name: t\nvariables: {ip: {description: x}}\n",
            "3:13: error: variables.ip: `ip` is a built-in device field and cannot be declared",
        ),
        Case {
            strict: true,
            ..case(
                "clear-text password under --strict",
                "\"${env:PW}\"",
                "Netsilicon",
                "19:44: error: steps[3].ftp_upload.credentials[0].password: password written in clear text",
            )
        },
        case(
            "unknown key at the top level",
            "steps:\n",
            "steps: []\nold_steps:\n",
            "9:1: error: old_steps: unknown key `old_steps` at the top level",
        ),
        case("empty steps", "", "format: 1\nname: t\nsteps:\n", "3:6: error: steps: expected a list, found `~`"),
        case("no steps at all", "", "format: 1\nname: t\nsteps: []\n", "3:1: error: steps: the profile has no steps"),
        case(
            "duplicate key",
            "name: t\n",
            "name: t\nname: u\n",
            "3:1: error: name: duplicate key `name` (first at line 2, column 1)",
        ),
        case(
            "wrong step order",
            "  - wait_for_network:",
            "  - load_image:\n      file: rom.bin\n  - wait_for_network:",
            "16:5: error: steps[2].load_image: `load_image` comes after `configure_network` (steps[1])",
        ),
        case("unsupported format", "format: 1", "format: 2", "1:9: error: format: profile format 2 is not supported"),
        case("missing format", "format: 1\n", "", "1:1: error: missing key `format` at the top level"),
        case(
            "invalid regex",
            "'IP address  \\['",
            "'IP address  ['",
            "13:19: error: steps[1].configure_network.dialog[0].expect: invalid regex `IP address  [`",
        ),
        case(
            "dialog answer in send and candidates",
            "          send: ${ip}\n",
            "          send: ${ip}\n          candidates: [a, b]\n",
            "15:11: error: steps[1].configure_network.dialog[0].candidates: both `send` and `candidates` are set",
        ),
        case(
            "default prompt not a regex",
            "      done: Saving\n",
            "      done: Saving\n      default_prompt: '[x'\n",
            "16:23: error: steps[1].configure_network.default_prompt: invalid regex `[x`",
        ),
        case(
            "keep defaults with a cap of zero",
            "      done: Saving\n",
            "      done: Saving\n      keep_defaults: true\n      max_kept_defaults: 0\n",
            "17:26: error: steps[1].configure_network.max_kept_defaults: keep_defaults is on but no default may be kept",
        ),
        case(
            "nothing to wait for",
            "      ports: [{port: 21}]",
            "      icmp: false",
            "16:5: error: steps[2].wait_for_network: nothing to wait for: icmp is off and no ports are listed",
        ),
        case(
            "port listed twice",
            "{port: 21}]",
            "{port: 21}, {port: 21}]",
            "17:34: error: steps[2].wait_for_network.ports[1].port: port 21 is listed twice",
        ),
        case(
            "zero reply timeout",
            "      files: [{local: rom.bin}]\n",
            "      files: [{local: rom.bin}]\n      reply_timeout: 0s\n",
            "21:22: error: steps[3].ftp_upload.reply_timeout: reply_timeout must be above zero",
        ),
        case(
            "no credentials",
            "[{user: root, password: \"${env:PW}\"}]",
            "[]",
            "19:7: error: steps[3].ftp_upload.credentials: no credentials to log in with",
        ),
        case("YAML syntax error", "name: t", "name: [t", "3:8: error: YAML syntax:"),
        case(
            "two YAML documents",
            "",
            "format: 1\nname: t\nsteps: []\n---\nformat: 1\n",
            "4:1: error: a second YAML document",
        ),
        case("empty file", "", "", "1:1: error: the profile is empty"),
        case(
            "begin download without a server",
            "",
            "format: 1\nname: t\nsteps:\n  - tftp_manage:\n      host: 10.0.0.9\n      local_config: a.cfg\n      begin_download: true\n",
            "7:23: error: steps[0].tftp_manage.begin_download: begin_download needs local_config and local_server",
        ),
        case(
            "serve without local_server",
            "",
            "format: 1\nname: t\nsteps:\n  - tftp_manage:\n      host: 10.0.0.9\n      query: [all]\n      serve: .\n",
            "7:14: error: steps[0].tftp_manage.serve: serve needs local_server",
        ),
        case(
            "serve folder missing",
            "",
            "format: 1\nname: t\nsteps:\n  - tftp_manage:\n      host: 10.0.0.9\n      local_server: 10.0.0.1\n      query: [all]\n      serve: no-such-folder\n",
            "8:14: error: steps[0].tftp_manage.serve: folder `no-such-folder` does not exist",
        ),
        case(
            "address check probes out of range",
            "      done: Saving\n",
            "      done: Saving\n      address_check: {probes: 0}\n",
            "16:31: error: steps[1].configure_network.address_check.probes: 0 is out of range (1..=20)",
        ),
        case(
            "address check intervals the wrong way round",
            "      done: Saving\n",
            "      done: Saving\n      address_check: {interval_min: 2s, interval_max: 1s}\n",
            "16:55: error: steps[1].configure_network.address_check.interval_max: interval_max is shorter than interval_min",
        ),
        case(
            "node is the frame marker",
            "",
            "format: 1\nname: t\nsteps:\n  - tftp_manage:\n      host: 10.0.0.9\n      query: [all]\n      node: 0xFE\n",
            "7:13: error: steps[0].tftp_manage.node: node 0xFE is the reserved frame marker",
        ),
        case(
            "config file name too long",
            "",
            "format: 1\nname: t\nsteps:\n  - tftp_manage:\n      host: 10.0.0.9\n      query: [all]\n      local_config: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.cfg\n",
            "7:21: error: steps[0].tftp_manage.local_config: filename is 140 characters; the controller takes at most 127",
        ),
        case(
            "timestamp not hex",
            "",
            "format: 1\nname: t\nsteps:\n  - tftp_manage:\n      host: 10.0.0.9\n      query: [all]\n      timestamp: 12g4\n",
            "7:18: error: steps[0].tftp_manage.timestamp: `12g4` is not hex bytes",
        ),
        case(
            "load query without a load number",
            "",
            "format: 1\nname: t\nsteps:\n  - tftp_manage:\n      host: 10.0.0.9\n      query: [load-version]\n",
            "6:7: error: steps[0].tftp_manage.query: load-version and load-filename queries need `load:`",
        ),
    ]
}

fn apply(case: &Case) -> String {
    let (from, to) = case.edit;
    if from.is_empty() {
        return to.to_string();
    }
    assert!(VALID.contains(from), "case `{}`: `{from}` is not in the base profile", case.name);
    VALID.replacen(from, to, 1)
}

#[test]
fn base_profile_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rom.bin"), b"x").unwrap();
    let path = dir.path().join("x.yaml");
    std::fs::write(&path, VALID).unwrap();
    let output = run_flashline(&["profile", "check", "--strict", path.to_str().unwrap()]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
}

#[test]
fn malformed_profiles_are_rejected_with_place_and_path() {
    let cases = malformed_cases();
    assert!(cases.len() >= 25, "the issue asks for at least 25 cases");
    let mut failures = Vec::new();
    for case in &cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rom.bin"), b"x").unwrap();
        let path = dir.path().join("x.yaml");
        std::fs::write(&path, apply(case)).unwrap();
        let mut args = vec!["profile", "check", path.to_str().unwrap()];
        if case.strict {
            args.insert(2, "--strict");
        }
        let output = run_flashline(&args);
        let (stdout, stderr) = text(&output);
        let expected = format!("{}:{}", path.display(), case.expect);
        if output.status.code() != Some(2) || !stderr.contains(&expected) || !stdout.contains("invalid") {
            failures.push(format!(
                "case `{}`: exit {:?}\nexpected: {expected}\nstderr:\n{stderr}",
                case.name,
                output.status.code()
            ));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n\n{}", failures.len(), cases.len(), failures.join("\n\n"));
}

#[test]
fn every_problem_is_reported_at_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rom.bin"), b"x").unwrap();
    let path = dir.path().join("many.yaml");
    let profile_text = VALID
        .replace("  ip: ${ip}", "  ip: 10.0.0.300")
        .replace("  gateway: ${gateway}", "  gateway: ${gw}")
        .replace("      file: rom.bin", "      file: gone.bin")
        .replace("[{port: 21}]", "[{port: 21}, {port: 21}]");
    std::fs::write(&path, profile_text).unwrap();
    let output = run_flashline(&["profile", "check", path.to_str().unwrap()]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2));
    for expected in [
        "5:7: error: network.ip: `10.0.0.300` is not an IPv4 address",
        "7:12: error: network.gateway: variable `gw` is not defined",
        "10:13: error: steps[0].load_image.file: file `gone.bin` does not exist",
        "17:34: error: steps[2].wait_for_network.ports[1].port: port 21 is listed twice",
    ] {
        assert!(stderr.contains(expected), "missing `{expected}` in:\n{stderr}");
    }
    assert!(stdout.contains("invalid (4 errors)"), "{stdout}{stderr}");
}

#[test]
fn check_json_output_lists_problems() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "format: 1\nname: t\nsteps: []\n").unwrap();
    let good = repo_root().join(EXAMPLES[1]);
    let output = run_flashline(&["profile", "check", "--json", good.to_str().unwrap(), path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let reports: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    assert_eq!(reports[0]["valid"], true);
    assert_eq!(reports[1]["valid"], false);
    let problem = &reports[1]["problems"][0];
    assert_eq!(problem["severity"], "error");
    assert_eq!(problem["line"], 3);
    assert_eq!(problem["column"], 1);
    assert_eq!(problem["path"], "steps");
}

#[test]
fn unreadable_profile_is_an_environment_error() {
    let output = run_flashline(&["profile", "check", "/nonexistent/flashline/p.yaml"]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("cannot read profile /nonexistent/flashline/p.yaml"), "{stderr}");
}

#[test]
fn non_utf8_profile_is_rejected_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latin1.yaml");
    std::fs::write(&path, b"format: 1\nname: caf\xe9\nsteps: []\n").unwrap();
    let output = run_flashline(&["profile", "check", path.to_str().unwrap()]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("latin1.yaml:2:10: error: the file is not UTF-8 text"), "{stderr}");
}

#[test]
fn schema_validates_the_example_profiles() {
    let output = run_flashline(&["profile", "schema"]);
    assert_eq!(output.status.code(), Some(0));
    let schema: serde_json::Value = serde_json::from_slice(&output.stdout).expect("schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
    for example in EXAMPLES {
        let text = std::fs::read_to_string(repo_root().join(example)).unwrap();
        let value: serde_json::Value = serde_saphyr::from_str(&text).expect("example is YAML");
        let errors: Vec<String> =
            validator.iter_errors(&value).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        assert!(errors.is_empty(), "{example}: {errors:#?}");
    }
    // And it is not a schema that accepts anything.
    let bad: serde_json::Value =
        serde_json::json!({"format": 1, "name": "t", "steps": [{"load_imag": {}}], "colour": 1});
    assert!(!validator.is_valid(&bad));
    let bad_enum: serde_json::Value =
        serde_json::json!({"format": 1, "name": "t", "serial": {"parity": "oddd"}, "steps": []});
    assert!(!validator.is_valid(&bad_enum));
}

#[test]
fn show_fills_in_a_device_from_an_inventory_and_hides_secrets() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rom.bin"), b"x").unwrap();
    std::fs::write(dir.path().join("pw.txt"), b"s3cret-from-file\n").unwrap();
    let profile = dir.path().join("p.yaml");
    let profile_text = VALID
        .replace("\"${env:PW}\"", "\"${file:pw.txt}\"")
        .replace("name: t\n", "name: t\nvariables: {root_pw: {secret: true}}\n")
        .replace("      done: Saving", "        - expect: Enter the root password\n          send: ${root_pw}\n          secret: true\n      done: Saving");
    std::fs::write(&profile, profile_text).unwrap();
    let inventory = dir.path().join("line.csv");
    std::fs::write(
        &inventory,
        "name,profile,port,ip,mask,gateway,root_pw\nunit-01,p.yaml,/dev/ttyUSB0,192.168.1.51,255.255.255.0,192.168.1.1,hunter2\n",
    )
    .unwrap();
    let output = run_flashline(&[
        "profile",
        "show",
        profile.to_str().unwrap(),
        "--inventory",
        inventory.to_str().unwrap(),
        "--device",
        "unit-01",
        "--set",
        "ip=192.168.1.99",
        "--json",
    ]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!stdout.contains("hunter2") && !stdout.contains("s3cret"), "secret leaked:\n{stdout}");
    assert!(!stderr.contains("hunter2") && !stderr.contains("s3cret"), "secret leaked:\n{stderr}");
    let shown: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    // --set overrides the inventory.
    assert_eq!(shown["network"]["ip"], "192.168.1.99");
    assert_eq!(shown["network"]["gateway"], "192.168.1.1");
    let dialog = &shown["steps"][1]["configure_network"]["dialog"];
    assert_eq!(dialog[0]["send"], "192.168.1.99");
    assert_eq!(dialog[1]["send"], "***");
    assert_eq!(shown["steps"][3]["ftp_upload"]["credentials"][0]["password"], "***");

    // YAML output says the same.
    let output = run_flashline(&[
        "profile",
        "show",
        profile.to_str().unwrap(),
        "--inventory",
        inventory.to_str().unwrap(),
        "--device",
        "unit-01",
    ]);
    let (stdout, _) = text(&output);
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout.contains("ip: \"192.168.1.51\""), "{stdout}");
    assert!(!stdout.contains("hunter2"));
}

#[test]
fn show_reports_what_a_device_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rom.bin"), b"x").unwrap();
    let profile = dir.path().join("p.yaml");
    std::fs::write(&profile, VALID).unwrap();
    let output = flashline_env_removed(&[
        "profile",
        "show",
        profile.to_str().unwrap(),
        "--set",
        "ip=10.0.0.5",
        "--set",
        "mask=255.255.255.0",
    ]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("7:12: error: network.gateway: variable `gateway` has no value for this device"),
        "{stderr}"
    );
    assert!(stderr.contains("environment variable `PW` is not set"), "{stderr}");

    // Values that expand into a bad address are caught per device.
    let output = crate::util::flashline()
        .env("PW", "x")
        .args([
            "profile",
            "show",
            profile.to_str().unwrap(),
            "--set",
            "ip=10.0.0.5",
            "--set",
            "mask=255.255.255.0",
            "--set",
            "gateway=10.9.9.9",
        ])
        .output_within(FLASHLINE);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr.contains(
            "gateway 10.9.9.9 is outside the device's subnet 10.0.0.0/24 (after filling in `gateway` from the command line (--set))"
        ),
        "{stderr}"
    );

    let output = run_flashline(&["profile", "show", profile.to_str().unwrap(), "--set", "no-equals"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output).1.contains("`--set no-equals` is not of the form name=value"));
}

fn flashline_env_removed(args: &[&str]) -> std::process::Output {
    crate::util::flashline().env_remove("PW").args(args).output_within(FLASHLINE)
}

#[test]
fn show_names_an_unknown_device() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rom.bin"), b"x").unwrap();
    let profile = dir.path().join("p.yaml");
    std::fs::write(&profile, VALID).unwrap();
    let inventory = dir.path().join("inv.yaml");
    std::fs::write(&inventory, "devices:\n  - {name: unit-01, ip: 10.0.0.5}\n").unwrap();
    let output = run_flashline(&[
        "profile",
        "show",
        profile.to_str().unwrap(),
        "--inventory",
        inventory.to_str().unwrap(),
        "--device",
        "unit-1",
    ]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr.contains("no device `unit-1`"), "{stderr}");
    assert!(stderr.contains("did you mean `unit-01`?"), "{stderr}");
}

#[test]
fn bad_arguments_exit_2_and_help_exits_0() {
    let output = run_flashline(&["profile", "check"]);
    assert_eq!(output.status.code(), Some(2));
    let output = run_flashline(&["--color", "sometimes", "profile", "schema"]);
    assert_eq!(output.status.code(), Some(2));
    let output = run_flashline(&["profile", "--help"]);
    assert_eq!(output.status.code(), Some(0));
    assert!(text(&output).0.contains("check"));
}

#[test]
fn colour_follows_the_flag_and_no_color() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "format: 1\nname: t\nsteps: []\n").unwrap();
    let forced = run_flashline(&["--color", "always", "profile", "check", path.to_str().unwrap()]);
    assert!(text(&forced).1.contains("\x1b["), "--color always colours");
    let never = run_flashline(&["--color", "never", "profile", "check", path.to_str().unwrap()]);
    assert!(!text(&never).1.contains("\x1b["));
    // auto on a pipe: no colour.
    let auto = run_flashline(&["profile", "check", path.to_str().unwrap()]);
    assert!(!text(&auto).1.contains("\x1b["));
}

#[test]
fn show_hides_root_password_candidates() {
    let profile = repo_root().join("profiles/digi-connectme-9210.yaml");
    let image = repo_root().join("README.md").display().to_string();
    let mut args = vec!["profile".to_string(), "show".into(), profile.display().to_string(), "--json".into()];
    let values = ["ip=10.0.0.5", "mask=255.255.255.0", "gateway=10.0.0.1"].map(String::from);
    for pair in values.into_iter().chain([format!("rom_image={image}"), format!("app_image={image}")]) {
        args.extend(["--set".to_string(), pair]);
    }
    let output = run_flashline(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let shown: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    let entry = &shown["steps"][1]["configure_network"]["dialog"][1];
    assert_eq!(entry["candidates"], serde_json::json!(["***", "***"]), "{entry}");
    assert_eq!(entry["send"], "", "no single answer: {entry}");
    assert!(!stdout.contains("Netsilicon"), "{stdout}");
}
