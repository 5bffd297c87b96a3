//! The fuzz targets' bodies (`fuzz/src/`) on stable, over the seed corpus
//! kept in the repository (`fuzz/seeds/<target>/`) and a bounded, seeded set
//! of mutations of each seed. This proves that every body still compiles
//! against today's API and that no seed crashes; `scripts/fuzz.sh` runs the
//! same bodies under libFuzzer on nightly.

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod bodies;

use std::path::{Path, PathBuf};

/// Mutations of each seed (on top of the seed itself).
const MUTATIONS: usize = 48;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = fuzz_dir().join("seeds").join(target);
    let mut seeds: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("a folder entry").path();
            let bytes = std::fs::read(&path).expect("a readable seed");
            (path, bytes)
        })
        .collect();
    seeds.sort();
    seeds
}

/// xorshift64: the same mutations on every run, so a failure repeats.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// What libFuzzer's simplest mutators do: flip a bit, set a byte to an
/// interesting value, insert or delete a run, truncate, splice in a copy.
fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        let last = bytes.len().saturating_sub(1);
        match rng.below(6) {
            0 if !bytes.is_empty() => bytes[at.min(last)] ^= 1 << rng.below(8),
            1 if !bytes.is_empty() => {
                bytes[at.min(last)] = [0x00, 0xFF, 0x7F, 0x80, b'\n', b'\r', b':', b'['][rng.below(8)]
            }
            2 => bytes.splice(at..at, std::iter::repeat_n(rng.next() as u8, rng.below(16) + 1)).for_each(drop),
            3 => bytes.drain(at..(at + rng.below(16)).min(bytes.len())).for_each(drop),
            4 => bytes.truncate(at),
            _ => {
                let from = rng.below(bytes.len());
                let copy: Vec<u8> = bytes[from..(from + rng.below(32)).min(bytes.len())].to_vec();
                bytes.splice(at..at, copy).for_each(drop);
            }
        }
    }
    bytes
}

fn run_target(target: &str) {
    let (_, body) = bodies::TARGETS.iter().find(|(name, _)| *name == target).expect("a target of that name");
    let seeds = seeds(target);
    assert!(seeds.len() >= 2, "{target}: {} seed(s) in fuzz/seeds/{target}/", seeds.len());
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ target.len() as u64);
    for (path, seed) in &seeds {
        body(seed);
        for round in 0..MUTATIONS {
            let input = mutate(seed, &mut rng);
            // Named on failure: the input can be saved and replayed with
            // `cargo +nightly fuzz run <target> <file>`.
            let outcome = std::panic::catch_unwind(|| body(&input));
            if let Err(panic) = outcome {
                bodies::remove_scratch();
                let message = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("(no message)");
                panic!("{target}: mutation {round} of {} ({:02x?}) panicked: {message}", path.display(), input);
            }
        }
    }
    bodies::remove_scratch();
}

macro_rules! seed_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run_target(stringify!($name));
            }
        )*

        /// Every target has a test here, a libFuzzer binary that runs its
        /// body by name, and a `[[bin]]` in fuzz/Cargo.toml (which `scripts/fuzz.sh`
        /// runs one by one).
        #[test]
        fn every_fuzz_target_has_a_binary_seeds_and_a_test() {
            let tested = [$(stringify!($name)),*];
            let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
            let mut binaries: Vec<String> = std::fs::read_dir(fuzz_dir().join("fuzz_targets"))
                .expect("fuzz/fuzz_targets")
                .map(|e| e.expect("an entry").path().file_stem().expect("a name").to_string_lossy().into_owned())
                .collect();
            binaries.sort();
            let mut named: Vec<String> = bodies::TARGETS.iter().map(|(name, _)| name.to_string()).collect();
            named.sort();
            assert_eq!(binaries, named, "fuzz_targets/*.rs against TARGETS");
            let mut tested: Vec<String> = tested.iter().map(|name| name.to_string()).collect();
            tested.sort();
            assert_eq!(tested, named, "tests here against TARGETS");
            for name in &named {
                assert!(manifest.contains(&format!("name = \"{name}\"")), "no [[bin]] {name} in fuzz/Cargo.toml");
                let source = std::fs::read_to_string(fuzz_dir().join("fuzz_targets").join(format!("{name}.rs")))
                    .expect("the target's source");
                let call = format!("flashline_fuzz::run(\"{name}\", data)");
                assert!(source.contains(&call), "fuzz_targets/{name}.rs does not call {call}");
            }
        }
    };
}

seed_tests!(
    exs_decoders,
    journal_lines,
    boot_log,
    addp_decoders,
    unit_queries,
    tftp_packets,
    rfc2217_frames,
    ftp_replies,
    probe_packets,
    xmodem,
    console_dialog,
    boot_image,
    profile_yaml,
    station_file,
    inventory,
    serial_names,
    dashboard_requests,
);
