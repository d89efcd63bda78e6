//! End to end: next-edit predictions over the wire (`glint/nextEdit`,
//! `textDocument/copilotInlineEdit`, the "Apply the predicted edit" code action) for Rust, Python
//! and TypeScript, with keystrokes sent as an editor sends them.

use std::sync::Arc;

use glint_engine::fake::FakeEngine;
use glint_tests::{LspClient, ServerOptions, capabilities, range};
use serde_json::{Value, json};

/// A document being typed in over the wire.
struct Doc<'a> {
    client: &'a LspClient,
    uri: &'static str,
    version: i32,
}

impl<'a> Doc<'a> {
    async fn open(client: &'a LspClient, uri: &'static str, language: &str, text: &str) -> Doc<'a> {
        client.open(uri, language, text).await;
        Doc { client, uri, version: 1 }
    }

    async fn text(&self) -> String {
        self.client.document_state(self.uri, false).await["text"].as_str().unwrap_or_default().to_string()
    }

    /// One `didChange` with the given (range, text) changes.
    async fn change(&mut self, changes: &[(Value, &str)]) {
        self.version += 1;
        let changes: Vec<Value> = changes.iter().map(|(r, t)| json!({"range": r, "text": t})).collect();
        self.client
            .notify(
                "textDocument/didChange",
                json!({"textDocument": {"uri": self.uri, "version": self.version}, "contentChanges": changes}),
            )
            .await;
    }

    /// Selects `find` on `line` (its first occurrence) and types `with` over it, key by key.
    async fn retype(&mut self, line: u32, find: &str, with: &str) {
        let text = self.text().await;
        let line_text = text.lines().nth(line as usize).unwrap_or_default().to_string();
        let at = line_text.find(find).unwrap_or_else(|| panic!("{find:?} not on line {line}"));
        let column = line_text[..at].encode_utf16().count() as u32;
        let mut end = column + find.encode_utf16().count() as u32;
        let mut cursor = column;
        for c in with.chars() {
            self.change(&[(range(line, cursor, line, end), &c.to_string())]).await;
            cursor += c.len_utf16() as u32;
            end = cursor;
        }
    }

    async fn next_edit(&self, line: u32, character: u32) -> Value {
        self.next_edit_for(self.version, line, character).await
    }

    async fn next_edit_for(&self, version: i32, line: u32, character: u32) -> Value {
        self.client
            .call(
                "glint/nextEdit",
                json!({"textDocument": {"uri": self.uri, "version": version}, "position": {"line": line, "character": character}}),
            )
            .await
    }

    /// Applies LSP text edits (`range` + `newText` or `text`) as one `didChange`, the way an editor
    /// applies a workspace edit: last first, so earlier ranges stay valid.
    async fn apply(&mut self, edits: &[Value]) {
        let mut edits = edits.to_vec();
        edits.sort_by_key(|e| {
            let start = &e["range"]["start"];
            std::cmp::Reverse((start["line"].as_u64(), start["character"].as_u64()))
        });
        let changes: Vec<(Value, String)> = edits
            .iter()
            .map(|e| {
                (
                    e["range"].clone(),
                    e.get("newText").or(e.get("text")).and_then(Value::as_str).unwrap_or_default().to_string(),
                )
            })
            .collect();
        let borrowed: Vec<(Value, &str)> = changes.iter().map(|(r, t)| (r.clone(), t.as_str())).collect();
        self.change(&borrowed).await;
    }
}

async fn client(capabilities: Value) -> LspClient {
    let engine = FakeEngine::fixed("unused");
    let client =
        LspClient::in_process(ServerOptions { injected_engine: Some(Arc::new(engine)), ..ServerOptions::default() });
    client.initialize(capabilities, json!({})).await;
    client
}

fn edits(result: &Value) -> Vec<Value> {
    result["edits"].as_array().cloned().unwrap_or_default()
}

