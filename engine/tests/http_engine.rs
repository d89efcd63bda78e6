//! The HTTP engine against a small scripted HTTP/1.1 server on 127.0.0.1: what it posts for each
//! API, how it streams, cancels, fails and times out, and that it reuses its connection.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use glint_engine::{
    Chunk, Engine, Finish, FinishReason, GenerateRequest, Generation, HttpApi, HttpConfig, HttpEngine, Snippet,
};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Long enough for a loaded machine; only reached when something hangs.
const WAIT: Duration = Duration::from_secs(20);

/// One request as the server read it.
#[derive(Debug, Clone)]
struct Received {
    peer: SocketAddr,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// What the server answers.
enum Reply {
    /// `data:` events, with a pause before each.
    Sse(Vec<String>, Duration),
    /// Newline-delimited JSON lines.
    Ndjson(Vec<String>),
    /// A plain answer with this status and body.
    Status(u16, &'static str),
    /// A `200` JSON document, as from a server that does not stream.
    Json(String),
    /// Reads the request and never answers.
    Hang,
    /// A `307` to this URL.
    Redirect(String),
    /// A `200` of this content type that starts with `head` and then repeats `filler` until the
    /// client goes away: a line or a body that never ends.
    Flood(&'static str, String, &'static [u8]),
}

struct Server {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    /// Connections the client closed while the server was still answering.
    disconnects: Arc<AtomicUsize>,
    /// Events written before a disconnect or the end.
    events_sent: Arc<AtomicUsize>,
}

impl Server {
    async fn start(script: impl Fn(&Received) -> Reply + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server =
            Server { addr, received: Arc::default(), disconnects: Arc::default(), events_sent: Arc::default() };
        let script = Arc::new(script);
        let (received, disconnects, events_sent) =
            (Arc::clone(&server.received), Arc::clone(&server.disconnects), Arc::clone(&server.events_sent));
        tokio::spawn(async move {
            while let Ok((socket, peer)) = listener.accept().await {
                let script = Arc::clone(&script);
                let (received, disconnects, events_sent) =
                    (Arc::clone(&received), Arc::clone(&disconnects), Arc::clone(&events_sent));
                tokio::spawn(async move {
                    serve_connection(socket, peer, &*script, &received, &disconnects, &events_sent).await;
                });
            }
        });
        server
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().clone()
    }
}

async fn serve_connection(
    mut socket: TcpStream,
    peer: SocketAddr,
    script: &(dyn Fn(&Received) -> Reply + Send + Sync),
    received: &Mutex<Vec<Received>>,
    disconnects: &AtomicUsize,
    events_sent: &AtomicUsize,
) {
    let mut buffer = Vec::new();
    // One connection serves requests one after another (keep-alive).
    while let Some(request) = read_request(&mut socket, &mut buffer, peer).await {
        received.lock().push(request.clone());
        let finished = match script(&request) {
            Reply::Status(code, body) => {
                let head = format!(
                    "HTTP/1.1 {code} Whatever\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                socket.write_all(format!("{head}{body}").as_bytes()).await.is_ok()
            }
            Reply::Redirect(location) => {
                let head =
                    format!("HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n");
                socket.write_all(head.as_bytes()).await.is_ok()
            }
            Reply::Json(body) => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                socket.write_all(format!("{head}{body}").as_bytes()).await.is_ok()
            }
            Reply::Sse(events, pause) => {
                let frames: Vec<String> = events.iter().map(|e| format!("data: {e}\n\n")).collect();
                stream_chunked(&mut socket, "text/event-stream", &frames, pause, events_sent).await
            }
            Reply::Ndjson(lines) => {
                let frames: Vec<String> = lines.iter().map(|l| format!("{l}\n")).collect();
                stream_chunked(&mut socket, "application/x-ndjson", &frames, Duration::ZERO, events_sent).await
            }
            Reply::Flood(content_type, head, filler) => {
                let start =
                    format!("HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n");
                let mut chunk = filler.repeat((64 * 1024 / filler.len().max(1)).max(1));
                let mut ok = socket.write_all(start.as_bytes()).await.is_ok()
                    && socket.write_all(format!("{:x}\r\n{head}\r\n", head.len()).as_bytes()).await.is_ok();
                let framed = {
                    let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
                    framed.append(&mut chunk);
                    framed.extend_from_slice(b"\r\n");
                    framed
                };
                while ok {
                    ok = socket.write_all(&framed).await.is_ok();
                    if ok {
                        events_sent.fetch_add(1, Ordering::SeqCst);
                    }
                }
                false
            }
            Reply::Hang => {
                // Wait for the client to give up.
                let mut byte = [0u8; 1];
                let _ = socket.read(&mut byte).await;
                false
            }
        };
        if !finished {
            disconnects.fetch_add(1, Ordering::SeqCst);
            return;
        }
    }
}

/// Writes a chunked response frame by frame; false when the client went away first.
async fn stream_chunked(
    socket: &mut TcpStream,
    content_type: &str,
    frames: &[String],
    pause: Duration,
    events_sent: &AtomicUsize,
) -> bool {
    let head = format!("HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n");
    if socket.write_all(head.as_bytes()).await.is_err() {
        return false;
    }
    let (mut read, mut write) = socket.split();
    let mut probe = [0u8; 1];
    for frame in frames {
        if !pause.is_zero() {
            tokio::select! {
                // The client sends nothing more on this connection; a read that returns means it closed.
                _ = read.read(&mut probe) => return false,
                _ = tokio::time::sleep(pause) => {}
            }
        }
        let chunk = format!("{:x}\r\n{frame}\r\n", frame.len());
        if write.write_all(chunk.as_bytes()).await.is_err() {
            return false;
        }
        events_sent.fetch_add(1, Ordering::SeqCst);
    }
    write.write_all(b"0\r\n\r\n").await.is_ok()
}

/// Reads one request (head and `Content-Length` body); `None` when the connection ends.
async fn read_request(socket: &mut TcpStream, buffer: &mut Vec<u8>, peer: SocketAddr) -> Option<Received> {
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = socket.read(&mut chunk).await.ok().filter(|&n| n > 0)?;
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_string(), v.trim().to_string())).collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let body_start = head_end + 4;
    while buffer.len() < body_start + length {
        let n = socket.read(&mut chunk).await.ok().filter(|&n| n > 0)?;
        buffer.extend_from_slice(&chunk[..n]);
    }
    let body: Vec<u8> = buffer.drain(..body_start + length).skip(body_start).collect();
    Some(Received { peer, method, path, headers, body: serde_json::from_slice(&body).unwrap_or(Value::Null) })
}

