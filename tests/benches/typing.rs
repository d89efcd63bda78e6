//! Typing replay with the real model, as a user types: open a real source file, wait as a person
//! reads (3 s by default), then type the next keys of the file one every 80 ms as an editor would
//! (didChange, then an automatic inline completion request; the server cancels the superseded
//! one). Per model, in one run, it reports:
//! - "in time": a non-empty inline completion for the current version arrived before the next key;
//! - "useful": in time, and its first 4 characters are exactly what the user types next;
//! - first ghost text (streamed partial or final answer) after a keystroke, p50 / p90 / p99 over
//!   the keystrokes that got one before the next key;
//! - wasted tokens after cancels and engine calls. Prints; asserts nothing.
//!
//! `cargo bench -p glint-tests --bench typing`. Models: `GLINT_TYPING_MODELS` (comma-separated
//! catalog names or GGUF paths; default: every installed catalog model), `GLINT_THREADS` the
//! engine's threads, `GLINT_TYPING_PAUSE_MS` the pause after opening (default 3000),
//! `GLINT_TYPING_KEYS` keys per file (default 20), `GLINT_DEBOUNCE_MS` the server's debounce,
//! `GLINT_TYPING_CONTEXT_TOKENS` the prompt budget (default: the server's, 1,024),
//! `GLINT_EARLY_ANSWER_MS` the server's `earlyAnswerMs` (comma-separated values replay each in
//! turn, e.g. `0,50` to compare answering at the model's end with early answers),
//! `GLINT_TYPING_NO_CURSOR=1` skips the code action request VS Code sends where the cursor lands
//! (which lets the server warm the context up), `GLINT_TYPING_TRACE=1` prints one line per key
//! (what was shown, when, and each engine call the key started: prompt and cached tokens,
//! prefill time, first chunk, chunks, how it ended).

#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use glint_engine::{LocalConfig, LocalEngine, catalog, fetch};
use glint_tests::cases::{self, Case};
use glint_tests::counting::CountingEngine;
use glint_tests::{LspClient, ServerOptions, capabilities, stats};
use serde_json::{Value, json};

const KEY_INTERVAL: Duration = Duration::from_millis(80);
/// Characters of a suggestion that must match what the user types next for it to be useful.
const USEFUL_CHARS: usize = 4;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The models to replay with: `GLINT_TYPING_MODELS`, else every installed catalog model.
fn models() -> Vec<(String, PathBuf)> {
    let named = std::env::var("GLINT_TYPING_MODELS").ok().filter(|v| !v.trim().is_empty());
    let names: Vec<String> = match named {
        Some(list) => list.split(',').map(|s| s.trim().to_string()).collect(),
        None => catalog::CATALOG.iter().map(|m| m.name.to_string()).collect(),
    };
    names
        .into_iter()
        .filter_map(|name| match fetch::resolve_setting(Some(&name), false, &mut |_| {}) {
            Ok(path) => Some((name, path)),
            Err(e) => {
                println!("SKIP {name}: {e}");
                None
            }
        })
        .collect()
}

#[derive(Default)]
struct Tally {
    keystrokes: usize,
    in_time: usize,
    useful: usize,
    first_text: Vec<Duration>,
    to_answer: Vec<Duration>,
    keys: Vec<KeyTrace>,
}

/// One keystroke of the replay, for `GLINT_TYPING_TRACE`.
struct KeyTrace {
    at: Instant,
    key: char,
    first_partial: Option<Duration>,
    answered: Option<Duration>,
    shown: Option<String>,
    next: String,
}

