//! Pattern propagation: a one-line edit (`print(x)` → `log.info(x)`) applied to the lines of the
//! same block nearby that had the same shape before it (`print(y + 1)` → `log.info(y + 1)`).
//!
//! Lines are compared as tokens. The tokens the user replaced must appear verbatim in a sibling;
//! identifiers and literals around them may differ, everything else must match. Identifiers the
//! new text carries over from the old line are renamed to the sibling's own.

use std::collections::HashMap;

use super::{Edited, Side, TextEdit, is_ident_char};
use crate::context::lang;

/// How far from the edited line siblings are looked for, in lines.
const REACH: usize = 30;

/// The edits that repeat the user's line edit on its siblings, or `None`.
pub(crate) fn predict(before: &Side<'_>, now: &Side<'_>, edited: &Edited) -> Option<Vec<TextEdit>> {
    let line = before.rope.char_to_line(edited.start);
    if before.rope.char_to_line(edited.old_end) != line || now.rope.char_to_line(edited.new_end) != line {
        return None;
    }
    let old_line = line_text(before, line);
    let new_line = line_text(now, line);
    let indent = indentation(&old_line);
    if indent != indentation(&new_line) || old_line.trim().is_empty() {
        return None;
    }
    let old_tokens = tokens(&old_line);
    let new_tokens = tokens(&new_line);
    let rule = Rule::new(before, line, &old_line, &old_tokens, &new_line, &new_tokens)?;
    let line_start_byte = now.rope.line_to_byte(line);
    if in_comment_or_string(before, before.rope.line_to_byte(line) + indent.len())
        || has_error(now, line_start_byte, line_start_byte + new_line.len())
    {
        return None;
    }
    let mut edits = Vec::new();
    for sibling in siblings(now, line, indent) {
        let text = line_text(now, sibling);
        let sibling_start = now.rope.line_to_byte(sibling);
        if in_comment_or_string(now, sibling_start + indent.len()) {
            continue;
        }
        if let Some((start, end, replacement)) = rule.apply(&text) {
            let line_char = now.rope.line_to_char(sibling);
            let start = line_char + text[..start].chars().count();
            let end = line_char + text[..end].chars().count();
            edits.push(TextEdit { start, end, text: replacement });
        }
    }
    (!edits.is_empty()).then_some(edits)
}

/// A line's text without its line break.
fn line_text(side: &Side<'_>, line: usize) -> String {
    let text = side.rope.line(line).to_string();
    text.trim_end_matches(['\n', '\r']).to_string()
}

fn indentation(line: &str) -> &str {
    &line[..line.len() - line.trim_start().len()]
}

/// The lines near `line` in its block: same indentation, up to `REACH` lines away, without
/// crossing a line indented less (the end of the block).
fn siblings(side: &Side<'_>, line: usize, indent: &str) -> Vec<usize> {
    let mut found = Vec::new();
    let count = side.rope.len_lines();
    let mut walk = |lines: &mut dyn Iterator<Item = usize>| {
        for other in lines {
            let text = line_text(side, other);
            if text.trim().is_empty() {
                continue;
            }
            let own = indentation(&text);
            if own.len() < indent.len() {
                break;
            }
            if own == indent {
                found.push(other);
            }
        }
    };
    walk(&mut (line + 1..count.min(line + 1 + REACH)));
    walk(&mut (line.saturating_sub(REACH)..line).rev());
    found
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// An identifier, keyword or number.
    Word,
    /// A quoted string.
    Str,
    Punct,
}

/// A token of one line: bytes `start..end`.
#[derive(Debug, Clone, Copy)]
struct Token {
    start: usize,
    end: usize,
    class: Class,
}

fn tokens(line: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = line.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if c.is_whitespace() {
            continue;
        }
        let (end, class) = if is_ident_char(c) {
            let mut end = at + c.len_utf8();
            while let Some((next, d)) = chars.peek().copied().filter(|(_, d)| is_ident_char(*d)) {
                end = next + d.len_utf8();
                chars.next();
            }
            (end, Class::Word)
        } else if matches!(c, '"' | '\'' | '`') {
            let mut end = line.len();
            let mut escaped = false;
            for (next, d) in chars.by_ref() {
                if escaped {
                    escaped = false;
                } else if d == '\\' {
                    escaped = true;
                } else if d == c {
                    end = next + 1;
                    break;
                }
            }
            (end, Class::Str)
        } else {
            (at + c.len_utf8(), Class::Punct)
        };
        out.push(Token { start: at, end, class });
    }
    out
}

/// What may differ at one token of the old line.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Slot {
    /// This exact text.
    Exact(String),
    /// Any token of this class (an identifier or literal of the sibling's own).
    Any(Class, String),
}

