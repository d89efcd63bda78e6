//! One completion request from the server's state to its answer, for inline completions and
//! completion items alike: the typing-through cache, the in-flight registration, debounce, the
//! wait for a loading model, the request snapshot, the engine's streamed answer (read through
//! [`completion::Reading`]), early answers, staleness and metrics. No LSP types: the handler turns
//! its params into an [`Ask`] and the [`Suggestions`] into items, and streamed progress leaves
//! through a [`Progress`] sink.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use glint_engine::{CancelFlag, GenerateRequest, Sampling};
use serde_json::json;

use crate::completion::{self, Answer, Reading, Unanswered};
use crate::document::{Change, Document};
use crate::engines::EngineSlot;
use crate::position::{self, Encoding, LinePos};
use crate::schedule::{Follow, Suggestion, View};
use crate::state::{DocumentSnapshot, RequestSnapshot, State, Unavailable};

/// A completion request as the pipeline takes it.
#[derive(Debug, Clone)]
pub struct Ask {
    pub uri: String,
    /// The cursor, in the negotiated position encoding.
    pub at: LinePos,
    /// The user asked explicitly (as opposed to an automatic trigger while typing).
    pub invoked: bool,
    /// The completion item the editor's menu has selected: complete as if it were inserted.
    pub selected: Option<Selected>,
    pub surface: Surface,
}

/// A selected completion item: its range (in the negotiated encoding) and text.
#[derive(Debug, Clone)]
pub struct Selected {
    pub start: LinePos,
    pub end: LinePos,
    pub text: String,
}

/// Where the answer is shown, which decides what else is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// Ghost text: an explicit request gets sampled alternatives; an automatic one prepares the
    /// suggestion that follows it.
    Inline,
    /// One completion item.
    Item,
}

/// What to insert at `cursor` of `doc`: the first text is the greedy answer, others are sampled
/// alternatives (explicit inline requests only).
pub struct Suggestions {
    pub doc: Document,
    pub cursor: usize,
    pub encoding: Encoding,
    pub texts: Vec<String>,
}

/// The request was overtaken: an edit or a newer request cancelled it, its document moved on, or
/// the engine superseded its generation. Cut-off text is never an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stale;

/// The streamed text of a completion being written, for the editor that shows it: the request's
/// document version and cursor, and the whole suggestion so far after what was typed of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressUpdate {
    pub uri: String,
    pub version: i32,
    pub line: u32,
    pub character: u32,
    pub text: String,
    /// The final text (empty when the completion ended without an answer).
    pub last: bool,
}

/// Where progress goes (the LSP handler sends `glint/inlineCompletionProgress`).
pub type Progress = Arc<dyn Fn(ProgressUpdate) -> BoxFuture<'static, ()> + Send + Sync>;

/// How long an invoked completion or a code action waits for the model to finish loading.
pub const LOAD_WAIT: Duration = Duration::from_secs(120);
/// Extra sampled items are only computed while the first answer took less than this.
const EXTRA_ITEMS_BUDGET: Duration = Duration::from_millis(1500);
/// How long a request waits for the completion the user is typing through.
const FOLLOW_WAIT: Duration = Duration::from_secs(3);

/// Answers `ask`: `Ok(None)` when there is nothing to suggest here (or no engine to ask).
pub async fn complete(state: &Arc<State>, ask: &Ask, progress: &Progress) -> Result<Option<Suggestions>, Stale> {
    let started = Instant::now();
    let Some(first) = answer(state, ask, progress, 0).await? else { return Ok(None) };
    let mut texts = vec![first.text.clone()];
    match ask.surface {
        Surface::Inline if !ask.invoked && ask.selected.is_none() => speculate(state, &first),
        // An explicit request gets up to three distinct items to cycle through, by sampling, as
        // long as the first one came quickly enough that the user is not kept waiting long.
        Surface::Inline if ask.invoked => {
            for variant in 1..=2 {
                if started.elapsed() > EXTRA_ITEMS_BUDGET {
                    break;
                }
                if let Some(extra) = answer(state, ask, progress, variant).await?
                    && !texts.contains(&extra.text)
                {
                    texts.push(extra.text);
                }
            }
        }
        _ => {}
    }
    Ok(Some(Suggestions { doc: first.doc, cursor: first.cursor, encoding: first.encoding, texts }))
}