fn openai_events(texts: &[&str], finish: &str) -> Vec<String> {
    let mut events: Vec<String> = texts
        .iter()
        .map(|t| json!({"choices": [{"index": 0, "text": t, "finish_reason": null}]}).to_string())
        .collect();
    events.push(json!({"choices": [{"index": 0, "text": "", "finish_reason": finish}]}).to_string());
    events.push("[DONE]".into());
    events
}

fn engine(url: String, api: HttpApi, fim: &str) -> HttpEngine {
    HttpEngine::new(HttpConfig { url, api, fim: fim.into(), ..HttpConfig::default() }).unwrap()
}

fn request() -> GenerateRequest {
    GenerateRequest {
        prefix: "def add(a, b):\n    return ".into(),
        suffix: "\n\nprint(add(1, 2))\n".into(),
        snippets: vec![Snippet { path: "util.py".into(), text: "def sub(a, b):\n    return a - b".into() }],
        path: Some("main.py".into()),
        language: Some("python".into()),
        max_tokens: 24,
        ..GenerateRequest::default()
    }
}

/// Every chunk of a generation, text pieces apart, then the finish.
async fn chunks(mut generation: Generation) -> (Vec<String>, Finish) {
    let mut texts = Vec::new();
    loop {
        match tokio::time::timeout(WAIT, generation.next_chunk()).await.expect("the generation hangs") {
            Some(Chunk::Text(text)) => texts.push(text),
            Some(Chunk::Done(finish)) => return (texts, finish),
            None => panic!("the generation ended without a finish"),
        }
    }
}

