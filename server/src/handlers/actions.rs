//! AI code actions over LSP: `textDocument/codeAction` lists them instantly (no model call),
//! `codeAction/resolve` runs the engine with work-done progress into an exact `WorkspaceEdit`,
//! `workspace/executeCommand` runs `glint.rewrite` (and `glint.applyAction` for clients without
//! resolve support) and applies the edit with `workspace/applyEdit`.
//!
//! A keystroke in the document, a cancelled progress bar, `$/cancelRequest` or shutdown stops
//! the engine at once. A document that moved on since listing answers `ContentModified`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use glint_engine::{CancelFlag, GenerateRequest, Sampling};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tower_lsp_server::Client;
use tower_lsp_server::jsonrpc::{Error, ErrorCode, Result};
use tower_lsp_server::ls_types::request::WorkDoneProgressCreate;
use tower_lsp_server::ls_types::*;

use crate::actions::{self, ActionKind, Candidate, Edit, Plan};
use crate::completion::{self, Reading, Unanswered};
use crate::config::{ContextStrategy, Settings};
use crate::document::Document;
use crate::handlers::completion::content_modified;
use crate::handlers::{char_index, lsp_position};
use crate::position;
use crate::state::{RequestSnapshot, State, Unavailable};

/// The commands the server executes.
pub const REWRITE_COMMAND: &str = "glint.rewrite";
pub const APPLY_COMMAND: &str = "glint.applyAction";
pub const COMMANDS: [&str; 2] = [REWRITE_COMMAND, APPLY_COMMAND];

/// What a listed action carries until it is resolved.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActionData {
    pub uri: String,
    pub version: i32,
    /// The document's `revision` when listed: versions alone may repeat when a client sends them
    /// out of order, a revision never does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    pub range: Range,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostic: Option<DiagnosticData>,
    /// For rewrites.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instruction: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DiagnosticData {
    pub range: Range,
    pub message: String,
}

/// `textDocument/codeAction`: the actions at the range, found with tree-sitter.
pub async fn code_action(
    state: &Arc<State>,
    client: &Client,
    params: CodeActionParams,
) -> Result<Option<CodeActionResponse>> {
    let uri = params.text_document.uri.as_str().to_string();
    let Some(doc) = state.snapshot(&uri) else { return Ok(None) };
    if !state.settings.read().language_enabled(&doc.language_id) {
        return Ok(None);
    }
    let encoding = state.encoding();
    let to_char = |p: Position| char_index(&doc.rope, p, encoding);
    let diagnostics: Vec<actions::Diagnostic> = params
        .context
        .diagnostics
        .iter()
        .map(|d| actions::Diagnostic {
            start: to_char(d.range.start),
            end: to_char(d.range.end),
            message: d.message.clone(),
        })
        .collect();
    let candidates = actions::list(&doc, to_char(params.range.start), to_char(params.range.end), &diagnostics);
    let only = params.context.only.clone().unwrap_or_default();
    let wanted = |kind: &str| {
        only.is_empty()
            || only.iter().any(|o| {
                let o = o.as_str();
                kind == o || kind.strip_prefix(o).is_some_and(|rest| rest.starts_with('.'))
            })
    };
    let resolve = state.client.read().code_action_resolve;
    let eager = !resolve && params.context.trigger_kind == Some(CodeActionTriggerKind::INVOKED);
    let mut out = Vec::new();
    for candidate in candidates.into_iter().filter(|c| wanted(c.kind.code_action_kind())) {
        let diagnostic = candidate.diagnostic.and_then(|i| params.context.diagnostics.get(i)).cloned();
        let data = ActionData {
            uri: uri.clone(),
            version: doc.version,
            revision: Some(doc.revision),
            range: params.range,
            kind: candidate.kind.id().to_string(),
            diagnostic: diagnostic.as_ref().map(|d| DiagnosticData { range: d.range, message: d.message.clone() }),
            instruction: None,
        };
        let mut action = listed_action(&candidate, &data, diagnostic);
        if candidate.kind != ActionKind::Rewrite && !resolve {
            if eager {
                // No resolve support and the user asked: compute the edit now.
                match compute(state, client, &data, &candidate.title).await {
                    Ok(edit) => action.edit = Some(edit),
                    Err(error) if error.code == ErrorCode::ContentModified => return Err(error),
                    Err(error) => {
                        tracing::info!("{}: {}", candidate.title, error.message);
                        continue;
                    }
                }
            } else {
                action.command = Some(Command {
                    title: candidate.title.clone(),
                    command: APPLY_COMMAND.into(),
                    arguments: Some(vec![json!(data)]),
                });
            }
        }
        out.push(CodeActionOrCommand::CodeAction(action));
    }
    if wanted(super::nextedit::CODE_ACTION_KIND) {
        let predicted = super::nextedit::code_actions(state, &doc, params.range);
        out.extend(predicted.into_iter().map(CodeActionOrCommand::CodeAction));
    }
    Ok(Some(out))
}

