//! Completions without LSP types: a document snapshot and a cursor become an engine request
//! (`prepare`), and the engine's chunks become what the editor shows (`Answer`, read from a
//! `Generation` by `Reading`, the one loop every caller shares). `crate::pipeline` runs a request
//! through these; code action fills and `glint complete` use them directly.

use glint_engine::{CancelFlag, Chunk, Engine, Finish, FinishReason, GenerateRequest, Generation};

use crate::config::{ContextStrategy, Settings};
use crate::context::{self, ContextInput, Decision};
use crate::document::Document;
use crate::postprocess::PostInput;
use crate::state::Visible;

/// A request for `glint complete`: as if the user invoked completion at the cursor.
pub fn request_for_cli(
    doc: &Document,
    cursor: usize,
    budget: usize,
    max_tokens: u32,
    engine: &dyn Engine,
) -> Result<Prepared, &'static str> {
    let settings = Settings { context_tokens: budget as u32, max_tokens, ..Settings::default() };
    prepare(doc, cursor, &settings, true, engine, &Visible::nothing())
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

    fn answer_at(text: &str) -> Answer {
        let cursor = text.find("$0").expect("a cursor marker");
        let doc = Document::new("file:///t/a.py", "python", 1, &text.replacen("$0", "", 1));
        let cursor = doc.rope.byte_to_char(cursor);
        let prepared = Prepared {
            request: GenerateRequest::default(),
            mode: Mode::SingleLine,
            strategy: ContextStrategy::Syntax,
            healed: Healing::None,
        };
        prepared.into_parts(&doc, cursor).1
    }

    fn done(reason: FinishReason) -> Chunk {
        Chunk::Done(Finish { reason, error: Some("boom".into()), ..Finish::default() })
    }

    #[test]
    fn cut_off_text_is_never_an_answer() {
        // Cancelled or failed before the answer was complete: no answer, whatever the text.
        for (reason, why) in
            [(FinishReason::Cancelled, Unanswered::Cancelled), (FinishReason::Error, Unanswered::Failed("boom".into()))]
        {
            let mut answer = answer_at("x = $0\n");
            assert!(answer.push(Chunk::Text("compute(".into())));
            assert!(!answer.push(done(reason)));
            assert_eq!(answer.verdict(), Err(why));
        }
        // A generation that vanished without its final chunk is no answer either.
        let mut answer = answer_at("x = $0\n");
        answer.push(Chunk::Text("compute(".into()));
        answer.vanished();
        assert!(matches!(answer.verdict(), Err(Unanswered::Failed(_))));
    }

    #[test]
    fn a_complete_answer_stands_however_the_generation_ends_after_it() {
        let mut answer = answer_at("x = $0\n");
        assert!(answer.push(Chunk::Text("compute()".into())));
        assert!(!answer.push(Chunk::Text("\nmore".into())), "a single line is complete at its end");
        // Later text is ignored, and the reader's own cancel does not void the answer.
        answer.push(Chunk::Text("ignored".into()));
        answer.push(done(FinishReason::Cancelled));
        assert_eq!(answer.verdict(), Ok(Some("compute()".to_string())));
        assert_eq!(answer.raw(), "compute()\nmore");
    }

    #[test]
    fn an_instruction_answer_is_complete_once_its_code_block_closes() {
        let mut answer = Answer::fenced();
        assert!(answer.push(Chunk::Text("Here:\n```rust\nfn f() {}\n".into())));
        assert!(!answer.push(Chunk::Text("```\nAnd some chatter".into())));
        assert!(!answer.wants_more());
        assert_eq!(
            answer.verdict().ok().flatten().as_deref(),
            Some("Here:\n```rust\nfn f() {}\n```\nAnd some chatter")
        );
        assert_eq!(answer.chunks(), 2);
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
        let cut =
            Cut::Completion { doc: doc.clone(), cursor, mode: self.mode, strategy: self.strategy, healed: self.healed };
        (self.request, Answer::new(cut))
    }
}