async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let waited = tokio::time::timeout(WAIT, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out waiting until {what}");
}

#[tokio::test]
async fn streamed_chunks_arrive_in_order_and_the_server_gets_the_prefix_only_prompt() {
    let server = Server::start(|_| Reply::Sse(openai_events(&["a", " +", " b"], "stop"), Duration::ZERO)).await;
    let engine = HttpEngine::new(HttpConfig {
        url: server.url("/v1"),
        model: Some("served-model".into()),
        ..HttpConfig::default()
    })
    .unwrap();
    assert_eq!(engine.info().kind, "http");
    assert!(!engine.info().fim);
    let (texts, finish) = chunks(engine.generate(request())).await;
    assert_eq!(texts, ["a", " +", " b"]);
    assert_eq!(finish.reason, FinishReason::Stop, "{finish:?}");
    assert_eq!(finish.timings.decode_tokens, 3);

    let received = server.received();
    assert_eq!(received.len(), 1);
    let got = &received[0];
    assert_eq!((got.method.as_str(), got.path.as_str()), ("POST", "/v1/completions"));
    assert_eq!(
        got.body["prompt"],
        "# Path: util.py\n# def sub(a, b):\n#     return a - b\n#\n# Path: main.py\ndef add(a, b):\n    return "
    );
    assert_eq!(got.body["model"], "served-model");
    assert_eq!(got.body["max_tokens"], 24);
    assert_eq!(got.body["stream"], true);
    assert_eq!(got.body["temperature"], 0.0);
    assert_eq!(got.header("authorization"), None);
}

#[tokio::test]
async fn a_fim_family_renders_its_template_for_the_server() {
    let server = Server::start(|_| Reply::Sse(openai_events(&["a + b"], "stop"), Duration::ZERO)).await;
    let engine = engine(server.url("/v1"), HttpApi::OpenAiCompletions, "qwen");
    assert!(engine.info().fim);
    let (texts, _) = chunks(engine.generate(request())).await;
    assert_eq!(texts.concat(), "a + b");
    // Qwen prompts carry the cursor's line after `<|fim_middle|>`, so typing on it only appends.
    assert_eq!(
        server.received()[0].body["prompt"],
        "<|repo_name|>workspace\n<|file_sep|>util.py\ndef sub(a, b):\n    return a - b\n<|file_sep|>main.py\n\
         <|fim_prefix|>def add(a, b):\n<|fim_suffix|>\n\nprint(add(1, 2))\n<|fim_middle|>    return "
    );

    let starcoder = self::engine(server.url("/v1"), HttpApi::OpenAiCompletions, "starcoder");
    let plain = GenerateRequest { snippets: vec![], path: None, ..request() };
    chunks(starcoder.generate(plain)).await;
    assert_eq!(
        server.received()[1].body["prompt"],
        "<fim_prefix><fim_suffix>\n\nprint(add(1, 2))\n<fim_middle>def add(a, b):\n    return "
    );
}

#[tokio::test]
async fn stop_sequences_apply_even_when_the_server_ignores_them() {
    let server =
        Server::start(|_| Reply::Sse(openai_events(&["a + b", "\nprint", "(x)"], "stop"), Duration::ZERO)).await;
    let engine = engine(server.url("/v1"), HttpApi::OpenAiCompletions, "none");
    let request = GenerateRequest { stop: vec!["\n".into()], ..request() };
    let (texts, finish) = chunks(engine.generate(request)).await;
    assert_eq!(texts.concat(), "a + b");
    assert_eq!(finish.reason, FinishReason::Stop);
    assert_eq!(server.received()[0].body["stop"], json!(["\n"]));
}

#[tokio::test]
async fn dropping_the_generation_closes_the_connection() {
    let events: Vec<String> = (0..500).map(|i| json!({"choices": [{"text": format!("t{i} ")}]}).to_string()).collect();
    let server = Server::start(move |_| Reply::Sse(events.clone(), Duration::from_millis(10))).await;
    let engine = engine(server.url("/v1"), HttpApi::OpenAiCompletions, "none");
    let mut generation = engine.generate(request());
    let first = tokio::time::timeout(WAIT, generation.next_chunk()).await.unwrap();
    assert_eq!(first, Some(Chunk::Text("t0 ".into())));
    drop(generation);
    wait_until("the server sees the disconnect", || server.disconnects.load(Ordering::SeqCst) == 1).await;
    assert!(server.events_sent.load(Ordering::SeqCst) < 500);
}

