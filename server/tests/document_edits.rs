//! Property test: random incremental edits in every position encoding, checked against a plain
//! `String` edited by an independent reference implementation of LSP positions, and the
//! incrementally edited tree checked against a fresh parse of the final text.

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

/// LSP lines of `s`: each line's byte range without its break, and the byte offset after the break.
fn lines(s: &str) -> Vec<(usize, usize)> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                out.push((start, i));
                i += 1;
                start = i;
            }
            b'\r' => {
                out.push((start, i));
                i += if bytes.get(i + 1) == Some(&b'\n') { 2 } else { 1 };
                start = i;
            }
            _ => i += 1,
        }
    }
    out.push((start, bytes.len()));
    out
}

/// The reference: byte offset of an LSP position, clamped as VS Code clamps.
fn offset(s: &str, (line, character): (u32, u32), encoding: Encoding) -> usize {
    let lines = lines(s);
    let Some(&(start, end)) = lines.get(line as usize) else { return s.len() };
    let mut units = 0usize;
    for (i, ch) in s[start..end].char_indices() {
        let width = match encoding {
            Encoding::Utf8 => ch.len_utf8(),
            Encoding::Utf16 => ch.len_utf16(),
            Encoding::Utf32 => 1,
        };
        if units + width > character as usize {
            return start + i;
        }
        units += width;
    }
    end
}

fn apply_reference(s: &mut String, edit: &Edit, encoding: Encoding) {
    if edit.full {
        *s = edit.text.clone();
        return;
    }
    let mut a = offset(s, edit.start, encoding);
    let mut b = offset(s, edit.end, encoding);
    if b < a {
        std::mem::swap(&mut a, &mut b);
    }
    s.replace_range(a..b, &edit.text);
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
        for edit in edits {
            apply_reference(&mut reference, edit, encoding);
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

#[test]
fn reference_clamps_like_the_server_on_known_cases() {
    // Guards the reference itself, so the property test cannot pass by two equal mistakes.
    assert_eq!(offset("ab\r\ncd", (0, 9), Encoding::Utf16), 2);
    assert_eq!(offset("x😀y", (0, 2), Encoding::Utf16), 1);
    assert_eq!(offset("a\rb", (1, 0), Encoding::Utf8), 2);
    assert_eq!(offset("ab", (5, 0), Encoding::Utf32), 2);
}
