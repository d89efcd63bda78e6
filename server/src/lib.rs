//! Glint's language server: documents, syntax trees, settings and the LSP routing table.
//! `glint lsp` calls [`serve`]; tests call it over an in-process pipe.

pub mod cli;
pub mod config;
pub mod document;
pub mod handlers;
pub mod logging;
pub mod position;
pub mod server;
pub mod state;
pub mod syntax;

pub use state::ServerOptions;

use tokio::io::{AsyncRead, AsyncWrite};

/// How many requests tower-lsp polls at once. Generous, so that slow AI requests never keep a
/// `didChange` (which cancels them) waiting in the queue.
const CONCURRENCY: usize = 64;

/// Serves LSP on `input`/`output` until `exit` or end of input. Returns the process exit code:
/// 0 when `shutdown` came before the end, 1 otherwise (as the specification asks).
pub async fn serve<I, O>(input: I, output: O, options: ServerOptions) -> i32
where
    I: AsyncRead + Unpin,
    O: AsyncWrite,
{
    let (service, socket, state) = server::Server::service(options);
    tower_lsp_server::Server::new(input, output, socket).concurrency_level(CONCURRENCY).serve(service).await;
    if state.shutdown_requested() { 0 } else { 1 }
}
