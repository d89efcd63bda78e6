//! The server's shared state: open documents, settings and what was negotiated with the client.
//! Notification handlers mutate it before their first `.await`; request handlers take snapshots.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::{Mutex, RwLock};

use crate::config::{EngineSpec, LogLevel, Settings};
use crate::context::RecentEdit;
use crate::document::Document;
use crate::engines::{EngineSlot, StartSpec};
use crate::position::Encoding;
use crate::schedule::{Rhythm, TypingCache, Work};
use crate::secrets::{Refusal, Sight};

/// Options given on the command line; they win over client settings.
#[derive(Clone, Default)]
pub struct ServerOptions {
    /// An engine object to use instead of the `engine` setting (tests and embedders).
    pub injected_engine: Option<std::sync::Arc<dyn glint_engine::Engine>>,
    pub engine: Option<EngineSpec>,
    pub model: Option<String>,
    pub threads: Option<usize>,
    pub log_level: Option<LogLevel>,
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

/// How much open-document text the server holds at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocumentLimits {
    pub max_documents: usize,
    /// The sum of the open documents' sizes in bytes, checked when a document is opened.
    pub max_total_bytes: usize,
}

impl Default for DocumentLimits {
    fn default() -> Self {
        DocumentLimits { max_documents: 1000, max_total_bytes: 512 << 20 }
    }
}

/// Why an opened document is not held (and so gets no AI features).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotHeld {
    TooMany { limit: usize },
    TooLarge { total: usize, limit: usize },
}

impl std::fmt::Display for NotHeld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotHeld::TooMany { limit } => write!(f, "{limit} documents are already open (the limit)"),
            NotHeld::TooLarge { total, limit } => {
                write!(f, "open documents would hold {} MiB, over the limit of {} MiB", total >> 20, limit >> 20)
            }
        }
    }
}

/// How many refused documents are remembered (to ignore their changes quietly).
const MAX_NOT_HELD: usize = 10_000;

#[derive(Default)]
pub struct State {
    pub options: ServerOptions,
    documents: Mutex<HashMap<String, Document>>,
    pub document_limits: DocumentLimits,
    /// Documents the client opened that are not held, because of `document_limits`.
    not_held: Mutex<HashSet<String>>,
    /// Whether the limits were already reported (once per session at `warn`).
    limits_reported: AtomicBool,
    pub settings: RwLock<Settings>,
    encoding: RwLock<Encoding>,
    pub client: RwLock<ClientFeatures>,
    shutdown_requested: AtomicBool,
    pub engine: RwLock<EngineSlot>,
    /// Increases with every scheduled warm-up, so only the newest one runs (see `warmup`).
    pub warmup_ticket: std::sync::atomic::AtomicU64,
    /// Woken whenever `engine` changes (see [`State::set_engine`]), for requests waiting on a load.
    engine_changed: tokio::sync::Notify,
    /// What `engine` was started from, to restart it when the settings change.
    pub engine_spec: RwLock<Option<StartSpec>>,
    /// While the engine starts: its latest step (a model fetch's progress, then the load), for
    /// `glint/status`. Cleared whenever `engine` changes.
    pub loading_step: RwLock<Option<String>>,
    /// Running completions and code actions, under the one rule of who cancels whom.
    pub work: Work,
    pub rhythm: Rhythm,
    pub typing_cache: TypingCache,
    /// The last completion's numbers, for `glint/status`.
    pub last_completion: RwLock<Option<serde_json::Value>>,
    /// The workspace folders and what remote engines may see of them.
    pub remote: crate::secrets::RemoteGuard,
    /// Recently edited regions, oldest first (bounded).
    recent_edits: Mutex<std::collections::VecDeque<(String, usize, RecentEdit)>>,
    /// Each document's logical edits, for next-edit predictions.
    pub next_edits: crate::nextedit::Histories,
}

