//! One in-process engine shared by several sessions and, behind `glint engine serve`, by several
//! clients: a request supersedes only its own session's older ones, sessions take turns, a full
//! queue answers `busy`, and no client sees what another left in the KV cache.
//! Durations below are guards against hangs, never measurements.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{TempDir, TinySpec};
use glint_engine::ws::{ServeConfig, WsClientConfig, WsEngine};
use glint_engine::{Chunk, Engine, Finish, FinishReason, GenerateRequest, Generation, LocalConfig, LocalEngine};
use tokio::net::TcpListener;

const GUARD: Duration = Duration::from_secs(30);

fn tiny_engine(dir: &TempDir, config: LocalConfig) -> LocalEngine {
    let path = TinySpec::llama().write(&dir.0, "tiny.gguf");
    LocalEngine::load(&path, config).unwrap()
}

/// Every prefill chunk and decode step takes 10 ms, so requests overlap.
fn slow() -> LocalConfig {
    LocalConfig { test_step_delay: Some(Duration::from_millis(10)), prefill_chunk: 4, ..LocalConfig::default() }
}

fn request(session: &str, prefix: &str, max_tokens: u32) -> GenerateRequest {
    GenerateRequest { prefix: prefix.into(), max_tokens, session: Some(session.into()), ..GenerateRequest::default() }
}

async fn collect(generation: Generation) -> (String, Finish) {
    tokio::time::timeout(GUARD, generation.collect_text()).await.expect("the generation ends")
}

async fn reason(generation: Generation) -> FinishReason {
    collect(generation).await.1.reason
}

/// Waits for the generation's first text, so it is known to be running on the model.
async fn running(generation: &mut Generation) {
    let chunk = tokio::time::timeout(GUARD, generation.next_chunk()).await.expect("a chunk");
    assert!(matches!(chunk, Some(Chunk::Text(_))), "{chunk:?}");
}

#[tokio::test]
async fn two_sessions_generating_at_once_both_finish() {
    let dir = TempDir::new("shared-two");
    let engine = tiny_engine(&dir, slow());
    let mut a = engine.generate(request("a", "the cat", 20));
    running(&mut a).await;
    let b = engine.generate(request("b", "in the hat", 5));
    assert_eq!(reason(a).await, FinishReason::Length, "b's request does not cancel a's");
    assert_eq!(reason(b).await, FinishReason::Length);
}

#[tokio::test]
async fn a_short_request_of_another_session_is_answered_while_a_long_one_goes_on() {
    let dir = TempDir::new("shared-interleave");
    let engine = tiny_engine(&dir, slow());
    let mut long = engine.generate(request("a", "the cat", 100));
    running(&mut long).await;
    let long = tokio::spawn(async move {
        let (_, finish) = collect(long).await;
        (Instant::now(), finish)
    });
    let (text, finish) = collect(engine.generate(request("b", "in the hat", 5))).await;
    let short_done = Instant::now();
    assert_eq!(finish.reason, FinishReason::Length, "{finish:?}");
    assert!(!text.is_empty());
    let (long_done, finish) = long.await.unwrap();
    // The short one did not wait for the long one to end (it took turns with it step by step),
    // and did not cancel it.
    assert!(short_done < long_done, "the short request was answered only after the long one ended");
    assert_eq!((finish.reason, finish.timings.decode_tokens), (FinishReason::Length, 100), "{finish:?}");
}

#[tokio::test]
async fn a_third_request_of_a_session_cancels_that_sessions_older_one_only() {
    let dir = TempDir::new("shared-third");
    let engine = tiny_engine(&dir, slow());
    let mut a1 = engine.generate(request("a", "the cat", 1000));
    running(&mut a1).await;
    let b = engine.generate(request("b", "in the hat", 5));
    let a2 = engine.generate(request("a", "the cat sat", 5));
    assert_eq!(reason(a1).await, FinishReason::Cancelled, "a's newer request supersedes it at once");
    assert_eq!(reason(b).await, FinishReason::Length, "a's newer request leaves b alone");
    assert_eq!(reason(a2).await, FinishReason::Length);
}