const RUST: &str = "fn total(items: &[u32]) -> u32 {\n    let mut sum = 0;\n    for item in items {\n        sum += item;\n    }\n    // the sum so far\n    println!(\"{}\", sum);\n    sum\n}\n";

#[tokio::test]
async fn rust_a_local_renamed_at_its_let_predicts_the_rename_at_its_uses() {
    let client = client(capabilities(&["utf-16"])).await;
    let mut doc = Doc::open(&client, "file:///w/total.rs", "rust", RUST).await;
    doc.retype(1, "sum", "acc").await;
    let result = doc.next_edit(1, 15).await;
    assert_eq!(result["source"], "rename", "{result}");
    assert_eq!(result["version"], doc.version);
    let found = edits(&result);
    assert_eq!(
        found,
        vec![
            json!({"range": range(3, 8, 3, 11), "newText": "acc"}),
            json!({"range": range(6, 19, 6, 22), "newText": "acc"}),
            json!({"range": range(7, 4, 7, 7), "newText": "acc"}),
        ],
        "nearest first, never in the comment"
    );
    doc.apply(&found).await;
    assert_eq!(
        doc.text().await,
        RUST.replace("let mut sum", "let mut acc")
            .replace("sum +=", "acc +=")
            .replace("\", sum", "\", acc")
            .replace("    sum\n}", "    acc\n}")
    );
    // Accepted: nothing more to propose.
    assert!(edits(&doc.next_edit(1, 15).await).is_empty());
}

#[tokio::test]
async fn python_a_print_changed_to_logging_predicts_its_sibling_lines() {
    let client = client(capabilities(&["utf-16"])).await;
    let text = "def report(a, b):\n    print(a)\n    print(b + 1, sep='')\n    value = a\n    print(value)\n    if a:\n        print(a)\n";
    let mut doc = Doc::open(&client, "file:///w/report.py", "python", text).await;
    doc.retype(1, "print", "log.info").await;
    let result = doc.next_edit(1, 12).await;
    assert_eq!(result["source"], "pattern", "{result}");
    assert_eq!(
        edits(&result),
        vec![
            json!({"range": range(2, 4, 2, 9), "newText": "log.info"}),
            json!({"range": range(4, 4, 4, 9), "newText": "log.info"}),
        ],
        "the nested block's print is not a sibling"
    );
    doc.apply(&edits(&result)).await;
    assert!(
        doc.text()
            .await
            .contains("    log.info(b + 1, sep='')\n    value = a\n    log.info(value)\n    if a:\n        print(a)")
    );
}

#[tokio::test]
async fn typescript_a_parameter_renamed_predicts_its_uses_and_a_call_argument_its_siblings() {
    let client = client(capabilities(&["utf-16"])).await;
    let text = "export function area(width: number, height: number): number {\n  const w = width * 2;\n  return width * height + w;\n}\n";
    let mut doc = Doc::open(&client, "file:///w/area.ts", "typescript", text).await;
    doc.retype(0, "width", "base").await;
    let result = doc.next_edit(0, 25).await;
    assert_eq!(result["source"], "rename", "{result}");
    assert_eq!(
        edits(&result),
        vec![
            json!({"range": range(1, 12, 1, 17), "newText": "base"}),
            json!({"range": range(2, 9, 2, 14), "newText": "base"}),
        ]
    );

    let text = "function draw(ctx: Ctx) {\n  line(ctx, 0, 1);\n  line(ctx, 1, 2);\n  line(ctx, 2, 3);\n}\n";
    let mut doc = Doc::open(&client, "file:///w/draw.ts", "typescript", text).await;
    doc.retype(1, "line", "ctx.lineTo").await;
    let result = doc.next_edit(1, 12).await;
    assert_eq!(result["source"], "pattern", "{result}");
    assert_eq!(edits(&result).len(), 2, "{result}");
}

