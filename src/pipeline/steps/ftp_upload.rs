//! `ftp_upload`: upload, verify, wait for the restart (`ftp`). Files the
//! device confirmed in an earlier run are not sent again; each file it
//! confirms now is recorded as it is, so a kill between files loses nothing
//! already written to the unit's flash.

use std::net::Ipv4Addr;
use std::path::Path;

use super::{StepContext, StepDone, StepError};
use crate::ftp::{self, Credential, TlsSettings, UploadFile, UploadSpec};
use crate::net::ProbeMethod;
use crate::pipeline::journal::StepOutcome;
use crate::pipeline::report::ImageHash;
use crate::profile::FtpUpload;

pub async fn run(step: &FtpUpload, cx: &mut StepContext<'_>) -> Result<StepDone, StepError> {
    let host = cx.target(step.host.as_ref())?;
    // Hashing while streaming tells which bytes really went out.
    let mut spec = UploadSpec { hash: true, ..upload_spec(step, host, cx.base_dir) };
    // The spec's files are the step's, in order: keep those to send, with
    // their names as the step gives them.
    let confirmed = |name: &str| cx.files.confirmed.iter().find(|c| c.file == name);
    let mut names = Vec::new();
    let mut sending = Vec::new();
    let mut kept = Vec::new();
    for (file, upload) in step.files.iter().zip(std::mem::take(&mut spec.files)) {
        let name = file.local.to_string();
        match confirmed(&name) {
            Some(done) => kept.push(done.clone()),
            None => {
                names.push(name);
                sending.push(upload);
            }
        }
    }
    spec.files = sending;
    let mut sent: Vec<ImageHash> = kept.iter().filter_map(|c| c.image.clone()).collect();
    let earlier = kept
        .iter()
        .map(|c| format!("{} confirmed in an earlier run (journal), not sent again", c.file))
        .collect::<Vec<_>>()
        .join(", ");
    if spec.files.is_empty() {
        return Ok(StepDone { outcome: StepOutcome::Passed, detail: earlier, retries: 0, sent });
    }
    let record = cx.files.record;
    let on_confirmed = |index: usize, report: &ftp::FileReport| {
        if let (Some(name), Some(sha256)) = (names.get(index), &report.sha256) {
            record(&ImageHash { file: name.clone(), sha256: sha256.clone(), bytes: report.bytes });
        }
    };
    let uploaded = ftp::upload_with(&spec, cx.progress, &on_confirmed).await?;
    let retries = uploaded.files.iter().map(|f| f.attempts.saturating_sub(1)).sum();
    let earlier = if earlier.is_empty() { earlier } else { format!("{earlier}; ") };
    let detail = format!("as {}: {earlier}{}", uploaded.user, detail(&uploaded));
    sent.extend(names.iter().zip(&uploaded.files).filter_map(|(name, report)| {
        let sha256 = report.sha256.clone()?;
        Some(ImageHash { file: name.clone(), sha256, bytes: report.bytes })
    }));
    Ok(StepDone { outcome: StepOutcome::Passed, detail, retries, sent })
}

/// Each file as it went (bytes, data mode, verification), then the data
/// modes given up, said once: they are the same for every later file.
fn detail(uploaded: &ftp::UploadReport) -> String {
    let files = uploaded
        .files
        .iter()
        .map(|f| {
            let ignored = f
                .pasv_address_ignored
                .as_ref()
                .map(|a| format!("; the PASV reply's address {a} ignored"))
                .unwrap_or_default();
            format!("{} ({} bytes via {}, {}{ignored})", f.remote, f.bytes, f.mode.command(), f.verified)
        })
        .collect::<Vec<_>>()
        .join(", ");
    let given_up = uploaded
        .files
        .iter()
        .map(|f| &f.fallback)
        .max_by_key(|f| f.len())
        .filter(|f| !f.is_empty())
        .map(|f| format!("; given up: {}", f.join("; ")))
        .unwrap_or_default();
    format!("{files}{given_up}")
}

/// The step's login candidates, in order, as the FTP client tries them
/// (`probe` and `diagnose` try the same ones).
pub fn credentials(step: &FtpUpload) -> Vec<Credential> {
    step.credentials
        .iter()
        .map(|c| Credential { user: c.user.to_string(), password: c.password.expose().to_string() })
        .collect()
}

/// The upload a resolved step asks for, aimed at `host` (the step's `host`
/// or the profile's `network.ip`); local paths start from `base_dir`, the
/// profile's folder.
fn upload_spec(step: &FtpUpload, host: Ipv4Addr, base_dir: &Path) -> UploadSpec {
    UploadSpec {
        host,
        port: step.port,
        credentials: credentials(step),
        mode: step.mode,
        verify: step.verify,
        files: step
            .files
            .iter()
            .map(|f| {
                let local = base_dir.join(f.local.as_str());
                UploadFile { local, remote: f.remote_name() }
            })
            .collect(),
        session_per_file: step.session_per_file,
        wait_for_restart: step.wait_for_restart,
        restart_timeout: step.restart_timeout.0,
        retries: step.retries,
        connect_timeout: step.connect_timeout.0,
        reply_timeout: step.reply_timeout.0,
        probe_method: ProbeMethod::Auto,
        tls: step.tls.then(|| TlsSettings {
            ca_file: step.tls_ca.as_ref().map(|ca| base_dir.join(ca.as_str())),
            name: step.tls_name.clone(),
        }),
        hash: false,
    }
}
