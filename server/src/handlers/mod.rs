//! One handler per LSP method. `server.rs` routes to these; they take plain state and params.

pub mod actions;
pub mod completion;
pub mod ext;
pub mod lifecycle;
pub mod sync;
