//! `glint engine serve`: serves one `Engine` over WebSocket to many clients, with the frames of
//! `crate::protocol`. Each connection multiplexes requests by id; a request's `Generation` is
//! dropped (which stops the engine) on `cancel`, on supersession, when its connection drops, and
//! on shutdown. Each connection gets a `ClientId` of the server's making, and every request goes
//! to the engine under it (`Engine::generate_for`): the engine decides fairness and cache privacy
//! between clients from it; a full engine queue becomes a `busy` error for that request.
//!
//! The network edge: a WebSocket handshake that carries an `Origin` header (a web page in a
//! browser) is refused unless that origin is configured, so a page cannot reach a tokenless
//! loopback server. A connection counts against `max_connections` only once its `hello` is
//! accepted; until then it holds one of `max_pending` slots, and when those run out the oldest
//! unauthenticated connection makes way for the newest, so idle sockets cannot lock clients out.
//! Every frame the server sends has a time limit, so a client that never reads costs a task only
//! that long.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::stream::{BoxStream, SelectAll};
use futures::{Sink, SinkExt, Stream, StreamExt};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::protocol::{
    ClientFrame, ErrorCode, FrameError, Incoming, Limits, PROTOCOL_VERSION, ServerFrame, next_frame, send_frame,
};
use crate::work::{Registry, WorkKey};
use crate::{CancelFlag, Chunk, ClientId, Engine, EngineError, FinishReason, Generation, Timings};

/// How the server runs. `Default` is what `glint engine serve` uses without flags.
#[derive(Clone)]
pub struct ServeConfig {
    /// The bearer token clients must present; required when listening beyond loopback.
    pub token: Option<String>,
    /// Serve `wss://` with this TLS configuration.
    pub tls: Option<TlsAcceptor>,
    /// The largest message (and frame) a client may send.
    pub max_message_bytes: usize,
    /// Concurrent requests per connection.
    pub max_in_flight: usize,
    /// Concurrent connections that have said `hello`.
    pub max_connections: usize,
    /// Concurrent connections that have not said `hello` yet (TLS, WebSocket handshake, `hello`).
    /// Past it, the oldest of them is dropped to make room for the newest.
    pub max_pending: usize,
    /// Time from TCP accept to the client's `hello` (TLS and WebSocket handshakes included). It
    /// also bounds how long a refusal or a closing frame may take to send.
    pub handshake_timeout: Duration,
    /// Browser origins (`https://app.example.com`) whose pages may connect. A handshake with an
    /// `Origin` header not listed here is refused with HTTP 403; clients outside browsers send
    /// no `Origin` and are not affected.
    pub allowed_origins: Vec<String>,
    /// A connection with nothing from its client for this long is closed. Clients ping well
    /// within it.
    pub idle_timeout: Duration,
    /// How long shutdown waits for connections to close before dropping them.
    pub shutdown_grace: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            token: None,
            tls: None,
            max_message_bytes: 1 << 20,
            max_in_flight: 16,
            max_connections: 64,
            max_pending: 32,
            handshake_timeout: Duration::from_secs(5),
            allowed_origins: Vec::new(),
            idle_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(2),
        }
    }
}

impl ServeConfig {
    fn limits(&self) -> Limits {
        Limits {
            max_message_bytes: self.max_message_bytes,
            max_in_flight: self.max_in_flight,
            idle_timeout_ms: self.idle_timeout.as_millis() as u64,
        }
    }

    fn websocket(&self) -> WebSocketConfig {
        super::websocket_config(self.max_message_bytes)
    }

