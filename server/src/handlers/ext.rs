//! Glint's own requests (`glint/status`, `glint/documentState`), documented in docs/lsp-extensions.md.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::state::State;

#[derive(Debug, Deserialize)]
pub struct DocumentStateParams {
    pub uri: String,
    /// Include the syntax tree as an S-expression (large; for tests and debugging).
    #[serde(default)]
    pub tree: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentState {
    pub uri: String,
    pub version: i32,
    pub language_id: String,
    pub text: String,
    pub has_tree: bool,
    pub tree: Option<String>,
}

pub fn document_state(state: &State, params: DocumentStateParams) -> Option<DocumentState> {
    let doc = state.snapshot(&params.uri)?;
    Some(DocumentState {
        uri: params.uri,
        version: doc.version,
        language_id: doc.language_id.to_string(),
        text: doc.text(),
        has_tree: doc.tree.is_some(),
        tree: params.tree.then(|| doc.tree.as_ref().map(|t| t.root_node().to_sexp())).flatten(),
    })
}

pub fn status(state: &State) -> Value {
    let settings = state.settings.read().clone();
    let client = state.client.read().clone();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "positionEncoding": state.encoding().as_str(),
        "documents": state.document_count(),
        "client": { "name": client.name, "version": client.version },
        "settings": settings,
        "engine": engine_status(state),
        "lastCompletion": state.last_completion.read().clone(),
        "typingCacheEntries": state.typing_cache.len(),
    })
}

fn engine_status(state: &State) -> Value {
    let slot = state.engine.read().clone();
    let mut status = json!({"state": slot.state()});
    match slot {
        crate::engines::EngineSlot::Ready(engine) => {
            status["info"] = json!(engine.info());
            if let Some(connection) = engine.connection() {
                status["connection"] = json!(*connection.borrow());
            }
        }
        crate::engines::EngineSlot::Failed(why) => status["error"] = json!(why),
        crate::engines::EngineSlot::Loading => {
            if let Some(step) = state.loading_step.read().clone() {
                status["step"] = json!(step);
            }
        }
        crate::engines::EngineSlot::None => {}
    }
    status
}
