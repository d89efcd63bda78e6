//! `textDocument/inlineCompletion` and `textDocument/completion`: one pipeline, two answers.
//! A newer request or an edit cancels the older request at once (down to the engine, by dropping
//! its `Generation`); a superseded request answers `ContentModified`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use glint_engine::{Chunk, FinishReason, Sampling};
use serde_json::json;
use tower_lsp_server::Client;
use tower_lsp_server::jsonrpc::{Error, ErrorCode, Result};
use tower_lsp_server::ls_types::*;

use crate::completion;
use crate::document::{Change, Document};
use crate::engines::EngineSlot;
use crate::handlers::{char_index, lsp_position};
use crate::position::{self, Encoding, LinePos};
use crate::schedule::{Follow, Suggestion, View};
use crate::state::State;

/// The streamed-progress notification (see docs/lsp-extensions.md).
pub const PROGRESS_METHOD: &str = "glint/inlineCompletionProgress";

/// A finished suggestion: insert `text` at `cursor` of `doc`.
pub struct Outcome {
    pub doc: Document,
    pub cursor: usize,
    pub text: String,
}

pub async fn inline_completion(
    state: &Arc<State>,
    client: &Client,
    params: InlineCompletionParams,
) -> Result<Option<InlineCompletionResponse>> {
    let position = params.text_document_position;
    let uri = position.text_document.uri.as_str().to_string();
    let invoked = params.context.trigger_kind == InlineCompletionTriggerKind::INVOKED;
    let selected = params.context.selected_completion_info;
    let at = LinePos { line: position.position.line, character: position.position.character };
    let started = Instant::now();
    let Some(outcome) = run(state, client, &uri, at, invoked, selected.as_ref(), 0).await? else {
        return Ok(None);
    };
    if !invoked && selected.is_none() {
        speculate(state, &uri, &outcome);
    }
    let mut texts = vec![outcome.text.clone()];
    if invoked {
        // An explicit request gets up to three distinct items to cycle through, by sampling, as
        // long as the first one came quickly enough that the user is not kept waiting long.
        for variant in 1..=2 {
            if started.elapsed() > EXTRA_ITEMS_BUDGET {
                break;
            }
            if let Some(extra) = run(state, client, &uri, at, invoked, selected.as_ref(), variant).await?
                && !texts.contains(&extra.text)
            {
                texts.push(extra.text);
            }
        }
    }
    let encoding = state.encoding();
    let cursor_pos = lsp_position(&outcome.doc.rope, outcome.cursor, encoding);
    let items = texts
        .into_iter()
        .map(|text| match &selected {
            // Items must extend the selected completion over its range.
            Some(selected) => InlineCompletionItem {
                insert_text: format!("{}{}", selected.text, text),
                filter_text: None,
                range: Some(selected.range),
                command: None,
                insert_text_format: None,
            },
            None => InlineCompletionItem {
                insert_text: text,
                filter_text: None,
                range: Some(Range { start: cursor_pos, end: cursor_pos }),
                command: None,
                insert_text_format: None,
            },
        })
        .collect();
    Ok(Some(InlineCompletionResponse::Array(items)))
}

/// The next suggestion before Tab (llama.vim's speculative FIM): while the ghost text is shown,
/// compute in the background the suggestion that follows if it is accepted, and keep it in the
/// typing-through cache, so that accepting and going on is instant. Only for an in-process engine
/// with nothing else to do; the next keystroke supersedes it like any request.
fn speculate(state: &Arc<State>, uri: &str, outcome: &Outcome) {
    let state = Arc::clone(state);
    let uri = uri.to_string();
    let mut doc = outcome.doc.clone();
    let text = outcome.text.clone();
    let cursor = outcome.cursor;
    tokio::spawn(async move {
        // Let the answer reach the client first.
        tokio::task::yield_now().await;
        let EngineSlot::Ready(engine) = state.engine.read().clone() else { return };
        // Only an in-process engine: its KV cache makes the work cheap, and no one else waits on it.
        if engine.info().kind != "local" || !state.inflight.is_empty() {
            return;
        }
        if state.snapshot(&uri).is_none_or(|now| now.version != doc.version) {
            return;
        }
        // Accept the text as an edit, with the syntax tree kept in step: the context is then cut
        // the way the next keystroke's will be, and the prompt extends the one just answered
        // instead of replacing it in the KV cache with a cold one laid out without syntax.
        let at = position::from_char(&doc.rope, cursor, Encoding::Utf32);
        doc.apply_changes(doc.version, &[Change { range: Some((at, at)), text: text.clone() }], Encoding::Utf32);
        let accepted = cursor + text.chars().count();
        let line = doc.rope.char_to_line(accepted);
        let line_prefix = doc.rope.slice(doc.rope.line_to_char(line)..accepted).to_string();
        let settings = state.settings.read().clone();
        let others = state.other_documents(&doc);
        let other_refs: Vec<&Document> = others.iter().collect();
        let recent_edits = state.recent_edits();
        let around = completion::Surroundings { others: &other_refs, recent_edits: &recent_edits };
        let Ok(prepared) = completion::prepare(&doc, accepted, &settings, false, &*engine, &around) else { return };
        let (request, mut answer) = prepared.into_parts(&doc, accepted);
        let mut generation = engine.generate(request);
        let mut finish = None;
        while let Some(chunk) = generation.next_chunk().await {
            match chunk {
                Chunk::Text(piece) => {
                    if answer.push(&piece) {
                        break;
                    }
                }
                Chunk::Done(done) => {
                    finish = Some(done);
                    break;
                }
            }
        }
        drop(generation);
        if finish.is_some_and(|f| matches!(f.reason, FinishReason::Cancelled | FinishReason::Error)) {
            return;
        }
        if let Some(next) = answer.text() {
            tracing::debug!(uri, line, "the suggestion after this one is ready");
            state.typing_cache.insert(Suggestion { uri, line, line_prefix, text: next });
        }
    });
}

