//! The `ftp_upload` step kind, as the profile writes it: the server, the
//! credential candidates, the files and the session and restart options,
//! with its checks, its templates and the files it sends. How it runs is
//! the pipeline's (`pipeline/steps`), over `ftp::upload`.

use std::collections::BTreeSet;
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{CheckScope, NETWORK_ORDER_HELP, Step, StepKind, TemplateVisitor, check_target};
use crate::ftp::{FtpMode, FtpVerify};
use crate::profile::problem::Problems;
use crate::profile::template::TemplateRole;
use crate::profile::template::{HumanDuration, Secret, Template};

/// `ftp_upload`: upload files to the device's FTP flash server.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FtpUpload {
    /// Defaults to `network.ip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<Template>,
    #[serde(default = "default_ftp_port")]
    pub port: u16,
    /// Credential candidates, tried in order until one logs in.
    pub credentials: Vec<Credential>,
    #[serde(default)]
    pub mode: FtpMode,
    /// Explicit TLS (FTPS, AUTH TLS), data connections protected too.
    #[serde(default, skip_serializing_if = "super::is_false")]
    pub tls: bool,
    /// PEM file of the CA (or the device's own certificate) to trust for
    /// TLS; defaults to the system's CA bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<Template>,
    /// Name the device's certificate must carry; defaults to its address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_name: Option<String>,
    #[serde(default)]
    pub verify: FtpVerify,
    /// The files, uploaded in order.
    pub files: Vec<FtpFile>,
    /// One FTP session per file (NET+OS needs rom.bin and image.bin in separate
    /// sessions, with the device's restart in between).
    #[serde(default = "super::default_true")]
    pub session_per_file: bool,
    /// After each file, wait for the device to go down and come back.
    #[serde(default, skip_serializing_if = "super::is_false")]
    pub wait_for_restart: bool,
    /// How long the restart may take.
    #[serde(default = "default_restart_wait")]
    pub restart_timeout: HumanDuration,
    /// Reserved: a regex the console prints when the flash is written. Not
    /// supported yet (the upload does not watch the console), so `profile
    /// check` refuses it rather than accept a check that never runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_done: Option<String>,
    /// Retries after a dropped connection.
    #[serde(default = "default_ftp_retries")]
    pub retries: u32,
    /// The TCP connection, and each data connection (passive or active).
    #[serde(default = "default_connect_wait")]
    pub connect_timeout: HumanDuration,
    /// The server's greeting, each reply, and a data connection that stops
    /// moving. A server that accepts and never greets fails with `no-banner`.
    #[serde(default = "default_reply_wait")]
    pub reply_timeout: HumanDuration,
}

fn default_ftp_port() -> u16 {
    21
}
fn default_restart_wait() -> HumanDuration {
    HumanDuration::from_secs(90)
}
fn default_ftp_retries() -> u32 {
    3
}
fn default_connect_wait() -> HumanDuration {
    HumanDuration::from_secs(10)
}
fn default_reply_wait() -> HumanDuration {
    HumanDuration::from_secs(15)
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    pub user: Template,
    /// Use `${env:NAME}` or `${file:path}`; clear text is accepted with a warning.
    pub password: Secret,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FtpFile {
    /// Local file, relative to the profile's folder.
    pub local: Template,
    /// Name on the server; defaults to the local file's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
}

impl FtpFile {
    /// The name the file is stored under: `remote`, else the local file's
    /// own name (empty when the path has none, which the check refuses).
    pub fn remote_name(&self) -> String {
        self.remote
            .clone()
            .unwrap_or_else(|| crate::ftp::default_remote_name(Path::new(self.local.as_str())).unwrap_or_default())
    }
}

impl StepKind for FtpUpload {
    /// A network step: after the address is set.
    fn phase(&self) -> Option<u8> {
        Some(2)
    }

    fn order_help(&self) -> &'static str {
        NETWORK_ORDER_HELP
    }

    fn check(&self, scope: &CheckScope<'_>, base: &str, problems: &mut Problems<'_>) {
        check_target(scope, problems, base, self.host.is_some());
        if self.port == 0 {
            problems.error(&format!("{base}.port"), "port 0 is not a valid FTP port");
        }
        if self.credentials.is_empty() {
            problems
                .error(&format!("{base}.credentials"), "no credentials to log in with")
                .help("list candidates in order, e.g. `- {user: root, password: Netsilicon}`");
        }
        if self.files.is_empty() {
            problems.error(&format!("{base}.files"), "no files to upload");
        }
        self.check_remote_names(base, problems);
        if !self.session_per_file && self.files.len() > 1 {
            problems.warning(&format!("{base}.session_per_file"), "several files in one FTP session").help(
                "NET+OS needs rom.bin and image.bin in separate sessions: one session leaves it in serial recovery",
            );
        }
        if !self.tls && (self.tls_ca.is_some() || self.tls_name.is_some()) {
            problems
                .warning(&format!("{base}.tls"), "tls_ca / tls_name are set but tls is off")
                .help("set `tls: true` to use FTPS");
        }
        if !scope.earlier.iter().any(|s| matches!(s, Step::WaitForNetwork(_))) {
            problems
                .warning(base, "no wait_for_network before the upload")
                .help("the device may not be listening yet; add a wait_for_network step for port 21 first");
        }
        // Accepted and ignored would let a profile promise a check
        // that never runs: refused until the upload watches the console.
        if self.console_done.is_some() {
            problems
                .error(
                    &format!("{base}.console_done"),
                    "console_done is not supported yet: flashline does not watch the console during the upload",
                )
                .help(
                    "remove it; `wait_for_restart: true` detects the restart after the flash is written on the network",
                );
        }
        if self.retries > 100 {
            problems.error(&format!("{base}.retries"), format!("{} retries is more than 100", self.retries));
        }
        for (field, value) in [("connect_timeout", &self.connect_timeout), ("reply_timeout", &self.reply_timeout)] {
            if value.is_zero() {
                problems.error(&format!("{base}.{field}"), format!("{field} must be above zero"));
            }
        }
    }

    fn visit(&mut self, base: &str, visit: TemplateVisitor<'_>) {
        super::visit_optional(visit, base, "host", TemplateRole::Text, &mut self.host);
        for (j, c) in self.credentials.iter_mut().enumerate() {
            visit(&format!("{base}.credentials[{j}].user"), TemplateRole::Text, &mut c.user);
            visit(&format!("{base}.credentials[{j}].password"), TemplateRole::Secret, &mut c.password.0);
        }
        for (j, f) in self.files.iter_mut().enumerate() {
            visit(&format!("{base}.files[{j}].local"), TemplateRole::Path, &mut f.local);
        }
        super::visit_optional(visit, base, "tls_ca", TemplateRole::Path, &mut self.tls_ca);
    }

    /// The local files it uploads, in order.
    fn files(&self) -> Vec<String> {
        self.files.iter().map(|f| f.local.to_string()).collect()
    }
}

impl FtpUpload {
    /// Each file lands under a plain name, and no name twice.
    fn check_remote_names(&self, base: &str, problems: &mut Problems<'_>) {
        let mut remotes = BTreeSet::new();
        for (j, file) in self.files.iter().enumerate() {
            let remote = file.remote_name();
            if remote.is_empty() || remote.contains(['/', '\\']) && file.remote.is_some() {
                problems.error(&format!("{base}.files[{j}].remote"), format!("`{remote}` is not a file name"));
            }
            if !remotes.insert(remote.clone()) {
                problems.error(&format!("{base}.files[{j}]"), format!("`{remote}` is uploaded twice"));
            }
        }
    }
}
