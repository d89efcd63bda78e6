//! The `LanguageServer` implementation: a routing table from LSP methods to `handlers`.
//! Every handler runs behind a panic guard, so one bad request cannot take the server down.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use serde_json::Value;
use tower_lsp_server::jsonrpc::{Error, Result};
use tower_lsp_server::ls_types::*;
use tower_lsp_server::{Client, LanguageServer, LspService};

use crate::engines::{self, EngineSlot, StartSpec};
use crate::handlers;
use crate::logging;
use crate::state::{ServerOptions, State};

pub struct Server {
    client: Client,
    state: Arc<State>,
}

impl Server {
    /// The tower service and the client socket for `tower_lsp_server::Server::serve`, with every
    /// custom method registered. `state` stays readable by the caller (for the exit code).
    pub fn service(options: ServerOptions) -> (LspService<Server>, tower_lsp_server::ClientSocket, Arc<State>) {
        let state = Arc::new(State::new(options));
        let shared = Arc::clone(&state);
        let (service, socket) = LspService::build(move |client| Server { client, state: shared })
            .custom_method("glint/status", Server::status)
            .custom_method("glint/documentState", Server::document_state)
            .custom_method("glint/debugPanic", Server::debug_panic)
            .custom_method("glint/nextEdit", Server::next_edit)
            .custom_method("textDocument/copilotInlineEdit", Server::copilot_inline_edit)
            .custom_method("textDocument/inlineCompletion", Server::inline_completion)
            .custom_method("window/workDoneProgress/cancel", Server::progress_cancel)
            .finish();
        (service, socket, state)
    }

    async fn status(&self) -> Result<Value> {
        guard("glint/status", async { Ok(handlers::ext::status(&self.state)) }).await
    }

    async fn document_state(
        &self,
        params: handlers::ext::DocumentStateParams,
    ) -> Result<Option<handlers::ext::DocumentState>> {
        guard("glint/documentState", async { Ok(handlers::ext::document_state(&self.state, params)) }).await
    }

    async fn next_edit(
        &self,
        params: handlers::nextedit::NextEditParams,
    ) -> Result<handlers::nextedit::NextEditResult> {
        guard("glint/nextEdit", handlers::nextedit::next_edit(&self.state, params)).await
    }

    async fn copilot_inline_edit(&self, params: handlers::nextedit::NextEditParams) -> Result<Value> {
        guard("textDocument/copilotInlineEdit", async {
            Ok(handlers::nextedit::copilot_inline_edit(&self.state, params))
        })
        .await
    }

    async fn inline_completion(&self, params: InlineCompletionParams) -> Result<Option<InlineCompletionResponse>> {
        guard(
            "textDocument/inlineCompletion",
            handlers::completion::inline_completion(&self.state, &self.client, params),
        )
        .await
    }

    async fn progress_cancel(&self, params: WorkDoneProgressCancelParams) {
        guard_sync("window/workDoneProgress/cancel", || handlers::actions::progress_cancel(&self.state, params));
    }

    /// Starts (or restarts) the engine when its settings changed, off the async runtime.
    fn start_engine(&self) {
        if let Some(engine) = &self.state.options.injected_engine {
            self.state.set_engine(EngineSlot::Ready(Arc::clone(engine)));
            return;
        }
        let settings = self.state.settings.read().clone();
        let spec = StartSpec {
            engine: settings.engine.clone(),
            model: settings.model.clone(),
            threads: settings.threads.map(|t| t as usize).or(self.state.options.threads),
            fetch_default: true,
            fallback: settings.fallback,
            approximate_kv_reuse: settings.approximate_kv_reuse,
            http: engines::HttpOptions::from_settings(&settings),
        };
        if self.state.engine_spec.read().as_ref() == Some(&spec) {
            return;
        }
        *self.state.engine_spec.write() = Some(spec.clone());
        self.state.set_engine(EngineSlot::Loading);
        let state = Arc::clone(&self.state);
        let client = self.client.clone();
        tokio::spawn(async move {
            let wanted = spec.clone();
            // Loading a model takes seconds: when a start takes longer than a moment, clients that
            // show work-done progress get a "Loading model" bar fed by the loader's own messages.
            let (messages, mut received) = tokio::sync::mpsc::unbounded_channel::<String>();
            let loader_state = Arc::clone(&state);
            let handle = tokio::task::spawn_blocking(move || {
                engines::start(&wanted, &mut |message| {
                    tracing::info!("{message}");
                    // A start that newer settings replaced no longer speaks for the engine.
                    if loader_state.engine_spec.read().as_ref() == Some(&wanted) {
                        *loader_state.loading_step.write() = Some(message.to_string());
                    }
                    let _ = messages.send(message.to_string());
                })
            });
            tokio::pin!(handle);
            let mut progress = LoadProgress::none();
            let started = tokio::select! {
                result = &mut handle => result,
                _ = tokio::time::sleep(LOAD_PROGRESS_AFTER) => {
                    progress = LoadProgress::begin(&state, &client, spec.model.as_deref()).await;
                    loop {
                        tokio::select! {
                            result = &mut handle => break result,
                            Some(message) = received.recv() => progress.report(&message).await,
                        }
                    }
                }
            };
            let started = started.unwrap_or_else(|e| Err(format!("the engine failed to start: {e}")));
            progress.end(if started.is_ok() { "ready" } else { "failed" }).await;
            // Settings may have changed while the model loaded; only the newest spec wins.
            if state.engine_spec.read().as_ref() != Some(&spec) {
                return;
            }
            match started {
                Ok(engine) => {
                    tracing::info!(engine = %engine.info().kind, model = %engine.info().model, "engine ready");
                    if let Some(connection) = engine.connection() {
                        tokio::spawn(report_connection(connection, client.clone()));
                    }
                    state.set_engine(EngineSlot::Ready(engine));
                }
                Err(message) => {
                    tracing::error!("engine `{}` failed: {message}", spec.engine);
                    state.set_engine(EngineSlot::Failed(message.clone()));
                    client.show_message(MessageType::ERROR, format!("Glint: {message}")).await;
                }
            }
        });
    }

