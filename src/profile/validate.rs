//! Semantic checks of a profile that parsed: values that make sense on their
//! own (addresses, masks, regexes, files) and together (gateway in the subnet,
//! step order, a target for every network step). Every problem is collected,
//! none stops the others.
//!
//! Values that hold `${...}` variables are checked here for syntax and
//! definition only; their expanded values are checked by `resolve` per device,
//! with the same functions.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::Path;

use super::problem::Problems;
use super::types::{Profile, Step};
use super::vars::{self, BUILTIN_VARIABLES, Piece, Reference, TemplateRole};

/// Options of a check.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckOptions {
    /// Warnings count as errors.
    pub strict: bool,
}

/// Checks `profile`, read from a file in `base_dir`, adding to `problems`.
pub fn validate(profile: &Profile, base_dir: &Path, problems: &mut Problems<'_>) {
    check_header(profile, problems);
    check_serial(profile, problems);
    check_templates(profile, base_dir, problems);
    check_network(profile, problems);
    check_steps(profile, problems);
    check_serve_folders(profile, base_dir, problems);
}

/// A `tftp_manage` step's `serve` folder, written literally, must exist.
fn check_serve_folders(profile: &Profile, base_dir: &Path, problems: &mut Problems<'_>) {
    for (i, step) in profile.steps.iter().enumerate() {
        if let Step::TftpManage(s) = step
            && let Some(folder) = s.serve.as_ref().and_then(|t| literal(t.as_str()))
            && !base_dir.join(folder).is_dir()
        {
            problems
                .error(
                    &format!("steps[{i}].tftp_manage.serve"),
                    format!("folder `{folder}` does not exist ({})", base_dir.join(folder).display()),
                )
                .help(
                    "the folder holds the configuration file and the loads it names, as the controller asks for them",
                );
        }
    }
}

fn check_header(profile: &Profile, problems: &mut Problems<'_>) {
    if profile.format != super::types::FORMAT_VERSION {
        problems
            .error("format", format!("profile format {} is not supported", profile.format))
            .help("this flashline reads format 1");
    }
    if profile.name.trim().is_empty() {
        problems.error("name", "the profile name is empty");
    }
    for name in profile.variables.keys() {
        let path = format!("variables.{name}");
        if BUILTIN_VARIABLES.contains(&name.as_str()) {
            problems
                .error(&path, format!("`{name}` is a built-in device field and cannot be declared"))
                .help("built-in fields: name, port, ip, mask, gateway");
        } else if vars::parse(&format!("${{{name}}}")).is_err() {
            problems.error(&path, format!("`{name}` is not a valid variable name (letters, digits, `_`, `-`)"));
        }
    }
}

fn check_serial(profile: &Profile, problems: &mut Problems<'_>) {
    let serial = &profile.serial;
    if !(50..=4_000_000).contains(&serial.baud) {
        problems.error("serial.baud", format!("baud rate {} is outside 50..4000000", serial.baud));
    }
    if !(5..=8).contains(&serial.data_bits) {
        problems.error("serial.data_bits", format!("data bits must be 5, 6, 7 or 8, not {}", serial.data_bits));
    }
    if !(1..=2).contains(&serial.stop_bits) {
        problems.error("serial.stop_bits", format!("stop bits must be 1 or 2, not {}", serial.stop_bits));
    }
}