#[tokio::test]
async fn past_the_queue_bound_requests_of_other_sessions_are_refused_as_busy() {
    let dir = TempDir::new("shared-busy");
    // One job in progress at a time, so that every other request waits in the queue.
    let engine = tiny_engine(&dir, LocalConfig { max_sessions: 1, ..slow() });
    let mut first = engine.generate(request("running", "the cat", 1000));
    running(&mut first).await;
    let waiting: Vec<Generation> = (0..100).map(|i| engine.generate(request(&format!("s{i}"), "x", 1))).collect();
    let mut busy = Vec::new();
    drop(first);
    for generation in waiting {
        let (_, finish) = collect(generation).await;
        if finish.reason == FinishReason::Error {
            busy.push(finish.error.unwrap_or_default());
        } else {
            assert_eq!(finish.reason, FinishReason::Length, "{finish:?}");
        }
    }
    let bound = LocalConfig::default().max_waiting;
    assert_eq!(busy.len(), 100 - bound, "{busy:?}");
    assert!(busy[0].contains("busy") && busy[0].contains("try again"), "{}", busy[0]);
}

#[tokio::test]
async fn in_process_the_same_session_key_reuses_its_cache() {
    let dir = TempDir::new("shared-key");
    let engine = tiny_engine(&dir, LocalConfig { max_sessions: 2, ..LocalConfig::default() });
    let key = glint_engine::session_key("file:///home/someone/project/src/lib.rs");
    assert_eq!(key, glint_engine::session_key("file:///home/someone/project/src/lib.rs"), "stable");
    assert!(!key.contains("someone") && key.len() == 32, "{key}");
    assert_ne!(key, glint_engine::session_key("file:///home/someone/project/src/main.rs"));
    let prompt = "fn main() { let x = 1; }";
    engine.generate(request(&key, prompt, 0)).collect_text().await;
    engine.generate(request("other", "something else entirely", 0)).collect_text().await;
    let (_, finish) = collect(engine.generate(request(&key, &format!("{prompt}\n"), 2))).await;
    assert_eq!(finish.timings.cached_tokens, engine.tokenize(prompt).unwrap().len());
}