    /// Whether a handshake with this `Origin` header may proceed.
    fn origin_allowed(&self, origin: &str) -> bool {
        let origin = origin.trim().trim_end_matches('/');
        self.allowed_origins.iter().any(|allowed| allowed.trim().trim_end_matches('/').eq_ignore_ascii_case(origin))
    }
}

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "listening on {0} (beyond loopback) requires a token: pass --token or set GLINT_ENGINE_TOKEN, and give clients the same"
    )]
    TokenRequired(SocketAddr),
    #[error("the token must not be empty")]
    EmptyToken,
    #[error("TLS: {0}")]
    Tls(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The listening policy: loopback needs nothing, any other address needs a non-empty token.
pub fn check_listen_policy(addr: SocketAddr, token: Option<&str>) -> Result<(), ServeError> {
    match token {
        Some("") => Err(ServeError::EmptyToken),
        Some(_) => Ok(()),
        None if addr.ip().is_loopback() => Ok(()),
        None => Err(ServeError::TokenRequired(addr)),
    }
}

/// Compares tokens in constant time. Both are hashed first so that not even their lengths leak.
pub fn token_matches(expected: &str, given: &str) -> bool {
    let expected = Sha256::digest(expected.as_bytes());
    let given = Sha256::digest(given.as_bytes());
    expected.ct_eq(&given).into()
}

/// A TLS acceptor from PEM files: the certificate chain and its private key.
pub fn load_tls(cert: &Path, key: &Path) -> Result<TlsAcceptor, ServeError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| ServeError::Tls(format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(ServeError::Tls(format!("{}: no PEM certificate in the file", cert.display())));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| ServeError::Tls(format!("{}: {e}", key.display())))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServeError::Tls(e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves `engine` on `listener` until `shutdown` resolves; then stops accepting, cancels the
/// work in flight, closes every connection (code 1001) and returns within `shutdown_grace`.
pub async fn serve(
    listener: TcpListener,
    engine: Arc<dyn Engine>,
    config: ServeConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    if let Ok(addr) = listener.local_addr() {
        check_listen_policy(addr, config.token.as_deref())?;
    }
    let config = Arc::new(config);
    let (stop_tx, stop_rx) = watch::channel(false);
    let established = Arc::new(AtomicUsize::new(0));
    let pending = Arc::new(Pending::new(config.max_pending.max(1)));
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let _ = tcp.set_nodelay(true);
                    // Full already: say so politely right after the handshake, without a `hello`.
                    let over_limit = established.load(Ordering::Acquire) >= config.max_connections;
                    let (engine, config, stop) = (Arc::clone(&engine), Arc::clone(&config), stop_rx.clone());
                    let id = pending.next_id();
                    let admission = Admission {
                        pending: Arc::clone(&pending),
                        id,
                        established: Arc::clone(&established),
                        max_connections: config.max_connections,
                    };
                    let registry = Arc::clone(&pending);
                    // The entry goes in before the task can finish and take it out again.
                    let mut entries = pending.entries.lock();
                    let task = connections.spawn(async move {
                        accept(tcp, peer, engine, config, stop, over_limit, admission).await;
                        registry.remove(id);
                    });
                    entries.push_back((id, task));
                    let evicted = (entries.len() > pending.max).then(|| entries.pop_front()).flatten();
                    drop(entries);
                    if let Some((_, oldest)) = evicted {
                        tracing::debug!(%peer, "unauthenticated connections at their limit; dropped the oldest");
                        oldest.abort();
                    }
                }
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    tracing::info!(connections = connections.len(), "shutting down: cancelling in-flight requests");
    let _ = stop_tx.send(true);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(config.shutdown_grace, drain).await.is_err() {
        tracing::warn!("connections did not close within {:?}; dropping them", config.shutdown_grace);
    }
    connections.abort_all();
    Ok(())
}

/// Connections that have not said `hello` yet, oldest first, as handles that can drop them.
struct Pending {
    max: usize,
    entries: parking_lot::Mutex<VecDeque<(u64, AbortHandle)>>,
    next: AtomicU64,
}

impl Pending {
    fn new(max: usize) -> Pending {
        Pending { max, entries: parking_lot::Mutex::new(VecDeque::new()), next: AtomicU64::new(1) }
    }

    fn next_id(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Takes a connection off the list; true if it was still there (not yet evicted).
    fn remove(&self, id: u64) -> bool {
        let mut entries = self.entries.lock();
        let before = entries.len();
        entries.retain(|(entry, _)| *entry != id);
        entries.len() != before
    }
}

/// How a connection accepted by [`serve`] moves from the unauthenticated budget to a
/// connection slot once its `hello` is accepted.
#[derive(Clone)]
struct Admission {
    pending: Arc<Pending>,
    id: u64,
    established: Arc<AtomicUsize>,
    max_connections: usize,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission").field("id", &self.id).finish()
    }
}

impl Admission {
    /// The connection's slot among those that said `hello`, or `None` when they are all taken
    /// (or the connection was evicted a moment ago).
    fn admit(&self) -> Option<Slot> {
        if !self.pending.remove(self.id) {
            return None;
        }
        let slot = Slot::take(&self.established);
        (slot.count <= self.max_connections).then_some(slot)
    }
}

/// Counts a live connection until dropped.
struct Slot {
    active: Arc<AtomicUsize>,
    count: usize,
}

impl Slot {
    fn take(active: &Arc<AtomicUsize>) -> Slot {
        let count = active.fetch_add(1, Ordering::AcqRel) + 1;
        Slot { active: Arc::clone(active), count }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.active.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn accept(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    engine: Arc<dyn Engine>,
    config: Arc<ServeConfig>,
    stop: watch::Receiver<bool>,
    over_limit: bool,
    admission: Admission,
) {
    let deadline = tokio::time::Instant::now() + config.handshake_timeout;
    match config.tls.clone() {
        Some(acceptor) => match tokio::time::timeout_at(deadline, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => upgrade(tls, peer, engine, config, stop, over_limit, deadline, admission).await,
            Ok(Err(error)) => tracing::debug!(%peer, "TLS handshake failed: {error}"),
            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
        },
        None => upgrade(tcp, peer, engine, config, stop, over_limit, deadline, admission).await,
    }
}

// tungstenite's handshake callback returns its own (large) error type.
#[allow(clippy::result_large_err, clippy::too_many_arguments)]
async fn upgrade<S>(
    stream: S,
    peer: SocketAddr,
    engine: Arc<dyn Engine>,
    config: Arc<ServeConfig>,
    stop: watch::Receiver<bool>,
    over_limit: bool,
    deadline: tokio::time::Instant,
    admission: Admission,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let bearer = Arc::new(parking_lot::Mutex::new(None::<String>));
    let seen = Arc::clone(&bearer);
    let origins = Arc::clone(&config);
    let callback = move |request: &Request, response: Response| {
        // Browsers send `Origin` with every WebSocket handshake and let any page open one to
        // 127.0.0.1; refusing unknown origins keeps web pages off a tokenless loopback server.
        if let Some(origin) = request.headers().get("origin") {
            let origin = origin.to_str().unwrap_or("(not text)");
            if !origins.origin_allowed(origin) {
                tracing::info!(%peer, origin, "WebSocket handshake refused: origin not allowed (see --allow-origin)");
                return Err(forbidden(format!("origin `{origin}` is not allowed to use this engine server")));
            }
        }
        let header = request.headers().get("authorization").and_then(|v| v.to_str().ok());
        *seen.lock() = header.and_then(|h| h.strip_prefix("Bearer ")).map(|t| t.trim().to_string());
        Ok(response)
    };
    let handshake = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config.websocket()));
    let ws = match tokio::time::timeout_at(deadline, handshake).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(error)) => return tracing::debug!(%peer, "WebSocket handshake failed: {error}"),
        Err(_) => return tracing::debug!(%peer, "WebSocket handshake timed out"),
    };
    let (sink, stream) = ws.split();
    let connection = Connection {
        peer: peer.to_string(),
        bearer: bearer.lock().take(),
        over_limit,
        deadline,
        admission: Some(admission),
    };
    serve_connection(sink, stream, engine, config, connection, stop).await;
}