#[tokio::test]
async fn an_unrelated_edit_predicts_nothing() {
    let client = client(capabilities(&["utf-16"])).await;
    let mut doc = Doc::open(&client, "file:///w/plain.py", "python", "def f(a):\n    x = a\n    return x\n").await;
    // A new statement typed on a new line.
    doc.change(&[(range(1, 9, 1, 9), "\n    y = 2")]).await;
    let result = doc.next_edit(2, 9).await;
    assert_eq!(result, json!({"edits": [], "source": null}));
    // A changed value.
    doc.retype(2, "2", "3").await;
    assert!(edits(&doc.next_edit(2, 9).await).is_empty());
}

#[tokio::test]
async fn a_stale_version_gets_an_empty_answer_and_a_contradicting_keystroke_ends_the_prediction() {
    let client = client(capabilities(&["utf-16"])).await;
    let mut doc = Doc::open(&client, "file:///w/stale.rs", "rust", RUST).await;
    doc.retype(1, "sum", "acc").await;
    let old_version = doc.version;
    assert_eq!(edits(&doc.next_edit(1, 15).await).len(), 3);
    // The user types on: the name is now `acc2`, and only that is proposed.
    doc.change(&[(range(1, 15, 1, 15), "2")]).await;
    let stale = doc.next_edit_for(old_version, 1, 15).await;
    assert_eq!(stale, json!({"edits": [], "source": null}), "an old version gets nothing, not an error");
    let now = doc.next_edit(1, 16).await;
    assert!(edits(&now).iter().all(|e| e["newText"] == "acc2"), "{now}");
    // Typing elsewhere ends it.
    doc.change(&[(range(5, 20, 5, 20), "!")]).await;
    assert!(edits(&doc.next_edit(5, 21).await).is_empty());
}

#[tokio::test]
async fn edits_accepted_one_at_a_time_keep_the_rest_of_the_prediction() {
    let client = client(capabilities(&["utf-16"])).await;
    let mut doc = Doc::open(&client, "file:///w/one.rs", "rust", RUST).await;
    doc.retype(1, "sum", "total_sum").await;
    let first = edits(&doc.next_edit(1, 21).await);
    assert_eq!(first.len(), 3);
    // As Copilot-style clients do: apply the first edit alone, then ask again.
    doc.apply(&first[..1]).await;
    let rest = edits(&doc.next_edit(3, 8).await);
    assert_eq!(rest.len(), 2, "{rest:?}");
    assert_eq!(rest[0], json!({"range": range(6, 19, 6, 22), "newText": "total_sum"}));
    doc.apply(&rest).await;
    assert_eq!(doc.text().await.matches("total_sum").count(), 4);
}

#[tokio::test]
async fn the_code_action_applies_the_predicted_edit_with_the_version_it_was_made_for() {
    for document_changes in [true, false] {
        let mut caps = capabilities(&["utf-16"]);
        caps["workspace"] = json!({"workspaceEdit": {"documentChanges": document_changes}});
        let client = client(caps).await;
        let mut doc =
            Doc::open(&client, "file:///w/act.py", "python", "def f(count):\n    print(count)\n    return count * 2\n")
                .await;
        doc.retype(0, "count", "n").await;
        let actions = client
            .call(
                "textDocument/codeAction",
                json!({"textDocument": {"uri": doc.uri}, "range": range(0, 7, 0, 7), "context": {"diagnostics": [], "only": ["refactor.rewrite.glint.nextEdit"]}}),
            )
            .await;
        let actions = actions.as_array().cloned().unwrap_or_default();
        assert_eq!(actions.len(), 2, "{actions:?}");
        assert_eq!(actions[0]["title"], "Glint: Apply the predicted edit (line 2)");
        assert_eq!(actions[0]["kind"], "refactor.rewrite.glint.nextEdit");
        assert_eq!(actions[1]["title"], "Glint: Apply all 2 predicted edits (rename)");
        let edit = &actions[1]["edit"];
        let (text_edits, version) = if document_changes {
            let change = &edit["documentChanges"][0];
            assert_eq!(change["textDocument"]["uri"], doc.uri);
            (change["edits"].clone(), change["textDocument"]["version"].clone())
        } else {
            (edit["changes"][doc.uri].clone(), json!(doc.version))
        };
        assert_eq!(version, doc.version);
        let text_edits = text_edits.as_array().cloned().unwrap_or_default();
        assert_eq!(text_edits.len(), 2, "{edit}");
        doc.apply(&text_edits).await;
        assert_eq!(doc.text().await, "def f(n):\n    print(n)\n    return n * 2\n");
        // Other code action kinds asked for: no prediction in the list.
        let others = client
            .call(
                "textDocument/codeAction",
                json!({"textDocument": {"uri": doc.uri}, "range": range(0, 7, 0, 7), "context": {"diagnostics": [], "only": ["quickfix"]}}),
            )
            .await;
        assert!(others.as_array().is_none_or(|a| a.iter().all(|x| x["kind"] != "refactor.rewrite.glint.nextEdit")));
    }
}

