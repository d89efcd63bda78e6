//! Resource limits and bad input at the edges: huge documents, a megabyte on one line, deep
//! nesting, binary text, invalid UTF-8 and broken model files for `glint complete`, a model larger
//! than memory, an unwritable model cache. Each must end in a clear answer or error, never a hang
//! or a crash. Times are printed; the bounds only detect hangs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use glint_engine::fake::FakeEngine;
use glint_tests::{LspClient, ServerOptions, capabilities};
use serde_json::{Value, json};

const GLINT: &str = env!("CARGO_BIN_EXE_glint-e2e");
const HANG: Duration = Duration::from_secs(30);

async fn ready() -> LspClient {
    let engine = FakeEngine::fixed("value + 1;\n}");
    let client =
        LspClient::in_process(ServerOptions { injected_engine: Some(Arc::new(engine)), ..ServerOptions::default() });
    client.initialize(capabilities(&["utf-16"]), json!({"debounceMs": 0})).await;
    client
}

/// Asks for an inline completion and returns the whole response and how long it took.
async fn complete_at(client: &LspClient, uri: &str, line: u32, character: u32, trigger: u32) -> (Value, Duration) {
    let params = json!({"textDocument": {"uri": uri}, "position": {"line": line, "character": character}, "context": {"triggerKind": trigger}});
    let started = Instant::now();
    let (_, answer) = client.start_request("textDocument/inlineCompletion", params).await;
    let response = tokio::time::timeout(HANG, answer).await.expect("the completion hung").expect("an answer");
    (response, started.elapsed())
}

/// A completion response that is an answer, not a failure: items or nothing.
fn assert_answered(response: &Value, what: &str) {
    assert!(response.get("error").is_none(), "{what}: {response}");
}

async fn assert_alive(client: &LspClient) {
    let status = client.call("glint/status", Value::Null).await;
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("glint-limits-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    dir
}

#[tokio::test]
async fn a_50_mb_document_opens_edits_and_completes() {
    let client = ready().await;
    let uri = "file:///big/huge.rs";
    let unit = "fn f(value: u32) -> u32 {\n    value * 2\n}\n";
    let text = unit.repeat(50 * 1024 * 1024 / unit.len());
    let started = Instant::now();
    client.open(uri, "rust", &text).await;
    let state = client.document_state(uri, false).await;
    eprintln!("50 MB didOpen + documentState: {:.0} ms", started.elapsed().as_secs_f64() * 1e3);
    assert_eq!(state["hasTree"], false, "too large for a syntax tree");
    assert_eq!(state["text"].as_str().map(str::len), Some(text.len()));
    let lines = text.lines().count() as u32;
    client
        .notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"range": glint_tests::range(lines, 0, lines, 0), "text": "fn g() {\n    let x = \n"}]}),
        )
        .await;
    let (response, took) = complete_at(&client, uri, lines + 1, 12, 2).await;
    eprintln!("completion at the end of 50 MB: {:.1} ms", took.as_secs_f64() * 1e3);
    assert_answered(&response, "50 MB");
    assert_alive(&client).await;
}

#[tokio::test]
async fn a_megabyte_on_one_line_answers_promptly() {
    let client = ready().await;
    for (uri, language) in [("file:///long/line.rs", "rust"), ("file:///long/line.txt", "plaintext")] {
        let line = "let a = b + c; ".repeat(1024 * 1024 / 15);
        let text = format!("fn main() {{\n{line}\n}}\n");
        client.open(uri, language, &text).await;
        let length = line.len() as u32;
        for character in [length, length / 2] {
            let (response, took) = complete_at(&client, uri, 1, character, 1).await;
            eprintln!("{language}: completion at {character} of a 1 MB line: {:.1} ms", took.as_secs_f64() * 1e3);
            assert_answered(&response, "1 MB line");
        }
    }
    assert_alive(&client).await;
}

