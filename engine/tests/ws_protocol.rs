//! The engine server's session logic driven over in-memory channels (no sockets): the `hello`
//! exchange, streaming, cancel frames, version mismatch and tokens.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::channel::mpsc;
use glint_engine::fake::FakeEngine;
use glint_engine::protocol::{ClientFrame, ErrorCode, PROTOCOL_VERSION, ServerFrame, message};
use glint_engine::ws::ServeConfig;
use glint_engine::ws::server::{Connection, serve_connection};
use glint_engine::{Engine, FinishReason, GenerateRequest};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

/// A session over channels: what the test sends, and what the server answers.
struct Session {
    to_server: mpsc::UnboundedSender<Message>,
    from_server: mpsc::UnboundedReceiver<Message>,
    _stop: watch::Sender<bool>,
}

fn session(engine: Arc<dyn Engine>, config: ServeConfig, bearer: Option<&str>) -> Session {
    let (to_server, server_in) = mpsc::unbounded::<Message>();
    let (server_out, from_server) = mpsc::unbounded::<Message>();
    let (stop, stop_rx) = watch::channel(false);
    let connection = Connection::new("test", bearer.map(str::to_string), Duration::from_secs(5));
    tokio::spawn(serve_connection(
        server_out,
        server_in.map(Ok::<_, Infallible>),
        engine,
        Arc::new(config),
        connection,
        stop_rx,
    ));
    Session { to_server, from_server, _stop: stop }
}

impl Session {
    fn send(&self, frame: &ClientFrame) {
        self.to_server.unbounded_send(message(frame)).unwrap();
    }

    /// The next frame, skipping control messages; `None` once the server closed.
    async fn next(&mut self) -> Option<ServerFrame> {
        loop {
            let next = tokio::time::timeout(Duration::from_secs(10), self.from_server.next()).await;
            match next.expect("the server answers within the guard time")? {
                Message::Text(text) => return Some(ServerFrame::parse(text.as_str()).unwrap()),
                Message::Close(_) => return None,
                _ => {}
            }
        }
    }
}

#[tokio::test]
async fn hello_then_a_streamed_generation() {
    let engine = Arc::new(FakeEngine::fixed("let answer = 42;"));
    let mut s = session(engine.clone(), ServeConfig::default(), None);
    s.send(&ClientFrame::Hello { version: PROTOCOL_VERSION, token: None });
    match s.next().await {
        Some(ServerFrame::Hello { version, model, limits }) => {
            assert_eq!(version, PROTOCOL_VERSION);
            assert_eq!(model.kind, "fake");
            assert_eq!(limits.max_in_flight, ServeConfig::default().max_in_flight);
        }
        other => panic!("expected hello, got {other:?}"),
    }
    s.send(&ClientFrame::Generate { id: 5, request: GenerateRequest::default() });
    let mut text = String::new();
    loop {
        match s.next().await {
            Some(ServerFrame::Chunk { id: 5, text: t }) => text.push_str(&t),
            Some(ServerFrame::Done { id: 5, reason, .. }) => {
                assert_eq!(reason, FinishReason::Stop);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(text, "let answer = 42;");
    assert_eq!(engine.log().completed, 1);
}

#[tokio::test]
async fn a_cancel_frame_stops_the_engine_and_ends_the_request() {
    let engine = Arc::new(FakeEngine::fixed("x".repeat(600)).with_delay(Duration::from_millis(5)));
    let mut s = session(engine.clone(), ServeConfig::default(), None);
    s.send(&ClientFrame::Hello { version: PROTOCOL_VERSION, token: None });
    assert!(matches!(s.next().await, Some(ServerFrame::Hello { .. })));
    s.send(&ClientFrame::Generate { id: 1, request: GenerateRequest::default() });
    assert!(matches!(s.next().await, Some(ServerFrame::Chunk { id: 1, .. })));
    s.send(&ClientFrame::Cancel { id: 1 });
    loop {
        match s.next().await {
            Some(ServerFrame::Chunk { id: 1, .. }) => {}
            Some(ServerFrame::Done { id: 1, reason, .. }) => {
                assert_eq!(reason, FinishReason::Cancelled);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    for _ in 0..400 {
        if engine.log().cancelled == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the engine never saw the cancellation: {:?}", engine.log());
}

#[tokio::test]
async fn a_version_mismatch_gets_a_clear_error_and_a_close() {
    let mut s = session(Arc::new(FakeEngine::fixed("x")), ServeConfig::default(), None);
    s.send(&ClientFrame::Hello { version: 99, token: None });
    match s.next().await {
        Some(ServerFrame::Error { id: None, code: ErrorCode::VersionMismatch, message }) => {
            assert!(
                message.contains("version 99") && message.contains(&format!("version {PROTOCOL_VERSION}")),
                "{message}"
            );
        }
        other => panic!("expected a version_mismatch error, got {other:?}"),
    }
    assert_eq!(s.next().await, None, "the server closes after the error");
}

#[tokio::test]
async fn a_token_is_accepted_from_hello_or_the_header_and_a_wrong_one_is_refused() {
    let config = ServeConfig { token: Some("s3cret".into()), ..ServeConfig::default() };
    let engine: Arc<dyn Engine> = Arc::new(FakeEngine::fixed("x"));

    let mut s = session(Arc::clone(&engine), config.clone(), None);
    s.send(&ClientFrame::Hello { version: PROTOCOL_VERSION, token: Some("s3cret".into()) });
    assert!(matches!(s.next().await, Some(ServerFrame::Hello { .. })));

    let mut s = session(Arc::clone(&engine), config.clone(), Some("s3cret"));
    s.send(&ClientFrame::Hello { version: PROTOCOL_VERSION, token: None });
    assert!(matches!(s.next().await, Some(ServerFrame::Hello { .. })));

    for (hello, bearer) in [(Some("wrong"), None), (None, Some("wrong")), (None, None)] {
        let mut s = session(Arc::clone(&engine), config.clone(), bearer);
        s.send(&ClientFrame::Hello { version: PROTOCOL_VERSION, token: hello.map(str::to_string) });
        match s.next().await {
            Some(ServerFrame::Error { code: ErrorCode::Unauthorized, .. }) => {}
            other => panic!("expected unauthorized for {hello:?}/{bearer:?}, got {other:?}"),
        }
        assert_eq!(s.next().await, None);
    }
}

#[tokio::test]
async fn a_generate_before_hello_and_garbage_are_refused_without_a_panic() {
    let mut s = session(Arc::new(FakeEngine::fixed("x")), ServeConfig::default(), None);
    s.send(&ClientFrame::Generate { id: 1, request: GenerateRequest::default() });
    assert!(matches!(s.next().await, Some(ServerFrame::Error { code: ErrorCode::BadFrame, .. })));

    let mut s = session(Arc::new(FakeEngine::fixed("x")), ServeConfig::default(), None);
    s.send(&ClientFrame::Hello { version: PROTOCOL_VERSION, token: None });
    assert!(matches!(s.next().await, Some(ServerFrame::Hello { .. })));
    s.to_server.unbounded_send(Message::text("{\"type\":\"launch\"}")).unwrap();
    assert!(matches!(s.next().await, Some(ServerFrame::Error { id: None, code: ErrorCode::BadFrame, .. })));
    // The session survives a bad frame.
    s.send(&ClientFrame::Generate { id: 2, request: GenerateRequest::default() });
    assert!(matches!(s.next().await, Some(ServerFrame::Chunk { id: 2, .. })));
}
