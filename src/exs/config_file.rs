//! A check of TFTP configuration files before a controller fetches them: the
//! problems a CSP would refuse the file for, each with its line and, where the
//! TFTP Manage page has one, the Status / More Status the controller answers.
//!
//! Confirmed format: `<CARD>_LOAD=<path/filename>:SAVE_LOAD_<TRUE|FALSE>`, then
//! an optional comment starting with `'`; lines in any order; no space before
//! the SAVE_LOAD label; paths of at most 127 characters; SAVE_LOAD_TRUE only for
//! the matrix controller card; one timestamp, in the file or in the message.
//!
//! Assumed (see [`ConfigRules`], the one place): the matrix controller card's
//! label is `EXCPU` and the timestamp line is `TIMESTAMP=<value>` (its syntax
//! was not published). The maximum line length behind More Status 0x0A is not
//! published either, so lines are not checked for it. This module reads text;
//! it does not fetch files.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::status::{MoreStatus, MoreStatusReport, Status, StatusCode};
use super::tftp_manage::MAX_FILENAME;

/// Card labels seen in the vendor's documentation.
pub const KNOWN_CARDS: &[&str] = &[
    "EXCPU", "ONELC", "ST1LC", "SE1LC", "SJ1LC", "DSPONE", "SS7PQLC", "SS7HPLC", "SRC", "ISDN32", "ISDNHPLC",
    "EXNTONE", "DS3", "VOIPMOD", "VOIPMBRD",
];

/// The choices the published text leaves open.
#[derive(Debug, Clone)]
pub struct ConfigRules {
    /// The matrix controller card's label: the only one that may (and must)
    /// be SAVE_LOAD_TRUE. Assumed `EXCPU`.
    pub controller_label: String,
    /// The label of the timestamp line. Assumed `TIMESTAMP`.
    pub timestamp_label: String,
}

impl Default for ConfigRules {
    fn default() -> ConfigRules {
        ConfigRules { controller_label: "EXCPU".into(), timestamp_label: "TIMESTAMP".into() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The controller refuses the file.
    Error,
    /// Suspicious, but not known to be refused.
    Warning,
}

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigProblem {
    /// 1-based; None for a problem of the whole file.
    pub line: Option<usize>,
    pub severity: Severity,
    pub message: String,
    /// What the controller answers to TFTP Manage with this file, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub more_status: Option<MoreStatusReport>,
}

impl ConfigProblem {
    fn error(line: Option<usize>, message: String) -> ConfigProblem {
        ConfigProblem { line, severity: Severity::Error, message, status: None, more_status: None }
    }

    fn warning(line: Option<usize>, message: String) -> ConfigProblem {
        ConfigProblem { severity: Severity::Warning, ..ConfigProblem::error(line, message) }
    }

    /// The TFTP failure a controller reports: Status 0x08 with this reason.
    fn tftp_failure(mut self, reason: MoreStatus) -> ConfigProblem {
        let status = Status::from(StatusCode::TftpFailed);
        self.status = Some(status);
        self.more_status = Some(MoreStatusReport::new(status, reason.code()));
        self
    }

    fn with_status(mut self, status: StatusCode) -> ConfigProblem {
        self.status = Some(status.into());
        self
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: ")?,
            None => f.write_str("file: ")?,
        }
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{severity}: {}", self.message)?;
        match (&self.status, &self.more_status) {
            (Some(status), Some(more)) => {
                write!(f, " (controller answers status {:#06x}, more status {})", status.0, more.code)
            }
            (Some(status), None) => write!(f, " (controller answers status {:#06x})", status.0),
            _ => Ok(()),
        }
    }
}

/// A `<CARD>_LOAD` line that parsed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadLine {
    pub line: usize,
    pub card: String,
    pub path: String,
    pub save_load: bool,
}

