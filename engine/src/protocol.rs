//! The remote engine protocol: the `Engine` trait serialized as JSON text frames over one
//! WebSocket, spoken by `glint engine serve` and by the `ws://`/`wss://` client engine.
//!
//! # Version 1
//!
//! Every frame is one WebSocket text message holding one JSON object whose `type` names it.
//! Field types are those of `GenerateRequest`, `FinishReason` and `Timings` in the engine crate.
//!
//! ## Opening
//! 1. The client connects (`ws://host:port/` or `wss://…`), optionally with an
//!    `Authorization: Bearer TOKEN` header.
//! 2. The client sends `{"type":"hello","version":1,"token":"…"}` (`token` optional; the header
//!    or the field may carry it).
//! 3. The server answers `{"type":"hello","version":1,"model":{…EngineInfo…},"limits":{…}}`, or an
//!    `error` frame (`version_mismatch`, `unauthorized`, `too_many_connections`) and closes.
//!
//! ## Requests
//! - Client: `{"type":"generate","id":7,"request":{…GenerateRequest…}}`. Ids are the client's
//!   choice and unique on the connection; many requests may be in flight at once (multiplexed).
//!   A `generate` supersedes the in-flight requests of the same connection that carry the same
//!   `request.session` key (requests without a key share one), which end with `done` `cancelled`;
//!   never another session's or another connection's.
//! - When the engine's queue is full, a `generate` is refused at once with `error` `busy`.
//!
//! ## Sharing one engine
//! The engine keys everything by the server's own identity for the connection plus the
//! `session` string: connections, then their sessions, take turns for the model; the newest
//! request of a (connection, session) supersedes only that pair's older ones; KV caches belong to
//! a pair, so no connection reuses, or sees `cached_tokens` for, another's prompts.
//! - Client: `{"type":"cancel","id":7}` stops that request's work within one decode step; the
//!   server answers `done` with reason `cancelled` unless the request had already ended.
//! - Server: `{"type":"chunk","id":7,"text":"…"}`, any number, in order.
//! - Server: `{"type":"done","id":7,"reason":"stop","error":null,"timings":{…}}` ends a request;
//!   `reason` is `stop`, `length`, `cancelled`, `deadline` or `error` (then `error` says why).
//! - Server: `{"type":"error","id":7,"code":"…","message":"…"}` ends request 7 with an error;
//!   without `id` it concerns the connection, which the server usually closes next.
//!
//! ## Keepalive, limits and closing
//! Both sides answer WebSocket pings with pongs; the client pings every few seconds and treats a
//! silent connection as lost. The server closes connections idle past `limits.idle_timeout_ms`,
//! refuses messages over `limits.max_message_bytes` (close code 1009), more than
//! `limits.max_in_flight` concurrent requests (`too_many_requests`), and connections beyond its
//! connection limit (`too_many_connections`, close code 1013). A dropped connection cancels all of
//! its requests. On shutdown the server cancels in-flight work and closes with code 1001.
//!
//! Error codes: `version_mismatch`, `unauthorized`, `bad_frame`, `too_large`,
//! `too_many_requests`, `too_many_connections`, `duplicate_id`, `shutting_down`, `timeout`,
//! `busy`.
//!
//! The same text lives in docs/engine-protocol.md.

use futures::{Sink, SinkExt, Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::Message;

use crate::{EngineInfo, FinishReason, GenerateRequest, Timings};

/// The protocol version this build speaks. Both sides must speak the same one.
pub const PROTOCOL_VERSION: u32 = 1;

/// Frames the client sends.
// Frames live only between the socket and a dispatch; boxing the request would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    Hello {
        version: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    },
    Generate {
        id: u64,
        request: GenerateRequest,
    },
    Cancel {
        id: u64,
    },
}

/// Frames the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Hello {
        version: u32,
        model: EngineInfo,
        limits: Limits,
    },
    Chunk {
        id: u64,
        text: String,
    },
    Done {
        id: u64,
        reason: FinishReason,
        #[serde(default)]
        error: Option<String>,
        #[serde(default)]
        timings: Timings,
    },
    Error {
        #[serde(default)]
        id: Option<u64>,
        code: ErrorCode,
        message: String,
    },
}

/// What the server allows, announced in its `hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub max_message_bytes: usize,
    pub max_in_flight: usize,
    pub idle_timeout_ms: u64,
}

/// Why the server refused something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    VersionMismatch,
    Unauthorized,
    BadFrame,
    TooLarge,
    TooManyRequests,
    TooManyConnections,
    DuplicateId,
    ShuttingDown,
    Timeout,
    /// The engine's queue is full of other clients' requests; the request was not started.
    Busy,
    /// A code from a newer peer that this build does not know.
    #[serde(other)]
    Unknown,
}

