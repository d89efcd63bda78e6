//! Next-edit predictions over LSP: `glint/nextEdit`, the same result in Copilot's
//! `textDocument/copilotInlineEdit` shape, and the "Apply the predicted edit" code actions.
//! Every answer is computed on the current text, and only for the version the client names.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tower_lsp_server::jsonrpc::Result;
use tower_lsp_server::ls_types::*;

use crate::completion::{self, Reading};
use crate::document::Document;
use crate::handlers::{char_index, lsp_position};
use crate::nextedit::{self, Prediction};
use crate::state::State;

/// The code action kind of an applied prediction.
pub const CODE_ACTION_KIND: &str = "refactor.rewrite.glint.nextEdit";

/// The document and version a prediction is asked for.
#[derive(Debug, Clone, Deserialize)]
pub struct VersionedDocument {
    pub uri: String,
    /// When given and not the server's current version, the answer is empty.
    #[serde(default)]
    pub version: Option<i32>,
}

/// Params of `glint/nextEdit` and `textDocument/copilotInlineEdit`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NextEditParams {
    pub text_document: VersionedDocument,
    pub position: Position,
}

/// The result of `glint/nextEdit`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NextEditResult {
    pub edits: Vec<TextEdit>,
    /// `rename`, `pattern` (or `model`); `null` when there are no edits.
    pub source: Option<&'static str>,
    /// The version the edits apply to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i32>,
}

impl NextEditResult {
    /// `prediction`'s answer, on `doc`'s version.
    fn of(state: &State, doc: &Document, prediction: &Prediction) -> NextEditResult {
        NextEditResult {
            edits: text_edits(state, doc, prediction),
            source: Some(prediction.source.as_str()),
            version: Some(doc.version),
        }
    }
}

/// `glint/nextEdit`: the rules' prediction, else (with `nextEditModel` on) the model's.
pub async fn next_edit(state: &Arc<State>, params: NextEditParams) -> Result<NextEditResult> {
    if let Some((doc, prediction)) = prediction(state, &params.text_document, params.position) {
        return Ok(NextEditResult::of(state, &doc, &prediction));
    }
    if !state.settings.read().next_edit_model {
        return Ok(NextEditResult::default());
    }
    Ok(model_prediction(state, &params).await.unwrap_or_default())
}

/// The model's prediction for the user's last edit, computed on the current text; `None` when
/// there is none, the text changed meanwhile (the keystroke cancels it), or the engine may not
/// see the document.
async fn model_prediction(state: &Arc<State>, params: &NextEditParams) -> Option<NextEditResult> {
    let uri = params.text_document.uri.as_str();
    let snapshot = state.request_snapshot(uri).ok()?;
    let doc = &snapshot.doc;
    if params.text_document.version.is_some_and(|v| v != doc.version)
        || !snapshot.settings.language_enabled(&doc.language_id)
    {
        return None;
    }
    let cursor = char_index(&doc.rope, params.position, snapshot.encoding);
    let ask = {
        let history = state.next_edits.get(uri)?;
        nextedit::model::ask(doc, history.current.as_ref()?, cursor)?
    };
    let request = ask.request(&*snapshot.engine, doc)?;
    let started = std::time::Instant::now();
    // Registered as the document's action work: its next keystroke cancels it.
    let ticket = state.work.start_action(uri);
    let _registered = crate::handlers::actions::Registered { state, id: ticket.id };
    let mut reading = Reading::start(&*snapshot.engine, request, completion::Answer::fenced());
    if !reading.until_cancelled(&ticket.token, |_| async {}).await {
        return None;
    }
    let answer = reading.into_answer().verdict().ok()??;
    if state.snapshot(uri).is_none_or(|now| now.revision != doc.revision) {
        return None;
    }
    let edits = match ask.edits(doc, &answer, cursor) {
        Ok(edits) => edits,
        Err(why) => {
            tracing::debug!(uri, ms = started.elapsed().as_millis() as u64, "no model next edit: {why}");
            return None;
        }
    };
    let prediction = Prediction { source: nextedit::Source::Model, edits };
    tracing::debug!(uri, edits = prediction.edits.len(), ms = started.elapsed().as_millis() as u64, "model next edit");
    // Served like the rules' predictions: accepting one edit keeps the rest.
    state.next_edits.remember(uri, doc.revision, &prediction);
    Some(NextEditResult::of(state, doc, &prediction))
}

