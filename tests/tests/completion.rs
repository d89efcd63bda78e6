//! End to end: AI completions over the wire with a scripted engine — inline items, completion
//! items in every encoding, cancellation by keystrokes, the typing-through cache, streaming.

use std::sync::Arc;
use std::time::Duration;

use glint_engine::fake::FakeEngine;
use glint_tests::{LspClient, ServerOptions, capabilities, range};
use serde_json::{Value, json};

/// A client whose automatic requests are answered at the model's end (`earlyAnswerMs: 0`) unless
/// the options say otherwise: an early answer depends on timing, which these tests do not test.
async fn client_with(engine: FakeEngine, encodings: &[&str], mut options: Value) -> LspClient {
    if options.is_null() {
        options = json!({});
    }
    if options.get("earlyAnswerMs").is_none() {
        options["earlyAnswerMs"] = json!(0);
    }
    let client =
        LspClient::in_process(ServerOptions { injected_engine: Some(Arc::new(engine)), ..ServerOptions::default() });
    client.initialize(capabilities(encodings), options).await;
    client
}

/// Waits until the engine has recorded a cancelled generation, and checks it was exactly one.
async fn assert_engine_cancelled(engine: &FakeEngine) {
    assert_eq!(glint_tests::wait_engine_cancelled(engine).await, 1, "{:?}", engine.log());
}

fn inline_params(uri: &str, line: u32, character: u32, trigger: u32) -> Value {
    json!({"textDocument": {"uri": uri}, "position": {"line": line, "character": character}, "context": {"triggerKind": trigger}})
}

const INVOKED: u32 = 1;
const AUTOMATIC: u32 = 2;

#[tokio::test]
async fn inline_completion_inserts_the_engines_text_at_the_cursor() {
    let engine = FakeEngine::fixed("compute(a, b);\nmore");
    let client = client_with(engine.clone(), &["utf-16"], json!({"debounceMs": 0})).await;
    let uri = "file:///a.rs";
    client.open(uri, "rust", "fn main() {\n    let x = \n}\n").await;
    let result = client.call("textDocument/inlineCompletion", inline_params(uri, 1, 12, AUTOMATIC)).await;
    let item = &result[0];
    assert_eq!(item["insertText"], "compute(a, b);", "single line on an automatic trigger mid-line: {result}");
    assert_eq!(item["range"], range(1, 12, 1, 12));
    let request = &engine.log().requests[0];
    // The trailing blank is cut from the prompt (token healing) and the model writes it again.
    assert!(request.prefix.ends_with("    let x ="), "{:?}", request.prefix);
    assert!(request.suffix.starts_with("\n}"), "{:?}", request.suffix);
}

#[tokio::test]
async fn the_engine_gets_a_hashed_session_key_never_the_document_uri() {
    let engine = FakeEngine::fixed("1;");
    let client = client_with(engine.clone(), &["utf-16"], json!({"debounceMs": 0})).await;
    let (a, b) = ("file:///home/alice/secret-project/a.rs", "file:///home/alice/secret-project/b.rs");
    for uri in [a, b] {
        client.open(uri, "rust", "fn main() {\n    let x = \n}\n").await;
    }
    for uri in [a, b] {
        client.call("textDocument/inlineCompletion", inline_params(uri, 1, 12, INVOKED)).await;
    }
    // Another prompt in the first document, so that no cached answer stands in for the request.
    let change = json!({"textDocument": {"uri": a, "version": 2}, "contentChanges": [{"text": "fn main() {\n    let y = \n}\n"}]});
    client.notify("textDocument/didChange", change).await;
    client.call("textDocument/inlineCompletion", inline_params(a, 1, 12, INVOKED)).await;
    let sessions: Vec<String> = engine.log().requests.iter().map(|r| r.session.clone().unwrap_or_default()).collect();
    for session in &sessions {
        // A remote engine keys its caches by this string: it must not reveal a path or a name.
        assert!(session.len() == 32 && session.chars().all(|c| c.is_ascii_hexdigit()), "{session:?}");
        assert!(!session.contains("alice") && !session.contains("secret"), "{session:?}");
    }
    // Each request may bring a warm-up or a next suggestion of the same document along: the keys
    // run in one stretch per request.
    let mut runs = sessions.clone();
    runs.dedup();
    assert_eq!(runs.len(), 3, "{sessions:?}");
    assert_eq!(runs[0], runs[2], "the same document keeps its key, so its cache is reused");
    assert_ne!(runs[0], runs[1], "two documents have two keys");
}

