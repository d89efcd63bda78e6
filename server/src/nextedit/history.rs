//! The user's recent edits of each document, from the server's own `didChange` stream: keystrokes
//! that touch the same place (or the same line) coalesce into one logical edit, which remembers
//! the text and tree from before it began, so a prediction can compare "before" and "now".

use std::collections::{HashMap, VecDeque};

use parking_lot::Mutex;
use ropey::Rope;
use tree_sitter::Tree;

use super::Prediction;
use crate::document::{Change, Document};
use crate::position::{self, Encoding, LinePos};

/// How many finished logical edits a document keeps.
const FINISHED: usize = 8;
/// The longest text a finished logical edit keeps of each side.
const MAX_KEPT_TEXT: usize = 4096;

/// The logical edit being made: chars `start..old_end` of `base` became chars `start..new_end`
/// of the document's text at `revision` (the text before `start` is the same in both).
#[derive(Debug, Clone)]
pub struct Group {
    /// The text before the group's first keystroke.
    pub base: Rope,
    /// Its syntax tree, when it had one.
    pub base_tree: Option<Tree>,
    pub start: usize,
    pub old_end: usize,
    pub new_end: usize,
    /// The document revision this group is in step with.
    pub revision: u64,
}

impl Group {
    /// The replaced text.
    pub fn old_text(&self) -> String {
        self.base.slice(self.start..self.old_end).to_string()
    }

    /// The text that replaced it, in `current` (the document at `self.revision`).
    pub fn new_text(&self, current: &Rope) -> String {
        current.slice(self.start..self.new_end.min(current.len_chars())).to_string()
    }
}

/// A finished logical edit, kept as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicalEdit {
    /// The zero-based line where it began.
    pub line: usize,
    pub old: String,
    pub new: String,
}

/// One document's edits.
#[derive(Debug, Default, Clone)]
pub struct History {
    /// Oldest first.
    pub finished: VecDeque<LogicalEdit>,
    pub current: Option<Group>,
    /// The last prediction served, while the user accepts its edits one at a time (as clients
    /// that show one edit do); any other change drops it.
    pub pending: Option<Pending>,
}

/// A served prediction and the revision its edits apply to.
#[derive(Debug, Clone)]
pub struct Pending {
    pub revision: u64,
    pub prediction: Prediction,
}

impl History {
    /// Takes in one `didChange`: `before` is the document just before `changes` were applied,
    /// `after` just after.
    pub fn record(&mut self, before: &Document, after: &Document, changes: &[Change], encoding: Encoding) {
        let single = match changes {
            [Change { range: Some((start, end)), text }] => Some((*start, *end, text.as_str())),
            _ => None,
        };
        let in_step = self.current.as_ref().is_some_and(|g| g.revision == before.revision);
        if let Some(pending) = self.pending.take()
            && let Some((start, end, text)) = single
            && pending.revision == before.revision
            && let Some(rest) = pending.accept(&before.rope, start, end, text, encoding)
        {
            // One of the predicted edits, accepted: the rest of the prediction still holds, and
            // the user's logical edit is over.
            self.finish(in_step.then_some(before));
            if !rest.edits.is_empty() {
                self.pending = Some(Pending { revision: after.revision, prediction: rest });
            }
            return;
        }
        let Some((start, end, text)) = single else {
            // Several changes at once (an applied edit, multiple cursors) or a whole new text:
            // not a keystroke of the user's, and nothing to compare with afterwards.
            self.finish(in_step.then_some(before));
            return;
        };
        let mut s = position::to_char(&before.rope, start, encoding);
        let mut e = position::to_char(&before.rope, end, encoding);
        if e < s {
            std::mem::swap(&mut s, &mut e);
        }
        let inserted = text.chars().count();
        if in_step
            && let Some(group) = self.current.as_mut()
            && coalesces(group, &before.rope, s, e, text)
        {
            let new_start = group.start.min(s);
            let covered_end = group.new_end.max(e);
            group.old_end += e.saturating_sub(group.new_end);
            group.start = new_start;
            group.new_end = covered_end + inserted - (e - s);
            group.revision = after.revision;
            return;
        }
        self.finish(in_step.then_some(before));
        self.current = Some(Group {
            base: before.rope.clone(),
            base_tree: before.tree.clone(),
            start: s,
            old_end: e,
            new_end: s + inserted,
            revision: after.revision,
        });
    }

    /// Ends the current group; `current` is the text it is in step with, if any.
    fn finish(&mut self, current: Option<&Document>) {
        let Some(group) = self.current.take() else { return };
        let Some(current) = current else { return };
        let old = group.old_text();
        let new = group.new_text(&current.rope);
        if old == new || old.len() > MAX_KEPT_TEXT || new.len() > MAX_KEPT_TEXT {
            return;
        }
        let line = group.base.char_to_line(group.start.min(group.base.len_chars()));
        self.finished.push_back(LogicalEdit { line, old, new });
        while self.finished.len() > FINISHED {
            self.finished.pop_front();
        }
    }
}