/// What a request's engine may be given besides its document. Only [`State`] builds a non-empty
/// one (see [`State::request_snapshot`]), from what the engine may see, so that text an engine
/// must not see never reaches a prompt by accident.
#[derive(Debug, Default)]
pub struct Visible {
    /// Other open documents of the same language.
    others: Vec<Document>,
    /// Recently edited regions, oldest first.
    recent_edits: Vec<RecentEdit>,
}

impl Visible {
    /// Nothing besides the document (`glint complete`, tests).
    pub fn nothing() -> Visible {
        Visible::default()
    }

    /// The other open documents the engine may see.
    pub fn others(&self) -> &[Document] {
        &self.others
    }

    /// The recent edits the engine may see, oldest first.
    pub fn recent_edits(&self) -> &[RecentEdit] {
        &self.recent_edits
    }

    /// The same surroundings without the recent edits (code action fills do without them).
    pub fn without_edits(&self) -> Visible {
        Visible { others: self.others.clone(), recent_edits: Vec::new() }
    }
}

/// A document as a request found it, with the settings and encoding of that moment: an O(1) copy,
/// no lock held. [`DocumentSnapshot::ready`] adds the engine and what it may see.
#[derive(Clone)]
pub struct DocumentSnapshot {
    pub doc: Document,
    pub settings: Settings,
    pub encoding: Encoding,
}

/// Everything a request computes from, taken together: the document, the settings, the position
/// encoding, a ready engine and the context that engine may be given (already filtered by
/// [`State::sight`]). Request paths build prompts from this, never from the documents directly.
#[derive(Clone)]
pub struct RequestSnapshot {
    pub doc: Document,
    pub settings: Settings,
    pub encoding: Encoding,
    pub engine: std::sync::Arc<dyn glint_engine::Engine>,
    pub visible: std::sync::Arc<Visible>,
}

/// Why a request cannot be computed now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unavailable {
    /// The document is not open (or not held).
    NotOpen,
    /// The model is still loading.
    Loading,
    /// The engine could not start; the message says why.
    Failed(String),
    /// No engine is configured (before `initialize`).
    NoEngine,
    /// The engine may not see this document (a remote engine and a secret-looking file, or one
    /// outside the workspace).
    Refused(Refusal),
}

impl DocumentSnapshot {
    /// Adds the engine in `state`'s slot now and what it may see of the other documents and
    /// recent edits. The document itself may differ from the stored one (a selected completion
    /// inserted, an accepted suggestion): what is checked is its URI.
    pub fn ready(self, state: &State) -> Result<RequestSnapshot, Unavailable> {
        let engine = match state.engine.read().clone() {
            EngineSlot::Ready(engine) => engine,
            EngineSlot::Loading => return Err(Unavailable::Loading),
            EngineSlot::Failed(why) => return Err(Unavailable::Failed(why)),
            EngineSlot::None => return Err(Unavailable::NoEngine),
        };
        let visible = state.visible_context(&*engine, &self.doc).map_err(Unavailable::Refused)?;
        let DocumentSnapshot { doc, settings, encoding } = self;
        Ok(RequestSnapshot { doc, settings, encoding, engine, visible: std::sync::Arc::new(visible) })
    }
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
        *self.loading_step.write() = None;
        self.engine_changed.notify_waiters();
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

