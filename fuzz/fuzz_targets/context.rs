//! Fuzz target: `glint_fuzzing::context_build` on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    glint_fuzzing::context_build(data);
});
