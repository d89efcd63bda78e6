//! Warm-up: when the editor shows where the cursor is (VS Code asks for code actions at the
//! cursor whenever it moves or a file opens), prefill the completion prompt for that place in the
//! background, so the first keystroke there only pays for its own tokens. Bounded: one pending
//! warm-up at a time, only for an in-process engine that is idle, never while a completion runs,
//! and any request supersedes it within one prefill chunk.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tower_lsp_server::ls_types::Position;

use crate::completion;
use crate::state::{RequestSnapshot, State};

/// How long the cursor must rest before its context is prefilled: a cursor moving through a file
/// prefills nothing.
const SETTLE: Duration = Duration::from_millis(150);

/// How long a warm-up waits for the model to be free (a completion still running, another
/// document's work) before it gives up.
const WAIT_FOR_IDLE: Duration = Duration::from_secs(10);
/// How often a waiting warm-up asks whether the model is free.
const RETRY: Duration = Duration::from_millis(20);

/// Schedules a warm-up of the completion prompt at `at` in `uri`; a newer call replaces it. When
/// the model is busy (the last keystroke's completion still runs), the warm-up waits for it to be
/// free rather than being dropped: otherwise a long completion in one file leaves the next file
/// the user opens cold. An edit of the document while it waits ends it: `at` may no longer be the
/// cursor, and the edit's own completion request fills the cache.
pub fn schedule(state: &Arc<State>, uri: &str, at: Position) {
    let ticket = state.warmup_ticket.fetch_add(1, Ordering::AcqRel) + 1;
    let state = Arc::clone(state);
    let uri = uri.to_string();
    tokio::spawn(async move {
        tokio::time::sleep(SETTLE).await;
        let give_up = tokio::time::Instant::now() + WAIT_FOR_IDLE;
        // The prompt, prepared on the first try, and the document version it was made for.
        let mut prepared: Option<(i32, glint_engine::GenerateRequest)> = None;
        loop {
            if state.warmup_ticket.load(Ordering::Acquire) != ticket || tokio::time::Instant::now() >= give_up {
                return;
            }
            if state.work.completions_running() {
                tokio::time::sleep(RETRY).await;
                continue;
            }
            let Ok(snapshot) = state.request_snapshot(&uri) else { return };
            // Remote engines get no speculative traffic: a shared engine's time belongs to requests.
            if crate::secrets::is_remote(&snapshot.engine.info().kind) {
                return;
            }
            let request = match &prepared {
                Some((version, _)) if *version != snapshot.doc.version => return,
                Some((_, request)) => request,
                None => {
                    let Some(request) = prompt_at(&snapshot, at) else { return };
                    &prepared.insert((snapshot.doc.version, request)).1
                }
            };
            match snapshot.engine.warm(request.clone()) {
                Some(mut generation) => {
                    tracing::debug!(uri, line = at.line, "warming the context up");
                    while generation.next_chunk().await.is_some() {}
                    return;
                }
                // The model is busy with other work: try again shortly.
                None => tokio::time::sleep(RETRY).await,
            }
        }
    });
}

/// The prompt an automatic completion at `at` would send (the prompt does not depend on whether
/// the request is automatic or invoked; only whether to answer and how much does).
fn prompt_at(snapshot: &RequestSnapshot, at: Position) -> Option<glint_engine::GenerateRequest> {
    let RequestSnapshot { doc, settings, encoding, engine, visible } = snapshot;
    if !settings.language_enabled(&doc.language_id) {
        return None;
    }
    let cursor = crate::handlers::char_index(&doc.rope, at, *encoding);
    let prepared = completion::prepare(doc, cursor, settings, true, &**engine, visible).ok()?;
    Some(prepared.into_parts(doc, cursor).0)
}