#[tokio::test]
async fn copilot_inline_edit_answers_in_copilots_shape_in_the_negotiated_encoding() {
    for (encoding, column) in [("utf-16", 15u32), ("utf-8", 17), ("utf-32", 14)] {
        let client = client(capabilities(&[encoding])).await;
        // An astral character before the use makes the encodings differ.
        let text = "def f(v):\n    s = \"😀\" + v\n    return v\n";
        let mut doc = Doc::open(&client, "file:///w/emoji.py", "python", text).await;
        doc.retype(0, "v", "value").await;
        let result = client
            .call(
                "textDocument/copilotInlineEdit",
                json!({"textDocument": {"uri": doc.uri, "version": doc.version}, "position": {"line": 0, "character": 10}}),
            )
            .await;
        let found = edits(&result);
        assert_eq!(found.len(), 2, "{encoding}: {result}");
        assert_eq!(
            found[0],
            json!({"range": range(1, column, 1, column + 1), "text": "value", "textDocument": {"uri": doc.uri, "version": doc.version}}),
            "{encoding}"
        );
        let stale = client
            .call(
                "textDocument/copilotInlineEdit",
                json!({"textDocument": {"uri": doc.uri, "version": 1}, "position": {"line": 0, "character": 10}}),
            )
            .await;
        assert_eq!(stale, json!({"edits": []}));
    }
}

#[tokio::test]
async fn the_server_advertises_next_edits() {
    let engine = FakeEngine::fixed("unused");
    let client =
        LspClient::in_process(ServerOptions { injected_engine: Some(Arc::new(engine)), ..ServerOptions::default() });
    let result = client.initialize(capabilities(&["utf-16"]), json!({})).await;
    assert_eq!(result["capabilities"]["experimental"]["glint"]["nextEdit"], true);
    let kinds = &result["capabilities"]["codeActionProvider"]["codeActionKinds"];
    assert!(kinds.as_array().is_some_and(|k| k.contains(&json!("refactor.rewrite.glint.nextEdit"))), "{kinds}");
}

