//! The model thread: takes the next job from the queue, reuses the longest cached token prefix of
//! its key's session, prefills the rest in chunks and decodes token by token, checking for
//! cancellation, supersession and the deadline before every step.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::queue::{Job, Key, Queue};
use super::stop::StopMatcher;
use crate::model::{KvCache, Model};
use crate::prompt::{Piece, PromptFormat};
use crate::sampler::Sampler;
use crate::tokenizer::{Tokenizer, Utf8Stream};
use crate::{EngineError, Finish, FinishReason, GenerateRequest, Timings};

/// A warm KV cache and the token ids it holds.
struct Session {
    key: Key,
    ids: Vec<u32>,
    cache: KvCache,
    last_used: u64,
}

pub(crate) struct Runner {
    model: Model,
    tokenizer: Arc<Tokenizer>,
    format: PromptFormat,
    stop_tokens: Vec<u32>,
    max_sessions: usize,
    max_cache_bytes: usize,
    prefill_chunk: usize,
    /// The shortest run of shifted cached tokens worth reusing; 0 turns the reuse off.
    shifted_reuse_min: usize,
    /// The session whose cache is in the model.
    active: Session,
    /// Other sessions' caches.
    parked: Vec<Session>,
    clock: u64,
    step_delay: Option<Duration>,
    test_hooks: bool,
}

enum Interrupt {
    Cancelled,
    Deadline,
}

impl Runner {
    pub(crate) fn new(
        model: Model,
        tokenizer: Arc<Tokenizer>,
        format: PromptFormat,
        stop_tokens: Vec<u32>,
        config: &super::LocalConfig,
    ) -> Runner {
        let active = Session { key: Key::default(), ids: Vec::new(), cache: KvCache::default(), last_used: 0 };
        Runner {
            model,
            tokenizer,
            format,
            stop_tokens,
            max_sessions: config.max_sessions.max(1),
            max_cache_bytes: config.session_cache_mib.saturating_mul(1 << 20),
            prefill_chunk: config.prefill_chunk.max(1),
            shifted_reuse_min: config.shifted_reuse_min,
            active,
            parked: Vec::new(),
            clock: 0,
            step_delay: config.test_step_delay,
            test_hooks: config.test_hooks,
        }
    }

    /// Serves jobs until the queue is closed and empty.
    pub(crate) fn run(mut self, queue: &Queue) {
        serve_jobs(&mut self, queue);
    }

    fn interrupted(&self, job: &Job) -> Option<Interrupt> {
        if let Some(delay) = self.step_delay {
            std::thread::sleep(delay);
        }
        if job.is_cancelled() {
            return Some(Interrupt::Cancelled);
        }
        let deadline = job.request.deadline_ms.map(Duration::from_millis)?;
        (job.arrived.elapsed() >= deadline).then_some(Interrupt::Deadline)
    }

    fn serve(&mut self, job: &Job) {
        let mut timings = Timings::default();
        let result = self.generate(job, &mut timings);
        timings.total_ms = ms(job.arrived.elapsed());
        let finish = match result {
            Ok(reason) => Finish { reason, error: None, timings },
            Err(error) => {
                tracing::warn!(%error, "generation failed");
                // The cache may be half-written; start the session over.
                self.active.ids.clear();
                self.model.replace_cache(KvCache::default());
                Finish { reason: FinishReason::Error, error: Some(error.to_string()), timings }
            }
        };
        tracing::debug!(
            reason = ?finish.reason,
            prompt_tokens = finish.timings.prompt_tokens,
            cached_tokens = finish.timings.cached_tokens,
            prefill_ms = finish.timings.prefill_ms,
            ttft_ms = finish.timings.ttft_ms,
            decode_tokens = finish.timings.decode_tokens,
            "generation finished"
        );
        job.sender.finish(finish);
    }