/// One finished suggestion: insert `text` at `cursor` of `doc`.
struct Outcome {
    doc: Document,
    cursor: usize,
    encoding: Encoding,
    text: String,
}

/// One answer to `ask`. `variant` 0 is the greedy answer; other variants sample with that seed.
async fn answer(state: &Arc<State>, ask: &Ask, progress: &Progress, variant: u64) -> Result<Option<Outcome>, Stale> {
    let started = Instant::now();
    let uri = ask.uri.as_str();
    let Some(mut snapshot) = state.document_snapshot(uri) else {
        tracing::debug!(uri, "completion for a document that is not open");
        return Ok(None);
    };
    if !snapshot.settings.language_enabled(&snapshot.doc.language_id) {
        return Ok(None);
    }
    let cursor = place_cursor(&mut snapshot, ask);
    let rope = &snapshot.doc.rope;
    let line = rope.char_to_line(cursor);
    let line_prefix = rope.slice(rope.line_to_char(line)..cursor).to_string();
    // Only the greedy answer at the user's own text may be typed through and cached.
    let fresh = ask.selected.is_none() && variant == 0;
    if fresh && let Some(text) = typed_through(state, ask, &snapshot, cursor, line, &line_prefix).await {
        record(state, json!({"uri": uri, "cacheHit": true, "totalMs": ms(started.elapsed())}));
        let DocumentSnapshot { doc, encoding, .. } = snapshot;
        return Ok(Some(Outcome { doc, cursor, encoding, text }));
    }

    let follow = fresh.then(|| Arc::new(Follow::new(line, line_prefix.clone())));
    let work = state.work.start_completion(uri, follow.clone());
    let token = work.token.clone();
    let guard = InflightGuard { state: Arc::clone(state), id: work.id };
    let follow_done = FollowDone(follow.clone());
    let Some(snapshot) = ready(state, ask, snapshot, &token).await? else { return Ok(None) };

    let context_started = Instant::now();
    let Some((request, answer)) = request_for(&snapshot, ask, cursor, variant) else { return Ok(None) };
    let context_ms = ms(context_started.elapsed());
    let RequestSnapshot { doc, settings, encoding, engine, .. } = snapshot;
    let pos = position::from_char(&doc.rope, cursor, encoding);
    let view = View { version: doc.version, line: pos.line, character: pos.character, typed: String::new() };
    if let Some(follow) = &follow {
        *follow.view.lock() = Some(view.clone());
    }
    // Only a request that keystrokes may type through is answered early.
    let early_at = (follow.is_some() && answers_early(&settings, ask.invoked))
        .then(|| started + Duration::from_millis(settings.early_answer_ms));
    let writing = Writing {
        state: Arc::clone(state),
        progress: Arc::clone(progress),
        uri: uri.to_string(),
        reading: Reading::start(&*engine, request, answer),
        doc,
        cursor,
        encoding,
        line,
        line_prefix,
        partial: None,
        follow,
        view,
        streaming: settings.streaming,
        started,
        context_ms,
        first_chunk_ms: None,
        guard,
        follow_done,
    };
    writing.run(token, early_at).await
}

/// The engine request for `ask` at `cursor` and the answer its chunks build; `None` when there is
/// nothing to complete here. `variant` 0 is greedy; others sample with that seed.
fn request_for(
    snapshot: &RequestSnapshot,
    ask: &Ask,
    cursor: usize,
    variant: u64,
) -> Option<(GenerateRequest, Answer)> {
    let RequestSnapshot { doc, settings, engine, visible, .. } = snapshot;
    let mut prepared = match completion::prepare(doc, cursor, settings, ask.invoked, &**engine, visible) {
        Ok(prepared) => prepared,
        Err(why) => {
            tracing::debug!(uri = ask.uri, "no completion: {why}");
            return None;
        }
    };
    if variant > 0 {
        prepared.request.sampling =
            Sampling { temperature: 0.8, top_p: Some(0.95), seed: variant, ..Sampling::default() };
    }
    Some(prepared.into_parts(doc, cursor))
}

