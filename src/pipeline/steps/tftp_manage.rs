//! `tftp_manage`: EXS API TFTP Manage (0x003A) to a CSP controller
//! (`exs::job`): the step's options become a [`TftpManageJob`] here, after
//! the same rules `profile check` applies (`exs::job::check_rules`); any
//! Status other than positive acknowledgment fails the step.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use super::{StepContext, StepDone, StepError};
use crate::exs::frame::Framing;
use crate::exs::job::{ExsError, ServeFolder, TftpManageJob, check_rules, run_tftp_manage};
use crate::exs::tftp_manage::{ActionSubtype, DataValue, Filename};
use crate::exs::trace;
use crate::profile::{Template, TftpManage};

pub async fn run(step: &TftpManage, cx: &mut StepContext<'_>) -> Result<StepDone, StepError> {
    let default_host = cx.profile.network.ip.as_ref().map(|t| t.to_string());
    let exs_job = job(step, default_host.as_deref(), cx.base_dir)?;
    let done = run_tftp_manage(&exs_job, cx.progress).await?;
    let answers = done.exchanges.iter().map(|e| format!("{}: {}", e.purpose, e.response.status));
    let served = done.served.iter().map(|f| match &f.failure {
        None => format!("served {} ({} bytes) to {}", f.filename, f.bytes, f.peer),
        Some(why) => format!("did not serve {} to {}: {why}", f.filename, f.peer),
    });
    let answers = answers.chain(served).collect::<Vec<_>>().join("; ");
    if done.succeeded() { Ok(StepDone::passed(answers)) } else { Err(StepError::ControllerRefused { answers }) }
}

