//! `flashline exs tftp-manage | decode | check-config`: the EXS API TFTP
//! Manage job (the same code the profile's `tftp_manage` step runs), a
//! field-by-field decoder for pasted socket logs, and the TFTP configuration
//! file check.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

use super::output::terminal_safe;
use super::progress_view::TaskView;
use super::{CommandResult, Context, Outcome};
use crate::exs::config_file::{self, ConfigRules, Severity};
use crate::exs::frame::{Form, Frame};
use crate::exs::job::{ExchangeReport, ExsError};
use crate::exs::message_type::{self, ALARM, TFTP_MANAGE};
use crate::exs::tftp_manage::{RequestIcb, ResponseIcb, ResponseLayout, TftpManageRequest, TftpManageResponse};
use crate::exs::{ClientEvent, trace};
use crate::profile::{ExsChecksum, ExsMarkerRule, HumanDuration, Template, TftpManage, TftpQuery};

#[derive(Debug, Subcommand)]
pub enum ExsCommand {
    /// Send TFTP Manage (0x003A) to a CSP matrix controller: set the TFTP
    /// configuration, begin a download, query; prints every answer decoded.
    ///
    /// Exit code 0 when every answer is a positive acknowledgment, 1 when the
    /// controller refused or did not answer, 2 for bad arguments, 3 when a
    /// local file cannot be read.
    TftpManage(Box<TftpManageArgs>),
    /// Decode EXS API frames or vendor trace lines (`[00 09] [00 3A] 00 00 FF
    /// 01 01 01 00`) field by field. A leading FE means a wire capture with
    /// marker and checksum; otherwise the text is a trace (neither).
    Decode(DecodeArgs),
    /// Check a TFTP configuration file as a controller would: every problem
    /// with its line and the status a controller would answer.
    ///
    /// Exit code 0 when the file would be accepted, 2 when not, 3 when it
    /// cannot be read.
    CheckConfig(CheckConfigArgs),
}

#[derive(Debug, Args)]
pub struct TftpManageArgs {
    /// The controller card's IP address (send to the STANDBY card to change software).
    #[arg(long)]
    host: String,
    /// EXS API host port (assumed 12610 = 0x3142).
    #[arg(long, default_value_t = crate::exs::DEFAULT_PORT)]
    port: u16,
    /// Logical node ID (decimal or 0x..).
    #[arg(long, default_value = "0xFF", value_parser = parse_u8)]
    node: u8,
    /// Queries, comma-separated: all, local-config, local-server, adjacent-config,
    /// adjacent-server, timestamp, save-options, load-version, load-filename.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "QUERY")]
    query: Vec<TftpQuery>,
    /// Load number for the load-version and load-filename queries.
    #[arg(long, value_parser = parse_u8)]
    load: Option<u8>,
    /// Local matrix configuration file name on the TFTP server (at most 127 characters).
    #[arg(long, value_name = "PATH")]
    local_config: Option<String>,
    /// Local matrix TFTP server IPv4 address.
    #[arg(long, value_name = "IP")]
    local_server: Option<String>,
    /// Adjacent (standby) matrix configuration file name on the TFTP server (at most 127 characters).
    #[arg(long, value_name = "PATH")]
    adjacent_config: Option<String>,
    /// Adjacent (standby) matrix TFTP server IPv4 address.
    #[arg(long, value_name = "IP")]
    adjacent_server: Option<String>,
    /// Load timestamp as hex bytes, when the configuration file has none.
    #[arg(long, value_name = "HEX")]
    timestamp: Option<String>,
    /// Send the Begin Download ICB (needs --local-config and --local-server).
    #[arg(long)]
    begin_download: bool,
    /// A local copy of the configuration file, checked before anything is sent.
    #[arg(long, value_name = "FILE")]
    config_file: Option<PathBuf>,
    /// Serve this folder over TFTP on --local-server's address while the messages go (the controller fetches from flashline).
    #[arg(long, value_name = "DIR", requires = "local_server")]
    serve: Option<PathBuf>,
    /// The UDP port --serve listens on (controllers ask port 69, which needs root or CAP_NET_BIND_SERVICE).
    #[arg(long, default_value_t = 69, value_name = "PORT", requires = "serve")]
    serve_port: u16,
    /// Frame checksum rule (not published by the vendor).
    #[arg(long, value_enum, default_value_t = ExsChecksum::Sum8Twos)]
    checksum: ExsChecksum,
    /// What to do when a field would carry the frame marker 0xFE.
    #[arg(long, value_enum, default_value_t = ExsMarkerRule::Refuse)]
    marker_rule: ExsMarkerRule,
    /// How long to wait for each answer, e.g. 500ms, 10s.
    #[arg(long, default_value = "10s")]
    timeout: HumanDuration,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// Hex bytes; several arguments are joined (quote a trace line or not).
    #[arg(required = true, value_name = "HEX")]
    hex: Vec<String>,
    /// Checksum rule to verify wire captures with.
    #[arg(long, value_enum, default_value_t = ExsChecksum::Sum8Twos)]
    checksum: ExsChecksum,
    /// Who sent the frames; without it TFTP Manage bodies are read both ways.
    #[arg(long, value_enum)]
    from: Option<Sender>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Sender {
    Host,
    Controller,
}

#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// The configuration file.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// The TFTP Manage message will carry a Timestamp ICB (a timestamp in the
    /// file is then refused); without it a file without one is only warned about.
    #[arg(long, conflicts_with = "no_message_timestamp")]
    message_timestamp: bool,
    /// The TFTP Manage message will carry no timestamp (the file needs one).
    #[arg(long)]
    no_message_timestamp: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn parse_u8(text: &str) -> Result<u8, String> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u8::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.map_err(|_| format!("`{text}` is not a number from 0 to 255"))
}

