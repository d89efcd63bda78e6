//! Context windows: from a document snapshot and a cursor, the prefix, suffix and snippets the
//! engine sees, cut at syntactic boundaries within a token budget, and whether to complete at all.
//!
//! How a context is built (`build`), in one pass, each step a module visited once:
//! 1. `decide`: skip inside comments and strings (unless invoked) and before code on the same
//!    line; single line mid-line, multi-line on an empty line, after a block opener, or invoked.
//!    The only step that asks whether the user invoked the completion.
//! 2. `window` (`Window::fit`): the suffix takes whole lines below the cursor up to a quarter of
//!    the budget, the prefix whole lines above within what the extras' quarter leaves, its start
//!    snapped to a 16-line grid (so the prompt's beginning, and an engine's KV cache, survive
//!    typing) and then moved down to a statement start, never inside a string or comment.
//!    Languages without a grammar get plain whole-line windows.
//! 3. extras (`snippets::Extras::collect`): the headers of the scopes around the cursor that
//!    start above the window (function, class, impl; by indentation without a grammar), and
//!    imports, recent edits and signatures of definitions the window mentions (this file and
//!    open files of the same language family, through the cached `index`), within a quarter of
//!    the budget.
//! 4. assemble: what the extras left goes back to the window (`Window::widen`; extras it now
//!    shows are dropped), and the final window's headers open the prefix, with `// ...` for what
//!    is skipped.
//!
//! Architecture Invariant: this module imports nothing of LSP. Plain values in, plain values out,
//! so that it is tested with fixtures and benchmarked without a server.

mod decide;
mod index;
pub(crate) mod lang;
mod snippets;
mod window;

#[cfg(test)]
mod tests;

use glint_engine::Snippet;

use crate::document::Document;

pub(crate) use decide::line_parts;
pub use decide::{block_opener, rest_is_closers};

/// Everything `build` looks at. Borrowed, so building a context copies only what it keeps.
#[derive(Debug, Clone, Copy)]
pub struct ContextInput<'a> {
    /// A snapshot of the current document.
    pub doc: &'a Document,
    /// Rope char index of the cursor; clamped to the document.
    pub cursor: usize,
    /// Prompt budget in model tokens, for prefix, suffix and snippets together.
    pub budget_tokens: usize,
    /// The user asked explicitly (as opposed to an automatic trigger while typing).
    pub invoked: bool,
    /// Other open documents; those of the same language family give signatures.
    pub others: &'a [&'a Document],
    /// Recently edited regions, oldest first.
    pub recent_edits: &'a [RecentEdit],
}

/// A region the user edited recently, as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentEdit {
    pub uri: String,
    pub text: String,
}

/// How much text a completion may insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The rest of the current line (automatic triggers mid-line).
    SingleLine,
    /// Up to the end of the enclosing block (empty lines, block starts, explicit invocations).
    MultiLine,
}

/// What the engine gets: the local window and the extra context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// Text before the cursor. Ends exactly at the cursor. When the enclosing scopes start above
    /// the window, it begins with their header lines, the skipped parts shown as `// ...`.
    pub prefix: String,
    /// Text after the cursor, whole lines.
    pub suffix: String,
    /// Imports, recent edits and signatures, most stable first, so a keystroke only changes the
    /// end of the prompt (and a warm KV cache keeps the rest).
    pub snippets: Vec<Snippet>,
    pub mode: Mode,
    /// A display path for the document: the last components of its URI.
    pub path: String,
    /// The document's `languageId`.
    pub language: String,
}

/// Whether to ask the engine at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Complete(Context),
    /// Do not complete; the reason is for logs.
    Skip(&'static str),
}

/// Builds the context for a completion at `input.cursor`, or says why not to complete, in one
/// pass: decide, then the window, then the extras, then assemble. `count_tokens` counts model
/// tokens (or estimates them); it is called on lines or small groups of lines, never on the whole
/// document.
pub fn build(input: &ContextInput, count_tokens: &dyn Fn(&str) -> usize) -> Decision {
    let doc = input.doc;
    let cursor = input.cursor.min(doc.rope.len_chars());
    // 1. Decide: whether to complete here at all, and how much. The only step that asks whether
    // the user invoked the completion.
    let mode = match decide::decide(doc, cursor, input.invoked) {
        Ok(mode) => mode,
        Err(why) => return Decision::Skip(why),
    };
    if input.budget_tokens == 0 {
        return Decision::Skip("no token budget");
    }
    let parts = assemble(input, cursor, count_tokens);
    Decision::Complete(Context {
        prefix: parts.prefix,
        suffix: parts.suffix,
        snippets: parts.snippets,
        mode,
        path: display_path(&doc.uri),
        language: doc.language_id.to_string(),
    })
}

