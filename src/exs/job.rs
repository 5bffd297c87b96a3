//! The TFTP Manage job: what the profile's `tftp_manage` step and
//! `flashline exs tftp-manage` both run. Turns the step's options into
//! messages, checks a local copy of the configuration file first, sends the
//! messages one at a time and returns every answer decoded.
//!
//! Settings (filenames, server addresses, timestamp) go first, packed into as
//! few messages as the 252-byte ICB limit allows, with Begin Download in the
//! last of them; then each query goes alone, so that no answer can exceed the
//! response limit (Status 0x0D). With a `serve` folder, flashline's own TFTP
//! server ([`crate::tftp`]) runs on `local_server`'s address for as long as
//! the messages take, so the controller fetches its files from the station.
//! It does not print; it reports each exchange (and each file served) to a
//! [`Progress`] as it goes.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::client::{Client, ClientError, ClientEvent, ClientOptions, Connect, TcpConnector};
use super::config_file::{self, ConfigReport, ConfigRules};
use super::frame::Framing;
use super::message_type::TFTP_MANAGE;
use super::tftp_manage::{
    ActionSubtype, DataValue, Filename, MAX_REQUEST_ICB_DATA, RequestIcb, TftpManageError, TftpManageRequest,
    TftpManageResponse, TftpQuery,
};
use super::trace::{self, format_trace};
use crate::failure::{Classify, FailureClass};
use crate::progress::{Progress, ProgressEvent, TaskKind};

/// The kind of every task the job reports: one request and its answer.
const EXCHANGE: TaskKind = TaskKind::ExsExchange;

#[derive(Debug, thiserror::Error)]
pub enum ExsError {
    #[error("{field}: {message}")]
    BadInput { field: &'static str, message: String },
    /// Unreadable (environment), or not a regular file or too large (bad input).
    #[error(transparent)]
    ReadConfig(#[from] crate::input_file::InputFileError),
    #[error("configuration file {} would be refused: {}", path.display(), first_error(report))]
    ConfigFile { path: PathBuf, report: ConfigReport },
    #[error("{purpose}: {source}")]
    Client { purpose: String, source: ClientError },
    #[error("{purpose}: the response to seq {seq} cannot be read: {source}; response: {trace}")]
    Response { purpose: String, seq: u8, source: TftpManageError, trace: String },
    #[error("serving the controller's files: {0}")]
    Serve(#[from] crate::tftp::ServeError),
}

fn first_error(report: &ConfigReport) -> String {
    report.first_error().map_or_else(String::new, ToString::to_string)
}

impl Classify for ExsError {
    fn class(&self) -> FailureClass {
        match self {
            ExsError::BadInput { .. } | ExsError::ConfigFile { .. } => FailureClass::Input,
            ExsError::ReadConfig(error) => error.class(),
            ExsError::Client { source, .. } => source.class(),
            ExsError::Response { .. } => FailureClass::Device,
            ExsError::Serve(source) => source.class(),
        }
    }

    fn help(&self) -> Option<&str> {
        const ARGUMENTS: &str = "check the arguments; nothing was sent";
        const FILE: &str = "check that the file exists and is readable";
        const CONTROLLER: &str = "check the address and port (send to the controller card's own IP), the --checksum rule, and -vv for the frames";
        Some(match self {
            ExsError::BadInput { .. } | ExsError::ConfigFile { .. } => ARGUMENTS,
            ExsError::ReadConfig(error) => match error {
                crate::input_file::InputFileError::Unreadable { .. } => FILE,
                _ => ARGUMENTS,
            },
            ExsError::Client { source: ClientError::Encode { .. }, .. } => ARGUMENTS,
            ExsError::Client { .. } | ExsError::Response { .. } => CONTROLLER,
            // Today's words, which fit a missing --serve folder best; a port
            // that cannot be bound is named in the error itself.
            ExsError::Serve(_) => FILE,
        })
    }
}

/// The step's options, parsed and checked.
#[derive(Debug, Clone)]
pub struct TftpManageJob {
    pub host: String,
    pub port: u16,
    pub node: u8,
    pub framing: Framing,
    pub timeout: Duration,
    /// Data ICBs to send, in order.
    pub settings: Vec<DataValue>,
    pub begin_download: bool,
    pub queries: Vec<ActionSubtype>,
    pub load: Option<u8>,
    /// A local copy of the configuration file to check before sending.
    pub config_file: Option<PathBuf>,
    /// A folder to serve over TFTP while the messages go, and where.
    pub serve: Option<ServeFolder>,
}

/// The `serve` folder of a step and the address its server listens on.
#[derive(Debug, Clone)]
pub struct ServeFolder {
    pub root: PathBuf,
    pub address: SocketAddr,
}

/// A `tftp_manage` option that breaks one of the controller's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleBreak {
    /// The step's field (`local_config`...).
    pub field: &'static str,
    pub message: String,
    pub help: Option<&'static str>,
}

/// A text option of a `tftp_manage` step as the rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValue<'a> {
    /// Not given.
    Unset,
    /// Given, but its value is not known yet: it holds a `${...}` variable
    /// that a device's values fill in later.
    Pending,
    /// Given, with this text.
    Known(&'a str),
}

impl<'a> FieldValue<'a> {
    fn is_set(self) -> bool {
        self != FieldValue::Unset
    }

    fn known(self) -> Option<&'a str> {
        match self {
            FieldValue::Known(text) => Some(text),
            FieldValue::Unset | FieldValue::Pending => None,
        }
    }
}

/// What the controller's rules read of a `tftp_manage` step, as plain
/// values: the profile builds it from its step type, so this module needs
/// no profile types to keep the rules.
#[derive(Debug, Clone, Copy)]
pub struct TftpManageFields<'a> {
    pub host: FieldValue<'a>,
    pub port: u16,
    pub node: u8,
    pub query: &'a [TftpQuery],
    pub load: Option<u8>,
    pub local_config: FieldValue<'a>,
    pub local_server: FieldValue<'a>,
    pub adjacent_config: FieldValue<'a>,
    pub adjacent_server: FieldValue<'a>,
    pub timestamp: FieldValue<'a>,
    pub begin_download: bool,
    /// A `serve` folder is given.
    pub serve: bool,
    pub serve_port: u16,
}

