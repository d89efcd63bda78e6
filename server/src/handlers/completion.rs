//! `textDocument/inlineCompletion` and `textDocument/completion`: LSP in, items out. The
//! pipeline behind both (`crate::pipeline`) decides, asks the engine and cancels; a superseded
//! request answers `ContentModified`.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::json;
use tower_lsp_server::Client;
use tower_lsp_server::jsonrpc::{Error, ErrorCode, Result};
use tower_lsp_server::ls_types::*;

use crate::completion;
use crate::handlers::lsp_position;
use crate::pipeline::{self, Ask, Progress, ProgressUpdate, Selected, Stale, Suggestions, Surface};
use crate::position::LinePos;
use crate::state::State;

/// The streamed-progress notification (see docs/lsp-extensions.md).
pub const PROGRESS_METHOD: &str = "glint/inlineCompletionProgress";

pub async fn inline_completion(
    state: &Arc<State>,
    client: &Client,
    params: InlineCompletionParams,
) -> Result<Option<InlineCompletionResponse>> {
    let position = params.text_document_position;
    let selected = params.context.selected_completion_info;
    let ask = Ask {
        uri: position.text_document.uri.as_str().to_string(),
        at: line_pos(position.position),
        invoked: params.context.trigger_kind == InlineCompletionTriggerKind::INVOKED,
        selected: selected.as_ref().map(|s| Selected {
            start: line_pos(s.range.start),
            end: line_pos(s.range.end),
            text: s.text.clone(),
        }),
        surface: Surface::Inline,
    };
    // A predicted next edit under the cursor (a rename's next use, a sibling line's change) is the
    // suggestion, ahead of the model.
    if selected.is_none()
        && let Some(edit) = crate::handlers::nextedit::at_cursor(state, &ask.uri, position.position)
    {
        let item = InlineCompletionItem {
            insert_text: edit.new_text,
            filter_text: None,
            range: Some(edit.range),
            command: None,
            insert_text_format: None,
        };
        return Ok(Some(InlineCompletionResponse::Array(vec![item])));
    }
    let Some(Suggestions { doc, cursor, encoding, texts }) = suggest(state, client, &ask).await? else {
        return Ok(None);
    };
    let cursor_pos = lsp_position(&doc.rope, cursor, encoding);
    let items = texts
        .into_iter()
        .map(|text| {
            let (insert_text, range) = match &selected {
                // Items must extend the selected completion over its range.
                Some(selected) => (format!("{}{}", selected.text, text), selected.range),
                None => (text, Range { start: cursor_pos, end: cursor_pos }),
            };
            InlineCompletionItem {
                insert_text,
                filter_text: None,
                range: Some(range),
                command: None,
                insert_text_format: None,
            }
        })
        .collect();
    Ok(Some(InlineCompletionResponse::Array(items)))
}

pub async fn completion(
    state: &Arc<State>,
    client: &Client,
    params: CompletionParams,
) -> Result<Option<CompletionResponse>> {
    if !state.settings.read().completion_items {
        return Ok(None);
    }
    let position = params.text_document_position;
    let ask = Ask {
        uri: position.text_document.uri.as_str().to_string(),
        at: line_pos(position.position),
        invoked: params.context.as_ref().is_some_and(|c| c.trigger_kind == CompletionTriggerKind::INVOKED),
        selected: None,
        surface: Surface::Item,
    };
    let none = CompletionResponse::List(CompletionList { is_incomplete: true, items: vec![] });
    let Some(Suggestions { doc, cursor, encoding, texts }) = suggest(state, client, &ask).await? else {
        return Ok(Some(none));
    };
    let Some(text) = texts.into_iter().next() else { return Ok(Some(none)) };
    let markdown = state.client.read().markdown_documentation;
    let item = ai_item(&Suggestion { doc, cursor, encoding, text }, markdown);
    Ok(Some(CompletionResponse::List(CompletionList { is_incomplete: true, items: vec![item] })))
}

/// One suggestion, where it goes.
struct Suggestion {
    doc: crate::document::Document,
    cursor: usize,
    encoding: crate::position::Encoding,
    text: String,
}

