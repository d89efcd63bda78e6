//! The model thread: keeps a few jobs in progress and gives them turns of one prefill chunk or one
//! decode step, as the queue decides, so that a short request never waits for another key's whole
//! generation. Each job reuses the longest cached token prefix of its key's session, prefills the
//! rest in chunks and decodes token by token, checking for cancellation, supersession and the
//! deadline before every step; between its steps its KV cache is out of the model.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::queue::{Job, Key, Queue, Turn};
use super::stop::StopMatcher;
use crate::model::{KvCache, KvChunk, Model};
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
    /// Sessions no job holds. With the ones jobs in progress hold, at most `max_sessions`.
    parked: Vec<Session>,
    /// How many sessions jobs in progress hold.
    held: usize,
    clock: u64,
    step_delay: Option<Duration>,
    test_hooks: bool,
}

/// A job in progress: its session (whose cache is in the model only during the job's steps) and
/// how far it got.
pub(crate) struct Task {
    /// `None` until the first step takes the key's session.
    session: Option<Session>,
    prompt: Vec<u32>,
    /// The next prompt position to run.
    position: usize,
    /// A run of the old cache to move into place once the prefill reaches its position.
    moved: Option<(usize, KvChunk)>,
    logits: Vec<f32>,
    prefill_started: Instant,
    /// Set once the prompt is in the cache.
    decode: Option<Decode>,
    timings: Timings,
}

