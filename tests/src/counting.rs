//! An `Engine` wrapper that counts what the inner engine does, for benchmarks: calls, and tokens
//! that still arrived after the consumer cancelled (work wasted by cancellation latency).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use glint_engine::{Chunk, Engine, EngineInfo, GenerateRequest, Generation};

#[derive(Default, Debug)]
pub struct Counts {
    pub calls: AtomicUsize,
    pub cancelled: AtomicUsize,
    /// Text chunks (about one token each) the engine produced after its consumer cancelled.
    pub chunks_after_cancel: AtomicUsize,
    /// Text chunks produced for generations that ended up cancelled.
    pub chunks_of_cancelled: AtomicUsize,
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
        let mut inner = self.inner.generate(request);
        let (outer, sender) = Generation::channel();
        let counts = Arc::clone(&self.counts);
        tokio::spawn(async move {
            let mut cancelled = false;
            let mut chunks = 0;
            let mut after = 0;
            while let Some(chunk) = inner.next_chunk().await {
                if !cancelled && sender.is_cancelled() {
                    // Keep reading (without dropping the inner generation) to see how much the
                    // engine still produces after the cancel flag is set.
                    inner.cancel();
                    cancelled = true;
                }
                match chunk {
                    Chunk::Text(text) => {
                        chunks += 1;
                        if cancelled {
                            after += 1;
                        } else {
                            sender.send_text(text);
                        }
                    }
                    Chunk::Done(finish) => {
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
