//! The profile format's primitives: [`Template`] (text that may hold
//! `${...}` variables), [`Secret`] (a password, which serializes as `***`)
//! and [`HumanDuration`] (`500ms`, `30s`, `2m`).
//!
//! Only the types, their parsing and their JSON Schema live here; finding
//! and filling in the variables of a template is `vars`'s job.

use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A string that may contain `${name}`, `${env:NAME}` or `${file:path}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Template(pub String);

impl Template {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl JsonSchema for Template {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Template".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "Text that may use ${name} (a device variable), ${env:NAME} or ${file:path}."
        })
    }
}

/// A secret (password). Reads like a [`Template`]; always serializes as `***`
/// and debug-prints as `***`, so it cannot leak through reports or logs.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub Template);

impl Secret {
    /// The value itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

impl JsonSchema for Secret {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Secret".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A password: prefer ${env:NAME} or ${file:path}; clear text is accepted with a warning."
        })
    }
}

/// A duration written as `500ms`, `30s`, `2m`, `1h` (or a bare number of seconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub const fn from_secs(secs: u64) -> Self {
        HumanDuration(Duration::from_secs(secs))
    }
    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }
}

impl std::str::FromStr for HumanDuration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let value: f64 = number.parse().map_err(|_| format!("`{text}` is not a duration (use e.g. 500ms, 30s, 2m)"))?;
        let scale = match unit.trim() {
            "ms" => 0.001,
            "" | "s" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            other => {
                return Err(format!("unknown duration unit `{other}` in `{text}` (use ms, s, m or h)"));
            }
        };
        let secs = value * scale;
        // A week is far beyond any step's sensible wait and keeps the f64 exact.
        if !secs.is_finite() || secs > 7.0 * 24.0 * 3600.0 {
            return Err(format!("duration `{text}` is out of range (at most 7 days)"));
        }
        Ok(HumanDuration(Duration::from_secs_f64(secs)))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms.is_multiple_of(1000) { write!(f, "{}s", ms / 1000) } else { write!(f, "{ms}ms") }
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as 500ms, 30s or 2m")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<HumanDuration, E> {
                format!("{v}s").parse().map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<HumanDuration, E> {
                if v < 0 {
                    return Err(E::custom(format!("duration {v} is negative")));
                }
                self.visit_u64(v as u64)
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<HumanDuration, E> {
                format!("{v}s").parse().map_err(E::custom)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<HumanDuration, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A duration: 500ms, 30s, 2m, 1h, or a number of seconds.",
            "oneOf": [
                { "type": "string", "pattern": "^\\s*[0-9]+(\\.[0-9]+)?\\s*(ms|s|m|min|h)?\\s*$" },
                { "type": "number", "minimum": 0 }
            ]
        })
    }
}

// The `${...}` syntax a template is written in.

/// Device fields every profile may use without declaring them.
pub const BUILTIN_VARIABLES: [&str; 5] = ["name", "port", "ip", "mask", "gateway"];

/// One `${...}` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Device(String),
    Env(String),
    File(String),
}

/// What a template is used for, which decides how values are put into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateRole {
    /// Plain text.
    Text,
    /// A password: never displayed.
    Secret,
    /// A regular expression: substituted values are escaped so `192.168.1.5`
    /// matches only itself.
    Regex,
    /// A path relative to the profile's folder.
    Path,
}

/// Splits a template into literal text and references, or says what is wrong
/// with its `${...}` syntax.
pub fn parse(text: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        literal.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(after) = rest.strip_prefix("$$") {
            literal.push('$');
            rest = after;
            continue;
        }
        let Some(body_start) = rest.strip_prefix("${") else {
            literal.push('$');
            rest = &rest[1..];
            continue;
        };
        let Some(end) = body_start.find('}') else {
            return Err(format!("unterminated `${{` in `{text}` (write `$$` for a literal `$`)"));
        };
        let body = &body_start[..end];
        rest = &body_start[end + 1..];
        if !literal.is_empty() {
            pieces.push(Piece::Literal(std::mem::take(&mut literal)));
        }
        pieces.push(Piece::Reference(parse_reference(body)?));
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal));
    }
    Ok(pieces)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Literal(String),
    Reference(Reference),
}

fn parse_reference(body: &str) -> Result<Reference, String> {
    let valid_name =
        |name: &str| !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if let Some(name) = body.strip_prefix("env:") {
        if !valid_name(name) {
            return Err(format!("`${{{body}}}`: environment variable name `{name}` is not valid"));
        }
        return Ok(Reference::Env(name.to_string()));
    }
    if let Some(path) = body.strip_prefix("file:") {
        if path.trim().is_empty() {
            return Err(format!("`${{{body}}}`: the file path is empty"));
        }
        return Ok(Reference::File(path.to_string()));
    }
    if let Some((kind, _)) = body.split_once(':') {
        return Err(format!("`${{{body}}}`: unknown source `{kind}` (use ${{name}}, ${{env:NAME}} or ${{file:path}})"));
    }
    if !valid_name(body) {
        return Err(format!("`${{{body}}}` is not a variable name (letters, digits, `_` and `-`)"));
    }
    Ok(Reference::Device(body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!("500ms".parse::<HumanDuration>().unwrap().0, Duration::from_millis(500));
        assert_eq!("30s".parse::<HumanDuration>().unwrap().0, Duration::from_secs(30));
        assert_eq!("2m".parse::<HumanDuration>().unwrap().0, Duration::from_secs(120));
        assert_eq!("1.5".parse::<HumanDuration>().unwrap().0, Duration::from_millis(1500));
        assert!("10 parsecs".parse::<HumanDuration>().is_err());
        assert!("s".parse::<HumanDuration>().is_err());
        assert!("1e300s".parse::<HumanDuration>().is_err());
        assert_eq!(HumanDuration(Duration::from_millis(1500)).to_string(), "1500ms");
    }

    #[test]
    fn secrets_never_serialize() {
        let secret = Secret(Template("Netsilicon".into()));
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"***\"");
        assert!(!format!("{secret:?}").contains("Netsilicon"));
    }
}
