//! Reports of a batch: JSON (a documented schema other tools read), JUnit XML
//! (a testcase per device, for CI and line systems) and a human summary
//! table. Files are written atomically: a reader never sees half a report.
//!
//! JSON schema (format 1):
//!
//! ```text
//! { "format": 1, "started_at": RFC 3339, "finished_at": RFC 3339,
//!   "interrupted": bool,
//!   "summary": {"devices", "passed", "failed", "not_run"},
//!   "devices": [{
//!     "name", "profile", "profile_sha256", "port", "ip", "mac", "serial_number",
//!     "images": [{"file", "sha256", "bytes"}],
//!     "outcome": "passed" | "failed" | "not-run",
//!     "failure_class": "device" | "input" | "environment" | null,
//!     "error": text | null,
//!     "problems": [{"file", "line", "column", "path", "severity", "message",
//!                   "help"}]  (only when the profile or its values are invalid),
//!     "finding": {"code", "port", "summary", "advice"} | null,
//!     "steps": [{"index", "kind", "outcome": "passed" | "failed" | "skipped",
//!                "started_ms", "duration_ms", "retries", "detail",
//!                "inputs_sha256",
//!                "images": [{"file", "sha256", "bytes"}]  (only for steps
//!                           that send files)}]
//!   }] }
//! ```
//!
//! A device's `images` are the files hashed in this run before anything was
//! sent, corrected to the bytes that really went out if a file changed while
//! it was being sent. A step's `images` are what that step wrote: the bytes
//! it sent, or, for a step skipped on resume, what the journal's run sent
//! (a step is only skipped when those equal the files now).

use std::io::Write;
use std::path::Path;

use serde::Serialize;

// Named here too: pipeline/device.rs and the report's callers import it from here.
pub use super::outcome::ImageHash;
use super::outcome::StepOutcome;
use crate::failure::FailureClass;
use crate::net::diagnose::Finding;
use crate::profile::Problem;

