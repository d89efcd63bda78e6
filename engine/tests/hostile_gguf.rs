//! GGUF files whose metadata lies about the tensors (huge layer counts, huge heads, a zero
//! alignment): loading them must fail with a clear `InvalidModel` error before anything sized by
//! the metadata is allocated. Each file is also written to `fuzz/corpus/gguf/` when
//! `GLINT_WRITE_FUZZ_SEEDS` is set, with the two valid tiny models they are made from (llama and
//! qwen2), so the fuzzer starts from them.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use candle_core::quantized::QTensor;
use candle_core::quantized::gguf_file::{Content, Value};
use glint_engine::EngineError;
use glint_engine::model::{LoadOptions, Model};

/// Rewrites the tiny model at `source` into `dir/name` with `edit` applied to its metadata.
fn rewrite(source: &Path, dir: &Path, name: &str, edit: impl FnOnce(&mut Vec<(String, Value)>)) -> PathBuf {
    let mut reader = std::fs::File::open(source).unwrap();
    let content = Content::read(&mut reader).unwrap();
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    let tensors: Vec<(String, QTensor)> = names
        .iter()
        .map(|n| ((*n).clone(), content.tensor(&mut reader, n, &candle_core::Device::Cpu).unwrap()))
        .collect();
    let mut metadata: Vec<(String, Value)> = content.metadata.into_iter().collect();
    metadata.sort_by(|a, b| a.0.cmp(&b.0));
    edit(&mut metadata);
    let path = dir.join(name);
    let metadata_refs: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut file = std::fs::File::create(&path).unwrap();
    candle_core::quantized::gguf_file::write(&mut file, &metadata_refs, &tensor_refs).unwrap();
    write_seed(&path);
    path
}

/// Copies `path` to `fuzz/corpus/gguf/seed-<stem>` when `GLINT_WRITE_FUZZ_SEEDS` is set.
fn write_seed(path: &Path) {
    if std::env::var_os("GLINT_WRITE_FUZZ_SEEDS").is_some() {
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/gguf");
        std::fs::create_dir_all(&corpus).unwrap();
        let stem = path.file_stem().unwrap().to_string_lossy();
        std::fs::copy(path, corpus.join(format!("seed-{stem}"))).unwrap();
    }
}

fn set(metadata: &mut Vec<(String, Value)>, key: &str, value: Value) {
    metadata.retain(|(k, _)| k != key);
    metadata.push((key.to_string(), value));
}

fn load_error(path: &Path) -> String {
    match Model::load(path, LoadOptions::default()) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(error @ EngineError::InvalidModel { .. }) => error.to_string(),
        Err(other) => panic!("{}: expected InvalidModel, got {other}", path.display()),
    }
}

#[test]
fn metadata_that_contradicts_the_tensors_is_an_invalid_model_error() {
    let dir = common::TempDir::new("hostile-gguf");
    // As small as a model gets, so the seeds stay small for the fuzzer.
    let spec = common::TinySpec {
        n_embd: 32,
        n_head: 2,
        n_kv_head: 1,
        n_ff: 32,
        n_layer: 1,
        tokens: ["a", "b", "c", "d", "e", "f", "g"].map(String::from).to_vec(),
        merges: Vec::new(),
        ..common::TinySpec::llama()
    };
    let tiny = spec.write(&dir.0, "valid-llama.gguf");
    // The untouched file loads: the failures below come from the edits alone.
    Model::load(&tiny, LoadOptions::default()).unwrap();
    write_seed(&tiny);
    // A qwen2 model too (attention biases, NEOX rotary pairs), as a valid seed for the fuzzer.
    let qwen2 = common::TinySpec { architecture: "qwen2", ..spec.clone() }.write(&dir.0, "valid-qwen2.gguf");
    Model::load(&qwen2, LoadOptions::default()).unwrap();
    write_seed(&qwen2);

    let cases: Vec<(&str, &str, Value, &str)> = vec![
        ("huge-block-count", "llama.block_count", Value::U64(1 << 40), "block_count"),
        ("more-blocks-than-tensors", "llama.block_count", Value::U32(2), "blk.1.attn_q.weight"),
        ("huge-key-length", "llama.attention.key_length", Value::U64(1 << 60), "attn_q.weight"),
        ("overflowing-key-length", "llama.attention.key_length", Value::U64(u64::MAX / 2), "attn_q.weight"),
        ("huge-head-count", "llama.attention.head_count", Value::U64(1 << 62), "heads"),
        ("huge-feed-forward", "llama.feed_forward_length", Value::U64(1 << 50), "ffn_gate.weight"),
        ("zero-alignment", "general.alignment", Value::U32(0), "alignment"),
    ];
    for (name, key, value, expected) in cases {
        let path = rewrite(&tiny, &dir.0, &format!("{name}.gguf"), |m| set(m, key, value));
        let error = load_error(&path);
        assert!(error.contains(expected), "{name}: {error}");
        assert!(error.contains(&format!("{name}.gguf")), "{name}: the error names the file: {error}");
    }
}
