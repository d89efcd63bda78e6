//! End to end: AI code actions over the wire with a scripted engine — listing, resolve into exact
//! edits in every encoding, fenced/chatty/broken model output, stale versions, cancellation by a
//! keystroke and by the client, progress only for clients that support it, `glint.rewrite`.

use std::sync::Arc;
use std::time::Duration;

use glint_engine::fake::FakeEngine;
use glint_engine::{GenerateRequest, Task};
use glint_tests::{LspClient, ServerOptions, capabilities, range};
use serde_json::{Value, json};

async fn client_with(engine: FakeEngine, capabilities: Value) -> LspClient {
    let client =
        LspClient::in_process(ServerOptions { injected_engine: Some(Arc::new(engine)), ..ServerOptions::default() });
    client.initialize(capabilities, json!({})).await;
    client
}

/// Replies by action: the instruction's kind picks the answer; fill-ins get `fill`.
fn scripted(doc: &'static str, fix: &'static str, fill: &'static str) -> FakeEngine {
    FakeEngine::with_reply(move |request: &GenerateRequest| {
        Ok(match &request.task {
            Task::Instruct { instruction, .. } if instruction.contains("documentation") => doc.to_string(),
            Task::Instruct { .. } => fix.to_string(),
            Task::Complete => fill.to_string(),
        })
    })
}

fn action_params(uri: &str, range: Value, diagnostics: Value) -> Value {
    json!({"textDocument": {"uri": uri}, "range": range, "context": {"diagnostics": diagnostics, "triggerKind": 1}})
}

/// Applies LSP text edits (one document) to `text`, with positions in `encoding`.
fn apply_edits(text: &str, edits: &[Value], encoding: &str) -> String {
    let offset = |pos: &Value| -> usize {
        let line = pos["line"].as_u64().unwrap_or(0) as usize;
        let character = pos["character"].as_u64().unwrap_or(0) as usize;
        let mut start = 0;
        for (i, l) in text.split_inclusive('\n').enumerate() {
            if i == line {
                let mut units = 0;
                for (byte, c) in l.char_indices() {
                    if units >= character {
                        return start + byte;
                    }
                    units += match encoding {
                        "utf-8" => c.len_utf8(),
                        "utf-16" => c.len_utf16(),
                        _ => 1,
                    };
                }
                return start + l.trim_end_matches('\n').len();
            }
            start += l.len();
        }
        text.len()
    };
    let mut edits: Vec<&Value> = edits.iter().collect();
    edits.sort_by_key(|e| std::cmp::Reverse(offset(&e["range"]["start"])));
    let mut out = text.to_string();
    for edit in edits {
        let (start, end) = (offset(&edit["range"]["start"]), offset(&edit["range"]["end"]));
        out.replace_range(start..end, edit["newText"].as_str().unwrap_or(""));
    }
    out
}

fn edits_for<'a>(action: &'a Value, uri: &str) -> &'a [Value] {
    action["edit"]["changes"][uri].as_array().map(Vec::as_slice).unwrap_or(&[])
}

fn titles(actions: &Value) -> Vec<String> {
    actions.as_array().into_iter().flatten().filter_map(|a| a["title"].as_str().map(str::to_string)).collect()
}

const RUST: &str = "/// 😀 emoji first, so that encodings differ.\npub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n\nfn later(x: u32) -> u32 {\n    todo!()\n}\n";