/// The cursor as a char index of the snapshot's document; with a selected completion item, the
/// item is inserted first and the cursor follows it.
fn place_cursor(snapshot: &mut DocumentSnapshot, ask: &Ask) -> usize {
    let DocumentSnapshot { doc, encoding, .. } = snapshot;
    let cursor = position::to_char(&doc.rope, ask.at, *encoding);
    let Some(selected) = &ask.selected else { return cursor };
    let start = position::to_char(&doc.rope, selected.start, *encoding);
    let end = position::to_char(&doc.rope, selected.end, *encoding);
    let (start, end) = (start.min(end), start.max(end));
    doc.rope.remove(start..end);
    doc.rope.insert(start, &selected.text);
    doc.tree = None;
    start + selected.text.chars().count()
}

/// The answer for a keystroke that types through a suggestion: from the typing-through cache, or
/// from a completion still being written (or one answered early that goes on).
async fn typed_through(
    state: &State,
    ask: &Ask,
    snapshot: &DocumentSnapshot,
    cursor: usize,
    line: usize,
    line_prefix: &str,
) -> Option<String> {
    let uri = ask.uri.as_str();
    if let Some(rest) = state.typing_cache.lookup(uri, line, line_prefix) {
        tracing::debug!(uri, "typing-through cache hit");
        return Some(rest);
    }
    let follow = state.work.follow_for(uri, line, line_prefix)?;
    let pos = position::from_char(&snapshot.doc.rope, cursor, snapshot.encoding);
    let early = answers_early(&snapshot.settings, ask.invoked);
    let rest = from_follow(state, uri, &follow, line_prefix, snapshot.doc.version, pos, early).await?;
    tracing::debug!(uri, "typed through a running completion");
    Some(rest)
}

/// Waits out the debounce (automatic requests) and a loading model (invoked ones), then takes the
/// engine and what it may see. `Ok(None)` when there is no engine to ask.
async fn ready(
    state: &State,
    ask: &Ask,
    snapshot: DocumentSnapshot,
    token: &CancelFlag,
) -> Result<Option<RequestSnapshot>, Stale> {
    let uri = ask.uri.as_str();
    if !ask.invoked {
        let delay = state.rhythm.debounce(uri, Duration::from_millis(snapshot.settings.debounce_ms));
        if !delay.is_zero() {
            tokio::select! {
                _ = token.cancelled() => return Err(Stale),
                _ = tokio::time::sleep(delay) => {}
            }
        }
    } else {
        // An invoked completion waits for a model that is still loading (bounded, and cancelled by
        // the next keystroke like any request); an automatic one answers nothing meanwhile.
        tokio::select! {
            _ = token.cancelled() => return Err(Stale),
            _ = state.engine_when_loaded(LOAD_WAIT) => {}
        }
    }
    match snapshot.ready(state) {
        Ok(snapshot) => Ok(Some(snapshot)),
        Err(Unavailable::Loading) => {
            tracing::info!(uri, "no completion: the model is still loading");
            Ok(None)
        }
        Err(Unavailable::Failed(why)) => {
            tracing::debug!(uri, "no completion: the engine failed to start: {why}");
            Ok(None)
        }
        // Architecture Invariant: a remote engine never sees secrets or files outside the
        // workspace, neither as the document itself nor as snippets or recent edits.
        Err(Unavailable::Refused(_) | Unavailable::NoEngine | Unavailable::NotOpen) => Ok(None),
    }
}

