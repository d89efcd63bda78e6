//! The completion pipeline without LSP types: turn a document snapshot and a cursor into an
//! engine request, and the engine's text into what the editor shows.

use glint_engine::{Engine, GenerateRequest};

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
