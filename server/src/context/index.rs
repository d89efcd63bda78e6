//! An index of a document's named definitions (functions, types, classes and their members),
//! cached across keystrokes.
//!
//! Walking every top-level item of a 10,000-line file costs about half a millisecond (a wide
//! node's children sit in a balanced tree of hidden nodes), more than the rest of a context
//! together. The index is built once per document version and, for the document being typed
//! in, reused for a few versions: typing happens inside the window, so definitions above it keep
//! their byte offsets and those below keep their distance from the end. Every use re-finds the
//! node in the current tree and drops what no longer matches, so a stale index can miss a
//! definition but never give a wrong one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use ropey::Rope;
use tree_sitter::Node;

use super::lang::{Fields, Spec, field};
use super::window::bytes;
use crate::document::Document;

/// Documents whose index is kept.
const CAPACITY: usize = 32;
/// How many versions the index of the document being edited may lag behind.
const MAX_LAG_VERSIONS: i32 = 32;
/// How many children of containers one index build may visit, so a huge file cannot stall a
/// keystroke.
const MAX_VISITS: usize = 8000;

/// Where a definition was when the index was built.
#[derive(Debug, Clone, Copy)]
struct Def {
    start: usize,
    end: usize,
    kind: u16,
}

#[derive(Debug)]
pub(crate) struct DocIndex {
    version: i32,
    len: usize,
    fingerprint: u64,
    by_name: HashMap<String, Vec<Def>>,
}

type Cache = Mutex<Vec<(Arc<str>, Arc<DocIndex>)>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(Vec::new()))
}

/// The index of `doc`, from the cache when it is fresh enough. `editing` says `doc` is the
/// document being typed in, whose index may lag a few versions.
pub(crate) fn index(doc: &Document, root: Node, spec: &Spec, f: Fields, editing: bool) -> Arc<DocIndex> {
    let len = doc.rope.len_bytes();
    let fingerprint = fingerprint(&doc.rope);
    let cached = cache()
        .lock()
        .ok()
        .and_then(|entries| entries.iter().find(|(uri, _)| **uri == *doc.uri).map(|(_, index)| Arc::clone(index)));
    if let Some(hit) = cached {
        let exact = hit.version == doc.version && hit.len == len && hit.fingerprint == fingerprint;
        let lag = doc.version - hit.version;
        if exact || (editing && lag > 0 && lag <= MAX_LAG_VERSIONS) {
            return hit;
        }
    }
    let built = Arc::new(build(&doc.rope, root, spec, f, doc.version, fingerprint));
    if let Ok(mut entries) = cache().lock() {
        entries.retain(|(uri, _)| **uri != *doc.uri);
        if entries.len() >= CAPACITY {
            entries.remove(0);
        }
        entries.push((Arc::clone(&doc.uri), Arc::clone(&built)));
    }
    built
}

impl DocIndex {
    /// The definitions named `name` in the current tree, skipping those that overlap `exclude`
    /// (byte offsets in the current text) and those the index no longer matches.
    pub fn find<'t>(
        &self,
        name: &str,
        doc: &Document,
        root: Node<'t>,
        f: Fields,
        exclude: Option<(usize, usize)>,
    ) -> Vec<Node<'t>> {
        let Some(defs) = self.by_name.get(name) else { return Vec::new() };
        let len = doc.rope.len_bytes();
        let fresh = self.version == doc.version && self.len == len;
        let mut out = Vec::new();
        for def in defs {
            let Some((start, end)) = self.place(def, len, fresh, exclude) else { continue };
            let Some(node) = node_at(root, start, end, def.kind) else { continue };
            // A stale entry may point at a definition renamed since.
            let named = fresh || definition_names(node, f).iter().any(|n| bytes(&doc.rope, n.byte_range()) == name);
            if named {
                out.push(node);
            }
        }
        out
    }

    /// Where `def` is now: where it was when fresh; otherwise above the window at the same
    /// offsets, or below it at the same distance from the end.
    fn place(&self, def: &Def, len: usize, fresh: bool, exclude: Option<(usize, usize)>) -> Option<(usize, usize)> {
        let Some((lo, hi)) = exclude else { return Some((def.start, def.end)) };
        if fresh {
            return (def.end <= lo || def.start >= hi).then_some((def.start, def.end));
        }
        if def.end <= lo {
            return Some((def.start, def.end));
        }
        let shift = |at: usize| (at + len).checked_sub(self.len);
        let (start, end) = (shift(def.start)?, shift(def.end)?);
        (start >= hi && end <= len).then_some((start, end))
    }
}