/// The next suggestion before Tab (llama.vim's speculative FIM): while the ghost text is shown,
/// compute in the background the suggestion that follows if it is accepted, and keep it in the
/// typing-through cache, so that accepting and going on is instant. Only for an in-process engine
/// with nothing else to do; the next keystroke supersedes it like any request.
fn speculate(state: &Arc<State>, outcome: &Outcome) {
    let state = Arc::clone(state);
    let mut doc = outcome.doc.clone();
    let text = outcome.text.clone();
    let cursor = outcome.cursor;
    tokio::spawn(async move {
        // Let the answer reach the client first.
        tokio::task::yield_now().await;
        // Only an in-process engine: its KV cache makes the work cheap, and no one else waits on it.
        if !matches!(&*state.engine.read(), EngineSlot::Ready(engine) if engine.info().kind == "local") {
            return;
        }
        let uri = doc.uri.to_string();
        let Some(now) = state.document_snapshot(&uri) else { return };
        if now.doc.version != doc.version || state.work.completions_running() {
            return;
        }
        // Accept the text as an edit, with the syntax tree kept in step: the context is then cut
        // the way the next keystroke's will be, and the prompt extends the one just answered
        // instead of replacing it in the KV cache with a cold one laid out without syntax.
        let at = position::from_char(&doc.rope, cursor, Encoding::Utf32);
        doc.apply_changes(doc.version, &[Change { range: Some((at, at)), text: text.clone() }], Encoding::Utf32);
        let Ok(snapshot) = DocumentSnapshot { doc, ..now }.ready(&state) else { return };
        let RequestSnapshot { doc, settings, engine, visible, .. } = &snapshot;
        let accepted = cursor + text.chars().count();
        let line = doc.rope.char_to_line(accepted);
        let line_prefix = doc.rope.slice(doc.rope.line_to_char(line)..accepted).to_string();
        let Ok(prepared) = completion::prepare(doc, accepted, settings, false, &**engine, visible) else { return };
        let (request, answer) = prepared.into_parts(doc, accepted);
        let mut reading = Reading::start(&**engine, request, answer);
        reading.to_end().await;
        if let Ok(Some(next)) = reading.into_answer().verdict() {
            tracing::debug!(uri, line, "the suggestion after this one is ready");
            state.typing_cache.insert(Suggestion { uri, line, line_prefix, text: next });
        }
    });
}

/// Marks a typed-through completion as ended, however it ends, so its waiters wake.
struct FollowDone(Option<Arc<Follow>>);

impl Drop for FollowDone {
    fn drop(&mut self) {
        if let Some(follow) = &self.0 {
            follow.done.cancel();
        }
    }
}

/// Unregisters the in-flight token when the request ends, however it ends.
struct InflightGuard {
    state: Arc<State>,
    id: u64,
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.state.work.finish(self.id);
    }
}

/// Whether a request is answered early (see `earlyAnswerMs`): only an automatic one, and only for a
/// client that gets the rest streamed (others would keep the early text until the next key).
fn answers_early(settings: &crate::config::Settings, invoked: bool) -> bool {
    !invoked && settings.streaming && settings.early_answer_ms > 0
}

/// Answers a request from a completion it types through: when `early`, at once with the rest of
/// the streamed text when there is some (the completion streams the remainder to this request from
/// then on); else when the completion ends (its answer is in the typing-through cache), bounded.
async fn from_follow(
    state: &State,
    uri: &str,
    follow: &Follow,
    line_prefix: &str,
    version: i32,
    pos: LinePos,
    early: bool,
) -> Option<String> {
    let typed = line_prefix.strip_prefix(follow.line_prefix.as_str())?.to_string();
    let mut changes = follow.changes.subscribe();
    let give_up = tokio::time::Instant::now() + FOLLOW_WAIT;
    loop {
        if follow.done.is_cancelled() {
            return state.typing_cache.lookup(uri, follow.line, line_prefix);
        }
        if early && let Some(rest) = follow.rest_after(&typed).filter(|rest| !rest.trim().is_empty()) {
            *follow.view.lock() = Some(View { version, line: pos.line, character: pos.character, typed });
            return Some(rest);
        }
        tokio::select! {
            _ = follow.done.cancelled() => {}
            _ = changes.changed() => {}
            _ = tokio::time::sleep_until(give_up) => return None,
        }
    }
}

/// A completion being written: the engine's generation read into its answer, and where its
/// progress goes. Owned, so that an early-answered request hands it to a background task.
struct Writing {
    state: Arc<State>,
    progress: Progress,
    uri: String,
    reading: Reading,
    doc: Document,
    cursor: usize,
    encoding: Encoding,
    line: usize,
    line_prefix: String,
    /// The answer's post-processed text after the latest chunk.
    partial: Option<String>,
    follow: Option<Arc<Follow>>,
    /// The request the progress is for when there is no follow.
    view: View,
    streaming: bool,
    started: Instant,
    context_ms: f64,
    first_chunk_ms: Option<f64>,
    guard: InflightGuard,
    follow_done: FollowDone,
}

