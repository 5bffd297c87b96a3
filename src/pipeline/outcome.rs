//! What a step's record says, in the words the journal and the report
//! share: how the step ended ([`StepOutcome`]) and the hash of each file it
//! sent ([`ImageHash`]); and why a device stopped ([`Failure`]), as its
//! report shows it. In one file so that neither imports the other; both
//! re-export these names, where callers found them before. Types only: no
//! reading, writing or deciding.

use serde::{Deserialize, Serialize};

use crate::failure::{Classify, FailureClass};
use crate::net::diagnose::Finding;
use crate::profile::Problem;

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepOutcome {
    Passed,
    Failed,
    /// Not run: already done (resume) or its result already in place.
    Skipped,
    /// Journal lines only, never a step's outcome: one file of a step that
    /// the device confirmed (the line's `file`). A distinct word, so that a
    /// flashline that does not know these lines stops at one with its line
    /// number instead of taking the step as done.
    Confirmed,
}

impl StepOutcome {
    /// The word reports and live lines use (`passed`, `failed`, `skipped`).
    pub fn as_str(self) -> &'static str {
        match self {
            StepOutcome::Passed => "passed",
            StepOutcome::Failed => "failed",
            StepOutcome::Skipped => "skipped",
            StepOutcome::Confirmed => "confirmed",
        }
    }
}

/// A file and the SHA-256 of its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageHash {
    pub file: String,
    pub sha256: String,
    pub bytes: u64,
}

/// Why a device stopped, classified, as its report shows it.
#[derive(Debug, Clone)]
pub struct Failure {
    pub class: FailureClass,
    pub message: String,
    pub finding: Option<Finding>,
    /// The profile's or the values' problems, each placed in its file.
    pub problems: Vec<Problem>,
}

impl Failure {
    /// Any module's error, with the class it gives itself.
    pub fn of<E: Classify + std::fmt::Display>(error: E) -> Failure {
        Failure { class: error.class(), message: error.to_string(), finding: None, problems: Vec::new() }
    }

    /// The device's values do not fit the profile: each problem placed
    /// where its value came from.
    pub fn values(problems: Vec<Problem>) -> Failure {
        let message = format!("{} problem(s) with this device's values", problems.len());
        Failure { class: FailureClass::Input, message, finding: None, problems }
    }
}
