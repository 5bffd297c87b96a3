//! `flashline profile check | schema | show` against the example profiles and
//! a catalogue of malformed ones.

use crate::util::{repo_root, run_flashline, text};

const EXAMPLES: [&str; 3] = [
    "profiles/digi-connectme-9210.yaml",
    "profiles/csp-matrix-controller.yaml",
    "profiles/sim-netos.yaml",
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
