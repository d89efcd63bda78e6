//! The `glint` command line: `glint lsp` (the language server on stdio) and helper commands.
//! `main.rs` only calls [`main`], so the end-to-end tests can build the same program.

use clap::{Parser, Subcommand};

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
        #[arg(long, env = "GLINT_LOG_LEVEL")]
        log_level: Option<String>,
        /// Engine: `local`, `ws://host:port`, `http://host:port/v1`, or `fake:TEXT` for tests.
        #[arg(long)]
        engine: Option<String>,
        /// A GGUF model file for the local engine.
        #[arg(long)]
        model: Option<String>,
    },
}

/// Runs the command line and exits the process with its status.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Lsp { log_level, engine, model } => {
            crate::logging::init(log_level.as_deref().unwrap_or("info"));
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let test_hooks = std::env::var("GLINT_TEST_HOOKS").is_ok_and(|v| v == "1");
            let options = crate::ServerOptions { engine, model, log_level, test_hooks };
            let code = runtime.block_on(crate::serve(tokio::io::stdin(), tokio::io::stdout(), options));
            // Handlers may still hold blocking work; do not wait for it on the way out.
            runtime.shutdown_timeout(std::time::Duration::from_millis(200));
            std::process::exit(code);
        }
    }
}