#[tokio::test]
async fn error_statuses_name_the_status_and_the_body() {
    let server = Server::start(|r| match r.path.as_str() {
        "/v1/completions" => Reply::Status(500, "{\"error\": \"the model crashed\"}"),
        _ => Reply::Status(401, "invalid API key"),
    })
    .await;
    let (_, finish) = chunks(engine(server.url("/v1"), HttpApi::OpenAiCompletions, "none").generate(request())).await;
    assert_eq!(finish.reason, FinishReason::Error);
    let error = finish.error.unwrap();
    assert!(error.contains("500") && error.contains("the model crashed"), "{error}");

    let keyed = HttpEngine::new(HttpConfig {
        url: server.url("/other/v1"),
        api_key: Some("sk-test".into()),
        ..HttpConfig::default()
    })
    .unwrap();
    let (_, finish) = chunks(keyed.generate(request())).await;
    let error = finish.error.unwrap();
    assert!(error.contains("401") && error.contains("invalid API key"), "{error}");
    assert_eq!(server.received()[1].header("authorization"), Some("Bearer sk-test"));
}

#[tokio::test]
async fn a_server_that_never_answers_hits_the_deadline() {
    let server = Server::start(|_| Reply::Hang).await;
    let engine = engine(server.url("/v1"), HttpApi::OpenAiCompletions, "none");
    let (texts, finish) = chunks(engine.generate(GenerateRequest { deadline_ms: Some(200), ..request() })).await;
    assert!(texts.is_empty());
    assert_eq!(finish.reason, FinishReason::Deadline, "{finish:?}");
    // Giving up closes the connection too.
    wait_until("the server sees the disconnect", || server.disconnects.load(Ordering::SeqCst) == 1).await;

    // Without a deadline of its own, a request is still bounded by the engine's timeout.
    let bounded = HttpEngine::new(HttpConfig {
        url: server.url("/v1"),
        timeout: Duration::from_millis(200),
        ..HttpConfig::default()
    })
    .unwrap();
    let (_, finish) = chunks(bounded.generate(request())).await;
    assert_eq!(finish.reason, FinishReason::Error);
    assert!(finish.error.unwrap().contains("no complete answer"));
}

#[tokio::test]
async fn an_unreachable_server_is_a_clear_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let engine = engine(format!("http://{addr}/v1"), HttpApi::OpenAiCompletions, "none");
    let (_, finish) = chunks(engine.generate(request())).await;
    assert_eq!(finish.reason, FinishReason::Error);
    let error = finish.error.unwrap();
    assert!(error.contains("cannot reach") && error.contains(&addr.to_string()), "{error}");
}

#[tokio::test]
async fn consecutive_requests_reuse_one_pooled_connection() {
    let server = Server::start(|_| Reply::Sse(openai_events(&["x"], "stop"), Duration::ZERO)).await;
    let engine = engine(server.url("/v1"), HttpApi::OpenAiCompletions, "none");
    for _ in 0..3 {
        let (texts, _) = chunks(engine.generate(request())).await;
        assert_eq!(texts.concat(), "x");
    }
    let peers: Vec<SocketAddr> = server.received().iter().map(|r| r.peer).collect();
    assert_eq!(peers.len(), 3);
    assert!(peers.iter().all(|p| *p == peers[0]), "one connection expected, saw peers {peers:?}");
}

