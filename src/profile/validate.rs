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
use super::steps::CheckScope;
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
pub(super) fn literal(text: &str) -> Option<&str> {
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

fn check_steps(profile: &Profile, problems: &mut Problems<'_>) {
    if profile.steps.is_empty() {
        problems
            .error("steps", "the profile has no steps")
            .help(format!("add at least one of: {}", Step::KINDS.join(", ")));
        return;
    }
    // The latest phase so far and the step that reached it.
    let mut latest: Option<(u8, usize)> = None;
    for (i, step) in profile.steps.iter().enumerate() {
        if let Some(phase) = step.phase() {
            if let Some((latest_phase, at)) = latest
                && phase < latest_phase
            {
                let earlier = profile.steps[at].kind();
                problems
                    .error(
                        &format!("steps[{i}].{}", step.kind()),
                        format!("`{}` comes after `{earlier}` (steps[{at}])", step.kind()),
                    )
                    .help(step.order_help());
            }
            if latest.is_none_or(|(lp, _)| phase >= lp) {
                latest = Some((phase, i));
            }
        }
        let scope = CheckScope {
            network_ip: profile.network.ip.is_some(),
            dhcp: profile.network.dhcp,
            earlier: &profile.steps[..i],
        };
        step.check(&scope, i, problems);
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
