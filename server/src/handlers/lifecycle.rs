//! `initialize`, `initialized`, `shutdown` and configuration changes.

use serde_json::Value;
use tower_lsp_server::ls_types::*;

use crate::config::SettingError;
use crate::position::Encoding;
use crate::state::{ClientFeatures, State};

pub fn initialize(state: &State, params: &InitializeParams) -> (InitializeResult, Vec<SettingError>) {
    let offered = params
        .capabilities
        .general
        .as_ref()
        .and_then(|g| g.position_encodings.as_ref())
        .map(|kinds| kinds.iter().map(|k| k.as_str().to_string()).collect::<Vec<_>>())
        .unwrap_or_default();
    let encoding = Encoding::negotiate(offered.iter().map(String::as_str));
    state.set_encoding(encoding);

    let text_document = params.capabilities.text_document.as_ref();
    *state.client.write() = ClientFeatures {
        name: params.client_info.as_ref().map(|c| c.name.clone()),
        version: params.client_info.as_ref().and_then(|c| c.version.clone()),
        work_done_progress: params.capabilities.window.as_ref().and_then(|w| w.work_done_progress).unwrap_or(false),
        inline_completion: text_document.and_then(|t| t.inline_completion.as_ref()).is_some(),
        code_action_resolve: text_document
            .and_then(|t| t.code_action.as_ref())
            .and_then(|c| c.resolve_support.as_ref())
            .is_some_and(|r| r.properties.iter().any(|p| p == "edit")),
        document_changes: params
            .capabilities
            .workspace
            .as_ref()
            .and_then(|w| w.workspace_edit.as_ref())
            .and_then(|e| e.document_changes)
            .unwrap_or(false),
        markdown_documentation: text_document
            .and_then(|t| t.completion.as_ref())
            .and_then(|c| c.completion_item.as_ref())
            .and_then(|i| i.documentation_format.as_ref())
            .is_some_and(|formats| formats.contains(&MarkupKind::Markdown)),
    };

    state.remote.set_folders(workspace_folders(params));

    let errors = apply_settings(state, params.initialization_options.as_ref().unwrap_or(&Value::Null));

    let result = InitializeResult {
        server_info: Some(ServerInfo { name: "glint".into(), version: Some(env!("CARGO_PKG_VERSION").into()) }),
        capabilities: ServerCapabilities {
            position_encoding: Some(PositionEncodingKind::from(encoding.as_str().to_string())),
            text_document_sync: Some(TextDocumentSyncCapability::Options(TextDocumentSyncOptions {
                open_close: Some(true),
                change: Some(TextDocumentSyncKind::INCREMENTAL),
                save: Some(TextDocumentSyncSaveOptions::SaveOptions(SaveOptions { include_text: Some(false) })),
                ..TextDocumentSyncOptions::default()
            })),
            inline_completion_provider: Some(OneOf::Left(true)),
            completion_provider: state.settings.read().completion_items.then(CompletionOptions::default),
            code_action_provider: Some(CodeActionProviderCapability::Options(CodeActionOptions {
                code_action_kinds: Some(
                    crate::actions::ActionKind::ALL
                        .iter()
                        .map(|k| CodeActionKind::from(k.code_action_kind().to_string()))
                        .chain([CodeActionKind::QUICKFIX, CodeActionKind::REFACTOR, CodeActionKind::REFACTOR_REWRITE])
                        .chain([CodeActionKind::from(crate::handlers::nextedit::CODE_ACTION_KIND.to_string())])
                        .collect(),
                ),
                resolve_provider: Some(true),
                work_done_progress_options: WorkDoneProgressOptions::default(),
            })),
            execute_command_provider: Some(ExecuteCommandOptions {
                commands: crate::handlers::actions::COMMANDS.iter().map(|c| c.to_string()).collect(),
                work_done_progress_options: WorkDoneProgressOptions::default(),
            }),
            // Folders added or removed later move the line of what a remote engine may see.
            workspace: Some(WorkspaceServerCapabilities {
                workspace_folders: Some(WorkspaceFoldersServerCapabilities {
                    supported: Some(true),
                    change_notifications: Some(OneOf::Left(true)),
                }),
                file_operations: None,
            }),
            experimental: Some(serde_json::json!({"glint": {"inlineCompletionProgress": true, "nextEdit": true}})),
            ..ServerCapabilities::default()
        },
        ..InitializeResult::default()
    };
    (result, errors)
}

/// The workspace folders' paths, from `workspaceFolders`, else `rootUri`, else `rootPath`.
#[allow(deprecated)]
fn workspace_folders(params: &InitializeParams) -> Vec<std::path::PathBuf> {
    let folders: Vec<_> = match &params.workspace_folders {
        Some(folders) if !folders.is_empty() => folders.iter().filter_map(|f| from_uri(f.uri.as_str())).collect(),
        _ => match (&params.root_uri, &params.root_path) {
            (Some(uri), _) => from_uri(uri.as_str()).into_iter().collect(),
            (None, Some(path)) if !path.is_empty() => vec![std::path::PathBuf::from(path)],
            _ => Vec::new(),
        },
    };
    tracing::debug!(?folders, "workspace folders");
    folders
}

/// The path of a `file:` URI; `None` for anything else.
fn from_uri(uri: &str) -> Option<std::path::PathBuf> {
    url::Url::parse(uri).ok().and_then(|u| u.to_file_path().ok())
}

/// `workspace/didChangeWorkspaceFolders`: the folders a remote engine may see files of follow the
/// workspace, so a removed folder's files stop being sent at once.
pub fn change_workspace_folders(state: &State, params: &DidChangeWorkspaceFoldersParams) {
    let path = |folder: &WorkspaceFolder| from_uri(folder.uri.as_str());
    let removed: Vec<_> = params.event.removed.iter().filter_map(path).collect();
    let mut folders = state.remote.folders();
    folders.retain(|f| !removed.contains(f));
    for added in params.event.added.iter().filter_map(path) {
        if !folders.contains(&added) {
            folders.push(added);
        }
    }
    tracing::info!(?folders, "workspace folders changed");
    state.remote.set_folders(folders);
}

/// Merges client settings over the current ones, then re-applies command-line overrides.
pub fn apply_settings(state: &State, value: &Value) -> Vec<SettingError> {
    let mut settings = state.settings.write();
    let errors = settings.merge_json(value);
    if let Some(engine) = &state.options.engine {
        settings.engine = engine.clone();
    }
    if let Some(model) = &state.options.model {
        settings.model = Some(model.clone());
    }
    if let Some(level) = &state.options.log_level {
        settings.log_level = level.clone();
    }
    errors
}
