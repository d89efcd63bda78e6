//! A scripted engine for tests and editor demos: streams a fixed or computed reply in small chunks,
//! with an optional delay per chunk, and records every request and cancellation it sees.
//!
//! Selected with `--engine fake:TEXT` (escapes `\n` and `\t` are decoded) or
//! `--engine fake+delay=MS:TEXT` for a slow engine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::{Engine, EngineInfo, Finish, FinishReason, GenerateRequest, Generation, Timings};

type ReplyFn = dyn Fn(&GenerateRequest) -> Result<String, String> + Send + Sync;

/// A deterministic engine whose behaviour a test scripts.
#[derive(Clone)]
pub struct FakeEngine {
    reply: Arc<ReplyFn>,
    delay: Duration,
    /// How long starting it takes (`fake+load=MS:TEXT`), to stand in for a model that loads.
    pub load: Duration,
    chunk_chars: usize,
    log: Arc<Mutex<FakeLog>>,
}

/// How many requests a `FakeEngine` remembers.
pub const MAX_LOGGED_REQUESTS: usize = 1024;

/// What a `FakeEngine` saw.
#[derive(Debug, Default, Clone)]
pub struct FakeLog {
    /// The most recent requests (at most `MAX_LOGGED_REQUESTS`), oldest first.
    pub requests: Vec<GenerateRequest>,
    /// Generations that ended because the consumer cancelled or dropped them.
    pub cancelled: usize,
    /// Generations that ran to their end.
    pub completed: usize,
    /// Warm-ups asked for (see `Engine::warm`), most recent last (at most `MAX_LOGGED_REQUESTS`).
    pub warmups: Vec<GenerateRequest>,
}

impl FakeEngine {
    /// Always replies `text`.
    pub fn fixed(text: impl Into<String>) -> Self {
        let text = text.into();
        Self::with_reply(move |_| Ok(text.clone()))
    }

    /// Replies whatever `reply` computes from the request; `Err` becomes an engine error.
    pub fn with_reply(reply: impl Fn(&GenerateRequest) -> Result<String, String> + Send + Sync + 'static) -> Self {
        FakeEngine {
            reply: Arc::new(reply),
            delay: Duration::ZERO,
            load: Duration::ZERO,
            chunk_chars: 3,
            log: Arc::default(),
        }
    }

    /// Sleeps this long before each chunk, to stand in for a slow model.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Parses `fake:TEXT`, `fake+delay=MS:TEXT` (each chunk takes MS) or `fake+load=MS:TEXT`
    /// (starting takes MS); options combine (`fake+delay=5+load=800:TEXT`).
    pub fn from_spec(spec: &str) -> Option<Self> {
        let rest = spec.strip_prefix("fake")?;
        let (options, text) = rest.split_once(':')?;
        let mut engine = FakeEngine::fixed(unescape(text));
        for option in options.split('+').filter(|o| !o.is_empty()) {
            let (key, value) = option.split_once('=')?;
            match key {
                "delay" => engine.delay = Duration::from_millis(value.parse().ok()?),
                "load" => engine.load = Duration::from_millis(value.parse().ok()?),
                _ => return None,
            }
        }
        Some(engine)
    }

    /// A copy of what the engine saw so far.
    pub fn log(&self) -> FakeLog {
        self.log.lock().clone()
    }
}

fn unescape(text: &str) -> String {
    text.replace("\\n", "\n").replace("\\t", "\t")
}

impl Engine for FakeEngine {
    /// Records the warm-up and ends it at once: a scripted engine has no cache to fill.
    fn warm(&self, request: GenerateRequest) -> Option<Generation> {
        let mut log = self.log.lock();
        if log.warmups.len() >= MAX_LOGGED_REQUESTS {
            log.warmups.remove(0);
        }
        log.warmups.push(request);
        let (generation, sender) = Generation::channel();
        sender.finish(Finish::default());
        Some(generation)
    }

