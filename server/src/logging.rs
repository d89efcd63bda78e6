//! Logging: `tracing` to stderr, and the same lines to the client as `window/logMessage` once
//! the client is connected. Nothing here ever writes to stdout, which belongs to the protocol.
//!
//! Lines for the client wait in a bounded queue: when the client stops reading, new lines are
//! dropped first (stderr still has them) and counted, and the count is reported once the client
//! reads again.

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;
use tower_lsp_server::Client;
use tower_lsp_server::ls_types::MessageType;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

use crate::config::LogLevel;

type FilterHandle = reload::Handle<EnvFilter, Registry>;
type LogLine = (MessageType, String);

/// Log lines waiting for the client at most.
const CLIENT_LOG_QUEUE: usize = 1024;

static FILTER: OnceLock<FilterHandle> = OnceLock::new();
static CLIENT_LOG: OnceLock<LogQueue> = OnceLock::new();
static CLIENT_LOG_RX: OnceLock<parking_lot::Mutex<Option<LogReceiver>>> = OnceLock::new();

/// The sending side of the client's log queue: never waits, drops (and counts) when full.
struct LogQueue {
    tx: mpsc::Sender<LogLine>,
    dropped: std::sync::Arc<AtomicU64>,
}

/// The receiving side: the queued lines, and a note of how many were dropped after them.
struct LogReceiver {
    rx: mpsc::Receiver<LogLine>,
    dropped: std::sync::Arc<AtomicU64>,
    /// A note owed to the client, sent before the next line.
    pending_note: Option<u64>,
}

fn log_queue(capacity: usize) -> (LogQueue, LogReceiver) {
    let (tx, rx) = mpsc::channel(capacity);
    let dropped = std::sync::Arc::new(AtomicU64::new(0));
    (LogQueue { tx, dropped: std::sync::Arc::clone(&dropped) }, LogReceiver { rx, dropped, pending_note: None })
}

impl LogQueue {
    fn push(&self, line: LogLine) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(line) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl LogReceiver {
    /// The next line for the client. Lines dropped while the queue was full are reported in one
    /// line of their own, as soon as the queue has been read down.
    async fn next(&mut self) -> Option<LogLine> {
        if let Some(count) = self.pending_note.take() {
            return Some((MessageType::WARNING, dropped_note(count)));
        }
        let line = self.rx.recv().await?;
        // The drops came after everything still queued, so they are reported after it.
        if self.rx.is_empty() {
            let dropped = self.dropped.swap(0, Ordering::Relaxed);
            if dropped > 0 {
                self.pending_note = Some(dropped);
            }
        }
        Some(line)
    }
}

fn dropped_note(count: u64) -> String {
    format!("{count} log lines were not sent here while the editor was not reading them (they are on stderr)")
}

/// Installs the global subscriber at `level` (a level name or, from the command line, a filter
/// directive; see [`LogLevel::from_command_line`]); `GLINT_LOG` overrides it. Safe to call more
/// than once (later calls do nothing).
pub fn init(level: &str) {
    let level = LogLevel::from_command_line(level);
    let directive = std::env::var("GLINT_LOG").unwrap_or_else(|_| filter_directive(&level));
    let filter = EnvFilter::try_new(&directive).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let (tx, rx) = log_queue(CLIENT_LOG_QUEUE);
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(false).with_target(false))
        .with(ClientLayer)
        .try_init()
        .is_ok();
    if installed {
        let _ = FILTER.set(handle);
        let _ = CLIENT_LOG.set(tx);
        let _ = CLIENT_LOG_RX.set(parking_lot::Mutex::new(Some(rx)));
    }
}

/// Changes the level at run time (the `logLevel` setting). Ignored when `GLINT_LOG` is set.
pub fn set_level(level: &LogLevel) {
    if std::env::var_os("GLINT_LOG").is_some() {
        return;
    }
    if let (Some(handle), Ok(filter)) = (FILTER.get(), EnvFilter::try_new(filter_directive(level))) {
        let _ = handle.reload(filter);
    }
}

/// Starts forwarding log lines to `client` as `window/logMessage`. Only the first client gets
/// them (one process serves one client).
pub fn forward_to_client(client: Client) {
    let Some(rx) = CLIENT_LOG_RX.get().and_then(|slot| slot.lock().take()) else {
        return;
    };
    tokio::spawn(async move {
        let mut rx = rx;
        while let Some((kind, line)) = rx.next().await {
            client.log_message(kind, line).await;
        }
    });
}

fn filter_directive(level: &LogLevel) -> String {
    // Dependencies are noisy at debug; keep them at warn unless asked for by directive.
    match level {
        LogLevel::Filter(directive) => directive.clone(),
        level => {
            let level = level.as_str();
            format!("warn,glint={level},glint_server={level},glint_engine={level}")
        }
    }
}

struct ClientLayer;

impl<S: Subscriber> Layer<S> for ClientLayer {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let Some(tx) = CLIENT_LOG.get() else { return };
        let kind = match *event.metadata().level() {
            Level::ERROR => MessageType::ERROR,
            Level::WARN => MessageType::WARNING,
            Level::INFO => MessageType::INFO,
            _ => MessageType::LOG,
        };
        let mut line = String::new();
        event.record(&mut LineVisitor(&mut line));
        tx.push((kind, line));
    }
}

struct LineVisitor<'a>(&'a mut String);

impl Visit for LineVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.insert_str(0, &format!("{value:?}"));
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.insert_str(0, value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_drops_new_lines_and_reports_how_many_once_read() {
        let (queue, mut rx) = log_queue(4);
        for i in 0..10 {
            queue.push((MessageType::INFO, format!("line {i}")));
        }
        let mut read = Vec::new();
        for _ in 0..5 {
            read.push(rx.next().await.map(|(_, line)| line).unwrap_or_default());
        }
        assert_eq!(read[..4], ["line 0", "line 1", "line 2", "line 3"]);
        assert_eq!(read[4], dropped_note(6));
        // Once reported, the count starts again.
        queue.push((MessageType::INFO, "line 10".into()));
        assert_eq!(rx.next().await.map(|(_, line)| line).as_deref(), Some("line 10"));
        assert_eq!(queue.dropped.load(Ordering::Relaxed), 0);
    }
}