#[tokio::test]
async fn completion_items_carry_exact_text_edits_in_every_encoding() {
    // The line holds an astral character before the cursor, so the three encodings differ.
    for (encoding, character) in [("utf-8", 19u32), ("utf-16", 17), ("utf-32", 16)] {
        let engine = FakeEngine::fixed("ult = 1;");
        let client = client_with(engine, &[encoding], json!({"debounceMs": 0})).await;
        let uri = "file:///e.rs";
        client.open(uri, "rust", "let s = \"😀\"; res\n").await;
        let result = client
            .call(
                "textDocument/completion",
                json!({"textDocument": {"uri": uri}, "position": {"line": 0, "character": character}}),
            )
            .await;
        assert_eq!(result["isIncomplete"], true);
        let item = &result["items"][0];
        let edit = &item["textEdit"];
        assert_eq!(edit["newText"], "result = 1;", "{encoding}: {item}");
        let start = character - 3;
        assert_eq!(edit["range"], range(0, start, 0, character), "{encoding}");
        // Applying the edit as a client would gives the expected line.
        client
            .notify(
                "textDocument/didChange",
                json!({"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"range": edit["range"], "text": edit["newText"]}]}),
            )
            .await;
        assert_eq!(client.document_state(uri, false).await["text"], "let s = \"😀\"; result = 1;\n", "{encoding}");
    }
}

/// The AI item a scripted engine answering `answer` gives at `character` of `line`, the second
/// line of a Python function, when asked as Helix's C-x asks (invoked: it may get a suggestion
/// that starts on the next line).
async fn mean_item(answer: &str, line: &str, character: u32) -> Value {
    let client = client_with(FakeEngine::fixed(answer), &["utf-16"], json!({"debounceMs": 0})).await;
    let uri = "file:///mean.py";
    client.open(uri, "python", &format!("def mean(numbers):\n{line}\n")).await;
    let result = client
        .call(
            "textDocument/completion",
            json!({"textDocument": {"uri": uri}, "position": {"line": 1, "character": character},
                   "context": {"triggerKind": 1}}),
        )
        .await;
    result["items"][0].clone()
}

#[tokio::test]
async fn a_completion_items_label_reads_as_the_text_it_inserts() {
    // Helix and completion menus show the label: "total / len(numbers)", not "total/ len(numbers)".
    for (answer, line, character, label) in [
        (" / len(numbers)", "    return total", 16, "total / len(numbers)"),
        ("  # done", "    x = 1", 9, "1  # done"),
        ("total / len(numbers)", "    return ", 11, "total / len(numbers)"),
        ("\n    return total", "    total = 1", 13, "1 ↵ return total"),
    ] {
        let item = mean_item(answer, line, character).await;
        assert_eq!(item["label"], label, "{answer:?}: {item}");
    }
}

#[tokio::test]
async fn a_completion_item_is_filtered_by_the_word_it_completes_so_a_stale_one_goes_away() {
    // Menus keep an item while what is typed matches its filter text. Typing through the
    // suggestion (`tota` + `l`) must keep it; any other key must leave it unmatched, so the menu
    // closes and the client asks again (Helix only asks again once its menu is empty).
    for (answer, line, character, filter) in [
        ("l / len(numbers)", "    return tota", 15, "total"),
        (", total / len(numbers)", "    return tota", 15, "tota"),
        (" / len(numbers)", "    return total", 16, "total"),
        ("total / len(numbers)", "    return ", 11, "total"),
        ("(numbers)", "    return ", 11, ""),
    ] {
        let item = mean_item(answer, line, character).await;
        assert_eq!(item["filterText"], filter, "{answer:?}: {item}");
        // What it inserts is still the whole suggestion.
        let word = line.trim_start().rsplit(' ').next().unwrap();
        assert_eq!(item["textEdit"]["newText"], format!("{word}{answer}"), "{answer:?}: {item}");
    }
}

#[tokio::test]
async fn a_keystroke_cancels_the_in_flight_request_down_to_the_engine() {
    let engine = FakeEngine::fixed("x".repeat(2000)).with_delay(Duration::from_millis(10));
    let client = client_with(engine.clone(), &["utf-16"], json!({"debounceMs": 0})).await;
    let uri = "file:///slow.py";
    client.open(uri, "python", "def f():\n    \n").await;
    let (_, pending) = client.start_request("textDocument/inlineCompletion", inline_params(uri, 1, 4, INVOKED)).await;
    // Let the engine start streaming, then type.
    for _ in 0..100 {
        if !engine.log().requests.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    client
        .notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"range": range(1, 4, 1, 4), "text": "r"}]}),
        )
        .await;
    let response = tokio::time::timeout(Duration::from_secs(5), pending).await.unwrap().unwrap();
    assert_eq!(response["error"]["code"], -32801, "stale request must answer ContentModified: {response}");
    assert_engine_cancelled(&engine).await;
}

