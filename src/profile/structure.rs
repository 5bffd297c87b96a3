//! Structural check of a YAML tree against the profile's JSON Schema: every
//! unknown key (with a did-you-mean), every unknown step kind and every list or
//! mapping in the wrong place, all in one pass.
//!
//! serde stops at the first such problem; this pass runs first so a user sees
//! them all. It only looks at keys and the shape of collections; scalar types
//! and values are left to serde and `validate`. The schema is the one
//! `flashline profile schema` prints, so the two can never disagree.

use serde_json::Value;

use super::problem::{Problems, Severity, did_you_mean};
use super::source::{Node, NodeKind, join_key};

/// Checks `node` against `schema` (a root schema with `$defs`).
pub fn check(schema: &Value, node: &Node, problems: &mut Problems<'_>) {
    Walker { root: schema }.walk(schema, node, "", problems, 0);
}

struct Walker<'s> {
    root: &'s Value,
}

/// Schemas nest far less deeply than this; the limit only guards against a
/// reference cycle.
const MAX_DEPTH: usize = 64;

impl<'s> Walker<'s> {
    fn resolve(&self, mut schema: &'s Value) -> &'s Value {
        for _ in 0..MAX_DEPTH {
            let Some(reference) = schema.get("$ref").and_then(Value::as_str) else {
                break;
            };
            let Some(name) = reference.strip_prefix("#/$defs/") else {
                break;
            };
            match self.root.get("$defs").and_then(|d| d.get(name)) {
                Some(target) => schema = target,
                None => break,
            }
        }
        schema
    }

    fn walk(&self, schema: &'s Value, node: &Node, path: &str, problems: &mut Problems<'_>, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        let schema = self.resolve(schema);
        if let NodeKind::Alias = node.kind {
            return;
        }
        // Option<T> is `anyOf: [T, null]`; enums of objects are `oneOf`.
        if let Some(variants) = schema.get("oneOf").or_else(|| schema.get("anyOf")).and_then(Value::as_array) {
            self.walk_variants(schema, variants, node, path, problems, depth);
            return;
        }
        if let (Some(values), NodeKind::Scalar(text)) = (schema.get("enum").and_then(Value::as_array), &node.kind) {
            let strings: Vec<&str> = values.iter().filter_map(Value::as_str).collect();
            if !strings.is_empty() && !strings.contains(&text.as_str()) {
                let problem = problems.error(path, format!("`{text}` is not one of: {}", strings.join(", ")));
                if let Some(guess) = did_you_mean(text, strings.iter().copied()) {
                    problem.help(format!("did you mean `{guess}`?"));
                }
            }
            return;
        }
        match (types(schema).as_slice(), &node.kind) {
            (t, NodeKind::Mapping(entries)) if t.contains(&"object") => {
                self.walk_mapping(schema, entries, path, problems, depth)
            }
            (t, NodeKind::Sequence(items)) if t.contains(&"array") => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.walk(item_schema, item, &format!("{path}[{i}]"), problems, depth + 1);
                    }
                }
            }
            (t, NodeKind::Mapping(_)) if !t.is_empty() && !t.contains(&"object") => {
                problems.error(path, format!("expected {}, found a mapping", describe(t)));
            }
            (t, NodeKind::Sequence(_)) if !t.is_empty() && !t.contains(&"array") => {
                problems.error(path, format!("expected {}, found a list", describe(t)));
            }
            (t, NodeKind::Scalar(text))
                if (t.contains(&"object") || t.contains(&"array"))
                // An empty value (`key:`) reads as null; Option fields allow it.
                && !(t.contains(&"null") && is_null(text)) =>
            {
                problems.error(path, format!("expected {}, found `{text}`", describe(t)));
            }
            (t, NodeKind::Scalar(text)) if !(t.contains(&"string") || t.contains(&"null") && is_null(text)) => {
                if let Some(message) = scalar_mismatch(schema, t, text) {
                    problems.error(path, message);
                }
            }
            _ => {}
        }
    }

    fn walk_mapping(
        &self,
        schema: &'s Value,
        entries: &[super::source::Entry],
        path: &str,
        problems: &mut Problems<'_>,
        depth: usize,
    ) {
        let properties = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties");
        for entry in entries {
            let child = join_key(path, &entry.key);
            if let Some(property) = properties.and_then(|p| p.get(&entry.key)) {
                self.walk(property, &entry.value, &child, problems, depth + 1);
                continue;
            }
            match additional {
                Some(Value::Bool(false)) => {
                    let known: Vec<&str> =
                        properties.map(|p| p.keys().map(String::as_str).collect()).unwrap_or_default();
                    let where_ = if path.is_empty() { "at the top level".to_string() } else { format!("in `{path}`") };
                    let problem = problems.at(
                        Severity::Error,
                        entry.key_at,
                        &child,
                        format!("unknown key `{}` {where_}", entry.key),
                    );
                    match did_you_mean(&entry.key, known.iter().copied()) {
                        Some(guess) => problem.help(format!("did you mean `{guess}`?")),
                        None => problem.help(format!("known keys: {}", known.join(", "))),
                    };
                }
                Some(additional @ Value::Object(_)) => self.walk(additional, &entry.value, &child, problems, depth + 1),
                _ => {}
            }
        }
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for key in required.iter().filter_map(Value::as_str) {
                if !entries.iter().any(|e| e.key == key) {
                    let where_ = if path.is_empty() { "at the top level".to_string() } else { format!("in `{path}`") };
                    problems.error(path, format!("missing key `{key}` {where_}"));
                }
            }
        }
    }

    /// Picks the variant the node means, so the problems reported are about it
    /// and not about every alternative.
    fn walk_variants(
        &self,
        schema: &'s Value,
        variants: &'s [Value],
        node: &Node,
        path: &str,
        problems: &mut Problems<'_>,
        depth: usize,
    ) {
        let resolved: Vec<&Value> = variants.iter().map(|v| self.resolve(v)).collect();
        let non_null: Vec<&Value> = resolved.iter().copied().filter(|v| types(v) != ["null"]).collect();
        if let NodeKind::Scalar(text) = &node.kind
            && is_null(text)
            && non_null.len() < resolved.len()
        {
            return;
        }
        // Externally tagged enum of structs: each variant is an object with one
        // required key naming it.
        let tags: Vec<&str> = non_null.iter().filter_map(|v| single_tag(v)).collect();
        if !tags.is_empty() {
            if let NodeKind::Mapping(entries) = &node.kind {
                if entries.len() != 1 {
                    let keys: Vec<&str> = entries.iter().map(|e| e.key.as_str()).collect();
                    problems
                        .error(
                            path,
                            format!("a step has exactly one kind, found {}: {}", entries.len(), keys.join(", ")),
                        )
                        .help(format!("step kinds: {}", tags.join(", ")));
                    return;
                }
                let entry = &entries[0];
                let child = join_key(path, &entry.key);
                match non_null.iter().find(|v| single_tag(v) == Some(entry.key.as_str())) {
                    Some(variant) => {
                        let inner = &variant["properties"][&entry.key];
                        self.walk(inner, &entry.value, &child, problems, depth + 1);
                    }
                    None => {
                        let problem = problems.at(
                            Severity::Error,
                            entry.key_at,
                            &child,
                            format!("unknown step kind `{}`", entry.key),
                        );
                        match did_you_mean(&entry.key, tags.iter().copied()) {
                            Some(guess) => problem.help(format!("did you mean `{guess}`?")),
                            None => problem.help(format!("step kinds: {}", tags.join(", "))),
                        };
                    }
                }
                return;
            }
            if let NodeKind::Scalar(text) = &node.kind {
                let strings: Vec<&str> = enum_strings(&non_null);
                if !strings.contains(&text.as_str()) {
                    problems
                        .error(path, format!("a step is a mapping such as `{}: {{...}}`, found `{text}`", tags[0]))
                        .help(format!("step kinds: {}", tags.join(", ")));
                }
                return;
            }
        }
        // A plain string enum (kebab-case values): check the value and suggest.
        let strings = enum_strings(&non_null);
        if !strings.is_empty() && strings.len() == non_null.len() {
            if let NodeKind::Scalar(text) = &node.kind {
                if !strings.contains(&text.as_str()) {
                    let problem = problems.error(path, format!("`{text}` is not one of: {}", strings.join(", ")));
                    if let Some(guess) = did_you_mean(text, strings.iter().copied()) {
                        problem.help(format!("did you mean `{guess}`?"));
                    }
                }
            } else {
                problems.error(path, format!("expected one of: {}", strings.join(", ")));
            }
            return;
        }
        if non_null.len() == 1 {
            self.walk(non_null[0], node, path, problems, depth + 1);
            return;
        }
        // Scalars with several forms (a duration: `30s` or a number).
        if let NodeKind::Scalar(text) = &node.kind
            && !non_null.is_empty()
            && !non_null.iter().any(|v| accepts_scalar(v, text))
        {
            let what = schema
                .get("description")
                .and_then(Value::as_str)
                .map(|d| d.trim_end_matches('.').to_lowercase())
                .unwrap_or_else(|| "another kind of value".into());
            problems.error(path, format!("`{text}` is not {}", with_article(&what)));
        }
    }
}

