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
pub mod ws;

pub use error::EngineError;
pub use generation::{CancelFlag, Chunk, Generation, GenerationSender};
pub use http::{HttpApi, HttpConfig, HttpEngine};
pub use local::{LocalConfig, LocalEngine, TEST_PANIC_MARKER};
pub use request::{Finish, FinishReason, GenerateRequest, Sampling, Snippet, Task, Timings};

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

/// A source of completions. Every backend (in-process, WebSocket, HTTP, scripted fake) implements it.
///
/// Architecture Invariant: dropping the returned `Generation` cancels the work; the engine stops
/// within one decode step (or one prefill chunk).
pub trait Engine: Send + Sync + 'static {
    /// Starts generating. Never blocks on the model: the work runs elsewhere and streams back.
    fn generate(&self, request: GenerateRequest) -> Generation;

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