#[tokio::test]
async fn llama_infill_requests_carry_prefix_suffix_and_snippets() {
    let server = Server::start(|_| {
        Reply::Sse(
            vec![
                json!({"content": "a", "stop": false}).to_string(),
                json!({"content": " + b", "stop": false}).to_string(),
                json!({"content": "", "stop": true, "stopped_limit": true, "tokens_evaluated": 17}).to_string(),
            ],
            Duration::ZERO,
        )
    })
    .await;
    let engine = engine(server.url(""), HttpApi::LlamaInfill, "none");
    assert!(engine.info().fim);
    let (texts, finish) = chunks(engine.generate(request())).await;
    assert_eq!(texts, ["a", " + b"]);
    assert_eq!(finish.reason, FinishReason::Length);
    assert_eq!(finish.timings.prompt_tokens, 17);
    let got = &server.received()[0];
    assert_eq!(got.path, "/infill");
    assert_eq!(got.body["input_prefix"], "def add(a, b):\n    return ");
    assert_eq!(got.body["input_suffix"], "\n\nprint(add(1, 2))\n");
    assert_eq!(got.body["input_extra"], json!([{"filename": "util.py", "text": "def sub(a, b):\n    return a - b"}]));
    assert_eq!(got.body["n_predict"], 24);
    assert_eq!(got.body["stream"], true);
}

#[tokio::test]
async fn ollama_requests_use_suffix_or_raw_and_stream_ndjson() {
    let server = Server::start(|_| {
        Reply::Ndjson(vec![
            json!({"model": "m", "response": "a", "done": false}).to_string(),
            json!({"model": "m", "response": " + b", "done": false}).to_string(),
            json!({"model": "m", "response": "", "done": true, "done_reason": "stop", "prompt_eval_count": 9})
                .to_string(),
        ])
    })
    .await;
    let config = HttpConfig {
        url: server.url("/v1"),
        api: HttpApi::Ollama,
        model: Some("qwen2.5-coder:1.5b".into()),
        ..HttpConfig::default()
    };
    let engine = HttpEngine::new(config.clone()).unwrap();
    let (texts, finish) = chunks(engine.generate(request())).await;
    assert_eq!(texts.concat(), "a + b");
    assert_eq!((finish.reason, finish.timings.prompt_tokens), (FinishReason::Stop, 9));
    let got = &server.received()[0];
    assert_eq!(got.path, "/api/generate");
    assert_eq!(got.body["model"], "qwen2.5-coder:1.5b");
    assert_eq!(got.body["suffix"], "\n\nprint(add(1, 2))\n");
    assert_eq!(got.body["raw"], false);
    assert_eq!(got.body["stream"], true);
    assert_eq!(got.body["options"]["num_predict"], 24);

    // With a FIM family set, Glint renders the prompt and Ollama takes it raw.
    let raw = HttpEngine::new(HttpConfig { fim: "deepseek".into(), ..config }).unwrap();
    chunks(raw.generate(request())).await;
    let got = &server.received()[1];
    assert_eq!(got.body["raw"], true);
    assert!(got.body.get("suffix").is_none());
    assert!(got.body["prompt"].as_str().unwrap().starts_with("<｜fim▁begin｜>"));
}

#[tokio::test]
async fn a_server_that_does_not_stream_still_gives_its_text() {
    let server = Server::start(|_| {
        Reply::Json(json!({"choices": [{"index": 0, "text": "a + b", "finish_reason": "length"}]}).to_string())
    })
    .await;
    let engine = engine(server.url("/v1"), HttpApi::OpenAiCompletions, "none");
    let (texts, finish) = chunks(engine.generate(request())).await;
    assert_eq!(texts.concat(), "a + b");
    assert_eq!(finish.reason, FinishReason::Length);
}

#[tokio::test]
async fn a_line_that_never_ends_is_cut_off_at_the_line_limit() {
    let cases = [
        (HttpApi::OpenAiCompletions, "text/event-stream", "data: {\"choices\": [{\"text\": \""),
        (HttpApi::Ollama, "application/x-ndjson", "{\"response\": \""),
    ];
    for (api, content_type, head) in cases {
        let server = Server::start(move |_| Reply::Flood(content_type, head.to_string(), b"x")).await;
        let engine = HttpEngine::new(HttpConfig {
            url: server.url("/v1"),
            api,
            model: Some("m".into()),
            ..HttpConfig::default()
        })
        .unwrap();
        let (texts, finish) = chunks(engine.generate(request())).await;
        assert!(texts.is_empty(), "{api:?}: {texts:?}");
        assert_eq!(finish.reason, FinishReason::Error, "{api:?}: {finish:?}");
        let error = finish.error.unwrap_or_default();
        assert!(error.contains("longer than 1 MiB"), "{api:?}: {error}");
        wait_until("the connection is closed", || server.disconnects.load(Ordering::SeqCst) == 1).await;
    }
}