/// Variable syntax, definitions, referenced files, clear-text secrets.
fn check_templates(profile: &Profile, base_dir: &Path, problems: &mut Problems<'_>) {
    let secret_variables: Vec<String> =
        profile.variables.iter().filter(|(_, spec)| spec.secret).map(|(name, _)| name.clone()).collect();
    let mut used = BTreeSet::new();
    let mut copy = profile.clone();
    vars::visit_templates(&mut copy, &mut |path, role, template| {
        let pieces = match vars::parse(template.as_str()) {
            Ok(pieces) => pieces,
            Err(message) => {
                problems.error(path, message);
                return;
            }
        };
        for piece in &pieces {
            match piece {
                Piece::Reference(Reference::Device(name)) => {
                    used.insert(name.clone());
                    if !BUILTIN_VARIABLES.contains(&name.as_str()) && !profile.variables.contains_key(name) {
                        let declared: Vec<&str> =
                            profile.variables.keys().map(String::as_str).chain(BUILTIN_VARIABLES).collect();
                        let problem = problems.error(path, format!("variable `{name}` is not defined"));
                        match super::problem::did_you_mean(name, declared.iter().copied()) {
                            Some(guess) => problem
                                .help(format!("did you mean `${{{guess}}}`? Otherwise declare it under `variables:`")),
                            None => problem.help(format!(
                                "declare it under `variables:` (built-in: {})",
                                BUILTIN_VARIABLES.join(", ")
                            )),
                        };
                    }
                    if secret_variables.contains(name) && role != TemplateRole::Secret {
                        problems
                            .warning(path, format!("secret variable `{name}` is used where it is not marked secret"))
                            .help("mark the dialog answer `secret: true` so it is written as *** in transcripts");
                    }
                }
                Piece::Reference(Reference::File(file)) => {
                    let full = base_dir.join(file);
                    if let Some(why) = crate::input_file::unusable(&full) {
                        problems.error(path, format!("file `{file}` {why} ({})", full.display()));
                    }
                }
                Piece::Reference(Reference::Env(_)) | Piece::Literal(_) => {}
            }
        }
        if role == TemplateRole::Secret && vars::is_clear_text_secret(template.as_str(), &secret_variables) {
            problems
                .warning(path, "password written in clear text")
                .help("factory defaults are public and accepted; for others use ${env:NAME} or ${file:path} (--strict refuses clear text)");
        }
        if role == TemplateRole::Path && !has_references(&pieces) {
            let full = base_dir.join(template.as_str());
            if let Some(why) = crate::input_file::unusable(&full) {
                problems.error(path, format!("file `{template}` {why} ({})", full.display()));
            }
        }
    });
    for (name, spec) in &profile.variables {
        if !used.contains(name) {
            problems.warning(&format!("variables.{name}"), format!("variable `{name}` is declared but never used"));
        }
        if spec.secret && spec.default.is_some() {
            problems
                .warning(
                    &format!("variables.{name}.default"),
                    format!("secret variable `{name}` has a clear-text default"),
                )
                .help("use ${env:NAME} or ${file:path} where the secret is needed instead");
        }
    }
}

fn has_references(pieces: &[Piece]) -> bool {
    pieces.iter().any(|p| matches!(p, Piece::Reference(_)))
}

/// The literal text of a template, if it uses no variables.
fn literal(text: &str) -> Option<&str> {
    match vars::parse(text) {
        Ok(pieces) if !has_references(&pieces) => Some(text),
        _ => None,
    }
}

fn check_network(profile: &Profile, problems: &mut Problems<'_>) {
    let net = &profile.network;
    let configures = profile.steps.iter().any(|s| matches!(s, Step::ConfigureNetwork(_) | Step::AddpConfigure(_)));
    if configures && !net.dhcp {
        for (key, value) in [("ip", &net.ip), ("mask", &net.mask)] {
            if value.is_none() {
                problems
                    .error("network", format!("`network.{key}` is required for a static address (dhcp: false)"))
                    .help(format!("add `{key}: ${{{key}}}` and give each device its value in the inventory"));
            }
        }
    }
    if net.dhcp && (net.mask.is_some() || net.gateway.is_some()) {
        problems.warning("network.dhcp", "dhcp is on: mask and gateway are ignored by the device");
    }
    let ip = net.ip.as_ref().and_then(|t| literal(t.as_str()));
    let mask = net.mask.as_ref().and_then(|t| literal(t.as_str()));
    let gateway = net.gateway.as_ref().and_then(|t| literal(t.as_str()));
    for error in check_addresses(ip, mask, gateway) {
        let path = format!("network.{}", error.field);
        let problem = problems.error(&path, error.message);
        if let Some(help) = error.help {
            problem.help(help);
        }
    }
}

