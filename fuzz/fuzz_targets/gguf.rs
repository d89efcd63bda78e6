//! Fuzz target: arbitrary bytes loaded as a GGUF model file (`glint_fuzzing::gguf::load`). Seeds
//! in `corpus/gguf` are files whose metadata lies about the tensors and small valid models.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    glint_fuzzing::gguf::load(data);
});
