//! Fuzz target: LSP framing and JSON-RPC message checks (`glint_fuzzing::transport_frames`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    glint_fuzzing::transport_frames(data);
});