#[tokio::test]
async fn a_newer_request_supersedes_the_older_one() {
    let engine = FakeEngine::fixed("y".repeat(500)).with_delay(Duration::from_millis(10));
    let client = client_with(engine.clone(), &["utf-16"], json!({"debounceMs": 0})).await;
    let uri = "file:///two.rs";
    client.open(uri, "rust", "fn f() {\n    \n}\n").await;
    let (_, first) = client.start_request("textDocument/inlineCompletion", inline_params(uri, 1, 4, INVOKED)).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (_, _second) = client.start_request("textDocument/inlineCompletion", inline_params(uri, 1, 4, INVOKED)).await;
    let response = tokio::time::timeout(Duration::from_secs(5), first).await.unwrap().unwrap();
    assert_eq!(response["error"]["code"], -32801, "{response}");
}

#[tokio::test]
async fn cancel_request_answers_request_cancelled_and_stops_the_engine() {
    let engine = FakeEngine::fixed("z".repeat(2000)).with_delay(Duration::from_millis(10));
    let client = client_with(engine.clone(), &["utf-16"], json!({"debounceMs": 0})).await;
    let uri = "file:///cancel.rs";
    client.open(uri, "rust", "fn f() {\n    \n}\n").await;
    let (id, pending) = client.start_request("textDocument/inlineCompletion", inline_params(uri, 1, 4, INVOKED)).await;
    tokio::time::sleep(Duration::from_millis(60)).await;
    client.notify("$/cancelRequest", json!({"id": id})).await;
    let response = tokio::time::timeout(Duration::from_secs(5), pending).await.unwrap().unwrap();
    assert_eq!(response["error"]["code"], -32800, "{response}");
    assert_engine_cancelled(&engine).await;
}

#[tokio::test]
async fn typing_through_a_suggestion_answers_from_the_cache_without_the_engine() {
    let engine = FakeEngine::fixed("compute(a, b);");
    let client = client_with(engine.clone(), &["utf-16"], json!({"debounceMs": 0})).await;
    let uri = "file:///cache.rs";
    client.open(uri, "rust", "fn main() {\n    let x = \n}\n").await;
    let first = client.call("textDocument/inlineCompletion", inline_params(uri, 1, 12, AUTOMATIC)).await;
    assert_eq!(first[0]["insertText"], "compute(a, b);");
    client
        .notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"range": range(1, 12, 1, 12), "text": "com"}]}),
        )
        .await;
    let second = client.call("textDocument/inlineCompletion", inline_params(uri, 1, 15, AUTOMATIC)).await;
    assert_eq!(second[0]["insertText"], "pute(a, b);");
    assert_eq!(second[0]["range"], range(1, 15, 1, 15));
    assert_eq!(engine.log().requests.len(), 1, "the second answer must come from the cache");
    let status = client.call("glint/status", Value::Null).await;
    assert_eq!(status["lastCompletion"]["cacheHit"], true);
}