/// The job of a step whose `${...}` variables are already filled in.
/// `default_host` is the profile's `network.ip`; `base_dir` resolves a
/// relative `config_file` and `serve` folder. `exs tftp-manage` builds its
/// step from its arguments and comes here too.
pub fn job(step: &TftpManage, default_host: Option<&str>, base_dir: &Path) -> Result<TftpManageJob, ExsError> {
    let host = step
        .host
        .as_ref()
        .map(|h| h.as_str().trim().to_string())
        .or_else(|| default_host.map(str::to_string))
        .filter(|h| !h.is_empty())
        .ok_or(ExsError::BadInput {
            field: "host",
            message: "no controller address: set `host` or `network.ip`".into(),
        })?;
    if let Some(broken) = check_rules(&step.rule_fields(&|t| Some(t.as_str()))).into_iter().next() {
        return Err(ExsError::BadInput { field: broken.field, message: broken.message });
    }
    // The rules above passed: each value converts.
    let bad = |field: &'static str, message: String| ExsError::BadInput { field, message };
    let filename = |field: &'static str, value: &Option<Template>| -> Result<Option<Filename>, ExsError> {
        value.as_ref().map(|v| Filename::new(v.as_str()).map_err(|e| bad(field, e.to_string()))).transpose()
    };
    let address = |field: &'static str, value: &Option<Template>| -> Result<Option<Ipv4Addr>, ExsError> {
        value
            .as_ref()
            .map(|v| v.as_str().trim().parse::<Ipv4Addr>().map_err(|e| bad(field, format!("`{v}`: {e}"))))
            .transpose()
    };
    let mut settings = Vec::new();
    if let Some(name) = filename("local_config", &step.local_config)? {
        settings.push(DataValue::LocalConfig(name));
    }
    if let Some(ip) = address("local_server", &step.local_server)? {
        settings.push(DataValue::LocalServer(ip));
    }
    if let Some(name) = filename("adjacent_config", &step.adjacent_config)? {
        settings.push(DataValue::AdjacentConfig(name));
    }
    if let Some(ip) = address("adjacent_server", &step.adjacent_server)? {
        settings.push(DataValue::AdjacentServer(ip));
    }
    if let Some(text) = step.timestamp.as_ref().filter(|t| !t.as_str().trim().is_empty()) {
        let bytes = trace::parse_hex(text.as_str()).map_err(|e| bad("timestamp", e.to_string()))?;
        settings.push(DataValue::Timestamp(bytes));
    }
    let mut queries: Vec<ActionSubtype> = Vec::new();
    for query in &step.query {
        for subtype in ActionSubtype::from_query(*query) {
            if !queries.contains(&subtype) {
                queries.push(subtype);
            }
        }
    }
    let config_file = step.config_file.as_ref().map(|f| base_dir.join(f.as_str()));
    let serve = match (&step.serve, address("local_server", &step.local_server)?) {
        (Some(root), Some(ip)) => {
            Some(ServeFolder { root: base_dir.join(root.as_str()), address: SocketAddr::from((ip, step.serve_port)) })
        }
        _ => None,
    };
    Ok(TftpManageJob {
        host,
        port: step.port,
        node: step.node,
        framing: Framing { checksum: step.checksum, marker_rule: step.marker_rule },
        timeout: step.timeout.0,
        settings,
        begin_download: step.begin_download,
        queries,
        load: step.load,
        config_file,
        serve,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::exs::tftp_manage::RequestIcb;
    use crate::failure::{Classify, FailureClass};
    use crate::profile::{ExsChecksum, ExsMarkerRule, HumanDuration, TftpQuery};

    pub(crate) fn step() -> TftpManage {
        TftpManage {
            host: Some(Template("127.0.0.1".into())),
            port: 12610,
            node: 0xFF,
            checksum: ExsChecksum::Sum8Twos,
            marker_rule: ExsMarkerRule::Refuse,
            query: Vec::new(),
            load: None,
            local_config: None,
            local_server: None,
            adjacent_config: None,
            adjacent_server: None,
            timestamp: None,
            begin_download: false,
            config_file: None,
            timeout: HumanDuration::from_secs(10),
            serve: None,
            serve_port: 69,
        }
    }

    #[test]
    fn settings_pack_with_begin_download_last_and_queries_alone() {
        let mut step = step();
        step.local_config = Some(Template("a".repeat(127)));
        step.adjacent_config = Some(Template("b".repeat(127)));
        step.local_server = Some(Template("127.0.0.2".into()));
        step.timestamp = Some(Template("01 02".into()));
        step.begin_download = true;
        step.query = vec![TftpQuery::LocalConfig, TftpQuery::All];
        let job = job(&step, None, Path::new(".")).unwrap();
        let messages = job.messages();
        assert_eq!(messages.len(), 2 + 8);
        for (_, request) in &messages {
            request.encode().unwrap();
        }
        let last_settings = &messages[1].1.icbs;
        assert_eq!(last_settings.last(), Some(&RequestIcb::action(ActionSubtype::BeginDownload)));
        assert_eq!(messages[2].0, "query local matrix configuration filename");
        assert_eq!(messages[2].1.icbs.len(), 1);
    }

    #[test]
    fn bad_input_is_found_before_connecting() {
        let mut bad = step();
        bad.local_server = Some(Template("10.0.0.300".into()));
        let error = job(&bad, None, Path::new(".")).unwrap_err();
        assert_eq!(error.to_string(), "local_server: `10.0.0.300` is not an IPv4 address");
        assert_eq!(error.class(), FailureClass::Input);
        let mut bad = step();
        bad.begin_download = true;
        bad.local_config = Some(Template("x.cfg".into()));
        assert_bad_input(&bad, "begin_download: begin_download needs local_config and local_server");
        assert_bad_input(&step(), "query: nothing to send: no queries, settings or begin_download");
        let mut bad = step();
        bad.query = vec![TftpQuery::LoadVersion];
        assert_bad_input(&bad, "query: load-version and load-filename queries need `load:` (the load number)");
        let mut bad = step();
        bad.timestamp = Some(Template("zz".into()));
        assert_bad_input(&bad, "timestamp: `zz` is not hex bytes: ");
    }

    /// The step is refused as bad input with a message that starts with `message`.
    fn assert_bad_input(step: &TftpManage, message: &str) {
        let error = job(step, None, Path::new(".")).unwrap_err();
        assert_eq!(error.class(), FailureClass::Input, "{error}");
        assert!(error.to_string().starts_with(message), "expected `{message}...`, got `{error}`");
    }
}
