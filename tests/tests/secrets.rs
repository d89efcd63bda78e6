//! End to end: a remote engine never sees secrets or files outside the workspace. `.env`, `id_rsa`
//! and an out-of-workspace file are open next to ordinary files and edited; their text reaches no
//! request of an engine that reports itself as remote (`http`), while an ordinary file's snippet
//! does. The same scenario with an in-process engine shows that the secrets would otherwise be
//! context, so the test can fail.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;

use glint_engine::fake::FakeEngine;
use glint_engine::{Engine, EngineInfo, GenerateRequest, Generation};
use glint_tests::{LspClient, ServerOptions, capabilities};
use serde_json::{Value, json};

/// A scripted engine that says it is of `kind` and records what it receives.
struct Scripted {
    fake: FakeEngine,
    kind: &'static str,
}

impl Engine for Scripted {
    fn generate(&self, request: GenerateRequest) -> Generation {
        self.fake.generate(request)
    }

    fn info(&self) -> EngineInfo {
        EngineInfo { kind: self.kind.into(), ..self.fake.info() }
    }
}

const MARKERS: [&str; 3] = ["SECRET-ENV-4417", "SECRET-RSA-9921", "SECRET-OUTSIDE-5830"];

/// A workspace folder and an unrelated folder beside it, unique to this run.
fn folders() -> (PathBuf, PathBuf) {
    let unique = format!(
        "glint-secrets-{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    );
    let root = std::env::temp_dir().join(unique);
    let workspace = root.join("project");
    let outside = root.join("elsewhere");
    std::fs::create_dir_all(workspace.join("src")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    (workspace, outside)
}

fn uri(path: &std::path::Path) -> String {
    format!("file://{}", path.display())
}

fn inline(uri: &str, line: u32, character: u32) -> Value {
    json!({"textDocument": {"uri": uri}, "position": {"line": line, "character": character}, "context": {"triggerKind": 1}})
}

/// A session with a scripted engine of `kind` (which records what it receives), initialized with
/// one workspace folder and `options`; the `initialize` result comes back too.
async fn session(
    kind: &'static str,
    reply: &str,
    workspace: &std::path::Path,
    options: Value,
) -> (FakeEngine, LspClient, Value) {
    let engine = FakeEngine::fixed(reply);
    let scripted = Scripted { fake: engine.clone(), kind };
    let client =
        LspClient::in_process(ServerOptions { injected_engine: Some(Arc::new(scripted)), ..ServerOptions::default() });
    let result = client
        .call(
            "initialize",
            json!({
                "processId": null,
                "rootUri": uri(workspace),
                "workspaceFolders": [{"uri": uri(workspace), "name": "project"}],
                "capabilities": capabilities(&["utf-16"]),
                "initializationOptions": options,
            }),
        )
        .await;
    client.notify("initialized", json!({})).await;
    (engine, client, result)
}

/// Types one character at the start of `line` of `uri` (version `version`), which records the
/// region as a recent edit.
async fn edit(client: &LspClient, uri: &str, version: i32, line: u32) {
    client
        .notify(
            "textDocument/didChange",
            json!({
                "textDocument": {"uri": uri, "version": version},
                "contentChanges": [{"range": glint_tests::range(line, 0, line, 0), "text": " "}]
            }),
        )
        .await;
}

struct Scenario {
    engine: FakeEngine,
    client: LspClient,
    main: String,
    secrets: Vec<String>,
}

/// Opens the documents, edits each, and asks for one completion in the ordinary file.
async fn scenario(kind: &'static str) -> Scenario {
    let (workspace, outside) = folders();
    let (engine, client, _) = session(kind, "total", &workspace, json!({"contextTokens": 2048})).await;

    let util = uri(&workspace.join("src/util.py"));
    client
        .open(
            &util,
            "python",
            "def add_tax(amount, rate):\n    \"\"\"Adds the tax.\"\"\"\n    return amount * (1 + rate)\n",
        )
        .await;
    let env = uri(&workspace.join(".env"));
    let key = uri(&workspace.join("keys/id_rsa"));
    let far = uri(&outside.join("helpers.py"));
    client
        .open(&env, "python", &format!("def load_settings():\n    return \"{}\"\n\nAPI_TOKEN = 1\n", MARKERS[0]))
        .await;
    client.open(&key, "python", &format!("def sign_request(body):\n    return \"{}\"\n\nKEY = 2\n", MARKERS[1])).await;
    client.open(&far, "python", &format!("def fetch_rates():\n    return \"{}\"\n\nRATES = 3\n", MARKERS[2])).await;
    for doc in [&env, &key, &far, &util] {
        edit(&client, doc, 2, 1).await;
    }
    let main = uri(&workspace.join("src/main.py"));
    let text = "from util import add_tax\n\n\ndef checkout(cart):\n    settings = load_settings()\n    \
                signed = sign_request(cart)\n    rates = fetch_rates()\n    total = add_tax(cart.sum(), rates)\n    \
                return \n";
    client.open(&main, "python", text).await;
    let result = client.call("textDocument/inlineCompletion", inline(&main, 8, 11)).await;
    assert!(result.is_array(), "expected a completion in the ordinary file: {result}");
    Scenario { engine, client, main, secrets: vec![env, key, far] }
}

fn everything_sent(engine: &FakeEngine) -> String {
    engine.log().requests.iter().map(|r| serde_json::to_string(r).unwrap()).collect::<Vec<_>>().join("\n")
}

#[tokio::test]
async fn secrets_and_outside_files_never_reach_a_remote_engine() {
    let Scenario { engine, client, main, secrets } = scenario("http").await;
    let sent = everything_sent(&engine);
    // An invoked completion may ask for extra sampled items: every request counts.
    let requests = engine.log().requests.len();
    assert!(requests >= 1, "{sent}");
    for marker in MARKERS {
        assert!(!sent.contains(marker), "{marker} was sent to the remote engine:\n{sent}");
    }
    for name in ["load_settings", "sign_request", "fetch_rates"] {
        for request in &engine.log().requests {
            let snippets = &request.snippets;
            assert!(snippets.iter().all(|s| !s.text.contains(&format!("def {name}"))), "{snippets:?}");
        }
    }
    // The ordinary open file is still context.
    let request = &engine.log().requests[0];
    assert!(
        request.snippets.iter().any(|s| s.path.ends_with("util.py") && s.text.contains("def add_tax")),
        "the ordinary file's snippet is missing: {:?}",
        request.snippets
    );

    // Completing inside a secret or outside file sends nothing at all.
    for secret in &secrets {
        let result = client.call("textDocument/inlineCompletion", inline(secret, 1, 4)).await;
        assert!(result.is_null(), "{secret}: {result}");
    }
    assert_eq!(engine.log().requests.len(), requests, "{}", everything_sent(&engine));
    let again = client.call("textDocument/inlineCompletion", inline(&main, 8, 11)).await;
    assert!(again.is_array());
    assert!(MARKERS.iter().all(|m| !everything_sent(&engine).contains(m)));
}

#[tokio::test]
async fn an_in_process_engine_gets_the_same_documents_as_context() {
    let Scenario { engine, client, secrets, .. } = scenario("local").await;
    let sent = everything_sent(&engine);
    // Signatures and recent edits of the other files are context for a local engine.
    assert!(MARKERS.iter().any(|m| sent.contains(m)), "the scenario gathers no secret text: {sent}");
    let result = client.call("textDocument/inlineCompletion", inline(&secrets[0], 1, 4)).await;
    assert!(result.is_array(), "{result}");
}

#[tokio::test]
async fn remote_context_settings_widen_and_narrow_what_is_sent() {
    let (workspace, _) = folders();
    let options = json!({"remoteContext": {"allow": ["*.example.env"], "deny": ["generated/**"]}});
    let (engine, client, _) = session("http", "x", &workspace, options).await;
    let sample = uri(&workspace.join("sample.example.env"));
    let generated = uri(&workspace.join("generated/api.py"));
    client.open(&sample, "python", "x = \n").await;
    client.open(&generated, "python", "y = \n").await;
    assert!(client.call("textDocument/inlineCompletion", inline(&sample, 0, 4)).await.is_array());
    let requests = engine.log().requests.len();
    assert!(requests >= 1);
    assert!(client.call("textDocument/inlineCompletion", inline(&generated, 0, 4)).await.is_null());
    assert_eq!(engine.log().requests.len(), requests);
}

#[tokio::test]
async fn workspace_folder_changes_move_the_line_at_once() {
    let (workspace, outside) = folders();
    let (engine, client, result) = session("http", "x", &workspace, json!({})).await;
    let folders_capability = &result["capabilities"]["workspace"]["workspaceFolders"];
    assert_eq!(folders_capability["changeNotifications"], json!(true), "{result}");
    let inside = uri(&workspace.join("a.py"));
    let far = uri(&outside.join("b.py"));
    client.open(&inside, "python", "a = \n").await;
    client.open(&far, "python", "b = \n").await;
    let completes = |doc: String| {
        let client = &client;
        async move { client.call("textDocument/inlineCompletion", inline(&doc, 0, 4)).await.is_array() }
    };
    assert!(completes(inside.clone()).await);
    assert!(!completes(far.clone()).await, "a file outside the workspace reached the remote engine");

    // The other folder joins the workspace: its files may go.
    let change = |added: &PathBuf, removed: &PathBuf| {
        json!({"event": {
            "added": [{"uri": uri(added), "name": "added"}],
            "removed": [{"uri": uri(removed), "name": "removed"}],
        }})
    };
    client.notify("workspace/didChangeWorkspaceFolders", change(&outside, &workspace)).await;
    assert!(completes(far.clone()).await, "the added folder's file is still refused");
    // The first folder left the workspace: its files stop at once (typed into, so no earlier
    // answer can be reused).
    edit(&client, &inside, 2, 0).await;
    let before = engine.log().requests.len();
    let result = client.call("textDocument/inlineCompletion", inline(&inside, 0, 5)).await;
    assert!(result.is_null(), "a removed folder's file still reaches the remote engine: {result}");
    assert_eq!(engine.log().requests.len(), before, "{}", everything_sent(&engine));
}