    fn generate(&mut self, job: &Job, timings: &mut Timings) -> Result<FinishReason, EngineError> {
        let request = &job.request;
        let mut prompt = self.encode_prompt(request)?;
        let max_tokens = request.max_tokens as usize;
        let context = self.model.context_length();
        let room = context.saturating_sub(max_tokens.min(context / 2)).max(1);
        if prompt.len() > room {
            // Keep the end of the prompt, nearest the cursor.
            prompt.drain(..prompt.len() - room);
        }
        timings.prompt_tokens = prompt.len();
        if let Some(reason) = self.interrupted(job) {
            return Ok(reason.into());
        }
        self.select_session(&job.key);

        // Reuse the longest common prefix; with everything cached, back off one token so the last
        // prompt token runs again and yields fresh logits.
        let mut common = common_prefix(&self.active.ids, &prompt);
        if common == prompt.len() {
            common -= 1;
        }
        // Approximate reuse: a long run of the old prompt further on (a FIM prompt's suffix after
        // an edit above it) is moved into place with its keys re-rotated, instead of prefilled.
        let moved = match find_shifted_run(&self.active.ids, &prompt, common, self.shifted_reuse_min) {
            Some(run) => {
                let shift = run.to as isize - run.from as isize;
                self.model.cache_extract_shifted(run.from, run.len, shift).map(|chunk| (run.to, chunk))
            }
            None => None,
        };
        self.active.ids.truncate(common);
        self.model.cache_truncate(common);
        timings.cached_tokens = common;

        let prefill_started = Instant::now();
        let mut logits = Vec::new();
        let mut position = common;
        let gap_end = moved.as_ref().map_or(prompt.len(), |(to, _)| *to);
        for stage in 0..2 {
            let end = if stage == 0 { gap_end } else { prompt.len() };
            for chunk in prompt[position..end].chunks(self.prefill_chunk) {
                if let Some(reason) = self.interrupted(job) {
                    timings.prefill_ms = ms(prefill_started.elapsed());
                    return Ok(reason.into());
                }
                logits = self.model.forward(chunk, position)?;
                position += chunk.len();
                self.active.ids.extend_from_slice(chunk);
            }
            if stage == 0
                && let Some((_, run)) = &moved
            {
                self.model.cache_append(run)?;
                self.active.ids.extend_from_slice(&prompt[position..position + run.len()]);
                position += run.len();
                timings.cached_tokens += run.len();
            }
        }
        timings.prefill_ms = ms(prefill_started.elapsed());
        if max_tokens == 0 {
            return Ok(FinishReason::Stop);
        }

        let decode_started = Instant::now();
        let mut sampler = Sampler::new(request.sampling.clone());
        let mut utf8 = Utf8Stream::default();
        let mut stops = StopMatcher::new(&request.stop);
        let mut generated = 0usize;
        let reason = loop {
            if let Some(reason) = self.interrupted(job) {
                break reason.into();
            }
            let token = sampler.sample(&mut logits, &self.active.ids);
            if generated == 0 {
                timings.ttft_ms = ms(job.arrived.elapsed());
            }
            generated += 1;
            if self.stop_tokens.binary_search(&token).is_ok() || self.tokenizer.is_control(token) {
                break FinishReason::Stop;
            }
            let text = utf8.push(self.tokenizer.token_bytes(token));
            let (text, stopped) = stops.push(&text);
            if !text.is_empty() && !job.sender.send_text(text) {
                break FinishReason::Cancelled;
            }
            if stopped {
                break FinishReason::Stop;
            }
            if generated >= max_tokens {
                break FinishReason::Length;
            }
            if position >= context {
                break FinishReason::Length;
            }
            logits = self.model.forward(&[token], position)?;
            position += 1;
            self.active.ids.push(token);
        };
        if matches!(reason, FinishReason::Stop | FinishReason::Length) {
            let rest = utf8.finish();
            let (mut text, stopped) = stops.push(&rest);
            if !stopped {
                text.push_str(&stops.flush());
            }
            if !text.is_empty() {
                job.sender.send_text(text);
            }
        }
        let decode_time = decode_started.elapsed().as_secs_f64();
        timings.decode_tokens = generated;
        timings.decode_tokens_per_s = if decode_time > 0.0 { generated as f64 / decode_time } else { 0.0 };
        Ok(reason)
    }

    fn encode_prompt(&self, request: &GenerateRequest) -> Result<Vec<u32>, EngineError> {
        let mut ids = Vec::new();
        if self.tokenizer.add_bos {
            ids.extend(self.tokenizer.bos);
        }
        for piece in self.format.render(request) {
            match piece {
                Piece::Text(text) => ids.extend(self.tokenizer.encode(&text)?),
                Piece::Token(name) => ids.push(
                    self.tokenizer
                        .token_id(name)
                        .ok_or_else(|| EngineError::Tokenizer(format!("the vocabulary has no token `{name}`")))?,
                ),
            }
        }
        if ids.is_empty() {
            // An empty prompt still needs one token to condition on.
            ids.push(self.tokenizer.bos.or(self.tokenizer.eos).unwrap_or(0));
        }
        Ok(ids)
    }

