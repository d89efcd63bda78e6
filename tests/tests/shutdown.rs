//! End to end with the real binary: `shutdown`/`exit`, a closed stdin, SIGTERM and SIGINT all end
//! the server promptly even while a generation is running, and leave no child process behind.
//! The bounds here only detect hangs; the measured times are printed.

use std::time::{Duration, Instant};

use glint_tests::{LspClient, capabilities};
use serde_json::{Value, json};

const GLINT: &str = env!("CARGO_BIN_EXE_glint-e2e");
/// Far longer than any prompt exit should take; reaching it means the server hung.
const HANG: Duration = Duration::from_secs(10);

/// A server in the middle of a generation that would take about a minute.
async fn generating() -> (LspClient, u32) {
    // 600 chunks of three characters, 100 ms each.
    let text = "abc".repeat(600);
    let engine = format!("--engine=fake+delay=100:{text}");
    let client = LspClient::spawn(GLINT, &["lsp", &engine]);
    client.initialize(capabilities(&["utf-16"]), json!({"debounceMs": 0, "maxTokens": 4096})).await;
    for _ in 0..400 {
        let status = client.call("glint/status", Value::Null).await;
        if status["engine"]["state"] == "ready" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let uri = "file:///long.rs";
    client.open(uri, "rust", "fn main() {\n    \n}\n").await;
    let params =
        json!({"textDocument": {"uri": uri}, "position": {"line": 1, "character": 4}, "context": {"triggerKind": 1}});
    // Left unanswered on purpose: the generation runs while the server is told to stop.
    let (_, answer) = client.start_request("textDocument/inlineCompletion", params).await;
    std::mem::forget(answer);
    // Wait until the generation has begun (the server reports a running request as in flight).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = client.pid().expect("a child process");
    (client, pid)
}

/// Children of `pid`, from /proc.
fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/status")).is_ok_and(|status| {
                status.lines().any(|l| l.strip_prefix("PPid:").is_some_and(|v| v.trim() == pid.to_string()))
            })
        })
        .collect()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .is_ok_and(|s| !s.lines().any(|l| l.starts_with("State:") && l.contains("zombie")))
}

async fn signal_ends_it(signal: &str, expected: i32) {
    let (mut client, pid) = generating().await;
    assert!(children(pid).is_empty(), "glint lsp with a fake engine starts no processes");
    let threads = std::fs::read_dir(format!("/proc/{pid}/task")).map(|d| d.count()).unwrap_or(0);
    let started = Instant::now();
    let status = std::process::Command::new("kill").args([signal, &pid.to_string()]).status().expect("run kill");
    assert!(status.success());
    let code = tokio::time::timeout(HANG, client.exit_code()).await.expect("the server hung after the signal");
    let took = started.elapsed();
    eprintln!("{signal}: exit {code} after {:.1} ms ({threads} threads before)", took.as_secs_f64() * 1e3);
    assert_eq!(code, expected);
    assert!(!alive(pid), "the process is still there");
    assert!(children(pid).is_empty());
}

#[tokio::test]
async fn sigterm_ends_the_server_mid_generation() {
    signal_ends_it("-TERM", 143).await;
}

#[tokio::test]
async fn sigint_ends_the_server_mid_generation() {
    signal_ends_it("-INT", 130).await;
}

#[tokio::test]
async fn shutdown_and_exit_end_the_binary_mid_generation() {
    let (client, pid) = generating().await;
    let started = Instant::now();
    let code = tokio::time::timeout(HANG, client.shutdown()).await.expect("the server hung after exit");
    eprintln!("shutdown+exit: exit {code} after {:.1} ms", started.elapsed().as_secs_f64() * 1e3);
    assert_eq!(code, 0);
    assert!(!alive(pid));
}

#[tokio::test]
async fn closing_stdin_ends_the_binary_mid_generation() {
    let (mut client, pid) = generating().await;
    let started = Instant::now();
    client.close_input().await;
    let code = tokio::time::timeout(HANG, client.exit_code()).await.expect("the server hung after stdin closed");
    eprintln!("stdin closed: exit {code} after {:.1} ms", started.elapsed().as_secs_f64() * 1e3);
    assert_eq!(code, 1);
    assert!(!alive(pid));
}
