//! The completion pipeline without LSP types: turn a document snapshot and a cursor into an
//! engine request, and the engine's text into what the editor shows.

use glint_engine::{Engine, GenerateRequest};

use crate::config::Settings;
use crate::document::Document;

/// A request for `glint complete`: the cursor's surroundings within `budget` tokens, multi-line.
pub fn request_for_cli(
    doc: &Document,
    cursor: usize,
    budget: usize,
    max_tokens: u32,
    engine: &dyn Engine,
) -> GenerateRequest {
    let (prefix, suffix) = plain_window(doc, cursor, budget, engine);
    GenerateRequest {
        prefix,
        suffix,
        path: Some(display_path(&doc.uri)),
        language: doc.lang.map(|l| l.id().to_string()),
        max_tokens,
        stop: vec!["\n\n\n".into()],
        ..GenerateRequest::default()
    }
}

/// Prefix and suffix around `cursor`, cut at line boundaries, the prefix taking three quarters of
/// the token budget.
pub fn plain_window(doc: &Document, cursor: usize, budget: usize, engine: &dyn Engine) -> (String, String) {
    let rope = &doc.rope;
    let cursor = cursor.min(rope.len_chars());
    let line = rope.char_to_line(cursor);
    let prefix_budget = budget * 3 / 4;
    let suffix_budget = budget - prefix_budget;
    // Grow whole lines above the cursor until the budget is spent.
    let mut start_line = line;
    let line_start = rope.line_to_char(line);
    let mut used = engine.count_tokens(&rope.slice(line_start..cursor).to_string());
    while start_line > 0 {
        let cost = engine.count_tokens(&rope.line(start_line - 1).to_string());
        if used + cost > prefix_budget {
            break;
        }
        used += cost;
        start_line -= 1;
    }
    let prefix = rope.slice(rope.line_to_char(start_line)..cursor).to_string();
    let mut end_line = line + 1;
    let mut used =
        engine.count_tokens(&rope.slice(cursor..rope.line_to_char(end_line.min(rope.len_lines()))).to_string());
    while end_line < rope.len_lines() {
        let cost = engine.count_tokens(&rope.line(end_line).to_string());
        if used + cost > suffix_budget {
            break;
        }
        used += cost;
        end_line += 1;
    }
    let end = if end_line >= rope.len_lines() { rope.len_chars() } else { rope.line_to_char(end_line) };
    let suffix = rope.slice(cursor..end.max(cursor)).to_string();
    (prefix, suffix)
}

/// The last two components of a URI's path, for prompts and logs.
pub fn display_path(uri: &str) -> String {
    let path = uri.split_once("://").map_or(uri, |(_, rest)| rest);
    let parts: Vec<&str> = path.rsplit('/').take(2).collect();
    parts.into_iter().rev().collect::<Vec<_>>().join("/")
}

/// Whether the answer should be one line or may span several.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    SingleLine,
    MultiLine,
}

/// An engine request ready to send, with how to cut the answer.
pub struct Prepared {
    pub request: GenerateRequest,
    pub mode: Mode,
}

/// Decides whether to complete at `cursor` and builds the engine request. `Err` says why not.
pub fn prepare(
    doc: &Document,
    cursor: usize,
    settings: &Settings,
    invoked: bool,
    engine: &dyn Engine,
) -> Result<Prepared, &'static str> {
    let rope = &doc.rope;
    let line = rope.char_to_line(cursor);
    let line_start = rope.line_to_char(line);
    let line_end = line_start + crate::position::content_chars(rope.line(line));
    let before = rope.slice(line_start..cursor).to_string();
    let after = rope.slice(cursor..line_end.max(cursor)).to_string();
    if !invoked && after.chars().any(|c| !c.is_whitespace() && !CLOSERS.contains(c)) {
        return Err("code follows the cursor on this line");
    }
    let mode = if invoked || before.trim().is_empty() { Mode::MultiLine } else { Mode::SingleLine };
    let (prefix, suffix) = plain_window(doc, cursor, settings.context_tokens as usize, engine);
    let (max_tokens, stop) = match mode {
        Mode::SingleLine => (settings.max_tokens.min(48), vec!["\n".to_string()]),
        Mode::MultiLine => (settings.max_tokens, vec!["\n\n\n".to_string()]),
    };
    let request = GenerateRequest {
        prefix,
        suffix,
        path: Some(display_path(&doc.uri)),
        language: Some(doc.language_id.to_string()).filter(|l| !l.is_empty()),
        max_tokens,
        stop,
        session: Some(doc.uri.to_string()),
        ..GenerateRequest::default()
    };
    Ok(Prepared { request, mode })
}

const CLOSERS: &str = ")]}\"'`;,";

/// Cleans the model's raw text for display; `None` when there is nothing worth showing.
/// `partial` is set while the text is still streaming.
pub fn postprocess(doc: &Document, cursor: usize, raw: &str, mode: Mode, partial: bool) -> Option<String> {
    let _ = partial;
    let rope = &doc.rope;
    let line = rope.char_to_line(cursor);
    let line_start = rope.line_to_char(line);
    let before = rope.slice(line_start..cursor).to_string();
    let text = match mode {
        Mode::SingleLine => raw.split('\n').next().unwrap_or("").trim_end().to_string(),
        Mode::MultiLine => {
            let indent = before.len() - before.trim_start().len();
            let mut kept: Vec<&str> = Vec::new();
            for (i, l) in raw.split('\n').enumerate() {
                let l_indent = l.len() - l.trim_start().len();
                if i > 0 && !l.trim().is_empty() && l_indent < indent {
                    break;
                }
                kept.push(l);
            }
            kept.join("\n").trim_end().to_string()
        }
    };
    (!text.trim().is_empty()).then_some(text)
}

/// Whether generation can stop: the answer is complete for its mode.
pub fn is_complete(doc: &Document, cursor: usize, raw: &str, mode: Mode) -> bool {
    match mode {
        Mode::SingleLine => raw.contains('\n'),
        Mode::MultiLine => {
            let Some(cleaned) = postprocess(doc, cursor, raw, mode, true) else { return false };
            raw.trim_end().len() > cleaned.len() + 1 && raw.ends_with('\n')
        }
    }
}

/// The start of the identifier that ends at `cursor`.
pub fn word_start(rope: &ropey::Rope, cursor: usize) -> usize {
    let mut start = cursor;
    while start > 0 {
        let c = rope.char(start - 1);
        if !(c.is_alphanumeric() || c == '_') {
            break;
        }
        start -= 1;
    }
    start
}