#[tokio::test]
async fn selected_completion_info_is_extended_over_its_range() {
    let engine = FakeEngine::fixed("(items);");
    let client = client_with(engine.clone(), &["utf-16"], json!({"debounceMs": 0})).await;
    let uri = "file:///sel.ts";
    client.open(uri, "typescript", "const n = co\n").await;
    let params = json!({
        "textDocument": {"uri": uri}, "position": {"line": 0, "character": 12},
        "context": {"triggerKind": AUTOMATIC, "selectedCompletionInfo": {"range": range(0, 10, 0, 12), "text": "count"}}
    });
    let result = client.call("textDocument/inlineCompletion", params).await;
    assert_eq!(result[0]["insertText"], "count(items);");
    assert_eq!(result[0]["range"], range(0, 10, 0, 12));
    assert!(engine.log().requests[0].prefix.ends_with("const n = count"), "the model saw the selected item");
}

#[tokio::test]
async fn streaming_notifications_arrive_before_the_answer_only_when_opted_in() {
    for streaming in [true, false] {
        let engine = FakeEngine::fixed("first_part + second_part").with_delay(Duration::from_millis(2));
        let client = client_with(engine, &["utf-16"], json!({"debounceMs": 0, "streaming": streaming})).await;
        let uri = "file:///stream.py";
        client.open(uri, "python", "value = \n").await;
        let result = client.call("textDocument/inlineCompletion", inline_params(uri, 0, 8, AUTOMATIC)).await;
        assert_eq!(result[0]["insertText"], "first_part + second_part");
        let progress: Vec<Value> =
            client.inbox().into_iter().filter(|m| m["method"] == "glint/inlineCompletionProgress").collect();
        if streaming {
            assert!(progress.len() >= 2, "expected several partial updates, got {progress:?}");
            assert_eq!(progress[0]["params"]["uri"], uri);
            assert_eq!(progress[0]["params"]["version"], 1);
            let first = progress[0]["params"]["text"].as_str().unwrap();
            assert!("first_part + second_part".starts_with(first), "{first}");
        } else {
            assert!(progress.is_empty(), "sent to a client that did not opt in: {progress:?}");
        }
    }
}

#[tokio::test]
async fn no_completion_when_code_follows_the_cursor_on_an_automatic_trigger() {
    let engine = FakeEngine::fixed("anything");
    let client = client_with(engine.clone(), &["utf-16"], json!({"debounceMs": 0})).await;
    let uri = "file:///mid.rs";
    client.open(uri, "rust", "let x = foo(bar);\n").await;
    let result = client.call("textDocument/inlineCompletion", inline_params(uri, 0, 8, AUTOMATIC)).await;
    assert_eq!(result, Value::Null);
    assert!(engine.log().requests.is_empty());
}

#[tokio::test]
async fn an_engine_error_is_a_graceful_no_result() {
    let engine = FakeEngine::with_reply(|_| Err("model exploded".into()));
    let client = client_with(engine, &["utf-16"], json!({"debounceMs": 0})).await;
    let uri = "file:///err.rs";
    client.open(uri, "rust", "fn f() {\n    \n}\n").await;
    let result = client.call("textDocument/inlineCompletion", inline_params(uri, 1, 4, INVOKED)).await;
    assert_eq!(result, Value::Null);
    let status = client.call("glint/status", Value::Null).await;
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn capabilities_advertise_inline_completion_and_completion() {
    let client = client_with(FakeEngine::fixed("x"), &["utf-16"], Value::Null).await;
    let status = client.call("glint/status", Value::Null).await;
    assert_eq!(status["engine"]["state"], "ready");
    let other = LspClient::in_process(ServerOptions::default());
    let result =
        other.initialize(capabilities(&["utf-16"]), json!({"completionItems": false, "engine": "fake:x"})).await;
    assert_eq!(result["capabilities"]["inlineCompletionProvider"], true);
    assert!(result["capabilities"].get("completionProvider").is_none());
}

#[tokio::test]
async fn an_invoked_request_offers_up_to_three_distinct_items() {
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    // A scripted engine whose sampled answers differ by seed, as a real sampler's would.
    let engine = FakeEngine::with_reply(move |request| {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(match request.sampling.seed {
            0 => "return a + b".to_string(),
            1 => "return b + a".to_string(),
            _ => "return a + b".to_string(),
        })
    });
    let client = client_with(engine, &["utf-16"], json!({"debounceMs": 0})).await;
    let uri = "file:///items.py";
    client.open(uri, "python", "def add(a, b):\n    \n").await;
    let result = client.call("textDocument/inlineCompletion", inline_params(uri, 1, 4, INVOKED)).await;
    let texts: Vec<&str> = result.as_array().unwrap().iter().map(|i| i["insertText"].as_str().unwrap()).collect();
    assert_eq!(texts, ["return a + b", "return b + a"], "distinct items only");
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);
    let automatic = client.call("textDocument/inlineCompletion", inline_params(uri, 1, 4, AUTOMATIC)).await;
    assert_eq!(automatic.as_array().map(Vec::len), Some(1), "an automatic trigger gets one item");
}

