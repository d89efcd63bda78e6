//! End to end with the real default model: `glint lsp` starts the local engine from its settings,
//! and inline completions and completion items come back over the wire. Runs when the model has
//! been fetched (`glint model fetch`; CI does) and prints SKIP otherwise.

#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use glint_engine::fetch;
use glint_tests::{LspClient, ServerOptions, capabilities};
use serde_json::{Value, json};

fn model_present() -> bool {
    if fetch::resolve_model(None).is_ok() {
        return true;
    }
    println!("SKIP: the default model is not fetched (run `glint model fetch`)");
    false
}

async fn ready_client() -> LspClient {
    glint_tests::set_timeout(Duration::from_secs(180));
    let client = LspClient::in_process(ServerOptions::default());
    client.initialize(capabilities(&["utf-16"]), json!({"engine": "local", "debounceMs": 0, "maxTokens": 48})).await;
    let started = Instant::now();
    loop {
        let status = client.call("glint/status", Value::Null).await;
        match status["engine"]["state"].as_str() {
            Some("ready") => {
                println!(
                    "engine ready in {:.0} ms: {}",
                    started.elapsed().as_secs_f64() * 1e3,
                    status["engine"]["info"]
                );
                return client;
            }
            Some("failed") => panic!("the local engine failed to start: {status}"),
            _ => {}
        }
        assert!(started.elapsed() < Duration::from_secs(120), "the engine did not become ready: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_engine_completes_a_function_body_over_lsp() {
    if !model_present() {
        return;
    }
    let client = ready_client().await;
    let uri = "file:///real/fib.py";
    let text = "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n    \n\n\nprint(fibonacci(10))\n";
    client.open(uri, "python", text).await;
    let started = Instant::now();
    let result = client
        .call(
            "textDocument/inlineCompletion",
            json!({"textDocument": {"uri": uri}, "position": {"line": 2, "character": 4}, "context": {"triggerKind": 1}}),
        )
        .await;
    let elapsed = started.elapsed();
    let insert = result[0]["insertText"].as_str().unwrap_or_default().to_string();
    println!("completion in {:.0} ms: {insert:?}", elapsed.as_secs_f64() * 1e3);
    assert!(!insert.trim().is_empty(), "the real model produced nothing: {result}");
    assert!(
        !insert.contains("print(fibonacci(10))"),
        "post-processing must drop text that repeats the suffix: {insert:?}"
    );
    let status = client.call("glint/status", Value::Null).await;
    println!("last completion: {}", status["lastCompletion"]);
    assert!(
        status["lastCompletion"]["promptTokens"].as_u64().unwrap_or(0) > 0
            || status["lastCompletion"]["cacheHit"] == true
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_engine_answers_completion_items_for_clients_without_inline_completion() {
    if !model_present() {
        return;
    }
    let client = ready_client().await;
    let uri = "file:///real/point.rs";
    let text = "struct Point {\n    x: f64,\n    y: f64,\n}\n\nimpl Point {\n    fn new(x: f64, y: f64) -> Self {\n        Point { x, y }\n    }\n\n    fn distance(&self, other: &Point) -> f64 {\n        let dx = self.x - other.x;\n        let dy = \n";
    client.open(uri, "rust", text).await;
    let result = client
        .call(
            "textDocument/completion",
            json!({"textDocument": {"uri": uri}, "position": {"line": 12, "character": 17}, "context": {"triggerKind": 1}}),
        )
        .await;
    let item = &result["items"][0];
    println!("completion item: {item}");
    let edit = &item["textEdit"];
    assert_eq!(edit["range"]["end"], json!({"line": 12, "character": 17}));
    assert!(!edit["newText"].as_str().unwrap_or_default().trim().is_empty(), "{result}");
}