/// An HTTP 403 answer to a WebSocket handshake.
fn forbidden(message: String) -> tokio_tungstenite::tungstenite::handshake::server::ErrorResponse {
    let mut response = tokio_tungstenite::tungstenite::handshake::server::ErrorResponse::new(Some(message));
    *response.status_mut() = tokio_tungstenite::tungstenite::http::StatusCode::FORBIDDEN;
    response
}

/// What the transport learnt about a connection before its first frame. Its `Debug` leaves the
/// client's token out.
#[derive(Clone)]
pub struct Connection {
    /// For logs.
    pub peer: String,
    /// The token from an `Authorization: Bearer` header.
    pub bearer: Option<String>,
    /// The server is at its connection limit: refuse politely.
    pub over_limit: bool,
    /// When the client's `hello` must have arrived.
    pub deadline: tokio::time::Instant,
    /// Set by [`serve`]: the connection slot is taken only once `hello` is accepted.
    admission: Option<Admission>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.peer)
            .field("bearer", &self.bearer.as_ref().map(|_| "<redacted>"))
            .field("over_limit", &self.over_limit)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// A connection with a fresh handshake deadline, for tests that drive a session over channels.
    pub fn new(peer: &str, bearer: Option<String>, handshake_timeout: Duration) -> Connection {
        Connection {
            peer: peer.into(),
            bearer,
            over_limit: false,
            deadline: tokio::time::Instant::now() + handshake_timeout,
            admission: None,
        }
    }
}