/// A frame that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("invalid frame: {0}")]
    Invalid(String),
    #[error("binary frames are not part of the protocol; send JSON text frames")]
    Binary,
    #[error("the connection closed{0}")]
    Closed(String),
    /// A message over the receiver's size limit.
    #[error("{0}")]
    TooLarge(String),
    #[error("transport: {0}")]
    Transport(String),
}

impl From<tokio_tungstenite::tungstenite::Error> for FrameError {
    fn from(error: tokio_tungstenite::tungstenite::Error) -> Self {
        use tokio_tungstenite::tungstenite::Error;
        match error {
            Error::Capacity(capacity) => FrameError::TooLarge(format!("message too large: {capacity}")),
            Error::ConnectionClosed | Error::AlreadyClosed => FrameError::Closed(String::new()),
            // The peer's process ended (or dropped the socket) without a close frame.
            Error::Protocol(tokio_tungstenite::tungstenite::error::ProtocolError::ResetWithoutClosingHandshake) => {
                FrameError::Closed(" without a closing handshake".into())
            }
            other => FrameError::Transport(other.to_string()),
        }
    }
}

impl From<std::convert::Infallible> for FrameError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

impl ClientFrame {
    /// Parses one client frame from its JSON text.
    pub fn parse(text: &str) -> Result<ClientFrame, FrameError> {
        serde_json::from_str(text).map_err(|e| FrameError::Invalid(e.to_string()))
    }
}

impl ServerFrame {
    /// Parses one server frame from its JSON text.
    pub fn parse(text: &str) -> Result<ServerFrame, FrameError> {
        serde_json::from_str(text).map_err(|e| FrameError::Invalid(e.to_string()))
    }
}

/// The WebSocket message that carries `frame`.
pub fn message<F: Serialize>(frame: &F) -> Message {
    // Serializing these plain types cannot fail; an empty object would be rejected by the peer.
    Message::text(serde_json::to_string(frame).unwrap_or_else(|_| "{}".into()))
}

/// Sends one frame.
pub async fn send_frame<S, F>(sink: &mut S, frame: &F) -> Result<(), S::Error>
where
    S: Sink<Message> + Unpin,
    F: Serialize,
{
    sink.send(message(frame)).await
}

/// One event read from the peer: a frame, or a control message the caller may care about.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming<F> {
    Frame(F),
    /// A ping or pong: proof the peer is alive (tungstenite answers pings by itself).
    Alive,
}