pub fn run(command: ExsCommand, context: &Context) -> CommandResult {
    match command {
        ExsCommand::TftpManage(args) => tftp_manage(*args, context),
        ExsCommand::Decode(args) => decode(args, context),
        ExsCommand::CheckConfig(args) => check_config(args, context),
    }
}

fn tftp_manage(args: TftpManageArgs, context: &Context) -> CommandResult {
    let context = &context.for_json(args.json);
    let template = |value: Option<String>| value.map(Template);
    // The CLI builds the profile step and runs it like the pipeline does.
    let step = TftpManage {
        host: Some(Template(args.host.clone())),
        port: args.port,
        node: args.node,
        checksum: args.checksum,
        marker_rule: args.marker_rule,
        query: args.query.clone(),
        load: args.load,
        local_config: template(args.local_config),
        local_server: template(args.local_server),
        adjacent_config: template(args.adjacent_config),
        adjacent_server: template(args.adjacent_server),
        timestamp: template(args.timestamp),
        begin_download: args.begin_download,
        config_file: args.config_file.map(|p| Template(p.to_string_lossy().into_owned())),
        timeout: args.timeout,
        serve: args.serve.map(|p| Template(p.to_string_lossy().into_owned())),
        serve_port: args.serve_port,
    };
    let job = match crate::pipeline::steps::tftp_manage::job(&step, None, Path::new(".")) {
        Ok(job) => job,
        Err(error) => return Err(context.fail_with(&error)),
    };
    let runtime = context.runtime()?;
    let json = args.json;
    let view = TaskView::new(json || context.quiet);
    let result = runtime.block_on(crate::exs::run_tftp_manage(&job, &view));
    match result {
        Ok(report) => {
            let outcome = if report.succeeded() { Outcome::Success } else { Outcome::DeviceFailure };
            if json {
                context.print_json(&report);
                return Ok(outcome);
            }
            for exchange in &report.exchanges {
                print_exchange(exchange, &context.out);
            }
            if let Some(check) = &report.config_check {
                for problem in &check.problems {
                    println!("{}: {problem}", context.out.warning("config file"));
                }
            }
            for event in &report.events {
                println!("{}", context.out.dim(&describe_event(event)));
            }
            let refused = report.exchanges.iter().filter(|e| !e.succeeded()).count();
            let total = report.exchanges.len();
            if refused == 0 {
                println!(
                    "{}: {total} answers from {}:{}, all positive",
                    context.out.good("ok"),
                    report.host,
                    report.port
                );
            } else {
                println!(
                    "{}: {refused} of {total} answers from {}:{} were not a positive acknowledgment",
                    context.out.error("refused"),
                    report.host,
                    report.port
                );
            }
            Ok(outcome)
        }
        Err(error) => Err(context.fail_with(&error)),
    }
}

fn describe_event(event: &ClientEvent) -> String {
    match event {
        ClientEvent::Answered { message, seq, .. } => format!("answered {message} seq {seq} from the controller"),
        ClientEvent::Ignored { message, seq, trace } => {
            format!("ignored {message} seq {seq} (answers nothing outstanding): {trace}")
        }
        ClientEvent::Reconnected { reason } => format!("reconnected after: {reason}"),
    }
}