/// Why `text` cannot be a value of `types` (with the schema's bounds).
fn scalar_mismatch(schema: &Value, types: &[&str], text: &str) -> Option<String> {
    let trimmed = text.trim();
    if types.contains(&"integer") {
        let parsed = match trimmed.strip_prefix("0x").or_else(|| trimmed.strip_prefix("0X")) {
            Some(hex) => i128::from_str_radix(hex, 16).ok(),
            None => trimmed.parse::<i128>().ok(),
        };
        let Some(value) = parsed else {
            return Some(format!("expected {}, found `{text}`", describe(types)));
        };
        let min = schema.get("minimum").and_then(Value::as_f64);
        let max = schema.get("maximum").and_then(Value::as_f64);
        if min.is_some_and(|m| (value as f64) < m) || max.is_some_and(|m| (value as f64) > m) {
            let range = match (min, max) {
                (Some(min), Some(max)) => format!("{min}..={max}"),
                (Some(min), None) => format!("at least {min}"),
                (None, _) => format!("at most {}", max.unwrap_or_default()),
            };
            return Some(format!("{value} is out of range ({range})"));
        }
        return None;
    }
    if types.contains(&"number") && trimmed.parse::<f64>().is_err() {
        return Some(format!("expected {}, found `{text}`", describe(types)));
    }
    if types.contains(&"boolean") && !matches!(trimmed, "true" | "false" | "True" | "False" | "TRUE" | "FALSE") {
        return Some(format!("expected true or false, found `{text}`"));
    }
    None
}

