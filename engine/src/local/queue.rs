//! The model thread's queue: the one place that decides who runs next, and where the one rule of
//! who supersedes whom (`crate::work`) is applied to the model's jobs.
//!
//! Requests are keyed by client (`None` in process, a connection of `glint engine serve`
//! otherwise) and session. A request supersedes only the older requests of its own key: one
//! waiting is replaced in its place in line, one running is told to stop, which it does within a
//! prefill chunk or a decode step. Requests of other keys never wait for a whole job: the model
//! thread keeps several jobs in progress (each with its own KV cache) and the queue hands out
//! turns of one prefill chunk or one decode step. A waiting request starts as soon as there is
//! room among the jobs in progress; clients take turns, and within a client its keys take turns,
//! both to start and for every step. At most `capacity` keys wait; past that a request is refused
//! at once as busy. A warm-up runs only when nothing else is queued or running, supersedes
//! nothing, and yields to any request.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use crate::work::WorkKey;
use crate::{ClientId, EngineError, Finish, FinishReason, GenerateRequest, Generation, GenerationSender, Timings};

/// Whose request it is: the unit of supersession (the rule is [`WorkKey::supersedes`], shared
/// with every other holder of running work), of turns and of KV caches.
pub(crate) type Key = WorkKey;

/// The key of `client`'s `request`: its `session` (empty when it has none: such requests share
/// one key).
pub(crate) fn key_of(client: Option<ClientId>, request: &GenerateRequest) -> Key {
    WorkKey::new(client, request.session.clone().unwrap_or_default())
}

/// One request on its way to the model thread.
pub(crate) struct Job {
    pub(crate) request: GenerateRequest,
    pub(crate) sender: GenerationSender,
    pub(crate) key: Key,
    /// Increases with every job, for logs.
    pub(crate) sequence: u64,
    pub(crate) arrived: Instant,
    /// A warm-up (see `Engine::warm`): it supersedes nothing and yields to every request.
    pub(crate) background: bool,
    /// Set when a newer request of the same key arrives (for a warm-up: any request).
    superseded: Arc<AtomicBool>,
}

impl Job {
    /// Whether the job should stop: its consumer went away or a newer request superseded it.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.superseded.load(Ordering::Acquire) || self.sender.is_cancelled()
    }
}

/// The queue between the engine's handles and its model thread.
pub(crate) struct Queue {
    state: Mutex<State>,
    ready: Condvar,
    capacity: usize,
}

#[derive(Default)]
struct State {
    sequence: u64,
    /// Requests waiting, at most one per key, in the order their keys arrived.
    waiting: VecDeque<Job>,
    /// Clients with requests waiting, the next to be served first. May name a client whose
    /// requests were all cancelled meanwhile; such a turn is skipped.
    turns: VecDeque<Option<ClientId>>,
    warm_up: Option<Job>,
    /// The jobs the model thread has in progress, in the order they started.
    running: Vec<Running>,
    /// Counts turns, so that the one served longest ago goes next.
    turn_clock: u64,
    /// No more jobs will come: the engine was dropped, or its thread is gone.
    closed: bool,
}

struct Running {
    key: Key,
    sequence: u64,
    background: bool,
    superseded: Arc<AtomicBool>,
    /// The turn it last had (its start counts as one).
    last_turn: u64,
}

/// What the model thread does next, as [`Queue::next_turn`] decides.
pub(crate) enum Turn {
    /// Start this job: it is in progress from now until [`Queue::done`]; its first step comes at
    /// once.
    Start(Box<Job>),
    /// One more step (a prefill chunk or a decode step) of the job in progress with this sequence
    /// number.
    Step(u64),
}

impl Queue {
    /// A queue where at most `capacity` keys (at least one) wait.
    pub(crate) fn new(capacity: usize) -> Queue {
        Queue { state: Mutex::new(State::default()), ready: Condvar::new(), capacity: capacity.max(1) }
    }