/// The rules of a `tftp_manage` step, kept in this one place: `profile check`
/// applies them to the values written literally in the profile (a value
/// still holding `${...}` is [`FieldValue::Pending`]), and the job applies
/// them to the filled-in values before anything is sent.
pub fn check_rules(step: &TftpManageFields<'_>) -> Vec<RuleBreak> {
    let mut broken = Vec::new();
    let mut add = |field: &'static str, message: String, help: Option<&'static str>| {
        broken.push(RuleBreak { field, message, help });
    };
    if step.port == 0 {
        add("port", "port 0 is not a valid EXS API port".into(), None);
    }
    if step.node == 0xFE {
        add("node", "node 0xFE is the reserved frame marker".into(), None);
    }
    let sets_something = step.local_config.is_set()
        || step.local_server.is_set()
        || step.adjacent_config.is_set()
        || step.adjacent_server.is_set()
        || step.timestamp.is_set();
    if step.query.is_empty() && !sets_something && !step.begin_download {
        add(
            "query",
            "nothing to send: no queries, settings or begin_download".into(),
            Some("add `query: [all]`, or the configuration settings and `begin_download: true`"),
        );
    }
    if step.begin_download && (!step.local_config.is_set() || !step.local_server.is_set()) {
        add(
            "begin_download",
            "begin_download needs local_config and local_server".into(),
            Some("the controller fetches the configuration file from that server over TFTP"),
        );
    }
    if step.serve && !step.local_server.is_set() {
        add(
            "serve",
            "serve needs local_server: the address the TFTP server listens on".into(),
            Some("set local_server to the station's address on the controller's network"),
        );
    }
    if step.serve && step.serve_port == 0 {
        add("serve_port", "port 0 is not a TFTP port a controller can be told".into(), None);
    }
    if step.query.iter().any(|q| matches!(q, TftpQuery::LoadVersion | TftpQuery::LoadFilename)) && step.load.is_none() {
        add("query", "load-version and load-filename queries need `load:` (the load number)".into(), None);
    }
    for (field, value) in [("local_config", step.local_config), ("adjacent_config", step.adjacent_config)] {
        if let Some(text) = value.known()
            && let Err(error) = Filename::new(text)
        {
            add(field, error.to_string(), None);
        }
    }
    for (field, value) in
        [("local_server", step.local_server), ("adjacent_server", step.adjacent_server), ("host", step.host)]
    {
        if let Some(text) = value.known()
            && text.trim().parse::<Ipv4Addr>().is_err()
        {
            add(field, format!("`{text}` is not an IPv4 address"), None);
        }
    }
    // An empty timestamp (an unset optional variable) means "no timestamp".
    if let Some(text) = step.timestamp.known().filter(|t| !t.trim().is_empty())
        && let Err(error) = trace::parse_hex(text)
    {
        add("timestamp", format!("`{text}` is not hex bytes: {error}"), None);
    }
    broken
}