/// What the check found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConfigReport {
    pub loads: Vec<LoadLine>,
    /// The timestamp line's value, if the file has one.
    pub timestamp: Option<String>,
    pub problems: Vec<ConfigProblem>,
}

impl ConfigReport {
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(|p| p.severity == Severity::Error)
    }

    /// The first problem a controller would refuse the file for.
    pub fn first_error(&self) -> Option<&ConfigProblem> {
        self.problems.iter().find(|p| p.severity == Severity::Error)
    }
}

/// Checks a configuration file's text. `message_has_timestamp` is whether the
/// TFTP Manage message carries a Timestamp ICB (None: not known yet, as for
/// `exs check-config`).
pub fn check(text: &str, rules: &ConfigRules, message_has_timestamp: Option<bool>) -> ConfigReport {
    let mut report = ConfigReport::default();
    let mut cards: BTreeMap<String, usize> = BTreeMap::new();
    let mut timestamp_lines = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        // The comment rule: everything from `'` on is a comment.
        let content = line.split('\'').next().unwrap_or("");
        if content.trim().is_empty() {
            continue;
        }
        if !line.is_ascii() {
            report.problems.push(ConfigProblem::error(Some(number), "line has a non-ASCII character".into()));
            continue;
        }
        let Some((label, value)) = content.split_once('=') else {
            report.problems.push(
                ConfigProblem::error(Some(number), format!("`{}` has no '='", content.trim()))
                    .tftp_failure(MoreStatus::NoEquals),
            );
            continue;
        };
        let label = label.trim();
        if label == rules.timestamp_label {
            timestamp_lines.push(number);
            if value.trim().is_empty() {
                report.problems.push(
                    ConfigProblem::error(Some(number), format!("{label}= has no value"))
                        .tftp_failure(MoreStatus::TimestampMissingParameter),
                );
            } else if report.timestamp.is_none() {
                report.timestamp = Some(value.trim().to_string());
            }
            continue;
        }
        let Some(card) = label.strip_suffix("_LOAD") else {
            report.problems.push(ConfigProblem::error(
                Some(number),
                format!("unknown label `{label}`: expected <CARD>_LOAD or {}", rules.timestamp_label),
            ));
            continue;
        };
        if let Some(load) = check_load_line(number, card, value.trim_end(), rules, &mut report.problems) {
            if let Some(first) = cards.insert(card.to_string(), number) {
                report.problems.push(ConfigProblem::warning(
                    Some(number),
                    format!("{card} is listed again (first on line {first})"),
                ));
            }
            report.loads.push(load);
        }
    }

    if !cards.contains_key(&rules.controller_label) {
        report.problems.push(
            ConfigProblem::error(
                None,
                format!(
                    "no {}_LOAD line: the matrix controller card must be listed with SAVE_LOAD_TRUE",
                    rules.controller_label
                ),
            )
            .tftp_failure(MoreStatus::ControllerNotSaveLoadTrue),
        );
    }
    if timestamp_lines.len() > 1 {
        let lines: Vec<String> = timestamp_lines.iter().map(usize::to_string).collect();
        report.problems.push(ConfigProblem::error(
            timestamp_lines.get(1).copied(),
            format!("more than one timestamp line (lines {})", lines.join(", ")),
        ));
    }
    let file_has = !timestamp_lines.is_empty();
    match (file_has, message_has_timestamp) {
        (true, Some(true)) => report.problems.push(
            ConfigProblem::error(
                timestamp_lines.first().copied(),
                "the file has a timestamp and so does the TFTP Manage message".into(),
            )
            .with_status(StatusCode::TwoTimestamps),
        ),
        (false, Some(false)) => report.problems.push(
            ConfigProblem::error(None, "no timestamp: neither the file nor the TFTP Manage message has one".into())
                .with_status(StatusCode::NoTimestamp),
        ),
        (false, None) => report.problems.push(
            ConfigProblem::warning(
                None,
                format!(
                    "no {} line: the TFTP Manage message must carry the timestamp (--timestamp)",
                    rules.timestamp_label
                ),
            )
            .with_status(StatusCode::NoTimestamp),
        ),
        _ => {}
    }
    report.problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
    report
}