#[tokio::test]
async fn actions_are_listed_with_data_and_no_edit_and_the_server_advertises_them() {
    let client = LspClient::in_process(ServerOptions {
        injected_engine: Some(Arc::new(FakeEngine::fixed("x"))),
        ..ServerOptions::default()
    });
    let init = client.initialize(capabilities(&["utf-16"]), json!({})).await;
    assert_eq!(init["capabilities"]["codeActionProvider"]["resolveProvider"], true);
    assert!(
        init["capabilities"]["executeCommandProvider"]["commands"]
            .as_array()
            .is_some_and(|c| c.contains(&json!("glint.rewrite")))
    );
    let uri = "file:///w/lib.rs";
    client.open(uri, "rust", RUST).await;
    let actions = client.call("textDocument/codeAction", action_params(uri, range(6, 4, 6, 4), json!([]))).await;
    assert_eq!(titles(&actions), ["Glint: Complete the body of `later`", "Glint: Write the doc comment of `later`"]);
    for action in actions.as_array().into_iter().flatten() {
        assert!(action.get("edit").is_none(), "edits come at resolve: {action}");
        assert_eq!(action["data"]["uri"], uri);
        assert_eq!(action["data"]["version"], 1);
        assert_eq!(action["data"]["range"], range(6, 4, 6, 4));
    }
    // `only` filters by kind; a selection adds the rewrite command.
    let only = json!({"textDocument": {"uri": uri}, "range": range(2, 4, 2, 9),
        "context": {"diagnostics": [], "only": ["refactor.rewrite"]}});
    let actions = client.call("textDocument/codeAction", only).await;
    assert_eq!(
        titles(&actions),
        ["Glint: Update the doc comment of `add`", "Glint: Rewrite the selection…"],
        "the test action is `refactor.glint.test`, not a rewrite"
    );
    assert_eq!(actions[1]["command"]["command"], "glint.rewrite");
    // Clients that resolve every action get the command-only rewrite back as it is.
    let resolved = client.call("codeAction/resolve", actions[1].clone()).await;
    assert_eq!(resolved, actions[1]);
}

#[tokio::test]
async fn resolve_returns_exact_edits_in_every_encoding() {
    for encoding in ["utf-8", "utf-16", "utf-32"] {
        let engine = scripted("Returns the sum of both numbers.", "", "x * 2");
        let client = client_with(engine, capabilities(&[encoding])).await;
        let uri = "file:///w/lib.rs";
        client.open(uri, "rust", RUST).await;
        let actions = client.call("textDocument/codeAction", action_params(uri, range(2, 4, 2, 4), json!([]))).await;
        let document = actions
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["title"].as_str().is_some_and(|t| t.contains("doc comment")));
        let resolved = client.call("codeAction/resolve", document.cloned().unwrap_or_default()).await;
        let text = apply_edits(RUST, edits_for(&resolved, uri), encoding);
        assert!(
            text.starts_with(
                "/// Returns the sum of both numbers.\npub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n"
            ),
            "{encoding}: {text}"
        );

        let actions = client.call("textDocument/codeAction", action_params(uri, range(6, 4, 6, 4), json!([]))).await;
        let body = client.call("codeAction/resolve", actions[0].clone()).await;
        let text = apply_edits(RUST, edits_for(&body, uri), encoding);
        assert!(text.ends_with("fn later(x: u32) -> u32 {\n    x * 2\n}\n"), "{encoding}: {text}");
        // Nothing outside the target changed.
        assert!(text.starts_with(&RUST[..RUST.find("fn later").unwrap_or(0)]));
    }
}