    fn generate(&self, request: GenerateRequest) -> Generation {
        let (generation, sender) = Generation::channel();
        let reply = (self.reply)(&request);
        {
            // Only the most recent requests are kept, so a long session (`glint lsp --engine
            // fake:...`, the soak bench) does not grow by a prompt per keystroke.
            let mut log = self.log.lock();
            if log.requests.len() >= MAX_LOGGED_REQUESTS {
                log.requests.remove(0);
            }
            log.requests.push(request.clone());
        }
        let log = Arc::clone(&self.log);
        let delay = self.delay;
        let chunk_chars = self.chunk_chars.max(1);
        // The engine's clock starts with the request, as the local engine's does: the thread's
        // start belongs to the engine's time to first token, not to whoever measures around it.
        let started = Instant::now();
        std::thread::spawn(move || {
            let text = match reply {
                Ok(text) => text,
                Err(message) => {
                    sender.finish(Finish { reason: FinishReason::Error, error: Some(message), ..Finish::default() });
                    return;
                }
            };
            let chars: Vec<char> = text.chars().collect();
            let mut emitted = String::new();
            let mut reason = FinishReason::Stop;
            let mut first_token_ms = 0.0;
            let mut tokens = 0;
            for piece in chars.chunks(chunk_chars) {
                if tokens >= request.max_tokens as usize && request.max_tokens > 0 {
                    reason = FinishReason::Length;
                    break;
                }
                if !delay.is_zero() {
                    std::thread::sleep(delay);
                }
                if sender.is_cancelled() {
                    reason = FinishReason::Cancelled;
                    break;
                }
                let piece: String = piece.iter().collect();
                emitted.push_str(&piece);
                if let Some(stop) = request.stop.iter().find(|s| !s.is_empty() && emitted.contains(s.as_str())) {
                    // Stream only what comes before the stop sequence.
                    let keep = emitted.find(stop.as_str()).unwrap_or(emitted.len());
                    let already = emitted.len() - piece.len();
                    if keep > already {
                        sender.send_text(&emitted[already..keep]);
                    }
                    break;
                }
                if tokens == 0 {
                    first_token_ms = started.elapsed().as_secs_f64() * 1e3;
                }
                tokens += 1;
                if !sender.send_text(piece) {
                    reason = FinishReason::Cancelled;
                    break;
                }
            }
            {
                let mut log = log.lock();
                if reason == FinishReason::Cancelled {
                    log.cancelled += 1;
                } else {
                    log.completed += 1;
                }
            }
            let total_ms = started.elapsed().as_secs_f64() * 1e3;
            sender.finish(Finish {
                reason,
                error: None,
                timings: Timings {
                    prompt_tokens: crate::estimate_tokens(&request.prefix) + crate::estimate_tokens(&request.suffix),
                    ttft_ms: first_token_ms,
                    decode_tokens: tokens,
                    total_ms,
                    ..Timings::default()
                },
            });
        });
        generation
    }

    fn info(&self) -> EngineInfo {
        EngineInfo { kind: "fake".into(), model: "scripted".into(), context_length: 8192, fim: true }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn streams_the_scripted_text_and_stops_before_a_stop_sequence() {
        let engine = FakeEngine::fixed("let x = 1;\nlet y = 2;");
        let request = GenerateRequest { stop: vec!["\n".into()], ..GenerateRequest::default() };
        let (text, finish) = engine.generate(request).collect_text().await;
        assert_eq!(text, "let x = 1;");
        assert_eq!(finish.reason, FinishReason::Stop);
        assert_eq!(engine.log().requests.len(), 1);
    }

    #[tokio::test]
    async fn dropping_a_slow_generation_is_recorded_as_a_cancellation() {
        let engine = FakeEngine::fixed("a".repeat(300)).with_delay(Duration::from_millis(5));
        let mut generation = engine.generate(GenerateRequest::default());
        assert!(matches!(generation.next_chunk().await, Some(crate::Chunk::Text(_))));
        drop(generation);
        for _ in 0..200 {
            if engine.log().cancelled == 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the fake engine never saw the cancellation: {:?}", engine.log());
    }

    #[test]
    fn parses_specs() {
        assert!(FakeEngine::from_spec("fake:hello\\nworld").is_some());
        assert_eq!(FakeEngine::from_spec("fake+delay=20:x").map(|e| e.delay), Some(Duration::from_millis(20)));
        assert!(FakeEngine::from_spec("fake+bogus=1:x").is_none());
        let both = FakeEngine::from_spec("fake+delay=5+load=800:x").expect("options combine");
        assert_eq!((both.delay, both.load), (Duration::from_millis(5), Duration::from_millis(800)));
        assert!(FakeEngine::from_spec("local").is_none());
    }
}
