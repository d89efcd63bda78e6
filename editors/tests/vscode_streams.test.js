// Unit tests of the extension's streaming cache (out/streaming.js) with a stand-in `vscode`
// module: partial text re-triggers the inline suggestion, re-triggered calls are answered from
// the cache without a second server request, VS Code's cancellation does not cancel the server
// request, and the final answer replaces the last partial. Run from editors/vscode after compile.
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const Module = require("node:module");
const path = require("node:path");

const executed = [];
let activeEditor;

class Position {
  constructor(line, character) {
    this.line = line;
    this.character = character;
  }
  isEqual(other) {
    return other.line === this.line && other.character === this.character;
  }
}
class Range {
  constructor(start, end) {
    this.start = start;
    this.end = end;
  }
}
class InlineCompletionItem {
  constructor(insertText, range) {
    this.insertText = insertText;
    this.range = range;
  }
}
class CancellationTokenSource {
  constructor() {
    const listeners = [];
    this.token = {
      isCancellationRequested: false,
      onCancellationRequested: (fn) => {
        listeners.push(fn);
        return { dispose: () => listeners.splice(listeners.indexOf(fn), 1) };
      },
    };
    this.cancel = () => {
      if (!this.token.isCancellationRequested) {
        this.token.isCancellationRequested = true;
        [...listeners].forEach((fn) => fn());
      }
    };
  }
  dispose() {}
}
const vscode = {
  Position,
  Range,
  InlineCompletionItem,
  CancellationTokenSource,
  InlineCompletionTriggerKind: { Invoke: 0, Automatic: 1 },
  window: {
    get activeTextEditor() {
      return activeEditor;
    },
  },
  commands: { executeCommand: async (id) => executed.push(id) },
};
const originalLoad = Module._load;
Module._load = function (request, ...rest) {
  return request === "vscode" ? vscode : originalLoad.call(this, request, ...rest);
};
const { InlineStreams } = require(path.join(process.cwd(), "out", "streaming.js"));

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const uri = "file:///w/add.py";
function setup(autoEnabled = true) {
  const document = { uri: { toString: () => uri }, version: 3 };
  const position = new Position(2, 0);
  activeEditor = { document, selection: { active: position } };
  executed.length = 0;
  const begun = [];
  const streams = new InlineStreams({ autoEnabled: () => autoEnabled, begin: () => (latency) => begun.push(latency) });
  return { streams, provide: streams.middleware().provideInlineCompletionItems, document, position, begun };
}
function serverRequest() {
  const calls = [];
  const next = (_doc, _pos, _ctx, token) => {
    let resolve;
    const promise = new Promise((r) => (resolve = r));
    calls.push({ token, resolve });
    return promise;
  };
  return { next, calls };
}
const progress = (text) => ({ uri, version: 3, position: { line: 2, character: 0 }, text });
const invoke = { triggerKind: 0 };

test("the first partial answers the waiting call; later text re-triggers and is served from the cache", async () => {
  const { streams, provide, document, position, begun } = setup();
  const { next, calls } = serverRequest();
  const firstAnswer = provide(document, position, { triggerKind: 1 }, new CancellationTokenSource().token, next);
  assert.equal(calls.length, 1);

  // VS Code will not start a second call while this one runs, so the first partial answers it.
  streams.onProgress(progress("print("));
  assert.equal((await firstAnswer)[0].insertText, "print(");
  await sleep(50);
  assert.deepEqual(executed, []);

  streams.onProgress(progress("print(add"));
  await sleep(50);
  assert.deepEqual(executed, ["editor.action.inlineSuggest.trigger"]);
  const second = await provide(document, position, invoke, new CancellationTokenSource().token, next);
  assert.equal(second[0].insertText, "print(add");
  assert.equal(calls.length, 1, "a re-triggered call must not ask the server again");

  // A partial that does not extend what is shown does not re-trigger.
  streams.onProgress(progress("pr"));
  await sleep(50);
  assert.equal(executed.length, 1);

  calls[0].resolve([new InlineCompletionItem("print(add(1, 2))")]);
  await sleep(50);
  assert.equal(executed.length, 2, "the final answer re-triggers once");
  const last = await provide(document, position, invoke, new CancellationTokenSource().token, next);
  assert.equal(last[0].insertText, "print(add(1, 2))");
  assert.equal(calls.length, 1);
  assert.equal(calls[0].token.isCancellationRequested, false);
  assert.equal(begun.length, 1);
  streams.dispose();
});

test("VS Code cancelling a waiting call does not cancel the server request", async () => {
  const { streams, provide, document, position } = setup();
  const { next, calls } = serverRequest();
  const vscodeToken = new CancellationTokenSource();
  const answer = provide(document, position, invoke, vscodeToken.token, next);
  vscodeToken.cancel();
  assert.equal(await answer, undefined);
  assert.equal(calls[0].token.isCancellationRequested, false);
  // The answer still arrives, and VS Code is asked to show it.
  calls[0].resolve([new InlineCompletionItem("x = 1")]);
  await sleep(50);
  assert.deepEqual(executed, ["editor.action.inlineSuggest.trigger"]);
  const again = await provide(document, position, invoke, new CancellationTokenSource().token, next);
  assert.equal(again[0].insertText, "x = 1");
  streams.dispose();
});

test("an answer that arrives before any cancel goes straight back", async () => {
  const { streams, provide, document, position } = setup();
  const { next, calls } = serverRequest();
  const answer = provide(document, position, invoke, new CancellationTokenSource().token, next);
  calls[0].resolve([new InlineCompletionItem("x = 1")]);
  assert.equal((await answer)[0].insertText, "x = 1");
  await sleep(50);
  assert.deepEqual(executed, []);
  streams.dispose();
});

test("progress for another version or position is ignored", async () => {
  const { streams, provide, document, position } = setup();
  const { next } = serverRequest();
  provide(document, position, invoke, new CancellationTokenSource().token, next);
  streams.onProgress({ ...progress("a"), version: 2 });
  streams.onProgress({ ...progress("a"), position: { line: 2, character: 1 } });
  await sleep(50);
  assert.deepEqual(executed, []);
  streams.dispose();
});

test("a new position cancels the older server request", async () => {
  const { streams, provide, document, position } = setup();
  const { next, calls } = serverRequest();
  provide(document, position, invoke, new CancellationTokenSource().token, next);
  provide({ ...document, version: 4 }, new Position(2, 1), invoke, new CancellationTokenSource().token, next);
  assert.equal(calls.length, 2);
  assert.equal(calls[0].token.isCancellationRequested, true);
  assert.equal(calls[1].token.isCancellationRequested, false);
  streams.dispose();
});

test("automatic requests are dropped when automatic completions are off", async () => {
  const { streams, provide, document, position } = setup(false);
  const { next, calls } = serverRequest();
  assert.equal(await provide(document, position, { triggerKind: 1 }, new CancellationTokenSource().token, next), null);
  assert.equal(calls.length, 0);
  provide(document, position, invoke, new CancellationTokenSource().token, next);
  assert.equal(calls.length, 1, "an explicit trigger still asks");
  streams.dispose();
});