#[tokio::test]
async fn deeply_nested_code_neither_crashes_nor_hangs() {
    let client = ready().await;
    let depth = 100_000;
    for (uri, language, open, close) in [
        ("file:///deep/a.rs", "rust", "[", "]"),
        ("file:///deep/a.py", "python", "(", ")"),
        ("file:///deep/a.js", "javascript", "{", "}"),
        ("file:///deep/a.c", "c", "(", ")"),
    ] {
        let text = format!("x = {}\n{}\n", open.repeat(depth), close.repeat(depth));
        let started = Instant::now();
        client.open(uri, language, &text).await;
        let state = client.document_state(uri, false).await;
        eprintln!(
            "{language}: {depth} nested brackets open in {:.0} ms, tree: {}",
            started.elapsed().as_secs_f64() * 1e3,
            state["hasTree"]
        );
        assert_eq!(state["text"].as_str().map(str::len), Some(text.len()));
        for (line, character) in [(0, depth as u32 + 4), (1, depth as u32 / 2), (0, 2)] {
            let (response, took) = complete_at(&client, uri, line, character, 1).await;
            eprintln!("{language}: completion at {line}:{character}: {:.1} ms", took.as_secs_f64() * 1e3);
            assert_answered(&response, language);
        }
        // An edit deep inside reparses incrementally.
        client
            .notify(
                "textDocument/didChange",
                json!({"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"range": glint_tests::range(0, 50_000, 0, 50_000), "text": "1, "}]}),
            )
            .await;
        let state = client.document_state(uri, false).await;
        assert_eq!(state["text"].as_str().map(str::len), Some(text.len() + 3));
    }
    assert_alive(&client).await;
}

#[tokio::test]
async fn binary_documents_complete_to_nothing_or_something_but_never_fail() {
    let client = ready().await;
    let mut bytes: Vec<u8> = (0..=255u8).cycle().take(64 * 1024).collect();
    bytes.extend_from_slice(b"\nint x = ");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    for (uri, language) in [("file:///bin/a.c", "c"), ("file:///bin/a.bin", "plaintext")] {
        client.open(uri, language, &text).await;
        let state = client.document_state(uri, false).await;
        assert_eq!(state["hasTree"], false);
        let last = text.lines().count() as u32 - 1;
        for (line, character) in [(last, 8), (0, 3), (last, u32::MAX)] {
            let (response, _) = complete_at(&client, uri, line, character, 1).await;
            assert_answered(&response, "binary");
        }
    }
    assert_alive(&client).await;
}

fn run_glint(args: &[&str], env: &[(&str, &Path)]) -> (Option<i32>, String) {
    let mut command = std::process::Command::new(GLINT);
    command.args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("run glint");
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn glint_complete_names_a_file_that_is_not_utf8() {
    let dir = scratch("utf8");
    let file = dir.join("latin1.py");
    std::fs::write(&file, b"name = 'caf\xe9'\nx = \n").expect("write");
    let location = format!("{}:2:5", file.display());
    let (code, stderr) = run_glint(&["complete", &location, "--engine", "fake:1"], &[]);
    assert_ne!(code, Some(0));
    assert!(stderr.contains("latin1.py") && stderr.contains("not UTF-8") && stderr.contains("offset 11"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn glint_complete_names_a_broken_model_file() {
    let dir = scratch("model");
    let source = dir.join("a.rs");
    std::fs::write(&source, "fn main() {\n    \n}\n").expect("write");
    let location = format!("{}:2:5", source.display());
    let not_gguf = dir.join("notes.gguf");
    std::fs::write(&not_gguf, "just some text, not a model").expect("write");
    let truncated = dir.join("truncated.gguf");
    // A valid GGUF header that promises tensors and metadata the file does not hold.
    let mut header = b"GGUF".to_vec();
    header.extend_from_slice(&3u32.to_le_bytes());
    header.extend_from_slice(&10u64.to_le_bytes());
    header.extend_from_slice(&5u64.to_le_bytes());
    std::fs::write(&truncated, &header).expect("write");
    let empty = dir.join("empty.gguf");
    std::fs::write(&empty, b"").expect("write");
    for model in [&not_gguf, &truncated, &empty, &dir.join("missing.gguf")] {
        let (code, stderr) =
            run_glint(&["complete", &location, "--engine", "local", "--model", &model.display().to_string()], &[]);
        let name = model.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        assert_ne!(code, Some(0), "{name}");
        assert!(stderr.contains(name), "the error names {name}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        eprintln!("{name}: {}", stderr.trim());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_server_reports_a_broken_model_in_its_engine_slot() {
    let dir = scratch("slot");
    let model = dir.join("broken.gguf");
    std::fs::write(&model, "GGUF but not really").expect("write");
    let model_arg = format!("--model={}", model.display());
    let client = LspClient::spawn(GLINT, &["lsp", "--engine=local", &model_arg]);
    client.initialize(capabilities(&["utf-16"]), Value::Null).await;
    let started = Instant::now();
    let status = loop {
        let status = client.call("glint/status", Value::Null).await;
        if status["engine"]["state"] != "loading" && status["engine"]["state"] != "none" {
            break status;
        }
        assert!(started.elapsed() < HANG, "the engine never left loading: {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status["engine"]["state"], "failed", "{status}");
    let error = status["engine"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("broken.gguf"), "{error}");
    client.wait_for("a message about the model", |m| m["method"] == "window/showMessage").await;
    assert_alive(&client).await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn mem_available() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[test]
fn a_model_larger_than_free_memory_is_refused_before_loading() {
    let Some(available) = mem_available() else {
        eprintln!("SKIP: no /proc/meminfo here");
        return;
    };
    let dir = scratch("sparse");
    let model = dir.join("enormous.gguf");
    // A sparse file: it claims more bytes than memory can hold but takes no disk space.
    let file = std::fs::File::create(&model).expect("create");
    if file.set_len(available + (4 << 30)).is_err() {
        eprintln!("SKIP: this file system cannot hold a sparse file that large");
        return;
    }
    let source = dir.join("a.rs");
    std::fs::write(&source, "fn main() {\n    \n}\n").expect("write");
    let location = format!("{}:2:5", source.display());
    let started = Instant::now();
    let (code, stderr) =
        run_glint(&["complete", &location, "--engine", "local", "--model", &model.display().to_string()], &[]);
    eprintln!("refused in {:.0} ms: {}", started.elapsed().as_secs_f64() * 1e3, stderr.trim());
    assert_ne!(code, Some(0));
    assert!(stderr.contains("enormous.gguf") && stderr.contains("memory"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn model_fetch_into_an_unwritable_cache_fails_cleanly() {
    let dir = scratch("fetch");
    // The cache folder cannot be created: a plain file stands where it should be.
    let blocked = dir.join("cache");
    std::fs::write(&blocked, "not a folder").expect("write");
    let (code, stderr) = run_glint(&["model", "fetch"], &[("XDG_CACHE_HOME", &blocked)]);
    assert_ne!(code, Some(0));
    assert!(stderr.contains("cache/glint/models"), "the error names the folder: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&blocked).ok().as_deref(), Some("not a folder"));

    // A read-only file system (even root cannot write under /proc).
    let (code, stderr) = run_glint(&["model", "fetch"], &[("XDG_CACHE_HOME", Path::new("/proc/self"))]);
    assert_ne!(code, Some(0));
    assert!(stderr.contains("/proc/self/glint/models"), "{stderr}");

    // A folder without write permission; root writes anyway (and would download), so not as root.
    if running_as_root() {
        eprintln!("SKIP the read-only folder case: running as root");
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let readonly = dir.join("readonly");
    std::fs::create_dir_all(readonly.join("glint/models")).expect("mkdir");
    set_mode(&readonly.join("glint/models"), 0o555);
    let (code, stderr) = run_glint(&["model", "fetch"], &[("XDG_CACHE_HOME", &readonly)]);
    let left: Vec<_> = std::fs::read_dir(readonly.join("glint/models"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    set_mode(&readonly.join("glint/models"), 0o755);
    assert_ne!(code, Some(0));
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(left.is_empty(), "a failed fetch leaves nothing behind: {left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("Uid:")).map(|uids| uids.split_whitespace().next() == Some("0"))
        })
        .unwrap_or(false)
}
