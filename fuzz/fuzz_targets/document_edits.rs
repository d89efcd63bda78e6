//! Fuzz target: `glint_fuzzing::document_edits` on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    glint_fuzzing::document_edits(data);
});
