//! End to end with the real default model: every AI code action resolves into an edit that
//! parses, on a small sample file. Runs when the model has been fetched (`glint model fetch`; CI
//! does) and prints SKIP otherwise. Prints each action's resolve time and edit.

#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use glint_engine::fetch;
use glint_tests::{LspClient, ServerOptions, capabilities, range};
use serde_json::{Value, json};

const SAMPLE: &str = "def area(width, height):\n    pass\n\n\ndef describe(shape):\n    return \"a shape with %d sides\" % shape.sides\n\n\ndef total(values):\n    result = 0\n    for v in values:\n        result = result + v\n    return result\n";

fn apply(text: &str, edits: &[Value]) -> String {
    // Sample text is ASCII, so UTF-16 offsets are byte offsets within a line.
    let offset = |pos: &Value| -> usize {
        let line = pos["line"].as_u64().unwrap_or(0) as usize;
        let character = pos["character"].as_u64().unwrap_or(0) as usize;
        text.split_inclusive('\n').take(line).map(str::len).sum::<usize>() + character
    };
    let mut out = text.to_string();
    let mut edits: Vec<&Value> = edits.iter().collect();
    edits.sort_by_key(|e| std::cmp::Reverse(offset(&e["range"]["start"])));
    for edit in edits {
        out.replace_range(
            offset(&edit["range"]["start"])..offset(&edit["range"]["end"]),
            edit["newText"].as_str().unwrap_or(""),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_action_produces_an_edit_that_parses() {
    if fetch::resolve_model(None).is_err() {
        println!("SKIP: the default model is not fetched (run `glint model fetch`)");
        return;
    }
    glint_tests::set_timeout(Duration::from_secs(300));
    let client = LspClient::in_process(ServerOptions::default());
    client.initialize(capabilities(&["utf-16"]), json!({"engine": "local", "logLevel": "debug"})).await;
    let started = Instant::now();
    loop {
        let status = client.call("glint/status", Value::Null).await;
        match status["engine"]["state"].as_str() {
            Some("ready") => break,
            Some("failed") => panic!("the local engine failed to start: {status}"),
            _ => {}
        }
        assert!(started.elapsed() < Duration::from_secs(120), "the engine did not become ready: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let uri = "file:///w/shapes.py";
    client.open(uri, "python", SAMPLE).await;
    let diagnostic = json!({"range": range(11, 8, 11, 27), "message": "use the += operator", "severity": 3});
    let cases = [
        ("completeBody", range(1, 4, 1, 4), json!([])),
        ("document", range(5, 4, 5, 4), json!([])),
        ("test", range(5, 4, 5, 4), json!([])),
        ("fix", range(11, 10, 11, 10), json!([diagnostic])),
    ];
    for (kind, at, diagnostics) in cases {
        let params = json!({"textDocument": {"uri": uri}, "range": at, "context": {"diagnostics": diagnostics, "triggerKind": 1}});
        let actions = client.call("textDocument/codeAction", params).await;
        let action = actions
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["data"]["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} action listed: {actions}"))
            .clone();
        let started = Instant::now();
        let response = client.request("codeAction/resolve", action).await;
        if response.get("error").is_some() {
            for log in client.inbox().iter().filter(|m| m["method"] == "window/logMessage") {
                println!("log: {}", log["params"]["message"]);
            }
            panic!("{kind}: {response}");
        }
        let resolved = response["result"].clone();
        let edits = resolved["edit"]["changes"][uri].as_array().cloned().unwrap_or_default();
        assert_eq!(edits.len(), 1, "{kind}: {resolved}");
        let edited = apply(SAMPLE, &edits);
        println!(
            "{kind}: resolved in {:.0} ms, new text {:?}",
            started.elapsed().as_secs_f64() * 1e3,
            edits[0]["newText"]
        );
        check_parses(&client, &edited, kind).await;
    }

    let args = json!([{"uri": uri, "range": range(9, 0, 12, 17), "instruction": "use the built-in sum function"}]);
    let started = Instant::now();
    let result =
        client.request("workspace/executeCommand", json!({"command": "glint.rewrite", "arguments": args})).await;
    println!("rewrite: {:.0} ms, {}", started.elapsed().as_secs_f64() * 1e3, result);
    assert_eq!(result["result"]["applied"], true, "{result}");
    let apply_edit = client.wait_for("applyEdit", |m| m["method"] == "workspace/applyEdit").await;
    let edits = apply_edit["params"]["edit"]["changes"][uri].as_array().cloned().unwrap_or_default();
    println!("rewrite new text {:?}", edits.first().map(|e| e["newText"].clone()));
    check_parses(&client, &apply(SAMPLE, &edits), "rewrite").await;
}

/// Opens `text` as a new document and checks its syntax tree has no errors.
async fn check_parses(client: &LspClient, text: &str, kind: &str) {
    let uri = format!("file:///w/check_{kind}.py");
    client.open(&uri, "python", text).await;
    let state = client.document_state(&uri, true).await;
    let tree = state["tree"].as_str().unwrap_or_default();
    assert!(!tree.contains("ERROR") && !tree.contains("MISSING"), "{kind}: the edited file does not parse:\n{text}");
    assert_ne!(text, SAMPLE, "{kind}: the edit changed nothing");
}