/// One line per key, then the engine calls that started before the next key.
fn print_trace(title: &str, keys: &[KeyTrace], counts: &glint_tests::counting::Counts) {
    println!("  trace {title}");
    let calls = counts.calls_traced.lock();
    for (k, key) in keys.iter().enumerate() {
        let ms = |d: Option<Duration>| d.map_or("-".to_string(), |d| format!("{:.0}", d.as_secs_f64() * 1e3));
        println!(
            "    {:?} partial {} answer {} shown {:?} next {:?}",
            key.key,
            ms(key.first_partial),
            ms(key.answered),
            key.shown.as_deref().unwrap_or(""),
            key.next
        );
        let until = keys.get(k + 1).map(|n| n.at);
        for (i, call) in
            calls.iter().enumerate().filter(|(_, c)| c.started >= key.at && until.is_none_or(|u| c.started < u))
        {
            let t = &call.timings;
            // Where this call's request parts from the previous call's: snippets, prefix, suffix.
            let parts = match i.checked_sub(1).map(|p| &calls[p]) {
                Some(prev) => {
                    let same = |a: &str, b: &str| a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
                    format!(
                        " snippets {}/{} prefix {}/{} suffix {}/{}",
                        same(&prev.asked[0], &call.asked[0]),
                        call.asked[0].len(),
                        same(&prev.asked[1], &call.asked[1]),
                        call.asked[1].len(),
                        same(&prev.asked[2], &call.asked[2]),
                        call.asked[2].len()
                    )
                }
                None => String::new(),
            };
            println!(
                "      call +{:.0} ms: prompt {} cached {} prefill {:.0} ms, first chunk {} ms, {} chunks, {:?}{}{parts}",
                call.started.duration_since(key.at).as_secs_f64() * 1e3,
                t.prompt_tokens,
                t.cached_tokens,
                t.prefill_ms,
                ms(call.first_chunk),
                call.chunks,
                call.reason,
                if call.cancelled { " (cancelled)" } else { "" }
            );
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // A real model on a busy machine can take far longer than a test's default wait.
    glint_tests::set_timeout(Duration::from_secs(300));
    if std::env::var_os("GLINT_LOG").is_some() {
        // The server's and the engine's own log lines, on stderr.
        glint_server::logging::init("info");
    }
    let all = match cases::load(&cases::default_path()) {
        Ok(all) => all,
        Err(e) => {
            println!("SKIP typing replay: cannot read the cases ({e})");
            return Ok(());
        }
    };
    let models = models();
    if models.is_empty() {
        println!("SKIP typing replay: no model installed (run `glint model fetch`)");
        return Ok(());
    }
    // Two single-line spans per language: real code, typed where people type.
    let mut chosen: Vec<&Case> = Vec::new();
    for language in ["python", "rust", "typescript", "javascript", "go", "c"] {
        chosen.extend(
            all.iter()
                .filter(|c| c.language == language && c.kind == "single_line" && (12..=60).contains(&c.expected.len()))
                .take(2),
        );
    }
    let pause = Duration::from_millis(env_number("GLINT_TYPING_PAUSE_MS", 3000));
    let keys = env_number("GLINT_TYPING_KEYS", 20) as usize;
    let threads = std::env::var("GLINT_THREADS").ok().and_then(|t| t.parse().ok());
    let mut rows = Vec::new();
    let early: Vec<Option<u64>> = match std::env::var("GLINT_EARLY_ANSWER_MS") {
        Ok(list) => list.split(',').map(|v| v.trim().parse().ok()).collect(),
        Err(_) => vec![None],
    };
    for (name, path) in models {
        for early_ms in &early {
            let label = match early_ms {
                Some(ms) => format!("{name} (earlyAnswerMs {ms})"),
                None => name.clone(),
            };
            let local = LocalEngine::load(&path, LocalConfig { threads, ..LocalConfig::default() })?;
            let counting = Arc::new(CountingEngine::new(Arc::new(local)));
            let counts = Arc::clone(&counting.counts);
            let client =
                LspClient::in_process(ServerOptions { injected_engine: Some(counting), ..ServerOptions::default() });
            let mut settings = json!({"streaming": true});
            if let Ok(tokens) = std::env::var("GLINT_TYPING_CONTEXT_TOKENS") {
                settings["contextTokens"] = json!(tokens.parse::<u64>().unwrap_or(1024));
            }
            if let Ok(ms) = std::env::var("GLINT_DEBOUNCE_MS") {
                settings["debounceMs"] = json!(ms.parse::<u64>().unwrap_or(0));
            }
            if let Some(ms) = early_ms {
                settings["earlyAnswerMs"] = json!(ms);
            }
            client.initialize(capabilities(&["utf-16"]), settings).await;
            let mut tally = Tally::default();
            for (n, case) in chosen.iter().enumerate() {
                let keys_before = tally.keys.len();
                replay(&client, &format!("file:///replay/{name}/{n}"), case, pause, keys, &mut tally).await;
                if std::env::var_os("GLINT_TYPING_TRACE").is_some() {
                    print_trace(&format!("{label} file {n} ({})", case.language), &tally.keys[keys_before..], &counts);
                }
            }
            let calls = counts.calls.load(Ordering::Relaxed);
            let cancelled = counts.cancelled.load(Ordering::Relaxed);
            let wasted = counts.chunks_after_cancel.load(Ordering::Relaxed) as f64 / cancelled.max(1) as f64;
            let pct = |n: usize| 100.0 * n as f64 / tally.keystrokes.max(1) as f64;
            let first = percentiles(&tally.first_text);
            println!(
                "{label}: {} files, {} keystrokes every {} ms after a {} ms pause",
                chosen.len(),
                tally.keystrokes,
                KEY_INTERVAL.as_millis(),
                pause.as_millis()
            );
            println!(
                "  in time {:.0}%, useful {:.0}%, first ghost text p50 / p90 / p99 {first}",
                pct(tally.in_time),
                pct(tally.useful)
            );
            if !tally.to_answer.is_empty() {
                println!("  keystroke -> final answer in time: {}", stats::summarize(&tally.to_answer));
            }
            println!(
                "  engine calls {calls}, cancelled {cancelled}, tokens decoded after a cancel {wasted:.2} per cancel"
            );
            rows.push(format!("| {label} | {:.0}% | {:.0}% | {first} |", pct(tally.in_time), pct(tally.useful)));
            client.shutdown().await;
        }
    }
    println!("\n| model | in time | useful | first ghost text p50 / p90 / p99 |\n|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
    Ok(())
}

/// Opens `case`'s file, waits `pause`, then types up to `keys` of the characters that follow the
/// cursor in the real file, one every `KEY_INTERVAL`.
async fn replay(client: &LspClient, uri_base: &str, case: &Case, pause: Duration, keys: usize, tally: &mut Tally) {
    let (language_id, ext) = cases::language_id(&case.language);
    let uri = format!("{uri_base}.{ext}");
    let mut text = format!("{}{}", case.prefix, case.suffix);
    client.open(&uri, language_id, &text).await;
    let mut cursor = case.prefix.len();
    // VS Code asks for code actions where the cursor lands when a file opens (the light bulb);
    // that is all the server learns of the cursor before the first key.
    if std::env::var_os("GLINT_TYPING_NO_CURSOR").is_none() {
        let (line, character) = lsp_position(&text, cursor);
        let at =
            json!({"start": {"line": line, "character": character}, "end": {"line": line, "character": character}});
        let _ = client
            .request(
                "textDocument/codeAction",
                json!({"textDocument": {"uri": uri}, "range": at, "context": {"diagnostics": [], "triggerKind": 2}}),
            )
            .await;
    }
    tokio::time::sleep(pause).await;
    // What the user types: the masked span of the real file, one key at a time (at most `keys`).
    let real = format!("{}{}{}", case.prefix, case.expected, case.suffix);
    let typed: Vec<char> = case.expected.chars().take(keys).collect();
    for (k, &ch) in typed.iter().enumerate() {
        let key_at = Instant::now();
        let version = k as i64 + 2;
        let (line, character) = lsp_position(&text, cursor);
        let change = json!({"textDocument": {"uri": uri, "version": version},
            "contentChanges": [{"range": {"start": {"line": line, "character": character}, "end": {"line": line, "character": character}}, "text": ch.to_string()}]});
        client.notify("textDocument/didChange", change).await;
        text.insert(cursor, ch);
        cursor += ch.len_utf8();
        // The real file continues the same way from here: what the user types next.
        let next: String = real[cursor..].chars().take(USEFUL_CHARS).collect();
        let (line, character) = lsp_position(&text, cursor);
        let (_, answer) = client.start_request("textDocument/inlineCompletion", params(&uri, line, character)).await;
        // The answer's arrival is stamped as it happens, whatever else the replay waits for.
        let answer = tokio::spawn(async move {
            let response = answer.await.unwrap_or(Value::Null);
            (response, Instant::now())
        });
        tally.keystrokes += 1;
        let deadline = key_at + KEY_INTERVAL;
        let shown = |m: &Value| {
            m["method"] == "glint/inlineCompletionProgress"
                && m["params"]["uri"] == uri
                && m["params"]["version"] == version
                && m["params"]["text"].as_str().is_some_and(|t| !t.is_empty())
        };
        let first_partial = tokio::select! {
            _ = tokio::time::sleep_until(deadline.into()) => None,
            _ = client.wait_for("progress", shown) => Some(key_at.elapsed()),
        };
        let final_answer = tokio::time::timeout_at(deadline.into(), answer).await.ok().and_then(Result::ok);
        let arrived = final_answer.as_ref().map(|(_, at)| at.duration_since(key_at));
        let suggestion = final_answer
            .as_ref()
            .filter(|(_, at)| *at <= deadline)
            .and_then(|(response, _)| ghost_text(response, &text[..cursor], line, character));
        tally.keys.push(KeyTrace {
            at: key_at,
            key: ch,
            first_partial,
            answered: arrived,
            shown: suggestion.clone(),
            next: next.clone(),
        });
        if let (Some(suggestion), Some(answered_at)) = (suggestion.filter(|s| !s.is_empty()), arrived) {
            tally.in_time += 1;
            tally.to_answer.push(answered_at);
            let first = first_partial.map_or(answered_at, |p| p.min(answered_at));
            tally.first_text.push(first);
            let head: String = suggestion.chars().take(USEFUL_CHARS).collect();
            if !next.is_empty()
                && head == next[..head.len().min(next.len())]
                && head.len() >= next.len().min(USEFUL_CHARS)
            {
                tally.useful += 1;
            }
        } else if let Some(first) = first_partial {
            tally.first_text.push(first);
        }
        let spent = key_at.elapsed();
        if spent < KEY_INTERVAL {
            tokio::time::sleep(KEY_INTERVAL - spent).await;
        }
    }
    client.notify("textDocument/didClose", json!({"textDocument": {"uri": uri}})).await;
}

/// The text an inline completion response shows after the cursor: its first item's insert text,
/// less what its range covers before the cursor on the cursor's line (already typed).
fn ghost_text(response: &Value, before: &str, line: u32, character: u32) -> Option<String> {
    if response.get("error").is_some() {
        return None;
    }
    let result = &response["result"];
    let item = result["items"].get(0).or_else(|| result.get(0))?;
    let insert = item["insertText"].as_str()?;
    let start = &item["range"]["start"];
    if start["line"] == line
        && let Some(from) = start["character"].as_u64()
    {
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let typed: String = before[line_start..]
            .encode_utf16()
            .skip(from as usize)
            .take((character as usize).saturating_sub(from as usize))
            .map(|u| char::from_u32(u32::from(u)).unwrap_or('?'))
            .collect();
        return Some(insert.strip_prefix(typed.as_str()).unwrap_or(insert).to_string());
    }
    Some(insert.to_string())
}

fn percentiles(values: &[Duration]) -> String {
    if values.is_empty() {
        return "-".into();
    }
    let mut ms: Vec<f64> = values.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    format!("{:.1} / {:.1} / {:.1} ms", at(0.5), at(0.9), at(0.99))
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