#[tokio::test]
async fn shutdown_and_exit_do_not_wait_for_a_running_generation() {
    // Twenty seconds of scripted generation; exit must not wait for it.
    let engine = FakeEngine::fixed("w".repeat(2000)).with_delay(Duration::from_millis(10));
    let client = client_with(engine.clone(), &["utf-16"], json!({"debounceMs": 0})).await;
    let uri = "file:///exit.rs";
    client.open(uri, "rust", "fn f() {\n    \n}\n").await;
    let (_, _pending) = client.start_request("textDocument/inlineCompletion", inline_params(uri, 1, 4, INVOKED)).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = std::time::Instant::now();
    assert_eq!(client.shutdown().await, 0);
    assert!(started.elapsed() < Duration::from_secs(5), "exit took {:?}", started.elapsed());
    assert_engine_cancelled(&engine).await;
}

#[tokio::test]
async fn keys_that_type_the_streamed_answer_let_the_completion_finish_and_answer_from_it() {
    // Three characters a chunk, 40 ms apart: the answer takes a few keystrokes to finish.
    let engine = FakeEngine::fixed("compute(a, b);").with_delay(Duration::from_millis(40));
    let client = client_with(engine.clone(), &["utf-16"], json!({"debounceMs": 0, "streaming": true})).await;
    let uri = "file:///through.rs";
    client.open(uri, "rust", "fn main() {\n    let x = \n}\n").await;
    let (_, first) = client.start_request("textDocument/inlineCompletion", inline_params(uri, 1, 12, AUTOMATIC)).await;
    // The first streamed partial shows `com`; the user types `c`, which that partial predicted.
    client
        .wait_for("first partial", |m| m["method"] == "glint/inlineCompletionProgress" && m["params"]["text"] == "com")
        .await;
    client
        .notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"range": range(1, 12, 1, 12), "text": "c"}]}),
        )
        .await;
    let second = client.call("textDocument/inlineCompletion", inline_params(uri, 1, 13, AUTOMATIC)).await;
    assert_eq!(second[0]["insertText"], "ompute(a, b);", "the running completion answered the keystroke");
    let first = first.await.unwrap_or(Value::Null);
    assert_eq!(first["error"]["code"], -32801, "the first request itself is stale: {first}");
    let log = engine.log();
    assert_eq!((log.requests.len(), log.cancelled), (1, 0), "one generation, never cancelled: {log:?}");

    // A new completion starts after a key the answer did not predict; a key its stream did not
    // predict cancels it, as before.
    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 3}, "contentChanges": [{"range": range(1, 13, 1, 13), "text": "X"}]}),
    ).await;
    let (_, third) = client.start_request("textDocument/inlineCompletion", inline_params(uri, 1, 14, AUTOMATIC)).await;
    client
        .wait_for("partial", |m| m["method"] == "glint/inlineCompletionProgress" && m["params"]["version"] == 3)
        .await;
    client
        .notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": 4}, "contentChanges": [{"range": range(1, 14, 1, 14), "text": "Z"}]}),
        )
        .await;
    let third = third.await.unwrap_or(Value::Null);
    assert_eq!(third["error"]["code"], -32801, "{third}");
    assert_engine_cancelled(&engine).await;
}