fn close(code: CloseCode, reason: &str) -> Message {
    Message::Close(Some(CloseFrame { code, reason: reason.to_string().into() }))
}

fn error_frame(id: Option<u64>, code: ErrorCode, message: impl Into<String>) -> ServerFrame {
    ServerFrame::Error { id, code, message: message.into() }
}

/// One client's session over any sink and stream of WebSocket messages: the `hello` exchange,
/// then requests until the client leaves, goes idle, breaks the protocol, or `stop` turns true.
pub async fn serve_connection<Si, St, E>(
    mut sink: Si,
    mut stream: St,
    engine: Arc<dyn Engine>,
    config: Arc<ServeConfig>,
    connection: Connection,
    mut stop: watch::Receiver<bool>,
) where
    Si: Sink<Message> + Unpin,
    St: Stream<Item = Result<Message, E>> + Unpin,
    E: Into<FrameError>,
{
    let peer = connection.peer.clone();
    // Held until this function returns.
    let Some(_slot) = admit(&mut sink, &mut stream, engine.as_ref(), &config, &connection).await else {
        return;
    };
    // Refusals and closing frames go to clients that may not be reading: each gets this long.
    let refusal_timeout = config.handshake_timeout;
    let mut table = RequestTable::new(peer.clone(), engine, config.clone());
    let mut last_heard = tokio::time::Instant::now();
    // One timer for the whole connection, moved on only when it fires early: a frame does not
    // touch the timer wheel.
    let idle = tokio::time::sleep_until(last_heard + config.idle_timeout);
    tokio::pin!(idle);
    let reason = loop {
        tokio::select! {
            biased;
            _ = stop.changed() => {
                for id in table.inflight.values(|id| *id) {
                    let frame = error_frame(Some(id), ErrorCode::ShuttingDown, "the engine server is shutting down");
                    if tokio::time::timeout(refusal_timeout, send_frame(&mut sink, &frame)).await.is_err() {
                        break;
                    }
                }
                let goodbye = close(CloseCode::Away, "the engine server is shutting down");
                let _ = tokio::time::timeout(refusal_timeout, sink.send(goodbye)).await;
                break "server shutdown";
            }
            Some(frame) = table.frames.next(), if !table.frames.is_empty() => {
                if let ServerFrame::Done { id, .. } = &frame {
                    table.inflight.finish_where(|_, running| running == id);
                }
                match tokio::time::timeout(config.idle_timeout, send_frame(&mut sink, &frame)).await {
                    Ok(Ok(())) => {}
                    _ => break "the client stopped reading",
                }
            }
            () = &mut idle => {
                let until = last_heard + config.idle_timeout;
                if until > tokio::time::Instant::now() {
                    idle.as_mut().reset(until);
                    continue;
                }
                let _ = tokio::time::timeout(refusal_timeout, sink.send(close(CloseCode::Policy, "idle timeout"))).await;
                break "idle timeout";
            }
            incoming = next_frame(&mut stream, ClientFrame::parse) => {
                last_heard = tokio::time::Instant::now();
                let refusal = match incoming {
                    None => break "the client went away",
                    Some(Ok(Incoming::Alive)) => continue,
                    Some(Ok(Incoming::Frame(frame))) => table.take(frame),
                    Some(Err(FrameError::TooLarge(message))) => {
                        let frame = error_frame(None, ErrorCode::TooLarge, message);
                        refuse(&mut sink, &frame, close(CloseCode::Size, "message too large"), refusal_timeout).await;
                        break "message too large";
                    }
                    Some(Err(error @ (FrameError::Invalid(_) | FrameError::Binary))) => {
                        Some(error_frame(None, ErrorCode::BadFrame, error.to_string()))
                    }
                    Some(Err(FrameError::Closed(_))) => break "the client closed the connection",
                    Some(Err(FrameError::Transport(_))) => break "transport error",
                };
                if let Some(frame) = refusal
                    && !matches!(tokio::time::timeout(refusal_timeout, send_frame(&mut sink, &frame)).await, Ok(Ok(())))
                {
                    break "the client stopped reading";
                }
            }
        }
    };
    // Dropping the streams drops their Generations, which stops the engine's work.
    let cancelled = table.inflight.len();
    drop(table);
    tracing::info!(%peer, cancelled, "client disconnected: {reason}");
}