#[tokio::test]
async fn fixes_take_fenced_and_chatty_answers_and_refuse_broken_ones() {
    let text = "fn main() {\n    let x: i32 = \"one\";\n    println!(\"{x}\");\n}\n";
    let diagnostic = json!([{"range": range(1, 17, 1, 22), "message": "mismatched types: expected `i32`, found `&str`", "severity": 1}]);
    let fixed = "fn main() {\n    let x: i32 = 1;\n    println!(\"{x}\");\n}\n";
    let answers = [
        ("fenced", "```rust\nfn main() {\n    let x: i32 = 1;\n    println!(\"{x}\");\n}\n```", true),
        (
            "chatty",
            "Sure! Here is the fixed code:\n\nfn main() {\n    let x: i32 = 1;\n    println!(\"{x}\");\n}\n\nI replaced the string with a number.",
            true,
        ),
        ("broken", "```rust\nfn main() {\n    let x: i32 = (1;\n```", false),
    ];
    for (name, answer, valid) in answers {
        let engine = scripted("", answer, "");
        let client = client_with(engine.clone(), capabilities(&["utf-16"])).await;
        let uri = "file:///w/main.rs";
        client.open(uri, "rust", text).await;
        let actions =
            client.call("textDocument/codeAction", action_params(uri, range(1, 18, 1, 18), diagnostic.clone())).await;
        assert_eq!(actions[0]["kind"], "quickfix.glint.fix", "{name}: {actions}");
        assert_eq!(actions[0]["diagnostics"], diagnostic);
        let response = client.request("codeAction/resolve", actions[0].clone()).await;
        let request = &engine.log().requests[0];
        let Task::Instruct { instruction, .. } = &request.task else { panic!("{name}: a fix is an instruction") };
        assert!(instruction.contains("mismatched types"), "the prompt carries the diagnostic: {instruction}");
        assert!(request.prefix.contains("let x: i32 = \"one\";"), "and the code around it");
        if valid {
            let edited = apply_edits(text, edits_for(&response["result"], uri), "utf-16");
            assert_eq!(edited, fixed, "{name}");
        } else {
            assert_eq!(engine.log().requests.len(), 3, "{name}: an invalid answer is retried");
            let message = response["error"]["message"].as_str().unwrap_or_default().to_string();
            assert!(message.starts_with("Glint could not produce a valid edit"), "{name}: {response}");
            client.wait_for("the message", |m| m["method"] == "window/showMessage").await;
        }
    }
}

#[tokio::test]
async fn a_stale_version_answers_content_modified() {
    let client = client_with(scripted("Adds.", "", ""), capabilities(&["utf-16"])).await;
    let uri = "file:///w/lib.rs";
    client.open(uri, "rust", RUST).await;
    let actions = client.call("textDocument/codeAction", action_params(uri, range(2, 4, 2, 4), json!([]))).await;
    client
        .notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"range": range(2, 4, 2, 4), "text": " "}]}),
        )
        .await;
    let response = client.request("codeAction/resolve", actions[0].clone()).await;
    assert_eq!(response["error"]["code"], -32801, "{response}");
}

/// A doc comment resolve on `file:///w/lib.rs` against an engine slow enough to be interrupted,
/// started and past its progress `begin` (returned last, with the request's id and answer).
async fn slow_resolve() -> (FakeEngine, LspClient, i64, tokio::sync::oneshot::Receiver<Value>, Value) {
    let engine =
        scripted("Adds the two numbers and returns the sum of them.", "", "").with_delay(Duration::from_millis(50));
    let client = client_with(engine.clone(), capabilities(&["utf-16"])).await;
    let uri = "file:///w/lib.rs";
    client.open(uri, "rust", RUST).await;
    let actions = client.call("textDocument/codeAction", action_params(uri, range(2, 4, 2, 4), json!([]))).await;
    let (id, response) = client.start_request("codeAction/resolve", actions[0].clone()).await;
    let begin = client
        .wait_for("progress begin", |m| m["method"] == "$/progress" && m["params"]["value"]["kind"] == "begin")
        .await;
    (engine, client, id, response, begin)
}

#[tokio::test]
async fn a_keystroke_cancels_a_running_resolve_down_to_the_engine() {
    let (engine, client, _, response, _) = slow_resolve().await;
    let uri = "file:///w/lib.rs";
    client
        .notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"range": range(2, 4, 2, 4), "text": " "}]}),
        )
        .await;
    let response = tokio::time::timeout(Duration::from_secs(10), response).await.expect("answered").expect("response");
    assert_eq!(response["error"]["code"], -32801, "{response}");
    glint_tests::wait_engine_cancelled(&engine).await;
    client.wait_for("progress end", |m| m["method"] == "$/progress" && m["params"]["value"]["kind"] == "end").await;
}

