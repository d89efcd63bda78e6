//! The completion pipeline without LSP types: turn a document snapshot and a cursor into an
//! engine request, and the engine's text into what the editor shows.

use glint_engine::{Engine, GenerateRequest};

use crate::config::{ContextStrategy, Settings};
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_blanks_are_cut_from_the_prompt_and_from_the_answer() {
        let mut prefix = "x = ".to_string();
        let healed = Healing::CutBlanks(cut_trailing_blanks(&mut prefix));
        assert_eq!(prefix, "x =");
        assert_eq!(heal(" compute()", &healed), "compute()");
        assert_eq!(heal("compute()", &healed), "compute()");
        let mut prefix = "   ".to_string();
        assert_eq!(cut_trailing_blanks(&mut prefix), "");
    }

    fn cut(text: &str, raw: &str) -> (Option<String>, bool) {
        let cursor = text.find("$0").expect("a cursor marker");
        let doc = Document::new("file:///t/a.py", "python", 1, &text.replacen("$0", "", 1));
        plain_fim_cut(&doc, doc.rope.byte_to_char(cursor), raw)
    }

    #[test]
    fn plain_fim_cuts_at_a_line_indented_less_than_the_cursor_line() {
        let doc = "def f(n):\n    if n$0\n\nprint(f(3))\n";
        let (text, done) = cut(doc, " <= 1:\n        return n\n    return f(n - 1)\nprint(f(2))\n");
        assert_eq!(text.as_deref(), Some(" <= 1:\n        return n\n    return f(n - 1)"));
        assert!(done);
        // An unfinished answer is shown as far as it goes and is not complete.
        let (text, done) = cut(doc, " <= 1:\n        ret");
        assert_eq!((text.as_deref(), done), (Some(" <= 1:\n        ret"), false));
    }

    #[test]
    fn plain_fim_drops_a_tail_that_repeats_the_suffix() {
        let doc = "def f(n):\n    total = 0$0\n    return total\n";
        let (text, done) = cut(doc, "\n    for i in range(n):\n        total += i\n    return total\n");
        assert_eq!(text.as_deref(), Some("\n    for i in range(n):\n        total += i"));
        assert!(done);
        assert_eq!(cut(doc, "   \n  "), (None, false), "blank text is not shown");
    }

    #[test]
    fn on_a_blank_line_a_leading_break_and_the_indentation_are_skipped() {
        let healed = Healing::BlankLine("    ".into());
        assert_eq!(heal("\n    for x in y:\n        z", &healed), "for x in y:\n        z");
        assert_eq!(heal("for x in y:", &healed), "for x in y:");
        assert_eq!(heal("    for x in y:", &healed), "for x in y:");
        assert_eq!(heal("\n\n", &healed), "\n\n");
    }
}

pub use crate::context::Mode;

/// An engine request ready to send, with how to cut the answer.
pub struct Prepared {
    pub request: GenerateRequest,
    pub mode: Mode,
    /// How the context was built, which decides how the answer is cut.
    pub strategy: ContextStrategy,
    /// How the answer continues the user's text (see [`Healing`]).
    pub healed: Healing,
}

impl Prepared {
    /// The request for the engine, and the answer its chunks build.
    /// The answer keeps its own snapshot of `doc` (an O(1) clone), so it can outlive the request.
    pub fn into_parts(self, doc: &Document, cursor: usize) -> (GenerateRequest, Answer) {
        let answer = Answer {
            doc: doc.clone(),
            cursor,
            mode: self.mode,
            strategy: self.strategy,
            healed: self.healed,
            raw: String::new(),
        };
        (self.request, answer)
    }
}

/// A completion's answer as the model writes it: chunks are pushed in, and it says when the
/// answer is complete and what to show. Pure: no LSP types, no engine; the LSP handlers, code
/// action fills and `glint complete` all read a generation through it.
pub struct Answer {
    doc: Document,
    cursor: usize,
    mode: Mode,
    strategy: ContextStrategy,
    healed: Healing,
    raw: String,
}

impl Answer {
    /// Adds the model's next chunk; true when the answer is complete and generation may stop.
    pub fn push(&mut self, text: &str) -> bool {
        self.raw.push_str(text);
        self.is_complete()
    }

    /// The model's text so far, as it came.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether generation can stop: the answer is complete for its mode and strategy.
    pub fn is_complete(&self) -> bool {
        match self.strategy {
            ContextStrategy::Naive => false,
            ContextStrategy::PlainFim => plain_fim_cut(&self.doc, self.cursor, &self.raw).1,
            ContextStrategy::Syntax => is_complete(&self.doc, self.cursor, heal(&self.raw, &self.healed), self.mode),
        }
    }

    /// What to show for the text so far; `None` when there is nothing worth showing.
    pub fn text(&self) -> Option<String> {
        match self.strategy {
            ContextStrategy::Naive => Some(self.raw.clone()).filter(|t| !t.trim().is_empty()),
            ContextStrategy::PlainFim => plain_fim_cut(&self.doc, self.cursor, &self.raw).0,
            ContextStrategy::Syntax => postprocess(&self.doc, self.cursor, heal(&self.raw, &self.healed), self.mode),
        }
    }
}