/// `<path>:SAVE_LOAD_<TRUE|FALSE>` after `<CARD>_LOAD=`.
fn check_load_line(
    number: usize,
    card: &str,
    value: &str,
    rules: &ConfigRules,
    problems: &mut Vec<ConfigProblem>,
) -> Option<LoadLine> {
    let line = Some(number);
    if !KNOWN_CARDS.contains(&card) {
        problems.push(ConfigProblem::warning(
            line,
            format!("card label `{card}` is not one of the known labels ({})", KNOWN_CARDS.join(", ")),
        ));
    }
    let Some(at) = value.rfind("SAVE_LOAD_") else {
        problems.push(ConfigProblem::error(
            line,
            format!("{card}_LOAD has no :SAVE_LOAD_TRUE or :SAVE_LOAD_FALSE after the path"),
        ));
        return None;
    };
    let (before, label) = value.split_at(at);
    let flag = label.trim_end();
    let save_load = match flag {
        "SAVE_LOAD_TRUE" => true,
        "SAVE_LOAD_FALSE" => false,
        _ if flag.starts_with("SAVE_LOAD_TRUE") || flag.starts_with("SAVE_LOAD_FALSE") => {
            problems.push(ConfigProblem::error(
                line,
                format!("text after the SAVE_LOAD label (`{flag}`): a comment must start with '"),
            ));
            return None;
        }
        _ => {
            problems
                .push(ConfigProblem::error(line, format!("`{flag}` is neither SAVE_LOAD_TRUE nor SAVE_LOAD_FALSE")));
            return None;
        }
    };
    let Some(path) = before.strip_suffix(':') else {
        let message = if before.trim_end().ends_with(':') {
            "space before the SAVE_LOAD label (none is allowed)".to_string()
        } else {
            "no ':' between the path and the SAVE_LOAD label".to_string()
        };
        problems.push(ConfigProblem::error(line, message));
        return None;
    };
    if path.trim().is_empty() {
        problems.push(
            ConfigProblem::error(line, format!("{card}_LOAD has no filename")).tftp_failure(MoreStatus::NoFilename),
        );
    } else if path.len() > MAX_FILENAME {
        problems.push(
            ConfigProblem::error(line, format!("the path is {} characters; at most {MAX_FILENAME}", path.len()))
                .tftp_failure(MoreStatus::LoadFilenameTooLong),
        );
    }
    if card == rules.controller_label && !save_load {
        problems.push(
            ConfigProblem::error(line, format!("the matrix controller card {card} must be SAVE_LOAD_TRUE"))
                .tftp_failure(MoreStatus::ControllerNotSaveLoadTrue),
        );
    } else if card != rules.controller_label && save_load {
        problems.push(ConfigProblem::error(
            line,
            format!("SAVE_LOAD_TRUE is only valid for the matrix controller card ({})", rules.controller_label),
        ));
    }
    Some(LoadLine { line: number, card: card.to_string(), path: path.to_string(), save_load })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_default(text: &str) -> ConfigReport {
        check(text, &ConfigRules::default(), None)
    }

    fn codes(report: &ConfigReport) -> Vec<(Option<usize>, Option<u16>, Option<u8>)> {
        report
            .problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .map(|p| (p.line, p.status.map(|s| s.0), p.more_status.as_ref().map(|m| m.value)))
            .collect()
    }

    const GOOD: &str = "' CSP load\r\nEXCPU_LOAD=loads/excpu.bin:SAVE_LOAD_TRUE ' the controller\nONELC_LOAD=loads/onelc.bin:SAVE_LOAD_FALSE\n\nTIMESTAMP=20240101\n";

    #[test]
    fn a_good_file_passes() {
        let report = check_default(GOOD);
        assert_eq!(report.problems, vec![]);
        assert_eq!(report.loads.len(), 2);
        assert_eq!(report.loads[0].path, "loads/excpu.bin");
        assert_eq!(report.timestamp.as_deref(), Some("20240101"));
        assert!(check(GOOD, &ConfigRules::default(), Some(false)).problems.is_empty());
    }

    #[test]
    fn each_rule_with_line_and_code() {
        let long = "p".repeat(128);
        let text = format!(
            "EXCPU_LOAD=a.bin:SAVE_LOAD_FALSE\n\
             ONELC_LOAD loads/onelc.bin\n\
             ST1LC_LOAD={long}:SAVE_LOAD_FALSE\n\
             SE1LC_LOAD=se.bin:SAVE_LOAD_TRUE\n\
             SJ1LC_LOAD=sj.bin: SAVE_LOAD_FALSE\n\
             DS3_LOAD=ds3.bin:SAVE_LOAD_FALSE junk\n\
             TIMESTAMP=\n\
             FOO=bar\n\
             BOGUS_LOAD=x.bin:SAVE_LOAD_FALSE\n\
             SRC_LOAD=:SAVE_LOAD_FALSE\n\
             TIMESTAMP=2\n"
        );
        let report = check_default(&text);
        assert_eq!(
            codes(&report),
            vec![
                (Some(1), Some(0x08), Some(0x10)),
                (Some(2), Some(0x08), Some(0x0C)),
                (Some(3), Some(0x08), Some(0x0F)),
                (Some(4), None, None),
                (Some(5), None, None),
                (Some(6), None, None),
                (Some(7), Some(0x08), Some(0x0E)),
                (Some(8), None, None),
                (Some(10), Some(0x08), Some(0x08)),
                (Some(11), None, None),
            ],
            "{:#?}",
            report.problems
        );
        let messages: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
        assert!(messages[0].starts_with("line 1: error: the matrix controller card EXCPU must be SAVE_LOAD_TRUE"));
        assert!(messages[3].contains("only valid for the matrix controller"));
        assert!(messages[4].contains("space before the SAVE_LOAD label"));
        assert!(messages[5].contains("a comment must start with '"));
        assert!(messages.iter().any(|m| m.starts_with("line 9: warning: card label `BOGUS`")));
        assert!(messages.iter().any(|m| m.contains("more than one timestamp line (lines 7, 11)")));
    }

    #[test]
    fn timestamp_in_file_and_message() {
        let report = check(GOOD, &ConfigRules::default(), Some(true));
        assert_eq!(codes(&report), vec![(Some(5), Some(0x01), None)]);
        let no_ts = "EXCPU_LOAD=a.bin:SAVE_LOAD_TRUE\n";
        assert_eq!(codes(&check(no_ts, &ConfigRules::default(), Some(false))), vec![(None, Some(0x00), None)]);
        let report = check_default(no_ts);
        assert!(!report.has_errors());
        assert_eq!(report.problems[0].severity, Severity::Warning);
        assert_eq!(codes(&check(no_ts, &ConfigRules::default(), Some(true))), vec![]);
    }

    #[test]
    fn missing_controller_and_odd_input() {
        let report = check_default("ONELC_LOAD=a.bin:SAVE_LOAD_FALSE\nTIMESTAMP=1\n");
        assert_eq!(codes(&report), vec![(None, Some(0x08), Some(0x10))]);
        let report = check_default("EXCPU_LOAD=é:SAVE_LOAD_TRUE\n");
        assert_eq!(report.first_error().unwrap().line, Some(1));
        // Path with a drive letter keeps its own ':'.
        let report = check_default("EXCPU_LOAD=c:\\tftpboot\\l.bin:SAVE_LOAD_TRUE\nTIMESTAMP=1");
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.loads[0].path, "c:\\tftpboot\\l.bin");
    }
}