impl TftpManageJob {
    /// The messages to send, each with what it is for.
    pub fn messages(&self) -> Vec<(String, TftpManageRequest)> {
        let mut messages: Vec<(String, TftpManageRequest)> = Vec::new();
        let mut current: Vec<RequestIcb> = Vec::new();
        let size = |icbs: &[RequestIcb]| icbs.iter().map(|i| i.to_icb().encoded_len()).sum::<usize>();
        let mut settings: Vec<RequestIcb> = self.settings.iter().cloned().map(RequestIcb::Data).collect();
        if self.begin_download {
            settings.push(RequestIcb::action(ActionSubtype::BeginDownload));
        }
        for icb in settings {
            // Each ICB is at most 131 bytes, so one always fits a new message.
            if size(&current) + icb.to_icb().encoded_len() > MAX_REQUEST_ICB_DATA {
                messages.push(("settings".into(), TftpManageRequest { icbs: current }));
                current = Vec::new();
            }
            current.push(icb);
        }
        if !current.is_empty() {
            let purpose = if self.begin_download { "settings and begin download" } else { "settings" };
            messages.push((purpose.into(), TftpManageRequest { icbs: current }));
        }
        for subtype in &self.queries {
            let load = if subtype.takes_load() { self.load } else { None };
            messages.push((
                subtype.text().to_string(),
                TftpManageRequest { icbs: vec![RequestIcb::Action { subtype: *subtype, load }] },
            ));
        }
        messages
    }

    /// Checks the local configuration file copy, if one is named.
    pub fn check_config_file(&self) -> Result<Option<ConfigReport>, ExsError> {
        let Some(path) = &self.config_file else {
            return Ok(None);
        };
        let bytes = crate::input_file::read(path, &crate::input_file::EXS_CONFIG)?;
        let has_timestamp = self.settings.iter().any(|s| matches!(s, DataValue::Timestamp(_)));
        let report = config_file::check(&String::from_utf8_lossy(&bytes), &ConfigRules::default(), Some(has_timestamp));
        if report.has_errors() {
            return Err(ExsError::ConfigFile { path: path.clone(), report });
        }
        Ok(Some(report))
    }
}

/// One message and its answer.
#[derive(Debug, Clone, Serialize)]
pub struct ExchangeReport {
    pub purpose: String,
    pub seq: u8,
    pub request: Vec<RequestIcb>,
    /// Both frames as the vendor's socket log prints them.
    pub request_trace: String,
    pub response_trace: String,
    pub response: TftpManageResponse,
}

impl ExchangeReport {
    pub fn succeeded(&self) -> bool {
        self.response.status.is_positive()
    }
}

/// Everything the job did.
#[derive(Debug, Clone, Serialize)]
pub struct TftpManageReport {
    pub host: String,
    pub port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_check: Option<ConfigReport>,
    pub exchanges: Vec<ExchangeReport>,
    /// Polls and alarms answered, frames ignored, reconnections.
    pub events: Vec<ClientEvent>,
    /// What the step's own TFTP server sent (with `serve`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub served: Vec<ServedFile>,
}

