//! The remote engine over WebSocket: `server` serves any `Engine` to many clients
//! (`glint engine serve`), `client` is the `ws://`/`wss://` engine that talks to it. The frames
//! are in `crate::protocol`.

pub mod client;
pub mod server;

use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub use client::{ClientError, WsClientConfig, WsEngine};
pub use server::{ServeConfig, ServeError, check_listen_policy, load_tls, serve, serve_connection, token_matches};

/// Where a remote engine's connection stands; engines with a connection publish it through
/// `Engine::connection`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionState {
    pub url: String,
    pub status: ConnectionStatus,
    /// Why the last connection attempt failed or the connection was lost.
    pub error: Option<String>,
    /// How many times a connection was established so far.
    pub connects: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    Connecting,
    Connected,
    Disconnected,
}

/// The WebSocket settings of both ends. tungstenite zeroes its whole read buffer before every
/// read of the socket (128 KiB by default, a memset per frame that showed in profiles); frames
/// here are a few KiB, and larger ones still arrive, over more reads.
fn websocket_config(max_message_bytes: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(16 << 10)
        .max_message_size(Some(max_message_bytes))
        .max_frame_size(Some(max_message_bytes))
}