/// Why a generation gave no answer. Cut-off text is never an answer: it is not shown, cached or
/// applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unanswered {
    /// The generation ended cancelled (dropped, or superseded in the engine) before its answer
    /// was complete.
    Cancelled,
    /// The engine failed, or stopped without saying how it ended.
    Failed(String),
}

/// A model's answer as it is written: `push` each chunk of the generation, ask `text` for what to
/// show so far, and `verdict` once it ended. Pure: no LSP types, no engine, no clock; inline
/// completions, completion items, code action fills and `glint complete` all read a generation
/// through it (with [`Reading`]).
pub struct Answer {
    cut: Cut,
    raw: String,
    /// Text chunks pushed.
    chunks: u32,
    /// The answer is complete for its cut: generation may stop, later text is ignored.
    complete: bool,
    /// How the generation ended, once it did (`None` while it runs, or when it vanished).
    finish: Option<Finish>,
    /// The generation ended (its final chunk came, or it vanished).
    ended: bool,
}

/// How an answer's raw text becomes what is shown, and when it is complete.
enum Cut {
    /// A completion at `cursor` of `doc`, cut for its mode and context strategy.
    Completion { doc: Document, cursor: usize, mode: Mode, strategy: ContextStrategy, healed: Healing },
    /// An instruction's answer: the raw text, complete once a code block has opened and closed.
    Fenced,
}

impl Answer {
    fn new(cut: Cut) -> Answer {
        Answer { cut, raw: String::new(), chunks: 0, complete: false, finish: None, ended: false }
    }

    /// The answer to an instruction (code actions that rewrite): the raw text, complete once its
    /// code block closed (the rest would be chatter).
    pub fn fenced() -> Answer {
        Answer::new(Cut::Fenced)
    }

    /// Adds the generation's next chunk; true while more is wanted (the answer is not complete
    /// and the generation goes on).
    pub fn push(&mut self, chunk: Chunk) -> bool {
        match chunk {
            Chunk::Text(_) if self.complete || self.ended => {}
            Chunk::Text(text) => {
                self.raw.push_str(&text);
                self.chunks += 1;
                self.complete = self.is_complete();
            }
            Chunk::Done(finish) => {
                self.finish = Some(finish);
                self.ended = true;
            }
        }
        self.wants_more()
    }

    /// The generation stopped without its final chunk (its producer vanished).
    pub fn vanished(&mut self) {
        self.ended = true;
    }

    /// Whether the generation should go on: the answer is not complete and nothing ended it.
    pub fn wants_more(&self) -> bool {
        !self.complete && !self.ended
    }

    /// The model's text so far, as it came.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// How many text chunks came.
    pub fn chunks(&self) -> u32 {
        self.chunks
    }

    /// How the generation ended, when it said so.
    pub fn finish(&self) -> Option<&Finish> {
        self.finish.as_ref()
    }

    /// Whether generation can stop: the answer is complete for its mode and strategy.
    fn is_complete(&self) -> bool {
        match &self.cut {
            Cut::Fenced => fence_closed(&self.raw),
            Cut::Completion { strategy: ContextStrategy::Naive, .. } => false,
            Cut::Completion { doc, cursor, strategy: ContextStrategy::PlainFim, .. } => {
                plain_fim_cut(doc, *cursor, &self.raw).1
            }
            Cut::Completion { doc, cursor, mode, strategy: ContextStrategy::Syntax, healed } => {
                is_complete(doc, *cursor, heal(&self.raw, healed), *mode)
            }
        }
    }

    /// What to show for the text so far; `None` when there is nothing worth showing. An
    /// instruction's answer is its raw text.
    pub fn text(&self) -> Option<String> {
        match &self.cut {
            Cut::Fenced => Some(self.raw.clone()),
            Cut::Completion { strategy: ContextStrategy::Naive, .. } => {
                Some(self.raw.clone()).filter(|t| !t.trim().is_empty())
            }
            Cut::Completion { doc, cursor, strategy: ContextStrategy::PlainFim, .. } => {
                plain_fim_cut(doc, *cursor, &self.raw).0
            }
            Cut::Completion { doc, cursor, mode, strategy: ContextStrategy::Syntax, healed } => {
                postprocess(doc, *cursor, heal(&self.raw, healed), *mode)
            }
        }
    }

