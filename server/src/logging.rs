//! Logging: `tracing` to stderr, and the same lines to the client as `window/logMessage` once
//! the client is connected. Nothing here ever writes to stdout, which belongs to the protocol.

use std::fmt::Write as _;
use std::sync::OnceLock;

use tokio::sync::mpsc;
use tower_lsp_server::Client;
use tower_lsp_server::ls_types::MessageType;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

type FilterHandle = reload::Handle<EnvFilter, Registry>;
type LogLine = (MessageType, String);

static FILTER: OnceLock<FilterHandle> = OnceLock::new();
static CLIENT_LOG: OnceLock<mpsc::UnboundedSender<LogLine>> = OnceLock::new();
static CLIENT_LOG_RX: OnceLock<parking_lot::Mutex<Option<mpsc::UnboundedReceiver<LogLine>>>> = OnceLock::new();

/// Installs the global subscriber. `level` is a level name or an `EnvFilter` directive;
/// `GLINT_LOG` overrides it. Safe to call more than once (later calls do nothing).
pub fn init(level: &str) {
    let directive = std::env::var("GLINT_LOG").unwrap_or_else(|_| filter_directive(level));
    let filter = EnvFilter::try_new(&directive).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let (tx, rx) = mpsc::unbounded_channel();
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
pub fn set_level(level: &str) {
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
        while let Some((kind, line)) = rx.recv().await {
            client.log_message(kind, line).await;
        }
    });
}

fn filter_directive(level: &str) -> String {
    // Dependencies are noisy at debug; keep them at warn unless asked for by directive.
    match level {
        "error" | "warn" | "info" | "debug" | "trace" => {
            format!("warn,glint={level},glint_server={level},glint_engine={level}")
        }
        other => other.to_string(),
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
        let _ = tx.send((kind, line));
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
