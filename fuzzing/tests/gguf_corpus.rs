//! Regression test of the GGUF fuzz target: every seed of `fuzz/corpus/gguf` (files whose metadata
//! lies about the tensors, and the valid tiny models they come from) goes through the target's
//! entry point. The valid seeds load and run a forward pass; the others fail with an error naming
//! the file, and none of them panics or aborts.

use std::path::Path;

#[test]
fn every_gguf_seed_loads_or_fails_with_an_error() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/gguf");
    let mut seeds: Vec<_> = std::fs::read_dir(&corpus)
        .unwrap_or_else(|e| panic!("{}: {e}", corpus.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("seed-")))
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 9, "the corpus lost its seeds: {seeds:?}");
    for seed in seeds {
        let name = seed.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let bytes = std::fs::read(&seed).unwrap_or_else(|e| panic!("{}: {e}", seed.display()));
        let loaded = glint_fuzzing::gguf::load(&bytes);
        assert_eq!(loaded, name.starts_with("seed-valid-"), "{name}: loaded {loaded}");
    }
}