fn listed_action(candidate: &Candidate, data: &ActionData, diagnostic: Option<Diagnostic>) -> CodeAction {
    let kind = Some(CodeActionKind::from(candidate.kind.code_action_kind().to_string()));
    if candidate.kind == ActionKind::Rewrite {
        // The instruction comes from the user: editors that can ask for it run `glint.rewrite`
        // themselves; others get this command, which rewrites with a default instruction.
        return CodeAction {
            title: candidate.title.clone(),
            kind,
            command: Some(Command {
                title: candidate.title.clone(),
                command: REWRITE_COMMAND.into(),
                arguments: Some(vec![
                    json!({"uri": data.uri, "version": data.version, "revision": data.revision, "range": data.range}),
                ]),
            }),
            ..CodeAction::default()
        };
    }
    CodeAction {
        title: candidate.title.clone(),
        kind,
        is_preferred: diagnostic.is_some().then_some(true),
        diagnostics: diagnostic.map(|d| vec![d]),
        data: Some(json!(data)),
        ..CodeAction::default()
    }
}

/// `codeAction/resolve`: runs the engine and fills in the edit.
pub async fn resolve(state: &Arc<State>, client: &Client, mut action: CodeAction) -> Result<CodeAction> {
    // A predicted next edit is listed with its edit: nothing left to compute.
    if action.edit.is_some() {
        return Ok(action);
    }
    let Some(data) = action.data.clone().and_then(|d| serde_json::from_value::<ActionData>(d).ok()) else {
        // A command-only action (the rewrite, which needs an instruction first) is complete as it
        // is; clients that resolve every action get it back unchanged and run its command.
        if action.command.is_some() {
            return Ok(action);
        }
        return Err(Error::invalid_params("this code action carries no Glint data"));
    };
    let edit = compute(state, client, &data, &action.title).await?;
    action.edit = Some(edit);
    Ok(action)
}

/// `workspace/executeCommand`.
pub async fn execute_command(
    state: &Arc<State>,
    client: &Client,
    params: ExecuteCommandParams,
) -> Result<Option<Value>> {
    let command = params.command.as_str();
    if !COMMANDS.contains(&command) {
        return Err(Error::invalid_params(format!("unknown command `{command}`")));
    }
    let Some(mut data) = params
        .arguments
        .first()
        .cloned()
        .and_then(|a| serde_json::from_value::<ActionData>(with_kind(a, command)).ok())
    else {
        return Err(Error::invalid_params(format!(
            "`{command}` takes one argument: {{uri, range, version?, instruction?}}"
        )));
    };
    if data.version < 0
        && let Some(doc) = state.snapshot(&data.uri)
    {
        data.version = doc.version;
        data.revision = Some(doc.revision);
    }
    let title = if command == REWRITE_COMMAND { "Glint: Rewrite".to_string() } else { format!("Glint: {}", data.kind) };
    let edit = compute(state, client, &data, &title).await?;
    match client.apply_edit(edit).await {
        Ok(response) if response.applied => Ok(Some(json!({"applied": true}))),
        Ok(response) => Err(request_failed(format!(
            "the editor did not apply the edit{}",
            response.failure_reason.map(|r| format!(": {r}")).unwrap_or_default()
        ))),
        Err(error) => Err(request_failed(format!("the editor did not apply the edit: {}", error.message))),
    }
}

/// Command arguments may leave out `kind` (rewrite) and `version` (then the current one is used).
fn with_kind(mut argument: Value, command: &str) -> Value {
    if let Some(object) = argument.as_object_mut() {
        if command == REWRITE_COMMAND {
            object.insert("kind".into(), json!(ActionKind::Rewrite.id()));
        }
        object.entry("version").or_insert(json!(-1));
    }
    argument
}

