//! Text synchronisation: `didOpen`, `didChange`, `didClose`, `didSave`. Each mutates the document
//! store synchronously, before any `.await`, so edits apply strictly in arrival order.

use tower_lsp_server::ls_types::*;

use crate::document::{Change, Document, NoTree};
use crate::position::LinePos;
use crate::state::State;

pub fn did_open(state: &State, params: DidOpenTextDocumentParams) {
    let item = params.text_document;
    let uri = item.uri.as_str().to_string();
    let doc = Document::new(&uri, &item.language_id, item.version, &item.text);
    log_no_tree(&doc);
    state.next_edits.forget(&uri);
    // Past the limits on open documents the document is not held (the state says so in the log);
    // its later changes are ignored until it is closed and opened again.
    if let Ok(true) = state.open_document(doc) {
        tracing::warn!(uri, "didOpen for a document that was already open; replaced its text");
    }
}

pub fn did_change(state: &State, params: DidChangeTextDocumentParams) {
    let uri = params.text_document.uri.as_str().to_string();
    let encoding = state.encoding();
    // Stale AI work for this document stops now, before the edit is even applied, unless the edit
    // types the next characters of the completion being written (it then goes on to its end).
    if !typed_through(state, &uri, &params.content_changes, encoding) {
        state.work.cancel_completion(&uri);
    }
    state.work.cancel_actions(&uri);
    state.rhythm.keystroke(&uri);
    let version = params.text_document.version;
    let changes: Vec<Change> = params
        .content_changes
        .into_iter()
        .map(|c| Change { range: c.range.map(|r| (line_pos(r.start), line_pos(r.end))), text: c.text })
        .collect();
    let outcome = state.with_documents(|docs| {
        let doc = docs.get_mut(&uri)?;
        let stale = version <= doc.version;
        let previous = doc.version;
        let before = doc.clone();
        let report = doc.apply_changes(version, &changes, encoding);
        state.next_edits.record(&before, doc, &changes, encoding);
        Some((stale, previous, report, doc.clone()))
    });
    match outcome {
        None if state.is_not_held(&uri) => tracing::trace!(uri, version, "didChange for a document not held"),
        None => tracing::warn!(uri, version, "didChange for a document that is not open; ignored"),
        Some((stale, previous, report, doc)) => {
            if let Some(line) = changes.iter().rev().find_map(|c| c.range.map(|(start, _)| start.line as usize)) {
                state.note_edit(&doc, line);
            }
            if stale {
                // The changes are still applied: each is relative to the client's text just
                // before it, which over an ordered stream is the text held here, so skipping one
                // would leave every later edit on the wrong text. The version is the client's to
                // name, so it is taken as sent (a versioned edit must carry the client's number);
                // work already computed for the earlier text is refused by its `revision`.
                tracing::warn!(
                    uri,
                    version,
                    previous,
                    "didChange with a version not above the current one; text applied, earlier AI work discarded"
                );
            }
            if report.reversed_ranges > 0 {
                tracing::warn!(
                    uri,
                    count = report.reversed_ranges,
                    "didChange had ranges with end before start; swapped"
                );
            }
            if report.tree_dropped.is_some() {
                log_no_tree(&doc);
            }
        }
    }
}

pub fn did_close(state: &State, params: DidCloseTextDocumentParams) {
    let uri = params.text_document.uri.as_str().to_string();
    state.work.cancel_document(&uri);
    state.rhythm.forget(&uri);
    state.typing_cache.forget_document(&uri);
    state.next_edits.forget(&uri);
    if state.with_documents(|docs| docs.remove(&uri)).is_none() && !state.forget_not_held(&uri) {
        tracing::warn!(uri, "didClose for a document that is not open");
    }
}

pub fn did_save(state: &State, params: DidSaveTextDocumentParams) {
    let uri = params.text_document.uri.as_str();
    tracing::trace!(uri, open = state.snapshot(uri).is_some(), "didSave");
}

/// Whether `changes` are one insertion that types through the document's running completion.
fn typed_through(
    state: &State,
    uri: &str,
    changes: &[TextDocumentContentChangeEvent],
    encoding: crate::position::Encoding,
) -> bool {
    let [change] = changes else { return false };
    let Some(range) = change.range.filter(|r| r.start == r.end) else { return false };
    let Some(doc) = state.snapshot(uri) else { return false };
    let at = crate::position::to_char(&doc.rope, line_pos(range.start), encoding);
    let line = doc.rope.char_to_line(at);
    let line_prefix = doc.rope.slice(doc.rope.line_to_char(line)..at).to_string();
    state.work.type_through(uri, line, &line_prefix, &change.text)
}

fn line_pos(position: Position) -> LinePos {
    LinePos { line: position.line, character: position.character }
}

fn log_no_tree(doc: &Document) {
    let uri = &*doc.uri;
    match doc.no_tree {
        Some(NoTree::TooLarge) => tracing::info!(
            uri,
            bytes = doc.rope.len_bytes(),
            "document too large for a syntax tree; kept as plain text"
        ),
        Some(NoTree::Binary) => {
            tracing::info!(uri, "document contains NUL bytes; kept as plain text without a syntax tree")
        }
        Some(NoTree::UnknownLanguage) => {
            tracing::debug!(uri, language = &*doc.language_id, "no grammar for this language; plain text")
        }
        None => {}
    }
}