/// `textDocument/copilotInlineEdit`: `{edits: [{range, text, textDocument: {uri, version}}]}`.
pub fn copilot_inline_edit(state: &State, params: NextEditParams) -> Value {
    let Some((doc, prediction)) = prediction(state, &params.text_document, params.position) else {
        return json!({"edits": []});
    };
    let edits: Vec<Value> = text_edits(state, &doc, &prediction)
        .into_iter()
        .map(|e| {
            json!({
                "range": e.range,
                "text": e.new_text,
                "textDocument": {"uri": &*doc.uri, "version": doc.version},
            })
        })
        .collect();
    json!({"edits": edits})
}

/// The predicted edit under the cursor, when the nearest one is on the cursor's line and its range
/// holds the cursor: it is then also the inline completion's item (with its `range`), with no
/// model call. The version is the server's current one.
pub fn at_cursor(state: &State, uri: &str, position: Position) -> Option<TextEdit> {
    let asked = VersionedDocument { uri: uri.to_string(), version: None };
    let (doc, prediction) = prediction(state, &asked, position)?;
    let nearest = text_edits(state, &doc, &prediction).into_iter().next()?;
    let Range { start, end } = nearest.range;
    let on_line = start.line == position.line && end.line == position.line;
    (on_line && start.character <= position.character && position.character <= end.character).then_some(nearest)
}

/// The next-edit code actions at `range`: the nearest predicted edit alone, and all of them when
/// there are several. Their edits are computed already (no resolve), versioned when the client
/// takes `documentChanges`.
pub fn code_actions(state: &State, doc: &Document, range: Range) -> Vec<CodeAction> {
    let asked = VersionedDocument { uri: doc.uri.to_string(), version: Some(doc.version) };
    let Some((doc, prediction)) = prediction(state, &asked, range.start) else { return Vec::new() };
    let edits = text_edits(state, &doc, &prediction);
    let Some(first) = edits.first() else { return Vec::new() };
    let versioned = state.client.read().document_changes;
    let action = |title: String, edits: Vec<TextEdit>| CodeAction {
        title,
        kind: Some(CodeActionKind::from(CODE_ACTION_KIND.to_string())),
        edit: workspace_edit(&doc, edits, versioned),
        ..CodeAction::default()
    };
    let mut actions = vec![action(
        format!("Glint: Apply the predicted edit (line {})", first.range.start.line + 1),
        vec![first.clone()],
    )];
    if edits.len() > 1 {
        let title = format!("Glint: Apply all {} predicted edits ({})", edits.len(), prediction.source.as_str());
        actions.push(action(title, edits));
    }
    actions
}

/// The current prediction for the document, when the client's version is the server's.
fn prediction(state: &State, asked: &VersionedDocument, position: Position) -> Option<(Document, Prediction)> {
    let doc = state.snapshot(&asked.uri)?;
    if asked.version.is_some_and(|v| v != doc.version) || !state.settings.read().language_enabled(&doc.language_id) {
        return None;
    }
    let history = state.next_edits.get(&asked.uri)?;
    let cursor = char_index(&doc.rope, position, state.encoding());
    let started = std::time::Instant::now();
    let prediction = nextedit::predict(&doc, &history, cursor);
    if let Some(prediction) = &prediction {
        tracing::debug!(
            uri = asked.uri,
            source = prediction.source.as_str(),
            edits = prediction.edits.len(),
            micros = started.elapsed().as_micros() as u64,
            "next edit predicted"
        );
        // Accepting one of the edits keeps the rest of this prediction alive (see `History`).
        state.next_edits.remember(&asked.uri, doc.revision, prediction);
    }
    prediction.map(|p| (doc, p))
}

fn text_edits(state: &State, doc: &Document, prediction: &Prediction) -> Vec<TextEdit> {
    let encoding = state.encoding();
    let at = |char: usize| lsp_position(&doc.rope, char, encoding);
    prediction
        .edits
        .iter()
        .map(|e| TextEdit { range: Range { start: at(e.start), end: at(e.end) }, new_text: e.text.clone() })
        .collect()
}

fn workspace_edit(doc: &Document, edits: Vec<TextEdit>, versioned: bool) -> Option<WorkspaceEdit> {
    let uri: Uri = doc.uri.parse().ok()?;
    if versioned {
        let document = TextDocumentEdit {
            text_document: OptionalVersionedTextDocumentIdentifier { uri, version: Some(doc.version) },
            edits: edits.into_iter().map(OneOf::Left).collect(),
        };
        return Some(WorkspaceEdit {
            document_changes: Some(DocumentChanges::Edits(vec![document])),
            ..WorkspaceEdit::default()
        });
    }
    Some(WorkspaceEdit { changes: Some(HashMap::from([(uri, edits)])), ..WorkspaceEdit::default() })
}
