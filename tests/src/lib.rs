//! A small LSP client for end-to-end tests and benchmarks: drives `glint lsp` either as the real
//! binary over stdio or in-process over a duplex pipe, with the same API.

pub mod cases;
pub mod corpus;
pub mod counting;
pub mod stats;

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

pub use glint_server::ServerOptions;

static TIMEOUT_OVERRIDE: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();

/// Sets the wait for this process (once; later calls do nothing).
pub fn set_timeout(timeout: Duration) {
    let _ = TIMEOUT_OVERRIDE.set(timeout);
}

/// How long a test waits for any single answer before failing: 20 s, or `GLINT_TEST_TIMEOUT_S`
/// (benchmarks with a real model on a busy machine need more).
pub fn timeout() -> Duration {
    if let Some(timeout) = TIMEOUT_OVERRIDE.get() {
        return *timeout;
    }
    let seconds = std::env::var("GLINT_TEST_TIMEOUT_S").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    Duration::from_secs(seconds)
}

/// Waits (up to `timeout()`) until the scripted engine has recorded a cancelled generation, and
/// returns how many it recorded; panics with the engine's log when none comes.
pub async fn wait_engine_cancelled(engine: &glint_engine::fake::FakeEngine) -> usize {
    let until = std::time::Instant::now() + timeout();
    while std::time::Instant::now() < until {
        let cancelled = engine.log().cancelled;
        if cancelled >= 1 {
            return cancelled;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the engine never saw the cancellation: {:?}", engine.log());
}

type Writer = Box<dyn AsyncWrite + Unpin + Send>;

/// One LSP connection to a Glint server.
pub struct LspClient {
    writer: Arc<tokio::sync::Mutex<Option<Writer>>>,
    pending: Arc<Mutex<HashMap<i64, oneshot::Sender<Value>>>>,
    inbox: Arc<Inbox>,
    next_id: AtomicI64,
    child: Option<tokio::process::Child>,
    server: Option<JoinHandle<i32>>,
}

/// Messages from the server that were not answers to our requests.
#[derive(Default)]
pub struct Inbox {
    messages: Mutex<Vec<Value>>,
    arrived: Notify,
}

impl LspClient {
    /// The server in this process, over an in-memory pipe.
    pub fn in_process(options: ServerOptions) -> LspClient {
        let (client_side, server_side) = tokio::io::duplex(1 << 20);
        let (server_read, server_write) = tokio::io::split(server_side);
        let server = tokio::spawn(glint_server::serve(server_read, server_write, options));
        let (read, write) = tokio::io::split(client_side);
        LspClient::connect(read, Box::new(write), None, Some(server))
    }

    /// The real program with `args`, stderr passed through. Tests pass
    /// `env!("CARGO_BIN_EXE_glint-e2e")`, a build of the same program as `glint`.
    pub fn spawn(program: &str, args: &[&str]) -> LspClient {
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start glint");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        LspClient::connect(stdout, Box::new(stdin), Some(child), None)
    }

    fn connect(
        read: impl AsyncRead + Unpin + Send + 'static,
        writer: Writer,
        child: Option<tokio::process::Child>,
        server: Option<JoinHandle<i32>>,
    ) -> LspClient {
        let pending: Arc<Mutex<HashMap<i64, oneshot::Sender<Value>>>> = Arc::default();
        let inbox = Arc::new(Inbox::default());
        let writer = Arc::new(tokio::sync::Mutex::new(Some(writer)));
        tokio::spawn(read_loop(read, Arc::clone(&pending), Arc::clone(&inbox), Arc::clone(&writer)));
        LspClient { writer, pending, inbox, next_id: AtomicI64::new(1), child, server }
    }

    /// Sends raw bytes, for malformed-input tests.
    pub async fn send_raw(&self, bytes: &[u8]) {
        let mut writer = self.writer.lock().await;
        let writer = writer.as_mut().expect("input already closed");
        writer.write_all(bytes).await.expect("write to server");
        writer.flush().await.expect("flush");
    }

    /// Sends one framed JSON message.
    pub async fn send(&self, message: &Value) {
        let body = serde_json::to_vec(message).expect("json");
        let mut framed = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
        framed.extend_from_slice(&body);
        self.send_raw(&framed).await;
    }

    pub async fn notify(&self, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params})).await;
    }

    /// Sends a request and returns its id and a receiver for the whole response message.
    pub async fn start_request(&self, method: &str, params: Value) -> (i64, oneshot::Receiver<Value>) {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().insert(id, tx);
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})).await;
        (id, rx)
    }

    /// Sends a request and waits for the whole response message (`result` or `error`).
    pub async fn request(&self, method: &str, params: Value) -> Value {
        let (_, rx) = self.start_request(method, params).await;
        tokio::time::timeout(timeout(), rx)
            .await
            .unwrap_or_else(|_| panic!("no answer to {method} within {:?}", timeout()))
            .expect("server closed the connection")
    }

    /// Sends a request and returns its `result`, failing the test on an error response.
    pub async fn call(&self, method: &str, params: Value) -> Value {
        let response = self.request(method, params).await;
        assert!(response.get("error").is_none(), "{method} failed: {response}");
        response["result"].clone()
    }

    /// `initialize` + `initialized` with the given client capabilities and options.
    pub async fn initialize(&self, capabilities: Value, options: Value) -> Value {
        let result = self
            .call(
                "initialize",
                json!({"processId": null, "rootUri": null, "capabilities": capabilities, "initializationOptions": options}),
            )
            .await;
        self.notify("initialized", json!({})).await;
        result
    }

    pub async fn open(&self, uri: &str, language_id: &str, text: &str) {
        self.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": language_id, "version": 1, "text": text}}),
        )
        .await;
    }

    /// `glint/documentState`: what the server holds for `uri` (`null` when not open).
    pub async fn document_state(&self, uri: &str, tree: bool) -> Value {
        self.call("glint/documentState", json!({"uri": uri, "tree": tree})).await
    }

    /// Every message the server sent that was not a response to us, so far.
    pub fn inbox(&self) -> Vec<Value> {
        self.inbox.messages.lock().clone()
    }

    /// Waits until a message from the server satisfies `pred`, and returns it.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let wait = async {
            loop {
                let notified = self.inbox.arrived.notified();
                if let Some(found) = self.inbox.messages.lock().iter().find(|m| pred(m)) {
                    return found.clone();
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout(), wait).await.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
    }

    /// `shutdown` + `exit`, then the server's exit code.
    pub async fn shutdown(mut self) -> i32 {
        self.call("shutdown", Value::Null).await;
        self.notify("exit", Value::Null).await;
        self.exit_code().await
    }

    /// Closes our end of the pipe and waits for the server to finish.
    pub async fn exit_code(&mut self) -> i32 {
        let wait = async {
            if let Some(child) = self.child.as_mut() {
                return child.wait().await.ok().and_then(|s| s.code()).unwrap_or(-1);
            }
            match self.server.take() {
                Some(server) => server.await.unwrap_or(-1),
                None => -1,
            }
        };
        tokio::time::timeout(timeout(), wait).await.expect("server did not exit")
    }

    /// The server's process id when it runs as a child process.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(tokio::process::Child::id)
    }

    /// Closes the client's writing end (stdin of the server).
    pub async fn close_input(&self) {
        if let Some(mut writer) = self.writer.lock().await.take() {
            let _ = writer.shutdown().await;
        }
    }
}