    /// Test hook: panics inside a handler, to prove the guard keeps the server alive.
    async fn debug_panic(&self) -> Result<Value> {
        if !self.state.options.test_hooks {
            return Err(Error::method_not_found());
        }
        guard("glint/debugPanic", async { injected_panic() }).await
    }

    async fn report_setting_errors(&self, errors: Vec<crate::config::SettingError>) {
        for error in errors {
            tracing::warn!("{error}");
            self.client.show_message(MessageType::WARNING, format!("{error}. Using the previous value.")).await;
        }
        logging::set_level(&self.state.settings.read().log_level);
    }
}

impl LanguageServer for Server {
    async fn initialize(&self, params: InitializeParams) -> Result<InitializeResult> {
        let (result, errors) =
            guard("initialize", async { Ok(handlers::lifecycle::initialize(&self.state, &params)) }).await?;
        logging::set_level(&self.state.settings.read().log_level);
        logging::forward_to_client(self.client.clone());
        tracing::info!(encoding = self.state.encoding().as_str(), client = ?self.state.client.read().name, "initialized");
        // The client cannot show messages before it has our result; report after a tick.
        if !errors.is_empty() {
            let client = self.client.clone();
            tokio::spawn(async move {
                for error in errors {
                    client.show_message(MessageType::WARNING, format!("{error}. Using the default.")).await;
                }
            });
        }
        Ok(result)
    }

    async fn initialized(&self, _: InitializedParams) {
        self.start_engine();
    }

    async fn shutdown(&self) -> Result<()> {
        self.state.request_shutdown();
        // Nobody will read the answers of in-flight requests; stop their engine work now so the
        // process can exit promptly.
        self.state.work.cancel_all();
        Ok(())
    }

    async fn did_open(&self, params: DidOpenTextDocumentParams) {
        guard_sync("textDocument/didOpen", || handlers::sync::did_open(&self.state, params));
    }

    async fn did_change(&self, params: DidChangeTextDocumentParams) {
        guard_sync("textDocument/didChange", || handlers::sync::did_change(&self.state, params));
    }

    async fn did_close(&self, params: DidCloseTextDocumentParams) {
        guard_sync("textDocument/didClose", || handlers::sync::did_close(&self.state, params));
    }

    async fn did_save(&self, params: DidSaveTextDocumentParams) {
        guard_sync("textDocument/didSave", || handlers::sync::did_save(&self.state, params));
    }

    async fn did_change_configuration(&self, params: DidChangeConfigurationParams) {
        let errors = guard_sync("workspace/didChangeConfiguration", || {
            handlers::lifecycle::apply_settings(&self.state, &params.settings)
        })
        .unwrap_or_default();
        self.start_engine();
        self.report_setting_errors(errors).await;
    }

    async fn did_change_workspace_folders(&self, params: DidChangeWorkspaceFoldersParams) {
        guard_sync("workspace/didChangeWorkspaceFolders", || {
            handlers::lifecycle::change_workspace_folders(&self.state, &params)
        });
    }

    async fn code_action(&self, params: CodeActionParams) -> Result<Option<CodeActionResponse>> {
        // The editor asks for code actions where the cursor rests: the next keystroke is likely
        // there, so its completion prompt is prefilled in the background.
        if params.range.start == params.range.end {
            crate::warmup::schedule(&self.state, params.text_document.uri.as_str(), params.range.start);
        }
        guard("textDocument/codeAction", handlers::actions::code_action(&self.state, &self.client, params)).await
    }