impl Pending {
    /// The prediction left once the change `start..end` → `text` (on `rope`) is accepted, if that
    /// change is one of its edits; the others move with the text.
    fn accept(&self, rope: &Rope, start: LinePos, end: LinePos, text: &str, encoding: Encoding) -> Option<Prediction> {
        let s = position::to_char(rope, start, encoding);
        let e = position::to_char(rope, end, encoding);
        let accepted = self.prediction.edits.iter().position(|x| x.start == s && x.end == e && x.text == text)?;
        let grown = text.chars().count() as isize - (e - s) as isize;
        let mut rest = self.prediction.clone();
        rest.edits.remove(accepted);
        for edit in &mut rest.edits {
            if edit.start >= e {
                edit.start = edit.start.saturating_add_signed(grown);
                edit.end = edit.end.saturating_add_signed(grown);
            }
        }
        Some(rest)
    }
}

/// Whether a change of chars `s..e` into `text` continues `group`: it touches the group's region,
/// or both lie on one line.
fn coalesces(group: &Group, rope: &Rope, s: usize, e: usize, text: &str) -> bool {
    if s <= group.new_end && e >= group.start {
        return true;
    }
    if text.contains(['\n', '\r']) {
        return false;
    }
    let line = |at: usize| rope.char_to_line(at.min(rope.len_chars()));
    let group_line = line(group.start);
    line(group.new_end) == group_line && line(s) == group_line && line(e) == group_line
}

/// Every open document's history. Written by `didChange` under the document store's lock (so the
/// two move in step); read by prediction requests, which check the group's revision.
#[derive(Default)]
pub struct Histories {
    documents: Mutex<HashMap<String, History>>,
}

impl Histories {
    pub fn record(&self, before: &Document, after: &Document, changes: &[Change], encoding: Encoding) {
        let mut documents = self.documents.lock();
        documents.entry(after.uri.to_string()).or_default().record(before, after, changes, encoding);
    }

    /// Notes the prediction served for the document's text at `revision`.
    pub fn remember(&self, uri: &str, revision: u64, prediction: &Prediction) {
        if let Some(history) = self.documents.lock().get_mut(uri) {
            history.pending = Some(Pending { revision, prediction: prediction.clone() });
        }
    }

    pub fn forget(&self, uri: &str) {
        self.documents.lock().remove(uri);
    }

    /// A copy of the document's history (O(1) for its ropes and trees).
    pub fn get(&self, uri: &str) -> Option<History> {
        self.documents.lock().get(uri).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::nextedit::tests::Typist;

    /// The logical edit being made: what it replaced and what it wrote.
    fn current(t: &Typist) -> (String, String) {
        let group = t.history.current.as_ref().expect("a group");
        assert_eq!(group.revision, t.doc.revision);
        (group.old_text(), group.new_text(&t.doc.rope))
    }

    #[test]
    fn keystrokes_in_one_word_coalesce_into_one_replacement() {
        let mut t = Typist::new("python", "count = 0\nprint(count)\n");
        // Select `count`, type `t`, `o`, a typo, a backspace, then `tal`.
        t.change(0, 0, 5, "t");
        t.change(0, 1, 1, "o");
        t.change(0, 2, 2, "x");
        t.change(0, 2, 3, "");
        t.change(0, 2, 2, "tal");
        assert_eq!(current(&t), ("count".into(), "total".into()));
        assert_eq!(t.doc.text(), "total = 0\nprint(count)\n");
    }

    #[test]
    fn edits_on_one_line_coalesce_and_another_line_starts_a_new_group() {
        let mut t = Typist::new("python", "print(a)\nprint(b)\n");
        t.change(0, 0, 5, "log");
        t.change(0, 4, 5, "x");
        assert_eq!(current(&t), ("print(a".into(), "log(x".into()));
        t.change(1, 0, 0, "#");
        assert_eq!(current(&t), ("".into(), "#".into()));
        assert_eq!(
            t.history.finished.back(),
            Some(&LogicalEdit { line: 0, old: "print(a".into(), new: "log(x".into() })
        );
    }

    #[test]
    fn several_changes_at_once_end_the_group() {
        let mut t = Typist::new("python", "a\nb\n");
        t.change(0, 0, 1, "x");
        let before = t.doc.clone();
        let changes = [
            Change {
                range: Some((LinePos { line: 1, character: 0 }, LinePos { line: 1, character: 1 })),
                text: "y".into(),
            },
            Change {
                range: Some((LinePos { line: 0, character: 0 }, LinePos { line: 0, character: 1 })),
                text: "z".into(),
            },
        ];
        t.doc.apply_changes(9, &changes, Encoding::Utf16);
        t.history.record(&before, &t.doc, &changes, Encoding::Utf16);
        assert!(t.history.current.is_none());
        assert_eq!(t.history.finished.len(), 1);
    }

    #[test]
    fn a_change_the_history_did_not_see_starts_afresh() {
        let mut t = Typist::new("python", "abc\n");
        t.change(0, 0, 1, "x");
        // A change applied without the history seeing it (as if recorded elsewhere).
        t.doc.apply_changes(7, &[Change { range: None, text: "other\n".into() }], Encoding::Utf16);
        t.change(0, 0, 1, "O");
        assert_eq!(current(&t), ("o".into(), "O".into()));
        assert!(t.history.finished.is_empty(), "a group out of step is dropped, not kept as text");
    }
}
