//! Glint's language server: documents, syntax trees, settings and the LSP routing table.
//! `glint lsp` calls [`serve`]; tests call it over an in-process pipe.

pub mod actions;
pub mod cli;
pub mod completion;
pub mod config;
pub mod context;
pub mod document;
pub mod engines;
pub mod handlers;
pub mod logging;
pub mod nextedit;
pub mod pipeline;
pub mod position;
pub mod postprocess;
pub mod schedule;
pub mod secrets;
pub mod server;
pub mod state;
pub mod syntax;
pub mod transport;
pub mod warmup;

pub use state::ServerOptions;

use tokio::io::{AsyncRead, AsyncWrite};

/// How many requests tower-lsp polls at once. Generous, so that slow AI requests never keep a
/// `didChange` (which cancels them) waiting in the queue.
const CONCURRENCY: usize = 64;

/// Serves LSP on `input`/`output` until `exit` or end of input. Returns the process exit code:
/// 0 when `shutdown` came before the end, 1 otherwise (as the specification asks).
pub async fn serve<I, O>(input: I, output: O, options: ServerOptions) -> i32
where
    I: AsyncRead + Unpin + Send + 'static,
    O: AsyncWrite + Unpin,
{
    let (service, socket, state) = server::Server::service(options);
    let (to_tower, tower_input) = tokio::io::duplex(1 << 16);
    let (tower_output, from_tower) = tokio::io::duplex(1 << 16);
    let (errors_tx, errors_rx) = tokio::sync::mpsc::unbounded_channel();
    // The input pump may block on a client that never closes its end; it must not hold up exit.
    // `exit` may be handled before the `shutdown` handler runs, so note `shutdown` as it arrives.
    let seen = std::sync::Arc::clone(&state);
    let on_method = move |method: &str| {
        if method == "shutdown" {
            seen.request_shutdown();
        }
        if method == "shutdown" || method == "exit" {
            seen.work.cancel_all();
        }
    };
    let closed = std::sync::Arc::clone(&state);
    let input_pump = tokio::spawn(async move {
        transport::pump_input(input, to_tower, errors_tx, on_method).await;
        // The client is gone (stdin closed): nobody will read answers, and tower-lsp waits for
        // running requests before it ends, so stop their engine work now.
        closed.work.cancel_all();
    });
    let server = async move {
        tower_lsp_server::Server::new(tower_input, tower_output, socket)
            .concurrency_level(CONCURRENCY)
            .serve(service)
            .await;
    };
    tokio::join!(server, transport::pump_output(from_tower, output, errors_rx));
    input_pump.abort();
    if state.shutdown_requested() { 0 } else { 1 }
}
