//! End to end: the server holds at most 1,000 open documents. One opened past the limit is not
//! held (no AI features), its changes are ignored without touching any other document, and once a
//! document closes the next open is held again.

use std::sync::Arc;

use glint_engine::fake::FakeEngine;
use glint_tests::{LspClient, ServerOptions, capabilities, range};
use serde_json::json;

fn uri(i: usize) -> String {
    format!("file:///w/src/m{i}.py")
}

#[tokio::test]
async fn documents_past_the_limit_are_not_held_and_nothing_else_changes() {
    let client = LspClient::in_process(ServerOptions {
        injected_engine: Some(Arc::new(FakeEngine::fixed("x"))),
        ..ServerOptions::default()
    });
    client.initialize(capabilities(&["utf-16"]), json!({})).await;
    for i in 0..=1000 {
        client.open(&uri(i), "python", &format!("x{i} = {i}\n")).await;
    }
    assert_eq!(client.document_state(&uri(999), false).await["text"], "x999 = 999\n");
    assert!(client.document_state(&uri(1000), false).await.is_null(), "the 1001st document is not held");

    // Its changes are ignored; the held documents are as they were.
    let change = json!({"textDocument": {"uri": uri(1000), "version": 2},
        "contentChanges": [{"range": range(0, 0, 0, 0), "text": "y = 1\n"}]});
    client.notify("textDocument/didChange", change).await;
    assert!(client.document_state(&uri(1000), false).await.is_null());
    assert_eq!(client.document_state(&uri(0), false).await["text"], "x0 = 0\n");
    let completion = client
        .request(
            "textDocument/inlineCompletion",
            json!({"textDocument": {"uri": uri(1000)}, "position": {"line": 0, "character": 0},
                "context": {"triggerKind": 1}}),
        )
        .await;
    assert!(completion.get("error").is_none(), "no AI for it, but no error either: {completion}");

    // One closes; the next open is held.
    client.notify("textDocument/didClose", json!({"textDocument": {"uri": uri(0)}})).await;
    client.notify("textDocument/didClose", json!({"textDocument": {"uri": uri(1000)}})).await;
    client.open(&uri(1000), "python", "z = 3\n").await;
    assert_eq!(client.document_state(&uri(1000), false).await["text"], "z = 3\n");
}