/// Lets a connection in: the connection limit, the `hello` exchange, the slot among connections
/// that said `hello`, and the server's `hello`. `None` once the client was refused (or stopped
/// reading); otherwise the slot, held for as long as the connection lives.
async fn admit<Si, St, E>(
    sink: &mut Si,
    stream: &mut St,
    engine: &dyn Engine,
    config: &ServeConfig,
    connection: &Connection,
) -> Option<Option<Slot>>
where
    Si: Sink<Message> + Unpin,
    St: Stream<Item = Result<Message, E>> + Unpin,
    E: Into<FrameError>,
{
    let peer = &connection.peer;
    let refusal_timeout = config.handshake_timeout;
    let too_many = || {
        let message =
            format!("the engine server is at its limit of {} connections; retry later", config.max_connections);
        tracing::warn!(%peer, "refused: {message}");
        error_frame(None, ErrorCode::TooManyConnections, message)
    };
    if connection.over_limit {
        refuse(sink, &too_many(), close(CloseCode::Again, "too many connections"), refusal_timeout).await;
        return None;
    }
    if let Err((code, message, close_code)) = handshake(sink, stream, config, connection).await {
        tracing::info!(%peer, "handshake refused: {message}");
        let frame = error_frame(None, code, message);
        refuse(sink, &frame, close(close_code, "handshake refused"), refusal_timeout).await;
        return None;
    }
    let slot = match &connection.admission {
        None => None,
        Some(admission) => match admission.admit() {
            Some(slot) => Some(slot),
            None => {
                refuse(sink, &too_many(), close(CloseCode::Again, "too many connections"), refusal_timeout).await;
                return None;
            }
        },
    };
    let hello = ServerFrame::Hello { version: PROTOCOL_VERSION, model: engine.info(), limits: config.limits() };
    if !matches!(tokio::time::timeout(refusal_timeout, send_frame(sink, &hello)).await, Ok(Ok(()))) {
        return None;
    }
    Some(slot)
}

/// A connection's running requests: who they are (by frame id, under the one rule of who cancels
/// whom in `work`, keyed by this client and each request's session) and their frames, polled by
/// [`serve_connection`] so a chunk goes from the engine to the socket without another task in
/// between. Dropping a request's stream drops its Generation.
struct RequestTable {
    /// The server's own name for this client: the engine keys its queue turns and KV caches by it
    /// (plus the client's session keys), so no client reaches another's.
    client: ClientId,
    peer: String,
    engine: Arc<dyn Engine>,
    config: Arc<ServeConfig>,
    inflight: Registry<u64>,
    frames: SelectAll<BoxStream<'static, ServerFrame>>,
}

impl RequestTable {
    fn new(peer: String, engine: Arc<dyn Engine>, config: Arc<ServeConfig>) -> RequestTable {
        let client = ClientId::fresh();
        tracing::info!(%peer, ?client, "client connected");
        RequestTable { client, peer, engine, config, inflight: Registry::default(), frames: SelectAll::new() }
    }

