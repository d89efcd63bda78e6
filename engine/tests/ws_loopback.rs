//! The WebSocket engine server and client over real sockets on `127.0.0.1:0`: streaming,
//! multiplexing, cancellation, supersession, tokens, limits, `wss://`, and faults (a server killed
//! mid-stream, a server that never answers, a slow-loris client, shutdown).
//! Durations below are guards against hangs, never measurements.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use glint_engine::fake::FakeEngine;
use glint_engine::protocol::{ClientFrame, ErrorCode, PROTOCOL_VERSION, ServerFrame, message};
use glint_engine::ws::{ConnectionStatus, ServeConfig, WsClientConfig, WsEngine};
use glint_engine::{Chunk, Engine, FinishReason, GenerateRequest, Generation};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

const GUARD: Duration = Duration::from_secs(20);

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Server {
    async fn start(engine: Arc<dyn Engine>, config: ServeConfig) -> Server {
        Server::start_on("127.0.0.1:0".parse().unwrap(), engine, config).await
    }

    async fn start_on(addr: SocketAddr, engine: Arc<dyn Engine>, config: ServeConfig) -> Server {
        let listener = TcpListener::bind(addr).await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            glint_engine::ws::serve(listener, engine, config, async {
                let _ = stopped.await;
            })
            .await
            .expect("serve");
        });
        Server { addr, stop: Some(stop), task }
    }

    fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }
}

fn client_config(url: &str) -> WsClientConfig {
    let mut config = WsClientConfig::new(url);
    config.backoff_min = Duration::from_millis(20);
    config.backoff_max = Duration::from_millis(200);
    config.connect_timeout = Duration::from_secs(2);
    config
}

async fn connected_client(url: &str) -> WsEngine {
    let client = WsEngine::connect(client_config(url)).expect("client");
    tokio::time::timeout(GUARD, client.connected()).await.expect("connects");
    client
}

async fn settled(client: &WsEngine) -> bool {
    tokio::time::timeout(GUARD, client.settled()).await.expect("the first connection attempt settles")
}

async fn collect(generation: Generation) -> (String, glint_engine::Finish) {
    tokio::time::timeout(GUARD, generation.collect_text()).await.expect("the generation ends")
}

async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let wait = async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(GUARD, wait).await.unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

fn request(session: &str, prefix: &str) -> GenerateRequest {
    GenerateRequest { prefix: prefix.into(), session: Some(session.into()), ..GenerateRequest::default() }
}

/// A raw protocol client, for what the engine client never sends.
async fn raw(
    url: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    tokio_tungstenite::connect_async(url).await.expect("connect").0
}

