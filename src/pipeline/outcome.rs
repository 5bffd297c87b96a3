//! What a step's record says, in the words the journal and the report
//! share: how the step ended ([`StepOutcome`]) and the hash of each file it
//! sent ([`ImageHash`]). In one file so that neither imports the other; both
//! re-export these names, where callers found them before. Types only: no
//! reading, writing or deciding.

use serde::{Deserialize, Serialize};

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