    /// Makes `key`'s cache the model's, parking the current one. At most `max_sessions` caches
    /// live at once and parked ones stay within `max_cache_bytes`; the least recently used go
    /// first. With a single session, sessions of one client share it and the common prefix
    /// decides alone; another client's request never reuses it (it starts empty).
    fn select_session(&mut self, key: &Key) {
        self.clock += 1;
        if self.max_sessions == 1 && self.active.key.client != key.client {
            self.active.ids.clear();
            self.model.cache_truncate(0);
            self.active.key = key.clone();
        }
        if self.max_sessions == 1 || self.active.key == *key {
            self.active.last_used = self.clock;
            return;
        }
        let incoming = match self.parked.iter().position(|s| s.key == *key) {
            Some(i) => self.parked.swap_remove(i),
            None => {
                let recycled = if self.parked.len() + 1 >= self.max_sessions { self.evict_lru() } else { None };
                let cache = match recycled {
                    Some(mut session) => {
                        session.cache.truncate(0);
                        session.cache
                    }
                    None => self.model.new_cache(),
                };
                Session { key: key.clone(), ids: Vec::new(), cache, last_used: 0 }
            }
        };
        let mut outgoing = std::mem::replace(&mut self.active, incoming);
        outgoing.cache = self.model.replace_cache(std::mem::take(&mut self.active.cache));
        self.parked.push(outgoing);
        while self.parked.iter().map(|s| s.cache.memory_bytes()).sum::<usize>() > self.max_cache_bytes {
            self.evict_lru();
        }
        self.active.last_used = self.clock;
    }

    fn evict_lru(&mut self) -> Option<Session> {
        let (i, _) = self.parked.iter().enumerate().min_by_key(|(_, s)| s.last_used)?;
        Some(self.parked.swap_remove(i))
    }
}

/// What the model thread does with each job. A trait, so that the thread's loop and its panic
/// recovery are tested without a model.
pub(crate) trait Worker {
    /// Runs one job and finishes its generation.
    fn serve(&mut self, job: &Job);
    /// Called after `serve` panicked: drop whatever state the panic may have left half-written,
    /// so the next job starts clean (the thread restarts its work without reloading the model).
    fn recover(&mut self);
}

impl Worker for Runner {
    fn serve(&mut self, job: &Job) {
        if self.test_hooks && job.request.prefix.contains(TEST_PANIC_MARKER) {
            injected_panic();
        }
        Runner::serve(self, job);
    }

    fn recover(&mut self) {
        self.active = Session { key: Key::default(), ids: Vec::new(), cache: KvCache::default(), last_used: 0 };
        self.model.replace_cache(KvCache::default());
        self.parked.clear();
    }
}

/// With test hooks on, a prompt containing this makes the model thread panic.
pub(crate) const TEST_PANIC_MARKER: &str = "GLINT_TEST_ENGINE_PANIC";

#[allow(clippy::panic)]
fn injected_panic() {
    panic!("injected engine panic for testing");
}

/// The model thread's loop: serves the queue's jobs in turn, catching a panic in any one of them.
/// A panicking job is answered with an error naming the panic, the worker drops its possibly
/// broken state, and the loop serves on, so one bad request never stops the engine.
pub(crate) fn serve_jobs(worker: &mut impl Worker, queue: &Queue) {
    while let Some(job) = queue.next() {
        let span = tracing::debug_span!("generate", sequence = job.sequence);
        let _enter = span.enter();
        if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| worker.serve(&job))) {
            let message = panic_message(&*panic);
            tracing::error!(
                sequence = job.sequence,
                session = job.key.session.as_str(),
                prefix_chars = job.request.prefix.len(),
                suffix_chars = job.request.suffix.len(),
                max_tokens = job.request.max_tokens,
                "the model thread panicked: {message}; its KV caches are dropped and it serves on"
            );
            worker.recover();
            job.sender.finish(Finish {
                reason: FinishReason::Error,
                error: Some(format!("the engine panicked: {message}")),
                timings: Timings { total_ms: ms(job.arrived.elapsed()), ..Timings::default() },
            });
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

impl From<Interrupt> for FinishReason {
    fn from(interrupt: Interrupt) -> Self {
        match interrupt {
            Interrupt::Cancelled => FinishReason::Cancelled,
            Interrupt::Deadline => FinishReason::Deadline,
        }
    }
}

/// A run of cached tokens that reappears later or earlier in a new prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ShiftedRun {
    /// Where the run starts in the cache.
    from: usize,
    /// Where it starts in the new prompt.
    to: usize,
    len: usize,
}