async fn next_server_frame<S>(ws: &mut S) -> Option<ServerFrame>
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match tokio::time::timeout(GUARD, ws.next()).await.expect("an answer") {
            Some(Ok(Message::Text(text))) => return Some(ServerFrame::parse(text.as_str()).unwrap()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_a_completion_and_reports_the_remote_model() {
    let server = Server::start(Arc::new(FakeEngine::fixed("fn remote() {}")), ServeConfig::default()).await;
    let client = connected_client(&server.url()).await;
    let info = client.info();
    assert_eq!((info.kind.as_str(), info.model.as_str()), ("ws", "scripted"));
    let mut generation = client.generate(GenerateRequest::default());
    let mut chunks = 0;
    let mut text = String::new();
    loop {
        match tokio::time::timeout(GUARD, generation.next_chunk()).await.expect("a chunk") {
            Some(Chunk::Text(t)) => {
                chunks += 1;
                text.push_str(&t);
            }
            Some(Chunk::Done(finish)) => {
                assert_eq!(finish.reason, FinishReason::Stop);
                break;
            }
            None => panic!("ended without Done"),
        }
    }
    assert_eq!(text, "fn remote() {}");
    assert!(chunks > 1, "the text arrives in several chunks");
    let state = client.connection().unwrap().borrow().clone();
    assert_eq!((state.status, state.connects), (ConnectionStatus::Connected, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_of_different_sessions_are_multiplexed_on_one_connection() {
    let engine = FakeEngine::with_reply(|r| Ok(format!("<{}>", r.prefix))).with_delay(Duration::from_millis(2));
    let server = Server::start(Arc::new(engine.clone()), ServeConfig::default()).await;
    let client = connected_client(&server.url()).await;
    let generations: Vec<_> = (0..6).map(|i| client.generate(request(&format!("doc{i}"), &format!("r{i}")))).collect();
    let results = futures::future::join_all(generations.into_iter().map(collect)).await;
    for (i, (text, finish)) in results.into_iter().enumerate() {
        assert_eq!(finish.reason, FinishReason::Stop, "{finish:?}");
        assert_eq!(text, format!("<r{i}>"));
    }
    assert_eq!(engine.log().completed, 6);
    assert_eq!(client.state().connects, 1, "one persistent connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_generation_sends_cancel_and_stops_the_remote_work() {
    let engine = FakeEngine::fixed("y".repeat(900)).with_delay(Duration::from_millis(5));
    let server = Server::start(Arc::new(engine.clone()), ServeConfig::default()).await;
    let client = connected_client(&server.url()).await;
    let mut generation = client.generate(GenerateRequest::default());
    assert!(matches!(tokio::time::timeout(GUARD, generation.next_chunk()).await.unwrap(), Some(Chunk::Text(_))));
    drop(generation);
    wait_until("the remote engine to see the cancellation", || engine.log().cancelled == 1).await;
    assert_eq!(engine.log().completed, 0);
    // The connection is still good.
    let (_, finish) = collect(client.generate(GenerateRequest { max_tokens: 2, ..GenerateRequest::default() })).await;
    assert_eq!(finish.reason, FinishReason::Length);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_request_of_the_same_session_supersedes_the_older() {
    let engine = FakeEngine::with_reply(|r| Ok(r.prefix.repeat(200))).with_delay(Duration::from_millis(5));
    let server = Server::start(Arc::new(engine.clone()), ServeConfig::default()).await;
    let client = connected_client(&server.url()).await;
    let mut older = client.generate(request("doc", "a"));
    assert!(matches!(tokio::time::timeout(GUARD, older.next_chunk()).await.unwrap(), Some(Chunk::Text(_))));
    let newer = client.generate(GenerateRequest { max_tokens: 3, ..request("doc", "b") });
    let (_, older_finish) = collect(older).await;
    assert_eq!(older_finish.reason, FinishReason::Cancelled);
    let (text, newer_finish) = collect(newer).await;
    assert_eq!((text.as_str(), newer_finish.reason), ("bbbbbbbbb", FinishReason::Length));
    wait_until("the engine to record the superseded request", || engine.log().cancelled == 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_server_refuses_clients_without_the_right_token() {
    let config = ServeConfig { token: Some("s3cret".into()), ..ServeConfig::default() };
    let server = Server::start(Arc::new(FakeEngine::fixed("ok")), config).await;

    let anonymous = WsEngine::connect(client_config(&server.url())).unwrap();
    assert!(!settled(&anonymous).await);
    let error = anonymous.state().error.unwrap_or_default();
    assert!(error.contains("requires a token"), "{error}");

    let mut wrong = client_config(&server.url());
    wrong.token = Some("guess".into());
    let wrong = WsEngine::connect(wrong).unwrap();
    assert!(!settled(&wrong).await);
    let error = wrong.state().error.unwrap_or_default();
    assert!(error.contains("wrong token"), "{error}");
    let (_, finish) = collect(wrong.generate(GenerateRequest::default())).await;
    assert_eq!(finish.reason, FinishReason::Error);

    let mut right = client_config(&server.url());
    right.token = Some("s3cret".into());
    let right = WsEngine::connect(right).unwrap();
    assert!(settled(&right).await);
    assert_eq!(collect(right.generate(GenerateRequest::default())).await.0, "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_is_refused_and_the_connection_closed() {
    let config = ServeConfig { max_message_bytes: 64 << 10, ..ServeConfig::default() };
    let server = Server::start(Arc::new(FakeEngine::fixed("ok")), config).await;
    let mut ws = raw(&server.url()).await;
    ws.send(message(&ClientFrame::Hello { version: PROTOCOL_VERSION, token: None })).await.unwrap();
    assert!(matches!(next_server_frame(&mut ws).await, Some(ServerFrame::Hello { .. })));
    let huge = GenerateRequest { prefix: "z".repeat(200 << 10), ..GenerateRequest::default() };
    ws.send(message(&ClientFrame::Generate { id: 1, request: huge })).await.unwrap();
    match next_server_frame(&mut ws).await {
        Some(ServerFrame::Error { code: ErrorCode::TooLarge, message, .. }) => {
            assert!(message.contains("too large") || message.contains("too long"), "{message}")
        }
        None => {}
        other => panic!("expected too_large or a close, got {other:?}"),
    }
    assert_eq!(next_server_frame(&mut ws).await, None, "the connection is closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_refuses_an_oversized_request_alone_and_keeps_the_connection() {
    let config = ServeConfig { max_message_bytes: 64 << 10, ..ServeConfig::default() };
    let engine = FakeEngine::fixed("ok");
    let server = Server::start(Arc::new(engine.clone()), config).await;
    let client = connected_client(&server.url()).await;
    let slow = client.generate(request("other", "x = "));
    let huge = GenerateRequest { prefix: "z".repeat(200 << 10), ..GenerateRequest::default() };
    let (_, finish) = collect(client.generate(huge)).await;
    assert_eq!(finish.reason, FinishReason::Error);
    let error = finish.error.unwrap_or_default();
    assert!(error.contains("over the remote engine's limit of 65536 bytes"), "{error}");
    // Nothing of it reached the server, and the connection (and the other request) lives on.
    let (text, finish) = collect(slow).await;
    assert_eq!((text.as_str(), finish.reason), ("ok", FinishReason::Stop));
    let (text, _) = collect(client.generate(request("b", "y = "))).await;
    assert_eq!(text, "ok");
    assert_eq!(engine.log().requests.len(), 2);
    assert_eq!(client.connection().unwrap().borrow().connects, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_mismatch_is_a_clear_error_for_the_client() {
    let server = Server::start(Arc::new(FakeEngine::fixed("ok")), ServeConfig::default()).await;
    let mut ws = raw(&server.url()).await;
    ws.send(message(&ClientFrame::Hello { version: PROTOCOL_VERSION + 1, token: None })).await.unwrap();
    match next_server_frame(&mut ws).await {
        Some(ServerFrame::Error { code: ErrorCode::VersionMismatch, message, .. }) => {
            assert!(message.contains("version mismatch"), "{message}")
        }
        other => panic!("expected version_mismatch, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_on_requests_in_flight_and_on_connections() {
    let engine = FakeEngine::fixed("w".repeat(600)).with_delay(Duration::from_millis(5));
    let config = ServeConfig { max_in_flight: 2, max_connections: 1, ..ServeConfig::default() };
    let server = Server::start(Arc::new(engine), config).await;
    let mut ws = raw(&server.url()).await;
    ws.send(message(&ClientFrame::Hello { version: PROTOCOL_VERSION, token: None })).await.unwrap();
    assert!(matches!(next_server_frame(&mut ws).await, Some(ServerFrame::Hello { .. })));
    for id in 1..=3 {
        ws.send(message(&ClientFrame::Generate { id, request: request(&format!("d{id}"), "") })).await.unwrap();
    }
    loop {
        match next_server_frame(&mut ws).await {
            Some(ServerFrame::Error { id: Some(3), code: ErrorCode::TooManyRequests, .. }) => break,
            Some(ServerFrame::Chunk { id, .. }) => assert!(id == 1 || id == 2),
            other => panic!("expected too_many_requests for request 3, got {other:?}"),
        }
    }

    let mut second = raw(&server.url()).await;
    match next_server_frame(&mut second).await {
        Some(ServerFrame::Error { id: None, code: ErrorCode::TooManyConnections, .. }) => {}
        other => panic!("expected too_many_connections, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_server_mid_stream_fails_the_request_and_the_client_reconnects() {
    let engine: Arc<dyn Engine> = Arc::new(FakeEngine::fixed("k".repeat(3000)).with_delay(Duration::from_millis(5)));
    let server = Server::start(Arc::clone(&engine), ServeConfig::default()).await;
    let addr = server.addr;
    let client = connected_client(&server.url()).await;
    let mut generation = client.generate(GenerateRequest::default());
    assert!(matches!(tokio::time::timeout(GUARD, generation.next_chunk()).await.unwrap(), Some(Chunk::Text(_))));

    // Kill: the serve task and every connection it owns vanish without a goodbye.
    server.task.abort();
    let (_, finish) = collect(generation).await;
    assert_eq!(finish.reason, FinishReason::Error);
    let error = finish.error.unwrap_or_default();
    // Aborting the serve task may let a session say goodbye before it is dropped; either way the
    // request ends with an error that says why.
    assert!(error.contains("lost") || error.contains("shutting down"), "{error}");
    let mut state = client.connection().unwrap();
    tokio::time::timeout(GUARD, state.wait_for(|s| s.status != ConnectionStatus::Connected)).await.unwrap().unwrap();
    let (_, failed) = collect(client.generate(GenerateRequest::default())).await;
    assert_eq!(failed.reason, FinishReason::Error, "requests fail fast while disconnected");

    let _back = Server::start_on(addr, Arc::new(FakeEngine::fixed("back")), ServeConfig::default()).await;
    tokio::time::timeout(GUARD, state.wait_for(|s| s.status == ConnectionStatus::Connected)).await.unwrap().unwrap();
    assert_eq!(client.state().connects, 2);
    let (text, finish) = collect(client.generate(GenerateRequest::default())).await;
    assert_eq!((text.as_str(), finish.reason), ("back", FinishReason::Stop));
}

/// A server that completes the handshake and then never answers a request.
async fn silent_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
                let _hello = ws.next().await;
                let info = FakeEngine::fixed("").info();
                let limits = glint_engine::protocol::Limits {
                    max_message_bytes: 1 << 20,
                    max_in_flight: 8,
                    idle_timeout_ms: 60_000,
                };
                ws.send(message(&ServerFrame::Hello { version: PROTOCOL_VERSION, model: info, limits })).await.unwrap();
                // Read (and answer pings) forever; never send a frame.
                while let Some(Ok(_)) = ws.next().await {}
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_cannot_hang_a_request() {
    let addr = silent_server().await;
    let mut config = client_config(&format!("ws://{addr}"));
    config.request_timeout = Duration::from_millis(400);
    let client = WsEngine::connect(config).unwrap();
    tokio::time::timeout(GUARD, client.connected()).await.unwrap();

    let with_deadline = GenerateRequest { deadline_ms: Some(100), ..GenerateRequest::default() };
    let (_, finish) = collect(client.generate(with_deadline)).await;
    assert_eq!(finish.reason, FinishReason::Deadline);
    assert!(finish.error.unwrap_or_default().contains("did not finish"));

    let (_, finish) = collect(client.generate(GenerateRequest::default())).await;
    assert_eq!(finish.reason, FinishReason::Error, "the client's own timeout ends a request without a deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_handshakes_leaves_the_client_disconnected_not_stuck() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            sockets.push(tcp);
        }
    });
    let mut config = client_config(&format!("ws://{addr}"));
    config.connect_timeout = Duration::from_millis(200);
    let client = WsEngine::connect(config).unwrap();
    assert!(!settled(&client).await);
    assert!(client.state().error.unwrap_or_default().contains("no answer"), "{:?}", client.state());
    let (_, finish) = collect(client.generate(GenerateRequest::default())).await;
    assert_eq!(finish.reason, FinishReason::Error);
    held.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_loris_and_idle_clients_are_dropped() {
    let config = ServeConfig {
        handshake_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(300),
        ..ServeConfig::default()
    };
    let server = Server::start(Arc::new(FakeEngine::fixed("ok")), config).await;

    // A request line and then one header byte at a time, never finishing the handshake.
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let dribble = async {
        loop {
            if tcp.write_all(b"X").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            let mut buf = [0u8; 64];
            match tokio::time::timeout(Duration::from_millis(1), tcp.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                _ => {}
            }
        }
    };
    tokio::time::timeout(GUARD, dribble).await.expect("the server drops a client that never finishes its handshake");

    // A client that completes the handshake and then says nothing.
    let mut ws = raw(&server.url()).await;
    ws.send(message(&ClientFrame::Hello { version: PROTOCOL_VERSION, token: None })).await.unwrap();
    assert!(matches!(next_server_frame(&mut ws).await, Some(ServerFrame::Hello { .. })));
    assert_eq!(next_server_frame(&mut ws).await, None, "an idle connection is closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cancels_in_flight_work_and_closes_connections() {
    let engine = FakeEngine::fixed("s".repeat(3000)).with_delay(Duration::from_millis(5));
    let mut server = Server::start(Arc::new(engine.clone()), ServeConfig::default()).await;
    let client = connected_client(&server.url()).await;
    let mut generation = client.generate(GenerateRequest::default());
    assert!(matches!(tokio::time::timeout(GUARD, generation.next_chunk()).await.unwrap(), Some(Chunk::Text(_))));
    let _ = server.stop.take().unwrap().send(());
    tokio::time::timeout(GUARD, &mut server.task).await.expect("serve returns").unwrap();
    let (_, finish) = collect(generation).await;
    assert_eq!(finish.reason, FinishReason::Error);
    assert!(finish.error.unwrap_or_default().contains("shutting down"));
    wait_until("the engine to see the cancellation", || engine.log().cancelled == 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_with_a_self_signed_certificate() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = std::env::temp_dir().join(format!("glint-wss-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();

    let tls = glint_engine::ws::load_tls(&cert, &key).expect("load the certificate");
    let config = ServeConfig { tls: Some(tls), ..ServeConfig::default() };
    let server = Server::start(Arc::new(FakeEngine::fixed("secure")), config).await;
    let url = format!("wss://localhost:{}", server.addr.port());

    let untrusting = WsEngine::connect(client_config(&url)).unwrap();
    assert!(!settled(&untrusting).await, "an unknown certificate is refused");

    let mut trusting = client_config(&url);
    trusting.ca_file = Some(cert.clone());
    let client = WsEngine::connect(trusting).unwrap();
    assert!(settled(&client).await, "{:?}", client.state());
    assert_eq!(collect(client.generate(GenerateRequest::default())).await.0, "secure");

    assert!(glint_engine::ws::load_tls(&key, &key).is_err(), "a key is not a certificate");
    assert!(glint_engine::ws::load_tls(&dir.join("missing.pem"), &key).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_disconnected_the_fallback_engine_answers() {
    let fallback = FakeEngine::fixed("from the fallback");
    // Nothing listens on port 1.
    let client =
        WsEngine::connect(client_config("ws://127.0.0.1:1")).unwrap().with_fallback(Arc::new(fallback.clone()));
    assert!(!settled(&client).await);
    let (text, finish) = collect(client.generate(GenerateRequest::default())).await;
    assert_eq!((text.as_str(), finish.reason), ("from the fallback", FinishReason::Stop));
    assert_eq!(fallback.log().completed, 1);
    assert_eq!(client.info().kind, "ws");
}

/// A handshake request to `url` carrying `Origin: origin`, as a browser sends it.
fn from_browser(url: &str, origin: &str) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert("origin", origin.parse().unwrap());
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_origins_are_refused_unless_allowed() {
    let open = Server::start(Arc::new(FakeEngine::fixed("ok")), ServeConfig::default()).await;
    let config = ServeConfig { allowed_origins: vec!["https://ok.example".into()], ..ServeConfig::default() };
    let allowing = Server::start(Arc::new(FakeEngine::fixed("ok")), config).await;
    for (server, origin) in [(&open, "https://evil.example"), (&open, "null"), (&allowing, "https://evil.example")] {
        match tokio_tungstenite::connect_async(from_browser(&server.url(), origin)).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 403, "{origin}")
            }
            other => panic!("{origin}: expected HTTP 403, got {:?}", other.map(|(_, response)| response.status())),
        }
    }
    // A configured origin gets through (however its case and trailing slash are written) ...
    let (mut ws, _) =
        tokio_tungstenite::connect_async(from_browser(&allowing.url(), "https://OK.example/")).await.unwrap();
    ws.send(message(&ClientFrame::Hello { version: PROTOCOL_VERSION, token: None })).await.unwrap();
    assert!(matches!(next_server_frame(&mut ws).await, Some(ServerFrame::Hello { .. })));
    // ... and clients outside browsers send no origin at all.
    let client = connected_client(&open.url()).await;
    assert_eq!(collect(client.generate(GenerateRequest::default())).await.0, "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_do_not_lock_clients_out() {
    let config = ServeConfig {
        max_connections: 2,
        max_pending: 4,
        // Far longer than the test: the idle sockets are never dropped for their silence.
        handshake_timeout: Duration::from_secs(120),
        ..ServeConfig::default()
    };
    let server = Server::start(Arc::new(FakeEngine::fixed("ok")), config).await;
    let mut idle = Vec::new();
    for _ in 0..70 {
        idle.push(tokio::net::TcpStream::connect(server.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let first = connected_client(&server.url()).await;
    let second = connected_client(&server.url()).await;
    assert_eq!(collect(first.generate(GenerateRequest::default())).await.0, "ok");
    assert_eq!(collect(second.generate(GenerateRequest::default())).await.0, "ok");
    // The two slots are for clients that said hello, and they are taken.
    let mut third = raw(&server.url()).await;
    match next_server_frame(&mut third).await {
        Some(ServerFrame::Error { id: None, code: ErrorCode::TooManyConnections, .. }) => {}
        other => panic!("expected too_many_connections, got {other:?}"),
    }
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_its_refusals_does_not_hold_its_slot() {
    let config =
        ServeConfig { max_connections: 1, handshake_timeout: Duration::from_millis(500), ..ServeConfig::default() };
    let server = Server::start(Arc::new(FakeEngine::fixed("ok")), config).await;
    let ws = raw(&server.url()).await;
    let (mut sink, stream) = ws.split();
    sink.send(message(&ClientFrame::Hello { version: PROTOCOL_VERSION, token: None })).await.unwrap();
    // Frames the server refuses, each refusal as long as the frame (it names the unknown type),
    // and never a read: the refusals fill the socket buffers on both sides.
    let bad = Message::text(format!("{{\"type\": \"{}\"}}", "x".repeat(60 << 10)));
    let spam = tokio::spawn(async move {
        for _ in 0..600 {
            if tokio::time::timeout(Duration::from_secs(2), sink.send(bad.clone())).await.is_err() {
                break;
            }
        }
        sink
    });
    let _held = tokio::time::timeout(GUARD, spam).await.expect("the spam ends").unwrap();
    // The server gave up on the silent reader, so its only slot is free for someone else.
    let client = connected_client(&server.url()).await;
    assert_eq!(collect(client.generate(GenerateRequest::default())).await.0, "ok");
    drop(stream);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_says_hello_is_dropped_and_frees_its_place() {
    let config =
        ServeConfig { max_connections: 1, handshake_timeout: Duration::from_millis(300), ..ServeConfig::default() };
    let server = Server::start(Arc::new(FakeEngine::fixed("ok")), config).await;
    // The WebSocket handshake completes, and then nothing: no hello.
    let mut silent = raw(&server.url()).await;
    match next_server_frame(&mut silent).await {
        Some(ServerFrame::Error { id: None, code: ErrorCode::Timeout, message, .. }) => {
            assert!(message.contains("hello"), "{message}");
        }
        other => panic!("expected a timeout for the missing hello, got {other:?}"),
    }
    assert!(next_server_frame(&mut silent).await.is_none(), "the server closes the connection");
    let client = connected_client(&server.url()).await;
    assert_eq!(collect(client.generate(GenerateRequest::default())).await.0, "ok");
}
