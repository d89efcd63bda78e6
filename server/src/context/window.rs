//! The local window: whole lines above and below the cursor within a token budget, with its
//! edges moved to syntactic boundaries (never inside a string or comment, preferably at the start
//! of a statement).

use std::borrow::Cow;

use ropey::{Rope, RopeSlice};
use tree_sitter::Node;

use super::lang::{self, Spec};
use crate::document::Document;

/// Lines are counted in groups of this many first, so a budget of a thousand tokens costs tens
/// of `count_tokens` calls rather than hundreds.
const GROUP: usize = 8;
/// The grid window starts snap to, in lines; see `quantize`.
const WINDOW_STEP: usize = 16;
/// How far below the budget's first line to look for a statement start.
const BOUNDARY_LOOKAHEAD: usize = 16;

/// The prefix and suffix ranges of one context, as lines of the rope around the cursor.
pub(crate) struct Window<'a> {
    pub doc: &'a Document,
    pub rope: &'a Rope,
    pub cursor: usize,
    pub cursor_byte: usize,
    pub cursor_line: usize,
    /// First whole line of the prefix; `cursor_line` when only the cursor line's start is in.
    pub start_line: usize,
    /// First line after the suffix (exclusive end).
    pub end_line: usize,
    /// Where the prefix starts when the cursor line alone is over budget (a char index).
    prefix_cut: Option<usize>,
    /// Where the suffix ends when the rest of the cursor line alone is over budget.
    suffix_cut: Option<usize>,
    pub prefix_tokens: usize,
    pub suffix_tokens: usize,
    /// Whether the cursor line's own parts have been counted.
    prefix_started: bool,
    suffix_started: bool,
}

impl<'a> Window<'a> {
    fn around(doc: &'a Document, cursor: usize) -> Window<'a> {
        let rope = &doc.rope;
        let cursor_line = rope.char_to_line(cursor);
        Window {
            doc,
            rope,
            cursor,
            cursor_byte: rope.char_to_byte(cursor),
            cursor_line,
            start_line: cursor_line,
            end_line: cursor_line + 1,
            prefix_cut: None,
            suffix_cut: None,
            prefix_tokens: 0,
            suffix_tokens: 0,
            prefix_started: false,
            suffix_started: false,
        }
    }

    /// The window around `cursor`: the suffix grown to `suffix_budget` tokens first, then the
    /// prefix to what is left of `budget`.
    pub fn fit(
        doc: &'a Document,
        cursor: usize,
        suffix_budget: usize,
        budget: usize,
        count: &dyn Fn(&str) -> usize,
    ) -> Window<'a> {
        let mut win = Window::around(doc, cursor);
        win.grow_suffix(suffix_budget, count);
        win.grow_prefix(budget.saturating_sub(win.suffix_tokens), count);
        win
    }

    /// Spends `leftover` more tokens: on the prefix, and when the prefix reaches the top of the
    /// document, what it did not use on the suffix.
    pub fn widen(&mut self, leftover: usize, count: &dyn Fn(&str) -> usize) {
        let before = self.prefix_tokens;
        self.grow_prefix(self.prefix_tokens + leftover, count);
        let unused = leftover.saturating_sub(self.prefix_tokens - before.min(self.prefix_tokens));
        if unused > 0 && self.at_top() {
            self.grow_suffix(self.suffix_tokens + unused, count);
        }
    }