/// Whether a scalar written as `text` fits `schema` (type and pattern only).
fn accepts_scalar(schema: &Value, text: &str) -> bool {
    let types = types(schema);
    if types.contains(&"string") {
        return match schema.get("pattern").and_then(Value::as_str) {
            Some(pattern) => regex::Regex::new(pattern).is_ok_and(|re| re.is_match(text)),
            None => true,
        };
    }
    scalar_mismatch(schema, &types, text).is_none() && !types.is_empty()
}

/// "a duration: ..." from a schema description "A duration: ...".
fn with_article(description: &str) -> String {
    if description.starts_with("a ") || description.starts_with("an ") {
        description.to_string()
    } else {
        format!("valid: {description}")
    }
}

fn types(schema: &Value) -> Vec<&str> {
    match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn describe(types: &[&str]) -> String {
    let words: Vec<&str> = types
        .iter()
        .filter(|t| **t != "null")
        .map(|t| match *t {
            "object" => "a mapping",
            "array" => "a list",
            "string" => "a string",
            "integer" => "an integer",
            "number" => "a number",
            "boolean" => "true or false",
            other => other,
        })
        .collect();
    words.join(" or ")
}

fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

/// The tag of an externally tagged variant: an object with exactly one
/// property that is also required.
fn single_tag(schema: &Value) -> Option<&str> {
    let properties = schema.get("properties")?.as_object()?;
    if properties.len() != 1 || schema.get("additionalProperties") != Some(&Value::Bool(false)) {
        return None;
    }
    properties.keys().next().map(String::as_str)
}

/// String values allowed by `const` / `enum` variants.
fn enum_strings<'v>(variants: &[&'v Value]) -> Vec<&'v str> {
    let mut out = Vec::new();
    for v in variants {
        if let Some(c) = v.get("const").and_then(Value::as_str) {
            out.push(c);
        }
        if let Some(values) = v.get("enum").and_then(Value::as_array) {
            out.extend(values.iter().filter_map(Value::as_str));
        }
    }
    out
}
