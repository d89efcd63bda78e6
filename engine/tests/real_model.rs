//! Tests with the real default model (SmolLM2-135M-Instruct Q4_1). They run when the model has been
//! fetched (`glint model fetch`) and print a SKIP line otherwise.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Instant;

use glint_engine::tokenizer::Tokenizer;
use glint_engine::{Engine, FinishReason, GenerateRequest, LocalConfig, LocalEngine};

#[derive(serde::Deserialize)]
struct Golden {
    model: String,
    model_sha256: String,
    cases: Vec<GoldenCase>,
}

#[derive(serde::Deserialize)]
struct GoldenCase {
    name: String,
    text: String,
    ids: Vec<u32>,
}

fn goldens() -> Vec<Golden> {
    [include_str!("data/tokenizer_golden.json"), include_str!("data/tokenizer_golden_qwen2.json")]
        .iter()
        .map(|text| serde_json::from_str(text).unwrap())
        .collect()
}

/// The installed catalog model whose file the golden ids were made with.
fn model_for(golden: &Golden) -> Option<std::path::PathBuf> {
    let model = glint_engine::catalog::CATALOG.iter().find(|m| m.sha256 == golden.model_sha256)?;
    match glint_engine::fetch::model_status(model) {
        glint_engine::fetch::ModelStatus::Installed(path) => Some(path),
        _ => None,
    }
}

#[test]
fn tokenizer_matches_llama_cpp_on_code_in_many_languages() {
    for golden in goldens() {
        let Some(path) = model_for(&golden) else {
            eprintln!("SKIP: tokenizer golden ids for {}: the model is not fetched", golden.model);
            continue;
        };
        let tokenizer = Tokenizer::load(&path).unwrap();
        let mut failures = Vec::new();
        for case in &golden.cases {
            let ids = tokenizer.encode(&case.text).unwrap();
            if ids != case.ids {
                failures.push(format!("{}:\n  ours  {:?}\n  llama {:?}", case.name, ids, case.ids));
            }
            assert_eq!(tokenizer.decode(&case.ids), case.text, "{} does not round-trip", case.name);
        }
        assert!(failures.is_empty(), "{}: token ids differ from llama.cpp:\n{}", golden.model, failures.join("\n"));
        assert!(golden.cases.len() >= 6);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greedy_completion_of_a_known_snippet() {
    let Some(path) = common::real_model() else {
        eprintln!("SKIP: real-model completion: no model at {}", glint_engine::fetch::default_model_path().display());
        return;
    };
    let started = Instant::now();
    let engine = LocalEngine::load(&path, LocalConfig::default()).unwrap();
    eprintln!("loaded {} in {:?}: {:?}", path.display(), started.elapsed(), engine.info());
    let request = GenerateRequest {
        prefix: "def fibonacci(n):\n".into(),
        language: Some("python".into()),
        max_tokens: 32,
        ..GenerateRequest::default()
    };
    let (text, finish) = engine.generate(request.clone()).collect_text().await;
    eprintln!("completion: {text:?}\ntimings: {:?}", finish.timings);
    assert!(matches!(finish.reason, FinishReason::Stop | FinishReason::Length), "{finish:?}");
    assert!(!text.trim().is_empty());
    assert!(text.contains("return") || text.contains("fibonacci") || text.contains("if"), "{text:?}");

    // The same prompt again reuses the cache and decodes the same text.
    let (again, finish) = engine.generate(request).collect_text().await;
    assert_eq!(again, text);
    assert_eq!(finish.timings.cached_tokens, finish.timings.prompt_tokens - 1);
    eprintln!("warm timings: {:?}", finish.timings);
}
