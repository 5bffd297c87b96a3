//! The batch journal: one JSON line per finished step, appended and fsynced
//! before the next step starts, so a batch killed at any moment (SIGKILL, a
//! power cut) can resume without flashing a finished unit twice.
//!
//! Each line also says what the step was given: the profile's SHA-256 and the
//! step's inputs digest ([`step_inputs`]: the resolved step and the SHA-256
//! of every image it sends). Resume skips a step only when the journal holds
//! it as done with the same inputs ([`resume_decision`]); a replaced image,
//! a changed address or a line written before digests existed runs it again.
//!
//! A step that sends several files (`ftp_upload`) also writes a line per
//! file the device confirmed (verified, its session closed, the restart
//! waited for when the step waits), marked with `file` and the outcome
//! `confirmed`. Such a line does not make the step done; it lets a resumed run skip that file
//! ([`confirmed_files`]), since on NET+OS each file sent is a flash write.
//!
//! Reading tolerates a torn last line (the kill came mid-write) and reports
//! any other malformed line with its number; it never guesses.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

// Named here too: pipeline/device.rs and the journal's callers import it from here.
use super::outcome::ImageHash;
pub use super::outcome::StepOutcome;
use crate::digest::hex;
use crate::failure::{Classify, FailureClass};
use crate::input_file;
use crate::profile::Step;

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalRecord {
    pub device: String,
    /// Index of the step in the device's profile.
    pub step: usize,
    pub kind: String,
    pub outcome: StepOutcome,
    /// Seconds since the Unix epoch.
    pub at: f64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// SHA-256 of the profile file's bytes. Absent in lines written before
    /// digests existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_sha256: Option<String>,
    /// The step's inputs digest ([`step_inputs`]); absent in old lines, which
    /// resume treats as "inputs unknown" and runs again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs_sha256: Option<String>,
    /// The images the step sent (or, skipped, had sent in the run it
    /// repeats), each with the SHA-256 of the bytes that went out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ImageHash>,
    /// Set on a line for one file of a step (as the step names it): the
    /// device confirmed that file, the step itself is not done. `images`
    /// holds that file's hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot open journal {}: {source}", path.display())]
    Open { path: PathBuf, source: std::io::Error },
    /// Unreadable (environment), or not a regular file or too large (bad input).
    #[error(transparent)]
    File(#[from] crate::input_file::InputFileError),
    #[error("cannot write journal {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("journal {} line {line} is not a journal record: {message}", path.display())]
    Malformed { path: PathBuf, line: usize, message: String },
}

impl Classify for JournalError {
    /// A journal that cannot be opened or written is this machine's problem
    /// (a missing folder, a full disk); one whose lines are not records is a
    /// wrong file given as the journal.
    fn class(&self) -> FailureClass {
        match self {
            JournalError::Open { .. } | JournalError::Write { .. } => FailureClass::Environment,
            JournalError::Malformed { .. } => FailureClass::Input,
            JournalError::File(error) => error.class(),
        }
    }
}

/// An open journal, appending.
pub struct Journal {
    path: PathBuf,
    file: File,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("path", &self.path).finish_non_exhaustive()
    }
}

impl Journal {
    /// Opens (creating) the journal at `path` and returns what it already
    /// holds.
    pub fn open(path: &Path) -> Result<(Journal, Vec<JournalRecord>), JournalError> {
        // Read first: a directory, FIFO or device is refused before the
        // append-open below (which would wait for a FIFO's reader).
        let bytes = read_bytes(path)?;
        let records = parse(&bytes, path)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            // Were the path swapped for a FIFO since, fail instead of waiting.
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(|source| JournalError::Open { path: path.to_path_buf(), source })?;
        // A torn last line (the write a kill interrupted) never counted: cut it
        // off so the next record starts on a line of its own.
        if !bytes.is_empty() && !bytes.ends_with(b"\n") {
            let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            file.set_len(keep as u64).map_err(|source| JournalError::Write { path: path.to_path_buf(), source })?;
        }
        Ok((Journal { path: path.to_path_buf(), file }, records))
    }

