//! One handler per LSP method. `server.rs` routes to these; they take plain state and params.

pub mod actions;
pub mod completion;
pub mod ext;
pub mod lifecycle;
pub mod nextedit;
pub mod sync;

use ropey::Rope;
use tower_lsp_server::ls_types::Position;

use crate::position::{self, Encoding, LinePos};

/// The rope char index of an LSP position in `encoding`, clamped as VS Code clamps.
pub(crate) fn char_index(rope: &Rope, p: Position, encoding: Encoding) -> usize {
    position::to_char(rope, LinePos { line: p.line, character: p.character }, encoding)
}

/// The LSP position of rope char index `at` in `encoding`.
pub(crate) fn lsp_position(rope: &Rope, at: usize, encoding: Encoding) -> Position {
    let p = position::from_char(rope, at, encoding);
    Position { line: p.line, character: p.character }
}
