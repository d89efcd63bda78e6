//! An `Engine` wrapper that counts what the inner engine does, for benchmarks: calls, and tokens
//! that still arrived after the consumer cancelled (work wasted by cancellation latency).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use glint_engine::{Chunk, Engine, EngineInfo, FinishReason, GenerateRequest, Generation, Timings};
use parking_lot::Mutex;

#[derive(Default, Debug)]
pub struct Counts {
    pub calls: AtomicUsize,
    pub cancelled: AtomicUsize,
    /// Text chunks (about one token each) the engine produced after its consumer cancelled.
    pub chunks_after_cancel: AtomicUsize,
    /// Text chunks produced for generations that ended up cancelled.
    pub chunks_of_cancelled: AtomicUsize,
    /// One record per call, in the order the calls started.
    pub calls_traced: Mutex<Vec<CallTrace>>,
}

/// What one `generate` call cost and produced, for per-keystroke reports.
#[derive(Debug, Clone)]
pub struct CallTrace {
    pub started: Instant,
    /// From the call to its first text chunk.
    pub first_chunk: Option<Duration>,
    pub chunks: usize,
    pub reason: Option<FinishReason>,
    pub timings: Timings,
    pub cancelled: bool,
    /// What was asked: the snippets (path and text), then the prefix, then the suffix, so that
    /// consecutive calls can be compared to see where their prompts part.
    pub asked: [String; 3],
}

pub struct CountingEngine {
    inner: Arc<dyn Engine>,
    pub counts: Arc<Counts>,
}

impl CountingEngine {
    pub fn new(inner: Arc<dyn Engine>) -> CountingEngine {
        CountingEngine { inner, counts: Arc::default() }
    }
}

impl Engine for CountingEngine {
    fn warm(&self, request: GenerateRequest) -> Option<Generation> {
        self.inner.warm(request)
    }

    fn generate(&self, request: GenerateRequest) -> Generation {
        self.counts.calls.fetch_add(1, Ordering::Relaxed);
        let asked = [
            request.snippets.iter().map(|s| format!("{}\n{}\n", s.path, s.text)).collect::<String>(),
            request.prefix.clone(),
            request.suffix.clone(),
        ];
        let mut inner = self.inner.generate(request);
        let (outer, sender) = Generation::channel();
        let counts = Arc::clone(&self.counts);
        let started = Instant::now();
        let slot = {
            let mut traced = counts.calls_traced.lock();
            traced.push(CallTrace {
                started,
                first_chunk: None,
                chunks: 0,
                reason: None,
                timings: Timings::default(),
                cancelled: false,
                asked,
            });
            traced.len() - 1
        };
        tokio::spawn(async move {
            let mut cancelled = false;
            let mut chunks = 0;
            let mut after = 0;
            loop {
                // A consumer that goes away cancels the inner generation at once, as dropping it
                // would, even while it prefills and sends nothing.
                let chunk = if cancelled {
                    inner.next_chunk().await
                } else {
                    tokio::select! {
                        chunk = inner.next_chunk() => chunk,
                        () = sender.cancelled() => {
                            inner.cancel();
                            cancelled = true;
                            continue;
                        }
                    }
                };
                let Some(chunk) = chunk else { break };
                if !cancelled && sender.is_cancelled() {
                    // Keep reading (without dropping the inner generation) to see how much the
                    // engine still produces after the cancel flag is set.
                    inner.cancel();
                    cancelled = true;
                }
                match chunk {
                    Chunk::Text(text) => {
                        if chunks == 0 {
                            counts.calls_traced.lock()[slot].first_chunk = Some(started.elapsed());
                        }
                        chunks += 1;
                        if cancelled {
                            after += 1;
                        } else {
                            sender.send_text(text);
                        }
                    }
                    Chunk::Done(finish) => {
                        {
                            let mut traced = counts.calls_traced.lock();
                            let call = &mut traced[slot];
                            call.chunks = chunks;
                            call.reason = Some(finish.reason);
                            call.timings = finish.timings.clone();
                            call.cancelled = cancelled || sender.is_cancelled();
                        }
                        sender.finish(finish);
                        break;
                    }
                }
            }
            if cancelled || sender.is_cancelled() {
                counts.cancelled.fetch_add(1, Ordering::Relaxed);
                counts.chunks_of_cancelled.fetch_add(chunks, Ordering::Relaxed);
                counts.chunks_after_cancel.fetch_add(after, Ordering::Relaxed);
            }
        });
        outer
    }

    fn info(&self) -> EngineInfo {
        self.inner.info()
    }

    fn count_tokens(&self, text: &str) -> usize {
        self.inner.count_tokens(text)
    }
}