impl Writing {
    /// Reads the generation until it ends, the request is cancelled, or it is time to answer early.
    async fn run(mut self, token: CancelFlag, early_at: Option<Instant>) -> Result<Option<Outcome>, Stale> {
        loop {
            let can_answer = early_at.is_some() && self.has_text();
            tokio::select! {
                biased;
                _ = token.cancelled() => {
                    tracing::trace!(uri = self.uri, "completion superseded");
                    return Err(Stale);
                }
                _ = tokio::time::sleep_until(early_at.unwrap_or(self.started).into()), if can_answer => {
                    return self.answer_early(token);
                }
                more = self.step() => {
                    if !more {
                        break;
                    }
                    if early_at.is_some_and(|at| Instant::now() >= at) && self.has_text() {
                        return self.answer_early(token);
                    }
                }
            }
        }
        self.finish()
    }

    /// Whether the answer so far shows something.
    fn has_text(&self) -> bool {
        self.partial.as_ref().is_some_and(|t| !t.trim().is_empty())
    }

    /// Reads the next chunk and streams the partial answer to the editor; true while more comes.
    async fn step(&mut self) -> bool {
        let more = self.reading.step().await;
        if self.reading.answer().chunks() > 0 {
            self.first_chunk_ms.get_or_insert_with(|| ms(self.started.elapsed()));
        }
        if more {
            self.partial = self.reading.answer().text();
            if let Some(partial) = &self.partial {
                if let Some(follow) = &self.follow {
                    follow.set_partial(partial.clone());
                }
                self.send_progress(partial, false).await;
            }
        }
        more
    }

    /// Streams `text` (the whole suggestion so far) to the request that shows it, when streaming.
    async fn send_progress(&self, text: &str, last: bool) {
        if !self.streaming {
            return;
        }
        let view = self.follow.as_ref().and_then(|f| f.view.lock().clone()).unwrap_or_else(|| self.view.clone());
        let Some(shown) = text.strip_prefix(view.typed.as_str()) else { return };
        let update = ProgressUpdate {
            uri: self.uri.clone(),
            version: view.version,
            line: view.line,
            character: view.character,
            text: shown.to_string(),
            last,
        };
        (self.progress)(update).await;
    }

    fn outcome(&self, text: String) -> Outcome {
        Outcome { doc: self.doc.clone(), cursor: self.cursor, encoding: self.encoding, text }
    }

    /// Answers the request now with the text so far; the generation goes on in the background
    /// (keystrokes that type its text do not cancel it), its progress still streamed and its
    /// final answer kept in the typing-through cache.
    fn answer_early(self, token: CancelFlag) -> Result<Option<Outcome>, Stale> {
        let text = self.partial.clone().unwrap_or_default();
        let current = self.state.snapshot(&self.uri).is_some_and(|now| now.version == self.doc.version);
        let outcome = self.outcome(text);
        let answered_ms = ms(self.started.elapsed());
        if let Some(follow) = &self.follow {
            follow.answered.store(true, std::sync::atomic::Ordering::Release);
        }
        tracing::debug!(uri = self.uri, answered_ms, "answered early; the model goes on");
        if current {
            // What `glint/status` reports until the rest is written, which the next keystroke
            // (an accept among them) may cancel: the time the user waited for the suggestion.
            record(&self.state, self.summary(answered_ms, Some(answered_ms), true, None));
        }
        tokio::spawn(self.go_on(token, answered_ms));
        if current { Ok(Some(outcome)) } else { Err(Stale) }
    }