    /// The answer once the generation ended: what to show (`None`: nothing worth showing), or why
    /// there is no answer. A complete answer stands however the generation ended afterwards (the
    /// reader stops it); otherwise a cancelled or failed generation gives none.
    pub fn verdict(&self) -> Result<Option<String>, Unanswered> {
        if !self.complete {
            match &self.finish {
                Some(Finish { reason: FinishReason::Cancelled, .. }) => return Err(Unanswered::Cancelled),
                Some(Finish { reason: FinishReason::Error, error, .. }) => {
                    return Err(Unanswered::Failed(error.clone().unwrap_or_else(|| "unknown error".into())));
                }
                None if self.ended => {
                    return Err(Unanswered::Failed("the engine stopped without finishing the generation".into()));
                }
                _ => {}
            }
        }
        Ok(self.text())
    }
}

/// Whether `raw` holds an opening and a closing code fence at line starts.
fn fence_closed(raw: &str) -> bool {
    raw.lines().filter(|l| l.trim_start().starts_with("```")).count() >= 2
}

/// A generation read into its [`Answer`]: the one loop that reads a `Generation` to its end.
/// Callers that must stop on their own signal (a keystroke, a cancelled progress bar) race
/// [`Reading::step`] against it; dropping the reading drops the generation, which cancels it.
pub struct Reading {
    generation: Generation,
    answer: Answer,
}

impl Reading {
    pub fn new(generation: Generation, answer: Answer) -> Reading {
        Reading { generation, answer }
    }

    /// Sends `request` to `engine` and reads its generation into `answer`.
    pub fn start(engine: &dyn Engine, request: GenerateRequest, answer: Answer) -> Reading {
        Reading::new(engine.generate(request), answer)
    }

    /// Reads the next chunk into the answer; true while more is wanted. Cancel-safe: a chunk is
    /// only taken when this completes.
    pub async fn step(&mut self) -> bool {
        if !self.answer.wants_more() {
            return false;
        }
        match self.generation.next_chunk().await {
            Some(chunk) => self.answer.push(chunk),
            None => {
                self.answer.vanished();
                false
            }
        }
    }

    /// Reads until the answer is complete or the generation ended.
    pub async fn to_end(&mut self) {
        while self.step().await {}
    }

    /// Reads until the answer is complete or the generation ended (true), or until `token` is
    /// cancelled (false, the answer cut off); `each` runs after every chunk read.
    pub async fn until_cancelled<F: Future<Output = ()>>(
        &mut self,
        token: &CancelFlag,
        mut each: impl FnMut(&Answer) -> F,
    ) -> bool {
        loop {
            tokio::select! {
                biased;
                _ = token.cancelled() => return false,
                more = self.step() => {
                    if !more {
                        return true;
                    }
                    each(&self.answer).await;
                }
            }
        }
    }

    /// For a caller that wants the engine's figures for a complete answer: cancels the rest of the
    /// work and reads on to the final chunk, which carries the timings.
    pub async fn stop_for_timings(&mut self) {
        self.generation.cancel();
        while let Some(chunk) = self.generation.next_chunk().await {
            if let Chunk::Done(_) = chunk {
                self.answer.push(chunk);
                return;
            }
        }
        self.answer.vanished();
    }

    pub fn answer(&self) -> &Answer {
        &self.answer
    }

    /// Ends the reading: the generation is dropped (which cancels whatever work is left), the
    /// answer stays.
    pub fn into_answer(self) -> Answer {
        self.answer
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

/// Decides whether to complete at `cursor` and builds the engine request, with only the
/// surroundings the engine may see (`visible`, from a request snapshot). `Err` says why not.
pub fn prepare(
    doc: &Document,
    cursor: usize,
    settings: &Settings,
    invoked: bool,
    engine: &dyn Engine,
    visible: &Visible,
) -> Result<Prepared, &'static str> {
    let others: Vec<&Document> = visible.others().iter().collect();
    let input = ContextInput {
        doc,
        cursor,
        budget_tokens: settings.context_tokens as usize,
        invoked,
        others: &others,
        recent_edits: visible.recent_edits(),
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