#[derive(Debug, Clone, Serialize)]
pub struct BatchReport {
    pub format: u32,
    pub started_at: String,
    pub finished_at: String,
    /// Ctrl-C stopped the batch before every device ran.
    pub interrupted: bool,
    pub summary: Summary,
    pub devices: Vec<DeviceReport>,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Summary {
    pub devices: usize,
    pub passed: usize,
    pub failed: usize,
    pub not_run: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceOutcome {
    Passed,
    Failed,
    NotRun,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeviceReport {
    pub name: String,
    pub profile: String,
    /// SHA-256 of the profile file's bytes as this run read them; `None`
    /// when the profile could not be read or was invalid.
    pub profile_sha256: Option<String>,
    pub port: Option<String>,
    pub ip: Option<String>,
    /// As the device printed it on its console, when it did.
    pub mac: Option<String>,
    pub serial_number: Option<String>,
    pub images: Vec<ImageHash>,
    pub outcome: DeviceOutcome,
    pub failure_class: Option<FailureClass>,
    pub error: Option<String>,
    /// Every problem of an invalid profile or of the device's values, each
    /// placed in its file; `error` then only counts them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
    pub finding: Option<Finding>,
    pub steps: Vec<StepRecord>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    pub index: usize,
    pub kind: String,
    pub outcome: StepOutcome,
    /// Milliseconds from the device's start to the step's.
    pub started_ms: u64,
    pub duration_ms: u64,
    pub retries: u32,
    pub detail: String,
    /// The step's inputs digest (`journal::step_inputs`): the resolved step
    /// and the SHA-256 of each file it sent.
    pub inputs_sha256: String,
    /// The files this step wrote (see the module's note on images).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ImageHash>,
}

impl BatchReport {
    pub fn new(started_at: String, finished_at: String, interrupted: bool, devices: Vec<DeviceReport>) -> BatchReport {
        let mut summary = Summary { devices: devices.len(), ..Summary::default() };
        for device in &devices {
            match device.outcome {
                DeviceOutcome::Passed => summary.passed += 1,
                DeviceOutcome::Failed => summary.failed += 1,
                DeviceOutcome::NotRun => summary.not_run += 1,
            }
        }
        BatchReport { format: 1, started_at, finished_at, interrupted, summary, devices }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report is plain JSON")
    }

    /// JUnit XML: one testsuite, a testcase per device, its steps in the
    /// system-out; a failed device is a `<failure>` with the class, error and
    /// finding; a device not run is `<skipped>`.
    pub fn to_junit(&self) -> String {
        let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let time = |ms: u64| format!("{:.3}", ms as f64 / 1000.0);
        let total_ms: u64 = self.devices.iter().map(device_ms).sum();
        xml.push_str(&format!(
            "<testsuites name=\"flashline\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{}\">\n",
            self.summary.devices,
            self.summary.failed,
            self.summary.not_run,
            time(total_ms)
        ));
        xml.push_str(&format!(
            "  <testsuite name=\"flashline batch\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" timestamp=\"{}\" time=\"{}\">\n",
            self.summary.devices,
            self.summary.failed,
            self.summary.not_run,
            escape(&self.started_at),
            time(total_ms)
        ));
        for device in &self.devices {
            xml.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{}\">\n",
                escape(&device.profile),
                escape(&device.name),
                time(device_ms(device))
            ));
            match device.outcome {
                DeviceOutcome::Failed => {
                    let class = device.failure_class.map_or("device", FailureClass::as_str);
                    let message = device.error.clone().unwrap_or_default();
                    let mut body = message.clone();
                    if let Some(finding) = &device.finding {
                        body.push_str(&format!("\nfinding: {}\n{}", finding.code.as_str(), finding.summary));
                        for advice in &finding.advice {
                            body.push_str(&format!("\n- {advice}"));
                        }
                    }
                    xml.push_str(&format!(
                        "      <failure type=\"{class}\" message=\"{}\">{}</failure>\n",
                        escape(&message),
                        escape(&body)
                    ));
                }
                DeviceOutcome::NotRun => xml.push_str("      <skipped message=\"not run\"/>\n"),
                DeviceOutcome::Passed => {}
            }
            let steps: Vec<String> = device
                .steps
                .iter()
                .map(|s| format!("{} {:?} {} ms {}", s.kind, s.outcome, s.duration_ms, s.detail))
                .collect();
            if !steps.is_empty() {
                xml.push_str(&format!("      <system-out>{}</system-out>\n", escape(&steps.join("\n"))));
            }
            xml.push_str("    </testcase>\n");
        }
        xml.push_str("  </testsuite>\n</testsuites>\n");
        xml
    }

    /// A summary table for people: a line per device.
    pub fn to_table(&self) -> String {
        let mut rows = vec![["device".to_string(), "result".into(), "ip".into(), "time".into(), "detail".into()]];
        for device in &self.devices {
            let result = match device.outcome {
                DeviceOutcome::Passed => "passed".to_string(),
                DeviceOutcome::Failed => {
                    format!("FAILED ({})", device.failure_class.map_or("device", FailureClass::as_str))
                }
                DeviceOutcome::NotRun => "not run".into(),
            };
            let detail = match (&device.finding, &device.error) {
                (Some(finding), _) => format!("{}: {}", finding.code.as_str(), finding.summary),
                (None, Some(error)) => error.clone(),
                (None, None) => format!("{} step(s)", device.steps.len()),
            };
            rows.push([
                device.name.clone(),
                result,
                device.ip.clone().unwrap_or_default(),
                format!("{:.1} s", device_ms(device) as f64 / 1000.0),
                detail,
            ]);
        }
        let widths: Vec<usize> = (0..4).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
        let mut out = String::new();
        for row in &rows {
            for (c, width) in widths.iter().enumerate() {
                out.push_str(&format!("{:<width$}  ", row[c], width = width));
            }
            out.push_str(&row[4]);
            out.push('\n');
        }
        out.push_str(&format!(
            "{} device(s): {} passed, {} failed, {} not run{}\n",
            self.summary.devices,
            self.summary.passed,
            self.summary.failed,
            self.summary.not_run,
            if self.interrupted { " (interrupted)" } else { "" }
        ));
        out
    }
}

fn device_ms(device: &DeviceReport) -> u64 {
    device.steps.iter().map(|s| s.started_ms + s.duration_ms).max().unwrap_or(0)
}

/// XML text and attribute escaping; control characters other than tab and
/// newline are not allowed in XML 1.0 and are dropped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

/// Writes `contents` to `path` so a reader sees the old file or the new one,
/// never a part: a temporary file in the same folder, fsynced, renamed over.
pub fn write_atomically(path: &Path, contents: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "report".into());
    let temporary = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(contents.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        // The rename itself is durable once the folder is synced.
        if let Ok(folder) = std::fs::File::open(dir) {
            let _ = folder.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

/// RFC 3339 (UTC) for a time given in seconds since the Unix epoch.
pub fn rfc3339(seconds: f64) -> String {
    let secs = seconds.max(0.0) as i64;
    let millis = ((seconds.max(0.0) - secs as f64) * 1000.0) as i64;
    let days = secs.div_euclid(86_400);
    let rest = secs.rem_euclid(86_400);
    let (year, month, day) = crate::calendar::civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(name: &str, outcome: DeviceOutcome) -> DeviceReport {
        DeviceReport {
            name: name.into(),
            profile: "sim-netos".into(),
            profile_sha256: None,
            port: Some("/dev/pts/3".into()),
            ip: Some("127.0.0.21".into()),
            mac: Some("00:40:9D:00:00:01".into()),
            serial_number: None,
            images: vec![],
            outcome,
            failure_class: (outcome == DeviceOutcome::Failed).then_some(FailureClass::Device),
            error: (outcome == DeviceOutcome::Failed)
                .then(|| "cannot connect to 127.0.0.21:2121 <refused> & \"so\"".into()),
            problems: Vec::new(),
            finding: None,
            steps: vec![StepRecord {
                index: 0,
                kind: "ftp_upload".into(),
                outcome: StepOutcome::Passed,
                started_ms: 5,
                duration_ms: 1200,
                retries: 0,
                detail: "ok".into(),
                inputs_sha256: "0".repeat(64),
                images: Vec::new(),
            }],
        }
    }

    #[test]
    fn junit_escapes_and_counts() {
        let report = BatchReport::new(
            rfc3339(0.0),
            rfc3339(1.5),
            false,
            vec![
                device("unit-01", DeviceOutcome::Passed),
                device("unit<2>", DeviceOutcome::Failed),
                device("unit-03", DeviceOutcome::NotRun),
            ],
        );
        let xml = report.to_junit();
        assert!(xml.contains("tests=\"3\" failures=\"1\" skipped=\"1\""), "{xml}");
        assert!(xml.contains("name=\"unit&lt;2&gt;\""));
        assert!(xml.contains("message=\"cannot connect to 127.0.0.21:2121 &lt;refused&gt; &amp; &quot;so&quot;\""));
        assert!(xml.contains("<skipped message=\"not run\"/>"));
        assert_eq!(xml.matches("<testcase ").count(), 3);
        assert_eq!(xml.matches("</testcase>").count(), 3);
        let table = report.to_table();
        assert!(table.contains("3 device(s): 1 passed, 1 failed, 1 not run"), "{table}");
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0.0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_219_200.25), "2026-11-21T00:00:00.250Z");
        assert_eq!(rfc3339(951_782_400.0), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn atomic_write_replaces_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        write_atomically(&path, "{\"a\":1}").unwrap();
        write_atomically(&path, "{\"a\":2}").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\":2}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
    }
}