/// A problem with an address triple, naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressError {
    pub field: &'static str,
    pub message: String,
    pub help: Option<String>,
}

/// Checks whichever of ip / mask / gateway are given: each parses, the mask is
/// contiguous, the ip is a usable host address in its subnet, the gateway lies
/// in that subnet and is not the device itself.
pub fn check_addresses(ip: Option<&str>, mask: Option<&str>, gateway: Option<&str>) -> Vec<AddressError> {
    let mut errors = Vec::new();
    let mut parse = |field: &'static str, text: Option<&str>| -> Option<Ipv4Addr> {
        let text = text?;
        match text.trim().parse::<Ipv4Addr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                errors.push(AddressError {
                    field,
                    message: format!("`{text}` is not an IPv4 address"),
                    help: Some("write four decimal numbers 0-255, e.g. 192.168.1.50".into()),
                });
                None
            }
        }
    };
    let ip = parse("ip", ip);
    let mask = parse("mask", mask);
    let gateway = parse("gateway", gateway);
    let mut prefix = None;
    if let Some(mask) = mask {
        let bits = u32::from(mask);
        if bits.leading_ones() + bits.trailing_zeros() != 32 {
            errors.push(AddressError {
                field: "mask",
                message: format!("subnet mask {mask} is not contiguous"),
                help: Some("a mask is ones then zeros, e.g. 255.255.255.0 (/24)".into()),
            });
        } else if bits.leading_ones() == 0 || bits.leading_ones() > 30 {
            errors.push(AddressError {
                field: "mask",
                message: format!(
                    "subnet mask {mask} (/{}) leaves no room for a device and a gateway",
                    bits.leading_ones()
                ),
                help: Some("use a prefix between /1 and /30".into()),
            });
        } else {
            prefix = Some(bits);
        }
    }
    if let Some(ip) = ip {
        // Loopback stays allowed: the simulated devices live there.
        if ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast() {
            errors.push(AddressError {
                field: "ip",
                message: format!("{ip} cannot be a device's address"),
                help: None,
            });
        }
    }
    if let (Some(ip), Some(bits)) = (ip, prefix) {
        let host = u32::from(ip) & !bits;
        if host == 0 || host == !bits {
            errors.push(AddressError {
                field: "ip",
                message: format!(
                    "{ip} is the {} address of its subnet",
                    if host == 0 { "network" } else { "broadcast" }
                ),
                help: None,
            });
        }
    }
    if let (Some(ip), Some(bits), Some(gateway)) = (ip, prefix, gateway) {
        let net = u32::from(ip) & bits;
        if u32::from(gateway) & bits != net {
            errors.push(AddressError {
                field: "gateway",
                message: format!(
                    "gateway {gateway} is outside the device's subnet {}/{}",
                    Ipv4Addr::from(net),
                    bits.leading_ones()
                ),
                help: Some("the device cannot reach a gateway outside its subnet; check ip, mask and gateway".into()),
            });
        } else if gateway == ip {
            errors.push(AddressError {
                field: "gateway",
                message: format!("gateway {gateway} is the device's own address"),
                help: None,
            });
        }
    }
    errors
}

/// Order in which step kinds may follow each other: serial work first, then
/// the network. `tftp_manage` talks to a different device and may go anywhere.
fn phase(step: &Step) -> Option<u8> {
    match step {
        Step::LoadImage(_) => Some(0),
        Step::ConfigureNetwork(_) | Step::AddpConfigure(_) => Some(1),
        Step::WaitForNetwork(_) | Step::FtpUpload(_) => Some(2),
        Step::TftpManage(_) => None,
    }
}

