//! Warm-up: when the editor shows where the cursor is (VS Code asks for code actions at the
//! cursor whenever it moves or a file opens), prefill the completion prompt for that place in the
//! background, so the first keystroke there only pays for its own tokens. Bounded: one pending
//! warm-up at a time, only for an in-process engine that is idle, never while a completion runs,
//! and any request supersedes it within one prefill chunk.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tower_lsp_server::ls_types::Position;

use crate::completion::{self, Surroundings};
use crate::engines::EngineSlot;
use crate::state::State;

/// How long the cursor must rest before its context is prefilled: a cursor moving through a file
/// prefills nothing.
const SETTLE: Duration = Duration::from_millis(150);

/// Schedules a warm-up of the completion prompt at `at` in `uri`; a newer call replaces it.
pub fn schedule(state: &Arc<State>, uri: &str, at: Position) {
    let ticket = state.warmup_ticket.fetch_add(1, Ordering::AcqRel) + 1;
    let state = Arc::clone(state);
    let uri = uri.to_string();
    tokio::spawn(async move {
        tokio::time::sleep(SETTLE).await;
        if state.warmup_ticket.load(Ordering::Acquire) != ticket || !state.inflight.is_empty() {
            return;
        }
        let EngineSlot::Ready(engine) = state.engine.read().clone() else { return };
        // Remote engines get no speculative traffic: a shared engine's time belongs to requests.
        if crate::secrets::is_remote(&engine.info().kind) {
            return;
        }
        let Some(doc) = state.snapshot(&uri) else { return };
        let settings = state.settings.read().clone();
        if !settings.language_enabled(&doc.language_id) {
            return;
        }
        let cursor = crate::handlers::char_index(&doc.rope, at, state.encoding());
        let Ok(visible) = state.visible_context(&*engine, &doc) else { return };
        let other_refs = visible.other_refs();
        let around = Surroundings { others: &other_refs, recent_edits: &visible.recent_edits };
        // The prompt an automatic completion here would send (the prompt does not depend on
        // whether the request is automatic or invoked; only whether to answer and how much does).
        let Ok(prepared) = completion::prepare(&doc, cursor, &settings, true, &*engine, &around) else { return };
        let (request, _) = prepared.into_parts(&doc, cursor);
        let Some(mut generation) = engine.warm(request) else { return };
        tracing::debug!(uri, line = at.line, "warming the context up");
        while generation.next_chunk().await.is_some() {}
    });
}
