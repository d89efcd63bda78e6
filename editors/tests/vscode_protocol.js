// Drives `glint lsp` with VS Code's own protocol library (vscode-languageserver-protocol, the one
// vscode-languageclient uses), as the extension configures it: VS Code's client capabilities, the
// extension's default settings as initializationOptions, inline completion with streamed progress.
// Run from editors/vscode (its node_modules); GLINT_BIN is the server.
"use strict";
const { createRequire } = require("node:module");
const path = require("node:path");
const { spawn } = require("node:child_process");

const requireHere = createRequire(path.join(process.cwd(), "package.json"));
const lsp = requireHere("vscode-languageserver-protocol/node");

const TEXT = "print(add(1, 2))";
let failed = 0;
const stderr = [];
function check(name, ok, detail) {
  console.log(`  ${ok ? "ok  " : "FAIL"} ${name}${!ok && detail !== undefined ? `: ${JSON.stringify(detail)}` : ""}`);
  if (!ok) failed++;
}

async function main() {
  const server = spawn(process.env.GLINT_BIN, ["lsp", "--engine", `fake+delay=20:${TEXT}`], { stdio: ["pipe", "pipe", "pipe"] });
  server.stderr.on("data", (chunk) => stderr.push(chunk));
  const connection = lsp.createProtocolConnection(new lsp.StreamMessageReader(server.stdout), new lsp.StreamMessageWriter(server.stdin));
  const progress = [];
  connection.onNotification("glint/inlineCompletionProgress", (params) => progress.push(params));
  connection.listen();

  const uri = "file:///tmp/glint-vscode/add.py";
  const init = await connection.sendRequest(lsp.InitializeRequest.type, {
    processId: process.pid,
    clientInfo: { name: "Visual Studio Code", version: "1.139.1" },
    rootUri: null,
    workspaceFolders: null,
    capabilities: {
      general: { positionEncodings: ["utf-16"] },
      workspace: { configuration: true, didChangeConfiguration: { dynamicRegistration: true } },
      textDocument: {
        synchronization: { dynamicRegistration: true, didSave: true },
        completion: { dynamicRegistration: true, completionItem: { snippetSupport: true } },
        inlineCompletion: { dynamicRegistration: true },
        codeAction: { resolveSupport: { properties: ["edit", "command"] } },
      },
    },
    // What the extension sends with its default settings (src/config.ts).
    initializationOptions: {
      glint: { engine: "local", model: null, contextTokens: 1024, maxTokens: 128, debounceMs: 25, languages: {}, logLevel: "info", completionItems: false, streaming: true, threads: null, earlyAnswerMs: null },
    },
  });
  // The extension's defaults say engine "local"; the command-line --engine wins, as documented.
  check("initialize advertises inline completion", Boolean(init.capabilities.inlineCompletionProvider), init.capabilities);
  check("position encoding is utf-16", (init.capabilities.positionEncoding ?? "utf-16") === "utf-16", init.capabilities.positionEncoding);
  await connection.sendNotification(lsp.InitializedNotification.type, {});
  await connection.sendNotification(lsp.DidOpenTextDocumentNotification.type, {
    textDocument: { uri, languageId: "python", version: 1, text: "def add(a, b):\n    return a + b\n\n" },
  });

  const result = await connection.sendRequest(lsp.InlineCompletionRequest.type, {
    textDocument: { uri },
    position: { line: 2, character: 0 },
    context: { triggerKind: lsp.InlineCompletionTriggerKind.Invoked },
  });
  const items = Array.isArray(result) ? result : result?.items;
  check("inline completion returns the scripted text", items?.[0]?.insertText === TEXT, result);
  check("streamed progress arrived before the answer", progress.length >= 2, progress.length);
  check(
    "every progress is a prefix of the answer, for this document version and position",
    progress.every((p) => TEXT.startsWith(p.text) && p.uri === uri && p.version === 1 && p.position.line === 2 && p.position.character === 0),
    progress,
  );

  const status = await connection.sendRequest("glint/status");
  check("glint/status names the engine", status?.engine?.info?.kind === "fake", status?.engine);
  check("glint/status reports the settings the extension sent", status?.settings?.streaming === true && status?.settings?.completionItems === false, status?.settings);

  const items2 = await connection.sendRequest(lsp.CompletionRequest.type, {
    textDocument: { uri },
    position: { line: 2, character: 0 },
    context: { triggerKind: 1 },
  });
  const list = Array.isArray(items2) ? items2 : items2?.items ?? [];
  check("completionItems: false (the extension's default) gives no completion items", list.length === 0, items2);

  // Settings changes arrive as the extension sends them: streaming off stops the progress.
  await connection.sendNotification(lsp.DidChangeConfigurationNotification.type, { settings: { glint: { streaming: false, earlyAnswerMs: 0 } } });
  await connection.sendNotification(lsp.DidChangeTextDocumentNotification.type, {
    textDocument: { uri, version: 2 },
    contentChanges: [{ range: { start: { line: 2, character: 0 }, end: { line: 2, character: 0 } }, text: "\n" }],
  });
  progress.length = 0;
  const again = await connection.sendRequest(lsp.InlineCompletionRequest.type, {
    textDocument: { uri },
    position: { line: 3, character: 0 },
    context: { triggerKind: lsp.InlineCompletionTriggerKind.Invoked },
  });
  const items3 = Array.isArray(again) ? again : again?.items;
  check("after didChangeConfiguration streaming: false, no progress", items3?.[0]?.insertText === TEXT && progress.length === 0, { again, progress });

  await connection.sendRequest(lsp.ShutdownRequest.type);
  await connection.sendNotification(lsp.ExitNotification.type);
  const code = await new Promise((resolve) => server.on("exit", (c) => resolve(c)));
  check("the server exits cleanly", code === 0, code);
  connection.dispose();
}

main().then(
  () => {
    console.log(`  ${failed === 0 ? "all checks passed" : `${failed} checks failed`}`);
    if (failed) {
      console.log(`server stderr:\n${Buffer.concat(stderr).toString()}`);
    }
    process.exit(failed === 0 ? 0 : 1);
  },
  (error) => {
    console.log(`  FAIL ${error?.stack ?? error}\nserver stderr:\n${Buffer.concat(stderr).toString()}`);
    process.exit(1);
  },
);
