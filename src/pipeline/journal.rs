//! The batch journal: one JSON line per finished step, appended and fsynced
//! before the next step starts, so a batch killed at any moment (SIGKILL, a
//! power cut) can resume without flashing a finished unit twice.
//!
//! Reading tolerates a torn last line (the kill came mid-write) and reports
//! any other malformed line with its number; it never guesses.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use crate::failure::{Classify, FailureClass};
use serde::{Deserialize, Serialize};

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepOutcome {
    Passed,
    Failed,
    /// Not run: already done (resume) or its result already in place.
    Skipped,
}

impl StepOutcome {
    /// The word reports and live lines use (`passed`, `failed`, `skipped`).
    pub fn as_str(self) -> &'static str {
        match self {
            StepOutcome::Passed => "passed",
            StepOutcome::Failed => "failed",
            StepOutcome::Skipped => "skipped",
        }
    }
}

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
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot open journal {}: {source}", path.display())]
    Open { path: PathBuf, source: std::io::Error },
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
        }
    }
}

/// An open journal, appending.
pub struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    /// Opens (creating) the journal at `path` and returns what it already
    /// holds.
    pub fn open(path: &Path) -> Result<(Journal, Vec<JournalRecord>), JournalError> {
        let records = read(path)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| JournalError::Open { path: path.to_path_buf(), source })?;
        // A torn last line (the write a kill interrupted) never counted: cut it
        // off so the next record starts on a line of its own.
        let bytes = std::fs::read(path).map_err(|source| JournalError::Open { path: path.to_path_buf(), source })?;
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
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(JournalError::Open { path: path.to_path_buf(), source }),
    };
    let lines: Vec<String> = BufReader::new(file)
        .split(b'\n')
        .map(|l| l.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
        .collect::<Result<_, _>>()
        .map_err(|source| JournalError::Open { path: path.to_path_buf(), source })?;
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

/// What the journal says each device has done: the steps that passed.
pub fn passed_steps(records: &[JournalRecord]) -> BTreeMap<String, Vec<usize>> {
    let mut done: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for record in records {
        let steps = done.entry(record.device.clone()).or_default();
        match record.outcome {
            StepOutcome::Passed | StepOutcome::Skipped => {
                if !steps.contains(&record.step) {
                    steps.push(record.step);
                }
            }
            // A later failure of a step (a rerun) means it is not done.
            StepOutcome::Failed => steps.retain(|s| *s != record.step),
        }
    }
    done
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
        }
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
        assert_eq!(passed_steps(&records)["a"], vec![0]);
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
        assert_eq!(passed_steps(&read(&path).unwrap())["a"], vec![0, 1]);
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
        let done = passed_steps(&records);
        assert!(done["a"].is_empty());
        assert_eq!(done["b"], vec![2]);
    }
}