/// A streaming client with early answers after 30 ms, an engine writing `compute(a, b);` three
/// characters every 40 ms (about 200 ms in all), and the early answer to an automatic request at
/// the end of `let x = ` in `uri`.
async fn early_answered(uri: &str) -> (FakeEngine, LspClient, String) {
    let engine = FakeEngine::fixed("compute(a, b);").with_delay(Duration::from_millis(40));
    let client =
        client_with(engine.clone(), &["utf-16"], json!({"debounceMs": 0, "streaming": true, "earlyAnswerMs": 30}))
            .await;
    client.open(uri, "rust", "fn main() {\n    let x = \n}\n").await;
    let first = client.call("textDocument/inlineCompletion", inline_params(uri, 1, 12, AUTOMATIC)).await;
    let early = first[0]["insertText"].as_str().unwrap_or_else(|| panic!("an early item: {first}")).to_string();
    (engine, client, early)
}

#[tokio::test]
async fn an_early_answer_goes_on_in_the_background_and_streams_to_the_end() {
    let uri = "file:///early.rs";
    let (engine, client, early) = early_answered(uri).await;
    assert!(!early.is_empty() && "compute(a, b);".starts_with(&early), "{early}");
    assert!(early.len() < "compute(a, b);".len(), "answered before the model's end: {early}");
    // The generation goes on for the same request and ends with the final text.
    let last = client
        .wait_for("final progress", |m| m["method"] == "glint/inlineCompletionProgress" && m["params"]["final"] == true)
        .await;
    assert_eq!(last["params"]["text"], "compute(a, b);", "{last}");
    assert_eq!(
        (last["params"]["version"].clone(), last["params"]["position"].clone()),
        (json!(1), json!({"line": 1, "character": 12}))
    );
    let log = engine.log();
    assert_eq!((log.requests.len(), log.cancelled), (1, 0), "one generation, run to its end: {log:?}");
    // Its final answer serves the keystrokes that type it.
    client
        .notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"range": range(1, 12, 1, 12), "text": "co"}]}),
        )
        .await;
    let second = client.call("textDocument/inlineCompletion", inline_params(uri, 1, 14, AUTOMATIC)).await;
    assert_eq!(second[0]["insertText"], "mpute(a, b);");
    assert_eq!(engine.log().requests.len(), 1, "from the cache");
    // An invoked request is never answered early.
    client.open("file:///invoked.rs", "rust", "fn main() {\n    let x = \n}\n").await;
    let invoked =
        client.call("textDocument/inlineCompletion", inline_params("file:///invoked.rs", 1, 12, INVOKED)).await;
    assert_eq!(invoked[0]["insertText"], "compute(a, b);");
}

#[tokio::test]
async fn a_key_typed_into_an_early_answer_is_answered_at_once_and_gets_the_rest_streamed() {
    let uri = "file:///early_typed.rs";
    let (engine, client, early) = early_answered(uri).await;
    assert!(early.starts_with('c') && early.len() > 1, "{early}");
    // The user types the first character of the ghost text while the model still writes.
    client
        .notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"range": range(1, 12, 1, 12), "text": "c"}]}),
        )
        .await;
    let second = client.call("textDocument/inlineCompletion", inline_params(uri, 1, 13, AUTOMATIC)).await;
    let rest = second[0]["insertText"].as_str().expect("an item from the running completion").to_string();
    assert!(!rest.is_empty() && "ompute(a, b);".starts_with(&rest), "{second}");
    // The rest streams to the keystroke's request, ending with the final text after what was typed.
    let last = client
        .wait_for("final progress", |m| m["method"] == "glint/inlineCompletionProgress" && m["params"]["final"] == true)
        .await;
    assert_eq!(last["params"]["text"], "ompute(a, b);", "{last}");
    assert_eq!(last["params"]["version"], 2, "{last}");
    assert_eq!(last["params"]["position"], json!({"line": 1, "character": 13}), "{last}");
    let log = engine.log();
    assert_eq!((log.requests.len(), log.cancelled), (1, 0), "one generation, never cancelled: {log:?}");
}