/// The user's edit as a rule over lines.
struct Rule {
    /// The old line's slots before the replaced span, in it, and after it.
    before: Vec<Slot>,
    replaced: Vec<Slot>,
    after: Vec<Slot>,
    /// The new text of the span, as pieces: literal text and the old line's words it carries over.
    replacement: Vec<Piece>,
    /// Whether the replaced span sits right at the start of a token's gap (`x` in `x, y`).
    whole_line: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    /// A word of the old line, spelled as the sibling spells the token that matched it.
    Word(String),
}

impl Rule {
    fn new(
        before: &Side<'_>,
        line: usize,
        old_line: &str,
        old: &[Token],
        new_line: &str,
        new: &[Token],
    ) -> Option<Rule> {
        let text = |line: &str, t: &Token| line[t.start..t.end].to_string();
        let prefix = old.iter().zip(new).take_while(|(a, b)| text(old_line, a) == text(new_line, b)).count();
        let max_suffix = (old.len() - prefix).min(new.len() - prefix);
        let suffix = old
            .iter()
            .rev()
            .zip(new.iter().rev())
            .take(max_suffix)
            .take_while(|(a, b)| text(old_line, a) == text(new_line, b))
            .count();
        let (i, j, k) = (prefix, old.len() - suffix, new.len() - suffix);
        if i == j && i == k {
            // Only blanks changed.
            return None;
        }
        let replaced_words: Vec<String> =
            old[i..j].iter().filter(|t| t.class == Class::Word).map(|t| text(old_line, t)).collect();
        let new_words: Vec<String> =
            new[i..k].iter().filter(|t| t.class == Class::Word).map(|t| text(new_line, t)).collect();
        // One value changed for another is a choice about that line, not a transformation.
        let single = j - i == 1 && k - i == 1;
        if single && (old[i].class == Class::Str || old_line[old[i].start..].starts_with(|c: char| c.is_ascii_digit()))
        {
            return None;
        }
        // One variable swapped for another is a rename's business, or a change of mind.
        if single && old[i].class == Class::Word && new[i].class == Class::Word {
            let at = before.rope.line_to_byte(line) + old[i].start;
            let node = before.tree.root_node().named_descendant_for_byte_range(at, at + old[i].end - old[i].start);
            if node.is_some_and(|n| n.kind() == "identifier" && !is_callee_or_member(n)) {
                return None;
            }
        }
        let line_byte = before.rope.line_to_byte(line);
        let slot = |index: usize, t: &Token| -> Slot {
            let word = text(old_line, t);
            let free = match t.class {
                Class::Str => true,
                Class::Word => {
                    let at = line_byte + t.start;
                    before.tree.root_node().named_descendant_for_byte_range(at, line_byte + t.end).is_some_and(|n| {
                        n.start_byte() == at && (n.kind().ends_with("identifier") || is_literal(n.kind()))
                    })
                }
                Class::Punct => false,
            };
            // In the replaced span only words the new text keeps may differ, and never the first.
            let in_span = (i..j).contains(&index);
            let free =
                free && (!in_span || (index > i && new_words.contains(&word) && replaced_words.first() != Some(&word)));
            if free { Slot::Any(t.class, word) } else { Slot::Exact(word) }
        };
        let mut slots: Vec<Slot> = old.iter().enumerate().map(|(n, t)| slot(n, t)).collect();
        // An edit inside a call's arguments is about that function: the siblings must call the
        // same one (adding an argument to `.add(x)` says nothing about `.sub(x)`).
        let edit_at = line_byte + old.get(i).map_or(old_line.len(), |t| t.start);
        if let Some(callee) = callee_of_arguments_at(before.tree.root_node(), edit_at)
            && let Some(n) = old.iter().position(|t| line_byte + t.start == callee)
            && n < i
        {
            slots[n] = Slot::Exact(text(old_line, &old[n]));
        }
        // The replaced span must hold something exact: the thing being transformed.
        if i == j && (i == old.len() || i == 0) {
            return None;
        }
        if i < j && !slots[i..j].iter().any(|s| matches!(s, Slot::Exact(_))) {
            return None;
        }
        let from = if i == 0 { indentation(new_line).len() } else { new[i - 1].end };
        let to = if k < new.len() { new[k].start } else { new_line.len() };
        let mut replacement = Vec::new();
        let mut at = from;
        for t in &new[i..k] {
            let word = text(new_line, t);
            let carried =
                t.class == Class::Word && slots.iter().any(|s| matches!(s, Slot::Any(Class::Word, w) if *w == word));
            if carried {
                replacement.push(Piece::Text(new_line[at..t.start].to_string()));
                replacement.push(Piece::Word(word));
                at = t.end;
            }
        }
        replacement.push(Piece::Text(new_line[at..to].to_string()));
        Some(Rule {
            before: slots[..i].to_vec(),
            replaced: slots[i..j].to_vec(),
            after: slots[j..].to_vec(),
            replacement,
            whole_line: i == j,
        })
    }

