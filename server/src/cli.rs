//! The `glint` command line: `glint lsp` (the language server on stdio), `glint complete` (one
//! completion in the terminal), `glint model` (list, fetch or locate catalog models), and
//! `glint engine serve` (serve an engine to other Glint processes over WebSocket).
//! `main.rs` only calls [`main`], so the end-to-end tests can build the same program.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use glint_engine::catalog::{self, CatalogModel};
use glint_engine::fetch::{self, FetchEvent, ModelStatus};

use crate::completion::{Reading, Unanswered};
use crate::config::{EngineSpec, LogLevel};
use crate::document::Document;
use crate::engines::{self, StartSpec};
use crate::position::{self, Encoding, LinePos};

#[derive(Parser)]
#[command(name = "glint", version, about = "Instant AI code completions for every editor, over LSP.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the language server on stdin/stdout (editors start this).
    Lsp {
        /// error, warn, info, debug or trace (or a tracing filter directive). Logs go to stderr.
        #[arg(long, env = "GLINT_LOG_LEVEL", value_parser = log_level)]
        log_level: Option<LogLevel>,
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// Complete the code at a position in a file and stream the completion to stdout.
    Complete(CompleteArgs),
    /// List, fetch or locate models.
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
    /// Serve an engine to remote `glint lsp` processes.
    Engine {
        #[command(subcommand)]
        command: EngineCommand,
    },
}

#[derive(Subcommand)]
enum EngineCommand {
    /// Serve an engine over WebSocket (`glint lsp --engine ws://HOST:PORT` connects to it).
    Serve(ServeArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// HOST:PORT to listen on (port 0 picks a free one). Anything but loopback requires --token.
    #[arg(long, default_value = "127.0.0.1:7070")]
    listen: String,
    /// The bearer token clients must present (in `hello` or an `Authorization: Bearer` header).
    #[arg(long, env = "GLINT_ENGINE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// PEM certificate chain: serve wss:// (with --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Concurrent connections.
    #[arg(long, default_value_t = 64)]
    max_connections: usize,
    /// Concurrent requests per connection.
    #[arg(long, default_value_t = 16)]
    max_in_flight: usize,
    /// The largest message a client may send, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    max_message_bytes: usize,
    /// A web page origin allowed to connect (repeatable); handshakes carrying any other `Origin`
    /// header, as browsers send, are refused.
    #[arg(long = "allow-origin")]
    allow_origin: Vec<String>,
    /// error, warn, info, debug or trace (or a tracing filter directive). Logs go to stderr.
    #[arg(long, env = "GLINT_LOG_LEVEL", value_parser = log_level)]
    log_level: Option<LogLevel>,
    #[command(flatten)]
    engine: EngineArgs,
}

#[derive(Args, Clone)]
struct EngineArgs {
    /// Engine: `local` (default), `ws://…`, `wss://…`, `http(s)://…`, or `fake:TEXT` for tests.
    #[arg(long, value_parser = EngineSpec::parse)]
    engine: Option<EngineSpec>,
    /// The local engine's model: a catalog name (`glint model list`) or a GGUF file's path
    /// (default: the default model). A catalog model is fetched on first use.
    #[arg(long)]
    model: Option<String>,
    /// Threads for the local engine (default: one per physical core).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Args)]
struct CompleteArgs {
    /// FILE:LINE:COL with 1-based line and column (in characters), or FILE with --line/--character.
    location: String,
    /// 1-based line, instead of FILE:LINE:COL.
    #[arg(long)]
    line: Option<u32>,
    /// 1-based column in characters, instead of FILE:LINE:COL.
    #[arg(long)]
    character: Option<u32>,
    /// The most tokens to generate.
    #[arg(long, default_value_t = 64)]
    max_tokens: u32,
    /// Prompt budget in model tokens.
    #[arg(long, default_value_t = 1024)]
    context_tokens: usize,
    /// Do not fetch a catalog model (or the default model) when it is missing.
    #[arg(long)]
    no_fetch: bool,
    #[command(flatten)]
    engine: EngineArgs,
}

#[derive(Subcommand)]
enum ModelCommand {
    /// List the catalog: size, licence, fill-in-the-middle support, installed or not, the default.
    List,
    /// Download a catalog model into the cache, verified by sha256; resumes an interrupted fetch.
    Fetch {
        /// A catalog name (`glint model list`); default: the default model.
        name: Option<String>,
    },
    /// Print where a catalog model is (or will be once fetched).
    Path {
        /// A catalog name (`glint model list`); default: the default model.
        name: Option<String>,
    },
}

/// `--log-level`: a level, or else a `tracing` filter directive.
fn log_level(text: &str) -> Result<LogLevel, std::convert::Infallible> {
    Ok(LogLevel::from_command_line(text))
}

/// Runs the command line and exits the process with its status.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Lsp { log_level, engine } => {
            crate::logging::init(log_level.as_ref().map_or("info", LogLevel::as_str));
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let test_hooks = std::env::var("GLINT_TEST_HOOKS").is_ok_and(|v| v == "1");
            let options = crate::ServerOptions {
                injected_engine: None,
                engine: engine.engine,
                model: engine.model,
                threads: engine.threads,
                log_level,
                test_hooks,
            };
            let code = runtime.block_on(async {
                tokio::select! {
                    code = crate::serve(tokio::io::stdin(), tokio::io::stdout(), options) => code,
                    code = termination_signal() => code,
                }
            });
            // Handlers may still hold blocking work (and the stdin reader may block for good); do
            // not wait for it on the way out.
            runtime.shutdown_timeout(std::time::Duration::from_millis(50));
            std::process::exit(code);
        }
        Command::Complete(args) => {
            crate::logging::init("warn");
            complete(args)
        }
        Command::Model { command } => model_command(command),
        Command::Engine { command: EngineCommand::Serve(args) } => serve_engine(args),
    }
}

