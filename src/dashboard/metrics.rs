//! `/metrics` in the Prometheus text exposition format (version 0.0.4):
//! finished runs per station, fixture and outcome as counters, runs in
//! progress as a gauge, step durations as histograms per step kind, and each
//! station's heartbeat age. Pure: data in, text out.

use std::fmt::Write;

use crate::store::queries::MetricsData;

/// The `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The exposition text for `data`.
pub fn render(data: &MetricsData) -> String {
    let mut out = String::new();
    family(
        &mut out,
        "flashline_runs_total",
        "counter",
        "Runs of the profile that ended, per station, fixture and outcome.",
    );
    for run in data.runs.iter().filter(|run| run.outcome != "running") {
        let labels = [("station", run.station.as_str()), ("fixture", &run.fixture), ("outcome", &run.outcome)];
        sample(&mut out, "flashline_runs_total", &labels, run.count as f64);
    }
    family(&mut out, "flashline_runs_running", "gauge", "Runs in progress now, per station and fixture.");
    for run in data.runs.iter().filter(|run| run.outcome == "running") {
        sample(
            &mut out,
            "flashline_runs_running",
            &[("station", &run.station), ("fixture", &run.fixture)],
            run.count as f64,
        );
    }
    family(&mut out, "flashline_step_duration_seconds", "histogram", "How long each kind of step took.");
    for step in &data.steps {
        for (bound, count) in &step.buckets {
            let le = bound.to_string();
            let labels = [("kind", step.kind.as_str()), ("le", &le)];
            sample(&mut out, "flashline_step_duration_seconds_bucket", &labels, *count as f64);
        }
        let kind = [("kind", step.kind.as_str())];
        let infinite = [("kind", step.kind.as_str()), ("le", "+Inf")];
        sample(&mut out, "flashline_step_duration_seconds_bucket", &infinite, step.count as f64);
        sample(&mut out, "flashline_step_duration_seconds_sum", &kind, step.sum_seconds);
        sample(&mut out, "flashline_step_duration_seconds_count", &kind, step.count as f64);
    }
    family(&mut out, "flashline_station_heartbeat_age_seconds", "gauge", "Time since each station's last heartbeat.");
    for station in &data.stations {
        let age = station.heartbeat_age_ms as f64 / 1000.0;
        sample(&mut out, "flashline_station_heartbeat_age_seconds", &[("station", &station.name)], age);
    }
    family(
        &mut out,
        "flashline_station_up",
        "gauge",
        "1 for a station whose status is running, 0 for stale or stopped.",
    );
    for station in &data.stations {
        let up = f64::from(u8::from(station.status == "running"));
        sample(&mut out, "flashline_station_up", &[("station", &station.name), ("status", &station.status)], up);
    }
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    let labels: Vec<String> = labels.iter().map(|(key, value)| format!("{key}=\"{}\"", escape(value))).collect();
    let _ = writeln!(out, "{name}{{{}}} {value}", labels.join(","));
}

/// A label value as the format wants it: backslash, double quote and line
/// feed escaped (a station name is whatever its file said).
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::queries::{RunCount, StepHistogram};

    #[test]
    fn counters_histograms_and_gauges_in_the_text_format() {
        let data = MetricsData {
            runs: vec![
                RunCount { station: "st-a".into(), fixture: "f1".into(), outcome: "passed".into(), count: 7 },
                RunCount { station: "st-a".into(), fixture: "f1".into(), outcome: "running".into(), count: 1 },
            ],
            steps: vec![StepHistogram {
                kind: "ftp_upload".into(),
                buckets: vec![(0.5, 0), (60.0, 3)],
                count: 4,
                sum_seconds: 190.5,
            }],
            stations: vec![],
        };
        let text = render(&data);
        assert!(text.contains("# TYPE flashline_runs_total counter\n"), "{text}");
        assert!(text.contains("flashline_runs_total{station=\"st-a\",fixture=\"f1\",outcome=\"passed\"} 7\n"));
        assert!(text.contains("flashline_runs_running{station=\"st-a\",fixture=\"f1\"} 1\n"));
        assert!(text.contains("flashline_step_duration_seconds_bucket{kind=\"ftp_upload\",le=\"0.5\"} 0\n"));
        assert!(text.contains("flashline_step_duration_seconds_bucket{kind=\"ftp_upload\",le=\"+Inf\"} 4\n"));
        assert!(text.contains("flashline_step_duration_seconds_sum{kind=\"ftp_upload\"} 190.5\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