/// The node of kind `kind` spanning exactly `start..end`, if the tree has one.
fn node_at(root: Node, start: usize, end: usize, kind: u16) -> Option<Node> {
    if end > root.end_byte() || start >= end {
        return None;
    }
    let innermost = root.descendant_for_byte_range(start, start)?;
    for node in crate::syntax::ancestors(root, innermost) {
        if node.start_byte() != start || node.end_byte() > end {
            return None;
        }
        if node.end_byte() == end && node.kind_id() == kind {
            return Some(node);
        }
    }
    None
}

/// A cheap identity check for documents that share a URI and version (tests, re-opened files):
/// the length and a hash of both ends.
fn fingerprint(rope: &Rope) -> u64 {
    let len = rope.len_bytes();
    let head = rope.bytes_at(0).take(256);
    let tail = rope.bytes_at(len.saturating_sub(256));
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in head.chain(tail) {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    hash ^ len as u64
}

fn build(rope: &Rope, root: Node, spec: &Spec, f: Fields, version: i32, fingerprint: u64) -> DocIndex {
    let mut by_name: HashMap<String, Vec<Def>> = HashMap::new();
    let mut visits = 0;
    let mut stack = vec![root];
    'walk: while let Some(parent) = stack.pop() {
        let mut cursor = parent.walk();
        if !cursor.goto_first_child() {
            continue;
        }
        loop {
            let node = cursor.node();
            visits += 1;
            if visits > MAX_VISITS {
                break 'walk;
            }
            let kind = node.kind();
            // Code being typed is often broken; definitions inside an error node still count.
            if spec.containers.contains(&kind) || node.is_error() {
                stack.push(node);
            }
            if spec.definitions.contains(&kind) {
                let def = Def { start: node.start_byte(), end: node.end_byte(), kind: node.kind_id() };
                for name in definition_names(node, f) {
                    let text = bytes(rope, name.byte_range());
                    if text.len() >= 2 {
                        by_name.entry(text.into_owned()).or_default().push(def);
                    }
                }
            }
            if !cursor.goto_next_sibling() {
                break;
            }
        }
    }
    DocIndex { version, len: rope.len_bytes(), fingerprint, by_name }
}

/// The name nodes a definition introduces.
fn definition_names<'t>(node: Node<'t>, f: Fields) -> Vec<Node<'t>> {
    if let Some(name) = field(node, f.name) {
        return vec![innermost_name(name, f)];
    }
    let mut out = Vec::new();
    let mut cursor = node.walk();
    match node.kind() {
        // `const a = ..., b = ...` (JavaScript), `type A struct{}; type (B int; C string)` (Go).
        "lexical_declaration" | "variable_declaration" | "type_declaration" | "field_declaration"
            if field(node, f.declarator).is_none() =>
        {
            for child in node.named_children(&mut cursor) {
                if let Some(name) = field(child, f.name) {
                    out.push(innermost_name(name, f));
                }
            }
        }
        "template_declaration" => {
            if let Some(inner) = node.named_children(&mut cursor).last() {
                return definition_names(inner, f);
            }
        }
        _ => {
            if let Some(declarator) = field(node, f.declarator) {
                out.push(innermost_name(declarator, f));
            } else if let Some(name) = field(node, f.type_).and_then(|ty| field(ty, f.name)) {
                // `struct point { ... };` parses as a type without a declarator.
                out.push(name);
            }
        }
    }
    out
}

/// The identifier at the heart of a C declarator (`*f(int)` is `f`), a qualified name
/// (`a::b` is `b`), or a Java variable declarator.
fn innermost_name(mut node: Node, f: Fields) -> Node {
    for _ in 0..16 {
        match field(node, f.declarator).or_else(|| field(node, f.name)) {
            Some(next) if next.id() != node.id() => node = next,
            _ => break,
        }
    }
    node
}
