//! The `ws://`/`wss://` engine: implements `Engine` over one persistent WebSocket to
//! `glint engine serve`. A background thread owns the connection: it keeps it warm with pings,
//! reconnects with exponential backoff and jitter, and publishes the connection state.
//! While disconnected, requests fail at once (or go to the fallback engine); every request ends
//! within its deadline or the client's request timeout, whatever the server does.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, SinkExt, StreamExt};
use parking_lot::RwLock;
use rand::Rng;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use super::{ConnectionState, ConnectionStatus};
use crate::protocol::{
    ClientFrame, ErrorCode, Incoming, Limits, PROTOCOL_VERSION, ServerFrame, message, next_frame, send_frame,
};
use crate::{Engine, EngineInfo, Finish, FinishReason, GenerateRequest, Generation, GenerationSender};

/// How the client connects. Its `Debug` never shows the token.
#[derive(Clone)]
pub struct WsClientConfig {
    /// `ws://host:port` or `wss://host:port`.
    pub url: String,
    /// Sent in `hello` and as `Authorization: Bearer`.
    pub token: Option<String>,
    /// A PEM file of extra trusted certificates for `wss://` (a self-signed server).
    pub ca_file: Option<PathBuf>,
    /// TCP, TLS, WebSocket and `hello` together.
    pub connect_timeout: Duration,
    /// The longest any request may take when it has no `deadline_ms` (and the cap when it has).
    pub request_timeout: Duration,
    /// How long past `deadline_ms` the client waits for the server to report the deadline itself.
    pub deadline_grace: Duration,
    /// Ping interval; a connection silent for three intervals is considered lost.
    pub keepalive: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// The largest message accepted from the server.
    pub max_message_bytes: usize,
}

impl std::fmt::Debug for WsClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsClientConfig")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("ca_file", &self.ca_file)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("deadline_grace", &self.deadline_grace)
            .field("keepalive", &self.keepalive)
            .field("backoff_min", &self.backoff_min)
            .field("backoff_max", &self.backoff_max)
            .field("max_message_bytes", &self.max_message_bytes)
            .finish()
    }
}

impl WsClientConfig {
    pub fn new(url: impl Into<String>) -> WsClientConfig {
        WsClientConfig {
            url: url.into(),
            token: None,
            ca_file: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            deadline_grace: Duration::from_millis(250),
            keepalive: Duration::from_secs(5),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            max_message_bytes: 16 << 20,
        }
    }

    /// `new`, with the token from `GLINT_ENGINE_TOKEN` and extra trusted certificates from
    /// `GLINT_ENGINE_CA` when set.
    pub fn from_env(url: impl Into<String>) -> WsClientConfig {
        let mut config = WsClientConfig::new(url);
        config.token = std::env::var("GLINT_ENGINE_TOKEN").ok().filter(|t| !t.is_empty());
        config.ca_file = std::env::var_os("GLINT_ENGINE_CA").map(PathBuf::from);
        config
    }
}

/// Why the client cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid engine URL `{0}`: expected ws://host:port or wss://host:port")]
    InvalidUrl(String),
    #[error(
        "refusing to send the engine token (GLINT_ENGINE_TOKEN) over plain ws:// to `{0}`: use wss:// in the \
         `engine` setting, or a server on this machine"
    )]
    CleartextToken(String),
    #[error("cannot start the connection thread: {0}")]
    Thread(std::io::Error),
}

/// The remote engine client.
pub struct WsEngine {
    url: String,
    commands: mpsc::UnboundedSender<Command>,
    state: watch::Receiver<ConnectionState>,
    remote: Arc<RwLock<Option<EngineInfo>>>,
    next_id: AtomicU64,
    fallback: Option<Arc<dyn Engine>>,
}

/// A request for the connection, moved once from `generate` to the connection loop.
struct Command {
    id: u64,
    request: GenerateRequest,
    sender: GenerationSender,
}

