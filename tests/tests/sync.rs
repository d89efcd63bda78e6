//! End to end: document synchronisation over the wire keeps exactly the client's text.

use glint_tests::{LspClient, ServerOptions, capabilities, range};
use serde_json::{Value, json};

async fn client(encodings: &[&str]) -> LspClient {
    let client = LspClient::in_process(ServerOptions::default());
    client.initialize(capabilities(encodings), Value::Null).await;
    client
}

async fn change(client: &LspClient, uri: &str, version: i32, changes: Value) {
    client
        .notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": version}, "contentChanges": changes}),
        )
        .await;
}

#[tokio::test]
async fn a_burst_of_changes_applies_in_order_before_the_next_request() {
    let client = client(&["utf-16"]).await;
    let uri = "file:///burst.rs";
    client.open(uri, "rust", "").await;
    let mut expected = String::new();
    for i in 0..500 {
        let piece = format!("{}", i % 10);
        // Each keystroke appends at the end of the document as the client sees it.
        let line = 0;
        let character = expected.len() as u32;
        change(&client, uri, i + 2, json!([{"range": range(line, character, line, character), "text": piece}])).await;
        expected.push_str(&piece);
    }
    let state = client.document_state(uri, true).await;
    assert_eq!(state["text"], expected);
    assert_eq!(state["version"], 501);
    assert_eq!(state["hasTree"], true);
}

#[tokio::test]
async fn several_changes_per_notification_and_full_replacements() {
    let client = client(&["utf-8"]).await;
    let uri = "file:///multi.py";
    client.open(uri, "python", "def f():\n    pass\n").await;
    change(
        &client,
        uri,
        2,
        json!([
            {"range": range(1, 4, 1, 8), "text": "return 1"},
            {"range": range(0, 4, 0, 5), "text": "g"},
            {"text": "x = 'é'\n"},
            {"range": range(0, 7, 0, 7), "text": "!"},
            {"range": range(0, 9, 0, 9), "text": " # ok"},
        ]),
    )
    .await;
    // In UTF-8, `é` is two bytes: column 7 is before the closing quote, column 9 after it.
    let state = client.document_state(uri, false).await;
    assert_eq!(state["text"], "x = 'é!' # ok\n");
}

#[tokio::test]
async fn positions_past_the_end_clamp_like_vs_code() {
    let client = client(&["utf-16"]).await;
    let uri = "file:///clamp.txt";
    client.open(uri, "plaintext", "ab\r\ncd").await;
    change(&client, uri, 2, json!([{"range": range(0, 50, 0, 60), "text": "!"}])).await;
    change(&client, uri, 3, json!([{"range": range(9, 0, 9, 3), "text": "?"}])).await;
    let state = client.document_state(uri, false).await;
    assert_eq!(state["text"], "ab!\r\ncd?");
}

#[tokio::test]
async fn utf16_offsets_inside_a_surrogate_pair_do_not_split_the_character() {
    let client = client(&["utf-16"]).await;
    let uri = "file:///emoji.ts";
    client.open(uri, "typescript", "const s = '😀';\n").await;
    // Offset 12 is between the two code units of 😀 (which starts at 11).
    change(&client, uri, 2, json!([{"range": range(0, 12, 0, 12), "text": "x"}])).await;
    let state = client.document_state(uri, false).await;
    assert_eq!(state["text"], "const s = 'x😀';\n");
}

#[tokio::test]
async fn the_tree_follows_edits_and_matches_a_fresh_parse() {
    let client = client(&["utf-32"]).await;
    let uri = "file:///tree.go";
    client.open(uri, "go", "package main\n\nfunc main() {\n}\n").await;
    change(&client, uri, 2, json!([{"range": range(3, 0, 3, 0), "text": "\tprintln(\"中文\")\n"}])).await;
    let edited = client.document_state(uri, true).await;
    client.open("file:///fresh.go", "go", edited["text"].as_str().unwrap()).await;
    let fresh = client.document_state("file:///fresh.go", true).await;
    assert!(edited["tree"].as_str().unwrap().contains("call_expression"));
    assert_eq!(edited["tree"], fresh["tree"]);
}

#[tokio::test]
async fn languages_are_chosen_by_language_id_then_extension() {
    let client = client(&["utf-16"]).await;
    for (uri, language_id, has_tree) in [
        ("file:///a.rs", "rust", true),
        ("file:///a.txt", "python", true),
        ("file:///a.tsx", "plaintext", true),
        ("file:///a.java", "", true),
        ("file:///a.cpp", "cpp", true),
        ("file:///a.c", "c", true),
        ("file:///a.js", "javascript", true),
        ("file:///notes.md", "markdown", false),
    ] {
        client.open(uri, language_id, "x").await;
        let state = client.document_state(uri, false).await;
        assert_eq!(state["hasTree"], has_tree, "{uri} as {language_id:?}");
    }
}

#[tokio::test]
async fn close_forgets_the_document() {
    let client = client(&["utf-16"]).await;
    client.open("file:///c.rs", "rust", "fn a() {}").await;
    client.notify("textDocument/didClose", json!({"textDocument": {"uri": "file:///c.rs"}})).await;
    assert_eq!(client.document_state("file:///c.rs", false).await, Value::Null);
}
