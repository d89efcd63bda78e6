//! Soak: a replayed editing session of about 30 minutes of typing (9,000 keystrokes at five a
//! second) compressed into as fast as the server answers, against the real binary. Three source
//! files are retyped line by line with an automatic inline completion after every keystroke;
//! scratch files are opened and closed along the way, and the edited files are closed and reopened
//! now and then. Prints the server's resident memory every 250 keystrokes and the growth between
//! the first and the last quarter of the session. Asserts nothing.
//!
//! `cargo bench -p glint-tests --bench soak`. With the fake engine by default; `GLINT_SOAK_MODEL=1`
//! uses the local engine with the default model (`glint model fetch`), `GLINT_SOAK_KEYS` sets the
//! number of keystrokes.

#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use glint_tests::{LspClient, capabilities, corpus, range, stats};
use serde_json::{Value, json};

const GLINT: &str = env!("CARGO_BIN_EXE_glint-e2e");
const SAMPLE_EVERY: usize = 250;

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

struct File {
    uri: String,
    language: &'static str,
    lines: Vec<String>,
    version: i32,
    /// The line being retyped.
    at: usize,
}

impl File {
    fn text(&self) -> String {
        let mut text = self.lines.join("\n");
        text.push('\n');
        text
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    glint_tests::set_timeout(Duration::from_secs(300));
    let keys: usize = std::env::var("GLINT_SOAK_KEYS").ok().and_then(|s| s.parse().ok()).unwrap_or(9000);
    let real = std::env::var("GLINT_SOAK_MODEL").is_ok_and(|v| v == "1");
    let engine = if real {
        if let Err(e) = glint_engine::fetch::resolve_model(None) {
            println!("SKIP soak with the real model: {e}");
            return Ok(());
        }
        "--engine=local".to_string()
    } else {
        "--engine=fake+delay=1:value + 1".to_string()
    };
    let client = LspClient::spawn(GLINT, &["lsp", &engine, "--log-level=warn"]);
    client.initialize(capabilities(&["utf-16"]), json!({"debounceMs": 0, "maxTokens": 16})).await;
    let pid = client.pid().expect("a child process");
    loop {
        let status = client.call("glint/status", Value::Null).await;
        match status["engine"]["state"].as_str() {
            Some("ready") => break,
            Some("failed") => anyhow::bail!("the engine failed: {status}"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let mut files: Vec<File> = [("rust", "rs"), ("python", "py"), ("typescript", "ts")]
        .into_iter()
        .map(|(language, ext)| File {
            uri: format!("file:///soak/main.{ext}"),
            language,
            lines: corpus::source(language, 1500).lines().map(str::to_string).collect(),
            version: 1,
            at: 3,
        })
        .collect();
    for file in &files {
        client.open(&file.uri, file.language, &file.text()).await;
    }
    println!("soak: {keys} keystrokes ({} min of typing at 5 keys/s), engine {engine}", keys / 300);
    println!("{:>8} {:>10} {:>10} {:>9}", "keys", "RSS MiB", "peak MiB", "elapsed");

    let started = Instant::now();
    let mut samples: Vec<(usize, u64)> = Vec::new();
    let mut latencies = Vec::new();
    let mut scratch = 0usize;
    let mut typed = 0usize;
    let mut current = 0usize;
    let mut pending_line: Vec<char> = Vec::new();
    while typed < keys {
        // Switch files every 600 keystrokes, at a line boundary.
        if typed.is_multiple_of(600) && pending_line.is_empty() {
            current = (typed / 600) % files.len();
        }
        // Every 1,000 keystrokes a scratch file is opened and another closed; every 3,000 an
        // edited file is closed and reopened (its tree must go with it).
        if typed.is_multiple_of(1000) {
            scratch += 1;
            let uri = format!("file:///soak/scratch{scratch}.rs");
            client.open(&uri, "rust", &corpus::source("rust", 2000)).await;
            if scratch > 1 {
                let old = format!("file:///soak/scratch{}.rs", scratch - 1);
                client.notify("textDocument/didClose", json!({"textDocument": {"uri": old}})).await;
            }
        }
        if typed % 3000 == 2999 {
            let file = &files[(current + 1) % files.len()];
            client.notify("textDocument/didClose", json!({"textDocument": {"uri": file.uri}})).await;
            client.open(&file.uri, file.language, &file.text()).await;
        }
        let file = &mut files[current];
        if pending_line.is_empty() {
            // Clear the next non-empty line and type it again.
            file.at = (file.at + 7) % file.lines.len();
            while file.lines[file.at].trim().is_empty() {
                file.at = (file.at + 1) % file.lines.len();
            }
            let line = std::mem::take(&mut file.lines[file.at]);
            let indent = line.len() - line.trim_start().len();
            pending_line = line[indent..].chars().collect();
            pending_line.reverse();
            file.version += 1;
            let end = line.chars().count() as u32;
            file.lines[file.at] = line[..indent].to_string();
            client
                .notify(
                    "textDocument/didChange",
                    json!({"textDocument": {"uri": file.uri, "version": file.version},
                           "contentChanges": [{"range": range(file.at as u32, indent as u32, file.at as u32, end), "text": ""}]}),
                )
                .await;
        }
        let Some(c) = pending_line.pop() else { continue };
        let line = file.at as u32;
        let column = file.lines[file.at].chars().count() as u32;
        file.lines[file.at].push(c);
        file.version += 1;
        client
            .notify(
                "textDocument/didChange",
                json!({"textDocument": {"uri": file.uri, "version": file.version},
                       "contentChanges": [{"range": range(line, column, line, column), "text": c.to_string()}]}),
            )
            .await;
        let asked = Instant::now();
        let response = client
            .request(
                "textDocument/inlineCompletion",
                json!({"textDocument": {"uri": file.uri}, "position": {"line": line, "character": column + 1},
                       "context": {"triggerKind": 2}}),
            )
            .await;
        latencies.push(asked.elapsed());
        if let Some(error) = response.get("error")
            && error["code"] != -32801
        {
            anyhow::bail!("completion failed at keystroke {typed}: {response}");
        }
        typed += 1;
        if typed.is_multiple_of(SAMPLE_EVERY) {
            let rss = rss_kib(pid, "VmRSS:");
            samples.push((typed, rss));
            println!(
                "{typed:>8} {:>10.1} {:>10.1} {:>8.1}s",
                rss as f64 / 1024.0,
                rss_kib(pid, "VmHWM:") as f64 / 1024.0,
                started.elapsed().as_secs_f64()
            );
        }
    }
    for file in &files {
        let state = client.document_state(&file.uri, false).await;
        anyhow::ensure!(state["text"] == file.text(), "{} diverged from the client", file.uri);
    }
    let status = client.call("glint/status", Value::Null).await;
    let quarter = (samples.len() / 4).max(1);
    let mean = |s: &[(usize, u64)]| s.iter().map(|(_, r)| *r as f64).sum::<f64>() / s.len().max(1) as f64 / 1024.0;
    let first = mean(&samples[..quarter]);
    let last = mean(&samples[samples.len() - quarter..]);
    println!(
        "RSS: start {:.1} MiB, end {:.1} MiB, peak {:.1} MiB; first quarter mean {first:.1} MiB, last quarter mean {last:.1} MiB, growth {:+.1} MiB ({:+.1}%)",
        samples.first().map_or(0.0, |s| s.1 as f64 / 1024.0),
        samples.last().map_or(0.0, |s| s.1 as f64 / 1024.0),
        rss_kib(pid, "VmHWM:") as f64 / 1024.0,
        last - first,
        (last - first) / first * 100.0
    );
    println!(
        "{typed} keystrokes in {:.1} s; completion {}; open documents {}, typing cache entries {}",
        started.elapsed().as_secs_f64(),
        stats::summarize(&latencies),
        status["documents"],
        status["typingCacheEntries"]
    );
    client.shutdown().await;
    Ok(())
}