/// One transfer of the step's TFTP server.
#[derive(Debug, Clone, Serialize)]
pub struct ServedFile {
    pub filename: String,
    pub peer: String,
    pub bytes: u64,
    /// Why it did not complete (a missing file, a refused name, silence).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

impl TftpManageReport {
    /// Every answer was a positive acknowledgment.
    pub fn succeeded(&self) -> bool {
        self.exchanges.iter().all(ExchangeReport::succeeded)
    }
}

/// Runs the job over TCP to `job.host:job.port`, serving its folder over
/// TFTP meanwhile when it has one.
pub async fn run_tftp_manage(job: &TftpManageJob, progress: &dyn Progress) -> Result<TftpManageReport, ExsError> {
    let connector = TcpConnector { host: job.host.clone(), port: job.port, connect_timeout: job.timeout };
    let Some(folder) = &job.serve else { return run_with(job, connector, progress).await };
    let root = crate::tftp::Root::new(&folder.root)
        .map_err(|source| crate::tftp::ServeError::Root { path: folder.root.clone(), source })?;
    let socket = crate::tftp::bind(folder.address).await?;
    progress.report(ProgressEvent::Note {
        kind: TaskKind::TftpTransfer,
        text: format!("serving {} on udp {} for the controller", folder.root.display(), folder.address),
    });
    // The server's transfers run in their own tasks: their progress comes
    // back through a channel to the caller's (borrowed) progress.
    let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
    let forward = move |event: ProgressEvent| {
        let _ = events.send(event);
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = crate::tftp::serve(socket, crate::tftp::ServerConfig::new(root), Arc::new(forward), async {
        let _ = stopped.await;
    });
    let messages = async {
        let result = run_with(job, connector, progress).await;
        let _ = stop.send(());
        result
    };
    let relay = async {
        // Ends when the server, and with it every sender, is gone.
        while let Some(event) = received.recv().await {
            progress.report(event);
        }
    };
    let (result, served, ()) = tokio::join!(messages, server, relay);
    let mut report = result?;
    report.served = served?
        .into_iter()
        .map(|record| ServedFile {
            filename: record.filename,
            peer: record.peer.to_string(),
            bytes: record.bytes,
            failure: record.failure,
        })
        .collect();
    Ok(report)
}

/// Runs the job over any transport (tests use in-memory streams).
pub async fn run_with<C: Connect>(
    job: &TftpManageJob,
    connector: C,
    progress: &dyn Progress,
) -> Result<TftpManageReport, ExsError> {
    let config_check = job.check_config_file()?;
    // Encode everything before connecting: bad input is found before any
    // byte goes out.
    let mut bodies = Vec::new();
    for (purpose, request) in job.messages() {
        let body = request.encode().map_err(|e| ExsError::BadInput { field: "settings", message: e.to_string() })?;
        bodies.push((purpose, request, body));
    }
    let options = ClientOptions { framing: job.framing, node: job.node, timeout: job.timeout, reconnects: 1 };
    let mut client = Client::new(connector, options);
    let mut report = TftpManageReport {
        host: job.host.clone(),
        port: job.port,
        config_check,
        exchanges: Vec::new(),
        events: Vec::new(),
        served: Vec::new(),
    };
    for (purpose, request, body) in bodies {
        let started = std::time::Instant::now();
        progress.report(ProgressEvent::Started { kind: EXCHANGE, label: purpose.clone(), total: None });
        let exchange = client
            .request(TFTP_MANAGE, body)
            .await
            .map_err(|source| ExsError::Client { purpose: purpose.clone(), source })?;
        let response_trace = format_trace(&exchange.response);
        let response = TftpManageResponse::decode(&exchange.response.body).map_err(|source| ExsError::Response {
            purpose: purpose.clone(),
            seq: exchange.request.seq,
            source,
            trace: response_trace.clone(),
        })?;
        let exchange_report = ExchangeReport {
            purpose,
            seq: exchange.request.seq,
            request: request.icbs,
            request_trace: format_trace(&exchange.request),
            response_trace,
            response,
        };
        let text = format!("{}: {}", exchange_report.purpose, exchange_report.response.status);
        progress.report(ProgressEvent::Note { kind: EXCHANGE, text });
        progress.report(ProgressEvent::Finished { kind: EXCHANGE, done: 1, elapsed: started.elapsed() });
        report.exchanges.push(exchange_report);
    }
    report.events = client.take_events();
    Ok(report)
}