/// Extra sampled items are only computed while the first answer took less than this.
const EXTRA_ITEMS_BUDGET: Duration = Duration::from_millis(1500);

pub async fn completion(
    state: &Arc<State>,
    client: &Client,
    params: CompletionParams,
) -> Result<Option<CompletionResponse>> {
    if !state.settings.read().completion_items {
        return Ok(None);
    }
    let position = params.text_document_position;
    let uri = position.text_document.uri.as_str().to_string();
    let invoked = params.context.as_ref().is_some_and(|c| c.trigger_kind == CompletionTriggerKind::INVOKED);
    let at = LinePos { line: position.position.line, character: position.position.character };
    let Some(outcome) = run(state, client, &uri, at, invoked, None, 0).await? else {
        return Ok(Some(CompletionResponse::List(CompletionList { is_incomplete: true, items: vec![] })));
    };
    let encoding = state.encoding();
    let rope = &outcome.doc.rope;
    // Replace the identifier being typed, so clients filter the item by it and keep it while the
    // user types through.
    let word_start = completion::word_start(rope, outcome.cursor);
    let word = rope.slice(word_start..outcome.cursor).to_string();
    let range =
        Range { start: lsp_position(rope, word_start, encoding), end: lsp_position(rope, outcome.cursor, encoding) };
    let new_text = format!("{word}{}", outcome.text);
    // The label reads as what gets inserted: text that goes on after the word keeps its spacing
    // (`total / len(numbers)`); a suggestion that starts on a later line shows that line after a
    // line break sign (`total ↵ return total`), never glued to the word.
    let label = match outcome.text.lines().next() {
        Some(line) if !line.trim().is_empty() => {
            let line = if word.is_empty() { line.trim() } else { line.trim_end() };
            format!("{word}{}", truncate(line, 60))
        }
        _ => {
            let next = outcome.text.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
            format!("{word} ↵ {}", truncate(next, 60)).trim_start().to_string()
        }
    };
    let multi_line = outcome.text.trim_end().contains('\n');
    let item = CompletionItem {
        label,
        label_details: Some(CompletionItemLabelDetails { detail: None, description: Some("Glint AI".into()) }),
        kind: Some(CompletionItemKind::SNIPPET),
        detail: Some(if multi_line { "Glint AI (multi-line)".into() } else { "Glint AI".into() }),
        // Markdown only for clients that declare it; the others get the plain text.
        documentation: Some(if state.client.read().markdown_documentation {
            Documentation::MarkupContent(MarkupContent {
                kind: MarkupKind::Markdown,
                value: format!("```{}\n{}{}\n```", outcome.doc.language_id, word, outcome.text),
            })
        } else {
            Documentation::String(format!("{word}{}", outcome.text))
        }),
        preselect: Some(true),
        sort_text: Some("\u{0}glint".into()),
        filter_text: Some(new_text.clone()),
        insert_text_format: Some(InsertTextFormat::PLAIN_TEXT),
        text_edit: Some(CompletionTextEdit::Edit(TextEdit { range, new_text })),
        ..CompletionItem::default()
    };
    Ok(Some(CompletionResponse::List(CompletionList { is_incomplete: true, items: vec![item] })))
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

pub fn content_modified() -> Error {
    Error {
        code: ErrorCode::ContentModified,
        message: "the document changed; this completion is stale".into(),
        data: None,
    }
}

/// How long a request waits for the completion the user is typing through.
const FOLLOW_WAIT: Duration = Duration::from_secs(3);

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
    uri: String,
    id: u64,
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.state.inflight.finish(&self.uri, self.id);
    }
}

