//! End to end through the remote engine: `glint engine serve` runs as its own process, and
//! `glint lsp --engine ws://…` gets its completions over one WebSocket. The connection state shows
//! in `glint/status`, and its loss and recovery reach the user once each. With the real default
//! model (when fetched; SKIP otherwise), the remote completion equals the in-process one.

#![allow(clippy::print_stdout)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use glint_engine::fetch;
use glint_tests::{LspClient, ServerOptions, capabilities};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const PROGRAM: &str = env!("CARGO_BIN_EXE_glint-e2e");

/// A running `glint engine serve` and the URL it listens on.
struct EngineServer {
    /// Killed on drop.
    child: Child,
    url: String,
}

impl EngineServer {
    /// Starts the server on `listen` (port 0 for a free one) and waits for its "listening" line.
    async fn start(listen: &str, engine: &str, wait: Duration) -> EngineServer {
        let mut child = Command::new(PROGRAM)
            .args(["engine", "serve", "--listen", listen, "--engine", engine, "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start glint engine serve");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let find = async {
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("[engine serve] {line}");
                if let Some(at) = line.find("listening on ") {
                    return line[at + "listening on ".len()..].trim().to_string();
                }
            }
            panic!("glint engine serve exited without listening");
        };
        let url = tokio::time::timeout(wait, find).await.expect("glint engine serve starts listening");
        // Keep draining stderr so the server never blocks on a full pipe.
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("[engine serve] {line}");
            }
        });
        EngineServer { child, url }
    }

    fn port(&self) -> u16 {
        self.url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a port in the URL")
    }
}