/// `window/workDoneProgress/cancel`: the user cancelled an action's progress bar.
pub fn progress_cancel(state: &State, params: WorkDoneProgressCancelParams) {
    if let NumberOrString::String(token) = params.token {
        state.work.cancel_progress(&token);
    }
}

fn request_failed(message: String) -> Error {
    Error { code: ErrorCode::ServerError(-32803), message: message.into(), data: None }
}

/// How many times an instruction is tried before giving up on a valid edit.
const ATTEMPTS: u64 = 3;
/// The most tokens an action may generate.
const MAX_ACTION_TOKENS: u32 = 384;

/// Runs one action to a `WorkspaceEdit`.
async fn compute(state: &Arc<State>, client: &Client, data: &ActionData, title: &str) -> Result<WorkspaceEdit> {
    let started = Instant::now();
    let uri = data.uri.as_str();
    let kind = ActionKind::from_id(&data.kind)
        .ok_or_else(|| Error::invalid_params(format!("unknown Glint action `{}`", data.kind)))?;
    let snapshot = snapshot_for(state, data).await?;
    let doc = &snapshot.doc;
    let encoding = snapshot.encoding;
    let to_char = |p: Position| char_index(&doc.rope, p, encoding);
    let request = actions::Request {
        start: to_char(data.range.start),
        end: to_char(data.range.end),
        diagnostic: data.diagnostic.as_ref().map(|d| actions::Diagnostic {
            start: to_char(d.range.start),
            end: to_char(d.range.end),
            message: d.message.clone(),
        }),
        instruction: data.instruction.clone(),
    };
    let plan = actions::plan(doc, kind, &request).map_err(|why| request_failed(format!("Glint: {why}")))?;
    let fallback = actions::fallback(doc, kind, &request);

    let ticket = state.work.start_action(uri);
    let (id, token) = (ticket.id, ticket.token);
    let _registered = Registered { state, id };
    let progress = ProgressBar::begin(state, client, id, title).await;
    let mut last_error = String::new();
    let mut edit = None;
    // A fill-in gets a second, sampled try (or its fallback's tries); an instruction up to `ATTEMPTS`.
    let attempts = if matches!(plan, Plan::Fill { .. }) && fallback.is_none() { 2 } else { ATTEMPTS };
    for attempt in 0..attempts {
        // The first try of each plan is greedy, later ones sample.
        let (plan, try_of_plan) = match &fallback {
            Some(fallback) if attempt > 0 => (fallback, attempt - 1),
            _ => (&plan, attempt),
        };
        let answer = run_engine(&snapshot, plan, try_of_plan, &token, &progress).await?;
        if state.snapshot(uri).is_none_or(|now| now.revision != doc.revision) {
            return Err(content_modified());
        }
        match answer.and_then(|answer| {
            tracing::debug!(action = kind.id(), attempt, answer = ?answer, "model text");
            plan.finish(doc, &answer)
        }) {
            Ok(found) => {
                edit = Some(found);
                break;
            }
            Err(why) => {
                tracing::info!(action = kind.id(), attempt, "no valid edit yet: {why}");
                last_error = why;
            }
        }
    }
    progress.end(if edit.is_some() { "done" } else { "no valid edit" }).await;
    let Some(edit) = edit else {
        let message = format!("Glint could not produce a valid edit: {last_error}");
        client.show_message(MessageType::WARNING, message.clone()).await;
        return Err(request_failed(message));
    };
    // The last look before answering: a keystroke or a cancellation that arrived while progress
    // ended must not let offsets computed for the old text reach the client.
    if token.is_cancelled() || state.snapshot(uri).is_none_or(|now| now.revision != doc.revision) {
        return Err(content_modified());
    }
    tracing::info!(action = kind.id(), total_ms = started.elapsed().as_millis() as u64, "code action resolved");
    Ok(workspace_edit(doc, &edit, encoding, state.client.read().document_changes))
}

