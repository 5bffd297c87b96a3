//! The YAML text of a profile or inventory as a tree of positioned nodes.
//!
//! serde gives typed values but forgets where they came from, and stops at the
//! first problem. This module parses the same text once more, with the parser
//! serde-saphyr itself uses, into a small tree that remembers the line and
//! column of every key and value. Validation uses it to point each problem at
//! `file:line:column`, to name the field path of a deserializer error, and to
//! find duplicate keys and every unknown key at once. It does not interpret
//! values: that is serde's job.

use std::collections::BTreeMap;

use granit_parser::{Event, Parser};

/// A 1-based line and column in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// A YAML node with its position.
#[derive(Debug, Clone)]
pub struct Node {
    pub at: Position,
    pub kind: NodeKind,
}

#[derive(Debug, Clone)]
pub enum NodeKind {
    Scalar(String),
    Sequence(Vec<Node>),
    /// Entries in file order; keys that are not scalars are kept as `?`.
    Mapping(Vec<Entry>),
    /// An alias (`*name`); its target is not expanded here.
    Alias,
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    pub key_at: Position,
    pub value: Node,
}

/// A syntax problem found while building the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxProblem {
    pub at: Position,
    pub path: String,
    pub message: String,
}

/// The parsed tree plus an index from field paths to positions.
#[derive(Debug, Clone)]
pub struct SourceTree {
    pub root: Option<Node>,
    positions: BTreeMap<String, Position>,
    /// SHA-256 (hex) of the text parsed.
    sha256: String,
}

impl SourceTree {
    /// SHA-256 (hex) of the text this tree was parsed from.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Parse `text`. A YAML syntax error, a second document or a duplicate key
    /// comes back as a problem; everything found before it is still indexed.
    pub fn parse(text: &str) -> (SourceTree, Vec<SyntaxProblem>) {
        let mut builder = Builder::default();
        let mut problems = Vec::new();
        let mut documents = 0;
        for item in Parser::new_from_str(text) {
            match item {
                Ok((event, span)) => {
                    let at = Position { line: span.start.line(), column: span.start.col() + 1 };
                    if matches!(event, Event::DocumentStart(..)) {
                        documents += 1;
                        if documents > 1 {
                            problems.push(SyntaxProblem {
                                at,
                                path: String::new(),
                                message: "a second YAML document (`---`): a file holds one".into(),
                            });
                            break;
                        }
                    }
                    builder.event(event, at);
                }
                Err(error) => {
                    let marker = error.marker();
                    problems.push(SyntaxProblem {
                        at: Position { line: marker.line(), column: marker.col() + 1 },
                        path: String::new(),
                        message: format!("YAML syntax: {}", error.info()),
                    });
                    break;
                }
            }
        }
        let root = builder.finish();
        let sha256 = crate::digest::sha256_hex(text.as_bytes());
        let mut tree = SourceTree { root, positions: BTreeMap::new(), sha256 };
        if let Some(root) = tree.root.clone() {
            tree.index(&root, String::new(), &mut problems);
        }
        (tree, problems)
    }

    fn index(&mut self, node: &Node, path: String, problems: &mut Vec<SyntaxProblem>) {
        self.positions.entry(path.clone()).or_insert(node.at);
        match &node.kind {
            NodeKind::Mapping(entries) => {
                let mut seen: BTreeMap<&str, Position> = BTreeMap::new();
                for entry in entries {
                    let child = join_key(&path, &entry.key);
                    if let Some(first) = seen.get(entry.key.as_str()) {
                        problems.push(SyntaxProblem {
                            at: entry.key_at,
                            path: child.clone(),
                            message: format!(
                                "duplicate key `{}` (first at line {}, column {})",
                                entry.key, first.line, first.column
                            ),
                        });
                        continue;
                    }
                    seen.insert(&entry.key, entry.key_at);
                    self.positions.insert(format!("{child}#key"), entry.key_at);
                    self.index(&entry.value, child, problems);
                }
            }
            NodeKind::Sequence(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.index(item, format!("{path}[{i}]"), problems);
                }
            }
            NodeKind::Scalar(_) | NodeKind::Alias => {}
        }
    }

    /// Position of the value at `path` (`steps[2].ftp_upload.files[0]`), or of
    /// its nearest ancestor that exists (a missing field points at its parent).
    pub fn position(&self, path: &str) -> Position {
        let mut path = path.to_string();
        loop {
            if let Some(at) = self.positions.get(&path) {
                return *at;
            }
            match parent_path(&path) {
                Some(parent) => path = parent,
                None => return Position { line: 1, column: 1 },
            }
        }
    }

    /// Position of the key naming the field at `path`, if it is a mapping key.
    pub fn key_position(&self, path: &str) -> Option<Position> {
        self.positions.get(&format!("{path}#key")).copied()
    }

    /// The field path of the deepest node at `at`, for errors that only carry a
    /// position (serde's). A key's own position maps to its field.
    pub fn path_at(&self, at: Position) -> Option<String> {
        self.positions
            .iter()
            .filter(|(_, p)| **p == at)
            .map(|(path, _)| path.trim_end_matches("#key").to_string())
            .max_by_key(|path| path.len())
    }

    /// The field path of the node that starts closest before `at`, for errors
    /// that point inside a value.
    pub fn path_near(&self, at: Position) -> Option<String> {
        if let Some(exact) = self.path_at(at) {
            return Some(exact);
        }
        self.positions
            .iter()
            .filter(|(_, p)| **p <= at)
            .max_by(|a, b| a.1.cmp(b.1).then(a.0.len().cmp(&b.0.len())))
            .map(|(path, _)| path.trim_end_matches("#key").to_string())
    }

    /// The node at `path`, if present.
    pub fn node(&self, path: &str) -> Option<&Node> {
        let mut node = self.root.as_ref()?;
        for part in split_path(path) {
            node = match (&node.kind, part) {
                (NodeKind::Mapping(entries), PathPart::Key(key)) => &entries.iter().find(|e| e.key == key)?.value,
                (NodeKind::Sequence(items), PathPart::Index(i)) => items.get(i)?,
                _ => return None,
            };
        }
        Some(node)
    }
}

