//! The server's shared state: open documents, settings and what was negotiated with the client.
//! Notification handlers mutate it before their first `.await`; request handlers take snapshots.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::{Mutex, RwLock};

use crate::config::Settings;
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
    /// What `engine` was started from, to restart it when the settings change.
    pub engine_spec: RwLock<Option<EngineSpec>>,
    pub inflight: Inflight,
    pub rhythm: Rhythm,
    pub typing_cache: TypingCache,
    /// The last completion's numbers, for `glint/status`.
    pub last_completion: RwLock<Option<serde_json::Value>>,
}

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
    pub fn snapshot(&self, uri: &str) -> Option<Document> {
        self.documents.lock().get(uri).cloned()
    }

    /// Runs `f` on the document store under its lock. Never `.await` inside.
    pub fn with_documents<R>(&self, f: impl FnOnce(&mut HashMap<String, Document>) -> R) -> R {
        f(&mut self.documents.lock())
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