    /// The byte range of `line` to replace and its new text, when `line` fits the rule.
    fn apply(&self, line: &str) -> Option<(usize, usize, String)> {
        let toks = tokens(line);
        let head = self.before.len() + self.replaced.len();
        // An insertion needs the whole line's shape to know where; a replacement needs the tokens
        // up to the first one after it.
        // So does a new text that carries words of the old line over: each must be matched.
        let whole =
            self.whole_line || self.after.is_empty() || self.replacement.iter().any(|p| matches!(p, Piece::Word(_)));
        let needed = if whole { head + self.after.len() } else { head + 1 };
        if toks.len() < needed || whole && toks.len() != needed {
            return None;
        }
        let slots = self.before.iter().chain(&self.replaced).chain(&self.after).take(needed);
        let mut names: HashMap<&str, &str> = HashMap::new();
        for (slot, t) in slots.zip(&toks) {
            let word = &line[t.start..t.end];
            match slot {
                Slot::Exact(text) if text == word => {}
                Slot::Any(class, old) if *class == t.class => {
                    if names.insert(old, word).is_some_and(|seen| seen != word) {
                        return None;
                    }
                }
                _ => return None,
            }
        }
        let i = self.before.len();
        let from = if i == 0 { indentation(line).len() } else { toks[i - 1].end };
        let to = if head < toks.len() { toks[head].start } else { line.len() };
        let mut text = String::new();
        for piece in &self.replacement {
            match piece {
                Piece::Text(t) => text.push_str(t),
                // A carried word whose match lies past what was compared is not known: give up.
                Piece::Word(w) => text.push_str(names.get(w.as_str())?),
            }
        }
        Some(minimal(line, from, to, text)).filter(|(from, to, text)| line[*from..*to] != *text)
    }
}

/// The replacement of `line[from..to]` by `text` without the characters both share at their ends.
fn minimal(line: &str, from: usize, to: usize, text: String) -> (usize, usize, String) {
    let (prefix, suffix) = super::shared_ends(&line[from..to], &text);
    let text = text[prefix..text.len() - suffix].to_string();
    (from + prefix, to - suffix, text)
}

fn is_literal(kind: &str) -> bool {
    kind.ends_with("literal")
        || matches!(kind, "integer" | "float" | "number" | "string" | "true" | "false" | "none" | "null" | "undefined")
}

/// Whether an identifier is called (`f(..)`) or is a member (`a.f`), so swapping it for another
/// name is a transformation, not a change of variable.
fn is_callee_or_member(node: tree_sitter::Node<'_>) -> bool {
    node.parent().is_some_and(|p| {
        matches!(p.kind(), "call" | "call_expression" | "attribute" | "member_expression" | "field_expression")
            && (p.child_by_field_name("function") == Some(node)
                || p.child_by_field_name("attribute") == Some(node)
                || p.child_by_field_name("object") == Some(node)
                || p.child_by_field_name("value") == Some(node))
    })
}

/// The start byte of the name of the function called when byte `at` lies in a call's argument
/// list (`f` in `f(a, b)`, `add` in `x.add(a)`, `new` in `Vec::new()`).
fn callee_of_arguments_at(root: tree_sitter::Node<'_>, at: usize) -> Option<usize> {
    let node = root.descendant_for_byte_range(at, at)?;
    let arguments = crate::syntax::ancestors(root, node).find(|n| matches!(n.kind(), "arguments" | "argument_list"))?;
    let call = arguments.parent().filter(|p| matches!(p.kind(), "call" | "call_expression" | "macro_invocation"))?;
    let function = call.child_by_field_name("function").or_else(|| call.child_by_field_name("macro"))?;
    let name = ["attribute", "property", "field", "name"]
        .iter()
        .find_map(|field| function.child_by_field_name(field))
        .unwrap_or(function);
    Some(name.start_byte())
}

/// Whether the byte `at` of `side` lies in a comment or a string.
pub(crate) fn in_comment_or_string(side: &Side<'_>, at: usize) -> bool {
    let spec = lang::spec(side.lang);
    let Some(node) = side.tree.root_node().descendant_for_byte_range(at, at) else { return false };
    crate::syntax::ancestors(side.tree.root_node(), node).any(|n| spec.is_atomic(n.kind()))
}

/// Whether a syntax error touches bytes `start..end`.
fn has_error(side: &Side<'_>, start: usize, end: usize) -> bool {
    let mut stack = vec![side.tree.root_node()];
    while let Some(node) = stack.pop() {
        if node.end_byte() < start || node.start_byte() > end {
            continue;
        }
        if node.is_error() || node.is_missing() {
            return true;
        }
        if node.has_error() {
            let mut cursor = node.walk();
            stack.extend(node.children(&mut cursor));
        }
    }
    false
}