#[tokio::test]
async fn the_client_cancels_by_request_or_by_progress_bar() {
    for by_progress in [false, true] {
        let (engine, client, id, response, begin) = slow_resolve().await;
        assert_eq!(begin["params"]["value"]["cancellable"], true);
        if by_progress {
            client.notify("window/workDoneProgress/cancel", json!({"token": begin["params"]["token"]})).await;
        } else {
            client.notify("$/cancelRequest", json!({"id": id})).await;
        }
        let response =
            tokio::time::timeout(Duration::from_secs(10), response).await.expect("answered").expect("response");
        assert!(response.get("error").is_some(), "cancelled: {response}");
        glint_tests::wait_engine_cancelled(&engine).await;
    }
}

#[tokio::test]
async fn progress_goes_only_to_clients_that_support_it() {
    for supported in [true, false] {
        let engine = scripted("", "", "x * 2\n    ").with_delay(Duration::from_millis(1));
        let mut caps = capabilities(&["utf-16"]);
        caps["window"]["workDoneProgress"] = json!(supported);
        let client = client_with(engine, caps).await;
        let uri = "file:///w/lib.rs";
        client.open(uri, "rust", RUST).await;
        let actions = client.call("textDocument/codeAction", action_params(uri, range(6, 4, 6, 4), json!([]))).await;
        client.call("codeAction/resolve", actions[0].clone()).await;
        let inbox = client.inbox();
        let created = inbox.iter().filter(|m| m["method"] == "window/workDoneProgress/create").count();
        let progress: Vec<&str> = inbox
            .iter()
            .filter(|m| m["method"] == "$/progress")
            .filter_map(|m| m["params"]["value"]["kind"].as_str())
            .collect();
        if supported {
            assert_eq!(created, 1);
            assert_eq!(progress.first(), Some(&"begin"));
            assert_eq!(progress.last(), Some(&"end"));
        } else {
            assert_eq!((created, progress.len()), (0, 0), "{inbox:?}");
        }
    }
}

#[tokio::test]
async fn rewrite_command_applies_the_edit_through_the_client() {
    let engine = scripted("", "```python\ntotal = sum(values)\n```", "");
    let client = client_with(engine.clone(), capabilities(&["utf-16"])).await;
    let uri = "file:///w/m.py";
    let text = "def f(values):\n    total = 0\n    for v in values:\n        total += v\n    return total\n";
    client.open(uri, "python", text).await;
    let args = json!([{"uri": uri, "range": range(1, 4, 3, 18), "instruction": "use sum()"}]);
    let result = client.call("workspace/executeCommand", json!({"command": "glint.rewrite", "arguments": args})).await;
    assert_eq!(result["applied"], true);
    let Task::Instruct { instruction, .. } = &engine.log().requests[0].task else { panic!("an instruction") };
    assert!(instruction.contains("use sum()"));
    let apply = client.wait_for("applyEdit", |m| m["method"] == "workspace/applyEdit").await;
    let edits = apply["params"]["edit"]["changes"][uri].as_array().cloned().unwrap_or_default();
    assert_eq!(apply_edits(text, &edits, "utf-16"), "def f(values):\n    total = sum(values)\n    return total\n");

    let bad = client.request("workspace/executeCommand", json!({"command": "glint.rewrite", "arguments": [42]})).await;
    assert_eq!(bad["error"]["code"], -32602, "{bad}");
}

