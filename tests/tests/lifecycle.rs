//! End to end: the server's lifecycle over the wire, encoding negotiation, the command line.

use glint_tests::{LspClient, ServerOptions, capabilities};
use serde_json::{Value, json};

const GLINT: &str = env!("CARGO_BIN_EXE_glint-e2e");

#[tokio::test]
async fn initialize_negotiates_the_clients_preferred_encoding_and_incremental_sync() {
    for (offered, expected) in [
        (vec!["utf-8", "utf-32", "utf-16"], "utf-8"),
        (vec!["utf-32", "utf-16"], "utf-32"),
        (vec!["utf-16"], "utf-16"),
        (vec![], "utf-16"),
    ] {
        let client = LspClient::in_process(ServerOptions::default());
        let result = client.initialize(capabilities(&offered), Value::Null).await;
        assert_eq!(result["capabilities"]["positionEncoding"], expected, "offered {offered:?}");
        assert_eq!(result["capabilities"]["textDocumentSync"]["change"], 2, "incremental sync");
        assert_eq!(result["capabilities"]["textDocumentSync"]["openClose"], true);
        assert_eq!(result["serverInfo"]["name"], "glint");
        assert_eq!(client.shutdown().await, 0);
    }
}

#[tokio::test]
async fn a_client_without_position_encodings_gets_utf16() {
    let client = LspClient::in_process(ServerOptions::default());
    let result = client.initialize(json!({}), Value::Null).await;
    assert_eq!(result["capabilities"]["positionEncoding"], "utf-16");
}

#[tokio::test]
async fn the_binary_exits_zero_after_shutdown_and_exit() {
    let client = LspClient::spawn(GLINT, &["lsp"]);
    client.initialize(capabilities(&["utf-16"]), Value::Null).await;
    assert_eq!(client.shutdown().await, 0);
}

#[tokio::test]
async fn the_binary_exits_one_on_exit_without_shutdown() {
    let mut client = LspClient::spawn(GLINT, &["lsp"]);
    client.initialize(capabilities(&["utf-16"]), Value::Null).await;
    client.notify("exit", Value::Null).await;
    assert_eq!(client.exit_code().await, 1);
}

#[tokio::test]
async fn the_binary_exits_when_stdin_closes() {
    let mut client = LspClient::spawn(GLINT, &["lsp"]);
    client.initialize(capabilities(&["utf-16"]), Value::Null).await;
    client.close_input().await;
    assert_eq!(client.exit_code().await, 1);
}

#[test]
fn version_and_help_work() {
    let version = std::process::Command::new(GLINT).arg("--version").output().unwrap();
    assert!(version.status.success());
    assert!(String::from_utf8_lossy(&version.stdout).contains(env!("CARGO_PKG_VERSION")));
    let help = std::process::Command::new(GLINT).arg("--help").output().unwrap();
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("lsp"), "{help}");
}

/// With debug logging on, every byte on stdout must still be a framed protocol message.
#[test]
fn stdout_carries_only_protocol_even_with_debug_logs() {
    use std::io::{Read, Write};
    let frame = |message: Value| {
        let body = serde_json::to_vec(&message).unwrap();
        let mut framed = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
        framed.extend_from_slice(&body);
        framed
    };
    let mut child = std::process::Command::new(GLINT)
        .args(["lsp", "--log-level", "debug"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    // Like every real client, wait for the initialize result before sending anything else.
    stdin
        .write_all(&frame(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}})))
        .unwrap();
    let mut first = Vec::new();
    let mut byte = [0u8; 1];
    while !first.ends_with(b"\"id\":1}") {
        stdout.read_exact(&mut byte).unwrap();
        first.push(byte[0]);
    }
    for message in [
        json!({"jsonrpc": "2.0", "method": "initialized", "params": {}}),
        json!({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
            "uri": "file:///a.rs", "languageId": "rust", "version": 1, "text": "fn main() {}\n"}}}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "shutdown"}),
        json!({"jsonrpc": "2.0", "method": "exit"}),
    ] {
        stdin.write_all(&frame(message)).unwrap();
    }
    drop(stdin);
    let mut all = first;
    stdout.read_to_end(&mut all).unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(!output.stderr.is_empty(), "debug logging should write to stderr");
    let mut rest = &all[..];
    let mut ids = Vec::new();
    while !rest.is_empty() {
        let text = String::from_utf8_lossy(rest);
        let header_end = text.find("\r\n\r\n").expect("a header");
        let length: usize =
            text[..header_end].strip_prefix("Content-Length: ").expect("Content-Length").parse().unwrap();
        let body = &rest[header_end + 4..header_end + 4 + length];
        let message: Value = serde_json::from_slice(body).expect("a JSON body");
        ids.extend(message.get("id").cloned());
        rest = &rest[header_end + 4 + length..];
    }
    assert_eq!(ids, [json!(1), json!(2)], "both responses, and nothing else with an id");
}
