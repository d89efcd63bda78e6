//! The GGUF fuzz target's entry point: arbitrary bytes as a model file, loaded the way `glint lsp`
//! and `glint engine serve` load one (`LocalEngine::load`: header, metadata, tensor table, model
//! configuration, tokenizer, prompt format, weights), and when that succeeds, one forward pass.
//! Every failure must be an error naming the file; a panic, an abort or an allocation the fuzzer's
//! memory limit refuses is a bug.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use glint_engine::model::{LoadOptions, Model};
use glint_engine::{Engine, EngineError, LocalConfig, LocalEngine};

/// Positions the rotary tables and caches are sized for: enough for the forward pass below, and
/// small, so that a file claiming a long context costs nothing.
const CONTEXT: usize = 32;

/// Loads `data` as a GGUF model file through the engine's loading entry points; whether the
/// model's weights loaded.
pub fn load(data: &[u8]) -> bool {
    let file = ScratchFile::new(data);
    let config = LocalConfig {
        // `None` leaves candle's thread pool as it is rather than setting its variables.
        threads: None,
        context_length: Some(CONTEXT),
        max_sessions: 1,
        session_cache_mib: 1,
        ..LocalConfig::default()
    };
    match LocalEngine::load(&file.0, config) {
        Ok(engine) => {
            assert!(engine.info().context_length >= 16, "a loaded engine has a usable context: {:?}", engine.info());
            // Tokenizing may fail (a vocabulary without every byte), but it must not panic.
            let _ = engine.tokenize("fn main() {\n\tlet é = \"😀\";\r\n}");
        }
        Err(error) => check_error(&error, &file.0),
    }
    let options = LoadOptions { context_length: Some(CONTEXT), convert_slow_quants: true, weight_cache: None };
    match Model::load(&file.0, options) {
        Ok(mut model) => {
            let vocab = model.config().vocab_size;
            let last = u32::try_from(vocab.saturating_sub(1)).unwrap_or(0);
            // The first and the last token, so the embedding table is read at both ends.
            if let Ok(logits) = model.forward(&[0, last], 0) {
                assert_eq!(logits.len(), vocab, "one logit per vocabulary entry");
            }
            true
        }
        Err(error) => {
            check_error(&error, &file.0);
            false
        }
    }
}

/// A load failure says which file failed and why.
fn check_error(error: &EngineError, path: &Path) {
    let message = error.to_string();
    match error {
        EngineError::Io { .. }
        | EngineError::InvalidModel { .. }
        | EngineError::UnsupportedArchitecture { .. }
        | EngineError::OutOfMemory { .. } => {
            assert!(message.contains(&path.display().to_string()), "the error names the file: {message}");
        }
        // Tensor operations and the tokenizer report their own errors without the path.
        EngineError::Model(_) | EngineError::Tokenizer(_) => {}
        other => panic!("loading a file failed with an unexpected kind of error: {other}"),
    }
}

/// The input as a file of its own (the loaders read paths), removed when dropped. In memory where
/// the system has a RAM disk, since the fuzzer writes one per execution.
struct ScratchFile(PathBuf);

impl ScratchFile {
    fn new(data: &[u8]) -> ScratchFile {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
        let name = format!("glint-fuzz-{}-{}.gguf", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let path = dir.join(name);
        if let Err(error) = std::fs::write(&path, data) {
            panic!("cannot write the scratch file {}: {error}", path.display());
        }
        ScratchFile(path)
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
