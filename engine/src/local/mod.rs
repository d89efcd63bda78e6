//! `LocalEngine`: the in-process engine. One dedicated OS thread owns the model and serves requests
//! from a queue (`queue.rs`: the newest request of a client's session supersedes its older ones,
//! requests of different sessions are in progress at once and take turns step by step); it keeps
//! KV caches of recent prompts per client and session and reuses their longest common token prefix.

mod queue;
mod runner;
mod stop;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::gguf::GgufFile;
use crate::model::{LoadOptions, Model};
use crate::prompt::{PromptFormat, stop_token_names};
use crate::tokenizer::Tokenizer;
use crate::{ClientId, Engine, EngineError, EngineInfo, GenerateRequest, Generation};

/// Settings of the in-process engine.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// Threads for the model's tensor work; `None` means one per physical core. Takes effect only
    /// for the first engine loaded in a process (the thread pool is process-wide).
    pub threads: Option<usize>,
    /// A prompt template by name (see `prompt::TEMPLATE_NAMES`); `None` detects it from the vocabulary.
    pub template: Option<String>,
    /// The most positions a prompt plus completion may hold; `None` means the model's training
    /// context, capped at 16,384.
    pub context_length: Option<usize>,
    /// How many sessions (documents) keep a warm KV cache; at least one. Also how many requests
    /// of different sessions are in progress at once, taking turns step by step (each holds a
    /// cache); with 1 they run one after another.
    pub max_sessions: usize,
    /// Memory for the KV caches of sessions other than the current one, in MiB.
    pub session_cache_mib: usize,
    /// How many sessions' requests may wait to start, besides those in progress (each session
    /// has at most one waiting; a newer request replaces it). Past it, a request of another
    /// session is refused at once as busy.
    pub max_waiting: usize,
    /// Prompt tokens per prefill step; cancellation is checked between steps.
    pub prefill_chunk: usize,
    /// Approximate KV reuse: when a new prompt holds a run of at least this many tokens of the
    /// cached prompt at another position (a FIM prompt's suffix after typing above it), its cached
    /// keys and values are moved there with a RoPE shift instead of being prefilled again, as
    /// llama.cpp's server does with `--cache-reuse`. Faster, but answers may differ slightly from
    /// a fresh prefill; 0 turns it off (exact, deterministic answers).
    pub shifted_reuse_min: usize,
    /// Convert weights without a fast CPU kernel (Q4_1, Q5_0, Q5_1, F16) to Q8_0 at load.
    pub convert_slow_quants: bool,
    /// A folder where packed weights are cached, so that loads after the first map them instead
    /// of repacking (see [`crate::fetch::packed_weights_dir`]); `None` repacks on every load.
    pub weight_cache: Option<PathBuf>,
    /// Tests only: sleep this long before every prefill chunk and decode step, so cancellation
    /// can be tested at a chosen point.
    #[doc(hidden)]
    pub test_step_delay: Option<Duration>,
    /// Tests only: a prompt containing [`TEST_PANIC_MARKER`] makes the model thread panic, to
    /// prove it recovers. The server sets this only with `GLINT_TEST_HOOKS=1`.
    #[doc(hidden)]
    pub test_hooks: bool,
}

/// See [`LocalConfig::test_hooks`].
#[doc(hidden)]
pub const TEST_PANIC_MARKER: &str = runner::TEST_PANIC_MARKER;

impl Default for LocalConfig {
    fn default() -> Self {
        LocalConfig {
            threads: None,
            template: None,
            context_length: None,
            max_sessions: 4,
            session_cache_mib: 512,
            max_waiting: 64,
            prefill_chunk: 64,
            shifted_reuse_min: 32,
            convert_slow_quants: true,
            weight_cache: None,
            test_step_delay: None,
            test_hooks: false,
        }
    }
}

/// A loaded model served by its own thread.
pub struct LocalEngine {
    queue: Arc<queue::Queue>,
    tokenizer: Arc<Tokenizer>,
    info: EngineInfo,
    path: PathBuf,
}

impl LocalEngine {
    /// Loads a GGUF model and starts its thread.
    pub fn load(path: &Path, config: LocalConfig) -> Result<LocalEngine, EngineError> {
        let started = Instant::now();
        check_memory(path, available_memory())?;
        configure_threads(config.threads);
        let gguf = GgufFile::open(path)?;
        let tokenizer = Tokenizer::from_gguf(&gguf)?;
        let options = LoadOptions {
            context_length: config.context_length,
            convert_slow_quants: config.convert_slow_quants,
            weight_cache: config.weight_cache.clone(),
        };
        let model = Model::from_gguf(&gguf, options)?;
        if tokenizer.vocab_size() > model.config().vocab_size {
            return Err(gguf.invalid(format!(
                "the tokenizer has {} tokens but the model only {}",
                tokenizer.vocab_size(),
                model.config().vocab_size
            )));
        }
        let has = |t: &str| tokenizer.token_id(t).is_some();
        let format = PromptFormat::detect(has, config.template.as_deref()).map_err(|message| gguf.invalid(message))?;
        let mut stop_tokens: Vec<u32> = stop_token_names(has).iter().filter_map(|t| tokenizer.token_id(t)).collect();
        stop_tokens.extend(tokenizer.eos.iter().chain(tokenizer.eot.iter()));
        stop_tokens.sort_unstable();
        stop_tokens.dedup();

        let name = gguf
            .opt_string("general.name")
            .or_else(|| path.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "model".into());
        let info =
            EngineInfo { kind: "local".into(), model: name, context_length: model.context_length(), fim: format.fim() };
        tracing::info!(
            path = %path.display(),
            model = %info.model,
            architecture = ?model.config().architecture,
            context = info.context_length,
            template = ?format.template,
            load_ms = started.elapsed().as_millis() as u64,
            "model loaded"
        );
        let tokenizer = Arc::new(tokenizer);
        let queue = Arc::new(queue::Queue::new(config.max_waiting));
        let state = runner::Runner::new(model, Arc::clone(&tokenizer), format, stop_tokens, &config);
        let thread_queue = Arc::clone(&queue);
        std::thread::Builder::new()
            .name("glint-model".into())
            .spawn(move || {
                // However the thread ends, whatever waits is answered and new requests fail.
                let _stopped = Stopped(Arc::clone(&thread_queue));
                state.run(&thread_queue);
            })
            .map_err(|source| EngineError::Io { path: path.to_path_buf(), source })?;
        Ok(LocalEngine { queue, tokenizer, info, path: path.to_path_buf() })
    }

