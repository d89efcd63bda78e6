//! Whether to complete at the cursor at all, and how much: one line or a block.

use super::Mode;
use super::window::{cow, syntax};
use crate::document::Document;

/// `Ok(mode)` to complete, `Err(why)` to stay silent.
pub(crate) fn decide(doc: &Document, cursor: usize, invoked: bool) -> Result<Mode, &'static str> {
    let (before, after) = line_parts(doc, cursor);
    if !invoked && let Some(why) = in_comment_or_string(doc, cursor, &before) {
        return Err(why);
    }
    if !rest_is_closers(&after) {
        if !invoked {
            return Err("code after the cursor on its line");
        }
        // An explicit request mid-line gets a fill-in, but not a block that would push the rest
        // of the line down.
        return Ok(Mode::SingleLine);
    }
    Ok(mode_of(&before, &after, invoked))
}

/// The mode `decide` would pick, without the reasons to skip (for the naive baseline).
pub(crate) fn mode(doc: &Document, cursor: usize, invoked: bool) -> Mode {
    let (before, after) = line_parts(doc, cursor);
    if !rest_is_closers(&after) {
        return Mode::SingleLine;
    }
    mode_of(&before, &after, invoked)
}

fn mode_of(before: &str, after: &str, invoked: bool) -> Mode {
    let rest_blank = after.trim().is_empty();
    if invoked || (rest_blank && (before.trim().is_empty() || block_opener(before))) {
        Mode::MultiLine
    } else {
        Mode::SingleLine
    }
}

/// Whether the text before the cursor ends by opening a block (`{`, `:`, `=>`, ...), so that
/// what follows is a body on the next lines.
pub fn block_opener(before: &str) -> bool {
    let trimmed = before.trim_end();
    ["{", ":", "=>", " do", " then", " begin"].iter().any(|opener| trimmed.ends_with(opener))
        && !trimmed.ends_with("::")
        && !trimmed.trim_start().starts_with("//")
}

/// Whether the rest of a line holds nothing but closing brackets, quotes, `;`, `,`, `:` and
/// whitespace: text the completion can sit in front of.
pub fn rest_is_closers(after: &str) -> bool {
    after.chars().all(|c| c.is_whitespace() || matches!(c, ')' | ']' | '}' | '"' | '\'' | '`' | ';' | ',' | ':'))
}

/// The cursor line before and after the cursor, without its line break. Long lines are taken
/// whole: a line is the unit every rule here looks at.
pub(crate) fn line_parts(doc: &Document, cursor: usize) -> (String, String) {
    let rope = &doc.rope;
    let line = rope.char_to_line(cursor);
    let start = rope.line_to_char(line);
    let end = rope.line_to_char((line + 1).min(rope.len_lines()));
    let before = cow(rope.slice(start..cursor)).into_owned();
    let after = cow(rope.slice(cursor..end));
    let after = after.trim_end_matches(['\n', '\r']).to_string();
    (before, after)
}

fn in_comment_or_string(doc: &Document, cursor: usize, before: &str) -> Option<&'static str> {
    let Some((tree, spec)) = syntax(doc) else { return plain_comment_or_string(before) };
    let byte = doc.rope.char_to_byte(cursor);
    if byte == 0 {
        return None;
    }
    let found = syntactic_comment_or_string(doc, tree, spec, cursor, byte);
    // While a string is being typed its closing quote is missing and the grammar recovers with
    // an error rather than a string; count the quotes on the line then, but only there: some
    // error somewhere in the file is the normal state of code being typed.
    if found.is_none() && in_error(tree.root_node(), byte) && open_double_quote(before) {
        return Some("inside a string");
    }
    found
}

/// Whether `before` leaves a double-quoted string open: an odd number of unescaped `"`, not
/// counting a quote character written as `'"'`.
fn open_double_quote(before: &str) -> bool {
    let text = before.replace("'\"'", "").replace("'\\\"'", "");
    let mut open = false;
    let mut escaped = false;
    for c in text.chars() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => open = !open,
            _ => escaped = false,
        }
    }
    open
}

/// Whether the cursor sits in or right after an error node.
fn in_error(root: tree_sitter::Node, byte: usize) -> bool {
    let Some(node) = root.descendant_for_byte_range(byte.saturating_sub(1), byte) else { return false };
    crate::syntax::ancestors(root, node).any(|node| node.is_error() || node.is_missing())
}

fn syntactic_comment_or_string(
    doc: &Document,
    tree: &tree_sitter::Tree,
    spec: &super::lang::Spec,
    cursor: usize,
    byte: usize,
) -> Option<&'static str> {
    let cursor_row = doc.rope.char_to_line(cursor);
    let root = tree.root_node();
    let innermost = root.descendant_for_byte_range(byte - 1, byte)?;
    for node in crate::syntax::ancestors(root, innermost) {
        let kind = node.kind();
        if spec.interpolations.contains(&kind) {
            return None;
        }
        if spec.is_comment(kind) && inside_comment(doc, node, byte, cursor_row) {
            return Some("inside a comment");
        }
        if spec.is_string(kind) && inside_string(node, byte) {
            return Some("inside a string");
        }
    }
    None
}

fn inside_comment(doc: &Document, node: tree_sitter::Node, byte: usize, row: usize) -> bool {
    if byte <= node.start_byte() {
        return false;
    }
    if byte < node.end_byte() {
        // Some grammars end a line comment after its line break; the next line is not in it.
        return node.start_position().row == row || !is_line_comment(doc, node);
    }
    // At the very end: a line comment continues to the end of its line, a block comment is closed.
    byte == node.end_byte() && node.start_position().row == row && is_line_comment(doc, node)
}

fn is_line_comment(doc: &Document, node: tree_sitter::Node) -> bool {
    let start = node.start_byte();
    let mut head = doc.rope.bytes_at(start.min(doc.rope.len_bytes()));
    !(head.next() == Some(b'/') && head.next() == Some(b'*'))
}

fn inside_string(node: tree_sitter::Node, byte: usize) -> bool {
    if byte <= node.start_byte() {
        return false;
    }
    if byte < node.end_byte() {
        return true;
    }
    // An unterminated string ends at the cursor with a missing closing quote.
    let last = node.child_count().checked_sub(1).and_then(|i| node.child(i));
    last.is_some_and(|n| n.is_missing())
}

/// Without a grammar: a line that starts like a comment, or an odd number of double quotes or
/// backticks before the cursor.
fn plain_comment_or_string(before: &str) -> Option<&'static str> {
    let code = before.trim_start();
    if ["//", "#", "--", "/*", "* ", ";"].iter().any(|m| code.starts_with(m)) {
        return Some("inside a comment");
    }
    let quotes = |q: char| before.chars().filter(|&c| c == q).count() % 2 == 1;
    if quotes('"') || quotes('`') {
        return Some("inside a string");
    }
    None
}