impl WsEngine {
    /// Starts connecting in the background and returns at once; see `wait_connected`.
    pub fn connect(config: WsClientConfig) -> Result<WsEngine, ClientError> {
        let valid = (config.url.starts_with("ws://") || config.url.starts_with("wss://"))
            && config.url.as_str().into_client_request().is_ok();
        if !valid {
            return Err(ClientError::InvalidUrl(config.url));
        }
        if config.token.is_some()
            && let Some(host) = crate::http::cleartext_remote_host(&config.url)
        {
            return Err(ClientError::CleartextToken(host));
        }
        let initial =
            ConnectionState { url: config.url.clone(), status: ConnectionStatus::Connecting, error: None, connects: 0 };
        let (state_tx, state) = watch::channel(initial);
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let remote = Arc::new(RwLock::new(None));
        let manager = Manager { config: config.clone(), state: state_tx, remote: Arc::clone(&remote) };
        // On a multi-threaded runtime the connection lives there: a frame then reaches the
        // consumer without a hop through another thread. Elsewhere (a command-line tool without a
        // runtime, a single-threaded test) it gets a thread of its own.
        match tokio::runtime::Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                handle.spawn(manager.run(commands_rx));
            }
            _ => {
                std::thread::Builder::new()
                    .name("glint-ws-client".into())
                    .spawn(move || match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                        Ok(runtime) => runtime.block_on(manager.run(commands_rx)),
                        Err(error) => tracing::error!("the WebSocket client cannot start its runtime: {error}"),
                    })
                    .map_err(ClientError::Thread)?;
            }
        }
        Ok(WsEngine { url: config.url, commands, state, remote, next_id: AtomicU64::new(1), fallback: None })
    }

    /// Sends requests to `engine` while the connection is down.
    pub fn with_fallback(mut self, engine: Arc<dyn Engine>) -> WsEngine {
        self.fallback = Some(engine);
        self
    }

    /// The current connection state.
    pub fn state(&self) -> ConnectionState {
        self.state.borrow().clone()
    }

    /// Waits until connected, or until `timeout`; returns whether it is connected. Blocking, for
    /// startup code off the async runtime's worker threads (async code uses `settled`).
    pub fn wait_connected(&self, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        loop {
            let state = self.state.borrow().clone();
            match state.status {
                ConnectionStatus::Connected => return true,
                // The first attempt has failed: do not hold up startup for the retries.
                ConnectionStatus::Disconnected => return false,
                ConnectionStatus::Connecting if Instant::now() >= until => return false,
                ConnectionStatus::Connecting => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }

    /// Waits until the first connection attempt has settled; returns whether it is connected.
    pub async fn settled(&self) -> bool {
        let mut state = self.state.clone();
        let settled = state.wait_for(|s| s.status != ConnectionStatus::Connecting).await;
        settled.is_ok_and(|s| s.status == ConnectionStatus::Connected)
    }

    /// Waits until connected (async).
    pub async fn connected(&self) {
        let mut state = self.state.clone();
        let _ = state.wait_for(|s| s.status == ConnectionStatus::Connected).await;
    }
}

impl Engine for WsEngine {
    fn generate(&self, request: GenerateRequest) -> Generation {
        let state = self.state.borrow().clone();
        if state.status != ConnectionStatus::Connected {
            if let Some(fallback) = &self.fallback {
                tracing::debug!(url = %self.url, "remote engine not connected; using the fallback engine");
                return fallback.generate(request);
            }
            let why = state.error.map(|e| format!(": {e}")).unwrap_or_default();
            return Generation::failed(format!(
                "the remote engine at {} is not connected{why}; reconnecting in the background",
                self.url
            ));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (generation, sender) = Generation::channel();
        if let Err(mpsc::error::SendError(Command { sender, .. })) = self.commands.send(Command { id, request, sender })
        {
            sender.finish(failure("the WebSocket client has stopped"));
        }
        generation
    }

    fn info(&self) -> EngineInfo {
        match self.remote.read().clone() {
            Some(remote) => EngineInfo { kind: "ws".into(), ..remote },
            None => match &self.fallback {
                Some(fallback) => EngineInfo { kind: "ws".into(), ..fallback.info() },
                None => EngineInfo { kind: "ws".into(), model: self.url.clone(), context_length: 8192, fim: true },
            },
        }
    }

    fn connection(&self) -> Option<watch::Receiver<ConnectionState>> {
        Some(self.state.clone())
    }
}

fn failure(message: impl Into<String>) -> Finish {
    Finish { reason: FinishReason::Error, error: Some(message.into()), ..Finish::default() }
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct Manager {
    config: WsClientConfig,
    state: watch::Sender<ConnectionState>,
    remote: Arc<RwLock<Option<EngineInfo>>>,
}

/// Why a request's watcher fired (see `Manager::watch`).
enum Watched {
    /// Its consumer cancelled or dropped the generation.
    Cancelled(u64),
    /// Its time ran out.
    TimedOut { id: u64, limit: Duration, reason: FinishReason },
}

impl Manager {
    async fn run(self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut attempt: u32 = 0;
        let mut connects = 0;
        loop {
            self.set(ConnectionStatus::Connecting, None, connects);
            let opened = tokio::select! {
                opened = tokio::time::timeout(self.config.connect_timeout, open(&self.config)) => {
                    opened.unwrap_or_else(|_| Err(format!("no answer within {:?}", self.config.connect_timeout)))
                }
                // The engine was dropped while connecting.
                () = commands_closed(&commands) => return,
            };
            let reason = match opened {
                Ok((socket, info, limits)) => {
                    connects += 1;
                    attempt = 0;
                    tracing::info!(url = %self.config.url, model = %info.model, "connected to the remote engine");
                    *self.remote.write() = Some(info);
                    self.set(ConnectionStatus::Connected, None, connects);
                    match self.serve(socket, &limits, &mut commands).await {
                        Some(reason) => reason,
                        None => return,
                    }
                }
                Err(reason) => reason,
            };
            let delay = backoff(&self.config, attempt);
            attempt = attempt.saturating_add(1);
            tracing::warn!(
                url = %self.config.url,
                "remote engine unavailable: {reason}; reconnecting in {} ms",
                delay.as_millis()
            );
            self.set(ConnectionStatus::Disconnected, Some(reason.clone()), connects);
            // While waiting, requests that raced with the loss fail at once.
            let sleep = tokio::time::sleep(delay);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    () = &mut sleep => break,
                    command = commands.recv() => match command {
                        None => return,
                        Some(Command { sender, .. }) => {
                            sender.finish(failure(format!("the remote engine at {} is not connected: {reason}", self.config.url)));
                        }
                    },
                }
            }
        }
    }

    fn set(&self, status: ConnectionStatus, error: Option<String>, connects: u32) {
        self.state.send_replace(ConnectionState { url: self.config.url.clone(), status, error, connects });
    }

    /// Runs one connection until it is lost (the reason) or the engine is dropped (`None`).
    async fn serve(
        &self,
        socket: Socket,
        limits: &Limits,
        commands: &mut mpsc::UnboundedReceiver<Command>,
    ) -> Option<String> {
        let (mut sink, mut stream) = socket.split();
        // The requests sent and not yet ended, by id.
        let mut pending: HashMap<u64, GenerationSender> = HashMap::new();
        let mut watchers: FuturesUnordered<BoxFuture<'static, Watched>> = FuturesUnordered::new();
        let mut ping = tokio::time::interval(self.config.keepalive);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        let reason = loop {
            tokio::select! {
                command = commands.recv() => match command {
                    None => {
                        let _ = sink.send(Message::Close(None)).await;
                        return None;
                    }
                    Some(Command { id, request, sender }) => {
                        let watcher = self.watch(id, &request, sender.clone());
                        let frame = message(&ClientFrame::Generate { id, request });
                        // The server would close the whole connection over an oversized message,
                        // failing every other request on it: refuse this one alone, here.
                        if frame.len() > limits.max_message_bytes {
                            sender.finish(failure(format!(
                                "the request is {} bytes, over the remote engine's limit of {} bytes; lower contextTokens",
                                frame.len(),
                                limits.max_message_bytes
                            )));
                            continue;
                        }
                        if let Err(error) = sink.send(frame).await {
                            sender.finish(failure(format!("sending to the remote engine failed: {error}")));
                            break format!("send failed: {error}");
                        }
                        watchers.push(watcher);
                        pending.insert(id, sender);
                    }
                },
                // A consumer went away or a request ran out of time: the server stops its work.
                // (A finished request's watcher fires too, later, and finds nothing to do.)
                Some(watched) = watchers.next(), if !watchers.is_empty() => {
                    let id = match watched {
                        Watched::Cancelled(id) => id,
                        Watched::TimedOut { id, limit, reason } => {
                            if let Some(sender) = pending.get(&id) {
                                let message = format!(
                                    "the remote engine at {} did not finish within {} ms",
                                    self.config.url,
                                    limit.as_millis()
                                );
                                tracing::warn!("{message}");
                                sender.finish(Finish { reason, error: Some(message), ..Finish::default() });
                            }
                            id
                        }
                    };
                    if pending.remove(&id).is_some() && let Err(error) = send_frame(&mut sink, &ClientFrame::Cancel { id }).await {
                        break format!("send failed: {error}");
                    }
                }
                incoming = next_frame(&mut stream, ServerFrame::parse) => {
                    last_heard = Instant::now();
                    match incoming {
                        None => break "the server closed the connection".to_string(),
                        Some(Err(error)) => break error.to_string(),
                        Some(Ok(Incoming::Alive)) => {}
                        Some(Ok(Incoming::Frame(frame))) => self.on_frame(frame, &mut pending),
                    }
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() > self.config.keepalive * 3 {
                        break format!("no answer to pings for {} ms", last_heard.elapsed().as_millis());
                    }
                    if let Err(error) = sink.send(Message::Ping(Vec::new().into())).await {
                        break format!("ping failed: {error}");
                    }
                }
            }
        };
        let lost = format!("the connection to the remote engine at {} was lost: {reason}", self.config.url);
        for (_, sender) in pending.drain() {
            sender.finish(failure(lost.clone()));
        }
        Some(reason)
    }

    fn on_frame(&self, frame: ServerFrame, pending: &mut HashMap<u64, GenerationSender>) {
        match frame {
            ServerFrame::Chunk { id, text } => {
                // A consumer that went away is noticed by the request's watcher, which cancels.
                if let Some(sender) = pending.get(&id) {
                    sender.send_text(text);
                }
            }
            ServerFrame::Done { id, reason, error, timings } => {
                if let Some(sender) = pending.remove(&id) {
                    sender.finish(Finish { reason, error, timings });
                }
            }
            ServerFrame::Error { id: Some(id), code, message } => {
                if let Some(sender) = pending.remove(&id) {
                    let error = match code {
                        ErrorCode::Busy => format!("the remote engine is busy serving other clients: {message}"),
                        code => format!("the remote engine refused the request ({code:?}): {message}"),
                    };
                    sender.finish(failure(error));
                }
            }
            ServerFrame::Error { id: None, code, message } => {
                tracing::warn!(url = %self.config.url, ?code, "remote engine: {message}");
            }
            ServerFrame::Hello { .. } => {}
        }
    }

    /// Fires when request `id`'s consumer goes away or its time is up. Polled by the connection
    /// loop: no task of its own. It does not end when the request does (that would wake the
    /// connection loop while it hands the request's last chunk to its consumer, and make the
    /// runtime wake a second thread); it fires later, when the consumer drops the generation or at
    /// the limit, and the loop ignores a request it no longer has.
    fn watch(&self, id: u64, request: &GenerateRequest, sender: GenerationSender) -> BoxFuture<'static, Watched> {
        let (limit, reason) = match request.deadline_ms {
            Some(ms) => (
                (Duration::from_millis(ms) + self.config.deadline_grace).min(self.config.request_timeout),
                FinishReason::Deadline,
            ),
            None => (self.config.request_timeout, FinishReason::Error),
        };
        async move {
            tokio::select! {
                () = sender.cancelled() => Watched::Cancelled(id),
                () = tokio::time::sleep(limit) => Watched::TimedOut { id, limit, reason },
            }
        }
        .boxed()
    }
}