/// Waits for SIGTERM or SIGINT and returns the exit status for it (128 + the signal number).
/// Leaving `serve` drops its tasks; the process then exits without waiting for model work.
#[cfg(unix)]
async fn termination_signal() -> i32 {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::warn!("cannot listen for SIGTERM/SIGINT; only `exit` or closing stdin stops the server");
        return std::future::pending().await;
    };
    let (name, code) = tokio::select! {
        _ = term.recv() => ("SIGTERM", 143),
        _ = int.recv() => ("SIGINT", 130),
    };
    tracing::info!("{name} received; exiting");
    code
}

#[cfg(not(unix))]
async fn termination_signal() -> i32 {
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("Ctrl-C received; exiting");
    130
}

/// `glint engine serve`: loads the engine, then serves it until SIGINT or SIGTERM.
fn serve_engine(args: ServeArgs) -> anyhow::Result<()> {
    use glint_engine::ws;
    crate::logging::init(args.log_level.as_ref().map_or("info", LogLevel::as_str));
    let addr: std::net::SocketAddr = args
        .listen
        .parse()
        .with_context(|| format!("--listen expects IP:PORT, e.g. 127.0.0.1:7070; got `{}`", args.listen))?;
    ws::check_listen_policy(addr, args.token.as_deref())?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(ws::load_tls(cert, key)?),
        _ => None,
    };
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    let spec = StartSpec {
        engine: args.engine.engine.clone().unwrap_or_default(),
        model: args.engine.model.clone(),
        threads: args.engine.threads,
        fetch_default: true,
        fallback: crate::config::Fallback::None,
        approximate_kv_reuse: true,
        http: engines::HttpOptions::default(),
    };
    let engine = engines::start(&spec, &mut |message| eprintln!("{message}")).map_err(anyhow::Error::msg)?;
    let config = ws::ServeConfig {
        token: args.token,
        tls,
        max_connections: args.max_connections.max(1),
        max_in_flight: args.max_in_flight.max(1),
        max_message_bytes: args.max_message_bytes.max(4096),
        allowed_origins: args.allow_origin,
        ..ws::ServeConfig::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
        let bound = listener.local_addr()?;
        let info = engine.info();
        eprintln!("glint engine serve: {} engine ({}) listening on {scheme}://{bound}", info.kind, info.model);
        ws::serve(listener, engine, config, stop_signal()).await?;
        eprintln!("glint engine serve: stopped");
        Ok::<_, anyhow::Error>(())
    })?;
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
                _ = int.recv() => tracing::info!("SIGINT received; shutting down"),
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("interrupted; shutting down");
}

fn report_path(path: &std::path::Path) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", path.display())?;
    Ok(())
}