    /// Acts on a client's frame after `hello`; the error frame to send when it is refused.
    fn take(&mut self, frame: ClientFrame) -> Option<ServerFrame> {
        match frame {
            ClientFrame::Hello { .. } => Some(error_frame(None, ErrorCode::BadFrame, "hello was already received")),
            ClientFrame::Cancel { id } => {
                // The request's cancel flag ends its frames and drops its Generation.
                self.inflight.cancel_where(|_, running| *running == id);
                None
            }
            ClientFrame::Generate { id, request } => self.start(id, request),
        }
    }

    fn start(&mut self, id: u64, request: crate::GenerateRequest) -> Option<ServerFrame> {
        if self.inflight.any(|_, running| *running == id) {
            return Some(error_frame(Some(id), ErrorCode::DuplicateId, format!("request {id} is already in flight")));
        }
        // The newest request of a session supersedes that session's older ones.
        let key = WorkKey::new(Some(self.client), request.session.clone().unwrap_or_default());
        self.inflight.supersede(&key);
        if self.inflight.len() >= self.config.max_in_flight {
            let message =
                format!("{} requests are already in flight on this connection (the limit)", self.inflight.len());
            return Some(error_frame(Some(id), ErrorCode::TooManyRequests, message));
        }
        match self.engine.generate_for(self.client, request) {
            Err(error @ EngineError::Busy { .. }) => {
                tracing::info!(peer = %self.peer, id, "refused: {error}");
                Some(error_frame(Some(id), ErrorCode::Busy, error.to_string()))
            }
            started => {
                let generation = started.unwrap_or_else(|error| Generation::failed(error.to_string()));
                let ticket = self.inflight.start(key, id);
                self.frames.push(request_frames(id, self.peer.clone(), generation, ticket.cancel));
                None
            }
        }
    }
}

/// Sends a refusal and then a close frame, each within `limit`: a client that does not read
/// must not hold the task.
async fn refuse<Si>(sink: &mut Si, frame: &ServerFrame, goodbye: Message, limit: Duration)
where
    Si: Sink<Message> + Unpin,
{
    if matches!(tokio::time::timeout(limit, send_frame(sink, frame)).await, Ok(Ok(()))) {
        let _ = tokio::time::timeout(limit, sink.send(goodbye)).await;
    }
}

/// Reads and checks the client's `hello`; on refusal, the error frame's code, message and the
/// close code to send.
async fn handshake<Si, St, E>(
    sink: &mut Si,
    stream: &mut St,
    config: &ServeConfig,
    connection: &Connection,
) -> Result<(), (ErrorCode, String, CloseCode)>
where
    Si: Sink<Message> + Unpin,
    St: Stream<Item = Result<Message, E>> + Unpin,
    E: Into<FrameError>,
{
    let _ = sink;
    loop {
        let incoming = tokio::time::timeout_at(connection.deadline, next_frame(stream, ClientFrame::parse)).await;
        let frame = match incoming {
            Err(_) => {
                return Err((ErrorCode::Timeout, "no hello within the handshake timeout".into(), CloseCode::Policy));
            }
            Ok(None) => return Err((ErrorCode::BadFrame, "closed before hello".into(), CloseCode::Normal)),
            Ok(Some(Ok(Incoming::Alive))) => continue,
            Ok(Some(Ok(Incoming::Frame(frame)))) => frame,
            Ok(Some(Err(FrameError::TooLarge(message)))) => {
                return Err((ErrorCode::TooLarge, message, CloseCode::Size));
            }
            Ok(Some(Err(error))) => return Err((ErrorCode::BadFrame, error.to_string(), CloseCode::Protocol)),
        };
        let ClientFrame::Hello { version, token } = frame else {
            return Err((ErrorCode::BadFrame, "the first frame must be hello".into(), CloseCode::Protocol));
        };
        if version != PROTOCOL_VERSION {
            let message = format!(
                "protocol version mismatch: the client speaks version {version}, this engine server speaks version {PROTOCOL_VERSION}; use the same Glint release on both sides"
            );
            return Err((ErrorCode::VersionMismatch, message, CloseCode::Protocol));
        }
        if let Some(expected) = &config.token {
            let given = token.as_deref().or(connection.bearer.as_deref());
            let authorized = given.is_some_and(|given| token_matches(expected, given));
            if !authorized {
                let message = if given.is_some() { "wrong token" } else { "this engine server requires a token" };
                return Err((ErrorCode::Unauthorized, message.into(), CloseCode::Policy));
            }
        }
        return Ok(());
    }
}