/// The request snapshot for an action listed on `data`'s version of its document, once the model
/// has loaded (an action picked while it loads waits for it, bounded; `$/cancelRequest` drops the
/// wait).
async fn snapshot_for(state: &State, data: &ActionData) -> Result<RequestSnapshot> {
    let uri = data.uri.as_str();
    let listed =
        |doc: &Document| doc.version == data.version && data.revision.is_none_or(|revision| revision == doc.revision);
    match state.snapshot(uri) {
        None => return Err(request_failed(format!("{uri} is not open"))),
        Some(doc) if !listed(&doc) => return Err(content_modified()),
        Some(_) => {}
    }
    state.engine_when_loaded(crate::pipeline::LOAD_WAIT).await;
    match state.request_snapshot(uri) {
        Ok(snapshot) if listed(&snapshot.doc) => Ok(snapshot),
        Ok(_) => Err(content_modified()),
        Err(Unavailable::NotOpen) => Err(request_failed(format!("{uri} is not open"))),
        Err(Unavailable::Loading) => {
            Err(request_failed("Glint: the model is still loading; try again in a moment".into()))
        }
        Err(Unavailable::Failed(why)) => Err(request_failed(format!("Glint: the engine failed to start: {why}"))),
        Err(Unavailable::NoEngine) => Err(request_failed("Glint: no engine".into())),
        // Architecture Invariant: a remote engine never sees secrets or files outside the workspace.
        Err(Unavailable::Refused(_)) => Err(request_failed(format!(
            "Glint: {} is never sent to a remote engine (secret-looking or outside the workspace)",
            crate::context::display_path(uri)
        ))),
    }
}

/// The engine's answer for one attempt: `Ok(Err(why))` when it wrote nothing usable.
async fn run_engine(
    snapshot: &RequestSnapshot,
    plan: &Plan,
    attempt: u64,
    token: &CancelFlag,
    progress: &ProgressBar,
) -> Result<std::result::Result<String, String>> {
    let (request, answer) = match attempt_request(snapshot, plan, attempt) {
        Ok(parts) => parts,
        Err(why) => return Ok(Err(why)),
    };
    let max_tokens = request.max_tokens;
    let mut reading = Reading::start(&*snapshot.engine, request, answer);
    let report = |answer: &completion::Answer| {
        let chunks = answer.chunks();
        async move {
            if chunks.is_multiple_of(8) {
                progress.report(chunks, max_tokens).await;
            }
        }
    };
    if !reading.until_cancelled(token, report).await {
        return Err(content_modified());
    }
    match reading.into_answer().verdict() {
        Ok(Some(text)) => Ok(Ok(text)),
        Ok(None) => Ok(Err("the model wrote nothing usable".to_string())),
        // Cut-off text is never an answer: a generation the engine cancelled (a newer request of
        // the same session superseded it) answers like a superseded request.
        Err(Unanswered::Cancelled) => Err(content_modified()),
        Err(Unanswered::Failed(why)) => Err(request_failed(format!("Glint: the engine failed: {why}"))),
    }
}

/// The engine request for one attempt of `plan` (the first greedy, later ones sampled) and the
/// answer its chunks build; `Err` says why there is none.
fn attempt_request(
    snapshot: &RequestSnapshot,
    plan: &Plan,
    attempt: u64,
) -> std::result::Result<(GenerateRequest, completion::Answer), String> {
    let RequestSnapshot { engine, doc, settings, visible, .. } = snapshot;
    let sampling = if attempt == 0 {
        Sampling::default()
    } else {
        Sampling { temperature: 0.7, top_p: Some(0.95), seed: attempt, ..Sampling::default() }
    };
    match plan {
        Plan::Fill { doc: hole, cursor, .. } => {
            let settings = Settings { max_tokens: MAX_ACTION_TOKENS, ..settings.clone() };
            let prepared = completion::prepare(hole, *cursor, &settings, true, &**engine, &visible.without_edits())
                .map_err(|why| why.to_string())?;
            // A fill is cut as a syntax-aware completion, whatever the context strategy.
            let prepared = completion::Prepared { strategy: ContextStrategy::Syntax, ..prepared };
            let (mut request, answer) = prepared.into_parts(hole, *cursor);
            request.sampling = sampling;
            request.stop.clear();
            Ok((request, answer))
        }
        Plan::Instruct { code, task, shape, .. } => {
            // Prose is short; code about as long as what it replaces, with room to grow.
            let max_tokens = match shape {
                actions::Shape::DocComment { .. } => 96,
                _ => (engine.count_tokens(code) as u32 * 2 + 64).clamp(128, 768),
            };
            let request = GenerateRequest {
                prefix: code.clone(),
                path: Some(crate::context::display_path(&doc.uri)),
                language: Some(doc.language_id.to_string()),
                max_tokens,
                sampling,
                task: task.clone(),
                session: Some(glint_engine::session_key(&format!("{}#action", doc.uri))),
                ..GenerateRequest::default()
            };
            Ok((request, completion::Answer::fenced()))
        }
    }
}