/// `glint model list|fetch|path`.
fn model_command(command: ModelCommand) -> anyhow::Result<()> {
    match command {
        ModelCommand::List => list_models(),
        ModelCommand::Fetch { name } => {
            let model = catalog_model(name.as_deref())?;
            let mut printer = ProgressPrinter::new();
            let path = fetch::fetch_model(model, &mut |event| printer.show(event));
            drop(printer);
            let path = path?;
            if model.is_default() {
                eprintln!("default model ready");
            } else {
                eprintln!("{} ready; use it with `--model {0}` or the `model` setting", model.name);
            }
            report_path(&path)
        }
        ModelCommand::Path { name } => report_path(&fetch::model_path(catalog_model(name.as_deref())?)),
    }
}

/// The catalog entry `name` names, or the default one.
fn catalog_model(name: Option<&str>) -> anyhow::Result<&'static CatalogModel> {
    let Some(name) = name else { return Ok(catalog::DEFAULT) };
    catalog::find(name).with_context(|| {
        format!("no model `{name}` in the catalog; it has {} (see `glint model list`)", catalog::names())
    })
}

/// The catalog as a table on stdout, then the licence notices and where models go.
fn list_models() -> anyhow::Result<()> {
    let header = ["NAME", "SIZE", "LICENCE", "FIM", "INSTALLED", "DEFAULT", "PATH"].map(String::from);
    let mut rows = vec![header];
    for model in catalog::CATALOG {
        let (installed, path) = match fetch::model_status(model) {
            ModelStatus::Installed(path) => ("yes".to_string(), path.display().to_string()),
            ModelStatus::Partial { parts, of } => (format!("no ({parts}/{of} parts)"), String::new()),
            ModelStatus::Missing => ("no".to_string(), String::new()),
        };
        let yes_no = |b: bool| if b { "yes" } else { "no" }.to_string();
        rows.push([
            model.name.to_string(),
            fetch::megabytes(model.size),
            model.licence.to_string(),
            yes_no(model.fim),
            installed,
            if model.is_default() { "*".to_string() } else { String::new() },
            path,
        ]);
    }
    let mut widths = [0usize; 7];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = std::io::stdout().lock();
    for row in &rows {
        let line: Vec<String> = row.iter().zip(widths).map(|(cell, width)| format!("{cell:width$}")).collect();
        writeln!(out, "{}", line.join("  ").trim_end())?;
    }
    writeln!(out)?;
    let mut notices: Vec<&str> = catalog::CATALOG.iter().filter_map(|m| m.notice).collect();
    notices.dedup();
    for notice in notices {
        let names: Vec<&str> = catalog::CATALOG.iter().filter(|m| m.notice == Some(notice)).map(|m| m.name).collect();
        let first = notice.lines().next().unwrap_or_default();
        writeln!(out, "{}: {first} (the full notice is written next to the model file)", names.join(", "))?;
    }
    writeln!(out, "models folder: {}", fetch::models_dir().display())?;
    writeln!(out, "`glint model fetch NAME` fetches one; `--model NAME` or the `model` setting uses it")?;
    Ok(())
}

/// Shows a fetch's progress on stderr: one line rewritten in place on a terminal, else a line per
/// event, so logs and pipes stay readable.
struct ProgressPrinter {
    terminal: bool,
    open_line: bool,
}

impl ProgressPrinter {
    fn new() -> ProgressPrinter {
        use std::io::IsTerminal as _;
        ProgressPrinter { terminal: std::io::stderr().is_terminal(), open_line: false }
    }

    fn show(&mut self, event: &FetchEvent<'_>) {
        let mut err = std::io::stderr().lock();
        // Progress is best effort: a closed stderr must not fail the fetch.
        if self.terminal && matches!(event, FetchEvent::Part(_)) {
            let _ = write!(err, "\r\x1b[2K{event}");
            let _ = err.flush();
            self.open_line = true;
            return;
        }
        if std::mem::take(&mut self.open_line) {
            let _ = writeln!(err);
        }
        let _ = writeln!(err, "{event}");
    }
}

impl Drop for ProgressPrinter {
    fn drop(&mut self) {
        if self.open_line {
            eprintln!();
        }
    }
}