fn check_steps(profile: &Profile, problems: &mut Problems<'_>) {
    if profile.steps.is_empty() {
        problems
            .error("steps", "the profile has no steps")
            .help("add at least one of: load_image, configure_network, wait_for_network, ftp_upload, tftp_manage");
        return;
    }
    let mut latest: Option<(u8, usize)> = None;
    let mut waited = false;
    for (i, step) in profile.steps.iter().enumerate() {
        let base = format!("steps[{i}].{}", step.kind());
        if let Some(p) = phase(step) {
            if let Some((latest_phase, at)) = latest
                && p < latest_phase
            {
                let earlier = profile.steps[at].kind();
                problems
                    .error(&base, format!("`{}` comes after `{earlier}` (steps[{at}])", step.kind()))
                    .help(order_help(step));
            }
            if latest.is_none_or(|(lp, _)| p >= lp) {
                latest = Some((p, i));
            }
        }
        match step {
            Step::LoadImage(s) => {
                check_regex(problems, &format!("{base}.wait_for"), s.wait_for.as_deref());
                check_regex(problems, &format!("{base}.end_text"), s.end_text.as_deref());
                if s.block_retries == 0 {
                    problems.error(&format!("{base}.block_retries"), "block_retries must be at least 1");
                }
            }
            Step::ConfigureNetwork(s) => {
                if s.dialog.is_empty() {
                    problems.error(&format!("{base}.dialog"), "the dialog has no prompts");
                }
                if let Some(entry) = &s.interrupt {
                    check_regex(problems, &format!("{base}.interrupt.expect"), Some(&entry.expect));
                }
                for (j, entry) in s.dialog.iter().enumerate() {
                    check_regex(problems, &format!("{base}.dialog[{j}].expect"), Some(&entry.expect));
                    if !entry.candidates.is_empty() && !entry.send.as_str().is_empty() {
                        problems
                            .error(&format!("{base}.dialog[{j}].candidates"), "both `send` and `candidates` are set")
                            .help("list every answer under `candidates`, in the order to try them");
                    }
                }
                if let Some(entry) = &s.after_done {
                    check_regex(problems, &format!("{base}.after_done.expect"), Some(&entry.expect));
                    if !entry.candidates.is_empty() {
                        problems
                            .error(&format!("{base}.after_done.candidates"), "`after_done` takes one answer: `send`");
                    }
                }
                check_regex(problems, &format!("{base}.default_prompt"), Some(&s.default_prompt));
                if s.keep_defaults && s.max_kept_defaults == 0 {
                    problems
                        .error(&format!("{base}.max_kept_defaults"), "keep_defaults is on but no default may be kept")
                        .help(
                            "set max_kept_defaults to at least the number of questions the device asks (32 by default)",
                        );
                }
                check_address_check(problems, &format!("{base}.address_check"), &s.address_check);
                check_regex(problems, &format!("{base}.done"), Some(&s.done));
                for (j, reject) in s.reject.iter().enumerate() {
                    check_regex(problems, &format!("{base}.reject[{j}]"), Some(reject));
                }
                if let Some(skip_if) = &s.skip_if {
                    // Variables are escaped literals once expanded; a placeholder
                    // stands in for them when checking the pattern.
                    let sample = vars::parse(skip_if.as_str()).ok().map(|pieces| {
                        pieces
                            .iter()
                            .map(|p| match p {
                                Piece::Literal(text) => text.clone(),
                                Piece::Reference(_) => "x".into(),
                            })
                            .collect::<String>()
                    });
                    check_regex(problems, &format!("{base}.skip_if"), sample.as_deref());
                }
                if s.char_delay.0 > std::time::Duration::from_secs(1) {
                    problems.warning(
                        &format!("{base}.char_delay"),
                        format!("char_delay {} is unusually long", s.char_delay),
                    );
                }
            }
            Step::WaitForNetwork(s) => {
                waited = true;
                check_target(profile, problems, &base, s.host.is_some());
                if !s.icmp && s.ports.is_empty() {
                    problems
                        .error(&base, "nothing to wait for: icmp is off and no ports are listed")
                        .help("list ports such as `ports: [{port: 21}]` or set `icmp: true`");
                }
                let mut seen = BTreeSet::new();
                for (j, port) in s.ports.iter().enumerate() {
                    if port.port == 0 {
                        problems.error(&format!("{base}.ports[{j}].port"), "port 0 cannot be probed");
                    }
                    if !seen.insert(port.port) {
                        problems
                            .error(&format!("{base}.ports[{j}].port"), format!("port {} is listed twice", port.port));
                    }
                }
                if s.interval > s.max_interval {
                    problems.error(
                        &format!("{base}.interval"),
                        format!("interval {} is longer than max_interval {}", s.interval, s.max_interval),
                    );
                }
                if s.interval.is_zero() {
                    problems.error(&format!("{base}.interval"), "interval must be above zero");
                }
                if s.timeout.is_zero() {
                    problems.error(&format!("{base}.timeout"), "timeout must be above zero");
                }
            }
            Step::FtpUpload(s) => {
                check_target(profile, problems, &base, s.host.is_some());
                if s.port == 0 {
                    problems.error(&format!("{base}.port"), "port 0 is not a valid FTP port");
                }
                if s.credentials.is_empty() {
                    problems
                        .error(&format!("{base}.credentials"), "no credentials to log in with")
                        .help("list candidates in order, e.g. `- {user: root, password: Netsilicon}`");
                }
                if s.files.is_empty() {
                    problems.error(&format!("{base}.files"), "no files to upload");
                }
                let mut remotes = BTreeSet::new();
                for (j, file) in s.files.iter().enumerate() {
                    let remote = file.remote.clone().unwrap_or_else(|| {
                        Path::new(file.local.as_str())
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default()
                    });
                    if remote.is_empty() || remote.contains(['/', '\\']) && file.remote.is_some() {
                        problems.error(&format!("{base}.files[{j}].remote"), format!("`{remote}` is not a file name"));
                    }
                    if !remotes.insert(remote.clone()) {
                        problems.error(&format!("{base}.files[{j}]"), format!("`{remote}` is uploaded twice"));
                    }
                }
                if !s.session_per_file && s.files.len() > 1 {
                    problems
                        .warning(&format!("{base}.session_per_file"), "several files in one FTP session")
                        .help("NET+OS needs rom.bin and image.bin in separate sessions: one session leaves it in serial recovery");
                }
                if !s.tls && (s.tls_ca.is_some() || s.tls_name.is_some()) {
                    problems
                        .warning(&format!("{base}.tls"), "tls_ca / tls_name are set but tls is off")
                        .help("set `tls: true` to use FTPS");
                }
                if !waited {
                    problems
                        .warning(&base, "no wait_for_network before the upload")
                        .help("the device may not be listening yet; add a wait_for_network step for port 21 first");
                }
                // Accepted and ignored would let a profile promise a check
                // that never runs: refused until the upload watches the console.
                if s.console_done.is_some() {
                    problems
                        .error(
                            &format!("{base}.console_done"),
                            "console_done is not supported yet: flashline does not watch the console during the upload",
                        )
                        .help("remove it; `wait_for_restart: true` detects the restart after the flash is written on the network");
                }
                if s.retries > 100 {
                    problems.error(&format!("{base}.retries"), format!("{} retries is more than 100", s.retries));
                }
                for (field, value) in [("connect_timeout", &s.connect_timeout), ("reply_timeout", &s.reply_timeout)] {
                    if value.is_zero() {
                        problems.error(&format!("{base}.{field}"), format!("{field} must be above zero"));
                    }
                }
            }
            Step::AddpConfigure(s) => {
                // A MAC written literally must be one; a variable is checked per device.
                if let Some(mac) = literal(s.mac.as_str())
                    && let Err(message) = mac.parse::<crate::net::arp::Mac>()
                {
                    problems
                        .error(&format!("{base}.mac"), message)
                        .help("usually `mac: ${mac}`, with each unit's MAC in the inventory");
                }
                if s.mac.as_str().trim().is_empty() {
                    problems
                        .error(&format!("{base}.mac"), "the unit's MAC is required: ADDP addresses a unit by it")
                        .help("usually `mac: ${mac}`, with each unit's MAC in the inventory");
                }
                if s.wait.is_zero() {
                    problems.error(&format!("{base}.wait"), "wait must be above zero");
                }
                if s.retries > 100 {
                    problems.error(&format!("{base}.retries"), format!("{} retries is more than 100", s.retries));
                }
            }
            Step::TftpManage(s) => {
                check_target(profile, problems, &base, s.host.is_some());
                // The controller's rules live with the TFTP Manage job; here
                // they see the values written literally (a `${...}` value is
                // checked once the device's values fill it in).
                for broken in crate::exs::job::check_rules(&s.rule_fields(&|t| literal(t.as_str()))) {
                    let problem = problems.error(&format!("{base}.{}", broken.field), broken.message);
                    if let Some(help) = broken.help {
                        problem.help(help);
                    }
                }
            }
        }
    }
}