    /// Grows the prefix upwards until it holds at most `budget` tokens in all.
    fn grow_prefix(&mut self, budget: usize, count: &dyn Fn(&str) -> usize) {
        if !self.prefix_started {
            self.prefix_started = true;
            let line_start = self.rope.line_to_char(self.cursor_line);
            let head = self.rope.slice(line_start..self.cursor);
            let tokens = count(&cow(head));
            if tokens > budget {
                let (cut, tokens) = tail_fit(head, budget, count);
                self.prefix_cut = Some(line_start + cut);
                self.prefix_tokens = tokens;
                return;
            }
            self.prefix_tokens = tokens;
        }
        if self.prefix_cut.is_some() || self.start_line == 0 {
            return;
        }
        let old_start = self.start_line;
        let mut start = self.start_line;
        let mut used = self.prefix_tokens;
        'grow: while start > 0 {
            let lo = start.saturating_sub(GROUP);
            let tokens = count(&self.lines(lo, start));
            if used + tokens <= budget {
                used += tokens;
                start = lo;
                continue;
            }
            for line in (lo..start).rev() {
                let tokens = count(&self.lines(line, line + 1));
                if used + tokens > budget {
                    break 'grow;
                }
                used += tokens;
                start = line;
            }
            break;
        }
        if start == old_start {
            return;
        }
        // A budget that reaches the top of the file needs no boundary.
        let adjusted = if start == 0 { 0 } else { self.statement_start(quantize(start, old_start), old_start) };
        if adjusted > start {
            used -= count(&self.lines(start, adjusted));
        }
        self.start_line = adjusted;
        self.prefix_tokens = used;
    }

    /// Grows the suffix downwards until it holds at most `budget` tokens in all.
    fn grow_suffix(&mut self, budget: usize, count: &dyn Fn(&str) -> usize) {
        let len_lines = self.rope.len_lines();
        if !self.suffix_started {
            self.suffix_started = true;
            let next = self.rope.line_to_char(self.end_line.min(len_lines));
            let rest = self.rope.slice(self.cursor..next);
            let tokens = count(&cow(rest));
            if tokens > budget {
                let (cut, tokens) = head_fit(rest, budget, count);
                self.suffix_cut = Some(self.cursor + cut);
                self.suffix_tokens = tokens;
                return;
            }
            self.suffix_tokens = tokens;
        }
        if self.suffix_cut.is_some() || self.end_line >= len_lines {
            return;
        }
        let old_end = self.end_line;
        let mut end = self.end_line;
        let mut used = self.suffix_tokens;
        'grow: while end < len_lines {
            let hi = (end + GROUP).min(len_lines);
            let tokens = count(&self.lines(end, hi));
            if used + tokens <= budget {
                used += tokens;
                end = hi;
                continue;
            }
            let from = end;
            for line in from..hi {
                let tokens = count(&self.lines(line, line + 1));
                if used + tokens > budget {
                    break 'grow;
                }
                used += tokens;
                end = line + 1;
            }
            break;
        }
        if end == old_end {
            return;
        }
        let adjusted = if end >= len_lines { end } else { self.token_end(end, old_end) };
        if adjusted < end {
            used -= count(&self.lines(adjusted, end));
        }
        self.end_line = adjusted;
        self.suffix_tokens = used;
    }

    /// Whether the prefix already starts at the top of the document.
    fn at_top(&self) -> bool {
        self.prefix_cut.is_none() && self.start_line == 0
    }

    /// Char index where the prefix starts.
    pub fn prefix_start(&self) -> usize {
        self.prefix_cut.unwrap_or_else(|| self.rope.line_to_char(self.start_line))
    }

    /// Char index where the suffix ends.
    pub fn suffix_end(&self) -> usize {
        self.suffix_cut.unwrap_or_else(|| self.rope.line_to_char(self.end_line.min(self.rope.len_lines())))
    }

    pub fn prefix_text(&self) -> String {
        self.rope.slice(self.prefix_start()..self.cursor).to_string()
    }

    pub fn suffix_text(&self) -> String {
        self.rope.slice(self.cursor..self.suffix_end()).to_string()
    }

    /// Lines `lo..hi`, line breaks included.
    fn lines(&self, lo: usize, hi: usize) -> Cow<'a, str> {
        let hi = hi.min(self.rope.len_lines());
        cow(self.rope.slice(self.rope.line_to_char(lo)..self.rope.line_to_char(hi)))
    }

    /// The line in `from..limit` (at most `BOUNDARY_LOOKAHEAD` down) where the least indented
    /// statement starts, the first of those, looking past the first statement start only a
    /// quarter of the window down; failing that, the first that does not split a
    /// string or comment; failing that, `limit` (no whole line above the cursor line is taken
    /// rather than half a token). Starting at the outermost statement in reach means a window
    /// opens on a whole function or block rather than on the tail of the previous one.
    fn statement_start(&self, from: usize, limit: usize) -> usize {
        let Some((tree, spec)) = syntax(self.doc) else {
            return first_non_blank(self.rope, from, limit);
        };
        let root = tree.root_node();
        let mut first_whole = None;
        let mut best: Option<(usize, usize)> = None;
        // A shallower start is worth a quarter of the window at most.
        let shallower_within = from + ((limit - from) / 4).max(2);
        for line in from..limit.min(from + BOUNDARY_LOOKAHEAD) {
            if best.is_some() && line >= shallower_within {
                break;
            }
            let start_byte = self.rope.line_to_byte(line);
            if splits_token(root, spec, start_byte) {
                continue;
            }
            let Some(indent) = first_code_byte(self.rope, line) else { continue };
            if best.is_some_and(|(_, best_indent)| best_indent <= indent) {
                continue;
            }
            if starts_statement(root, start_byte + indent) {
                best = Some((line, indent));
                if indent == 0 {
                    break;
                }
            }
            first_whole.get_or_insert(line);
        }
        if let Some(line) = best.map(|(line, _)| line).or(first_whole) {
            return line;
        }
        // Beyond the lookahead, any line that does not split a token will do.
        (from + BOUNDARY_LOOKAHEAD..limit)
            .find(|&line| !splits_token(root, spec, self.rope.line_to_byte(line)))
            .unwrap_or(limit)
    }

    /// `end`, or an earlier line (never before `floor`) so the suffix does not end inside a
    /// string or comment.
    fn token_end(&self, end: usize, floor: usize) -> usize {
        let Some((tree, spec)) = syntax(self.doc) else { return end };
        let root = tree.root_node();
        let mut end = end;
        while end > floor && splits_token(root, spec, self.rope.line_to_byte(end)) {
            end -= 1;
        }
        end
    }
}

