//! Next-edit prediction without LSP types: from a document's edit history and its syntax trees
//! (before the user's last logical edit and now) to the edits that follow it, as exact char
//! ranges on the current text. Deterministic and instant: a rename propagated through its scope
//! (`rename`), a line transformation applied to its siblings (`pattern`). Precision first: when a
//! rule is unsure it proposes nothing.

pub mod history;
pub mod model;
pub mod pattern;
pub mod rename;

use ropey::Rope;
use tree_sitter::Node;

use crate::document::Document;
use crate::syntax::Lang;
pub use history::{Group, Histories, History, LogicalEdit, Pending};

/// One proposed replacement of chars `start..end` of the current text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextEdit {
    pub start: usize,
    pub end: usize,
    pub text: String,
}

/// Which rule made a prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Rename,
    Pattern,
    Model,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Rename => "rename",
            Source::Pattern => "pattern",
            Source::Model => "model",
        }
    }
}

/// The edits predicted to follow the user's last one, nearest to the cursor first. They never
/// overlap each other or the user's own edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prediction {
    pub source: Source,
    pub edits: Vec<TextEdit>,
}

/// What the user's last logical edit predicts, on `doc` (which must be the text the history is in
/// step with), ordered by distance from the char `cursor`. `None` when nothing is sure enough.
pub fn predict(doc: &Document, history: &History, cursor: usize) -> Option<Prediction> {
    if let Some(pending) = history.pending.as_ref().filter(|p| p.revision == doc.revision) {
        let mut prediction = pending.prediction.clone();
        prediction.edits.sort_by_key(|e| (e.start.abs_diff(cursor), e.start));
        return Some(prediction);
    }
    let group = history.current.as_ref()?;
    if group.revision != doc.revision {
        return None;
    }
    let now = Side { rope: &doc.rope, tree: doc.tree.as_ref()?, lang: doc.lang? };
    let before = Side { rope: &group.base, tree: group.base_tree.as_ref()?, lang: now.lang };
    let edited = Edited::of(group, &doc.rope)?;
    let (source, mut edits) = match rename::predict(&before, &now, &edited) {
        Some(edits) => (Source::Rename, edits),
        None => (Source::Pattern, pattern::predict(&before, &now, &edited)?),
    };
    edits.retain(|e| e.end <= doc.rope.len_chars() && (e.end < edited.start || e.start > edited.new_end));
    edits.sort_by_key(|e| (e.start.abs_diff(cursor), e.start));
    let mut by_position: Vec<&TextEdit> = edits.iter().collect();
    by_position.sort_by_key(|e| e.start);
    if edits.is_empty() || by_position.windows(2).any(|w| w[0].end > w[1].start) {
        return None;
    }
    Some(Prediction { source, edits })
}

/// A text and its tree at one moment.
pub(crate) struct Side<'a> {
    pub rope: &'a Rope,
    pub tree: &'a tree_sitter::Tree,
    pub lang: Lang,
}

impl Side<'_> {
    /// The smallest named node spanning exactly bytes `start..end`, if one does.
    pub fn node_at(&self, start: usize, end: usize) -> Option<Node<'_>> {
        let node = self.tree.root_node().named_descendant_for_byte_range(start, end)?;
        (node.start_byte() == start && node.end_byte() == end).then_some(node)
    }
}

/// The user's last logical edit with its common beginning and end trimmed: chars
/// `start..old_end` of the text before became `start..new_end` of the text now.
#[derive(Debug, Clone)]
pub(crate) struct Edited {
    pub start: usize,
    pub old_end: usize,
    pub new_end: usize,
}

impl Edited {
    fn of(group: &Group, now: &Rope) -> Option<Edited> {
        let old = group.base.slice(group.start..group.old_end);
        let new = now.get_slice(group.start..group.new_end)?;
        let prefix = old.chars().zip(new.chars()).take_while(|(a, b)| a == b).count();
        let max_suffix = (old.len_chars() - prefix).min(new.len_chars() - prefix);
        let suffix = old.chars_at(old.len_chars()).reversed().zip(new.chars_at(new.len_chars()).reversed());
        let suffix = suffix.take(max_suffix).take_while(|(a, b)| a == b).count();
        let edited =
            Edited { start: group.start + prefix, old_end: group.old_end - suffix, new_end: group.new_end - suffix };
        (edited.old_end > edited.start || edited.new_end > edited.start).then_some(edited)
    }
}

/// How many bytes `old` and `new` share at their start, and then at their end (never counting a
/// byte twice): what a replacement of `old` by `new` can leave out.
pub(crate) fn shared_ends(old: &str, new: &str) -> (usize, usize) {
    let prefix: usize = old.chars().zip(new.chars()).take_while(|(a, b)| a == b).map(|(a, _)| a.len_utf8()).sum();
    let suffix: usize = old[prefix..]
        .chars()
        .rev()
        .zip(new[prefix..].chars().rev())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a.len_utf8())
        .sum();
    (prefix, suffix)
}

/// Whether `c` may be part of an identifier in the languages Glint parses.
pub(crate) fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// Whether a node kind is one of the grammars' identifier leaves.
pub(crate) fn is_identifier_kind(kind: &str) -> bool {
    kind.ends_with("identifier") || kind == "shorthand_property_identifier_pattern"
}

#[cfg(test)]
mod tests;