/// `glint engine serve` on a loopback port, serving `engine` until dropped.
struct Server {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(engine: Arc<dyn Engine>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = glint_engine::ws::serve(listener, engine, ServeConfig::default(), std::future::pending()).await;
        });
        Server { addr, task }
    }

    async fn client(&self) -> WsEngine {
        let client = WsEngine::connect(WsClientConfig::new(format!("ws://{}", self.addr))).expect("client");
        tokio::time::timeout(GUARD, client.connected()).await.expect("connects");
        client
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_with_the_same_session_string_do_not_cancel_each_other() {
    let dir = TempDir::new("shared-ws-two");
    let server = Server::start(Arc::new(tiny_engine(&dir, slow()))).await;
    let (alice, bob) = (server.client().await, server.client().await);
    let mut first = alice.generate(request("file:///src/lib.rs", "the cat", 20));
    running(&mut first).await;
    let second = bob.generate(request("file:///src/lib.rs", "in the hat", 5));
    assert_eq!(reason(first).await, FinishReason::Length, "bob's request does not cancel alice's");
    assert_eq!(reason(second).await, FinishReason::Length);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_connection_with_the_same_session_does_not_see_the_first_ones_cache() {
    let dir = TempDir::new("shared-ws-private");
    let engine = Arc::new(tiny_engine(&dir, LocalConfig::default()));
    let server = Server::start(Arc::clone(&engine) as Arc<dyn Engine>).await;
    let (alice, mallory) = (server.client().await, server.client().await);
    let session = "file:///home/alice/secret.rs";
    let secret = "let password = \"hunter2\"; the cat in the hat";
    let prompt_tokens = engine.tokenize(secret).unwrap().len();
    let (_, finish) = collect(alice.generate(request(session, secret, 0))).await;
    assert_eq!(finish.reason, FinishReason::Stop);

    // A guess of alice's prompt under her session string finds nothing cached.
    let (_, finish) = collect(mallory.generate(request(session, &format!("{secret}!"), 1))).await;
    assert_eq!((finish.reason, finish.timings.cached_tokens), (FinishReason::Length, 0), "{finish:?}");
    // Alice still gets her own cache.
    let (_, finish) = collect(alice.generate(request(session, &format!("{secret}!"), 1))).await;
    assert_eq!(finish.timings.cached_tokens, prompt_tokens, "{finish:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_cache_another_connection_still_starts_cold() {
    let dir = TempDir::new("shared-ws-one");
    let engine = Arc::new(tiny_engine(&dir, LocalConfig { max_sessions: 1, ..LocalConfig::default() }));
    let server = Server::start(Arc::clone(&engine) as Arc<dyn Engine>).await;
    let (alice, mallory) = (server.client().await, server.client().await);
    let secret = "let password = \"hunter2\"; the cat in the hat";
    collect(alice.generate(request("a", secret, 0))).await;
    let (_, finish) = collect(mallory.generate(request("m", &format!("{secret}!"), 1))).await;
    assert_eq!(finish.timings.cached_tokens, 0, "{finish:?}");
    // Within one client, a single cache is still shared by its sessions.
    let (_, finish) = collect(alice.generate(request("b", &format!("{secret}?"), 1))).await;
    assert_eq!(finish.timings.cached_tokens, 0, "mallory's request took the one cache");
    let (_, finish) = collect(alice.generate(request("c", &format!("{secret}?"), 1))).await;
    assert!(finish.timings.cached_tokens > 0, "{finish:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_a_busy_error_that_the_client_reports_clearly() {
    let dir = TempDir::new("shared-ws-busy");
    // One job in progress at a time and one waiting: a third client is refused.
    let engine = tiny_engine(&dir, LocalConfig { max_waiting: 1, max_sessions: 1, ..slow() });
    let server = Server::start(Arc::new(engine)).await;
    let (a, b, c) = (server.client().await, server.client().await, server.client().await);
    let mut long = a.generate(request("doc", "the cat", 1000));
    running(&mut long).await;
    let waiting = b.generate(request("doc", "in the hat", 2));
    // Let b's request reach the engine's queue before c's.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, refused) = collect(c.generate(request("doc", "sat", 2))).await;
    let error = refused.error.unwrap_or_default();
    assert_eq!(refused.reason, FinishReason::Error);
    assert!(error.contains("busy serving other clients") && error.contains("try again"), "{error}");
    drop(long);
    assert_eq!(reason(waiting).await, FinishReason::Length);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_typing_at_once_each_get_their_answers_and_only_cancel_their_own() {
    let dir = TempDir::new("shared-ws-typing");
    let server = Server::start(Arc::new(tiny_engine(&dir, slow()))).await;
    let (alice, bob) = (server.client().await, server.client().await);
    // Each types a key every 10 ms, each key a request of the client's document that supersedes
    // its previous one, as the LSP's are; the last key is left to finish.
    let typing = |client: WsEngine, session: &'static str| async move {
        let mut generations = Vec::new();
        let mut text = String::from("the cat");
        for key in 0..12 {
            text.push(if key % 2 == 0 { ' ' } else { 'a' });
            generations.push(client.generate(request(session, &text, 6)));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut reasons = Vec::new();
        for generation in generations {
            reasons.push(reason(generation).await);
        }
        reasons
    };
    let (a, b) = tokio::join!(typing(alice, "file:///a.rs"), typing(bob, "file:///b.rs"));
    for (who, reasons) in [("alice", a), ("bob", b)] {
        let (last, earlier) = reasons.split_last().unwrap();
        assert!(
            matches!(last, FinishReason::Length | FinishReason::Stop),
            "{who}'s last key gets its answer: {reasons:?}"
        );
        // An earlier key may have finished before the next came, or been superseded by it; the
        // other client's keys are never why.
        assert!(
            earlier.iter().all(|r| matches!(r, FinishReason::Cancelled | FinishReason::Length | FinishReason::Stop)),
            "{who}: {reasons:?}"
        );
    }
}