fn order_help(step: &Step) -> &'static str {
    match step {
        Step::LoadImage(_) => {
            "an image is loaded over serial at power-up, before the console set-up and the network steps"
        }
        Step::ConfigureNetwork(_) => {
            "the console sets the address the network steps use: put configure_network before them"
        }
        Step::AddpConfigure(_) => "addp_configure sets the address the network steps use: put it before them",
        _ => "order steps as load_image, configure_network, then wait_for_network / ftp_upload",
    }
}

/// A network step needs an address: its own `host` or `network.ip`.
fn check_target(profile: &Profile, problems: &mut Problems<'_>, base: &str, has_host: bool) {
    if !has_host && profile.network.ip.is_none() {
        let problem = problems.error(base, "no address to reach: neither `host` nor `network.ip` is set");
        if profile.network.dhcp {
            problem.help(
                "with dhcp the address is not known in advance: set `host: ${ip}` and give each device its address",
            );
        } else {
            problem.help("set `network.ip: ${ip}` or this step's `host`");
        }
    }
}

fn check_address_check(problems: &mut Problems<'_>, base: &str, check: &crate::profile::types::AddressCheck) {
    if !(1..=20).contains(&check.probes) {
        problems.error(&format!("{base}.probes"), format!("{} probes: send 1 to 20", check.probes));
    }
    if check.interval_max.0 < check.interval_min.0 {
        problems
            .error(&format!("{base}.interval_max"), "interval_max is shorter than interval_min")
            .help("RFC 5227 waits 1 s to 2 s between probes: interval_min: 1s, interval_max: 2s");
    }
    if check.interval_max.0 > std::time::Duration::from_secs(60) || check.wait.0 > std::time::Duration::from_secs(60) {
        problems.error(&format!("{base}.wait"), "the check would wait over a minute between probes or after them");
    }
    if check.interval_min.0 < crate::net::arp::PROBE_MIN && check.enabled {
        problems
            .warning(&format!("{base}.interval_min"), "probes closer than RFC 5227's 1 s may miss a slow host")
            .help("shorter intervals are meant for tests on virtual links");
    }
}

