//! Keystroke storm against the real binary with a slow scripted engine: several documents get
//! `didChange` + automatic inline completion requests as fast as the pipe takes them, for a bounded
//! time. The server must stay responsive (`glint/status` answers), its peak memory stays bounded,
//! no request is answered for a version other than its own, and every document ends exact.
//!
//! What "answered for its own version" means: each request is sent right after the `didChange`
//! that made version v, at the cursor of version v. Its response must be `ContentModified`
//! (-32801) or `RequestCancelled` (-32800), or `null`/no items, or items whose range ends at the
//! cursor of version v and whose text starts with what that range covers in version v's text, so
//! that accepting it in version v leaves the text before the cursor unchanged.
//! `GLINT_STORM_S` sets the storm's length (default 5 s). Figures are printed, not asserted,
//! except generous ceilings that only catch hangs and leaks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use glint_tests::{LspClient, capabilities, range, stats};
use serde_json::{Value, json};

const GLINT: &str = env!("CARGO_BIN_EXE_glint-e2e");
const DOCUMENTS: usize = 4;
/// What the documents' line 1 starts with; the storm types after it.
const LEAD: &str = "    let x = ";
/// Typed in a loop; the engine suggests its start, so the typing-through cache is exercised too.
const TYPED: &str = "compute(a, b) + more(c); ";
/// A status request taking this long means the server hung, not that it is slow.
const HANG: Duration = Duration::from_secs(10);
/// Peak resident memory above this is a leak for a server holding four small documents.
const RSS_CEILING_KIB: u64 = 1 << 20;

/// A request as sent: for which document version, and that version's line 1.
struct Asked {
    uri: String,
    version: i32,
    line: String,
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    line.trim().trim_end_matches("kB").trim().parse().ok()
}

fn text_of(line: &str) -> String {
    format!("fn main() {{\n{line}\n}}\n")
}

