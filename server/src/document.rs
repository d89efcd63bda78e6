//! An open document: its text as a rope, its version, and a tree-sitter tree kept in step with
//! every edit. Cloning is O(1) (the rope and the tree are shared), which is how readers snapshot.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ropey::Rope;
use tree_sitter::Tree;

use crate::position::{self, Encoding, LinePos};
use crate::syntax::{self, Lang, MAX_TREE_BYTES};

/// One content change of a `didChange` notification, in plain values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The replaced range, or `None` to replace the whole text.
    pub range: Option<(LinePos, LinePos)>,
    pub text: String,
}

/// Why a document has no syntax tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoTree {
    /// No grammar for this language; the document is plain text.
    UnknownLanguage,
    /// Over `MAX_TREE_BYTES`.
    TooLarge,
    /// Contains NUL bytes, so it is probably binary.
    Binary,
}

/// An open document.
#[derive(Debug, Clone)]
pub struct Document {
    pub uri: Arc<str>,
    pub language_id: Arc<str>,
    pub version: i32,
    /// Which text this is, unique across documents and reopenings and never reused. The client's
    /// `version` names the text for the client, but a client may send versions out of order;
    /// work computed for one text is matched to it by `revision`, never by `version` alone.
    pub revision: u64,
    pub lang: Option<Lang>,
    pub rope: Rope,
    pub tree: Option<Tree>,
    pub no_tree: Option<NoTree>,
}

/// What an edit did that the caller may want to log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EditReport {
    /// Ranges that were out of order (end before start) and were swapped.
    pub reversed_ranges: usize,
    /// Set when the edit turned syntax off (the document became too large or binary).
    pub tree_dropped: Option<NoTree>,
}

impl Document {
    pub fn new(uri: &str, language_id: &str, version: i32, text: &str) -> Document {
        let lang = Lang::detect(language_id, uri);
        let mut doc = Document {
            uri: uri.into(),
            language_id: language_id.into(),
            version,
            revision: next_revision(),
            lang,
            rope: Rope::from_str(text),
            tree: None,
            no_tree: None,
        };
        doc.reparse_from_scratch();
        doc
    }

    /// The whole text. O(n); for tests and small documents.
    pub fn text(&self) -> String {
        self.rope.to_string()
    }

    /// Applies the changes of one `didChange` in order, editing the tree as it goes and
    /// reparsing once at the end.
    pub fn apply_changes(&mut self, version: i32, changes: &[Change], encoding: Encoding) -> EditReport {
        let mut report = EditReport::default();
        let mut full_replace = false;
        for change in changes {
            match change.range {
                None => {
                    self.rope = Rope::from_str(&change.text);
                    self.tree = None;
                    full_replace = true;
                }
                Some((start, end)) => {
                    let mut start = position::to_char(&self.rope, start, encoding);
                    let mut end = position::to_char(&self.rope, end, encoding);
                    if end < start {
                        std::mem::swap(&mut start, &mut end);
                        report.reversed_ranges += 1;
                    }
                    self.replace(start, end, &change.text);
                }
            }
        }
        self.version = version;
        self.revision = next_revision();
        let had_tree = self.no_tree.is_none();
        if full_replace {
            self.reparse_from_scratch();
        } else {
            self.reparse_incrementally(changes);
        }
        if had_tree {
            report.tree_dropped = self.no_tree;
        }
        report
    }

    /// Replaces chars `start..end` with `text`, keeping the tree's byte positions in step.
    fn replace(&mut self, start: usize, end: usize, text: &str) {
        let start_byte = self.rope.char_to_byte(start);
        let old_end_byte = self.rope.char_to_byte(end);
        let points = self
            .tree
            .is_some()
            .then(|| (syntax::point(&self.rope, start_byte), syntax::point(&self.rope, old_end_byte)));
        if end > start {
            self.rope.remove(start..end);
        }
        if !text.is_empty() {
            self.rope.insert(start, text);
        }
        if let (Some(tree), Some(points)) = (self.tree.as_mut(), points) {
            tree.edit(&syntax::input_edit(points, &self.rope, start_byte, old_end_byte, text.len()));
        }
    }

    fn reparse_from_scratch(&mut self) {
        self.tree = None;
        self.no_tree = self.check_parseable(true);
        if let (None, Some(lang)) = (self.no_tree, self.lang) {
            self.tree = syntax::parse(lang, &self.rope, None);
        }
    }