fn check_regex(problems: &mut Problems<'_>, path: &str, pattern: Option<&str>) {
    if let Some(pattern) = pattern
        && let Err(error) = regex::bytes::Regex::new(pattern)
    {
        let first_line = error.to_string();
        problems.error(path, format!("invalid regex `{pattern}`: {}", first_line.lines().last().unwrap_or("")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_triples() {
        assert!(check_addresses(Some("192.168.1.50"), Some("255.255.255.0"), Some("192.168.1.1")).is_empty());
        let errors = check_addresses(Some("192.168.1.50"), Some("255.0.255.0"), None);
        assert_eq!(errors[0].field, "mask");
        assert!(errors[0].message.contains("not contiguous"));
        let errors = check_addresses(Some("192.168.1.50"), Some("255.255.255.0"), Some("192.168.2.1"));
        assert_eq!(errors[0].field, "gateway");
        assert!(errors[0].message.contains("outside the device's subnet 192.168.1.0/24"));
        let errors = check_addresses(Some("192.168.1.256"), None, None);
        assert_eq!(errors[0].field, "ip");
        let errors = check_addresses(Some("192.168.1.255"), Some("255.255.255.0"), None);
        assert!(errors[0].message.contains("broadcast"));
        let errors = check_addresses(Some("10.0.0.1"), Some("255.255.255.0"), Some("10.0.0.1"));
        assert!(errors[0].message.contains("own address"));
    }
}