    /// The rest of an early-answered completion, in the background.
    async fn go_on(mut self, token: CancelFlag, answered_ms: f64) {
        loop {
            tokio::select! {
                biased;
                _ = token.cancelled() => return,
                more = self.step() => if !more { break },
            }
        }
        let text = self.reading.answer().verdict().ok().flatten();
        if let Some(text) = &text {
            self.remember(text.clone());
        }
        // The editor's text becomes the final answer, or goes away when there is none.
        self.send_progress(text.as_deref().unwrap_or(""), true).await;
        self.report(text.is_some(), Some(answered_ms));
        let outcome = text.map(|text| self.outcome(text));
        let Writing { state, uri, doc, reading, guard, follow_done, .. } = self;
        // Unregistered first: the speculation only runs when nothing else does.
        drop((reading, guard, follow_done));
        if let Some(outcome) = outcome
            && state.snapshot(&uri).is_some_and(|now| now.version == doc.version)
        {
            speculate(&state, &outcome);
        }
    }

    /// The generation ended while the request waited: its answer.
    fn finish(self) -> Result<Option<Outcome>, Stale> {
        let uri = self.uri.as_str();
        let text = match self.reading.answer().verdict() {
            Ok(text) => text,
            Err(Unanswered::Failed(why)) => {
                tracing::warn!(uri, "the engine failed: {why}");
                return Ok(None);
            }
            // Cut-off text is never an answer: a generation that ended cancelled (the engine
            // superseded it, or it was dropped) answers like a superseded request.
            Err(Unanswered::Cancelled) => return Err(Stale),
        };
        // A request whose document moved on is stale even if nobody cancelled it. When the user
        // typed through it, its answer serves their keystrokes' requests from the cache.
        if self.state.snapshot(uri).is_none_or(|now| now.version != self.doc.version) {
            if self.follow.as_ref().is_some_and(|follow| !follow.typed.lock().is_empty())
                && let Some(text) = text
            {
                self.remember(text);
            }
            return Err(Stale);
        }
        tracing::debug!(uri, raw = ?self.reading.answer().raw(), "model text");
        self.report(text.is_some(), None);
        let Some(text) = text else { return Ok(None) };
        if self.follow.is_some() {
            self.remember(text.clone());
        }
        // The in-flight registration and the follow end with `self`, after the answer is cached.
        Ok(Some(self.outcome(text)))
    }

    /// Keeps `text` as the answer for the request's line in the typing-through cache.
    fn remember(&self, text: String) {
        self.state.typing_cache.insert(Suggestion {
            uri: self.uri.clone(),
            line: self.line,
            line_prefix: self.line_prefix.clone(),
            text,
        });
    }

    /// Logs the finished completion and records it for `glint/status`; `answered_ms` is when an
    /// early answer went out.
    fn report(&self, shown: bool, answered_ms: Option<f64>) {
        let timings = self.reading.answer().finish().map(|f| f.timings.clone()).unwrap_or_default();
        let total_ms = ms(self.started.elapsed());
        tracing::info!(
            uri = self.uri,
            context_ms = self.context_ms,
            prompt_tokens = timings.prompt_tokens,
            cached_tokens = timings.cached_tokens,
            first_chunk_ms = self.first_chunk_ms,
            answered_ms,
            total_ms,
            shown,
            "completion"
        );
        record(&self.state, self.summary(total_ms, answered_ms, shown, Some(&timings)));
    }

    /// This completion as `glint/status` reports it: `total_ms` since it started, when an early
    /// answer went out, and the engine's token counts once its generation has ended.
    fn summary(
        &self,
        total_ms: f64,
        answered_ms: Option<f64>,
        shown: bool,
        timings: Option<&glint_engine::Timings>,
    ) -> serde_json::Value {
        let mut summary = json!({
            "uri": self.uri,
            "cacheHit": false,
            "contextMs": self.context_ms,
            "firstChunkMs": self.first_chunk_ms,
            "totalMs": total_ms,
            "shown": shown,
        });
        if let Some(timings) = timings {
            summary["promptTokens"] = json!(timings.prompt_tokens);
            summary["cachedTokens"] = json!(timings.cached_tokens);
        }
        if let Some(answered_ms) = answered_ms {
            summary["answeredMs"] = json!(answered_ms);
        }
        summary
    }
}

fn record(state: &State, summary: serde_json::Value) {
    *state.last_completion.write() = Some(summary);
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}
