//! Glint's engines: the `Engine` trait every backend implements, the structured request the server
//! sends, and the streamed `Generation` that cancels its work when dropped. Knows nothing of LSP.

pub mod catalog;
mod error;
pub mod fake;
pub mod fetch;
mod generation;
mod gguf;
pub mod http;
mod kernels;
mod local;
pub mod model;
pub mod prompt;
pub mod protocol;
mod request;
pub mod sampler;
pub mod tokenizer;
mod weight_cache;
pub mod work;
pub mod ws;

pub use error::EngineError;
pub use generation::{CancelFlag, Chunk, Generation, GenerationSender};
pub use http::{HttpApi, HttpConfig, HttpEngine};
pub use local::{LocalConfig, LocalEngine, TEST_PANIC_MARKER};
pub use request::{Finish, FinishReason, GenerateRequest, Sampling, Snippet, Task, Timings};

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// What an engine says about itself; shown in `glint/status` and used to size context windows.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EngineInfo {
    /// `local`, `ws`, `http`, `fake`.
    pub kind: String,
    /// The model's name or file, for display.
    pub model: String,
    /// The most tokens a prompt plus its completion may hold.
    pub context_length: usize,
    /// Whether the engine renders fill-in-the-middle prompts (the suffix then shapes the answer).
    pub fim: bool,
}

/// The engine server's own name for one of its clients (a connection of `glint engine serve`).
/// Made by the server, unique within the process and never read from the wire, so no client can
/// claim another's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientId(u64);

impl ClientId {
    /// An identity no one in this process had before.
    pub fn fresh() -> ClientId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        ClientId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// A session key that names `name` (a document URI) without revealing it: a keyed hash, 128 bits
/// in hex, the same for the same name for the life of the process and unrelated to it outside.
/// The LSP sends this as `GenerateRequest::session`, so an engine never sees a path through it.
pub fn session_key(name: &str) -> String {
    static KEYS: OnceLock<[RandomState; 2]> = OnceLock::new();
    let [a, b] = KEYS.get_or_init(|| [RandomState::new(), RandomState::new()]).each_ref().map(|k| k.hash_one(name));
    format!("{a:016x}{b:016x}")
}

/// A source of completions. Every backend (in-process, WebSocket, HTTP, scripted fake) implements it.
///
/// Architecture Invariant: dropping the returned `Generation` cancels the work; the engine stops
/// within one decode step (or one prefill chunk).
///
/// Architecture Invariant, the one rule of who may cancel whom, for every holder of running work
/// (the language server's completions and code actions, each connection of `glint engine serve`,
/// the in-process engine's queue; see [`work`]): work is keyed by who asked, a client (none for
/// `generate` and in the language server, the server's `ClientId` for `generate_for`) and then a
/// session (a document, or a document's code actions; `GenerateRequest::session` on the wire):
/// - the newest work of a key supersedes that key's older work, waiting or running, at once
///   (within a prefill chunk or a decode step on the model); it never cancels another key's;
/// - everything else that cancels names what it ends: an edit its document's work, a `cancel`
///   frame its request, a dropped connection or `Generation` its own work, shutdown all;
/// - a generation that ended `FinishReason::Cancelled` before its answer was complete is never an
///   answer: its text is not shown, cached or applied.
///
/// Architecture Invariant (turns and privacy, on an engine with a queue and a KV cache of its own:
/// the in-process one):
/// - keys take turns for the model a prefill chunk or a decode step at a time, a few keys' requests
///   in progress at once, so that none waits for another key's whole generation: clients first,
///   then the sessions of a client; a bounded number wait to start, and past it a request is
///   refused as busy at once;
/// - KV caches belong to a key: a client never reuses what another client's requests left in the
///   cache, so neither its timings nor `Timings::cached_tokens` say anything about them.
pub trait Engine: Send + Sync + 'static {
    /// Starts generating. Never blocks on the model: the work runs elsewhere and streams back.
    /// A busy engine answers with a generation that ends at once with `FinishReason::Error`.
    fn generate(&self, request: GenerateRequest) -> Generation;

    /// Starts generating for `client`, one of the clients of a shared engine (`glint engine
    /// serve` calls this for each request of a connection). `Err(EngineError::Busy)` when the
    /// engine's queue is full. Engines without a queue or a cache of their own (remote,
    /// scripted) serve it as `generate`.
    fn generate_for(&self, client: ClientId, request: GenerateRequest) -> Result<Generation, EngineError> {
        let _ = client;
        Ok(self.generate(request))
    }

    /// Describes the engine and its model.
    fn info(&self) -> EngineInfo;

    /// Prefills `request`'s prompt in the background, generating nothing, so that a request for
    /// the same place soon after finds it in the KV cache. Background work never delays or
    /// supersedes a request: an engine that is busy refuses it (`None`), and any request that
    /// arrives supersedes it within one prefill chunk. Keep the `Generation` until it ends (dropping
    /// it stops the warm-up). Engines without a cache of their own refuse.
    fn warm(&self, request: GenerateRequest) -> Option<Generation> {
        let _ = request;
        None
    }

    /// How many model tokens `text` takes. Engines without a tokenizer at hand estimate.
    fn count_tokens(&self, text: &str) -> usize {
        estimate_tokens(text)
    }

    /// The state of the connection to a remote engine, for engines that have one; `None` for
    /// in-process engines. The receiver sees every change (connected, lost, reconnecting).
    fn connection(&self) -> Option<tokio::sync::watch::Receiver<ws::ConnectionState>> {
        None
    }
}

/// A calibrated estimate for code with BPE tokenizers of the SmolLM/StarCoder family: about 3.2
/// bytes per token on the dev cases.
pub fn estimate_tokens(text: &str) -> usize {
    text.len().div_ceil(3)
}
