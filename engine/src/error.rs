//! `EngineError`: every way the engine crate can fail at its boundary, each naming what went wrong.

use std::path::PathBuf;

/// Errors from loading models, tokenizing, running the model and fetching the default model.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The model file could not be opened or read.
    #[error("{path}: {source}", path = path.display())]
    Io { path: PathBuf, source: std::io::Error },

    /// The file is not a usable GGUF model: corrupt, truncated, or missing a required part.
    #[error("{path}: {message}", path = path.display())]
    InvalidModel { path: PathBuf, message: String },

    /// The file is a valid GGUF but holds an architecture Glint cannot run.
    #[error(
        "{path}: unsupported model architecture `{architecture}` (Glint runs `llama` and `qwen2` GGUF models)",
        path = path.display()
    )]
    UnsupportedArchitecture { path: PathBuf, architecture: String },

    /// The model file is larger than the memory available to load it.
    #[error(
        "{path}: the model file has {size_mib} MiB but only {available_mib} MiB of memory are available; \
         close other programs or choose a smaller model",
        path = path.display(),
        size_mib = size >> 20,
        available_mib = available >> 20
    )]
    OutOfMemory { path: PathBuf, size: u64, available: u64 },

    /// The tokenizer could not be built or could not encode or decode.
    #[error("tokenizer: {0}")]
    Tokenizer(String),

    /// A tensor operation failed while running the model.
    #[error("model: {0}")]
    Model(String),

    /// The prompt does not fit the model's context.
    #[error("the prompt has {prompt} tokens but the context holds {context}")]
    ContextOverflow { prompt: usize, context: usize },

    /// Getting the default model failed; the message says what to do instead.
    #[error("{0}")]
    Fetch(String),

    /// A remote HTTP engine is misconfigured or could not be set up.
    #[error("{0}")]
    Http(String),

    /// Requests of other sessions or clients fill the engine's queue.
    #[error(
        "the engine is busy: {waiting} requests of other documents or clients are already waiting for the model (the limit); try again in a moment"
    )]
    Busy { waiting: usize },

    /// The engine's model thread has stopped.
    #[error("the engine's model thread has stopped")]
    Stopped,
}

impl From<candle_core::Error> for EngineError {
    fn from(error: candle_core::Error) -> Self {
        EngineError::Model(error.to_string())
    }
}