#[tokio::test]
async fn clients_without_resolve_get_commands_or_eager_edits_when_invoked() {
    let caps = json!({"general": {"positionEncodings": ["utf-16"]}, "textDocument": {"codeAction": {}}});
    let engine = scripted("Returns the sum.", "", "");
    let client = client_with(engine.clone(), caps).await;
    let uri = "file:///w/lib.rs";
    client.open(uri, "rust", RUST).await;
    let automatic = json!({"textDocument": {"uri": uri}, "range": range(2, 4, 2, 4), "context": {"diagnostics": [], "triggerKind": 2}});
    let actions = client.call("textDocument/codeAction", automatic).await;
    assert!(engine.log().requests.is_empty(), "automatic requests never run the model");
    assert_eq!(actions[0]["command"]["command"], "glint.applyAction");
    let actions = client.call("textDocument/codeAction", action_params(uri, range(2, 4, 2, 4), json!([]))).await;
    let text = apply_edits(RUST, edits_for(&actions[0], uri), "utf-16");
    assert!(text.starts_with("/// Returns the sum.\npub fn add"), "{text}");
}

/// Capabilities of a client that takes versioned `documentChanges` in a `WorkspaceEdit`.
fn versioned_capabilities() -> Value {
    let mut caps = capabilities(&["utf-16"]);
    caps["workspace"] = json!({"workspaceEdit": {"documentChanges": true}});
    caps
}

/// The edits of a `WorkspaceEdit` in `documentChanges` form, with the version they name.
fn versioned_edits(edit: &Value, uri: &str) -> Option<(i64, Vec<Value>)> {
    let document = edit["documentChanges"].as_array()?.iter().find(|d| d["textDocument"]["uri"] == uri)?;
    Some((document["textDocument"]["version"].as_i64()?, document["edits"].as_array()?.clone()))
}

fn change(uri: &str, version: i32, line: u32, text: &str) -> Value {
    json!({"textDocument": {"uri": uri, "version": version},
        "contentChanges": [{"range": range(line, 0, line, 0), "text": text}]})
}

#[tokio::test]
async fn edits_name_the_version_they_were_computed_for_when_the_client_takes_document_changes() {
    let engine = scripted("Returns the sum of both numbers.", "```python\ntotal = sum(values)\n```", "");
    let client = client_with(engine, versioned_capabilities()).await;
    let uri = "file:///w/lib.rs";
    client.open(uri, "rust", RUST).await;
    client.notify("textDocument/didChange", change(uri, 7, 9, "\n")).await;
    let text = format!("{RUST}\n");
    let actions = client.call("textDocument/codeAction", action_params(uri, range(2, 4, 2, 4), json!([]))).await;
    let resolved = client.call("codeAction/resolve", actions[0].clone()).await;
    assert!(resolved["edit"].get("changes").is_none(), "{resolved}");
    let (version, edits) = versioned_edits(&resolved["edit"], uri).expect("documentChanges");
    assert_eq!(version, 7);
    assert!(apply_edits(&text, &edits, "utf-16").starts_with("/// Returns the sum of both numbers.\npub fn add"));

    // So do the edits that go through `workspace/applyEdit`.
    let py = "file:///w/m.py";
    client.open(py, "python", "def f(values):\n    total = 0\n    return total\n").await;
    let args = json!([{"uri": py, "range": range(1, 4, 1, 13), "instruction": "use sum()"}]);
    client.call("workspace/executeCommand", json!({"command": "glint.rewrite", "arguments": args})).await;
    let apply = client.wait_for("applyEdit", |m| m["method"] == "workspace/applyEdit").await;
    let (version, _) = versioned_edits(&apply["params"]["edit"], py).expect("documentChanges");
    assert_eq!(version, 1);
}