#[tokio::test]
async fn an_early_answer_is_the_status_s_last_completion_even_when_its_rest_is_cancelled() {
    // Editors show the last completion's time from `glint/status`. A model that writes on after
    // the early answer is often cut off by the next keystroke (an accept is one): the time the
    // user waited for the suggestion must still be there, not a cache hit's millisecond.
    let uri = "file:///early-status.rs";
    let (engine, client, _early) = early_answered(uri).await;
    client
        .notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"range": range(1, 12, 1, 12), "text": "zz"}]}),
        )
        .await;
    assert_engine_cancelled(&engine).await;
    let status = client.call("glint/status", Value::Null).await;
    let last = &status["lastCompletion"];
    assert_eq!(last["cacheHit"], false, "{status}");
    assert!(last["answeredMs"].as_f64().is_some_and(|ms| ms >= 30.0), "{status}");
    assert_eq!(last["totalMs"], last["answeredMs"], "{status}");
}

#[tokio::test]
async fn a_client_without_streaming_never_gets_an_early_answer() {
    let engine = FakeEngine::fixed("compute(a, b);").with_delay(Duration::from_millis(40));
    let client = client_with(engine, &["utf-16"], json!({"debounceMs": 0, "earlyAnswerMs": 30})).await;
    let uri = "file:///whole.rs";
    client.open(uri, "rust", "fn main() {\n    let x = \n}\n").await;
    let result = client.call("textDocument/inlineCompletion", inline_params(uri, 1, 12, AUTOMATIC)).await;
    assert_eq!(result[0]["insertText"], "compute(a, b);", "the whole answer: {result}");
}

/// A scripted engine that says it runs in-process, as the background speculation requires.
struct InProcess(Arc<FakeEngine>);

impl glint_engine::Engine for InProcess {
    fn generate(&self, request: glint_engine::GenerateRequest) -> glint_engine::Generation {
        self.0.generate(request)
    }

    fn info(&self) -> glint_engine::EngineInfo {
        glint_engine::EngineInfo { kind: "local".into(), ..self.0.info() }
    }
}

#[tokio::test]
async fn the_suggestion_after_an_accepted_one_extends_the_prompt_just_answered() {
    // The background work that prepares the next suggestion sees the accepted text typed, with
    // its syntax: its prompt is the one just answered plus that text, so an in-process engine
    // reuses its KV cache instead of filling it with a prompt laid out differently.
    let engine = Arc::new(FakeEngine::fixed("total = a + b"));
    let client = LspClient::in_process(ServerOptions {
        injected_engine: Some(Arc::new(InProcess(Arc::clone(&engine)))),
        ..ServerOptions::default()
    });
    client.initialize(capabilities(&["utf-16"]), json!({"earlyAnswerMs": 0})).await;
    let helpers =
        "def scale(value, factor):\n    return value * factor\n\n\ndef offset(value, by):\n    return value + by\n";
    client.open("file:///w/helpers.py", "python", helpers).await;
    let uri = "file:///w/main.py";
    // Longer than the prompt budget, so that the window around the cursor is cut by scope.
    let before: String =
        (0..80).map(|i| format!("def step_{i}(value):\n    return offset(value, {i})\n\n\n")).collect();
    let after: String = (0..80).map(|i| format!("\n\ndef later_{i}(value):\n    return scale(value, {i})\n")).collect();
    let text = format!("from helpers import scale, offset\n\n\n{before}def combine(a, b):\n    \n{after}");
    client.open(uri, "python", &text).await;
    let line = 3 + 80 * 4 + 1;
    let first = client.call("textDocument/inlineCompletion", inline_params(uri, line, 4, AUTOMATIC)).await;
    assert!(first.to_string().contains("total = a + b"), "{first}");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let speculation =
        |log: &glint_engine::fake::FakeLog| log.requests.iter().find(|r| r.prefix != log.requests[0].prefix).cloned();
    while speculation(&engine.log()).is_none() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = engine.log();
    let answered = &log.requests[0];
    let Some(next) = speculation(&log) else { panic!("no speculation after the answer: {log:#?}") };
    let next = &next;
    assert_eq!(next.prefix, format!("{}total = a + b", answered.prefix), "the next prompt extends the last");
    assert_eq!(next.suffix, answered.suffix);
    let paths = |r: &glint_engine::GenerateRequest| r.snippets.iter().map(|s| s.path.clone()).collect::<Vec<_>>();
    assert!(!answered.snippets.is_empty(), "the open helpers file is in the context: {answered:#?}");
    assert_eq!(paths(next), paths(answered), "the same context around the cursor");
}
