//! Variables in profile strings: `${name}` (a per-device value from the
//! inventory or `--set`), `${env:NAME}` (the environment) and `${file:path}`
//! (a file's contents, relative to the profile's folder); `$$` is a literal `$`.
//!
//! This module finds the references in every template of a profile and
//! expands them; it decides nothing about whether a value is a valid address,
//! which is `validate`'s job once the text is known.

use std::collections::BTreeMap;
use std::path::Path;

use super::template::Template;
use super::types::Profile;

pub use super::template::{BUILTIN_VARIABLES, Piece, Reference, TemplateRole, parse};

/// Where the values of references come from.
pub struct Sources<'a> {
    pub device: &'a super::DeviceValues,
    /// Declared defaults.
    pub defaults: BTreeMap<String, String>,
    /// Variables whose values are secrets.
    pub secret_variables: Vec<String>,
    pub base_dir: &'a Path,
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// Put `***` in place of secrets (for display).
    pub redact: bool,
}

/// Without the defaults' values (a default may be a secret's).
impl std::fmt::Debug for Sources<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources")
            .field("device", self.device)
            .field("defaults", &self.defaults.keys().collect::<Vec<_>>())
            .field("secret_variables", &self.secret_variables)
            .field("base_dir", &self.base_dir)
            .field("redact", &self.redact)
            .finish_non_exhaustive()
    }
}

/// Why a reference could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandError {
    pub message: String,
    pub help: Option<String>,
}

/// Expands `text` used in `role`.
pub fn expand(text: &str, role: TemplateRole, sources: &Sources<'_>) -> Result<String, ExpandError> {
    let pieces = parse(text).map_err(|message| ExpandError { message, help: None })?;
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Literal(text) => out.push_str(&text),
            Piece::Reference(reference) => {
                let (value, secret) = value_of(&reference, sources)?;
                if sources.redact && secret {
                    out.push_str("***");
                } else if role == TemplateRole::Regex {
                    out.push_str(&regex::escape(&value));
                } else {
                    out.push_str(&value);
                }
            }
        }
    }
    // Every reference is resolved first, also for display, so a missing
    // secret source is reported before anything runs.
    if sources.redact && role == TemplateRole::Secret {
        return Ok("***".into());
    }
    Ok(out)
}

fn value_of(reference: &Reference, sources: &Sources<'_>) -> Result<(String, bool), ExpandError> {
    match reference {
        Reference::Device(name) => {
            let secret = sources.secret_variables.iter().any(|s| s == name);
            match sources.device.get(name).or_else(|| sources.defaults.get(name).map(String::as_str)) {
                Some(value) => Ok((value.to_string(), secret)),
                None => Err(ExpandError {
                    message: format!("variable `{name}` has no value for this device"),
                    help: Some(format!(
                        "set it in the inventory, with `--set {name}=...`, or give it a default under `variables:`"
                    )),
                }),
            }
        }
        Reference::Env(name) => match (sources.env)(name) {
            Some(value) => Ok((value, false)),
            None => Err(ExpandError {
                message: format!("environment variable `{name}` is not set"),
                help: Some(format!("export {name}=... before running flashline")),
            }),
        },
        Reference::File(path) => {
            let full = sources.base_dir.join(path);
            let read = crate::input_file::read(&full, &crate::input_file::SECRET)
                .map(|bytes| String::from_utf8(bytes).map_err(|_| "it is not UTF-8 text".to_string()));
            match read {
                // Files written by editors end in a newline that is not part of
                // the value (a password file, say).
                Ok(Ok(text)) => Ok((text.trim_end_matches(['\r', '\n']).to_string(), false)),
                Ok(Err(why)) => Err(ExpandError {
                    message: format!("cannot read `${{file:{path}}}` ({}): {why}", full.display()),
                    help: None,
                }),
                Err(error) => Err(ExpandError { message: format!("`${{file:{path}}}`: {error}"), help: None }),
            }
        }
    }
}