struct Decode {
    started: Instant,
    sampler: Sampler,
    utf8: Utf8Stream,
    stops: StopMatcher,
    generated: usize,
    /// The last token sampled, which runs at the next step.
    last: u32,
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
        Runner {
            model,
            tokenizer,
            format,
            stop_tokens,
            max_sessions: config.max_sessions.max(1),
            max_cache_bytes: config.session_cache_mib.saturating_mul(1 << 20),
            prefill_chunk: config.prefill_chunk.max(1),
            shifted_reuse_min: config.shifted_reuse_min,
            parked: Vec::new(),
            held: 0,
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

    /// One turn of `task`: with its cache in the model, its setup (on its first turn) and one
    /// prefill chunk or one decode step. `Some` when the job is over.
    fn turn(&mut self, job: &Job, task: &mut Task) -> Option<Result<FinishReason, EngineError>> {
        if let Some(reason) = self.interrupted(job) {
            return Some(Ok(reason.into()));
        }
        if let Some(session) = &mut task.session {
            self.model.replace_cache(std::mem::take(&mut session.cache));
        } else if let Err(error) = self.set_up(job, task) {
            return Some(Err(error));
        }
        let outcome = if task.decode.is_none() { self.prefill_step(job, task) } else { self.decode_step(job, task) };
        if let Some(session) = &mut task.session {
            session.cache = self.model.replace_cache(KvCache::default());
        }
        outcome.transpose()
    }

    /// The first turn's work: the prompt, the key's session in the model, and what of its cache
    /// the prompt keeps.
    fn set_up(&mut self, job: &Job, task: &mut Task) -> Result<(), EngineError> {
        let request = &job.request;
        let mut prompt = self.encode_prompt(request)?;
        let max_tokens = request.max_tokens as usize;
        let context = self.model.context_length();
        let room = context.saturating_sub(max_tokens.min(context / 2)).max(1);
        if prompt.len() > room {
            // Keep the end of the prompt, nearest the cursor.
            prompt.drain(..prompt.len() - room);
        }
        task.timings.prompt_tokens = prompt.len();
        let mut session = self.take_session(&job.key);
        self.model.replace_cache(std::mem::take(&mut session.cache));

        // Reuse the longest common prefix; with everything cached, back off one token so the last
        // prompt token runs again and yields fresh logits.
        let mut common = common_prefix(&session.ids, &prompt);
        if common == prompt.len() {
            common -= 1;
        }
        // Approximate reuse: a long run of the old prompt further on (a FIM prompt's suffix after
        // an edit above it) is moved into place with its keys re-rotated, instead of prefilled.
        task.moved = match find_shifted_run(&session.ids, &prompt, common, self.shifted_reuse_min) {
            Some(run) => {
                let shift = run.to as isize - run.from as isize;
                self.model.cache_extract_shifted(run.from, run.len, shift).map(|chunk| (run.to, chunk))
            }
            None => None,
        };
        session.ids.truncate(common);
        self.model.cache_truncate(common);
        task.timings.cached_tokens = common;
        task.position = common;
        task.prompt = prompt;
        task.session = Some(session);
        task.prefill_started = Instant::now();
        Ok(())
    }

    /// One prefill chunk (after moving a shifted run into place when the prefill has reached it).
    /// After the last, the job ends if it asked for no tokens; else its first token is sampled and
    /// sent at once, from the logits the chunk gave, so that it does not wait for another turn.
    fn prefill_step(&mut self, job: &Job, task: &mut Task) -> Result<Option<FinishReason>, EngineError> {
        let Some(session) = &mut task.session else { return Err(no_session()) };
        if let Some((to, run)) = task.moved.take_if(|(to, _)| *to == task.position) {
            self.model.cache_append(&run)?;
            session.ids.extend_from_slice(&task.prompt[to..to + run.len()]);
            task.position += run.len();
            task.timings.cached_tokens += run.len();
        }
        let end = task.moved.as_ref().map_or(task.prompt.len(), |(to, _)| *to).min(task.position + self.prefill_chunk);
        let chunk = &task.prompt[task.position..end];
        task.logits = self.model.forward(chunk, task.position)?;
        session.ids.extend_from_slice(chunk);
        task.position = end;
        if task.position < task.prompt.len() {
            return Ok(None);
        }
        task.timings.prefill_ms = ms(task.prefill_started.elapsed());
        if job.request.max_tokens == 0 {
            return Ok(Some(FinishReason::Stop));
        }
        task.decode = Some(Decode {
            started: Instant::now(),
            sampler: Sampler::new(job.request.sampling.clone()),
            utf8: Utf8Stream::default(),
            stops: StopMatcher::new(&job.request.stop),
            generated: 0,
            last: 0,
        });
        Ok(self.emit(job, task))
    }

    /// One decode step: the last token sent runs, and the next one is sampled and sent.
    fn decode_step(&mut self, job: &Job, task: &mut Task) -> Result<Option<FinishReason>, EngineError> {
        let (Some(session), Some(decode)) = (&mut task.session, &task.decode) else { return Err(no_session()) };
        task.logits = self.model.forward(&[decode.last], task.position)?;
        task.position += 1;
        session.ids.push(decode.last);
        Ok(self.emit(job, task))
    }

    /// Samples a token from the task's logits and sends its text; `Some` when it ends the job
    /// (then whatever text was held back is sent too).
    fn emit(&self, job: &Job, task: &mut Task) -> Option<FinishReason> {
        let (Some(session), Some(decode)) = (&task.session, &mut task.decode) else { return Some(FinishReason::Stop) };
        let token = decode.sampler.sample(&mut task.logits, &session.ids);
        if decode.generated == 0 {
            task.timings.ttft_ms = ms(job.arrived.elapsed());
        }
        decode.generated += 1;
        decode.last = token;
        if self.stop_tokens.binary_search(&token).is_ok() || self.tokenizer.is_control(token) {
            return Some(self.flush(job, decode, FinishReason::Stop));
        }
        let text = decode.utf8.push(self.tokenizer.token_bytes(token));
        let (text, stopped) = decode.stops.push(&text);
        if !text.is_empty() && !job.sender.send_text(text) {
            return Some(FinishReason::Cancelled);
        }
        if stopped {
            Some(self.flush(job, decode, FinishReason::Stop))
        } else if decode.generated >= job.request.max_tokens as usize || task.position >= self.model.context_length() {
            Some(self.flush(job, decode, FinishReason::Length))
        } else {
            None
        }
    }

    /// Sends the text held back (an unfinished UTF-8 sequence, a possible stop string) at the end
    /// of a job that stopped or reached its length.
    fn flush(&self, job: &Job, decode: &mut Decode, reason: FinishReason) -> FinishReason {
        let rest = decode.utf8.finish();
        let (mut text, stopped) = decode.stops.push(&rest);
        if !stopped {
            text.push_str(&decode.stops.flush());
        }
        if !text.is_empty() {
            job.sender.send_text(text);
        }
        reason
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

    /// Takes `key`'s session for a job, or a fresh one. At most `max_sessions` caches live at
    /// once, held by jobs or parked; the least recently used parked one is recycled first. With a
    /// single session, sessions of one client share it and the common prefix decides alone;
    /// another client's request never reuses it (it starts empty).
    fn take_session(&mut self, key: &Key) -> Session {
        self.clock += 1;
        self.held += 1;
        let mut session = match self.parked.iter().position(|s| s.key == *key) {
            Some(i) => self.parked.swap_remove(i),
            None if self.max_sessions == 1 && !self.parked.is_empty() => {
                let mut session = self.parked.swap_remove(0);
                if session.key.client != key.client {
                    session.ids.clear();
                    session.cache.truncate(0);
                }
                session.key = key.clone();
                session
            }
            None => {
                let recycled = if self.parked.len() + self.held > self.max_sessions { self.evict_lru() } else { None };
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
        session.last_used = self.clock;
        session
    }

    /// Gives back a session a job held, keeping the parked ones within `max_cache_bytes`.
    fn park(&mut self, session: Session) {
        self.held = self.held.saturating_sub(1);
        self.parked.push(session);
        while self.parked.iter().map(|s| s.cache.memory_bytes()).sum::<usize>() > self.max_cache_bytes {
            self.evict_lru();
        }
    }

    fn evict_lru(&mut self) -> Option<Session> {
        let (i, _) = self.parked.iter().enumerate().min_by_key(|(_, s)| s.last_used)?;
        Some(self.parked.swap_remove(i))
    }
}

fn no_session() -> EngineError {
    EngineError::Model("a job's step ran before its setup".into())
}

/// One turn's outcome: the job goes on, or it is over.
pub(crate) enum Step {
    Continue,
    Done(Result<FinishReason, EngineError>),
}

/// What the model thread does with jobs. A trait, so that the thread's loop, its turns and its
/// panic recovery are tested without a model.
pub(crate) trait Worker {
    /// A job in progress, with whatever it keeps between its steps.
    type Task;
    /// How many jobs may be in progress at once; 1 serves them one after another.
    fn max_in_progress(&self) -> usize;
    /// A job's state before its first step.
    fn begin(&mut self, job: &Job) -> Self::Task;
    /// One step of a job: on its first, its setup; then a prefill chunk or a decode step.
    fn step(&mut self, job: &Job, task: &mut Self::Task) -> Step;
    /// The job is over (cancelled from outside included): gives back what its task holds and
    /// says how it ended.
    fn end(&mut self, job: &Job, task: Self::Task, outcome: Result<FinishReason, EngineError>) -> Finish;
    /// Called after `step` panicked: drop what the panic may have left half-written, so the
    /// next steps start clean (the thread goes on without reloading the model).
    fn recover(&mut self, task: Self::Task);
}

impl Worker for Runner {
    type Task = Task;

    /// Each job in progress holds a session, so as many as there are sessions.
    fn max_in_progress(&self) -> usize {
        self.max_sessions
    }

    fn begin(&mut self, _job: &Job) -> Task {
        Task {
            session: None,
            prompt: Vec::new(),
            position: 0,
            moved: None,
            logits: Vec::new(),
            prefill_started: Instant::now(),
            decode: None,
            timings: Timings::default(),
        }
    }

    fn step(&mut self, job: &Job, task: &mut Task) -> Step {
        if self.test_hooks && job.request.prefix.contains(TEST_PANIC_MARKER) {
            injected_panic();
        }
        match self.turn(job, task) {
            None => Step::Continue,
            Some(outcome) => Step::Done(outcome),
        }
    }

    fn end(&mut self, job: &Job, task: Task, outcome: Result<FinishReason, EngineError>) -> Finish {
        let mut timings = task.timings;
        timings.total_ms = ms(job.arrived.elapsed());
        if let Some(decode) = &task.decode {
            let decode_time = decode.started.elapsed().as_secs_f64();
            timings.decode_tokens = decode.generated;
            timings.decode_tokens_per_s = if decode_time > 0.0 { decode.generated as f64 / decode_time } else { 0.0 };
        } else if task.session.is_some() && timings.prefill_ms == 0.0 {
            timings.prefill_ms = ms(task.prefill_started.elapsed());
        }
        let finish = match outcome {
            Ok(reason) => {
                if let Some(session) = task.session {
                    self.park(session);
                }
                Finish { reason, error: None, timings }
            }
            Err(error) => {
                tracing::warn!(%error, "generation failed");
                // The cache may be half-written; the session starts over.
                if task.session.is_some() {
                    self.held = self.held.saturating_sub(1);
                }
                Finish { reason: FinishReason::Error, error: Some(error.to_string()), timings }
            }
        };
        tracing::debug!(
            sequence = job.sequence,
            reason = ?finish.reason,
            prompt_tokens = finish.timings.prompt_tokens,
            cached_tokens = finish.timings.cached_tokens,
            prefill_ms = finish.timings.prefill_ms,
            ttft_ms = finish.timings.ttft_ms,
            decode_tokens = finish.timings.decode_tokens,
            "generation finished"
        );
        finish
    }

    fn recover(&mut self, task: Task) {
        // The panicking job's cache was in the model; the parked ones go too, to be safe. Other
        // jobs in progress keep theirs: they were out of the model.
        if task.session.is_some() {
            self.held = self.held.saturating_sub(1);
        }
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

/// The model thread's loop: starts and steps jobs as the queue's turns say, catching a panic in
/// any step. A panicking job is answered with an error naming the panic, the worker drops its
/// possibly broken state, and the loop serves on, so one bad request never stops the engine.
pub(crate) fn serve_jobs<W: Worker>(worker: &mut W, queue: &Queue) {
    let mut in_progress: Vec<(Job, W::Task)> = Vec::new();
    loop {
        // A job whose consumer went away or that a newer request superseded stops now, not at
        // its next turn.
        while let Some(i) = in_progress.iter().position(|(job, _)| job.is_cancelled()) {
            let (job, task) = in_progress.swap_remove(i);
            end_job(worker, queue, job, task, Ok(FinishReason::Cancelled));
        }
        let Some(turn) = queue.next_turn(worker.max_in_progress()) else { break };
        let i = match turn {
            Turn::Start(job) => {
                // The queue supersedes a key's job before starting its newer one: the older one
                // ends first and gives its session back for the newer one to take.
                while let Some(i) = in_progress.iter().position(|(old, _)| job.key.supersedes(&old.key)) {
                    let (old, task) = in_progress.swap_remove(i);
                    end_job(worker, queue, old, task, Ok(FinishReason::Cancelled));
                }
                let task = worker.begin(&job);
                in_progress.push((*job, task));
                in_progress.len() - 1
            }
            Turn::Step(sequence) => match in_progress.iter().position(|(job, _)| job.sequence == sequence) {
                Some(i) => i,
                None => {
                    queue.done(sequence);
                    continue;
                }
            },
        };
        let (job, task) = &mut in_progress[i];
        let span = tracing::trace_span!("step", sequence = job.sequence);
        let _enter = span.enter();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| worker.step(job, task))) {
            Ok(Step::Continue) => {}
            Ok(Step::Done(outcome)) => {
                let (job, task) = in_progress.swap_remove(i);
                end_job(worker, queue, job, task, outcome);
            }
            Err(panic) => {
                let (job, task) = in_progress.swap_remove(i);
                let message = panic_message(&*panic);
                tracing::error!(
                    sequence = job.sequence,
                    session = job.key.session.as_str(),
                    prefix_chars = job.request.prefix.len(),
                    suffix_chars = job.request.suffix.len(),
                    max_tokens = job.request.max_tokens,
                    "the model thread panicked: {message}; its job's KV cache is dropped and it serves on"
                );
                worker.recover(task);
                queue.done(job.sequence);
                job.sender.finish(Finish {
                    reason: FinishReason::Error,
                    error: Some(format!("the engine panicked: {message}")),
                    timings: Timings { total_ms: ms(job.arrived.elapsed()), ..Timings::default() },
                });
            }
        }
    }
}

fn end_job<W: Worker>(
    worker: &mut W,
    queue: &Queue,
    job: Job,
    task: W::Task,
    outcome: Result<FinishReason, EngineError>,
) {
    let finish = worker.end(&job, task, outcome);
    queue.done(job.sequence);
    job.sender.finish(finish);
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
    /// step for as many steps as `max_tokens` says (1 if 0), a millisecond each, with at most
    /// `max_in_progress` jobs in progress. It records the order of its steps by prefix.
    struct Scripted {
        max_in_progress: usize,
        served: usize,
        recovered: usize,
        steps: Vec<String>,
    }

    impl Worker for Scripted {
        type Task = u32;

        fn max_in_progress(&self) -> usize {
            self.max_in_progress
        }

        fn begin(&mut self, _job: &Job) -> u32 {
            self.served += 1;
            0
        }

        #[allow(clippy::panic)]
        fn step(&mut self, job: &Job, done: &mut u32) -> Step {
            if job.request.prefix == "panic" {
                panic!("scripted failure in job {}", job.sequence);
            }
            std::thread::sleep(Duration::from_millis(1));
            self.steps.push(job.request.prefix.clone());
            job.sender.send_text(".");
            *done += 1;
            if *done >= job.request.max_tokens.max(1) { Step::Done(Ok(FinishReason::Stop)) } else { Step::Continue }
        }

        fn end(&mut self, _job: &Job, _done: u32, outcome: Result<FinishReason, EngineError>) -> Finish {
            match outcome {
                Ok(reason) => Finish { reason, ..Finish::default() },
                Err(error) => {
                    Finish { reason: FinishReason::Error, error: Some(error.to_string()), ..Finish::default() }
                }
            }
        }

        fn recover(&mut self, _done: u32) {
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
            Served::interleaving(capacity, 1)
        }

        /// With up to `max_in_progress` jobs in progress, taking turns step by step.
        fn interleaving(capacity: usize, max_in_progress: usize) -> Served {
            let queue = Arc::new(Queue::new(capacity));
            let thread_queue = Arc::clone(&queue);
            let thread = std::thread::spawn(move || {
                let mut worker = Scripted { max_in_progress, served: 0, recovered: 0, steps: Vec::new() };
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
            let thread = self.thread.take().expect("a thread");
            thread.join().expect("the thread ends normally")
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

    #[tokio::test]
    async fn a_short_request_of_another_key_finishes_while_a_long_one_goes_on() {
        let served = Served::interleaving(8, 4);
        let (a, b) = (Some(ClientId::fresh()), Some(ClientId::fresh()));
        let mut long = served.generate(a, "doc", "long", 400);
        assert!(matches!(long.next_chunk().await, Some(Chunk::Text(_))), "the long job is running");
        let (text, finish) = collect(served.generate(b, "doc", "short", 5)).await;
        assert_eq!((text.as_str(), finish.map(|f| f.reason)), (".....", Some(FinishReason::Stop)));
        let (text, finish) = collect(long).await;
        assert_eq!((text.len(), finish.map(|f| f.reason)), (399, Some(FinishReason::Stop)));
        let worker = served.finish();
        // The short job's steps came between the long one's, one each in turn.
        let first_short = worker.steps.iter().position(|p| p == "short").expect("short ran");
        let last_short = worker.steps.iter().rposition(|p| p == "short").expect("short ran");
        let between: Vec<&str> = worker.steps[first_short..=last_short].iter().map(String::as_str).collect();
        assert_eq!(between, ["short", "long", "short", "long", "short", "long", "short", "long", "short"]);
    }

    #[tokio::test]
    async fn a_panic_in_one_job_leaves_the_others_in_progress_going() {
        let served = Served::interleaving(8, 4);
        let mut long = served.generate(None, "a", "long", 100);
        assert!(matches!(long.next_chunk().await, Some(Chunk::Text(_))));
        let (_, finish) = collect(served.generate(None, "b", "panic", 5)).await;
        assert_eq!(finish.map(|f| f.reason), Some(FinishReason::Error));
        let (text, finish) = collect(long).await;
        assert_eq!((text.len(), finish.map(|f| f.reason)), (99, Some(FinishReason::Stop)));
        let worker = served.finish();
        assert_eq!((worker.served, worker.recovered), (2, 1));
    }

    #[tokio::test]
    async fn with_interleaving_a_newer_request_still_cancels_only_its_own_keys_older_one() {
        let served = Served::interleaving(8, 4);
        let (a, b) = (Some(ClientId::fresh()), Some(ClientId::fresh()));
        let mut first = served.generate(a, "doc", "a1", 400);
        assert!(matches!(first.next_chunk().await, Some(Chunk::Text(_))), "a1 is running");
        let mut other = served.generate(b, "doc", "b1", 100);
        assert!(matches!(other.next_chunk().await, Some(Chunk::Text(_))), "b1 is running beside it");
        let newer = served.generate(a, "doc", "a2", 20);
        assert_eq!(reason(first).await, FinishReason::Cancelled, "the running request of the key");
        assert_eq!(reason(newer).await, FinishReason::Stop);
        assert_eq!(reason(other).await, FinishReason::Stop, "another client's job with the same session");
        served.finish();
    }
}