/// llama.vscode's cut rules on a FIM model's text: keep whole lines up to the first generated
/// line (after the first) that is indented less than the cursor's line, or that repeats the
/// suffix's first non-blank line; drop trailing blank lines. Returns what to show and whether a
/// cut was made (the answer is complete).
pub fn plain_fim_cut(doc: &Document, cursor: usize, raw: &str) -> (Option<String>, bool) {
    let rope = &doc.rope;
    let cursor = cursor.min(rope.len_chars());
    let line = rope.line(rope.char_to_line(cursor));
    let indent_of = |text: &str| text.chars().take_while(|c| *c == ' ' || *c == '\t').count();
    let cursor_indent = line.chars().take_while(|c| *c == ' ' || *c == '\t').count();
    let suffix_line = rope
        .slice(cursor..)
        .lines()
        .map(|l| l.to_string())
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string());
    let mut kept = 0;
    let mut cut = false;
    for (i, generated) in raw.split_inclusive('\n').enumerate() {
        let body = generated.trim_end_matches(['\n', '\r']);
        if i > 0 && !body.trim().is_empty() {
            let repeats = suffix_line.as_deref().is_some_and(|s| s == body.trim());
            // Only a finished line is judged, so a partial one can still grow its indentation.
            let finished = generated.ends_with('\n');
            if repeats && finished || indent_of(body) < cursor_indent {
                cut = true;
                break;
            }
        }
        kept += generated.len();
    }
    let text = raw[..kept].trim_end();
    ((!text.trim().is_empty()).then(|| text.to_string()), cut)
}

/// What to undo at the start of the model's answer before showing it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Healing {
    #[default]
    None,
    /// These blanks ended the cursor line's text and were cut from the prompt: BPE models rarely
    /// see a prompt end in a space (it is glued to the next word in one token), so they answer
    /// `x = ` poorly. The model writes them again; they are removed from its answer.
    CutBlanks(String),
    /// The cursor sits after the indentation of a blank line. Small models often start such an
    /// answer with a line break and then the indented code; the break and the indentation the
    /// document already has are removed.
    BlankLine(String),
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
    let strategy = settings.context_strategy;
    let window = match strategy {
        ContextStrategy::Naive => context::naive(&input, &count),
        ContextStrategy::PlainFim => context::plain_fim(&input, &count),
        ContextStrategy::Syntax => match context::build(&input, &count) {
            Decision::Complete(window) => window,
            Decision::Skip(why) => return Err(why),
        },
    };
    let (max_tokens, stop) = match (strategy, window.mode) {
        (ContextStrategy::PlainFim, _) => (settings.max_tokens.min(128), Vec::new()),
        (_, Mode::SingleLine) => (settings.max_tokens.min(48), vec!["\n".to_string()]),
        (_, Mode::MultiLine) => (settings.max_tokens, vec!["\n\n\n".to_string()]),
    };
    let mut prefix = window.prefix;
    let line_before = prefix.rsplit('\n').next().unwrap_or("");
    let healed = if strategy != ContextStrategy::Syntax {
        Healing::None
    } else if line_before.trim().is_empty() {
        Healing::BlankLine(line_before.to_string())
    } else {
        Healing::CutBlanks(cut_trailing_blanks(&mut prefix))
    };
    let request = GenerateRequest {
        prefix,
        suffix: window.suffix,
        snippets: window.snippets,
        path: Some(window.path),
        language: Some(window.language).filter(|l| !l.is_empty()),
        max_tokens,
        stop,
        // A keyed hash of the URI: the same document keeps its KV cache, and no engine (a shared
        // remote one above all) learns file paths from the key.
        session: Some(glint_engine::session_key(&doc.uri)),
        ..GenerateRequest::default()
    };
    Ok(Prepared { request, mode: window.mode, strategy, healed })
}

fn cut_trailing_blanks(prefix: &mut String) -> String {
    let kept = prefix.trim_end_matches([' ', '\t']).len();
    // Keep a line that is nothing but blanks after a line break out of this only if the model
    // would otherwise see no text at all.
    if kept == 0 {
        return String::new();
    }
    prefix.split_off(kept)
}

/// The model's text as it continues the user's text at the cursor (see [`Healing`]).
pub fn heal<'a>(raw: &'a str, healed: &Healing) -> &'a str {
    match healed {
        Healing::None => raw,
        Healing::CutBlanks(blanks) => strip_blanks(raw, blanks),
        Healing::BlankLine(indent) => {
            let body = raw.trim_start_matches(['\n', '\r']);
            if body.len() == raw.len() {
                return strip_blanks(raw, indent);
            }
            // Only skip the break when code follows it; a bare break is the model's answer.
            if body.trim().is_empty() { raw } else { strip_blanks(body, indent) }
        }
    }
}

/// `text` without the leading blanks the document already has; when the model chose other
/// indentation, its leading blanks are dropped so the answer is not indented twice.
fn strip_blanks<'a>(text: &'a str, blanks: &str) -> &'a str {
    if let Some(rest) = text.strip_prefix(blanks) {
        return rest;
    }
    let lead = text.len() - text.trim_start_matches([' ', '\t']).len();
    if blanks.starts_with(&text[..lead]) || text[..lead].starts_with(blanks) { &text[lead..] } else { text }
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