/// Moves a window start down to the next multiple of `WINDOW_STEP` lines, unless that gives up
/// more than half of the lines the budget allows.
///
/// The prompt's prefix starts here, and an engine's KV cache only helps while the start stays
/// put: a start that followed every line typed would make each new line a full prefill. On a
/// fixed grid, the start moves once every `WINDOW_STEP` lines, at the cost of half a step of
/// context on average.
fn quantize(start: usize, limit: usize) -> usize {
    let stepped = start.div_ceil(WINDOW_STEP) * WINDOW_STEP;
    if stepped < limit && (limit - stepped) * 2 >= limit - start { stepped } else { start }
}

/// The tree and kind tables of a document that has both.
pub(crate) fn syntax(doc: &Document) -> Option<(&tree_sitter::Tree, &'static Spec)> {
    Some((doc.tree.as_ref()?, lang::spec(doc.lang?)))
}

/// Whether `byte` falls strictly inside a comment or string (a token that spans lines).
pub(crate) fn splits_token(root: Node, spec: &Spec, byte: usize) -> bool {
    let Some(innermost) = root.descendant_for_byte_range(byte, byte) else { return false };
    crate::syntax::ancestors(root, innermost)
        .any(|node| node.start_byte() < byte && byte < node.end_byte() && spec.is_atomic(node.kind()))
}

/// Whether a named node starts at `byte` as an item of a statement list (a block, a body, the
/// file), which makes its line a clean place to start a window.
fn starts_statement(root: Node, byte: usize) -> bool {
    let Some(innermost) = root.descendant_for_byte_range(byte, byte) else { return false };
    // Innermost first; the root is last and never counts as a statement.
    let chain: Vec<Node> = crate::syntax::ancestors(root, innermost).collect();
    let mut at = 0;
    while at + 2 < chain.len() && chain[at + 1].start_byte() == byte {
        at += 1;
    }
    let node = chain[at];
    // Comments are extras that grammars hang wherever they fall; a line that starts one is a
    // clean cut all the same.
    node.start_byte() == byte
        && node.is_named()
        && (node.is_extra() || chain.get(at + 1).is_some_and(|p| lang::is_statement_list(p.kind())))
}