    async fn code_action_resolve(&self, action: CodeAction) -> Result<CodeAction> {
        guard("codeAction/resolve", handlers::actions::resolve(&self.state, &self.client, action)).await
    }

    async fn execute_command(&self, params: ExecuteCommandParams) -> Result<Option<Value>> {
        guard("workspace/executeCommand", handlers::actions::execute_command(&self.state, &self.client, params)).await
    }

    async fn completion(&self, params: CompletionParams) -> Result<Option<CompletionResponse>> {
        guard("textDocument/completion", handlers::completion::completion(&self.state, &self.client, params)).await
    }
}

/// Tells the user once when a remote engine's connection is lost (or unreachable at startup) and
/// once when it is back, however many reconnection attempts happen in between. Ends when the
/// engine is dropped.
async fn report_connection(
    mut connection: tokio::sync::watch::Receiver<glint_engine::ws::ConnectionState>,
    client: Client,
) {
    use glint_engine::ws::ConnectionStatus;
    let mut lost = false;
    loop {
        let state = connection.borrow_and_update().clone();
        match state.status {
            ConnectionStatus::Connected if lost => {
                lost = false;
                tracing::info!(url = %state.url, "the remote engine is reachable again");
                let message = format!("Glint: reconnected to the remote engine at {}.", state.url);
                client.show_message(MessageType::INFO, message).await;
            }
            ConnectionStatus::Disconnected if !lost => {
                lost = true;
                let why = state.error.unwrap_or_default();
                tracing::warn!(url = %state.url, "the remote engine is unreachable: {why}");
                let message =
                    format!("Glint: lost the connection to the remote engine at {} ({why}); reconnecting.", state.url);
                client.show_message(MessageType::WARNING, message).await;
            }
            _ => {}
        }
        if connection.changed().await.is_err() {
            return;
        }
    }
}

/// Runs a request handler, turning a panic into an internal error instead of a dead server.
async fn guard<T>(method: &'static str, handler: impl Future<Output = Result<T>>) -> Result<T> {
    match AssertUnwindSafe(handler).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => {
            tracing::error!(method, "handler panicked: {}", panic_message(&*panic));
            Err(Error::internal_error())
        }
    }
}

/// Runs a notification handler's synchronous body, logging a panic instead of dying.
fn guard_sync<T>(method: &'static str, handler: impl FnOnce() -> T) -> Option<T> {
    match std::panic::catch_unwind(AssertUnwindSafe(handler)) {
        Ok(value) => Some(value),
        Err(panic) => {
            tracing::error!(method, "handler panicked: {}", panic_message(&*panic));
            None
        }
    }
}

#[allow(clippy::panic)]
fn injected_panic() -> Result<Value> {
    panic!("injected panic for testing")
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// How long an engine start may take before the client is shown a "Loading model" progress.
const LOAD_PROGRESS_AFTER: Duration = Duration::from_millis(150);

/// The "Loading model" work-done progress of one engine start; inert for clients without
/// `window.workDoneProgress`.
#[derive(Clone)]
struct LoadProgress {
    client: Option<Client>,
    token: NumberOrString,
}

impl LoadProgress {
    fn none() -> LoadProgress {
        LoadProgress { client: None, token: NumberOrString::String(String::new()) }
    }

    async fn begin(state: &State, client: &Client, model: Option<&str>) -> LoadProgress {
        static STARTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        if !state.client.read().work_done_progress {
            return LoadProgress::none();
        }
        let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let token = NumberOrString::String(format!("glint/loadingModel/{n}"));
        let create = client
            .send_request::<request::WorkDoneProgressCreate>(WorkDoneProgressCreateParams { token: token.clone() });
        if !matches!(tokio::time::timeout(Duration::from_secs(2), create).await, Ok(Ok(()))) {
            return LoadProgress::none();
        }
        let progress = LoadProgress { client: Some(client.clone()), token };
        progress
            .send(WorkDoneProgress::Begin(WorkDoneProgressBegin {
                title: "Glint: Loading model".into(),
                cancellable: Some(false),
                message: model.map(str::to_string),
                percentage: None,
            }))
            .await;
        progress
    }

    async fn report(&self, message: &str) {
        self.send(WorkDoneProgress::Report(WorkDoneProgressReport {
            cancellable: Some(false),
            message: Some(message.to_string()),
            percentage: None,
        }))
        .await;
    }

    async fn end(&self, message: &str) {
        self.send(WorkDoneProgress::End(WorkDoneProgressEnd { message: Some(message.to_string()) })).await;
    }

    async fn send(&self, value: WorkDoneProgress) {
        let Some(client) = &self.client else { return };
        client
            .send_notification::<notification::Progress>(ProgressParams {
                token: self.token.clone(),
                value: ProgressParamsValue::WorkDone(value),
            })
            .await;
    }
}
