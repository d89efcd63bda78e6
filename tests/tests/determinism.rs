//! Determinism with the real default model: a greedy completion is a function of its document,
//! cursor, settings and model, whatever was asked before. Two fresh servers get the same requests
//! on real code, one in order and the other in reverse order with other documents, sampled
//! variants and automatic requests in between, then each document reopened and asked again; every
//! greedy answer must be the same text. Runs with `approximateKvReuse` off, the one
//! approximation allowed (see the README's invariants). Runs when the model has been fetched and
//! prints SKIP otherwise. The prompt itself is checked without a model: the other open documents
//! it draws on are read in the same order however they were opened.

#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use glint_engine::fake::FakeEngine;
use glint_engine::fetch;
use glint_tests::cases::{self, Case};
use glint_tests::{LspClient, ServerOptions, capabilities};
use serde_json::{Value, json};

/// How many requests, and how many of them per language at most.
const REQUESTS: usize = 12;
const PER_LANGUAGE: usize = 3;

/// One completion request: a document and a cursor.
struct Request {
    uri: String,
    language_id: &'static str,
    text: String,
    line: u32,
    character: u32,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greedy_answers_do_not_depend_on_what_was_asked_before() {
    if fetch::resolve_model(None).is_err() {
        println!("SKIP: the default model is not fetched (run `glint model fetch`)");
        return;
    }
    glint_tests::set_timeout(Duration::from_secs(300));
    let requests = requests();
    println!("{} requests on real code", requests.len());

    // Every document open (other open documents are context), the requests in order.
    let client = ready_client().await;
    for request in &requests {
        open(&client, request).await;
    }
    let mut first = Vec::new();
    for request in &requests {
        first.push(greedy(&client, request).await);
    }
    let _ = client.shutdown().await;

    // A fresh server, the documents opened in reverse order, the requests asked in reverse order
    // with other work in between, then all of them again.
    let client = ready_client().await;
    for request in requests.iter().rev() {
        open(&client, request).await;
    }
    let mut second = vec![String::new(); requests.len()];
    for (i, request) in requests.iter().enumerate().rev() {
        second[i] = greedy(&client, request).await;
        // Sampled variants of the same request (they run in its document's session).
        invoked(&client, request).await;
        // A document that comes and goes, with an automatic request (whose answer starts the
        // speculative next suggestion in the background).
        let scratch = Request {
            uri: format!("file:///determinism/scratch-{i}.py"),
            language_id: "python",
            text: format!("import os\n\n\ndef scratch_{i}(path):\n    with open(path) as f:\n        \n"),
            line: 5,
            character: 8,
        };
        open(&client, &scratch).await;
        automatic(&client, &scratch).await;
        client.notify("textDocument/didClose", json!({"textDocument": {"uri": scratch.uri}})).await;
    }
    // Each document closed and opened again (which forgets its typing-through cache but not the
    // engine's cache of its prompt), then asked again.
    let mut again = Vec::new();
    for request in &requests {
        client.notify("textDocument/didClose", json!({"textDocument": {"uri": request.uri}})).await;
        open(&client, request).await;
        again.push(greedy(&client, request).await);
    }
    let _ = client.shutdown().await;

    let mut differ = Vec::new();
    for (i, request) in requests.iter().enumerate() {
        let same = first[i] == second[i] && first[i] == again[i];
        println!("{} {}:{}: {:?}", if same { "same" } else { "DIFF" }, request.uri, request.line + 1, first[i]);
        if !same {
            println!("     reversed: {:?}\n     again:    {:?}", second[i], again[i]);
            differ.push(&request.uri);
        }
    }
    println!("{} of {} greedy answers the same in every order", requests.len() - differ.len(), requests.len());
    assert!(differ.is_empty(), "greedy answers depend on what was asked before: {differ:?}");
}

#[tokio::test]
async fn the_prompt_does_not_depend_on_the_order_documents_were_opened_in() {
    // Three other open documents define `helper`; a context takes at most two signatures per name,
    // so which two, and in what order, must follow from what is open, not from how it was opened.
    let others: Vec<(String, String)> = (0..3)
        .map(|i| (format!("file:///order/lib{i}.py"), format!("def helper(value, option_{i}):\n    return value\n")))
        .collect();
    let current = "file:///order/main.py";
    let text = "from lib import helper\n\n\ndef run(data):\n    result = helper(data, \n";
    let mut prompts = Vec::new();
    for round in 0..4 {
        let engine = Arc::new(FakeEngine::fixed("1)"));
        let options = ServerOptions { injected_engine: Some(engine.clone()), ..ServerOptions::default() };
        let client = LspClient::in_process(options);
        client.initialize(capabilities(&["utf-16"]), json!({"debounceMs": 0})).await;
        let order: Vec<&(String, String)> =
            if round % 2 == 0 { others.iter().collect() } else { others.iter().rev().collect() };
        for (uri, text) in order {
            client.open(uri, "python", text).await;
        }
        client.open(current, "python", text).await;
        let request = Request { uri: current.into(), language_id: "python", text: text.into(), line: 4, character: 26 };
        greedy(&client, &request).await;
        let sent = engine.log().requests.last().cloned().expect("the engine was asked");
        assert!(sent.snippets.iter().any(|s| s.text.contains("def helper")), "signatures are in the prompt: {sent:?}");
        prompts.push(sent);
        let _ = client.shutdown().await;
    }
    for prompt in &prompts[1..] {
        assert_eq!(prompt, &prompts[0], "the same open documents give the same prompt");
    }
}

/// Real code: the shared evaluation cases when they are beside the checkout (a few per language),
/// else a handful of files of our own.
fn requests() -> Vec<Request> {
    let cases = cases::load(&cases::default_path()).unwrap_or_default();
    if cases.is_empty() {
        println!("the shared evaluation cases are not there; using the built-in files");
        return builtin();
    }
    let mut picked: Vec<&Case> = Vec::new();
    for case in &cases {
        let same_language = picked.iter().filter(|c| c.language == case.language).count();
        if picked.len() < REQUESTS && same_language < PER_LANGUAGE {
            picked.push(case);
        }
    }
    picked
        .iter()
        .enumerate()
        .map(|(i, case)| {
            let (language_id, ext) = cases::language_id(&case.language);
            // The end of the prefix and the start of the suffix keep the prompts short.
            let prefix = tail_lines(&case.prefix, 40);
            let suffix = head_lines(&case.suffix, 15);
            let line = prefix.matches('\n').count() as u32;
            let character = prefix.rsplit('\n').next().unwrap_or("").encode_utf16().count() as u32;
            Request {
                uri: format!("file:///determinism/case-{i}.{ext}"),
                language_id,
                text: prefix + &suffix,
                line,
                character,
            }
        })
        .collect()
}

fn builtin() -> Vec<Request> {
    let files: [(&str, &'static str, &str); 4] = [
        ("fib.py", "python", include_str!("../../examples/fib.py")),
        (
            "server.ts",
            "typescript",
            "import express from 'express';\nimport $0\n\nconst app = express();\napp.get('/', (req, res) => res.send(isFunction(req) ? 'ok' : 'no'));\n",
        ),
        (
            "stack.rs",
            "rust",
            "pub struct Stack<T> {\n    items: Vec<T>,\n}\n\nimpl<T> Stack<T> {\n    pub fn push(&mut self, item: T) {\n        $0\n    }\n}\n",
        ),
        (
            "list.go",
            "go",
            "package list\n\n// Sum adds the numbers.\nfunc Sum(xs []int) int {\n\ttotal := 0\n\tfor _, x := range xs {\n\t\t$0\n\t}\n\treturn total\n}\n",
        ),
    ];
    files
        .iter()
        .map(|(name, language_id, text)| {
            let at = text.find("$0").unwrap_or_else(|| text.find("\n\n").map_or(text.len(), |i| i + 1));
            let before = &text[..at];
            Request {
                uri: format!("file:///determinism/{name}"),
                language_id,
                text: text.replacen("$0", "", 1),
                line: before.matches('\n').count() as u32,
                character: before.rsplit('\n').next().unwrap_or("").encode_utf16().count() as u32,
            }
        })
        .collect()
}

fn tail_lines(text: &str, lines: usize) -> String {
    let starts: Vec<usize> = text.match_indices('\n').map(|(i, _)| i + 1).collect();
    let from = if starts.len() > lines { starts[starts.len() - lines] } else { 0 };
    text[from..].to_string()
}

fn head_lines(text: &str, lines: usize) -> String {
    let end = text.match_indices('\n').nth(lines).map_or(text.len(), |(i, _)| i + 1);
    text[..end].to_string()
}

async fn ready_client() -> LspClient {
    let client = LspClient::in_process(ServerOptions::default());
    let options = json!({
        "engine": "local", "debounceMs": 0, "maxTokens": 16, "contextTokens": 384,
        "earlyAnswerMs": 0, "approximateKvReuse": false,
    });
    client.initialize(capabilities(&["utf-16"]), options).await;
    let started = Instant::now();
    loop {
        let status = client.call("glint/status", Value::Null).await;
        match status["engine"]["state"].as_str() {
            Some("ready") => return client,
            Some("failed") => panic!("the local engine failed to start: {status}"),
            _ => {}
        }
        assert!(started.elapsed() < Duration::from_secs(120), "the engine did not become ready: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn open(client: &LspClient, request: &Request) {
    client.open(&request.uri, request.language_id, &request.text).await;
}

fn params(request: &Request, trigger_kind: u32) -> Value {
    json!({
        "textDocument": {"uri": request.uri},
        "position": {"line": request.line, "character": request.character},
        "context": {"triggerKind": trigger_kind},
    })
}

/// The first item of an invoked inline completion: the greedy answer.
async fn greedy(client: &LspClient, request: &Request) -> String {
    let result = client.call("textDocument/inlineCompletion", params(request, 1)).await;
    result[0]["insertText"].as_str().unwrap_or_default().to_string()
}

/// An invoked inline completion, for its sampled variants.
async fn invoked(client: &LspClient, request: &Request) {
    client.call("textDocument/inlineCompletion", params(request, 1)).await;
}

/// An automatic inline completion (answered or not).
async fn automatic(client: &LspClient, request: &Request) {
    let _ = client.request("textDocument/inlineCompletion", params(request, 2)).await;
}