fn print_exchange(exchange: &ExchangeReport, out: &super::Painter) {
    let response = &exchange.response;
    let status = format!("{}", response.status);
    let status = if response.status.is_positive() { out.good(&status) } else { out.error(&status) };
    println!("{} seq {}: {}", out.field("TFTP Manage"), exchange.seq, exchange.purpose);
    println!("  status       {status}");
    match &response.more_status {
        Some(more) => println!("  more status  {more}"),
        None => println!("  more status  (none in this layout)"),
    }
    if response.layout != ResponseLayout::Documented {
        println!("  layout       {}", response.layout.text());
    }
    print_response_icbs(response, "  ");
    let queried = exchange
        .request
        .iter()
        .any(|icb| matches!(icb, RequestIcb::Action { subtype, .. } if subtype.answer().is_some()));
    if queried && response.status.is_positive() && response.values().next().is_none() {
        println!("  (no value: not set on the controller)");
    }
}

fn print_response_icbs(response: &TftpManageResponse, indent: &str) {
    for icb in &response.icbs {
        match icb {
            ResponseIcb::Value { value, in_action_icb } => {
                let note = if *in_action_icb { " (in the query's Action ICB)" } else { "" };
                println!("{indent}{}: {value}{note}", value.subtype().text());
            }
            ResponseIcb::Other { icb, problem } => {
                print!(
                    "{indent}ICB type {:#04x} subtype {:#04x} data {}",
                    icb.kind,
                    icb.subtype,
                    if icb.data.is_empty() { "(none)".to_string() } else { trace::hex(&icb.data) }
                );
                match problem {
                    Some(problem) => println!(" ({problem})"),
                    None => println!(),
                }
            }
        }
    }
}

#[derive(Serialize)]
struct DecodedFrame {
    form: &'static str,
    length: usize,
    msg_type: String,
    message: Option<&'static str>,
    reserved: u8,
    seq: u8,
    node: String,
    body: String,
    #[serde(skip)]
    raw_body: Vec<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    checksum: Option<ChecksumReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request: Option<Result<TftpManageRequest, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<Result<TftpManageResponse, String>>,
    trace: String,
}

#[derive(Serialize)]
struct ChecksumReport {
    received: String,
    expected: Option<String>,
    ok: bool,
}

fn decode(args: DecodeArgs, context: &Context) -> CommandResult {
    let context = &context.for_json(args.json);
    let text = args.hex.join(" ");
    let bytes = trace::parse_hex(&text).map_err(|error| context.fail_with(&error))?;
    let (form, frames) = trace::decode_checked(&bytes, args.checksum).map_err(|error| context.fail_with(&error))?;
    let decoded: Vec<DecodedFrame> = frames
        .iter()
        .map(|(frame, check)| {
            let checksum = check.map(|c| ChecksumReport {
                received: format!("{:#04x}", c.received),
                expected: c.expected.map(|e| format!("{e:#04x}")),
                ok: c.ok(),
            });
            describe_frame(frame, form, checksum, args.from)
        })
        .collect();
    let bad_checksum = decoded.iter().any(|d| d.checksum.as_ref().is_some_and(|c| !c.ok));
    if args.json {
        context.print_json(&decoded);
    } else {
        for (i, frame) in decoded.iter().enumerate() {
            print_decoded(i + 1, frame, context);
        }
    }
    Ok(if bad_checksum { Outcome::BadInput } else { Outcome::Success })
}

fn describe_frame(frame: &Frame, form: Form, checksum: Option<ChecksumReport>, from: Option<Sender>) -> DecodedFrame {
    let tftp = frame.msg_type == TFTP_MANAGE;
    let request = (tftp && from != Some(Sender::Controller))
        .then(|| TftpManageRequest::decode(&frame.body).map_err(|e| e.to_string()));
    let response = (tftp && from != Some(Sender::Host))
        .then(|| TftpManageResponse::decode(&frame.body).map_err(|e| e.to_string()));
    DecodedFrame {
        form: match form {
            Form::Wire => "wire",
            Form::Trace => "trace",
        },
        length: frame.length(),
        msg_type: format!("{:#06x}", frame.msg_type),
        message: message_type::name(frame.msg_type),
        reserved: frame.reserved,
        seq: frame.seq,
        node: format!("{:#04x}", frame.node),
        body: trace::hex(&frame.body),
        raw_body: frame.body.clone(),
        checksum,
        request,
        response,
        trace: trace::format_trace(frame),
    }
}