/// The edit as the client takes it: with `documentChanges` the edit names the version it was
/// computed for, so a client whose text moved on (during `workspace/applyEdit`'s round trip, or
/// while the answer was on its way) refuses it instead of applying old offsets to new text.
fn workspace_edit(doc: &Document, edit: &Edit, encoding: position::Encoding, versioned: bool) -> WorkspaceEdit {
    let lsp = |at: usize| lsp_position(&doc.rope, at, encoding);
    let text_edit =
        TextEdit { range: Range { start: lsp(edit.start), end: lsp(edit.end) }, new_text: edit.text.clone() };
    let uri: Uri = match doc.uri.parse() {
        Ok(uri) => uri,
        Err(_) => return WorkspaceEdit::default(),
    };
    if versioned {
        let document = TextDocumentEdit {
            text_document: OptionalVersionedTextDocumentIdentifier { uri, version: Some(doc.version) },
            edits: vec![OneOf::Left(text_edit)],
        };
        return WorkspaceEdit {
            document_changes: Some(DocumentChanges::Edits(vec![document])),
            ..WorkspaceEdit::default()
        };
    }
    WorkspaceEdit { changes: Some(HashMap::from([(uri, vec![text_edit])])), ..WorkspaceEdit::default() }
}

/// Unregisters a running action however it ends.
pub(crate) struct Registered<'a> {
    pub(crate) state: &'a State,
    pub(crate) id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.state.work.finish(self.id);
    }
}

static PROGRESS_IDS: AtomicU64 = AtomicU64::new(1);

/// A work-done progress bar, for clients that support them. Ends itself if dropped early.
struct ProgressBar {
    client: Option<Client>,
    token: NumberOrString,
    ended: std::sync::atomic::AtomicBool,
}

impl ProgressBar {
    async fn begin(state: &State, client: &Client, id: u64, title: &str) -> ProgressBar {
        let token = NumberOrString::String(format!("glint/action/{}", PROGRESS_IDS.fetch_add(1, Ordering::Relaxed)));
        let none = ProgressBar { client: None, token: token.clone(), ended: false.into() };
        if !state.client.read().work_done_progress {
            return none;
        }
        let create =
            client.send_request::<WorkDoneProgressCreate>(WorkDoneProgressCreateParams { token: token.clone() });
        match tokio::time::timeout(Duration::from_secs(2), create).await {
            Ok(Ok(())) => {}
            _ => return none,
        }
        if let NumberOrString::String(name) = &token {
            state.work.set_progress(id, name);
        }
        let begin = WorkDoneProgress::Begin(WorkDoneProgressBegin {
            title: title.to_string(),
            cancellable: Some(true),
            message: Some("asking the model".into()),
            percentage: Some(0),
        });
        client
            .send_notification::<notification::Progress>(ProgressParams {
                token: token.clone(),
                value: ProgressParamsValue::WorkDone(begin),
            })
            .await;
        ProgressBar { client: Some(client.clone()), token, ended: false.into() }
    }

    async fn report(&self, tokens: u32, max_tokens: u32) {
        let Some(client) = &self.client else { return };
        let report = WorkDoneProgress::Report(WorkDoneProgressReport {
            cancellable: Some(true),
            message: Some(format!("{tokens} tokens")),
            percentage: Some((tokens * 100 / max_tokens.max(1)).min(99)),
        });
        client
            .send_notification::<notification::Progress>(ProgressParams {
                token: self.token.clone(),
                value: ProgressParamsValue::WorkDone(report),
            })
            .await;
    }

    async fn end(&self, message: &str) {
        let Some(client) = &self.client else { return };
        if self.ended.swap(true, Ordering::SeqCst) {
            return;
        }
        client.send_notification::<notification::Progress>(end_params(&self.token, message)).await;
    }
}

fn end_params(token: &NumberOrString, message: &str) -> ProgressParams {
    ProgressParams {
        token: token.clone(),
        value: ProgressParamsValue::WorkDone(WorkDoneProgress::End(WorkDoneProgressEnd {
            message: Some(message.to_string()),
        })),
    }
}

impl Drop for ProgressBar {
    fn drop(&mut self) {
        if let Some(client) = self.client.take()
            && !self.ended.load(Ordering::SeqCst)
        {
            let params = end_params(&self.token, "cancelled");
            tokio::spawn(async move { client.send_notification::<notification::Progress>(params).await });
        }
    }
}