/// One request's frames: its chunks, then one `done` (also when `cancel` fires first, which drops
/// the Generation and so stops the engine). Logs the request's timings at the end.
fn request_frames(
    id: u64,
    peer: String,
    generation: Generation,
    cancel: CancelFlag,
) -> BoxStream<'static, ServerFrame> {
    struct Run {
        generation: Generation,
        cancel: CancelFlag,
        started: Instant,
        first_chunk_ms: Option<f64>,
    }
    let run = Run { generation, cancel, started: Instant::now(), first_chunk_ms: None };
    futures::stream::unfold(Some(run), move |run| {
        let peer = peer.clone();
        async move {
            let mut run = run?;
            let done = tokio::select! {
                _ = run.cancel.cancelled() => {
                    ServerFrame::Done { id, reason: FinishReason::Cancelled, error: None, timings: Timings::default() }
                }
                chunk = run.generation.next_chunk() => match chunk {
                    Some(Chunk::Text(text)) => {
                        let started = run.started;
                        run.first_chunk_ms.get_or_insert_with(|| started.elapsed().as_secs_f64() * 1e3);
                        return Some((ServerFrame::Chunk { id, text }, Some(run)));
                    }
                    Some(Chunk::Done(finish)) => {
                        ServerFrame::Done { id, reason: finish.reason, error: finish.error, timings: finish.timings }
                    }
                    None => ServerFrame::Done {
                        id,
                        reason: FinishReason::Error,
                        error: Some("the engine stopped without finishing the generation".into()),
                        timings: Timings::default(),
                    },
                }
            };
            if let ServerFrame::Done { reason, timings, .. } = &done {
                tracing::info!(
                    %peer,
                    id,
                    ?reason,
                    first_chunk_ms = run.first_chunk_ms.unwrap_or(0.0),
                    engine_ttft_ms = timings.ttft_ms,
                    prompt_tokens = timings.prompt_tokens,
                    cached_tokens = timings.cached_tokens,
                    decode_tokens = timings.decode_tokens,
                    total_ms = run.started.elapsed().as_secs_f64() * 1e3,
                    "request"
                );
            }
            Some((done, None))
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_needs_no_token_and_anything_else_does() {
        let loopback: SocketAddr = "127.0.0.1:7070".parse().expect("addr");
        let loopback6: SocketAddr = "[::1]:7070".parse().expect("addr");
        let any: SocketAddr = "0.0.0.0:7070".parse().expect("addr");
        let lan: SocketAddr = "192.168.1.20:7070".parse().expect("addr");
        assert!(check_listen_policy(loopback, None).is_ok());
        assert!(check_listen_policy(loopback6, None).is_ok());
        assert!(matches!(check_listen_policy(any, None), Err(ServeError::TokenRequired(_))));
        assert!(matches!(check_listen_policy(lan, None), Err(ServeError::TokenRequired(_))));
        assert!(check_listen_policy(lan, Some("t0ken")).is_ok());
        assert!(matches!(check_listen_policy(lan, Some("")), Err(ServeError::EmptyToken)));
        let message = check_listen_policy(any, None).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("--token") && message.contains("GLINT_ENGINE_TOKEN"), "{message}");
    }

    #[test]
    fn a_connection_s_debug_leaves_its_token_out() {
        let connection = Connection::new("127.0.0.1:5555", Some("s3cret-t0ken".into()), Duration::from_secs(1));
        let shown = format!("{connection:?}");
        assert!(!shown.contains("s3cret-t0ken") && shown.contains("127.0.0.1:5555"), "{shown}");
    }

    #[test]
    fn tokens_compare_by_value() {
        assert!(token_matches("s3cret", "s3cret"));
        assert!(!token_matches("s3cret", "s3cre"));
        assert!(!token_matches("s3cret", "S3cret"));
        assert!(!token_matches("s3cret", ""));
    }
}