#[tokio::test]
async fn a_body_that_never_ends_is_cut_off_at_the_response_limit() {
    // Short lines without an event, forever: each line is fine, the whole is not.
    let server = Server::start(|_| Reply::Flood("text/event-stream", ": ping\n".into(), b": ping\n")).await;
    let engine = engine(server.url("/v1"), HttpApi::OpenAiCompletions, "none");
    let (texts, finish) = chunks(engine.generate(request())).await;
    assert!(texts.is_empty(), "{texts:?}");
    assert_eq!(finish.reason, FinishReason::Error, "{finish:?}");
    let error = finish.error.unwrap_or_default();
    assert!(error.contains("longer than 16 MiB"), "{error}");
    wait_until("the connection is closed", || server.disconnects.load(Ordering::SeqCst) == 1).await;
}

#[tokio::test]
async fn events_split_anywhere_and_multi_line_data_are_read() {
    // One event's data over two `data:` lines, CRLF line ends, a comment and an `event:` field.
    let events = vec![
        "{\"choices\": [{\"text\": \"a\",\r\n: comment\r\nevent: completion\r\ndata: \"finish_reason\": null}]}"
            .to_string(),
        json!({"choices": [{"text": "b", "finish_reason": "stop"}]}).to_string(),
        "[DONE]".into(),
    ];
    let server = Server::start(move |_| Reply::Sse(events.clone(), Duration::ZERO)).await;
    let engine = engine(server.url("/v1"), HttpApi::OpenAiCompletions, "none");
    let (texts, finish) = chunks(engine.generate(request())).await;
    assert_eq!(texts, ["a", "b"], "{finish:?}");
    assert_eq!(finish.reason, FinishReason::Stop);
}

#[tokio::test]
async fn redirects_are_not_followed_so_the_key_stays_with_the_configured_server() {
    let elsewhere = Server::start(|_| Reply::Sse(openai_events(&["leaked"], "stop"), Duration::ZERO)).await;
    let target = elsewhere.url("/v1/completions");
    let server = Server::start(move |_| Reply::Redirect(target.clone())).await;
    let keyed = HttpEngine::new(HttpConfig {
        url: server.url("/v1"),
        api_key: Some("sk-test".into()),
        ..HttpConfig::default()
    })
    .unwrap();
    let (texts, finish) = chunks(keyed.generate(request())).await;
    assert!(texts.is_empty(), "{texts:?}");
    assert_eq!(finish.reason, FinishReason::Error);
    assert!(finish.error.unwrap_or_default().contains("307"));
    assert!(elsewhere.received().is_empty(), "the redirect was followed: {:?}", elsewhere.received());
}

#[tokio::test]
async fn keys_never_go_in_the_clear_to_another_host_and_never_show_in_debug() {
    let keyed = |url: &str| HttpConfig { url: url.into(), api_key: Some("sk-s3cret".into()), ..HttpConfig::default() };
    let refused = HttpEngine::new(keyed("http://10.0.0.5:8080/v1")).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(refused.contains("apiKeyEnv") && refused.contains("10.0.0.5") && refused.contains("https://"), "{refused}");
    for url in ["http://127.0.0.1:8080/v1", "http://localhost:8080/v1", "http://[::1]:8080/v1", "https://10.0.0.5/v1"] {
        assert!(HttpEngine::new(keyed(url)).is_ok(), "{url}");
    }
    let keyless = HttpConfig { api_key: None, ..keyed("http://10.0.0.5:8080/v1") };
    assert!(HttpEngine::new(keyless).is_ok(), "no key, nothing to leak");
    let shown = format!("{:?}", keyed("https://x/v1"));
    assert!(!shown.contains("s3cret") && shown.contains("<redacted>"), "{shown}");
}