async fn wait_ready(client: &LspClient) -> Value {
    let started = Instant::now();
    loop {
        let status = client.call("glint/status", Value::Null).await;
        match status["engine"]["state"].as_str() {
            Some("ready") => return status,
            Some("failed") => panic!("the engine failed to start: {status}"),
            _ => {}
        }
        assert!(started.elapsed() < glint_tests::timeout(), "the engine did not become ready: {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn inline_params(uri: &str, line: u32, character: u32, trigger: u32) -> Value {
    json!({"textDocument": {"uri": uri}, "position": {"line": line, "character": character}, "context": {"triggerKind": trigger}})
}

fn is_message_containing(message: &Value, text: &str) -> bool {
    message["method"] == "window/showMessage" && message["params"]["message"].as_str().is_some_and(|m| m.contains(text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_lsp_session_completes_through_a_remote_engine_process_and_survives_its_restart() {
    let server = EngineServer::start("127.0.0.1:0", "fake:compute(a, b);\\nmore", Duration::from_secs(30)).await;
    let client = LspClient::spawn(PROGRAM, &["lsp", "--engine", &server.url]);
    client.initialize(capabilities(&["utf-16"]), json!({"debounceMs": 0})).await;
    let status = wait_ready(&client).await;
    assert_eq!(status["engine"]["info"]["kind"], "ws", "{status}");
    assert_eq!(status["engine"]["info"]["model"], "scripted", "the remote model from the server's hello: {status}");
    assert_eq!(status["engine"]["connection"]["status"], "connected", "{status}");

    let uri = "file:///remote/a.rs";
    client.open(uri, "rust", "fn main() {\n    let x = \n}\n").await;
    let result = client.call("textDocument/inlineCompletion", inline_params(uri, 1, 12, 2)).await;
    assert_eq!(result[0]["insertText"], "compute(a, b);", "{result}");

    // The engine server goes away: the user hears it once, and requests fail fast meanwhile.
    let port = server.port();
    drop(server);
    client.wait_for("the loss of the remote engine", |m| is_message_containing(m, "lost the connection")).await;
    let status = client.call("glint/status", Value::Null).await;
    assert_ne!(status["engine"]["connection"]["status"], "connected", "{status}");
    // Another document, so that the typing-through cache cannot answer.
    let other = "file:///remote/b.rs";
    client.open(other, "rust", "fn other() {\n    let y = \n}\n").await;
    let during = client.request("textDocument/inlineCompletion", inline_params(other, 1, 12, 1)).await;
    assert!(
        during["result"].as_array().is_none_or(|items| items.is_empty()) || during["result"].is_null(),
        "no completion while disconnected: {during}"
    );

    // It comes back on the same port: the client reconnects by itself.
    let listen = format!("127.0.0.1:{port}");
    let _server = EngineServer::start(&listen, "fake:compute(a, b);\\nmore", Duration::from_secs(30)).await;
    client.wait_for("the recovery of the remote engine", |m| is_message_containing(m, "reconnected")).await;
    let result = client.call("textDocument/inlineCompletion", inline_params(other, 1, 12, 1)).await;
    assert_eq!(result[0]["insertText"], "compute(a, b);", "{result}");
    let losses = client.inbox().iter().filter(|m| is_message_containing(m, "lost the connection")).count();
    assert_eq!(losses, 1, "the loss is reported once, however many retries");
    let status = client.call("glint/status", Value::Null).await;
    assert_eq!(status["engine"]["connection"]["connects"], 2, "{status}");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_cancels_remote_work_and_stops_the_engine_server() {
    let mut server =
        EngineServer::start("127.0.0.1:0", &format!("fake+delay=20:{}", "z".repeat(500)), Duration::from_secs(30))
            .await;
    let client =
        glint_engine::ws::WsEngine::connect(glint_engine::ws::WsClientConfig::new(&server.url)).expect("client");
    tokio::time::timeout(glint_tests::timeout(), client.connected()).await.expect("connects");
    let mut generation = glint_engine::Engine::generate(&client, glint_engine::GenerateRequest::default());
    let first = tokio::time::timeout(glint_tests::timeout(), generation.next_chunk()).await.expect("a chunk");
    assert!(matches!(first, Some(glint_engine::Chunk::Text(_))), "{first:?}");

    let pid = server.child.id().expect("a running server").to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().await.expect("run kill");
    assert!(sent.success());
    let status =
        tokio::time::timeout(glint_tests::timeout(), server.child.wait()).await.expect("exits").expect("status");
    assert!(status.success(), "a clean exit on SIGTERM: {status:?}");
    let (_, finish) = tokio::time::timeout(glint_tests::timeout(), generation.collect_text()).await.expect("ends");
    assert_eq!(finish.reason, glint_engine::FinishReason::Error);
    assert!(finish.error.unwrap_or_default().contains("shutting down"));
}

fn model_present() -> bool {
    if fetch::resolve_model(None).is_ok() {
        return true;
    }
    println!("SKIP: the default model is not fetched (run `glint model fetch`); remote vs local not compared");
    false
}

async fn complete_once(client: &LspClient) -> String {
    let uri = "file:///real/fib.py";
    let text = "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n    \n\n\nprint(fibonacci(10))\n";
    client.open(uri, "python", text).await;
    let result = client.call("textDocument/inlineCompletion", inline_params(uri, 2, 4, 1)).await;
    result[0]["insertText"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_real_model_the_remote_completion_equals_the_local_one() {
    if !model_present() {
        return;
    }
    glint_tests::set_timeout(Duration::from_secs(180));
    let options = json!({"debounceMs": 0, "maxTokens": 32, "threads": 1});

    let local = LspClient::in_process(ServerOptions::default());
    local
        .initialize(
            capabilities(&["utf-16"]),
            json!({"engine": "local", "debounceMs": 0, "maxTokens": 32, "threads": 1}),
        )
        .await;
    wait_ready(&local).await;
    let local_text = complete_once(&local).await;
    local.shutdown().await;

    let server = EngineServer::start("127.0.0.1:0", "local", Duration::from_secs(120)).await;
    let remote = LspClient::spawn(PROGRAM, &["lsp", "--engine", &server.url]);
    remote.initialize(capabilities(&["utf-16"]), options).await;
    let status = wait_ready(&remote).await;
    println!("remote engine: {}", status["engine"]["info"]);
    let remote_text = complete_once(&remote).await;
    println!("local: {local_text:?}\nremote: {remote_text:?}");
    assert!(!local_text.trim().is_empty(), "the local engine produced nothing");
    assert_eq!(remote_text, local_text, "greedy decoding gives the same completion on both sides");
    remote.shutdown().await;
}
