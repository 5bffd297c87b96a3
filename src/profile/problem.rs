//! A problem found in a profile or inventory: where it is, what is wrong, and
//! what to do about it. Validation collects these instead of stopping at the
//! first, so a user fixes a file in one pass.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::source::{NodeKind, Position, SourceTree};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub severity: Severity,
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// Field path such as `steps[2].ftp_upload.files[0].local`; empty for the
    /// whole file.
    pub path: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl Problem {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{}:{}:{}: {severity}: ", self.file.display(), self.line, self.column)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// Collects problems for one file, placing each by its field path.
pub struct Problems<'a> {
    file: &'a Path,
    tree: &'a SourceTree,
    pub list: Vec<Problem>,
}

impl std::fmt::Debug for Problems<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Problems").field("file", &self.file).field("list", &self.list).finish_non_exhaustive()
    }
}

impl<'a> Problems<'a> {
    pub fn new(file: &'a Path, tree: &'a SourceTree) -> Self {
        Problems { file, tree, list: Vec::new() }
    }

    pub fn error(&mut self, path: &str, message: impl Into<String>) -> &mut Problem {
        self.push(Severity::Error, path, message)
    }

    pub fn warning(&mut self, path: &str, message: impl Into<String>) -> &mut Problem {
        self.push(Severity::Warning, path, message)
    }

    /// A problem at an explicit position (a key rather than its value).
    pub fn at(&mut self, severity: Severity, at: Position, path: &str, message: impl Into<String>) -> &mut Problem {
        self.list.push(Problem {
            severity,
            file: self.file.to_path_buf(),
            line: at.line,
            column: at.column,
            path: path.to_string(),
            message: message.into(),
            help: None,
        });
        self.list.last_mut().expect("just pushed")
    }

    fn push(&mut self, severity: Severity, path: &str, message: impl Into<String>) -> &mut Problem {
        // A problem with a whole section or list points at its key (where the
        // reader looks); one with a value points at the value.
        let is_collection =
            self.tree.node(path).is_some_and(|n| matches!(n.kind, NodeKind::Mapping(_) | NodeKind::Sequence(_)));
        let at = match self.tree.key_position(path) {
            Some(key_at) if is_collection => key_at,
            _ => self.tree.position(path),
        };
        self.at(severity, at, path, message)
    }

    pub fn has_errors(&self) -> bool {
        self.list.iter().any(Problem::is_error)
    }
}

impl Problem {
    pub fn help(&mut self, help: impl Into<String>) -> &mut Self {
        self.help = Some(help.into());
        self
    }
}

/// The closest candidate to a misspelt `word`, if one is close enough to be a
/// plausible typo.
pub fn did_you_mean<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    let word_lower = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (edit_distance(&word_lower, &c.to_ascii_lowercase()), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edit distance counting a swap of neighbours as one edit (optimal string
/// alignment), the commonest typo in key names; `_` and `-` are treated alike
/// since both spellings are common.
fn edit_distance(a: &str, b: &str) -> usize {
    let norm = |c: char| if c == '-' { '_' } else { c };
    let a: Vec<char> = a.chars().map(norm).collect();
    let b: Vec<char> = b.chars().map(norm).collect();
    // d[i][j]: distance between the first i chars of a and the first j of b.
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_for_typos_only() {
        let keys = ["baud", "data_bits", "parity", "stop_bits", "flow_control"];
        assert_eq!(did_you_mean("bauds", keys), Some("baud"));
        assert_eq!(did_you_mean("stop-bits", keys), Some("stop_bits"));
        assert_eq!(did_you_mean("flowcontrol", keys), Some("flow_control"));
        assert_eq!(did_you_mean("colour", keys), None);
        assert_eq!(did_you_mean("nmae", ["name", "format"]), Some("name"));
    }
}
