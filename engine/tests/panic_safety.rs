//! The in-process engine survives a panic on its model thread: the request that panicked is
//! answered with an error naming the panic, and the next request is served by the same engine.
//! Runs on a tiny random-weight model written by the test, so no download is needed.

#![allow(clippy::unwrap_used)]

mod common;

use common::{TempDir, TinySpec};
use glint_engine::{Engine, FinishReason, GenerateRequest, LocalConfig, LocalEngine, TEST_PANIC_MARKER};

fn request(prefix: &str, max_tokens: u32) -> GenerateRequest {
    GenerateRequest { prefix: prefix.into(), max_tokens, session: Some("a".into()), ..GenerateRequest::default() }
}

#[tokio::test]
async fn a_panic_on_the_model_thread_fails_one_request_and_the_next_one_works() {
    let dir = TempDir::new("panic");
    let path = TinySpec::llama().write(&dir.0, "tiny.gguf");
    let engine = LocalEngine::load(&path, LocalConfig { test_hooks: true, ..LocalConfig::default() }).unwrap();

    let (before, finish) = engine.generate(request("the cat in the hat", 8)).collect_text().await;
    assert_eq!(finish.reason, FinishReason::Length);

    for round in 0..3 {
        let (text, finish) = engine.generate(request(&format!("x {TEST_PANIC_MARKER} y"), 8)).collect_text().await;
        assert_eq!(finish.reason, FinishReason::Error, "round {round}: {finish:?}");
        assert!(text.is_empty());
        let error = finish.error.unwrap_or_default();
        assert!(error.contains("panicked") && error.contains("injected engine panic"), "{error}");

        // Same engine, same thread pool: the next request is served, from a clean cache, with the
        // same deterministic answer as before the panic.
        let (after, finish) = engine.generate(request("the cat in the hat", 8)).collect_text().await;
        assert_eq!(finish.reason, FinishReason::Length, "round {round}: {finish:?}");
        assert_eq!(finish.timings.cached_tokens, 0, "the caches were dropped after the panic");
        assert_eq!(after, before);
        assert!(engine.wait_idle(std::time::Duration::from_secs(10)));
    }
}

#[tokio::test]
async fn without_test_hooks_the_marker_is_plain_text() {
    let dir = TempDir::new("nohooks");
    let path = TinySpec::llama().write(&dir.0, "tiny.gguf");
    let engine = LocalEngine::load(&path, LocalConfig::default()).unwrap();
    let (_, finish) = engine.generate(request(&format!("x {TEST_PANIC_MARKER} y"), 4)).collect_text().await;
    assert_eq!(finish.reason, FinishReason::Length, "{finish:?}");
}
