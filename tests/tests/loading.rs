//! End to end: requests that arrive while the model loads. An invoked completion and a code action
//! resolve wait for the load and succeed; an automatic completion answers nothing meanwhile;
//! clients with work-done progress see "Loading model" begin and end; `glint/status` says loading
//! with the current step (a fetch's progress, the load), then ready.

use std::sync::Arc;
use std::time::{Duration, Instant};

use glint_engine::fake::FakeEngine;
use glint_tests::{LspClient, ServerOptions, capabilities, range};
use serde_json::{Value, json};

/// A scripted engine that takes `LOAD_MS` to start.
const LOAD_MS: u64 = 1500;

async fn loading_client() -> LspClient {
    let client = LspClient::in_process(ServerOptions::default());
    let engine = format!("fake+load={LOAD_MS}:    return a + b\n");
    client.initialize(capabilities(&["utf-16"]), json!({"engine": engine, "debounceMs": 0})).await;
    client
}

/// A server on `engine`, shared with the test so it can read what the engine was asked.
async fn client_on(engine: &Arc<FakeEngine>, settings: Value) -> LspClient {
    let client = LspClient::in_process(ServerOptions {
        injected_engine: Some(Arc::clone(engine) as Arc<dyn glint_engine::Engine>),
        ..ServerOptions::default()
    });
    client.initialize(capabilities(&["utf-16"]), settings).await;
    client
}

/// Asks for code actions at `at`, as VS Code does wherever the cursor rests or a selection is made.
async fn ask_code_actions(client: &LspClient, uri: &str, at: Value) {
    client
        .call(
            "textDocument/codeAction",
            json!({"textDocument": {"uri": uri}, "range": at, "context": {"diagnostics": []}}),
        )
        .await;
}

/// The latest warm-up `engine` was asked for, waiting up to 5 s for one.
async fn last_warm_up(engine: &FakeEngine) -> Option<glint_engine::GenerateRequest> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while engine.log().warmups.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    engine.log().warmups.last().cloned()
}

const PY: &str = "def add(a, b):\n    pass\n";

fn completion(uri: &str, line: u32, character: u32, trigger: u32) -> Value {
    json!({"textDocument": {"uri": uri}, "position": {"line": line, "character": character},
           "context": {"triggerKind": trigger}})
}

#[tokio::test]
async fn a_code_action_picked_while_the_model_loads_waits_and_succeeds() {
    let started = Instant::now();
    let client = loading_client().await;
    let uri = "file:///w/add.py";
    client.open(uri, "python", PY).await;
    let status = client.call("glint/status", Value::Null).await;
    assert_eq!(status["engine"]["state"], "loading", "{status}");

    let actions = client
        .call(
            "textDocument/codeAction",
            json!({"textDocument": {"uri": uri}, "range": range(1, 4, 1, 4), "context": {"diagnostics": []}}),
        )
        .await;
    let body = actions
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["title"].as_str().is_some_and(|t| t.contains("Complete the body")))
        .cloned()
        .unwrap_or_else(|| panic!("a complete-the-body action: {actions}"));
    assert!(started.elapsed() < Duration::from_millis(LOAD_MS), "the action was listed before the load ended");
    let resolved = client.request("codeAction/resolve", body).await;
    assert!(resolved.get("error").is_none(), "the resolve waited for the model instead of failing: {resolved}");
    let edits = resolved["result"]["edit"]["changes"][uri].as_array().cloned().unwrap_or_default();
    assert!(
        edits.iter().any(|e| e["newText"].as_str().is_some_and(|t| t.contains("return a + b"))),
        "the engine's answer is in the edit: {resolved}"
    );
    assert!(started.elapsed() >= Duration::from_millis(LOAD_MS), "the answer came after the load");

    let status = client.call("glint/status", Value::Null).await;
    assert_eq!(status["engine"]["state"], "ready", "{status}");
    let inbox = client.inbox();
    let titles: Vec<&str> = inbox
        .iter()
        .filter(|m| m["method"] == "$/progress" && m["params"]["value"]["kind"] == "begin")
        .filter_map(|m| m["params"]["value"]["title"].as_str())
        .collect();
    assert!(titles.contains(&"Glint: Loading model"), "a loading progress began: {titles:?}");
    let load_token = inbox
        .iter()
        .find(|m| m["params"]["value"]["title"] == "Glint: Loading model")
        .map(|m| m["params"]["token"].clone())
        .unwrap_or_default();
    let ended = inbox.iter().any(|m| m["params"]["token"] == load_token && m["params"]["value"]["kind"] == "end");
    assert!(ended, "the loading progress ended: {inbox:?}");
}