/// How many prompt positions after the common prefix a shifted run may start at: an edit inserts
/// or removes a few lines' tokens before the run it shifts.
const SHIFT_SCAN: usize = 256;

/// The longest run of at least `min` tokens (0: none) that the cache holds from `start` on and the
/// prompt holds within `SHIFT_SCAN` positions of `start`; it never covers the prompt's last token,
/// which must run to give the next token's logits.
fn find_shifted_run(cached: &[u32], prompt: &[u32], start: usize, min: usize) -> Option<ShiftedRun> {
    if min == 0 {
        return None;
    }
    let last = prompt.len().saturating_sub(1);
    let mut best: Option<ShiftedRun> = None;
    for to in start..last.min(start + SHIFT_SCAN) {
        for from in start..cached.len() {
            if cached[from] != prompt[to] {
                continue;
            }
            let len = cached[from..].iter().zip(&prompt[to..last]).take_while(|(a, b)| a == b).count();
            if len >= min && best.is_none_or(|b| len > b.len) {
                best = Some(ShiftedRun { from, to, len });
            }
        }
    }
    best
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Chunk, ClientId, Generation};

    /// A worker without a model: panics on a prompt that says so, else "decodes" one `.` per
    /// step for as many steps as `max_tokens` says (1 if 0), a millisecond each, checking for
    /// cancellation before every step as the real runner does.
    #[derive(Default)]
    struct Scripted {
        served: usize,
        recovered: usize,
    }

    impl Worker for Scripted {
        #[allow(clippy::panic)]
        fn serve(&mut self, job: &Job) {
            self.served += 1;
            if job.request.prefix == "panic" {
                panic!("scripted failure in job {}", job.sequence);
            }
            for _ in 0..job.request.max_tokens.max(1) {
                std::thread::sleep(Duration::from_millis(1));
                if job.is_cancelled() {
                    return job.sender.finish(Finish { reason: FinishReason::Cancelled, ..Finish::default() });
                }
                job.sender.send_text(".");
            }
            job.sender.finish(Finish::default());
        }

        fn recover(&mut self) {
            self.recovered += 1;
        }
    }

    /// A queue served by a scripted worker on its own thread, as the engine's model thread is.
    struct Served {
        queue: Arc<Queue>,
        thread: Option<std::thread::JoinHandle<Scripted>>,
    }

    impl Served {
        fn start(capacity: usize) -> Served {
            let queue = Arc::new(Queue::new(capacity));
            let thread_queue = Arc::clone(&queue);
            let thread = std::thread::spawn(move || {
                let mut worker = Scripted::default();
                serve_jobs(&mut worker, &thread_queue);
                worker
            });
            Served { queue, thread: Some(thread) }
        }

        fn generate(&self, client: Option<ClientId>, session: &str, prefix: &str, steps: u32) -> Generation {
            let request = GenerateRequest {
                prefix: prefix.into(),
                session: Some(session.into()),
                max_tokens: steps,
                ..GenerateRequest::default()
            };
            self.queue.submit(client, request).unwrap_or_else(|e| Generation::failed(e.to_string()))
        }

        /// Closes the queue and returns the worker once it has served what was queued.
        fn finish(mut self) -> Scripted {
            self.queue.close();
            self.thread.take().map(|t| t.join().expect("the thread ends normally")).unwrap_or_default()
        }
    }

    async fn collect(mut generation: Generation) -> (String, Option<Finish>) {
        let mut text = String::new();
        while let Some(chunk) = generation.next_chunk().await {
            match chunk {
                Chunk::Text(t) => text.push_str(&t),
                Chunk::Done(done) => return (text, Some(done)),
            }
        }
        (text, None)
    }

    async fn reason(generation: Generation) -> FinishReason {
        collect(generation).await.1.map_or(FinishReason::Error, |f| f.reason)
    }

    #[test]
    fn a_shifted_run_is_found_after_an_edit_above_it() {
        // Cache: prefix 1..=9, then an old line (50, 51), then a 40-token suffix, then more.
        let suffix: Vec<u32> = (100..140).collect();
        let cached: Vec<u32> = (1..10).chain([50, 51]).chain(suffix.iter().copied()).chain([7, 7]).collect();
        // The prompt inserts three tokens where the old line was: the suffix moves by one.
        let prompt: Vec<u32> = (1..10).chain([60, 61, 62]).chain(suffix.iter().copied()).chain([9]).collect();
        let start = common_prefix(&cached, &prompt);
        assert_eq!(start, 9);
        let run = find_shifted_run(&cached, &prompt, start, 32).expect("the suffix is found");
        assert_eq!(run, ShiftedRun { from: 11, to: 12, len: 40 });
        assert_eq!(find_shifted_run(&cached, &prompt, start, 0), None, "0 turns it off");
        assert_eq!(find_shifted_run(&cached, &prompt, start, 41), None, "too short a run is not worth it");
        // The prompt's last token always runs again.
        let tail: Vec<u32> = (1..10).chain(suffix.iter().copied()).collect();
        let run = find_shifted_run(&cached, &tail, 9, 32).expect("found");
        assert_eq!(run.to + run.len, tail.len() - 1);
    }

    #[tokio::test]
    async fn a_panicking_job_is_answered_with_an_error_and_the_next_job_is_served() {
        let served = Served::start(8);
        for (n, prefix) in ["panic", "fine", "panic", "fine"].into_iter().enumerate() {
            let (text, finish) = collect(served.generate(None, "a", prefix, 2)).await;
            let finish = finish.expect("every job is finished, even one that panicked");
            if prefix == "panic" {
                assert_eq!(finish.reason, FinishReason::Error);
                let error = finish.error.unwrap_or_default();
                assert!(error.contains(&format!("scripted failure in job {}", n + 1)), "{error}");
            } else {
                assert_eq!((text.as_str(), finish.reason), ("..", FinishReason::Stop));
            }
        }
        let queue = Arc::clone(&served.queue);
        let worker = served.finish();
        assert_eq!((worker.served, worker.recovered), (4, 2));
        assert!(queue.is_idle());
    }

    #[tokio::test]
    async fn two_sessions_generating_at_once_both_finish() {
        let served = Served::start(8);
        let (a, b) = (Some(ClientId::fresh()), Some(ClientId::fresh()));
        // Same session string on two clients, and two sessions of one client.
        let generations = [
            served.generate(a, "doc", "a", 30),
            served.generate(b, "doc", "b", 30),
            served.generate(a, "other", "c", 30),
        ];
        for generation in generations {
            let (text, finish) = collect(generation).await;
            assert_eq!((text.len(), finish.map(|f| f.reason)), (30, Some(FinishReason::Stop)));
        }
        served.finish();
    }

    #[tokio::test]
    async fn a_newer_request_of_a_session_cancels_only_that_sessions_older_one() {
        let served = Served::start(8);
        let (a, b) = (Some(ClientId::fresh()), Some(ClientId::fresh()));
        let mut first = served.generate(a, "doc", "a1", 200);
        assert!(matches!(first.next_chunk().await, Some(Chunk::Text(_))), "a1 is running");
        let queued = served.generate(a, "doc", "a2", 200);
        let other = served.generate(b, "doc", "b1", 20);
        let third = served.generate(a, "doc", "a3", 20);
        assert_eq!(reason(first).await, FinishReason::Cancelled, "the running request of the session");
        assert_eq!(reason(queued).await, FinishReason::Cancelled, "the waiting request of the session");
        assert_eq!(reason(other).await, FinishReason::Stop, "another client's request with the same session");
        assert_eq!(reason(third).await, FinishReason::Stop);
        served.finish();
    }

    #[tokio::test]
    async fn past_the_queue_bound_a_request_is_refused_as_busy() {
        let served = Served::start(2);
        let mut running = served.generate(None, "running", "r", 200);
        assert!(matches!(running.next_chunk().await, Some(Chunk::Text(_))));
        let waiting = [served.generate(None, "w1", "w1", 1), served.generate(None, "w2", "w2", 1)];
        let (_, refused) = collect(served.generate(None, "w3", "w3", 1)).await;
        let refused = refused.expect("a finish");
        let error = refused.error.unwrap_or_default();
        assert_eq!(refused.reason, FinishReason::Error);
        assert!(error.contains("busy") && error.contains("2 requests"), "{error}");
        drop(running);
        for generation in waiting {
            assert_eq!(reason(generation).await, FinishReason::Stop);
        }
        served.finish();
    }
}