/// Resolves when every `WsEngine` handle is gone (only weak senders remain).
async fn commands_closed(commands: &mpsc::UnboundedReceiver<Command>) {
    while !commands.is_closed() && commands.sender_strong_count() > 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Exponential backoff with jitter: `backoff_min * 2^attempt`, capped, then a random 50–100% of it.
fn backoff(config: &WsClientConfig, attempt: u32) -> Duration {
    let exp = config.backoff_min.saturating_mul(1u32 << attempt.min(16)).min(config.backoff_max);
    let jitter = rand::rng().random_range(0.5..=1.0);
    exp.mul_f64(jitter)
}

/// Connects, sends `hello` and reads the server's; the remote engine's description and limits on
/// success.
async fn open(config: &WsClientConfig) -> Result<(Socket, EngineInfo, Limits), String> {
    let mut request = config.url.as_str().into_client_request().map_err(|e| e.to_string())?;
    if let Some(token) = &config.token {
        let value =
            format!("Bearer {token}").parse().map_err(|_| "the token is not a valid header value".to_string())?;
        request.headers_mut().insert("authorization", value);
    }
    let connector = if config.url.starts_with("wss://") { Some(Connector::Rustls(tls_config(config)?)) } else { None };
    let ws_config = super::websocket_config(config.max_message_bytes);
    let (mut socket, _) = tokio_tungstenite::connect_async_tls_with_config(request, Some(ws_config), true, connector)
        .await
        .map_err(|e| e.to_string())?;
    send_frame(&mut socket, &ClientFrame::Hello { version: PROTOCOL_VERSION, token: config.token.clone() })
        .await
        .map_err(|e| e.to_string())?;
    loop {
        match next_frame(&mut socket, ServerFrame::parse).await {
            Some(Ok(Incoming::Alive)) => continue,
            Some(Ok(Incoming::Frame(ServerFrame::Hello { version, model, limits }))) => {
                if version != PROTOCOL_VERSION {
                    return Err(format!(
                        "protocol version mismatch: the server speaks version {version}, this client speaks version {PROTOCOL_VERSION}"
                    ));
                }
                return Ok((socket, model, limits));
            }
            Some(Ok(Incoming::Frame(ServerFrame::Error { message, .. }))) => {
                return Err(format!("the engine server refused the connection: {message}"));
            }
            Some(Ok(Incoming::Frame(_))) => return Err("the engine server did not start with hello".into()),
            Some(Err(error)) => return Err(format!("during the handshake: {error}")),
            None => return Err("the engine server closed the connection during the handshake".into()),
        }
    }
}

fn tls_config(config: &WsClientConfig) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = &config.ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        for cert in certs {
            roots.add(cert).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(tls))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let config = WsClientConfig::new("ws://127.0.0.1:1");
        for attempt in 0..40 {
            let delay = backoff(&config, attempt);
            let exp = config.backoff_min.saturating_mul(1 << attempt.min(16)).min(config.backoff_max);
            assert!(delay <= exp && delay >= exp / 2, "attempt {attempt}: {delay:?} vs {exp:?}");
        }
        assert!(backoff(&config, 30) >= config.backoff_max / 2);
    }

    #[test]
    fn urls_other_than_ws_are_refused() {
        assert!(matches!(WsEngine::connect(WsClientConfig::new("http://x:1")), Err(ClientError::InvalidUrl(_))));
        assert!(matches!(WsEngine::connect(WsClientConfig::new("ws://")), Err(ClientError::InvalidUrl(_))));
    }

    #[test]
    fn tokens_never_go_in_the_clear_to_another_host_and_never_show_in_debug() {
        let with_token = |url: &str| WsClientConfig { token: Some("s3cret-token".into()), ..WsClientConfig::new(url) };
        let refused = WsEngine::connect(with_token("ws://10.0.0.5:7070"));
        assert!(matches!(&refused, Err(ClientError::CleartextToken(host)) if host == "10.0.0.5"));
        let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("GLINT_ENGINE_TOKEN") && message.contains("wss://"), "{message}");
        for url in ["ws://127.0.0.1:1", "ws://localhost:1", "ws://[::1]:1", "wss://10.0.0.5:1"] {
            assert!(WsEngine::connect(with_token(url)).is_ok(), "{url}");
        }
        assert!(WsEngine::connect(WsClientConfig::new("ws://10.0.0.5:1")).is_ok(), "no token, nothing to leak");
        let shown = format!("{:?}", with_token("ws://127.0.0.1:1"));
        assert!(!shown.contains("s3cret") && shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn an_unreachable_server_fails_requests_at_once_with_a_clear_error() {
        // Port 1 on loopback refuses connections.
        let engine = WsEngine::connect(WsClientConfig::new("ws://127.0.0.1:1")).expect("start");
        assert!(!engine.wait_connected(Duration::from_secs(5)));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let (_, finish) = runtime.block_on(engine.generate(GenerateRequest::default()).collect_text());
        assert_eq!(finish.reason, FinishReason::Error);
        let message = finish.error.unwrap_or_default();
        assert!(message.contains("not connected") && message.contains("127.0.0.1:1"), "{message}");
        assert_eq!(engine.info().kind, "ws");
        assert_eq!(engine.connection().map(|c| c.borrow().status), Some(ConnectionStatus::Disconnected));
    }
}
