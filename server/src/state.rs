//! The server's shared state: open documents, settings and what was negotiated with the client.
//! Notification handlers mutate it before their first `.await`; request handlers take snapshots.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::{Mutex, RwLock};

use crate::config::Settings;
use crate::context::RecentEdit;
use crate::document::Document;
use crate::engines::{EngineSlot, EngineSpec};
use crate::position::Encoding;
use crate::schedule::{Inflight, Rhythm, TypingCache};

/// Options given on the command line; they win over client settings.
#[derive(Clone, Default)]
pub struct ServerOptions {
    /// An engine object to use instead of the `engine` setting (tests and embedders).
    pub injected_engine: Option<std::sync::Arc<dyn glint_engine::Engine>>,
    pub engine: Option<String>,
    pub model: Option<String>,
    pub threads: Option<usize>,
    pub log_level: Option<String>,
    /// Enables test-only requests (`glint/debugPanic`); set by `GLINT_TEST_HOOKS=1`.
    pub test_hooks: bool,
}

/// What the client told us about itself at `initialize`.
#[derive(Debug, Clone, Default)]
pub struct ClientFeatures {
    pub name: Option<String>,
    pub version: Option<String>,
    pub work_done_progress: bool,
    pub inline_completion: bool,
    pub code_action_resolve: bool,
    /// The client takes `documentChanges` in a `WorkspaceEdit`, whose versioned document
    /// identifiers let it refuse an edit computed for a text it no longer has.
    pub document_changes: bool,
    /// The client renders Markdown in completion item documentation.
    pub markdown_documentation: bool,
}

#[derive(Default)]
pub struct State {
    pub options: ServerOptions,
    documents: Mutex<HashMap<String, Document>>,
    pub settings: RwLock<Settings>,
    encoding: RwLock<Encoding>,
    pub client: RwLock<ClientFeatures>,
    shutdown_requested: AtomicBool,
    pub engine: RwLock<EngineSlot>,
    /// Woken whenever `engine` changes (see [`State::set_engine`]), for requests waiting on a load.
    engine_changed: tokio::sync::Notify,
    /// What `engine` was started from, to restart it when the settings change.
    pub engine_spec: RwLock<Option<EngineSpec>>,
    pub inflight: Inflight,
    /// Code actions being computed.
    pub actions: crate::actions::ActionWork,
    pub rhythm: Rhythm,
    pub typing_cache: TypingCache,
    /// The last completion's numbers, for `glint/status`.
    pub last_completion: RwLock<Option<serde_json::Value>>,
    /// The workspace folders and what remote engines may see of them.
    pub remote: crate::secrets::RemoteGuard,
    /// Recently edited regions, oldest first (bounded).
    recent_edits: Mutex<std::collections::VecDeque<(String, usize, RecentEdit)>>,
}

/// How many edited regions `recent_edits` keeps.
const RECENT_EDITS: usize = 16;
/// How many other open documents a context may look at.
const OTHER_DOCUMENTS: usize = 8;

impl State {
    pub fn new(options: ServerOptions) -> State {
        State { options, ..State::default() }
    }

    pub fn encoding(&self) -> Encoding {
        *self.encoding.read()
    }

    pub fn set_encoding(&self, encoding: Encoding) {
        *self.encoding.write() = encoding;
    }

    /// An O(1) copy of a document for readers; no lock is held afterwards.
    /// Replaces the engine slot and wakes the requests waiting for a load to end.
    pub fn set_engine(&self, slot: EngineSlot) {
        *self.engine.write() = slot;
        self.engine_changed.notify_waiters();
    /// Increases with every scheduled warm-up, so only the newest one runs (see `warmup`).
    pub warmup_ticket: std::sync::atomic::AtomicU64,
    }

    /// The engine slot once it is no longer `Loading`, waiting at most `limit` (what it holds then,
    /// possibly still `Loading`). Dropping the future stops the wait.
    pub async fn engine_when_loaded(&self, limit: std::time::Duration) -> EngineSlot {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.engine_changed.notified();
            tokio::pin!(notified);
            // Registered before the check, so a change between the check and the wait still wakes it.
            notified.as_mut().enable();
            let slot = self.engine.read().clone();
            if !matches!(slot, EngineSlot::Loading) {
                return slot;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.engine.read().clone();
            }
        }
    }

    pub fn snapshot(&self, uri: &str) -> Option<Document> {
        self.documents.lock().get(uri).cloned()
    }

    /// Runs `f` on the document store under its lock. Never `.await` inside.
    pub fn with_documents<R>(&self, f: impl FnOnce(&mut HashMap<String, Document>) -> R) -> R {
        f(&mut self.documents.lock())
    }

    /// Remembers the region around `line` of `doc` as recently edited, replacing an older entry
    /// for the same place.
    pub fn note_edit(&self, doc: &Document, line: usize) {
        let rope = &doc.rope;
        let first = line.saturating_sub(1);
        let last = (line + 2).min(rope.len_lines());
        if first >= last {
            return;
        }
        let text = rope.slice(rope.line_to_char(first)..rope.line_to_char(last)).to_string();
        if text.trim().is_empty() || text.len() > 2000 {
            return;
        }
        let uri = doc.uri.to_string();
        let mut edits = self.recent_edits.lock();
        edits.retain(|(u, l, _)| !(u == &uri && l.abs_diff(line) <= 2));
        edits.push_back((uri.clone(), line, RecentEdit { uri, text }));
        while edits.len() > RECENT_EDITS {
            edits.pop_front();
        }
    }

    pub fn recent_edits(&self) -> Vec<RecentEdit> {
        self.recent_edits.lock().iter().map(|(_, _, e)| e.clone()).collect()
    }

    /// O(1) snapshots of other open documents of the same language as `doc`.
    pub fn other_documents(&self, doc: &Document) -> Vec<Document> {
        let docs = self.documents.lock();
        docs.values()
            .filter(|d| d.uri != doc.uri && d.lang.is_some() && d.lang == doc.lang)
            .take(OTHER_DOCUMENTS)
            .cloned()
            .collect()
    }

    /// Whether text of the document `uri` may be sent to a remote engine as context (the current
    /// document, a snippet of it, or a recent edit in it): never for files that look like secrets
    /// (`.env*`, `*.pem`, `*.key`, `id_rsa*` ...) or lie outside the workspace folders, subject to
    /// the `remoteContext` setting. See `secrets` for the rules.
    pub fn remote_may_see(&self, uri: &str) -> bool {
        let context = self.settings.read().remote_context.clone();
        self.remote.policy(&context).may_see(uri)
    }

    /// Whether text of the document `uri` may be given to `engine` as context: always for the
    /// in-process engines (`local`, `fake`), as [`State::remote_may_see`] says for the others.
    /// Every request path that puts document text into a `GenerateRequest` asks this first.
    pub fn engine_may_see(&self, engine: &dyn glint_engine::Engine, uri: &str) -> bool {
        !crate::secrets::is_remote(&engine.info().kind) || self.remote_may_see(uri)
    }

    pub fn document_count(&self) -> usize {
        self.documents.lock().len()
    }

    pub fn request_shutdown(&self) {
        self.shutdown_requested.store(true, Ordering::SeqCst);
    }

    pub fn shutdown_requested(&self) -> bool {
        self.shutdown_requested.load(Ordering::SeqCst)
    }
}