    /// Queues a request of `client` (`None`: the process's own). It supersedes the older
    /// requests of its key and any warm-up; past the queue's bound it is refused as busy.
    pub(crate) fn submit(&self, client: Option<ClientId>, request: GenerateRequest) -> Result<Generation, EngineError> {
        let mut state = self.state.lock();
        if state.closed {
            return Err(EngineError::Stopped);
        }
        let key = key_of(client, &request);
        for running in state.running.iter().filter(|running| running.background || key.supersedes(&running.key)) {
            running.superseded.store(true, Ordering::Release);
        }
        if let Some(warm_up) = state.warm_up.take() {
            finish_cancelled(&warm_up);
        }
        // Requests whose consumers went away hold no place in line.
        state.waiting.retain(|job| {
            let keep = !job.sender.is_cancelled();
            if !keep {
                finish_cancelled(job);
            }
            keep
        });
        let same_key = state.waiting.iter().position(|job| key.supersedes(&job.key));
        if same_key.is_none() && state.waiting.len() >= self.capacity {
            return Err(EngineError::Busy { waiting: state.waiting.len() });
        }
        let (job, generation) = state.job(request, key, false);
        match same_key {
            Some(i) => finish_cancelled(&std::mem::replace(&mut state.waiting[i], job)),
            None => {
                if !state.turns.contains(&client) {
                    state.turns.push_back(client);
                }
                state.waiting.push_back(job);
            }
        }
        drop(state);
        self.ready.notify_one();
        Ok(generation)
    }

    /// Queues a warm-up, only when nothing is queued or running; `None` otherwise.
    pub(crate) fn submit_warm_up(&self, request: GenerateRequest) -> Option<Generation> {
        let mut state = self.state.lock();
        if state.closed || !state.is_idle() {
            return None;
        }
        let key = key_of(None, &request);
        let (job, generation) = state.job(request, key, true);
        state.warm_up = Some(job);
        drop(state);
        self.ready.notify_one();
        Some(generation)
    }

    /// The model thread's next turn, with at most `max_in_progress` jobs (at least one) in
    /// progress: a waiting request starts as soon as there is room for it, else the job in
    /// progress whose client, and then itself, had a turn longest ago takes a step. Blocks until
    /// there is something to do; `None` once the queue is closed and nothing is left.
    pub(crate) fn next_turn(&self, max_in_progress: usize) -> Option<Turn> {
        let mut state = self.state.lock();
        loop {
            if state.running.len() < max_in_progress.max(1)
                && let Some(job) = state.take_next()
            {
                state.turn_clock += 1;
                let running = Running {
                    key: job.key.clone(),
                    sequence: job.sequence,
                    background: job.background,
                    superseded: job.superseded.clone(),
                    last_turn: state.turn_clock,
                };
                state.running.push(running);
                return Some(Turn::Start(Box::new(job)));
            }
            if let Some(sequence) = state.take_step() {
                return Some(Turn::Step(sequence));
            }
            if state.closed {
                return None;
            }
            self.ready.wait(&mut state);
        }
    }

    /// The job with this sequence number is over (finished, cancelled or failed).
    pub(crate) fn done(&self, sequence: u64) {
        self.state.lock().running.retain(|running| running.sequence != sequence);
    }

    /// Whether nothing is queued or running.
    pub(crate) fn is_idle(&self) -> bool {
        self.state.lock().is_idle()
    }

    /// No more jobs will come; the model thread serves those queued and ends.
    pub(crate) fn close(&self) {
        self.state.lock().closed = true;
        self.ready.notify_all();
    }

    /// The model thread is gone: fail whatever waits, and refuse new work.
    pub(crate) fn stop(&self) {
        let waiting: Vec<Job> = {
            let mut guard = self.state.lock();
            let state = &mut *guard;
            state.closed = true;
            state.running.clear();
            state.turns.clear();
            state.waiting.drain(..).chain(state.warm_up.take()).collect()
        };
        for job in waiting {
            job.sender.finish(Finish {
                reason: FinishReason::Error,
                error: Some(EngineError::Stopped.to_string()),
                timings: Timings::default(),
            });
        }
    }
}

impl State {
    fn job(&mut self, request: GenerateRequest, key: Key, background: bool) -> (Job, Generation) {
        self.sequence += 1;
        let (generation, sender) = Generation::channel();
        let job = Job {
            request,
            sender,
            key,
            sequence: self.sequence,
            arrived: Instant::now(),
            background,
            superseded: Arc::default(),
        };
        (job, generation)
    }

    fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.warm_up.is_none() && self.running.is_empty()
    }

    /// The job in progress to step next: of the client whose last turn is the oldest, the one
    /// whose last turn is the oldest. Its turn is counted.
    fn take_step(&mut self) -> Option<u64> {
        let client_turn = |client: &Option<ClientId>| {
            self.running.iter().filter(|r| r.key.client == *client).map(|r| r.last_turn).max().unwrap_or(0)
        };
        let next = self
            .running
            .iter()
            .enumerate()
            .min_by_key(|(_, r)| (client_turn(&r.key.client), r.last_turn))
            .map(|(i, _)| i)?;
        self.turn_clock += 1;
        let running = &mut self.running[next];
        running.last_turn = self.turn_clock;
        Some(running.sequence)
    }

    /// The oldest waiting request of the client whose turn it is, the client going to the back of
    /// the line if it has more; else the warm-up. Cancelled requests are finished on the way.
    fn take_next(&mut self) -> Option<Job> {
        while let Some(client) = self.turns.pop_front() {
            while let Some(i) = self.waiting.iter().position(|job| job.key.client == client) {
                let Some(job) = self.waiting.remove(i) else { break };
                if job.is_cancelled() {
                    finish_cancelled(&job);
                    continue;
                }
                if self.waiting.iter().any(|job| job.key.client == client) {
                    self.turns.push_back(client);
                }
                return Some(job);
            }
        }
        self.warm_up.take()
    }
}