async fn read_loop(
    read: impl AsyncRead + Unpin,
    pending: Arc<Mutex<HashMap<i64, oneshot::Sender<Value>>>>,
    inbox: Arc<Inbox>,
    writer: Arc<tokio::sync::Mutex<Option<Writer>>>,
) {
    let mut reader = BufReader::new(read);
    loop {
        let mut length = None;
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some(value) = line.strip_prefix("Content-Length:") {
                length = value.trim().parse::<usize>().ok();
            }
        }
        let Some(length) = length else { return };
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).await.is_err() {
            return;
        }
        let Ok(message) = serde_json::from_slice::<Value>(&body) else { continue };
        let is_response = message.get("method").is_none();
        let id = message.get("id").and_then(Value::as_i64);
        if is_response && let Some(tx) = id.and_then(|id| pending.lock().remove(&id)) {
            let _ = tx.send(message);
            continue;
        }
        // Answer the server's requests as an editor would: progress bars are created, edits applied.
        let answer = match message.get("method").and_then(Value::as_str) {
            Some("window/workDoneProgress/create") if !is_response => Some(Value::Null),
            Some("workspace/applyEdit") if !is_response => Some(json!({"applied": true})),
            _ => None,
        };
        if let (Some(result), Some(id)) = (answer, message.get("id").cloned()) {
            let body = serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": id, "result": result})).unwrap_or_default();
            let mut framed = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
            framed.extend_from_slice(&body);
            if let Some(writer) = writer.lock().await.as_mut() {
                let _ = writer.write_all(&framed).await;
                let _ = writer.flush().await;
            }
        }
        inbox.messages.lock().push(message);
        inbox.arrived.notify_waiters();
    }
}

/// Capabilities of a modern client: UTF-16 only unless `encodings` says otherwise.
pub fn capabilities(encodings: &[&str]) -> Value {
    json!({
        "general": {"positionEncodings": encodings},
        "textDocument": {
            "synchronization": {"dynamicRegistration": false, "didSave": true},
            "inlineCompletion": {"dynamicRegistration": false},
            "codeAction": {"resolveSupport": {"properties": ["edit"]}}
        },
        "window": {"workDoneProgress": true}
    })
}

/// An LSP range object.
pub fn range(l0: u32, c0: u32, l1: u32, c1: u32) -> Value {
    json!({"start": {"line": l0, "character": c0}, "end": {"line": l1, "character": c1}})
}
