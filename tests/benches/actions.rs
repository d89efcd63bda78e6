//! AI code actions: listing latency on a 10,000-line file (the pure tree-sitter listing, and the
//! whole `textDocument/codeAction` round trip over the wire), then the time each action takes to
//! resolve with the default model on a small sample file (when the model is fetched). Prints
//! percentiles; asserts nothing.
//!
//! `cargo bench -p glint-tests --bench actions`

#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use glint_engine::fetch;
use glint_server::actions;
use glint_server::document::Document;
use glint_tests::{LspClient, ServerOptions, capabilities, corpus, range, stats};
use serde_json::{Value, json};

const LINES: usize = 10_000;
const SAMPLES: usize = 1000;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
    let Ok(runtime) = runtime else {
        println!("could not start a tokio runtime");
        return;
    };
    println!("code action listing, {LINES}-line files, {SAMPLES} cursors spread over the file");
    for (language, uri) in
        [("rust", "file:///w/bench.rs"), ("python", "file:///w/bench.py"), ("typescript", "file:///w/bench.ts")]
    {
        let text = corpus::source(language, LINES);
        let doc = Document::new(uri, language, 1, &text);
        let len = doc.rope.len_chars();
        let mut pure = Vec::with_capacity(SAMPLES);
        let mut listed = 0;
        for i in 0..SAMPLES {
            let at = (i * 7919) % len;
            let started = Instant::now();
            listed += actions::list(&doc, at, at, &[]).len();
            pure.push(started.elapsed());
        }
        let wire = runtime.block_on(list_over_the_wire(uri, language, &text));
        println!(
            "  {language:<10} list (pure)  {}   {:.1} actions per cursor",
            stats::summarize(&pure),
            listed as f64 / SAMPLES as f64
        );
        println!("  {language:<10} codeAction round trip over LSP  {}", stats::summarize(&wire));
    }
    runtime.block_on(resolve_with_the_model());
}

async fn list_over_the_wire(uri: &str, language: &str, text: &str) -> Vec<Duration> {
    let engine = std::sync::Arc::new(glint_engine::fake::FakeEngine::fixed("x"));
    let client = LspClient::in_process(ServerOptions { injected_engine: Some(engine), ..ServerOptions::default() });
    client.initialize(capabilities(&["utf-16"]), json!({})).await;
    client.open(uri, language, text).await;
    let lines = text.lines().count() as u32;
    let mut samples = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES as u32 {
        let line = (i * 7919) % lines;
        let params =
            json!({"textDocument": {"uri": uri}, "range": range(line, 4, line, 4), "context": {"diagnostics": []}});
        let started = Instant::now();
        client.call("textDocument/codeAction", params).await;
        samples.push(started.elapsed());
    }
    samples
}

const SAMPLE: &str = "def area(width, height):\n    pass\n\n\ndef describe(shape):\n    return \"a shape with %d sides\" % shape.sides\n\n\ndef total(values):\n    result = 0\n    for v in values:\n        result = result + v\n    return result\n";

async fn resolve_with_the_model() {
    if fetch::resolve_model(None).is_err() {
        println!("resolve with the default model: SKIP (run `glint model fetch`)");
        return;
    }
    glint_tests::set_timeout(Duration::from_secs(600));
    let client = LspClient::in_process(ServerOptions::default());
    client.initialize(capabilities(&["utf-16"]), json!({"engine": "local"})).await;
    loop {
        let status = client.call("glint/status", Value::Null).await;
        match status["engine"]["state"].as_str() {
            Some("ready") => break,
            Some("failed") => {
                println!("resolve with the default model: the engine failed: {status}");
                return;
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let uri = "file:///w/shapes.py";
    client.open(uri, "python", SAMPLE).await;
    let diagnostic = json!({"range": range(11, 8, 11, 27), "message": "use the += operator", "severity": 3});
    println!("resolve with the default model (SmolLM2-135M Q4_1), Python sample, 3 runs each:");
    let cases = [
        ("completeBody", range(1, 4, 1, 4), json!([])),
        ("document", range(5, 4, 5, 4), json!([])),
        ("test", range(5, 4, 5, 4), json!([])),
        ("fix", range(11, 10, 11, 10), json!([diagnostic])),
        ("rewrite", range(9, 0, 12, 17), json!([])),
    ];
    for (kind, at, diagnostics) in cases {
        let mut times = Vec::new();
        let mut failures = 0;
        for _ in 0..3 {
            let started = Instant::now();
            let ok = if kind == "rewrite" {
                let args = json!([{"uri": uri, "range": at, "instruction": "use the built-in sum function"}]);
                let response = client
                    .request("workspace/executeCommand", json!({"command": "glint.rewrite", "arguments": args}))
                    .await;
                response.get("error").is_none()
            } else {
                let params = json!({"textDocument": {"uri": uri}, "range": at, "context": {"diagnostics": diagnostics, "triggerKind": 1}});
                let listed = client.call("textDocument/codeAction", params).await;
                let action = listed.as_array().into_iter().flatten().find(|a| a["data"]["kind"] == kind).cloned();
                match action {
                    Some(action) => client.request("codeAction/resolve", action).await.get("error").is_none(),
                    None => false,
                }
            };
            times.push(started.elapsed());
            failures += usize::from(!ok);
        }
        let summary = stats::summarize(&times);
        println!(
            "  {kind:<13} median {:>7.0} ms  max {:>7.0} ms  no valid edit {failures}/3",
            stats::ms(summary.p50),
            stats::ms(summary.max)
        );
    }
}
