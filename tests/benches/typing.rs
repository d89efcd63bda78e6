//! Typing replay with the real model: open real source files, type a masked span one character at
//! a time every 80 ms as an editor would (didChange, then an automatic inline completion request;
//! the server cancels the superseded one), and report keystroke-to-ghost-text percentiles, the share
//! of keystrokes answered before the next key, wasted tokens and cache hits. Prints; asserts nothing.
//!
//! `cargo bench -p glint-tests --bench typing` (needs `glint model fetch`; `GLINT_MODEL` picks another
//! GGUF, `GLINT_THREADS` the engine's thread count).

#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use glint_engine::{LocalConfig, LocalEngine, fetch};
use glint_tests::cases::{self, Case};
use glint_tests::counting::CountingEngine;
use glint_tests::{LspClient, ServerOptions, capabilities, stats};
use serde_json::{Value, json};

const KEY_INTERVAL: Duration = Duration::from_millis(80);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // A real model on a busy machine can take far longer than a test's default wait.
    glint_tests::set_timeout(std::time::Duration::from_secs(300));
    let explicit = std::env::var_os("GLINT_MODEL").map(std::path::PathBuf::from);
    let model = match fetch::resolve_model(explicit.as_deref()) {
        Ok(path) => path,
        Err(e) => {
            println!("SKIP typing replay: {e}");
            return Ok(());
        }
    };
    let all = match cases::load(&cases::default_path()) {
        Ok(all) => all,
        Err(e) => {
            println!("SKIP typing replay: cannot read the cases ({e})");
            return Ok(());
        }
    };
    // Two single-line spans per language: real code, typed where people type.
    let mut chosen: Vec<&Case> = Vec::new();
    for language in ["python", "rust", "typescript", "javascript", "go", "c"] {
        chosen.extend(
            all.iter()
                .filter(|c| c.language == language && c.kind == "single_line" && (12..=60).contains(&c.expected.len()))
                .take(2),
        );
    }
    let threads = std::env::var("GLINT_THREADS").ok().and_then(|t| t.parse().ok());
    let local = LocalEngine::load(&model, LocalConfig { threads, ..LocalConfig::default() })?;
    let info = glint_engine::Engine::info(&local);
    let counting = Arc::new(CountingEngine::new(Arc::new(local)));
    let counts = Arc::clone(&counting.counts);
    let client = LspClient::in_process(ServerOptions { injected_engine: Some(counting), ..ServerOptions::default() });
    // The server's default debounce unless `GLINT_DEBOUNCE_MS` says otherwise.
    let mut settings = json!({"streaming": true});
    if let Some(ms) = std::env::var("GLINT_DEBOUNCE_MS").ok().and_then(|v| v.parse::<u64>().ok()) {
        settings["debounceMs"] = json!(ms);
    }
    client.initialize(capabilities(&["utf-16"]), settings).await;

    let mut to_answer = Vec::new();
    let mut to_first_text = Vec::new();
    let (mut keystrokes, mut answered, mut empty, mut stale) = (0usize, 0usize, 0usize, 0usize);
    for (n, case) in chosen.iter().enumerate() {
        let (language_id, ext) = cases::language_id(&case.language);
        let uri = format!("file:///replay/{n}.{ext}");
        let mut text = format!("{}{}", case.prefix, case.suffix);
        client.open(&uri, language_id, &text).await;
        let mut cursor_byte = case.prefix.len();
        // Warm-up request at the starting point, as when the cursor arrives there.
        let (line, character) = lsp_position(&text, cursor_byte);
        let _ = client.request("textDocument/inlineCompletion", params(&uri, line, character)).await;
        let mut pending: Option<(Instant, tokio::task::JoinHandle<(Value, Instant)>)> = None;
        for (k, ch) in case.expected.chars().enumerate() {
            if ch == '\n' {
                break;
            }
            let key_at = Instant::now();
            // The previous request had until now; if still running, this keystroke cancels it.
            let late = pending.take();
            let (line, character) = lsp_position(&text, cursor_byte);
            let change = json!({"textDocument": {"uri": uri, "version": k + 2},
                "contentChanges": [{"range": {"start": {"line": line, "character": character}, "end": {"line": line, "character": character}}, "text": ch.to_string()}]});
            if let Some((sent, handle)) = late {
                if handle.is_finished() {
                    tally(handle, sent, &mut to_answer, &mut answered, &mut empty, &mut stale).await;
                    client.notify("textDocument/didChange", change).await;
                } else {
                    client.notify("textDocument/didChange", change).await;
                    stale += 1;
                    let _ = handle.await;
                }
            } else {
                client.notify("textDocument/didChange", change).await;
            }
            text.insert(cursor_byte, ch);
            cursor_byte += ch.len_utf8();
            let (line, character) = lsp_position(&text, cursor_byte);
            let sent = Instant::now();
            let (_, rx) = client.start_request("textDocument/inlineCompletion", params(&uri, line, character)).await;
            let handle = tokio::spawn(async move {
                let response = rx.await.unwrap_or(Value::Null);
                (response, Instant::now())
            });
            pending = Some((sent, handle));
            keystrokes += 1;
            // The first progress notification for this version is the first ghost text a
            // streaming client shows.
            let version = k + 2;
            let first = tokio::time::timeout(
                KEY_INTERVAL,
                client.wait_for("progress", |m| {
                    m["method"] == "glint/inlineCompletionProgress"
                        && m["params"]["uri"] == uri
                        && m["params"]["version"] == version
                }),
            )
            .await;
            if first.is_ok() {
                to_first_text.push(sent.elapsed());
            }
            let spent = key_at.elapsed();
            if spent < KEY_INTERVAL {
                tokio::time::sleep(KEY_INTERVAL - spent).await;
            }
        }
        if let Some((sent, handle)) = pending.take() {
            tally(handle, sent, &mut to_answer, &mut answered, &mut empty, &mut stale).await;
        }
    }
    println!(
        "typing replay: model {} ({} ctx), {} files, {keystrokes} keystrokes every {} ms",
        info.model,
        info.context_length,
        chosen.len(),
        KEY_INTERVAL.as_millis()
    );
    if !to_answer.is_empty() {
        println!(
            "  keystroke -> ghost text (final answer, shown before the next key): {}",
            stats::summarize(&to_answer)
        );
    }
    if !to_first_text.is_empty() {
        println!(
            "  keystroke -> first streamed text:                               {}",
            stats::summarize(&to_first_text)
        );
    }
    let pct = |n: usize| 100.0 * n as f64 / keystrokes.max(1) as f64;
    println!(
        "  answered with text before the next key: {answered} ({:.1}%), nothing to show: {empty} ({:.1}%), superseded: {stale} ({:.1}%)",
        pct(answered),
        pct(empty),
        pct(stale)
    );
    let calls = counts.calls.load(Ordering::Relaxed);
    let cancelled = counts.cancelled.load(Ordering::Relaxed);
    println!(
        "  engine calls: {calls} for {keystrokes} keystrokes ({} answered without the engine: cache hits or skips); cancelled generations: {cancelled}",
        keystrokes.saturating_sub(calls)
    );
    println!(
        "  tokens decoded for cancelled generations: {}, of which after the cancel: {} ({:.2} per cancel)",
        counts.chunks_of_cancelled.load(Ordering::Relaxed),
        counts.chunks_after_cancel.load(Ordering::Relaxed),
        counts.chunks_after_cancel.load(Ordering::Relaxed) as f64 / cancelled.max(1) as f64
    );
    Ok(())
}

async fn tally(
    handle: tokio::task::JoinHandle<(Value, Instant)>,
    sent: Instant,
    to_answer: &mut Vec<Duration>,
    answered: &mut usize,
    empty: &mut usize,
    stale: &mut usize,
) {
    let Ok((response, at)) = handle.await else { return };
    if response.get("error").is_some() {
        *stale += 1;
    } else if response["result"].is_null() {
        *empty += 1;
    } else {
        *answered += 1;
        to_answer.push(at.duration_since(sent));
    }
}

fn params(uri: &str, line: u32, character: u32) -> Value {
    json!({"textDocument": {"uri": uri}, "position": {"line": line, "character": character}, "context": {"triggerKind": 2}})
}

/// LSP line and UTF-16 column of a byte offset.
fn lsp_position(text: &str, byte: usize) -> (u32, u32) {
    let before = &text[..byte];
    let line = before.matches('\n').count() as u32;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].encode_utf16().count() as u32)
}
