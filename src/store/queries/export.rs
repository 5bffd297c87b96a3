//! Runs as CSV rows, the same for `flashline units export --csv` and the
//! dashboard's download: a header, UTC times, and cells a spreadsheet will
//! not run as formulas.

use super::RunSummary;
use super::when::format_time;

/// The CSV columns, in order.
pub const CSV_HEADER: [&str; 14] = [
    "run_id",
    "mac",
    "serial_number",
    "station",
    "fixture",
    "operator",
    "profile",
    "ip",
    "started",
    "ended",
    "outcome",
    "failure_class",
    "finding",
    "error",
];

/// One run's CSV row.
pub fn csv_record(run: &RunSummary) -> [String; 14] {
    let text = |value: &Option<String>| csv_cell(value.as_deref().unwrap_or(""));
    [
        run.run_id.clone(),
        run.mac.clone(),
        text(&run.serial_number),
        csv_cell(&run.station),
        csv_cell(&run.fixture),
        text(&run.operator),
        csv_cell(&run.profile_name),
        text(&run.ip),
        format_time(run.started_ms),
        run.ended_ms.map(format_time).unwrap_or_default(),
        run.outcome.clone(),
        text(&run.failure_class),
        text(&run.finding),
        text(&run.error),
    ]
}

/// A cell a spreadsheet will not run as a formula: text from a device that
/// starts with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading
/// `'` (OWASP's advice against CSV injection).
pub fn csv_cell(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{text}") } else { text.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_never_start_a_formula() {
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(csv_cell("-1+2"), "'-1+2");
        assert_eq!(csv_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_cell("SN-001"), "SN-001");
    }
}