#[tokio::test]
async fn a_predicted_edit_under_the_cursor_is_the_inline_completion() {
    let client = client(capabilities(&["utf-16"])).await;
    let mut doc = Doc::open(&client, "file:///w/inline.rs", "rust", RUST).await;
    doc.retype(1, "sum", "acc").await;
    let inline = |line: u32, character: u32| {
        json!({"textDocument": {"uri": "file:///w/inline.rs"}, "position": {"line": line, "character": character},
               "context": {"triggerKind": 1}})
    };
    // The cursor on the next use (its start, inside it, its end): the rename is the item, with
    // the range it replaces.
    for character in [8, 9, 11] {
        let result = client.call("textDocument/inlineCompletion", inline(3, character)).await;
        let items = result.get("items").unwrap_or(&result).as_array().cloned().unwrap_or_default();
        assert_eq!(items.len(), 1, "{result}");
        assert_eq!(items[0]["insertText"], "acc", "{result}");
        assert_eq!(items[0]["range"], range(3, 8, 3, 11), "{result}");
    }
    // Elsewhere the engine answers as usual.
    let result = client.call("textDocument/inlineCompletion", inline(5, 4)).await;
    let items = result.get("items").unwrap_or(&result).as_array().cloned().unwrap_or_default();
    assert!(items.iter().all(|i| i["insertText"] != "acc"), "{result}");
}

async fn model_client(answer: &str, on: bool) -> LspClient {
    let engine = FakeEngine::fixed(answer);
    let client =
        LspClient::in_process(ServerOptions { injected_engine: Some(Arc::new(engine)), ..ServerOptions::default() });
    client.initialize(capabilities(&["utf-16"]), json!({"nextEditModel": on})).await;
    client
}

const CALLS: &str = "def load(path):\n    return open(path)\n\n\na = load(\"a\")\nb = [load(\"b\")]\n";

#[tokio::test]
async fn the_model_predicts_what_the_rules_cannot_and_its_answer_is_checked() {
    // A parameter added to a definition: no rule covers the calls; the model's rewrite does.
    let fixed = CALLS.replace("load(path)", "load(path, strict)").replace("\")", "\", strict=False)");
    let answer = format!("```python\n{fixed}```\n");
    let client = model_client(&answer, true).await;
    let mut doc = Doc::open(&client, "file:///w/calls.py", "python", CALLS).await;
    doc.retype(0, "path", "path, strict").await;
    let result = doc.next_edit(0, 20).await;
    assert_eq!(result["source"], "model", "{result}");
    assert_eq!(
        edits(&result),
        vec![
            json!({"range": range(4, 12, 4, 12), "newText": ", strict=False"}),
            json!({"range": range(5, 13, 5, 13), "newText": ", strict=False"}),
        ],
        "only the calls, nearest first; the user's own line is left alone"
    );
    doc.apply(&edits(&result)).await;
    assert_eq!(doc.text().await, fixed);

    // Off (the default): nothing from the model.
    let client = model_client(&answer, false).await;
    let mut doc = Doc::open(&client, "file:///w/calls.py", "python", CALLS).await;
    doc.retype(0, "path", "path, strict").await;
    assert!(edits(&doc.next_edit(0, 20).await).is_empty());

    // An edit inside a comment asks the model nothing.
    let commented = "# load(path) reads it\n".to_string() + CALLS;
    let more_comment = commented.replacen("reads it\n", "opens it\n# open files\n", 1);
    let client = model_client(&format!("```python\n{more_comment}```\n"), true).await;
    let mut doc = Doc::open(&client, "file:///w/comment.py", "python", &commented).await;
    doc.retype(0, "reads", "opens").await;
    assert!(edits(&doc.next_edit(0, 17).await).is_empty());

    // Answers that touch the user's edit, change unrelated code, or do not parse are refused.
    for wrong in [
        CALLS.replace("(path):", "(path, strict, extra):").replace("\")", "\", strict=False)"),
        CALLS.replace("(path):", "(path, strict):").replace("open(path)", "open(path, 'rb')"),
        CALLS.replace("(path):", "(path, strict):").replace("load(\"a\")", "load(\"a\", strict=(False"),
    ] {
        let client = model_client(&format!("```python\n{wrong}```\n"), true).await;
        let mut doc = Doc::open(&client, "file:///w/calls.py", "python", CALLS).await;
        doc.retype(0, "path", "path, strict").await;
        let result = doc.next_edit(0, 20).await;
        assert!(edits(&result).is_empty(), "refused: {wrong:?} gave {result}");
    }
}