    /// Appends `record` and waits until it is on disk.
    pub fn append(&mut self, record: &JournalRecord) -> Result<(), JournalError> {
        let mut line = serde_json::to_vec(record).expect("a record is plain JSON");
        line.push(b'\n');
        self.write_raw(&line)
    }

    fn write_raw(&mut self, bytes: &[u8]) -> Result<(), JournalError> {
        let error = |source| JournalError::Write { path: self.path.clone(), source };
        self.file.write_all(bytes).map_err(error)?;
        self.file.sync_data().map_err(|source| JournalError::Write { path: self.path.clone(), source })
    }
}

/// Reads a journal; a missing file is an empty journal.
pub fn read(path: &Path) -> Result<Vec<JournalRecord>, JournalError> {
    parse(&read_bytes(path)?, path)
}

/// A journal's bytes (none when it does not exist yet), as
/// [`input_file::JOURNAL`] allows: a regular file, capped.
fn read_bytes(path: &Path) -> Result<Vec<u8>, JournalError> {
    match input_file::read(path, &input_file::JOURNAL) {
        Ok(bytes) => Ok(bytes),
        Err(error) if error.is_not_found() => Ok(Vec::new()),
        Err(error) => Err(JournalError::File(error)),
    }
}

/// The records of a journal's bytes (`path` only names it in errors). A torn
/// last line is dropped; any other line that is not a record is an error
/// with its number.
pub fn parse(bytes: &[u8], path: &Path) -> Result<Vec<JournalRecord>, JournalError> {
    let lines: Vec<String> = bytes.split(|b| *b == b'\n').map(|l| String::from_utf8_lossy(l).into_owned()).collect();
    let last = lines.iter().rposition(|l| !l.trim().is_empty());
    let mut records = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<JournalRecord>(line) {
            Ok(record) => records.push(record),
            // The write the kill interrupted: it never counted.
            Err(_) if Some(index) == last => {}
            Err(error) => {
                return Err(JournalError::Malformed {
                    path: path.to_path_buf(),
                    line: index + 1,
                    message: error.to_string(),
                });
            }
        }
    }
    Ok(records)
}

/// A step the journal holds as done, with what it was given.
#[derive(Debug, Clone, PartialEq)]
pub struct DoneStep {
    /// `None`: written by a flashline before input digests (inputs unknown).
    pub inputs_sha256: Option<String>,
    pub images: Vec<ImageHash>,
}

/// What the journal says each device has done: per device, the steps whose
/// latest record passed (or was skipped as done), by step index.
pub fn done_steps(records: &[JournalRecord]) -> BTreeMap<String, BTreeMap<usize, DoneStep>> {
    let mut done: BTreeMap<String, BTreeMap<usize, DoneStep>> = BTreeMap::new();
    for record in records.iter().filter(|r| r.file.is_none()) {
        let steps = done.entry(record.device.clone()).or_default();
        match record.outcome {
            StepOutcome::Passed | StepOutcome::Skipped => {
                let step = DoneStep { inputs_sha256: record.inputs_sha256.clone(), images: record.images.clone() };
                steps.insert(record.step, step);
            }
            // A later failure of a step (a rerun) means it is not done.
            StepOutcome::Failed => {
                steps.remove(&record.step);
            }
            StepOutcome::Confirmed => {}
        }
    }
    done
}

/// A file of a step the device confirmed in an earlier run.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfirmedFile {
    /// As the step names it.
    pub file: String,
    /// The step's inputs digest when it was sent.
    pub inputs_sha256: Option<String>,
    /// The hash of the bytes sent.
    pub image: Option<ImageHash>,
}

