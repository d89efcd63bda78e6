//! End to end: bad input gets a clear error or a logged warning, and the server keeps serving.

use glint_tests::{LspClient, ServerOptions, capabilities, range};
use serde_json::{Value, json};

async fn ready() -> LspClient {
    let client = LspClient::in_process(ServerOptions { test_hooks: true, ..ServerOptions::default() });
    client.initialize(capabilities(&["utf-16"]), Value::Null).await;
    client
}

/// The server still answers a normal request.
async fn assert_alive(client: &LspClient) {
    let status = client.call("glint/status", Value::Null).await;
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn malformed_json_gets_a_parse_error_and_the_server_goes_on() {
    let client = ready().await;
    let body = b"{\"jsonrpc\": \"2.0\", \"id\": 7, \"method\": ";
    client.send_raw(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes()).await;
    client.send_raw(body).await;
    let error = client.wait_for("a parse error", |m| m["error"]["code"] == -32700).await;
    assert_eq!(error["id"], Value::Null);
    assert_alive(&client).await;
}

#[tokio::test]
async fn a_valid_json_that_is_not_a_message_is_an_invalid_request() {
    let client = ready().await;
    let body = b"[1, 2, 3]";
    client.send_raw(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes()).await;
    client.send_raw(body).await;
    client.wait_for("an error response", |m| m.get("error").is_some()).await;
    assert_alive(&client).await;
}

#[tokio::test]
async fn a_wrong_content_length_does_not_kill_the_server() {
    let client = ready().await;
    // Declares more bytes than the body has: the next message's header is swallowed into it.
    let bad = br#"{"jsonrpc":"2.0","method":"initialized","params":{}}"#;
    client.send_raw(format!("Content-Length: {}\r\n\r\n", bad.len() + 10).as_bytes()).await;
    client.send_raw(bad).await;
    client.send_raw(b"garbage!!!").await;
    assert_alive(&client).await;
    // Declares fewer bytes than the body has: the tail is garbage before the next header.
    client.send_raw(format!("Content-Length: {}\r\n\r\n", bad.len() - 5).as_bytes()).await;
    client.send_raw(bad).await;
    assert_alive(&client).await;
}

#[tokio::test]
async fn a_missing_header_is_skipped() {
    let client = ready().await;
    client.send_raw(b"Content-Type: application/json\r\n\r\n{}").await;
    assert_alive(&client).await;
}

#[tokio::test]
async fn unknown_requests_are_method_not_found_and_unknown_notifications_are_ignored() {
    let client = ready().await;
    let response = client.request("glint/noSuchThing", json!({})).await;
    assert_eq!(response["error"]["code"], -32601);
    client.notify("$/noSuchNotification", json!({})).await;
    client.notify("workspace/somethingNew", json!({})).await;
    assert_alive(&client).await;
}

#[tokio::test]
async fn requests_before_initialize_are_refused() {
    let client = LspClient::in_process(ServerOptions::default());
    let response = client.request("glint/status", Value::Null).await;
    assert_eq!(response["error"]["code"], -32002, "{response}");
    client.initialize(capabilities(&["utf-16"]), Value::Null).await;
    assert_alive(&client).await;
}

#[tokio::test]
async fn wrong_params_are_invalid_params() {
    let client = ready().await;
    let response = client.request("glint/documentState", json!({"uri": 42})).await;
    assert_eq!(response["error"]["code"], -32602, "{response}");
    client.notify("textDocument/didChange", json!({"textDocument": "nope"})).await;
    assert_alive(&client).await;
}

#[tokio::test]
async fn edits_to_unopened_documents_are_ignored_with_a_warning() {
    let client = ready().await;
    client
        .notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": "file:///ghost.rs", "version": 2},
                   "contentChanges": [{"range": range(0, 0, 0, 0), "text": "x"}]}),
        )
        .await;
    assert_eq!(client.document_state("file:///ghost.rs", false).await, Value::Null);
    assert_alive(&client).await;
}

#[tokio::test]
async fn stale_versions_still_apply_so_the_text_follows_the_client() {
    let client = ready().await;
    let uri = "file:///stale.rs";
    client.open(uri, "rust", "ab").await;
    client
        .notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": 1}, "contentChanges": [{"range": range(0, 2, 0, 2), "text": "c"}]}),
        )
        .await;
    let state = client.document_state(uri, false).await;
    assert_eq!(state["text"], "abc");
    assert_eq!(state["version"], 1);
}

#[tokio::test]
async fn out_of_range_and_reversed_ranges_never_corrupt_the_document() {
    let client = ready().await;
    let uri = "file:///range.rs";
    client.open(uri, "rust", "fn a() {}\n").await;
    for (version, edit) in [
        (2, json!({"range": range(u32::MAX, u32::MAX, u32::MAX, u32::MAX), "text": "// end\n"})),
        (3, json!({"range": range(0, 9, 0, 3), "text": "b"})),
    ] {
        client
            .notify(
                "textDocument/didChange",
                json!({"textDocument": {"uri": uri, "version": version}, "contentChanges": [edit]}),
            )
            .await;
    }
    let state = client.document_state(uri, true).await;
    assert_eq!(state["text"], "fn b\n// end\n");
    assert_eq!(state["hasTree"], true);
}

#[tokio::test]
async fn binary_and_huge_documents_are_kept_without_a_tree() {
    let client = ready().await;
    client.open("file:///bin.c", "c", "int x;\0\0\u{1}").await;
    let state = client.document_state("file:///bin.c", false).await;
    assert_eq!(state["hasTree"], false);
    assert_eq!(state["text"], "int x;\0\0\u{1}");
    let huge = "x = 1\n".repeat(1_000_000);
    client.open("file:///huge.py", "python", &huge).await;
    let state = client.document_state("file:///huge.py", false).await;
    assert_eq!(state["hasTree"], false);
    assert_eq!(state["text"].as_str().map(str::len), Some(huge.len()));
}

#[tokio::test]
async fn a_panicking_handler_answers_internal_error_and_the_server_survives() {
    let client = ready().await;
    let response = client.request("glint/debugPanic", Value::Null).await;
    assert_eq!(response["error"]["code"], -32603, "{response}");
    assert_alive(&client).await;
}

#[tokio::test]
async fn invalid_settings_show_a_message_naming_the_key_and_defaults_stay() {
    let client = LspClient::in_process(ServerOptions::default());
    client.initialize(capabilities(&["utf-16"]), json!({"contextTokens": "big", "debounceMs": 5})).await;
    let message = client.wait_for("a showMessage", |m| m["method"] == "window/showMessage").await;
    assert!(message["params"]["message"].as_str().unwrap().contains("contextTokens"), "{message}");
    let status = client.call("glint/status", Value::Null).await;
    assert_eq!(status["settings"]["contextTokens"], 1024);
    assert_eq!(status["settings"]["debounceMs"], 5);
    client
        .notify(
            "workspace/didChangeConfiguration",
            json!({"settings": {"glint": {"logLevel": "chatty", "maxTokens": 64}}}),
        )
        .await;
    client
        .wait_for("a showMessage about logLevel", |m| {
            m["method"] == "window/showMessage"
                && m["params"]["message"].as_str().is_some_and(|s| s.contains("logLevel"))
        })
        .await;
    let status = client.call("glint/status", Value::Null).await;
    assert_eq!(status["settings"]["maxTokens"], 64);
    assert_eq!(status["settings"]["logLevel"], "info");
}