/// `parent.key`, or `key` at the root.
pub fn join_key(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

fn parent_path(path: &str) -> Option<String> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(path[..cut].to_string())
}

enum PathPart<'a> {
    Key(&'a str),
    Index(usize),
}

fn split_path(path: &str) -> Vec<PathPart<'_>> {
    let mut parts = Vec::new();
    for segment in path.split('.').filter(|s| !s.is_empty()) {
        let (key, mut rest) = match segment.find('[') {
            Some(i) => (&segment[..i], &segment[i..]),
            None => (segment, ""),
        };
        if !key.is_empty() {
            parts.push(PathPart::Key(key));
        }
        while let Some(end) = rest.find(']') {
            if let Ok(i) = rest[1..end].parse() {
                parts.push(PathPart::Index(i));
            }
            rest = &rest[end + 1..];
        }
    }
    parts
}

/// Builds the tree from parser events with an explicit stack (no recursion, so
/// deeply nested input cannot overflow the stack).
#[derive(Default)]
struct Builder {
    stack: Vec<Open>,
    root: Option<Node>,
}

enum Open {
    Sequence(Position, Vec<Node>),
    Mapping(Position, Vec<Entry>, Option<(String, Position)>),
}

impl Builder {
    fn event(&mut self, event: Event<'_>, at: Position) {
        match event {
            Event::Scalar(value, ..) => self.push(Node { at, kind: NodeKind::Scalar(value.into_owned()) }),
            Event::Alias(_) | Event::UnresolvedAlias(_) => self.push(Node { at, kind: NodeKind::Alias }),
            Event::SequenceStart(..) => self.stack.push(Open::Sequence(at, Vec::new())),
            Event::MappingStart(..) => self.stack.push(Open::Mapping(at, Vec::new(), None)),
            Event::SequenceEnd | Event::MappingEnd => {
                let node = match self.stack.pop() {
                    Some(Open::Sequence(at, items)) => Node { at, kind: NodeKind::Sequence(items) },
                    Some(Open::Mapping(at, entries, _)) => Node { at, kind: NodeKind::Mapping(entries) },
                    None => return,
                };
                self.push(node);
            }
            _ => {}
        }
    }

    fn push(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Open::Sequence(_, items)) => items.push(node),
            Some(Open::Mapping(_, entries, pending)) => match pending.take() {
                None => {
                    let key = match &node.kind {
                        NodeKind::Scalar(text) => text.clone(),
                        _ => "?".to_string(),
                    };
                    *pending = Some((key, node.at));
                }
                Some((key, key_at)) => entries.push(Entry { key, key_at, value: node }),
            },
        }
    }

    fn finish(mut self) -> Option<Node> {
        // A syntax error can leave collections open: close them so what was read
        // before the error is still indexed.
        while !self.stack.is_empty() {
            self.event(Event::MappingEnd, Position::default());
        }
        self.root
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "format: 1\nserial:\n  baud: 9600\nsteps:\n  - load_image:\n      file: a.bin\n  - ftp_upload:\n      files:\n        - local: rom.bin\n";

    #[test]
    fn positions_of_nested_fields() {
        let (tree, problems) = SourceTree::parse(TEXT);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(tree.position("serial.baud"), Position { line: 3, column: 9 });
        assert_eq!(tree.key_position("serial.baud"), Some(Position { line: 3, column: 3 }));
        assert_eq!(tree.position("steps[1].ftp_upload.files[0].local"), Position { line: 9, column: 18 });
        // A missing field points at its nearest parent.
        assert_eq!(tree.position("serial.parity"), tree.position("serial"));
        assert_eq!(tree.path_at(Position { line: 6, column: 7 }).as_deref(), Some("steps[0].load_image.file"));
    }

    #[test]
    fn duplicate_keys_name_both_places() {
        let (_, problems) = SourceTree::parse("serial:\n  baud: 1\n  baud: 2\n");
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].path, "serial.baud");
        assert_eq!(problems[0].at, Position { line: 3, column: 3 });
        assert!(problems[0].message.contains("first at line 2, column 3"));
    }

    #[test]
    fn syntax_errors_have_positions() {
        let (_, problems) = SourceTree::parse("a: [1, 2\nb: 3\n");
        assert_eq!(problems.len(), 1);
        assert!(problems[0].message.starts_with("YAML syntax"));
        assert!(problems[0].at.line >= 1);
    }

    #[test]
    fn node_lookup_by_path() {
        let (tree, _) = SourceTree::parse(TEXT);
        match &tree.node("steps[0].load_image.file").unwrap().kind {
            NodeKind::Scalar(text) => assert_eq!(text, "a.bin"),
            other => panic!("{other:?}"),
        }
        assert!(tree.node("steps[5]").is_none());
    }
}