fn print_decoded(index: usize, frame: &DecodedFrame, context: &Context) {
    let out = &context.out;
    let form = if frame.form == "wire" { "wire frame: marker and checksum" } else { "trace: no marker, no checksum" };
    println!("frame {index} ({form})");
    println!("  {}        {:#06x} ({} bytes counted)", out.field("length"), frame.length, frame.length);
    println!("  {}  {} {}", out.field("message type"), frame.msg_type, frame.message.unwrap_or("(unknown type)"));
    println!("  {}      {:#04x}", out.field("reserved"), frame.reserved);
    println!("  {}      {}", out.field("sequence"), frame.seq);
    println!("  {}  {}", out.field("logical node"), frame.node);
    println!("  {}          {}", out.field("body"), if frame.body.is_empty() { "(none)" } else { &frame.body });
    if let Some(checksum) = &frame.checksum {
        match (&checksum.expected, checksum.ok) {
            (None, _) => println!("  {}      {} (not checked: rule none)", out.field("checksum"), checksum.received),
            (Some(_), true) => println!("  {}      {} {}", out.field("checksum"), checksum.received, out.good("ok")),
            (Some(expected), false) => println!(
                "  {}      {} {} (expected {expected})",
                out.field("checksum"),
                checksum.received,
                out.error("wrong")
            ),
        }
    }
    if frame.message == message_type::name(ALARM)
        && let [severity, kind, number, ..] = frame.raw_body[..]
    {
        println!("  alarm        severity {severity:#04x}, type {kind:#04x}, number {number:#04x}");
    }
    match &frame.request {
        Some(Ok(request)) => {
            println!("  as a request from the host: {} ICB(s)", request.icbs.len());
            for icb in &request.icbs {
                println!("    {}", icb.describe());
            }
        }
        Some(Err(error)) => println!("  {}", out.dim(&format!("not a request: {error}"))),
        None => {}
    }
    match &frame.response {
        Some(Ok(response)) => {
            println!("  as a response from the controller ({}):", response.layout.text());
            println!("    status       {}", response.status);
            if let Some(more) = &response.more_status {
                println!("    more status  {more}");
            }
            print_response_icbs(response, "    ");
        }
        Some(Err(error)) => println!("  {}", out.dim(&format!("not a response: {error}"))),
        None => {}
    }
}

fn check_config(args: CheckConfigArgs, context: &Context) -> CommandResult {
    let context = &context.for_json(args.json);
    // As the job's own error, so the help is the one `tftp-manage
    // --config-file` gives for the same file (its message is the file's).
    let bytes = crate::input_file::read(&args.file, &crate::input_file::EXS_CONFIG)
        .map_err(|error| context.fail_with(&ExsError::ReadConfig(error)))?;
    let message_timestamp = match (args.message_timestamp, args.no_message_timestamp) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    };
    let report = config_file::check(&String::from_utf8_lossy(&bytes), &ConfigRules::default(), message_timestamp);
    let outcome = if report.has_errors() { Outcome::BadInput } else { Outcome::Success };
    if args.json {
        #[derive(Serialize)]
        struct Json<'a> {
            file: &'a Path,
            accepted: bool,
            #[serde(flatten)]
            report: &'a config_file::ConfigReport,
        }
        let json = Json { file: &args.file, accepted: !report.has_errors(), report: &report };
        context.print_json(&json);
        return Ok(outcome);
    }
    // The file's own text is quoted in the problems: escaped, so codes in it
    // cannot drive the terminal.
    let file = terminal_safe(&args.file.display().to_string());
    for problem in &report.problems {
        let severity = match problem.severity {
            Severity::Error => context.out.error("error"),
            Severity::Warning => context.out.warning("warning"),
        };
        let place = problem.line.map_or_else(|| file.clone(), |line| format!("{file}:{line}"));
        let mut text = format!("{place}: {severity}: {}", terminal_safe(&problem.message));
        match (&problem.status, &problem.more_status) {
            (Some(status), Some(more)) => text.push_str(&format!(
                "\n  {} status {:#06x}, more status {} ({})",
                context.out.dim("controller answers:"),
                status.0,
                more.code,
                more.text
            )),
            (Some(status), None) => {
                text.push_str(&format!("\n  {} status {status}", context.out.dim("controller answers:")))
            }
            _ => {}
        }
        println!("{text}");
    }
    let errors = report.problems.iter().filter(|p| p.severity == Severity::Error).count();
    let warnings = report.problems.len() - errors;
    if errors == 0 {
        println!("{file}: {} ({} loads, {warnings} warnings)", context.out.good("ok"), report.loads.len());
    } else {
        println!("{file}: {} ({errors} errors, {warnings} warnings)", context.out.error("would be refused"));
    }
    Ok(outcome)
}