/// Splits `FILE:LINE:COL` (1-based); `--line`/`--character` win when given.
fn parse_location(args: &CompleteArgs) -> anyhow::Result<(PathBuf, u32, u32)> {
    if let (Some(line), Some(character)) = (args.line, args.character) {
        return Ok((PathBuf::from(&args.location), line, character));
    }
    let mut parts = args.location.rsplitn(3, ':');
    let (col, line, file) = (parts.next(), parts.next(), parts.next());
    match (file, line.and_then(|l| l.parse().ok()), col.and_then(|c| c.parse().ok())) {
        (Some(file), Some(line), Some(col)) => Ok((PathBuf::from(file), line, col)),
        _ => bail!("expected FILE:LINE:COL (1-based), or FILE with --line and --character; got `{}`", args.location),
    }
}

fn complete(args: CompleteArgs) -> anyhow::Result<()> {
    let (path, line, col) = parse_location(&args)?;
    if line == 0 || col == 0 {
        bail!("line and column are 1-based; got {line}:{col}");
    }
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{} is not UTF-8 text (invalid byte at offset {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })?;
    if text.contains('\0') {
        bail!("{} looks binary (it contains NUL bytes)", path.display());
    }
    let uri = format!("file://{}", std::path::absolute(&path).unwrap_or(path.clone()).display());
    let doc = Document::new(&uri, "", 0, &text);
    let cursor = position::to_char(&doc.rope, LinePos { line: line - 1, character: col - 1 }, Encoding::Utf32);

    let spec = StartSpec {
        engine: args.engine.engine.clone().unwrap_or_default(),
        model: args.engine.model.clone(),
        threads: args.engine.threads,
        fetch_default: !args.no_fetch,
        fallback: crate::config::Fallback::None,
        approximate_kv_reuse: true,
        http: engines::HttpOptions::default(),
    };
    let started = std::time::Instant::now();
    let engine = engines::start(&spec, &mut |message| eprintln!("{message}")).map_err(anyhow::Error::msg)?;
    let load_ms = started.elapsed().as_secs_f64() * 1e3;

    let prepared = crate::completion::request_for_cli(&doc, cursor, args.context_tokens, args.max_tokens, &*engine)
        .map_err(|why| anyhow::anyhow!("no completion here: {why}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let answer = runtime.block_on(async {
        let (request, answer) = prepared.into_parts(&doc, cursor);
        let mut reading = Reading::start(&*engine, request, answer);
        let mut out = std::io::stdout().lock();
        let mut shown = String::new();
        while reading.step().await {
            // Stream the cleaned text as it grows; it only ever extends what was shown.
            let cleaned = reading.answer().text().unwrap_or_default();
            if let Some(new) = cleaned.strip_prefix(shown.as_str()) {
                let stable = new.rfind('\n').map_or("", |at| &new[..=at]);
                out.write_all(stable.as_bytes())?;
                out.flush()?;
                shown.push_str(stable);
            }
        }
        if reading.answer().finish().is_none() {
            // The answer is complete: stop the model, but read on to its final chunk for the timings.
            reading.stop_for_timings().await;
        }
        let answer = reading.into_answer();
        tracing::debug!(raw = ?answer.raw(), "model text");
        let cleaned = match answer.verdict() {
            Ok(text) => text.unwrap_or_default(),
            Err(Unanswered::Failed(why)) => bail!("the engine failed: {why}"),
            Err(Unanswered::Cancelled) => bail!("the engine cancelled the generation"),
        };
        if let Some(rest) = cleaned.strip_prefix(shown.as_str()) {
            out.write_all(rest.as_bytes())?;
        }
        writeln!(out)?;
        Ok::<_, anyhow::Error>(answer)
    })?;
    let Some(finish) = answer.finish().cloned() else { bail!("the engine stopped without finishing") };
    let t = &finish.timings;
    eprintln!(
        "[{}] load {:.0} ms | prompt {} tokens ({} cached) | prefill {:.0} ms | first token {:.0} ms | {} tokens at {:.1} tok/s | total {:.0} ms | stop: {:?}",
        engine.info().model,
        load_ms,
        t.prompt_tokens,
        t.cached_tokens,
        t.prefill_ms,
        t.ttft_ms,
        t.decode_tokens,
        t.decode_tokens_per_s,
        t.total_ms,
        finish.reason,
    );
    Ok(())
}
