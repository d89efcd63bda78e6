//! Tests with the Qwen2.5-Coder Q4_K_M files users download (Q5_0, Q8_0, Q4_K and Q6_K tensors,
//! all repacked into the packed kernels at load). They run when a file is present
//! (`GLINT_QWEN_MODEL`, or the 0.5B/1.5B files in the models folder) and print a SKIP line
//! otherwise.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use glint_engine::model::{LoadOptions, Model};
use glint_engine::sampler::argmax;
use glint_engine::tokenizer::Tokenizer;

const FILES: [&str; 2] = ["qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"];

fn qwen_models() -> Vec<PathBuf> {
    if let Some(path) = std::env::var_os("GLINT_QWEN_MODEL") {
        return vec![PathBuf::from(path)];
    }
    FILES.iter().map(|f| glint_engine::fetch::models_dir().join(f)).filter(|p| p.is_file()).collect()
}

#[test]
fn qwen_q4_k_m_loads_and_completes_a_function_sensibly() {
    let models = qwen_models();
    if models.is_empty() {
        eprintln!(
            "SKIP: no Qwen2.5-Coder Q4_K_M file (set GLINT_QWEN_MODEL or fetch one into {})",
            glint_engine::fetch::models_dir().display()
        );
        return;
    }
    for path in models {
        let tokenizer = Tokenizer::load(&path).unwrap();
        let started = std::time::Instant::now();
        let mut model =
            Model::load(&path, LoadOptions { context_length: Some(512), ..LoadOptions::default() }).unwrap();
        eprintln!("loaded {} in {:?}", path.display(), started.elapsed());
        let prompt = "def fibonacci(n):\n";
        let mut ids = tokenizer.encode(prompt).unwrap();
        let mut logits = model.forward(&ids, 0).unwrap();
        for _ in 0..32 {
            let next = argmax(&logits);
            ids.push(next);
            logits = model.forward(&[next], ids.len() - 1).unwrap();
        }
        let text = tokenizer.decode(&ids);
        eprintln!("{text:?}");
        let body = &text[prompt.len()..];
        // A sensible body: indented code that tests `n` and returns something.
        assert!(body.starts_with("    "), "{text:?}");
        assert!(body.contains("if n") && body.contains("return"), "{text:?}");
        assert!(logits.iter().all(|v| v.is_finite()), "non-finite logits");
    }
}