#[tokio::test]
async fn glint_status_says_what_a_loading_engine_is_doing_and_forgets_it_once_ready() {
    let client = loading_client().await;
    // The scripted engine reports one step, as a model fetch reports its parts.
    let deadline = Instant::now() + Duration::from_millis(LOAD_MS);
    let mut status = client.call("glint/status", Value::Null).await;
    while status["engine"]["step"].is_null() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        status = client.call("glint/status", Value::Null).await;
    }
    assert_eq!(status["engine"]["state"], "loading", "{status}");
    assert_eq!(status["engine"]["step"], "loading the scripted engine", "{status}");

    let deadline = Instant::now() + Duration::from_secs(10);
    while status["engine"]["state"] == "loading" && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        status = client.call("glint/status", Value::Null).await;
    }
    assert_eq!(status["engine"]["state"], "ready", "{status}");
    assert!(status["engine"].get("step").is_none(), "no step once ready: {status}");
}

#[tokio::test]
async fn an_invoked_completion_waits_for_the_load_and_an_automatic_one_does_not() {
    let client = loading_client().await;
    let uri = "file:///w/add.py";
    client.open(uri, "python", "def add(a, b):\n    \n").await;

    let automatic = client.request("textDocument/inlineCompletion", completion(uri, 1, 4, 2)).await;
    assert!(automatic.get("error").is_none(), "{automatic}");
    assert!(automatic["result"].is_null() || automatic["result"] == json!([]), "nothing while loading: {automatic}");

    let invoked = client.call("textDocument/inlineCompletion", completion(uri, 1, 4, 1)).await;
    let items = invoked["items"].as_array().or(invoked.as_array()).cloned().unwrap_or_default();
    let text = items.first().and_then(|i| i["insertText"].as_str()).unwrap_or_default();
    assert!(text.contains("return a + b"), "the invoked completion answered after the load: {invoked}");
}

#[tokio::test]
async fn where_the_editor_asks_for_code_actions_the_completion_prompt_is_warmed_up() {
    let engine = Arc::new(FakeEngine::fixed("x"));
    let client = client_on(&engine, json!({})).await;
    let uri = "file:///w/add.py";
    client.open(uri, "python", "def add(a, b):\n    return a\n\nprint(add(1, 2))\n").await;
    // The cursor rests after `return `.
    ask_code_actions(&client, uri, range(1, 11, 1, 11)).await;
    let warm = last_warm_up(&engine).await.unwrap_or_else(|| panic!("no warm-up was asked for"));
    assert!(warm.prefix.ends_with("    return"), "the prompt for that cursor: {:?}", warm.prefix);
    assert!(warm.suffix.starts_with("a\n"), "{:?}", warm.suffix);
    // The completion at that place then asks the engine with the same prompt.
    client.call("textDocument/inlineCompletion", completion(uri, 1, 11, 1)).await;
    let asked = engine.log().requests.last().cloned().unwrap_or_default();
    assert_eq!((asked.prefix, asked.suffix), (warm.prefix.clone(), warm.suffix.clone()));
    // A selection is not a resting cursor: no warm-up for it.
    let before = engine.log().warmups.len();
    ask_code_actions(&client, uri, range(0, 0, 1, 4)).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(engine.log().warmups.len(), before);
}

#[tokio::test]
async fn a_warm_up_asked_for_while_the_model_is_busy_runs_once_it_is_free() {
    // Each chunk of the scripted answer takes 100 ms: the first document's completion keeps the
    // model busy for about half a second.
    let engine = Arc::new(FakeEngine::fixed("abcdefghijklmnopqr").with_delay(Duration::from_millis(100)));
    let client = client_on(&engine, json!({"earlyAnswerMs": 0})).await;
    let busy = "file:///w/busy.py";
    client.open(busy, "python", "x = 1\n").await;
    let (_, running) = client.start_request("textDocument/inlineCompletion", completion(busy, 0, 5, 1)).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The user opens another file meanwhile and the cursor rests in it.
    let uri = "file:///w/add.py";
    client.open(uri, "python", "def add(a, b):\n    return a\n").await;
    ask_code_actions(&client, uri, range(1, 11, 1, 11)).await;
    let _ = running.await;
    let warm =
        last_warm_up(&engine).await.unwrap_or_else(|| panic!("the warm-up was dropped because the model was busy"));
    assert!(warm.prefix.ends_with("    return"), "the prompt for the resting cursor: {:?}", warm.prefix);
}