    /// The model file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the model thread has nothing to do: no request running or queued.
    pub fn is_idle(&self) -> bool {
        self.queue.is_idle()
    }

    /// Waits until the model thread is idle; false on timeout.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.is_idle() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        true
    }

    /// Encodes document text with the model's tokenizer.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>, EngineError> {
        self.tokenizer.encode(text)
    }

    /// The model's tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }
}

impl Engine for LocalEngine {
    fn generate(&self, request: GenerateRequest) -> Generation {
        self.queue.submit(None, request).unwrap_or_else(|error| Generation::failed(error.to_string()))
    }

    fn generate_for(&self, client: ClientId, request: GenerateRequest) -> Result<Generation, EngineError> {
        self.queue.submit(Some(client), request)
    }

    fn warm(&self, mut request: GenerateRequest) -> Option<Generation> {
        request.max_tokens = 0;
        self.queue.submit_warm_up(request)
    }

    fn info(&self) -> EngineInfo {
        self.info.clone()
    }

    fn count_tokens(&self, text: &str) -> usize {
        self.tokenizer.encode(text).map(|ids| ids.len()).unwrap_or_else(|_| crate::estimate_tokens(text))
    }
}

impl Drop for LocalEngine {
    fn drop(&mut self) {
        // The model thread serves what is queued and ends, freeing the model.
        self.queue.close();
    }
}

/// Stops the queue when the model thread ends.
struct Stopped(Arc<queue::Queue>);

impl Drop for Stopped {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// Refuses a model file larger than the memory available now (`MemAvailable` in /proc/meminfo),
/// before reading any of it: the weights are read into memory, so such a load would only end in
/// swapping or the OOM killer. Where the figure is unknown the load goes ahead.
fn check_memory(path: &Path, available: Option<u64>) -> Result<(), EngineError> {
    let size = std::fs::metadata(path).map_err(|source| EngineError::Io { path: path.to_path_buf(), source })?.len();
    match available {
        Some(available) if size > available => {
            Err(EngineError::OutOfMemory { path: path.to_path_buf(), size, available })
        }
        _ => Ok(()),
    }
}

/// `MemAvailable` from /proc/meminfo, in bytes; `None` where there is no such file.
fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_available(&meminfo)
}

fn parse_mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find_map(|l| l.strip_prefix("MemAvailable:"))?;
    let kib: u64 = line.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib.saturating_mul(1024))
}

/// Sets the size of candle's process-wide thread pool before the first tensor operation.
fn configure_threads(threads: Option<usize>) {
    static CONFIGURED: AtomicBool = AtomicBool::new(false);
    if CONFIGURED.swap(true, Ordering::AcqRel) {
        return;
    }
    let Some(threads) = threads.filter(|&t| t > 0) else {
        // candle defaults to one thread per physical core.
        return;
    };
    if std::env::var_os("CANDLE_NUM_THREADS").is_some() {
        return;
    }
    // SAFETY: this runs once, before the engine creates its threads or runs any tensor operation;
    // candle reads the variable when it builds its pool. Other threads of the host process do not
    // touch the environment while an engine loads.
    unsafe {
        std::env::set_var("CANDLE_NUM_THREADS", threads.to_string());
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_available_is_read_in_bytes() {
        let meminfo = "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   16384 kB\n";
        assert_eq!(parse_mem_available(meminfo), Some(16384 * 1024));
        assert_eq!(parse_mem_available("MemTotal: 1 kB\n"), None);
        assert_eq!(parse_mem_available("MemAvailable: lots\n"), None);
    }

    #[test]
    fn a_model_larger_than_available_memory_is_refused_before_loading() {
        let path = std::env::temp_dir().join(format!("glint-mem-{}.gguf", std::process::id()));
        std::fs::write(&path, vec![0u8; 4096]).expect("write a scratch file");
        let error = check_memory(&path, Some(1024)).expect_err("4 KiB do not fit in 1 KiB").to_string();
        assert!(error.contains(&path.display().to_string()) && error.contains("available"), "{error}");
        assert!(check_memory(&path, Some(1 << 20)).is_ok());
        assert!(check_memory(&path, None).is_ok(), "unknown memory does not block a load");
        let _ = std::fs::remove_file(&path);
    }
}