/// Byte offset of the first non-whitespace character of `line` from the line start, or `None`
/// for a blank line.
pub(crate) fn first_code_byte(rope: &Rope, line: usize) -> Option<usize> {
    let mut offset = 0;
    for ch in rope.line(line).chars() {
        match ch {
            ' ' | '\t' => offset += 1,
            '\n' | '\r' => return None,
            c if c.is_whitespace() => offset += c.len_utf8(),
            _ => return Some(offset),
        }
    }
    None
}

fn first_non_blank(rope: &Rope, from: usize, limit: usize) -> usize {
    (from..limit).find(|&line| first_code_byte(rope, line).is_some()).unwrap_or(limit)
}

pub(crate) fn cow(slice: RopeSlice) -> Cow<str> {
    slice.into()
}

/// The text of a byte range of the rope (a node's), or nothing when the range is not one: a
/// tree out of step with its text must not take the server down.
pub(crate) fn bytes(rope: &Rope, range: std::ops::Range<usize>) -> Cow<'_, str> {
    rope.get_byte_slice(range).map_or(Cow::Borrowed(""), Cow::from)
}

/// The smallest char offset into `text` whose tail fits `budget`, moved forward past the next
/// whitespace so the cut falls between tokens; with the tail's token count.
fn tail_fit(text: RopeSlice, budget: usize, count: &dyn Fn(&str) -> usize) -> (usize, usize) {
    let start = tail_start(text, budget, count);
    let len = text.len_chars();
    let boundary = (start..len.min(start + 64)).find(|&i| text.char(i).is_whitespace()).map_or(start, |i| i + 1);
    let start = if start == 0 { 0 } else { boundary };
    (start, count(&cow(text.slice(start..))))
}

/// The largest char length of `text`'s head that fits `budget`, moved back to the last
/// whitespace so the cut falls between tokens; with the head's token count.
fn head_fit(text: RopeSlice, budget: usize, count: &dyn Fn(&str) -> usize) -> (usize, usize) {
    let end = head_end(text, budget, count);
    let len = text.len_chars();
    let boundary = (end.saturating_sub(64)..end).rev().find(|&i| text.char(i).is_whitespace()).unwrap_or(end);
    let end = if end == len { len } else { boundary };
    (end, count(&cow(text.slice(..end))))
}

/// Binary search for the smallest start whose tail fits; tokens grow with length, so the
/// predicate is monotonic. Looks at most eight chars per token back, which no tokenizer beats.
fn tail_start(text: RopeSlice, budget: usize, count: &dyn Fn(&str) -> usize) -> usize {
    let len = text.len_chars();
    let mut lo = len.saturating_sub(budget.saturating_mul(8));
    if count(&cow(text.slice(lo..))) <= budget {
        return lo;
    }
    let mut hi = len;
    while lo + 1 < hi {
        let mid = lo + (hi - lo) / 2;
        if count(&cow(text.slice(mid..))) <= budget {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

fn head_end(text: RopeSlice, budget: usize, count: &dyn Fn(&str) -> usize) -> usize {
    let len = text.len_chars();
    let mut hi = len.min(budget.saturating_mul(8));
    if count(&cow(text.slice(..hi))) <= budget {
        return hi;
    }
    let mut lo = 0;
    while lo + 1 < hi {
        let mid = lo + (hi - lo) / 2;
        if count(&cow(text.slice(..mid))) <= budget {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Plain character truncation from the end, as the naive window does.
pub(crate) fn tail_chars(text: RopeSlice, budget: usize, count: &dyn Fn(&str) -> usize) -> String {
    text.slice(tail_start(text, budget, count)..).to_string()
}

/// Plain character truncation from the start, as the naive window does.
pub(crate) fn head_chars(text: RopeSlice, budget: usize, count: &dyn Fn(&str) -> usize) -> String {
    text.slice(..head_end(text, budget, count)).to_string()
}