/// The naive window peers use (lsp-ai, llm-ls): the text just before and after the cursor cut
/// to the same budget by characters, no syntax, no snippets. The baseline for quality evaluation.
pub fn naive(input: &ContextInput, count_tokens: &dyn Fn(&str) -> usize) -> Context {
    let doc = input.doc;
    let cursor = input.cursor.min(doc.rope.len_chars());
    let suffix_budget = input.budget_tokens / 4;
    let prefix_budget = input.budget_tokens - suffix_budget;
    let prefix = window::tail_chars(doc.rope.slice(..cursor), prefix_budget, count_tokens);
    let suffix = window::head_chars(doc.rope.slice(cursor..), suffix_budget, count_tokens);
    Context {
        prefix,
        suffix,
        snippets: Vec::new(),
        mode: decide::mode(doc, cursor, input.invoked),
        path: display_path(&doc.uri),
        language: doc.language_id.to_string(),
    }
}

/// llama.vscode's window, the strongest simple baseline: the last 256 lines before the cursor
/// (the cursor line's text before it included) and the first 64 lines from it, then cut to the
/// same token budget as Glint's window (a quarter for the suffix). No syntax, no snippets; always
/// multi-line, since the model sees the suffix and the cut rules decide where the answer ends.
pub fn plain_fim(input: &ContextInput, count_tokens: &dyn Fn(&str) -> usize) -> Context {
    const PREFIX_LINES: usize = 256;
    const SUFFIX_LINES: usize = 64;
    let doc = input.doc;
    let rope = &doc.rope;
    let cursor = input.cursor.min(rope.len_chars());
    let line = rope.char_to_line(cursor);
    let first = rope.line_to_char(line.saturating_sub(PREFIX_LINES));
    let last_line = (line + SUFFIX_LINES).min(rope.len_lines());
    let end = if last_line >= rope.len_lines() { rope.len_chars() } else { rope.line_to_char(last_line) };
    let suffix_budget = input.budget_tokens / 4;
    let prefix_budget = input.budget_tokens - suffix_budget;
    let prefix = window::tail_chars(rope.slice(first..cursor), prefix_budget, count_tokens);
    let suffix = window::head_chars(rope.slice(cursor..end), suffix_budget, count_tokens);
    Context {
        prefix,
        suffix,
        snippets: Vec::new(),
        mode: Mode::MultiLine,
        path: display_path(&doc.uri),
        language: doc.language_id.to_string(),
    }
}

/// The last two components of a URI's path, percent-decoded: enough for a model to tell files
/// apart without leaking the user's directory layout into prompts.
pub fn display_path(uri: &str) -> String {
    let path = uri.split_once("://").map_or(uri, |(_, rest)| rest);
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let parts: Vec<&str> = path.split(['/', '\\']).filter(|p| !p.is_empty()).collect();
    let keep = &parts[parts.len().saturating_sub(2)..];
    percent_decode(&keep.join("/"))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// The parts of a context before they are wrapped, with what tests check about them.
pub(crate) struct Parts {
    pub prefix: String,
    pub suffix: String,
    pub snippets: Vec<Snippet>,
    /// Bytes at the start of `prefix` that are kept headers and `...` lines rather than the
    /// verbatim window.
    #[cfg_attr(not(test), expect(dead_code, reason = "tests check that the rest is verbatim text"))]
    pub header_len: usize,
}

/// Steps 2 to 4 of [`build`]: the window, the extras, and the prompt's parts.
pub(crate) fn assemble(input: &ContextInput, cursor: usize, count: &dyn Fn(&str) -> usize) -> Parts {
    let budget = input.budget_tokens;
    let suffix_budget = budget / 4;
    // Headers and snippets share a quarter of the budget; what they leave goes back to the prefix.
    let reserve = budget / 4;

    // 2. Window: whole lines around the cursor, the suffix first, within what the extras leave.
    let mut win = window::Window::fit(input.doc, cursor, suffix_budget, budget.saturating_sub(reserve), count);
    // 3. Extras: the enclosing scopes' headers, imports, recent edits and signatures, in their
    // share, for this window.
    let around = snippets::Around { doc: input.doc, others: input.others, recent_edits: input.recent_edits };
    let mut extras = snippets::Extras::collect(&around, &win, reserve, count);
    // 4. Assemble: what the extras did not use goes back to the window (extras it now shows are
    // dropped), then the headers of the final window open the prefix.
    let leftover = budget.saturating_sub(win.prefix_tokens + win.suffix_tokens + extras.tokens);
    if leftover > 0 {
        win.widen(leftover, count);
        extras.retain_outside(&win);
    }
    let (prefix, header_len, snippets) = extras.finish(&win, count);
    Parts { prefix, suffix: win.suffix_text(), snippets, header_len }
}