/// Per device and step, the files the device confirmed (lines with `file`)
/// that still stand: a later line of an earlier step that ran (passed or
/// failed: it may have changed the unit, a serial load restarts it) clears
/// the files of every step after it. A file line written again replaces the
/// older one.
pub fn confirmed_files(records: &[JournalRecord]) -> BTreeMap<String, BTreeMap<usize, Vec<ConfirmedFile>>> {
    let mut confirmed: BTreeMap<String, BTreeMap<usize, Vec<ConfirmedFile>>> = BTreeMap::new();
    for record in records {
        let steps = confirmed.entry(record.device.clone()).or_default();
        match &record.file {
            Some(file) if record.outcome == StepOutcome::Confirmed => {
                let files = steps.entry(record.step).or_default();
                files.retain(|f| &f.file != file);
                files.push(ConfirmedFile {
                    file: file.clone(),
                    inputs_sha256: record.inputs_sha256.clone(),
                    image: record.images.iter().find(|i| &i.file == file).cloned(),
                });
            }
            Some(_) => {}
            None if matches!(record.outcome, StepOutcome::Passed | StepOutcome::Failed) => {
                steps.retain(|&step, _| step <= record.step);
            }
            None => {}
        }
    }
    confirmed
}

/// The files of `confirmed` that a run with `inputs_sha256` may skip: those
/// confirmed with the same inputs (an old line without a digest never
/// counts).
pub fn files_to_skip(confirmed: Option<&Vec<ConfirmedFile>>, inputs_sha256: &str) -> Vec<ConfirmedFile> {
    confirmed.into_iter().flatten().filter(|f| f.inputs_sha256.as_deref() == Some(inputs_sha256)).cloned().collect()
}

/// The hashes in `images` of the files `step` sends, in the step's order
/// (files not in `images` are left out).
pub fn step_images(step: &Step, images: &[ImageHash]) -> Vec<ImageHash> {
    step.files().iter().filter_map(|file| images.iter().find(|i| &i.file == file).cloned()).collect()
}

/// The step's inputs digest: lowercase hex SHA-256 over the resolved step
/// (its JSON, after variables are filled in: a changed address or file name
/// changes it) and the SHA-256 of every file it sends, taken from `images`
/// by name (a file missing there counts as "not hashed", which never equals
/// a hash). Two runs with the same digest send the same bytes with the same
/// settings, so a journal line with it may stand for this run.
///
/// Secrets never enter the digest (a hash of a short password next to known
/// text could be searched): passwords serialize as `***`, and the answers of
/// dialog entries marked `secret` are replaced by `***` here. Pass a step
/// resolved for display when variables declared `secret` may appear
/// elsewhere in it.
pub fn step_inputs(step: &Step, images: &[ImageHash]) -> String {
    let mut step = step.clone();
    step.mask_secrets();
    let mut hasher = Sha256::new();
    hasher.update(b"flashline step inputs 1\n");
    hasher.update(serde_json::to_vec(&step).expect("a step is plain JSON"));
    for file in step.files() {
        let sha256 = images.iter().find(|i| i.file == file).map_or("not hashed", |i| i.sha256.as_str());
        hasher.update(format!("\n{file}\0{sha256}").as_bytes());
    }
    hex(&hasher.finalize())
}

/// What resume does with one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// Not done before: run it.
    Run,
    /// Done with the same inputs: skip it.
    Skip,
    /// Done, but not with these inputs (or with unknown ones): run it again,
    /// for this reason.
    Again(String),
}

/// Whether a step the journal may hold as `done` runs, given its inputs
/// digest now and the images it would send now. Unknown inputs (a line
/// from an older flashline) never skip.
pub fn resume_decision(done: Option<&DoneStep>, inputs_sha256: &str, images: &[ImageHash]) -> Resume {
    let Some(done) = done else { return Resume::Run };
    let Some(then) = &done.inputs_sha256 else {
        return Resume::Again(
            "the journal's record of this step has no inputs digest (written by an older flashline): \
             inputs unknown, run again"
                .into(),
        );
    };
    if then == inputs_sha256 {
        return Resume::Skip;
    }
    let short = |sha: &str| sha.get(..12).unwrap_or(sha).to_string();
    let changed: Vec<String> = images
        .iter()
        .filter_map(|now| match done.images.iter().find(|i| i.file == now.file) {
            Some(before) if before.sha256 == now.sha256 => None,
            Some(before) => Some(format!(
                "{} changed since the journal's run (sha256 {}… then, {}… now)",
                now.file,
                short(&before.sha256),
                short(&now.sha256)
            )),
            None => Some(format!("{} was not sent in the journal's run", now.file)),
        })
        .collect();
    if changed.is_empty() {
        Resume::Again("the step's settings changed since the journal's run: run again".into())
    } else {
        Resume::Again(format!("{}: sent again", changed.join("; ")))
    }
}

