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
    client
        .initialize(
            capabilities(&["utf-16"]),
            json!({"engine": "local", "debounceMs": 0, "maxTokens": 48, "earlyAnswerMs": 0}),
        )
        .await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suggestion_after_an_accepted_one_is_ready_before_tab() {
    if !model_present() {
        return;
    }
    let client = ready_client().await;
    let uri = "file:///real/ops.py";
    let text = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    \n";
    client.open(uri, "python", text).await;
    let at = |line: u32, character: u32| json!({"textDocument": {"uri": uri}, "position": {"line": line, "character": character}, "context": {"triggerKind": 2}});
    let first = client.call("textDocument/inlineCompletion", at(9, 4)).await;
    let Some(shown) = first[0]["insertText"].as_str().or(first["items"][0]["insertText"].as_str()).map(str::to_string)
    else {
        panic!("the model suggests a body for mul: {first}");
    };
    // The engine computes the next suggestion in the background while the ghost text shows.
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Tab: the editor inserts the suggestion and asks again at its end.
    let lines: Vec<&str> = shown.split('\n').collect();
    let end_line = 9 + lines.len() as u32 - 1;
    let end_character =
        if lines.len() == 1 { 4 } else { 0 } + lines.last().map_or(0, |l| l.encode_utf16().count() as u32);
    client
        .notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"range": {"start": {"line": 9, "character": 4}, "end": {"line": 9, "character": 4}}, "text": shown}]}),
        )
        .await;
    let second = client.request("textDocument/inlineCompletion", at(end_line, end_character)).await;
    let status = client.call("glint/status", Value::Null).await;
    let last = &status["lastCompletion"];
    println!("after accepting {shown:?}: {second} ({last})");
    if second["result"].is_null() || second["result"] == json!([]) {
        // Nothing follows the accepted text here (the model ended the function): then the
        // speculative answer was empty too, and there is nothing to check.
        assert_ne!(last["cacheHit"], true, "{status}");
        return;
    }
    assert_eq!(last["cacheHit"], true, "the next suggestion came from the background work: {status}");
}
