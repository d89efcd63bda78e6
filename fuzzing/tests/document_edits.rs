//! Property test: random incremental edits in every position encoding, checked against a plain
//! `String` edited by the independent reference implementation of LSP positions in
//! `glint_fuzzing::reference` (shared with the fuzz target, and guarded by its own test), and the
//! incrementally edited tree checked against a fresh parse of the final text.

use glint_fuzzing::reference;
use glint_server::document::{Change, Document};
use glint_server::position::{Encoding, LinePos};
use proptest::prelude::*;

const PIECES: &[&str] = &[
    "a", "b", "fn", "x", " ", "  ", "\t", "\n", "\r\n", "\r", "😀", "𝄞", "中文", "é", "{", "}", "(", ")", ";", ":",
    "=", "\"", "'", "#", "//", "def ", "let ", "if ", "return ", ",",
];

/// One edit as generated: line and column may point past the ends on purpose.
#[derive(Debug, Clone)]
struct Edit {
    start: (u32, u32),
    end: (u32, u32),
    text: String,
    full: bool,
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(PIECES), 0..6).prop_map(|p| p.concat())
}

fn edit() -> impl Strategy<Value = Edit> {
    (0u32..12, 0u32..14, 0u32..12, 0u32..14, text(), prop::bool::weighted(0.02)).prop_map(
        |(l0, c0, l1, c1, text, full)| {
            // Mostly forward ranges; the server swaps reversed ones, and so does the reference.
            Edit { start: (l0, c0), end: (l1, c1), text, full }
        },
    )
}

fn to_change(edit: &Edit) -> Change {
    Change {
        range: (!edit.full).then_some((
            LinePos { line: edit.start.0, character: edit.start.1 },
            LinePos { line: edit.end.0, character: edit.end.1 },
        )),
        text: edit.text.clone(),
    }
}

fn check(initial: &str, notifications: &[Vec<Edit>], encoding: Encoding, uri: &str, language: &str) {
    let mut reference = initial.to_string();
    let mut doc = Document::new(uri, language, 0, initial);
    for (version, edits) in notifications.iter().enumerate() {
        let changes: Vec<Change> = edits.iter().map(to_change).collect();
        for change in &changes {
            reference::apply(&mut reference, change, encoding);
        }
        doc.apply_changes(version as i32 + 1, &changes, encoding);
        assert_eq!(doc.text(), reference, "after notification {version} ({encoding:?}): {edits:?}");
    }
    let fresh = Document::new(uri, language, 0, &reference);
    let incremental = doc.tree.as_ref().map(|t| t.root_node().to_sexp());
    let scratch = fresh.tree.as_ref().map(|t| t.root_node().to_sexp());
    assert!(incremental.is_some(), "the tree was lost");
    assert_eq!(incremental, scratch, "incremental tree differs from a fresh parse of {reference:?}");
}

fn notifications() -> impl Strategy<Value = Vec<Vec<Edit>>> {
    prop::collection::vec(prop::collection::vec(edit(), 1..4), 1..40)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_edits_match_the_reference_in_every_encoding(initial in text(), notes in notifications()) {
        for encoding in [Encoding::Utf8, Encoding::Utf16, Encoding::Utf32] {
            check(&initial, &notes, encoding, "file:///t.rs", "rust");
        }
    }

    #[test]
    fn python_trees_stay_equal_to_a_fresh_parse(notes in notifications()) {
        check("def f(x):\n    return x\r\n", &notes, Encoding::Utf16, "file:///t.py", "python");
    }
}