/// Reads the next text frame from `stream`, parsed with `parse`. `None` when the stream ended
/// cleanly; a close frame, a binary frame or a transport error is an `Err`.
pub async fn next_frame<S, E, F>(
    stream: &mut S,
    parse: impl Fn(&str) -> Result<F, FrameError>,
) -> Option<Result<Incoming<F>, FrameError>>
where
    S: Stream<Item = Result<Message, E>> + Unpin,
    E: Into<FrameError>,
{
    let message = match stream.next().await? {
        Ok(message) => message,
        Err(error) => return Some(Err(error.into())),
    };
    Some(match message {
        Message::Text(text) => parse(text.as_str()).map(Incoming::Frame),
        Message::Binary(_) => Err(FrameError::Binary),
        Message::Ping(_) | Message::Pong(_) => Ok(Incoming::Alive),
        Message::Close(frame) => Err(FrameError::Closed(
            frame.map(|f| format!(" ({}: {})", u16::from(f.code), f.reason)).unwrap_or_default(),
        )),
        Message::Frame(_) => Ok(Incoming::Alive),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::Snippet;
    use futures::channel::mpsc;
    use serde_json::json;

    fn sample_request() -> GenerateRequest {
        GenerateRequest {
            prefix: "fn main() {\n    let ünïcode = \"\u{1F600}\";".into(),
            suffix: "\n}\n".into(),
            snippets: vec![Snippet { path: "src/lib.rs".into(), text: "pub fn f() {}".into() }],
            path: Some("src/main.rs".into()),
            language: Some("rust".into()),
            max_tokens: 32,
            stop: vec!["\n\n".into()],
            deadline_ms: Some(1500),
            session: Some("file:///a.rs".into()),
            ..GenerateRequest::default()
        }
    }

    #[test]
    fn a_peer_gone_without_a_close_frame_is_a_close_not_a_transport_error() {
        use tokio_tungstenite::tungstenite::Error;
        use tokio_tungstenite::tungstenite::error::ProtocolError;
        let gone = FrameError::from(Error::Protocol(ProtocolError::ResetWithoutClosingHandshake));
        assert_eq!(gone.to_string(), "the connection closed without a closing handshake");
        assert!(matches!(FrameError::from(Error::ConnectionClosed), FrameError::Closed(_)));
        assert!(matches!(FrameError::from(Error::Utf8(String::new())), FrameError::Transport(_)));
    }

    #[test]
    fn client_frames_round_trip() {
        let frames = [
            ClientFrame::Hello { version: PROTOCOL_VERSION, token: Some("s3cret".into()) },
            ClientFrame::Hello { version: 9, token: None },
            ClientFrame::Generate { id: 42, request: sample_request() },
            ClientFrame::Cancel { id: 42 },
        ];
        for frame in frames {
            let text = serde_json::to_string(&frame).unwrap();
            assert_eq!(ClientFrame::parse(&text).unwrap(), frame, "{text}");
        }
    }

    #[test]
    fn server_frames_round_trip() {
        let info = EngineInfo { kind: "local".into(), model: "m.gguf".into(), context_length: 2048, fim: true };
        let limits = Limits { max_message_bytes: 1 << 20, max_in_flight: 8, idle_timeout_ms: 60_000 };
        let frames = [
            ServerFrame::Hello { version: PROTOCOL_VERSION, model: info, limits },
            ServerFrame::Chunk { id: 1, text: "let x = 1;\n".into() },
            ServerFrame::Done {
                id: 1,
                reason: FinishReason::Length,
                error: None,
                timings: Timings { prompt_tokens: 12, ttft_ms: 3.5, ..Timings::default() },
            },
            ServerFrame::Error { id: Some(3), code: ErrorCode::TooManyRequests, message: "slow down".into() },
            ServerFrame::Error { id: None, code: ErrorCode::VersionMismatch, message: "v2".into() },
        ];
        for frame in frames {
            let text = serde_json::to_string(&frame).unwrap();
            assert_eq!(ServerFrame::parse(&text).unwrap(), frame, "{text}");
        }
    }

    #[test]
    fn the_wire_format_is_tagged_snake_case_json() {
        let text = serde_json::to_value(ClientFrame::Cancel { id: 7 }).unwrap();
        assert_eq!(text, json!({"type": "cancel", "id": 7}));
        let done = serde_json::to_value(ServerFrame::Done {
            id: 7,
            reason: FinishReason::Cancelled,
            error: None,
            timings: Timings::default(),
        })
        .unwrap();
        assert_eq!(done["type"], "done");
        assert_eq!(done["reason"], "cancelled");
        // A hello without a token omits the field; older peers may omit optional fields too.
        assert_eq!(
            serde_json::to_value(ClientFrame::Hello { version: 1, token: None }).unwrap(),
            json!({"type": "hello", "version": 1})
        );
        let minimal = ServerFrame::parse(r#"{"type":"done","id":1,"reason":"stop"}"#).unwrap();
        assert!(matches!(minimal, ServerFrame::Done { id: 1, reason: FinishReason::Stop, .. }));
        let unknown = ServerFrame::parse(r#"{"type":"error","code":"from_the_future","message":"m"}"#).unwrap();
        assert!(matches!(unknown, ServerFrame::Error { code: ErrorCode::Unknown, id: None, .. }));
    }

    #[test]
    fn malformed_frames_are_errors_not_panics() {
        for text in ["", "{", "[]", r#"{"type":"generate"}"#, r#"{"type":"launch","id":1}"#, r#"{"id":1}"#] {
            assert!(matches!(ClientFrame::parse(text), Err(FrameError::Invalid(_))), "{text}");
        }
        assert!(ServerFrame::parse(r#"{"type":"chunk","id":"one","text":"x"}"#).is_err());
    }

    #[tokio::test]
    async fn frames_travel_through_any_sink_and_stream() {
        let (mut tx, rx) = mpsc::unbounded::<Message>();
        let mut rx = rx.map(Ok::<_, std::convert::Infallible>);
        send_frame(&mut tx, &ClientFrame::Hello { version: 1, token: None }).await.unwrap();
        tx.send(Message::Ping(vec![1, 2].into())).await.unwrap();
        send_frame(&mut tx, &ClientFrame::Generate { id: 1, request: sample_request() }).await.unwrap();
        tx.send(Message::Binary(vec![0u8; 4].into())).await.unwrap();
        tx.send(Message::text("not json")).await.unwrap();
        tx.send(Message::Close(None)).await.unwrap();
        drop(tx);

        let read = |text: &str| ClientFrame::parse(text);
        assert_eq!(
            next_frame(&mut rx, read).await.unwrap().unwrap(),
            Incoming::Frame(ClientFrame::Hello { version: 1, token: None })
        );
        assert_eq!(next_frame(&mut rx, read).await.unwrap().unwrap(), Incoming::Alive);
        assert_eq!(
            next_frame(&mut rx, read).await.unwrap().unwrap(),
            Incoming::Frame(ClientFrame::Generate { id: 1, request: sample_request() })
        );
        assert_eq!(next_frame(&mut rx, read).await.unwrap(), Err(FrameError::Binary));
        assert!(matches!(next_frame(&mut rx, read).await.unwrap(), Err(FrameError::Invalid(_))));
        assert!(matches!(next_frame(&mut rx, read).await.unwrap(), Err(FrameError::Closed(_))));
        assert!(next_frame(&mut rx, read).await.is_none());
    }
}
