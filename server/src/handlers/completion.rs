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
use crate::document::Document;
use crate::engines::EngineSlot;
use crate::handlers::{char_index, lsp_position};
use crate::position::{self, LinePos};
use crate::schedule::{Follow, Suggestion};
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
        doc.rope.insert(cursor, &text);
        doc.tree = None;
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
    let first_line = outcome.text.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    let label = format!("{word}{}", truncate(first_line, 60));
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
struct InflightGuard<'a> {
    state: &'a State,
    uri: &'a str,
    id: u64,
}

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        self.state.inflight.finish(self.uri, self.id);
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

    // The user is typing through a completion still being written: wait for it (its answer lands
    // in the typing-through cache) instead of starting over.
    if selected.is_none()
        && variant == 0
        && let Some(follow) = state.inflight.follow_for(uri, line, &line_prefix)
    {
        let _ = tokio::time::timeout(FOLLOW_WAIT, follow.done.cancelled()).await;
        if let Some(rest) = state.typing_cache.lookup(uri, line, &line_prefix) {
            tracing::debug!(uri, "typed through a running completion");
            record(state, json!({"uri": uri, "cacheHit": true, "totalMs": ms(started.elapsed())}));
            return Ok(Some(Outcome { doc, cursor, text: rest }));
        }
    }

    let follow = (selected.is_none() && variant == 0).then(|| Arc::new(Follow::new(line, line_prefix.clone())));
    let work = state.inflight.start(uri, follow.clone());
    let token = work.token;
    let _guard = InflightGuard { state, uri, id: work.id };
    let _follow_done = FollowDone(follow.clone());

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
    let remote = crate::secrets::is_remote(&engine.info().kind);
    if remote {
        let context = settings.remote_context.clone();
        if let Err(why) = state.remote.policy(&context).check(uri) {
            state.remote.log_refusal(uri, &why);
            return Ok(None);
        }
    }
    let context_started = Instant::now();
    let mut others = state.other_documents(&doc);
    let mut recent_edits = state.recent_edits();
    if remote {
        others.retain(|other| state.remote_may_see(&other.uri));
        recent_edits.retain(|edit| state.remote_may_see(&edit.uri));
    }
    let other_refs: Vec<&Document> = others.iter().collect();
    let around = completion::Surroundings { others: &other_refs, recent_edits: &recent_edits };
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
    let streaming = settings.streaming;
    let (request, mut answer) = prepared.into_parts(&doc, cursor);
    let mut generation = engine.generate(request);
    let mut finish = None;
    let mut first_chunk_ms = None;
    loop {
        tokio::select! {
            biased;
            _ = token.cancelled() => {
                tracing::trace!(uri, "completion superseded");
                return Err(content_modified());
            }
            chunk = generation.next_chunk() => match chunk {
                Some(Chunk::Text(text)) => {
                    first_chunk_ms.get_or_insert_with(|| ms(started.elapsed()));
                    if answer.push(&text) {
                        break;
                    }
                    if let Some(follow) = &follow
                        && let Some(partial) = answer.text()
                    {
                        *follow.partial.lock() = partial;
                    }
                    if streaming && let Some(partial) = answer.text() {
                        let pos = lsp_position(&doc.rope, cursor, encoding);
                        client
                            .send_notification::<ProgressNotification>(json!({
                                "uri": uri, "version": doc.version, "position": pos, "text": partial,
                            }))
                            .await;
                    }
                }
                Some(Chunk::Done(done)) => {
                    finish = Some(done);
                    break;
                }
                None => break,
            },
        }
    }
    drop(generation);
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
    if state.snapshot(uri).is_none_or(|now| now.version != doc.version) {
        if let Some(follow) = &follow
            && !follow.typed.lock().is_empty()
            && let Some(text) = answer.text()
        {
            state.typing_cache.insert(Suggestion { uri: uri.to_string(), line, line_prefix, text });
        }
        return Err(content_modified());
    }
    tracing::debug!(uri, raw = ?answer.raw(), "model text");
    let text = answer.text();
    let timings = finish.map(|f| f.timings).unwrap_or_default();
    let summary = json!({
        "uri": uri,
        "cacheHit": false,
        "contextMs": context_ms,
        "promptTokens": timings.prompt_tokens,
        "cachedTokens": timings.cached_tokens,
        "firstChunkMs": first_chunk_ms,
        "totalMs": ms(started.elapsed()),
        "shown": text.is_some(),
    });
    tracing::info!(
        uri,
        context_ms,
        prompt_tokens = timings.prompt_tokens,
        cached_tokens = timings.cached_tokens,
        first_chunk_ms,
        total_ms = ms(started.elapsed()),
        shown = text.is_some(),
        "completion"
    );
    record(state, summary);
    let Some(text) = text else { return Ok(None) };
    if selected.is_none() && variant == 0 {
        state.typing_cache.insert(Suggestion { uri: uri.to_string(), line, line_prefix, text: text.clone() });
    }
    Ok(Some(Outcome { doc, cursor, text }))
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
