//! Fuzz target: `glint_fuzzing::postprocess_output` on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    glint_fuzzing::postprocess_output(data);
});