/// Seconds since the Unix epoch, for records.
pub fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(device: &str, step: usize, outcome: StepOutcome) -> JournalRecord {
        JournalRecord {
            device: device.into(),
            step,
            kind: "ftp_upload".into(),
            outcome,
            at: 1.0,
            detail: String::new(),
            profile_sha256: Some("p".repeat(64)),
            inputs_sha256: Some(format!("{step:064}")),
            images: Vec::new(),
            file: None,
        }
    }

    fn file_line(device: &str, step: usize, file: &str) -> JournalRecord {
        JournalRecord {
            file: Some(file.into()),
            images: vec![image(file, 'a')],
            ..record(device, step, StepOutcome::Confirmed)
        }
    }

    #[test]
    fn a_confirmed_file_does_not_make_its_step_done() {
        let records = vec![record("a", 0, StepOutcome::Passed), file_line("a", 1, "rom.bin")];
        let done = done_steps(&records);
        assert_eq!(indices(&done["a"]), vec![0], "step 1 is not done: one file of it is");
        let confirmed = confirmed_files(&records);
        let files = &confirmed["a"][&1];
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].file, "rom.bin");
        assert_eq!(files[0].image, Some(image("rom.bin", 'a')));
        // Same inputs: skipped; other inputs: sent again.
        assert_eq!(files_to_skip(confirmed["a"].get(&1), &format!("{:064}", 1)).len(), 1);
        assert!(files_to_skip(confirmed["a"].get(&1), &"f".repeat(64)).is_empty());
        // The line round-trips.
        let text = serde_json::to_string(&records[1]).unwrap();
        assert!(text.contains("\"file\":\"rom.bin\"") && text.contains("\"outcome\":\"confirmed\""), "{text}");
        assert_eq!(serde_json::from_str::<JournalRecord>(&text).unwrap(), records[1]);
    }

    #[test]
    fn an_earlier_step_that_ran_again_clears_the_confirmed_files_after_it() {
        // rom.bin confirmed; then a rerun loaded the unit over serial again.
        let records = vec![
            file_line("a", 2, "rom.bin"),
            record("a", 0, StepOutcome::Passed),
            record("b", 0, StepOutcome::Passed),
        ];
        assert!(confirmed_files(&records)["a"].is_empty());
        // Skipped earlier steps did not touch the unit; a failure of the
        // step itself (its second file) keeps the first.
        let records = vec![
            file_line("a", 2, "rom.bin"),
            record("a", 0, StepOutcome::Skipped),
            record("a", 2, StepOutcome::Failed),
            file_line("b", 2, "image.bin"),
        ];
        let confirmed = confirmed_files(&records);
        assert_eq!(confirmed["a"][&2].len(), 1);
        assert_eq!(confirmed["b"][&2][0].file, "image.bin", "devices apart");
    }

    fn indices(done: &BTreeMap<usize, DoneStep>) -> Vec<usize> {
        done.keys().copied().collect()
    }

    #[test]
    fn appends_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let (mut journal, old) = Journal::open(&path).unwrap();
        assert!(old.is_empty());
        journal.append(&record("a", 0, StepOutcome::Passed)).unwrap();
        journal.append(&record("a", 1, StepOutcome::Failed)).unwrap();
        drop(journal);
        let (_, records) = Journal::open(&path).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(indices(&done_steps(&records)["a"]), vec![0]);
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_ended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let good = serde_json::to_string(&record("a", 0, StepOutcome::Passed)).unwrap();
        std::fs::write(&path, format!("{good}\n{{\"device\":\"a\",\"st")).unwrap();
        let (mut journal, records) = Journal::open(&path).unwrap();
        assert_eq!(records.len(), 1);
        journal.append(&record("a", 1, StepOutcome::Passed)).unwrap();
        drop(journal);
        assert_eq!(indices(&done_steps(&read(&path).unwrap())["a"]), vec![0, 1]);
    }

    #[test]
    fn a_bad_line_in_the_middle_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let good = serde_json::to_string(&record("a", 0, StepOutcome::Passed)).unwrap();
        std::fs::write(&path, format!("{good}\nnot json\n{good}\n")).unwrap();
        let error = read(&path).unwrap_err();
        assert!(error.to_string().contains("line 2"), "{error}");
    }

    #[test]
    fn a_failure_after_a_pass_undoes_it() {
        let records = vec![
            record("a", 0, StepOutcome::Passed),
            record("a", 0, StepOutcome::Failed),
            record("b", 2, StepOutcome::Skipped),
        ];
        let done = done_steps(&records);
        assert!(done["a"].is_empty());
        assert_eq!(indices(&done["b"]), vec![2]);
    }

    fn image(file: &str, fill: char) -> ImageHash {
        ImageHash { file: file.into(), sha256: fill.to_string().repeat(64), bytes: 10 }
    }

    fn step(json: serde_json::Value) -> Step {
        serde_json::from_value(json).unwrap()
    }

    fn upload(host: &str, password: &str) -> Step {
        step(serde_json::json!({"ftp_upload": {
            "host": host,
            "credentials": [{"user": "root", "password": password}],
            "files": [{"local": "rom.bin"}, {"local": "image.bin"}],
        }}))
    }

    #[test]
    fn a_line_of_the_previous_format_reads_as_inputs_unknown_and_runs_again() {
        // Written by the flashline before input digests: no profile or inputs hash.
        let old = r#"{"device":"unit-01","step":3,"kind":"ftp_upload","outcome":"passed","at":1795219200.5,"detail":"as root: image.bin (100 bytes via EPSV, size matches)"}"#;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        std::fs::write(
            &path,
            format!(
                "{old}
"
            ),
        )
        .unwrap();
        let records = read(&path).unwrap();
        assert_eq!(records[0].inputs_sha256, None);
        assert_eq!(records[0].profile_sha256, None);
        assert!(records[0].images.is_empty());
        let done = done_steps(&records);
        let images = [image("rom.bin", 'a'), image("image.bin", 'b')];
        let inputs = step_inputs(&upload("127.0.0.5", "pw"), &images);
        let decision = resume_decision(done["unit-01"].get(&3), &inputs, &images);
        let Resume::Again(why) = decision else { panic!("an old line must not skip: {decision:?}") };
        assert!(why.contains("inputs unknown"), "{why}");
    }

    #[test]
    fn the_new_fields_round_trip() {
        let mut line = record("a", 1, StepOutcome::Passed);
        line.images = vec![image("image.bin", 'c')];
        let text = serde_json::to_string(&line).unwrap();
        assert!(text.contains("\"inputs_sha256\"") && text.contains("\"profile_sha256\""), "{text}");
        assert_eq!(serde_json::from_str::<JournalRecord>(&text).unwrap(), line);
    }

    #[test]
    fn the_digest_follows_the_images_and_the_resolved_step_but_not_secrets() {
        let images = [image("rom.bin", 'a'), image("image.bin", 'b')];
        let base = step_inputs(&upload("127.0.0.5", "pw"), &images);
        assert_eq!(base.len(), 64);
        assert!(base.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(base, step_inputs(&upload("127.0.0.5", "pw"), &images), "deterministic");
        // A replaced image changes it.
        let replaced = [image("rom.bin", 'a'), image("image.bin", 'd')];
        assert_ne!(base, step_inputs(&upload("127.0.0.5", "pw"), &replaced));
        // A file not hashed is never equal to one hashed.
        assert_ne!(base, step_inputs(&upload("127.0.0.5", "pw"), &images[..1]));
        // Another address (a different variable value) changes it.
        assert_ne!(base, step_inputs(&upload("127.0.0.6", "pw"), &images));
        // Images the step does not send do not matter.
        let more = [image("rom.bin", 'a'), image("image.bin", 'b'), image("other.bin", 'e')];
        assert_eq!(base, step_inputs(&upload("127.0.0.5", "pw"), &more));
        // The password is no input: it never enters the digest.
        assert_eq!(base, step_inputs(&upload("127.0.0.5", "another"), &images));
    }

    #[test]
    fn secret_dialog_answers_stay_out_of_the_digest() {
        let dialog = |password: &str, ip: &str| {
            step(serde_json::json!({"configure_network": {
                "dialog": [
                    {"expect": "root password", "send": password, "secret": true},
                    {"expect": "IP address", "send": ip},
                ],
                "done": "Saving",
            }}))
        };
        let base = step_inputs(&dialog("Netsilicon", "10.0.0.5"), &[]);
        assert_eq!(base, step_inputs(&dialog("other", "10.0.0.5"), &[]));
        assert_ne!(base, step_inputs(&dialog("Netsilicon", "10.0.0.6"), &[]));
    }

    #[test]
    fn resume_skips_only_the_same_inputs_and_names_the_changed_image() {
        let step = upload("127.0.0.5", "pw");
        let then = [image("rom.bin", 'a'), image("image.bin", 'b')];
        let done = DoneStep { inputs_sha256: Some(step_inputs(&step, &then)), images: then.to_vec() };
        assert_eq!(resume_decision(None, &step_inputs(&step, &then), &then), Resume::Run);
        assert_eq!(resume_decision(Some(&done), &step_inputs(&step, &then), &then), Resume::Skip);

        let now = [image("rom.bin", 'a'), image("image.bin", 'f')];
        let Resume::Again(why) = resume_decision(Some(&done), &step_inputs(&step, &now), &now) else {
            panic!("a replaced image must be sent again")
        };
        assert!(why.starts_with("image.bin changed since the journal's run"), "{why}");
        assert!(why.contains("bbbbbbbbbbbb… then, ffffffffffff… now") && why.ends_with("sent again"), "{why}");
        assert!(!why.contains("rom.bin"), "{why}");

        let moved = upload("127.0.0.9", "pw");
        let Resume::Again(why) = resume_decision(Some(&done), &step_inputs(&moved, &then), &then) else {
            panic!("a changed step must run again")
        };
        assert!(why.contains("settings changed"), "{why}");
    }

    proptest::proptest! {
        /// Any bytes given as a journal read as records or a numbered error,
        /// and whatever they hold, resume decides without a panic.
        #[test]
        fn any_journal_bytes_read_and_decide_without_panic(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            kind in ".{0,8}",
            then in proptest::option::of(".{0,70}"),
            file in ".{0,9}",
            sha256 in ".{0,70}",
            inputs in ".{0,70}",
        ) {
            let _ = parse(&bytes, Path::new("j"));
            let mut line = serde_json::json!({"device": "a", "step": 0, "kind": kind, "outcome": "passed", "at": 1});
            if let Some(then) = then {
                line["inputs_sha256"] = then.into();
                line["images"] = serde_json::json!([{"file": file, "sha256": sha256, "bytes": 1}]);
            }
            let records = parse(format!("{line}\n").as_bytes(), Path::new("j")).unwrap();
            let done = done_steps(&records);
            let images = [image("", 'a'), image("image.bin", 'b')];
            for step in done.get("a").into_iter().flat_map(|d| d.values()) {
                let _ = resume_decision(Some(step), &inputs, &images);
            }
        }
    }

    #[test]
    fn the_latest_record_of_a_step_is_the_one_resume_compares() {
        let mut first = record("a", 3, StepOutcome::Passed);
        first.inputs_sha256 = Some("1".repeat(64));
        let mut second = record("a", 3, StepOutcome::Passed);
        second.inputs_sha256 = Some("2".repeat(64));
        let done = done_steps(&[first, second]);
        assert_eq!(done["a"][&3].inputs_sha256.as_deref(), Some("2".repeat(64).as_str()));
    }
}