/// Calls `visit` with the field path, role and template of every template in
/// the profile, in file order. The one walk shared by checking and expanding,
/// so a new template field cannot be forgotten by one of them.
pub fn visit_templates(profile: &mut Profile, visit: &mut dyn FnMut(&str, TemplateRole, &mut Template)) {
    let net = &mut profile.network;
    for (key, value) in [("ip", &mut net.ip), ("mask", &mut net.mask), ("gateway", &mut net.gateway)] {
        if let Some(t) = value {
            visit(&format!("network.{key}"), TemplateRole::Text, t);
        }
    }
    for (i, step) in profile.steps.iter_mut().enumerate() {
        step.visit_templates(i, visit);
    }
}

/// A secret is stored in clear text unless it is exactly one reference to the
/// environment, a file, or a variable declared secret.
pub fn is_clear_text_secret(text: &str, secret_variables: &[String]) -> bool {
    match parse(text).as_deref() {
        Ok([Piece::Reference(Reference::Env(_) | Reference::File(_))]) => false,
        Ok([Piece::Reference(Reference::Device(name))]) => !secret_variables.contains(name),
        Ok([]) => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(device: &super::super::DeviceValues, redact: bool) -> Sources<'_> {
        Sources {
            device,
            defaults: BTreeMap::from([("user".to_string(), "root".to_string())]),
            secret_variables: vec!["pw".into()],
            base_dir: Path::new("."),
            env: &|name| (name == "HOME_LAB").then(|| "lab".to_string()),
            redact,
        }
    }

    #[test]
    fn parses_all_reference_kinds() {
        let pieces = parse("a ${ip} ${env:X_Y} ${file:pw.txt} $$ $5").unwrap();
        assert_eq!(
            pieces,
            vec![
                Piece::Literal("a ".into()),
                Piece::Reference(Reference::Device("ip".into())),
                Piece::Literal(" ".into()),
                Piece::Reference(Reference::Env("X_Y".into())),
                Piece::Literal(" ".into()),
                Piece::Reference(Reference::File("pw.txt".into())),
                Piece::Literal(" $ $5".into()),
            ]
        );
    }

    #[test]
    fn rejects_bad_syntax() {
        assert!(parse("${ip").unwrap_err().contains("unterminated"));
        assert!(parse("${}").unwrap_err().contains("not a variable name"));
        assert!(parse("${vault:x}").unwrap_err().contains("unknown source `vault`"));
        assert!(parse("${env:}").is_err());
    }

    #[test]
    fn expands_with_roles() {
        let device = super::super::DeviceValues::from([("ip", "10.0.0.5"), ("pw", "hunter2")]);
        let s = sources(&device, false);
        assert_eq!(expand("${user}@${ip}", TemplateRole::Text, &s).unwrap(), "root@10.0.0.5");
        assert_eq!(expand("IP ${ip}", TemplateRole::Regex, &s).unwrap(), r"IP 10\.0\.0\.5");
        assert_eq!(expand("${env:HOME_LAB}", TemplateRole::Text, &s).unwrap(), "lab");
        assert!(expand("${env:NOPE}", TemplateRole::Text, &s).unwrap_err().message.contains("NOPE"));
        assert!(expand("${gw}", TemplateRole::Text, &s).unwrap_err().message.contains("`gw`"));
        let shown = sources(&device, true);
        assert_eq!(expand("${pw}", TemplateRole::Text, &shown).unwrap(), "***");
        assert_eq!(expand("Netsilicon", TemplateRole::Secret, &shown).unwrap(), "***");
    }

    #[test]
    fn clear_text_secrets() {
        let secret = vec!["pw".to_string()];
        assert!(is_clear_text_secret("Netsilicon", &secret));
        assert!(is_clear_text_secret("${ip}", &secret));
        assert!(is_clear_text_secret("x${env:P}", &secret));
        assert!(!is_clear_text_secret("${env:P}", &secret));
        assert!(!is_clear_text_secret("${file:pw}", &secret));
        assert!(!is_clear_text_secret("${pw}", &secret));
    }
}