/// The completion item for a suggestion: it replaces the identifier being typed, so clients filter
/// the item by it and keep it while the user types through; documentation in Markdown only for
/// clients that declare it.
fn ai_item(suggestion: &Suggestion, markdown: bool) -> CompletionItem {
    let Suggestion { doc, cursor, encoding, text } = suggestion;
    let rope = &doc.rope;
    let word_start = completion::word_start(rope, *cursor);
    let word = rope.slice(word_start..*cursor).to_string();
    let range = Range { start: lsp_position(rope, word_start, *encoding), end: lsp_position(rope, *cursor, *encoding) };
    let new_text = format!("{word}{text}");
    let multi_line = text.trim_end().contains('\n');
    CompletionItem {
        label: label(&word, text),
        label_details: Some(CompletionItemLabelDetails { detail: None, description: Some("Glint AI".into()) }),
        kind: Some(CompletionItemKind::SNIPPET),
        detail: Some(if multi_line { "Glint AI (multi-line)".into() } else { "Glint AI".into() }),
        documentation: Some(if markdown {
            Documentation::MarkupContent(MarkupContent {
                kind: MarkupKind::Markdown,
                value: format!("```{}\n{word}{text}\n```", doc.language_id),
            })
        } else {
            Documentation::String(new_text.clone())
        }),
        preselect: Some(true),
        sort_text: Some("\u{0}glint".into()),
        filter_text: Some(filter_text(&word, text)),
        insert_text_format: Some(InsertTextFormat::PLAIN_TEXT),
        text_edit: Some(CompletionTextEdit::Edit(TextEdit { range, new_text })),
        ..CompletionItem::default()
    }
}

/// What a client filters the item by as the user types on: the word being typed, completed with
/// the identifier characters the suggestion goes on with (`tota` + `l / len(n)` → `total`). Typing
/// through the suggestion keeps the item; any other key leaves it unmatched, so the menu closes and
/// the client asks again. Helix 25.01 keeps its menu open and only filters it (fuzzily) while an
/// item still matches, so a filter over the whole text kept a stale item — answered for `tota` —
/// on screen after `total` was typed, and never asked for the final text.
fn filter_text(word: &str, text: &str) -> String {
    let completes: String = text.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    format!("{word}{completes}")
}

/// The label reads as what gets inserted: text that goes on after the word keeps its spacing
/// (`total / len(numbers)`); a suggestion that starts on a later line shows that line after a line
/// break sign (`total ↵ return total`), never glued to the word.
fn label(word: &str, text: &str) -> String {
    match text.lines().next() {
        Some(line) if !line.trim().is_empty() => {
            let line = if word.is_empty() { line.trim() } else { line.trim_end() };
            format!("{word}{}", truncate(line, 60))
        }
        _ => {
            let next = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
            format!("{word} ↵ {}", truncate(next, 60)).trim_start().to_string()
        }
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

pub fn content_modified() -> Error {
    Error {
        code: ErrorCode::ContentModified,
        message: "the document changed; this completion is stale".into(),
        data: None,
    }
}

fn line_pos(p: Position) -> LinePos {
    LinePos { line: p.line, character: p.character }
}

/// Runs the pipeline, its progress sent as `glint/inlineCompletionProgress`.
async fn suggest(state: &Arc<State>, client: &Client, ask: &Ask) -> Result<Option<Suggestions>> {
    let client = client.clone();
    let progress: Progress = Arc::new(move |update: ProgressUpdate| -> BoxFuture<'static, ()> {
        let client = client.clone();
        Box::pin(async move {
            let mut params = json!({
                "uri": update.uri, "version": update.version,
                "position": {"line": update.line, "character": update.character}, "text": update.text,
            });
            if update.last {
                params["final"] = json!(true);
            }
            client.send_notification::<ProgressNotification>(params).await;
        })
    });
    pipeline::complete(state, ask, &progress).await.map_err(|Stale| content_modified())
}

enum ProgressNotification {}

impl tower_lsp_server::ls_types::notification::Notification for ProgressNotification {
    type Params = serde_json::Value;
    const METHOD: &'static str = PROGRESS_METHOD;
}
