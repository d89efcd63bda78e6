//! The completion pipeline without LSP types: turn a document snapshot and a cursor into an
//! engine request, and the engine's text into what the editor shows.

use glint_engine::{Engine, GenerateRequest};

use crate::config::Settings;
use crate::context::{self, ContextInput, Decision, RecentEdit};
use crate::document::Document;
use crate::postprocess::PostInput;

/// A request for `glint complete`: as if the user invoked completion at the cursor.
pub fn request_for_cli(
    doc: &Document,
    cursor: usize,
    budget: usize,
    max_tokens: u32,
    engine: &dyn Engine,
) -> Result<Prepared, &'static str> {
    let settings = Settings { context_tokens: budget as u32, max_tokens, ..Settings::default() };
    prepare(doc, cursor, &settings, true, engine, &Surroundings::default())
}

pub use crate::context::Mode;

/// An engine request ready to send, with how to cut the answer.
pub struct Prepared {
    pub request: GenerateRequest,
    pub mode: Mode,
    /// The naive baseline: show the model's raw text, without post-processing.
    pub raw: bool,
}

/// Where the context comes from besides the document itself.
#[derive(Default)]
pub struct Surroundings<'a> {
    /// Other open documents (for signatures of what the prefix refers to).
    pub others: &'a [&'a Document],
    pub recent_edits: &'a [RecentEdit],
}

/// Decides whether to complete at `cursor` and builds the engine request. `Err` says why not.
pub fn prepare(
    doc: &Document,
    cursor: usize,
    settings: &Settings,
    invoked: bool,
    engine: &dyn Engine,
    around: &Surroundings<'_>,
) -> Result<Prepared, &'static str> {
    let input = ContextInput {
        doc,
        cursor,
        budget_tokens: settings.context_tokens as usize,
        invoked,
        others: around.others,
        recent_edits: around.recent_edits,
    };
    let count = |text: &str| engine.count_tokens(text);
    let naive = settings.context_strategy == "naive";
    let window = if naive {
        context::naive(&input, &count)
    } else {
        match context::build(&input, &count) {
            Decision::Complete(window) => window,
            Decision::Skip(why) => return Err(why),
        }
    };
    let (max_tokens, stop) = match window.mode {
        Mode::SingleLine => (settings.max_tokens.min(48), vec!["\n".to_string()]),
        Mode::MultiLine => (settings.max_tokens, vec!["\n\n\n".to_string()]),
    };
    let request = GenerateRequest {
        prefix: window.prefix,
        suffix: window.suffix,
        snippets: window.snippets,
        path: Some(window.path),
        language: Some(window.language).filter(|l| !l.is_empty()),
        max_tokens,
        stop,
        session: Some(doc.uri.to_string()),
        ..GenerateRequest::default()
    };
    Ok(Prepared { request, mode: window.mode, raw: naive })
}

/// Cleans the model's raw text for display; `None` when there is nothing worth showing.
pub fn postprocess(doc: &Document, cursor: usize, raw: &str, mode: Mode) -> Option<String> {
    crate::postprocess::postprocess(&PostInput { completion: raw, doc, cursor, mode })
}

/// Whether generation can stop early: the answer is complete for its mode (a single line has
/// ended, or the post-processor cut a multi-line answer at the end of its block and the model has
/// written past it).
pub fn is_complete(doc: &Document, cursor: usize, raw: &str, mode: Mode) -> bool {
    match mode {
        Mode::SingleLine => raw.contains('\n'),
        Mode::MultiLine => {
            if !raw.ends_with('\n') {
                return false;
            }
            let Some(cleaned) = postprocess(doc, cursor, raw, mode) else { return false };
            raw.trim_end().len() > cleaned.trim_end().len() + 1
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