pub(crate) fn finish_cancelled(job: &Job) {
    job.sender.finish(Finish { reason: FinishReason::Cancelled, error: None, timings: Timings::default() });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Chunk;

    fn request(session: &str, prefix: &str) -> GenerateRequest {
        GenerateRequest { prefix: prefix.into(), session: Some(session.into()), ..GenerateRequest::default() }
    }

    /// The prefixes of the jobs the queue starts one at a time, in order, until it has none.
    fn drain(queue: &Queue) -> Vec<String> {
        queue.close();
        std::iter::from_fn(|| start(queue, 1).inspect(|job| queue.done(job.sequence)))
            .map(|job| job.request.prefix)
            .collect()
    }

    /// The job the queue starts next, with at most `max_in_progress` in progress.
    #[allow(clippy::panic)]
    fn start(queue: &Queue, max_in_progress: usize) -> Option<Job> {
        match queue.next_turn(max_in_progress)? {
            Turn::Start(job) => Some(*job),
            Turn::Step(sequence) => panic!("a step of job {sequence} where a start was expected"),
        }
    }

    fn finished_reason(generation: &mut Generation) -> Option<FinishReason> {
        match futures::FutureExt::now_or_never(generation.next_chunk()) {
            Some(Some(Chunk::Done(finish))) => Some(finish.reason),
            _ => None,
        }
    }

    #[test]
    fn clients_take_turns_then_their_sessions() {
        let queue = Queue::new(16);
        let (a, b) = (Some(ClientId::fresh()), Some(ClientId::fresh()));
        let mut kept = Vec::new();
        for (client, session, prefix) in
            [(a, "1", "a1"), (a, "2", "a2"), (a, "3", "a3"), (b, "1", "b1"), (None, "1", "local")]
        {
            kept.push(queue.submit(client, request(session, prefix)).expect("room"));
        }
        assert_eq!(drain(&queue), ["a1", "b1", "local", "a2", "a3"]);
    }

    #[test]
    fn a_newer_request_replaces_its_keys_waiting_one_in_its_place() {
        let queue = Queue::new(16);
        let mut a1 = queue.submit(None, request("a", "a1")).expect("room");
        let _b = queue.submit(None, request("b", "b1")).expect("room");
        let _a2 = queue.submit(None, request("a", "a2")).expect("room");
        assert_eq!(finished_reason(&mut a1), Some(FinishReason::Cancelled));
        assert_eq!(drain(&queue), ["a2", "b1"], "a keeps its turn");
    }

    #[test]
    fn a_request_supersedes_the_running_job_of_its_key_only() {
        let queue = Queue::new(16);
        let client = Some(ClientId::fresh());
        let _a = queue.submit(client, request("a", "a1")).expect("room");
        let running = start(&queue, 1).expect("a job");
        let _other_client = queue.submit(None, request("a", "same session, other client")).expect("room");
        let _other_session = queue.submit(client, request("b", "other session")).expect("room");
        assert!(!running.is_cancelled());
        let _a2 = queue.submit(client, request("a", "a2")).expect("room");
        assert!(running.is_cancelled());
    }

    #[test]
    fn past_its_bound_the_queue_refuses_other_keys_as_busy_but_takes_a_newer_request_of_a_waiting_key() {
        let queue = Queue::new(2);
        let a = queue.submit(None, request("a", "a")).expect("room");
        let _b = queue.submit(None, request("b", "b")).expect("room");
        let error = queue.submit(None, request("c", "c")).expect_err("full").to_string();
        assert!(error.contains("busy"), "{error}");
        let _b2 = queue.submit(None, request("b", "b2")).expect("replaces b's waiting request");
        // A request whose consumer went away frees its place.
        drop(a);
        let _c = queue.submit(None, request("c", "c")).expect("room again");
        assert_eq!(drain(&queue), ["b2", "c"]);
    }

    #[test]
    fn a_warm_up_runs_only_when_idle_and_yields_to_any_request() {
        let queue = Queue::new(4);
        let mut warm = queue.submit_warm_up(request("w", "warm")).expect("idle");
        assert!(queue.submit_warm_up(request("w", "again")).is_none(), "not idle: a warm-up is queued");
        let _r = queue.submit(Some(ClientId::fresh()), request("x", "request")).expect("room");
        assert_eq!(finished_reason(&mut warm), Some(FinishReason::Cancelled), "a queued warm-up yields");
        let request_job = start(&queue, 4).expect("the request");
        assert!(queue.submit_warm_up(request("w", "busy")).is_none(), "a running request refuses warm-ups");
        queue.done(request_job.sequence);
        assert!(queue.is_idle());

        let queue = Queue::new(4);
        let _warm = queue.submit_warm_up(request("w", "warm")).expect("idle");
        let running = start(&queue, 4).expect("the warm-up");
        assert!(running.background);
        let _r = queue.submit(None, request("other", "request")).expect("room");
        assert!(running.is_cancelled(), "a running warm-up yields to a request of any key");
    }

    #[test]
    fn stopping_fails_what_waits_and_refuses_new_work() {
        let queue = Queue::new(4);
        let mut waiting = queue.submit(None, request("a", "a")).expect("room");
        queue.stop();
        assert_eq!(finished_reason(&mut waiting), Some(FinishReason::Error));
        assert!(matches!(queue.submit(None, request("a", "a")), Err(EngineError::Stopped)));
        assert!(queue.next_turn(4).is_none());
    }

    #[test]
    #[allow(clippy::panic)]
    fn jobs_in_progress_take_turns_step_by_step_clients_first_and_waiting_ones_start_when_there_is_room() {
        let queue = Queue::new(16);
        let (a, b) = (Some(ClientId::fresh()), Some(ClientId::fresh()));
        let mut kept = Vec::new();
        for (client, session, prefix) in [(a, "1", "a1"), (a, "2", "a2"), (b, "1", "b1"), (a, "3", "a3")] {
            kept.push(queue.submit(client, request(session, prefix)).expect("room"));
        }
        // Three may be in progress: a1, b1 and a2 start (clients take turns), a3 waits.
        let mut names = std::collections::HashMap::new();
        let mut turns = Vec::new();
        for _ in 0..9 {
            match queue.next_turn(3).expect("a turn") {
                Turn::Start(job) => {
                    names.insert(job.sequence, job.request.prefix.clone());
                    turns.push(format!("start {}", job.request.prefix));
                }
                Turn::Step(sequence) => turns.push(names[&sequence].clone()),
            }
        }
        // Client b has one job and gets every other step; client a's two share the rest.
        assert_eq!(turns, ["start a1", "start b1", "start a2", "b1", "a1", "b1", "a2", "b1", "a1"]);
        // When a job ends, the waiting one starts at once, and is stepped in its client's turn.
        let a1 = names.iter().find(|(_, name)| *name == "a1").map(|(s, _)| *s).expect("a1");
        queue.done(a1);
        match queue.next_turn(3).expect("a turn") {
            Turn::Start(job) => assert_eq!(job.request.prefix, "a3"),
            Turn::Step(sequence) => panic!("a step of {} before a3 starts", names[&sequence]),
        }
        assert!(matches!(queue.next_turn(3), Some(Turn::Step(s)) if names[&s] == "b1"));
    }
}