/// The shared pipeline: snapshot, typing-through cache, debounce, context, engine, post-processing.
/// `variant` 0 is the greedy answer; other variants sample with that seed (extra items).
async fn run(
    state: &Arc<State>,
    client: &Client,
    uri: &str,
    at: LinePos,
    invoked: bool,
    selected: Option<&SelectedCompletionInfo>,
    variant: u64,
) -> Result<Option<Outcome>> {
    let started = Instant::now();
    let Some(mut doc) = state.snapshot(uri) else {
        tracing::debug!(uri, "completion for a document that is not open");
        return Ok(None);
    };
    let settings = state.settings.read().clone();
    if !settings.language_enabled(&doc.language_id) {
        return Ok(None);
    }
    let encoding = state.encoding();
    let mut cursor = position::to_char(&doc.rope, at, encoding);
    if let Some(selected) = selected {
        // Complete as if the selected item were already inserted.
        let start = char_index(&doc.rope, selected.range.start, encoding);
        let end = char_index(&doc.rope, selected.range.end, encoding);
        let (start, end) = (start.min(end), start.max(end));
        doc.rope.remove(start..end);
        doc.rope.insert(start, &selected.text);
        doc.tree = None;
        cursor = start + selected.text.chars().count();
    }
    let line = doc.rope.char_to_line(cursor);
    let line_prefix = doc.rope.slice(doc.rope.line_to_char(line)..cursor).to_string();

    if selected.is_none()
        && variant == 0
        && let Some(rest) = state.typing_cache.lookup(uri, line, &line_prefix)
    {
        tracing::debug!(uri, "typing-through cache hit");
        record(state, json!({"uri": uri, "cacheHit": true, "totalMs": ms(started.elapsed())}));
        return Ok(Some(Outcome { doc, cursor, text: rest }));
    }

    // The user is typing through a completion still being written (or one answered early that
    // goes on): answer from it instead of starting over.
    if selected.is_none()
        && variant == 0
        && let Some(follow) = state.inflight.follow_for(uri, line, &line_prefix)
    {
        let pos = lsp_position(&doc.rope, cursor, encoding);
        let early = answers_early(&settings, invoked);
        if let Some(rest) = from_follow(state, uri, &follow, &line_prefix, doc.version, pos, early).await {
            tracing::debug!(uri, "typed through a running completion");
            record(state, json!({"uri": uri, "cacheHit": true, "totalMs": ms(started.elapsed())}));
            return Ok(Some(Outcome { doc, cursor, text: rest }));
        }
    }

    let follow = (selected.is_none() && variant == 0).then(|| Arc::new(Follow::new(line, line_prefix.clone())));
    let work = state.inflight.start(uri, follow.clone());
    let token = work.token;
    let guard = InflightGuard { state: Arc::clone(state), uri: uri.to_string(), id: work.id };
    let follow_done = FollowDone(follow.clone());

    if !invoked {
        let delay = state.rhythm.debounce(uri, Duration::from_millis(settings.debounce_ms));
        if !delay.is_zero() {
            tokio::select! {
                _ = token.cancelled() => return Err(content_modified()),
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    // An invoked completion waits for a model that is still loading (bounded, and cancelled by
    // the next keystroke like any request); an automatic one answers nothing meanwhile.
    let slot = if invoked {
        tokio::select! {
            _ = token.cancelled() => return Err(content_modified()),
            slot = state.engine_when_loaded(LOAD_WAIT) => slot,
        }
    } else {
        state.engine.read().clone()
    };
    let engine = match slot {
        EngineSlot::Ready(engine) => engine,
        EngineSlot::Loading => {
            tracing::info!(uri, "no completion: the model is still loading");
            return Ok(None);
        }
        EngineSlot::Failed(why) => {
            tracing::debug!(uri, "no completion: the engine failed to start: {why}");
            return Ok(None);
        }
        EngineSlot::None => return Ok(None),
    };

    // Architecture Invariant: a remote engine never sees secrets or files outside the workspace,
    // neither as the document itself nor as snippets or recent edits from other documents.
    let context_started = Instant::now();
    let Ok(visible) = state.visible_context(&*engine, &doc) else { return Ok(None) };
    let other_refs = visible.other_refs();
    let around = completion::Surroundings { others: &other_refs, recent_edits: &visible.recent_edits };
    let prepared = match completion::prepare(&doc, cursor, &settings, invoked, &*engine, &around) {
        Ok(prepared) => prepared,
        Err(why) => {
            tracing::debug!(uri, "no completion: {why}");
            return Ok(None);
        }
    };
    let context_ms = ms(context_started.elapsed());
    let mut prepared = prepared;
    if variant > 0 {
        prepared.request.sampling =
            Sampling { temperature: 0.8, top_p: Some(0.95), seed: variant, ..Sampling::default() };
    }
    let (request, answer) = prepared.into_parts(&doc, cursor);
    let pos = lsp_position(&doc.rope, cursor, encoding);
    let view = View { version: doc.version, line: pos.line, character: pos.character, typed: String::new() };
    if let Some(follow) = &follow {
        *follow.view.lock() = Some(view.clone());
    }
    // Only a request that keystrokes may type through is answered early.
    let early_at = (follow.is_some() && answers_early(&settings, invoked))
        .then(|| started + Duration::from_millis(settings.early_answer_ms));
    let mut writing = Writing {
        state: Arc::clone(state),
        client: client.clone(),
        uri: uri.to_string(),
        doc,
        cursor,
        line,
        line_prefix,
        generation: engine.generate(request),
        answer,
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
    let finish = loop {
        let can_answer = early_at.is_some() && writing.has_text();
        tokio::select! {
            biased;
            _ = token.cancelled() => {
                tracing::trace!(uri, "completion superseded");
                return Err(content_modified());
            }
            _ = tokio::time::sleep_until(early_at.unwrap_or(started).into()), if can_answer => {
                return writing.answer_early(token);
            }
            step = writing.step() => match step {
                Step::More => {
                    if early_at.is_some_and(|at| Instant::now() >= at) && writing.has_text() {
                        return writing.answer_early(token);
                    }
                }
                Step::Finished(finish) => break finish,
            },
        }
    };
    writing.finish(finish).await
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
    pos: Position,
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

/// One step of reading a generation.
enum Step {
    /// Text came and the answer is not complete yet.
    More,
    /// The generation ended (or the answer is complete): how it ended, when the engine said.
    Finished(Option<glint_engine::Finish>),
}

/// A completion being written: the engine's generation, the answer built from it, and where its
/// progress goes. Owned, so that an early-answered request hands it to a background task.
struct Writing {
    state: Arc<State>,
    client: Client,
    uri: String,
    doc: Document,
    cursor: usize,
    line: usize,
    line_prefix: String,
    generation: glint_engine::Generation,
    answer: completion::Answer,
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
    /// Whether the answer so far shows something.
    fn has_text(&self) -> bool {
        self.partial.as_ref().is_some_and(|t| !t.trim().is_empty())
    }

    /// Reads the next chunk: records it, streams the partial answer to the editor.
    async fn step(&mut self) -> Step {
        match self.generation.next_chunk().await {
            Some(Chunk::Text(text)) => {
                self.first_chunk_ms.get_or_insert_with(|| ms(self.started.elapsed()));
                if self.answer.push(&text) {
                    return Step::Finished(None);
                }
                self.partial = self.answer.text();
                if let Some(partial) = &self.partial {
                    if let Some(follow) = &self.follow {
                        follow.set_partial(partial.clone());
                    }
                    self.progress(partial, false).await;
                }
                Step::More
            }
            Some(Chunk::Done(done)) => Step::Finished(Some(done)),
            None => Step::Finished(None),
        }
    }

    /// Streams `text` (the whole suggestion so far) to the request that shows it, when streaming.
    async fn progress(&self, text: &str, last: bool) {
        if !self.streaming {
            return;
        }
        let view = self.follow.as_ref().and_then(|f| f.view.lock().clone()).unwrap_or_else(|| self.view.clone());
        let Some(shown) = text.strip_prefix(view.typed.as_str()) else { return };
        let mut params = json!({
            "uri": self.uri, "version": view.version,
            "position": {"line": view.line, "character": view.character}, "text": shown,
        });
        if last {
            params["final"] = json!(true);
        }
        self.client.send_notification::<ProgressNotification>(params).await;
    }

    /// Answers the request now with the text so far; the generation goes on in the background
    /// (keystrokes that type its text do not cancel it), its progress still streamed and its
    /// final answer kept in the typing-through cache.
    fn answer_early(self, token: tokio_util::sync::CancellationToken) -> Result<Option<Outcome>> {
        let text = self.partial.clone().unwrap_or_default();
        let current = self.state.snapshot(&self.uri).is_some_and(|now| now.version == self.doc.version);
        let outcome = Outcome { doc: self.doc.clone(), cursor: self.cursor, text };
        let answered_ms = ms(self.started.elapsed());
        if let Some(follow) = &self.follow {
            follow.answered.store(true, std::sync::atomic::Ordering::Release);
        }
        tracing::debug!(uri = self.uri, answered_ms, "answered early; the model goes on");
        tokio::spawn(self.go_on(token, answered_ms));
        if current { Ok(Some(outcome)) } else { Err(content_modified()) }
    }

    /// The rest of an early-answered completion, in the background.
    async fn go_on(mut self, token: tokio_util::sync::CancellationToken, answered_ms: f64) {
        let finish = loop {
            tokio::select! {
                biased;
                _ = token.cancelled() => return,
                step = self.step() => if let Step::Finished(finish) = step { break finish },
            }
        };
        let cut_off =
            finish.as_ref().is_some_and(|f| matches!(f.reason, FinishReason::Cancelled | FinishReason::Error));
        let text = if cut_off { None } else { self.answer.text() };
        if let Some(text) = &text {
            self.remember(text.clone());
        }
        // The editor's text becomes the final answer, or goes away when there is none.
        self.progress(text.as_deref().unwrap_or(""), true).await;
        self.report(finish.as_ref(), text.is_some(), Some(answered_ms));
        let Writing { state, uri, doc, cursor, generation, guard, follow_done, .. } = self;
        // Unregistered first: the speculation only runs when nothing else does.
        drop((generation, guard, follow_done));
        if let Some(text) = text
            && state.snapshot(&uri).is_some_and(|now| now.version == doc.version)
        {
            speculate(&state, &uri, &Outcome { doc, cursor, text });
        }
    }

    /// The generation ended while the request waited: its answer.
    async fn finish(self, finish: Option<glint_engine::Finish>) -> Result<Option<Outcome>> {
        let uri = self.uri.as_str();
        if let Some(done) = &finish
            && done.reason == FinishReason::Error
        {
            tracing::warn!(uri, "the engine failed: {}", done.error.as_deref().unwrap_or("unknown error"));
            return Ok(None);
        }
        // Cut-off text is never an answer: a generation that ended cancelled (the engine superseded
        // it, or it was dropped) answers like a superseded request.
        if finish.as_ref().is_some_and(|done| done.reason == FinishReason::Cancelled) {
            return Err(content_modified());
        }
        // A request whose document moved on is stale even if nobody cancelled it. When the user
        // typed through it, its answer serves their keystrokes' requests from the cache.
        if self.state.snapshot(uri).is_none_or(|now| now.version != self.doc.version) {
            if self.follow.as_ref().is_some_and(|follow| !follow.typed.lock().is_empty())
                && let Some(text) = self.answer.text()
            {
                self.remember(text);
            }
            return Err(content_modified());
        }
        tracing::debug!(uri, raw = ?self.answer.raw(), "model text");
        let text = self.answer.text();
        self.report(finish.as_ref(), text.is_some(), None);
        let Some(text) = text else { return Ok(None) };
        if self.follow.is_some() {
            self.remember(text.clone());
        }
        // The in-flight registration and the follow end with `self`, after the answer is cached.
        Ok(Some(Outcome { doc: self.doc.clone(), cursor: self.cursor, text }))
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
    fn report(&self, finish: Option<&glint_engine::Finish>, shown: bool, answered_ms: Option<f64>) {
        let timings = finish.map(|f| f.timings.clone()).unwrap_or_default();
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
        let mut summary = json!({
            "uri": self.uri,
            "cacheHit": false,
            "contextMs": self.context_ms,
            "promptTokens": timings.prompt_tokens,
            "cachedTokens": timings.cached_tokens,
            "firstChunkMs": self.first_chunk_ms,
            "totalMs": total_ms,
            "shown": shown,
        });
        if let Some(answered_ms) = answered_ms {
            summary["answeredMs"] = json!(answered_ms);
        }
        record(&self.state, summary);
    }
}

/// How long an invoked completion or a code action waits for the model to finish loading.
pub const LOAD_WAIT: Duration = Duration::from_secs(120);

fn record(state: &State, summary: serde_json::Value) {
    *state.last_completion.write() = Some(summary);
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

enum ProgressNotification {}

impl tower_lsp_server::ls_types::notification::Notification for ProgressNotification {
    type Params = serde_json::Value;
    const METHOD: &'static str = PROGRESS_METHOD;
}
