//! Glint's HTTP engine against a real existing engine: llama.cpp's server as packaged by
//! `llama-cpp-python[server]` (`python -m llama_cpp.server`), serving the default model on a
//! loopback port with an OpenAI-compatible `/v1/completions`.
//!
//! Runs when the Python (env `GLINT_LLAMA_PYTHON`, else `~/.cache/glint-venv/bin/python`) can
//! import `llama_cpp.server` and the default model is fetched; prints SKIP otherwise. `.ci/run`
//! installs both.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use glint_engine::{Chunk, Engine, FinishReason, GenerateRequest, HttpConfig, HttpEngine};
use glint_tests::{LspClient, capabilities};
use serde_json::{Value, json};

/// How long the server may take to load the model and answer.
const READY: Duration = Duration::from_secs(180);

/// A running `llama_cpp.server`, killed when dropped (also when a test panics).
struct LlamaServer {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl LlamaServer {
    /// Starts the server when its Python and the model are present; `None` (with a printed SKIP)
    /// when they are not.
    fn start() -> Option<LlamaServer> {
        let python = std::env::var_os("GLINT_LLAMA_PYTHON")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/glint-venv/bin/python")));
        let Some(python) = python.filter(|p| p.exists()) else {
            println!("SKIP: no Python with llama-cpp-python (set GLINT_LLAMA_PYTHON or create ~/.cache/glint-venv)");
            return None;
        };
        let Ok(model) = glint_engine::fetch::resolve_model(None) else {
            println!("SKIP: the default model is not fetched (run `glint model fetch`)");
            return None;
        };
        let import = Command::new(&python).args(["-c", "import llama_cpp.server.app"]).output();
        if !import.as_ref().is_ok_and(|o| o.status.success()) {
            let why = import.map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string()).unwrap_or_default();
            println!(
                "SKIP: `import llama_cpp.server` fails with {} (pip install 'llama-cpp-python[server]'): {why}",
                python.display()
            );
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = std::env::temp_dir().join(format!("glint-llama-server-{}-{port}.log", std::process::id()));
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new(&python)
            .args(["-m", "llama_cpp.server", "--host", "127.0.0.1", "--n_ctx", "2048", "--n_threads", "2"])
            .arg("--port")
            .arg(port.to_string())
            .arg("--model")
            .arg(&model)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .unwrap();
        let mut server = LlamaServer { child, port, log };
        server.wait_ready();
        Some(server)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `GET /v1/models` until it answers 200, within `READY`.
    fn wait_ready(&mut self) {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("llama_cpp.server exited with {status}:\n{}", self.log_text());
            }
            if self.models_answer() {
                println!("llama_cpp.server ready on port {} in {:.1} s", self.port, started.elapsed().as_secs_f64());
                return;
            }
            assert!(started.elapsed() < READY, "llama_cpp.server not ready within {READY:?}:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn models_answer(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else { return false };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let request = format!("GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n", self.port);
        if stream.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn request(max_tokens: u32) -> GenerateRequest {
    GenerateRequest {
        prefix: "def add(a, b):\n    \"\"\"Return the sum of a and b.\"\"\"\n    return".into(),
        path: Some("math_utils.py".into()),
        language: Some("python".into()),
        max_tokens,
        deadline_ms: Some(120_000),
        ..GenerateRequest::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_engine_streams_and_cancels_against_llama_cpp() {
    let Some(server) = LlamaServer::start() else { return };
    let engine = HttpEngine::new(HttpConfig { url: server.url(), ..HttpConfig::default() }).unwrap();

    let started = Instant::now();
    let mut generation = engine.generate(GenerateRequest { stop: vec!["\n".into()], ..request(16) });
    let mut pieces = Vec::new();
    let finish = loop {
        match tokio::time::timeout(READY, generation.next_chunk()).await.expect("no answer from llama.cpp") {
            Some(Chunk::Text(text)) => pieces.push(text),
            Some(Chunk::Done(finish)) => break finish,
            None => panic!("the generation ended without a finish"),
        }
    };
    let text = pieces.concat();
    println!(
        "llama.cpp streamed {:?} in {} chunks ({:.0} ms, first chunk {:.0} ms)",
        text,
        pieces.len(),
        started.elapsed().as_secs_f64() * 1e3,
        finish.timings.ttft_ms
    );
    assert!(matches!(finish.reason, FinishReason::Stop | FinishReason::Length), "{finish:?}\n{}", server.log_text());
    assert!(!text.trim().is_empty(), "llama.cpp returned no text: {finish:?}");
    assert!(!text.contains('\n'), "the stop sequence leaked: {text:?}");

    // A long generation dropped after its first chunk.
    let mut long = engine.generate(request(400));
    match tokio::time::timeout(READY, long.next_chunk()).await.expect("no first chunk") {
        Some(Chunk::Text(_)) => {}
        other => panic!("expected text first, got {other:?}\n{}", server.log_text()),
    }
    drop(long);

    // The server still answers the next request.
    let (again, finish) = tokio::time::timeout(READY, engine.generate(request(8)).collect_text()).await.unwrap();
    assert!(matches!(finish.reason, FinishReason::Stop | FinishReason::Length), "{finish:?}");
    assert!(!again.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glint_lsp_completes_through_llama_cpp() {
    let Some(server) = LlamaServer::start() else { return };
    glint_tests::set_timeout(READY);
    let url = server.url();
    let client = LspClient::spawn(env!("CARGO_BIN_EXE_glint-e2e"), &["lsp", "--engine", &url]);
    client.initialize(capabilities(&["utf-16"]), json!({"maxTokens": 32})).await;
    let started = Instant::now();
    let status = loop {
        let status = client.call("glint/status", Value::Null).await;
        if status["engine"]["state"] != "loading" || started.elapsed() > READY {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status["engine"]["state"], "ready", "{status}");
    assert_eq!(status["engine"]["info"]["kind"], "http", "{status}");

    let uri = "file:///project/math_utils.py";
    client.open(uri, "python", "def add(a, b):\n    \"\"\"Return the sum of a and b.\"\"\"\n    return \n").await;
    let result = client
        .call(
            "textDocument/inlineCompletion",
            json!({"textDocument": {"uri": uri}, "position": {"line": 2, "character": 11}, "context": {"triggerKind": 2}}),
        )
        .await;
    println!("inline completion through llama.cpp: {result}");
    let text = result[0]["insertText"].as_str().unwrap_or_default();
    assert!(!text.trim().is_empty(), "no completion through llama.cpp: {result}\n{}", server.log_text());
    let status = client.call("glint/status", Value::Null).await;
    assert_eq!(status["lastCompletion"]["shown"], true, "{status}");
    assert_eq!(client.shutdown().await, 0);
}