    fn reparse_incrementally(&mut self, changes: &[Change]) {
        match self.no_tree {
            // A document that was binary stays treeless until a full replacement; a NUL could
            // still be anywhere and a full scan per keystroke is not worth it.
            Some(NoTree::Binary) | Some(NoTree::UnknownLanguage) => {}
            Some(NoTree::TooLarge) => {
                if self.rope.len_bytes() <= MAX_TREE_BYTES {
                    self.reparse_from_scratch();
                }
            }
            None => {
                let inserted_nul = changes.iter().any(|c| c.text.contains('\0'));
                if inserted_nul {
                    self.no_tree = Some(NoTree::Binary);
                } else {
                    self.no_tree = self.check_parseable(false);
                }
                match (self.no_tree, self.lang) {
                    (None, Some(lang)) => self.tree = syntax::parse(lang, &self.rope, self.tree.as_ref()),
                    _ => self.tree = None,
                }
            }
        }
    }

    fn check_parseable(&self, scan_for_nul: bool) -> Option<NoTree> {
        if self.lang.is_none() {
            Some(NoTree::UnknownLanguage)
        } else if self.rope.len_bytes() > MAX_TREE_BYTES {
            Some(NoTree::TooLarge)
        } else if scan_for_nul && self.rope.chunks().any(|c| c.contains('\0')) {
            Some(NoTree::Binary)
        } else {
            None
        }
    }
}

/// The revisions of every document come from one counter, so a reopened document never
/// repeats a revision its previous life had.
fn next_revision() -> u64 {
    static REVISIONS: AtomicU64 = AtomicU64::new(1);
    REVISIONS.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(l0: u32, c0: u32, l1: u32, c1: u32, text: &str) -> Change {
        Change {
            range: Some((LinePos { line: l0, character: c0 }, LinePos { line: l1, character: c1 })),
            text: text.into(),
        }
    }

    #[test]
    fn several_changes_apply_in_order_and_the_tree_follows() {
        let mut doc = Document::new("file:///a.rs", "rust", 1, "fn main() {\n}\n");
        doc.apply_changes(2, &[change(1, 0, 1, 0, "    let x = 1;\n"), change(0, 3, 0, 7, "start")], Encoding::Utf16);
        assert_eq!(doc.text(), "fn start() {\n    let x = 1;\n}\n");
        assert_eq!(doc.version, 2);
        let before = doc.revision;
        doc.apply_changes(2, &[change(0, 0, 0, 0, " ")], Encoding::Utf16);
        assert_ne!(doc.revision, before, "a new text is a new revision, whatever its version");
        doc.apply_changes(2, &[change(0, 0, 0, 1, "")], Encoding::Utf16);
        let fresh = Document::new("file:///b.rs", "rust", 1, &doc.text());
        assert_eq!(
            doc.tree.as_ref().map(|t| t.root_node().to_sexp()),
            fresh.tree.as_ref().map(|t| t.root_node().to_sexp())
        );
    }

    #[test]
    fn unknown_languages_are_plain_text() {
        let mut doc = Document::new("file:///notes.txt", "plaintext", 1, "hello");
        assert_eq!(doc.no_tree, Some(NoTree::UnknownLanguage));
        doc.apply_changes(2, &[change(0, 5, 0, 5, " world")], Encoding::Utf16);
        assert_eq!(doc.text(), "hello world");
    }

    #[test]
    fn nul_bytes_drop_the_tree_but_keep_the_text() {
        let mut doc = Document::new("file:///a.py", "python", 1, "x = 1\n");
        assert!(doc.tree.is_some());
        let report = doc.apply_changes(2, &[change(0, 0, 0, 0, "\0")], Encoding::Utf16);
        assert_eq!(report.tree_dropped, Some(NoTree::Binary));
        assert!(doc.tree.is_none());
        assert_eq!(doc.text(), "\0x = 1\n");
        doc.apply_changes(3, &[Change { range: None, text: "y = 2\n".into() }], Encoding::Utf16);
        assert!(doc.tree.is_some());
    }

    #[test]
    fn huge_documents_have_no_tree() {
        let text = "x = 1\n".repeat(MAX_TREE_BYTES / 6 + 10);
        let doc = Document::new("file:///big.py", "python", 1, &text);
        assert_eq!(doc.no_tree, Some(NoTree::TooLarge));
        assert!(doc.tree.is_none());
    }

    #[test]
    fn reversed_ranges_are_swapped_not_rejected() {
        let mut doc = Document::new("file:///a.txt", "plaintext", 1, "abcdef");
        let report = doc.apply_changes(2, &[change(0, 4, 0, 1, "X")], Encoding::Utf16);
        assert_eq!(report.reversed_ranges, 1);
        assert_eq!(doc.text(), "aXef");
    }
}