/// Checks one response against the version it was asked for; returns whether it carried items.
fn check(sent: &Asked, response: &Value) -> bool {
    if let Some(error) = response.get("error") {
        let code = error["code"].as_i64();
        assert!(matches!(code, Some(-32801) | Some(-32800)), "unexpected error for v{}: {response}", sent.version);
        return false;
    }
    let result = &response["result"];
    let items = match result {
        Value::Null => return false,
        Value::Array(items) => items,
        other => other["items"].as_array().expect("an inline completion list"),
    };
    let cursor = sent.line.chars().count() as u64;
    for item in items {
        let r = &item["range"];
        assert_eq!(
            r["end"],
            json!({"line": 1, "character": cursor}),
            "v{} {} answered at another cursor: {item}",
            sent.version,
            sent.uri
        );
        assert_eq!(r["start"]["line"], 1, "{item}");
        let start = r["start"]["character"].as_u64().expect("a start column") as usize;
        let covered: String = sent.line.chars().skip(start).collect();
        let insert = item["insertText"].as_str().expect("insert text");
        assert!(
            insert.starts_with(&covered),
            "v{} of {}: {insert:?} does not retype the {covered:?} it replaces in {:?}",
            sent.version,
            sent.uri,
            sent.line
        );
    }
    !items.is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keystroke_storm_keeps_the_server_responsive_bounded_and_exact() {
    let storm =
        Duration::from_secs_f64(std::env::var("GLINT_STORM_S").ok().and_then(|s| s.parse().ok()).unwrap_or(5.0));
    let client = Arc::new(LspClient::spawn(GLINT, &["lsp", "--engine=fake+delay=2:compute(a, b) + more(c);"]));
    client.initialize(capabilities(&["utf-16"]), json!({"debounceMs": 0})).await;
    let pid = client.pid().expect("a child process");
    let uris: Vec<String> = (0..DOCUMENTS).map(|i| format!("file:///storm/d{i}.rs")).collect();
    let mut lines = vec![LEAD.to_string(); DOCUMENTS];
    let mut versions = [1; DOCUMENTS];
    for uri in &uris {
        client.open(uri, "rust", &text_of(LEAD)).await;
    }

    // A prober asks for the status every 20 ms while the storm runs.
    let stop = Arc::new(AtomicBool::new(false));
    let prober = {
        let client = Arc::clone(&client);
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Acquire) {
                let started = Instant::now();
                let (_, answer) = client.start_request("glint/status", Value::Null).await;
                let status = tokio::time::timeout(HANG, answer).await.expect("glint/status hung during the storm");
                assert!(status.expect("an answer")["result"]["version"].is_string());
                latencies.push(started.elapsed());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            latencies
        })
    };

    let mut sent = Vec::new();
    let mut messages = 0usize;
    let started = Instant::now();
    let mut step = 0usize;
    while started.elapsed() < storm {
        let d = step % DOCUMENTS;
        let typed = lines[d].chars().count() - LEAD.chars().count();
        let (edit, new_line) = if typed >= TYPED.len() * 2 {
            // Select the typed text and delete it, as a user clearing the line.
            let end = lines[d].chars().count() as u32;
            (json!({"range": range(1, LEAD.len() as u32, 1, end), "text": ""}), LEAD.to_string())
        } else if step % 11 == 10 && typed > 0 {
            let end = lines[d].chars().count() as u32;
            let mut line = lines[d].clone();
            line.pop();
            (json!({"range": range(1, end - 1, 1, end), "text": ""}), line)
        } else {
            let c = TYPED.chars().nth(typed % TYPED.len()).expect("a char");
            let end = lines[d].chars().count() as u32;
            (json!({"range": range(1, end, 1, end), "text": c.to_string()}), format!("{}{c}", lines[d]))
        };
        versions[d] += 1;
        lines[d] = new_line;
        client
            .notify(
                "textDocument/didChange",
                json!({"textDocument": {"uri": uris[d], "version": versions[d]}, "contentChanges": [edit]}),
            )
            .await;
        let cursor = lines[d].chars().count();
        let params = json!({"textDocument": {"uri": uris[d]}, "position": {"line": 1, "character": cursor}, "context": {"triggerKind": 2}});
        let (_, answer) = client.start_request("textDocument/inlineCompletion", params).await;
        sent.push((Asked { uri: uris[d].clone(), version: versions[d], line: lines[d].clone() }, answer));
        messages += 2;
        step += 1;
    }
    let storm_took = started.elapsed();
    stop.store(true, Ordering::Release);
    let latencies = prober.await.expect("the prober");

    // Every request is answered, each for its own version.
    let mut with_items = 0;
    let mut stale = 0;
    let total = sent.len();
    for (asked, answer) in sent {
        let response = tokio::time::timeout(HANG, answer)
            .await
            .unwrap_or_else(|_| panic!("no answer for v{} of {}", asked.version, asked.uri))
            .expect("the server answered");
        if response.get("error").is_some() {
            stale += 1;
        }
        if check(&asked, &response) {
            with_items += 1;
        }
    }
    for (d, uri) in uris.iter().enumerate() {
        let state = client.document_state(uri, false).await;
        assert_eq!(state["text"], text_of(&lines[d]), "{uri} diverged from the client");
        assert_eq!(state["version"], versions[d]);
    }
    let peak = peak_rss_kib(pid).expect("VmHWM of the server");
    let summary = stats::summarize(&latencies);
    eprintln!(
        "storm: {messages} messages in {:.2} s = {:.0} msg/s; {total} requests: {with_items} with items, {stale} \
         ContentModified/cancelled, {} null; glint/status {summary}; peak RSS {:.1} MiB",
        storm_took.as_secs_f64(),
        messages as f64 / storm_took.as_secs_f64(),
        total - with_items - stale,
        peak as f64 / 1024.0
    );
    assert!(messages > 200, "the storm sent only {messages} messages");
    assert!(peak < RSS_CEILING_KIB, "peak RSS {peak} KiB");
}
