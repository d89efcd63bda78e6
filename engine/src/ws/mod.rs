//! The remote engine over WebSocket: `server` serves any `Engine` to many clients
//! (`glint engine serve`), `client` is the `ws://`/`wss://` engine that talks to it. The frames
//! are in `crate::protocol`.

pub mod client;
pub mod server;

use serde::{Deserialize, Serialize};

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
