//! End to end with the real default model: a panic on the in-process engine's model thread
//! (forced through the test hook) fails only the request that caused it; the server keeps serving
//! and the same engine answers the next completion. Runs when the model has been fetched and
//! prints SKIP otherwise; `glint-engine`'s `panic_safety` test proves the same on a tiny model.

#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::Duration;

use glint_engine::{Engine, FinishReason, GenerateRequest, LocalConfig, LocalEngine, TEST_PANIC_MARKER, fetch};
use glint_tests::{LspClient, ServerOptions, capabilities};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_thread_panic_fails_one_completion_and_the_next_one_works() {
    let Ok(path) = fetch::resolve_model(None) else {
        println!("SKIP: the default model is not fetched (run `glint model fetch`)");
        return;
    };
    glint_tests::set_timeout(Duration::from_secs(180));
    let engine =
        Arc::new(LocalEngine::load(&path, LocalConfig { test_hooks: true, ..LocalConfig::default() }).expect("load"));
    let client = LspClient::in_process(ServerOptions {
        injected_engine: Some(Arc::clone(&engine) as Arc<dyn Engine>),
        ..ServerOptions::default()
    });
    client.initialize(capabilities(&["utf-16"]), json!({"debounceMs": 0, "maxTokens": 16})).await;
    let uri = "file:///p/panic.py";
    client.open(uri, "python", &format!("# {TEST_PANIC_MARKER}\ndef add(a, b):\n    return ")).await;
    let params =
        json!({"textDocument": {"uri": uri}, "position": {"line": 2, "character": 11}, "context": {"triggerKind": 1}});
    let response = client.request("textDocument/inlineCompletion", params.clone()).await;
    assert!(response.get("error").is_none(), "an engine failure is no protocol error: {response}");
    assert_eq!(response["result"], Value::Null, "the panicking generation shows nothing: {response}");

    // The marker goes; the same engine serves the next completion over LSP and directly.
    client
        .notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"text": "# add two numbers\ndef add(a, b):\n    return "}]}),
        )
        .await;
    let response = client.request("textDocument/inlineCompletion", params).await;
    assert!(response.get("error").is_none(), "{response}");
    let status = client.call("glint/status", Value::Null).await;
    assert_eq!(status["engine"]["state"], "ready");
    let request =
        GenerateRequest { prefix: "def add(a, b):\n    return".into(), max_tokens: 4, ..GenerateRequest::default() };
    let (text, finish) = engine.generate(request).collect_text().await;
    println!("after the panic the engine wrote {text:?} ({:?})", finish.reason);
    assert!(matches!(finish.reason, FinishReason::Stop | FinishReason::Length), "{finish:?}");
}