    /// Holds a document the client opened, replacing any earlier text of it, unless that would
    /// pass `document_limits`. A refused document is dropped whole (an earlier text of it too, so
    /// nothing stale is left) and remembered as not held; the first refusal is logged at `warn`.
    /// `Ok(true)` when an open document was replaced.
    pub fn open_document(&self, doc: Document) -> Result<bool, NotHeld> {
        let limits = self.document_limits;
        let uri = doc.uri.to_string();
        let outcome = {
            let mut docs = self.documents.lock();
            let earlier = docs.get(&uri).map(|d| d.rope.len_bytes());
            let others: usize = docs.values().map(|d| d.rope.len_bytes()).sum::<usize>() - earlier.unwrap_or(0);
            let total = others + doc.rope.len_bytes();
            if earlier.is_none() && docs.len() >= limits.max_documents {
                Err(NotHeld::TooMany { limit: limits.max_documents })
            } else if total > limits.max_total_bytes {
                docs.remove(&uri);
                Err(NotHeld::TooLarge { total, limit: limits.max_total_bytes })
            } else {
                Ok(docs.insert(uri.clone(), doc).is_some())
            }
        };
        let mut not_held = self.not_held.lock();
        match &outcome {
            Ok(_) => {
                not_held.remove(&uri);
            }
            Err(why) => {
                if not_held.len() < MAX_NOT_HELD {
                    not_held.insert(uri.clone());
                }
                if !self.limits_reported.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        uri,
                        "Glint: no AI features for this document and others opened past the limit: {why}; close some documents"
                    );
                } else {
                    tracing::debug!(uri, "document not held: {why}");
                }
            }
        }
        outcome
    }

    /// Forgets a document opened past the limits; true if it was one.
    pub fn forget_not_held(&self, uri: &str) -> bool {
        self.not_held.lock().remove(uri)
    }

    /// Whether `uri` was opened past the limits and is not held.
    pub fn is_not_held(&self, uri: &str) -> bool {
        self.not_held.lock().contains(uri)
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

    /// O(1) snapshots of other open documents of the same language as `doc`, at most
    /// `OTHER_DOCUMENTS`, in the order of their URIs: which documents a context looks at, and in
    /// what order, depends on what is open, never on the order it was opened in or on a hash seed.
    pub fn other_documents(&self, doc: &Document) -> Vec<Document> {
        let docs = self.documents.lock();
        let mut others: Vec<&Document> =
            docs.values().filter(|d| d.uri != doc.uri && d.lang.is_some() && d.lang == doc.lang).collect();
        others.sort_unstable_by(|a, b| a.uri.cmp(&b.uri));
        others.into_iter().take(OTHER_DOCUMENTS).cloned().collect()
    }

    /// What `engine` may be given as context, the one rule every request path asks: everything
    /// for the in-process engines (`local`, `fake`); for the others never a file that looks like a
    /// secret (`.env*`, `*.pem`, `*.key`, `id_rsa*` ...) or lies outside the workspace folders,
    /// subject to the `remoteContext` setting. See `secrets` for the rules.
    pub fn sight(&self, engine: &dyn glint_engine::Engine) -> Sight {
        if crate::secrets::is_remote(&engine.info().kind) {
            let context = self.settings.read().remote_context.clone();
            Sight::Policy(self.remote.policy(&context))
        } else {
            Sight::Everything
        }
    }

    /// The document `uri` as a request finds it now, with the settings and encoding; `None` when
    /// it is not open.
    pub fn document_snapshot(&self, uri: &str) -> Option<DocumentSnapshot> {
        let doc = self.snapshot(uri)?;
        Some(DocumentSnapshot { doc, settings: self.settings.read().clone(), encoding: self.encoding() })
    }

    /// Everything a request on `uri` computes from (see [`RequestSnapshot`]), with the engine in
    /// the slot now; a request that should wait for a loading model waits with
    /// [`State::engine_when_loaded`] first.
    pub fn request_snapshot(&self, uri: &str) -> Result<RequestSnapshot, Unavailable> {
        self.document_snapshot(uri).ok_or(Unavailable::NotOpen)?.ready(self)
    }

    /// The context `engine` may be given for a request on `doc`: nothing at all when it may not see
    /// `doc` itself (logged once per document), else the other open documents and the recent
    /// edits it may see. Request snapshots are built with this, so that text an engine must not
    /// see never reaches a prompt by accident.
    fn visible_context(&self, engine: &dyn glint_engine::Engine, doc: &Document) -> Result<Visible, Refusal> {
        let sight = self.sight(engine);
        if let Err(why) = sight.check(&doc.uri) {
            self.remote.log_refusal(&doc.uri, &why);
            return Err(why);
        }
        let mut others = self.other_documents(doc);
        let mut recent_edits = self.recent_edits();
        others.retain(|other| sight.may_see(&other.uri));
        recent_edits.retain(|edit| sight.may_see(&edit.uri));
        Ok(Visible { others, recent_edits })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn state(max_documents: usize, max_total_bytes: usize) -> State {
        State { document_limits: DocumentLimits { max_documents, max_total_bytes }, ..State::default() }
    }

    fn doc(name: &str, bytes: usize) -> Document {
        Document::new(&format!("file:///w/{name}.txt"), "plaintext", 1, &"x".repeat(bytes))
    }

    #[test]
    fn documents_past_the_count_are_not_held_and_the_rest_stay_as_they_were() {
        let state = state(2, 1 << 20);
        assert_eq!(state.open_document(doc("a", 10)), Ok(false));
        assert_eq!(state.open_document(doc("b", 10)), Ok(false));
        assert_eq!(state.open_document(doc("c", 10)), Err(NotHeld::TooMany { limit: 2 }));
        assert!(state.snapshot("file:///w/c.txt").is_none());
        assert!(state.is_not_held("file:///w/c.txt"));
        // Reopening an open document is not one more.
        assert_eq!(state.open_document(doc("a", 20)), Ok(true));
        assert_eq!(state.snapshot("file:///w/a.txt").map(|d| d.rope.len_bytes()), Some(20));
        assert_eq!(state.document_count(), 2);
        // Once one closes, the next open is held.
        state.with_documents(|docs| docs.remove("file:///w/b.txt"));
        assert_eq!(state.open_document(doc("c", 10)), Ok(false));
        assert!(!state.is_not_held("file:///w/c.txt"));
    }

    #[test]
    fn other_documents_do_not_depend_on_the_order_they_were_opened_in() {
        let names: Vec<String> = (0..12).map(|i| format!("file:///w/m{:02}.py", (i * 7) % 12)).collect();
        let open = |order: &mut dyn Iterator<Item = &String>| {
            let state = state(100, 1 << 20);
            for uri in order {
                assert!(state.open_document(Document::new(uri, "python", 1, "x = 1\n")).is_ok());
            }
            assert!(state.open_document(Document::new("file:///w/a.rs", "rust", 1, "fn a() {}\n")).is_ok());
            let current = Document::new("file:///w/current.py", "python", 1, "y = 2\n");
            state.other_documents(&current).iter().map(|d| d.uri.to_string()).collect::<Vec<_>>()
        };
        let forward = open(&mut names.iter());
        let backward = open(&mut names.iter().rev());
        assert_eq!(forward, backward);
        assert_eq!(forward.len(), OTHER_DOCUMENTS);
        assert_eq!(forward.first().map(String::as_str), Some("file:///w/m00.py"));
        assert!(forward.windows(2).all(|w| w[0] < w[1]), "{forward:?}");
    }

    #[test]
    fn documents_past_the_total_size_are_not_held_and_a_stale_text_is_not_kept() {
        let state = state(100, 100);
        assert_eq!(state.open_document(doc("a", 60)), Ok(false));
        assert_eq!(state.open_document(doc("b", 60)), Err(NotHeld::TooLarge { total: 120, limit: 100 }));
        assert_eq!(state.open_document(doc("b", 40)), Ok(false));
        // `b` reopened larger: its old text must not stay as if it were current.
        assert!(state.open_document(doc("b", 50)).is_err());
        assert!(state.snapshot("file:///w/b.txt").is_none());
        assert!(state.is_not_held("file:///w/b.txt"));
        assert!(state.forget_not_held("file:///w/b.txt"));
    }
}