#[tokio::test]
async fn typing_while_an_action_finishes_gets_a_refusal_or_an_edit_for_the_text_it_was_computed_for() {
    let doc = "Adds the two numbers and returns the sum of them.";
    let expected = format!("/// {doc}\npub fn add");
    let (mut refused, mut edits) = (0, 0);
    // Keystrokes land at every moment of the action: while the engine writes, as it finishes,
    // and while the answer is on its way.
    for delay_ms in (0..60).step_by(3) {
        let engine = scripted(doc, "", "").with_delay(Duration::from_millis(2));
        let client = client_with(engine, versioned_capabilities()).await;
        let uri = "file:///w/lib.rs";
        client.open(uri, "rust", RUST).await;
        let actions = client.call("textDocument/codeAction", action_params(uri, range(2, 4, 2, 4), json!([]))).await;
        let (_, response) = client.start_request("codeAction/resolve", actions[0].clone()).await;
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        client.notify("textDocument/didChange", change(uri, 2, 0, "// typed\n")).await;
        let response =
            tokio::time::timeout(Duration::from_secs(10), response).await.expect("answered").expect("response");
        if response.get("error").is_some() {
            assert_eq!(response["error"]["code"], -32801, "{response}");
            refused += 1;
            continue;
        }
        let (version, found) = versioned_edits(&response["result"]["edit"], uri).expect("a versioned edit");
        // Only the text of version 1 was ever asked about, so only it may be named, and the
        // offsets must fit it exactly.
        assert_eq!(version, 1, "{response}");
        assert!(apply_edits(RUST, &found, "utf-16").starts_with(&expected), "{response}");
        edits += 1;
    }
    println!("typing during an action: {refused} refused, {edits} edits for version 1");
}

#[tokio::test]
async fn a_version_that_goes_backwards_keeps_the_text_and_voids_earlier_actions() {
    let client = client_with(scripted("Adds.", "", ""), versioned_capabilities()).await;
    let uri = "file:///w/lib.rs";
    client.open(uri, "rust", RUST).await;
    let actions = client.call("textDocument/codeAction", action_params(uri, range(2, 4, 2, 4), json!([]))).await;
    client.notify("textDocument/didChange", change(uri, 2, 0, "// one\n")).await;
    // Version 1 again, for a different text: the listed action was for the first version 1.
    client.notify("textDocument/didChange", change(uri, 1, 0, "// two\n")).await;
    let state = client.document_state(uri, false).await;
    assert_eq!(state["text"], format!("// two\n// one\n{RUST}"), "the text follows the client");
    assert_eq!(state["version"], 1, "the version is the client's");
    let response = client.request("codeAction/resolve", actions[0].clone()).await;
    assert_eq!(response["error"]["code"], -32801, "an action listed for another text is refused: {response}");
}

/// An engine that writes its reply and then ends the generation `Cancelled`, as the in-process
/// engine does when a newer request of the same session supersedes a running one.
struct SupersededEngine(&'static str);

impl glint_engine::Engine for SupersededEngine {
    fn generate(&self, _request: GenerateRequest) -> glint_engine::Generation {
        let (generation, sender) = glint_engine::Generation::channel();
        sender.send_text(self.0.to_string());
        sender.finish(glint_engine::Finish {
            reason: glint_engine::FinishReason::Cancelled,
            ..glint_engine::Finish::default()
        });
        generation
    }

    fn info(&self) -> glint_engine::EngineInfo {
        glint_engine::EngineInfo { kind: "fake".into(), model: "superseded".into(), context_length: 4096, fim: true }
    }
}

#[tokio::test]
async fn a_generation_the_engine_cancelled_is_never_applied() {
    let engine: Arc<dyn glint_engine::Engine> = Arc::new(SupersededEngine("x * 2"));
    let client = LspClient::in_process(ServerOptions { injected_engine: Some(engine), ..ServerOptions::default() });
    client.initialize(capabilities(&["utf-16"]), json!({})).await;
    let uri = "file:///w/lib.rs";
    client.open(uri, "rust", RUST).await;
    let actions = client.call("textDocument/codeAction", action_params(uri, range(6, 4, 6, 4), json!([]))).await;
    let response = client.request("codeAction/resolve", actions[0].clone()).await;
    // The text is cut off, however complete it looks: the action answers like a superseded one.
    assert_eq!(response["error"]["code"], -32801, "{response}");
}
