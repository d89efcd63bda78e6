// Unit tests of the extension's streaming cache (out/streaming.js) against a stand-in `vscode`
// module whose inline suggestion controller behaves like VS Code 1.139's
// (`InlineCompletionsSource.fetch`): a running call is reused, an explicit result "satisfies"
// every later request at the same version and position, an explicit trigger keeps the shown
// item first in the new result, hide clears everything, and an answer can be thrown away. On that model the ghost text must
// converge to the server's final answer, and accepting must insert exactly it.
// Run from editors/vscode after compile.
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const Module = require("node:module");
const path = require("node:path");

const AUTOMATIC = 1;
const INVOKE = 0;

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

/**
 * VS Code's inline suggestion state for one editor, reduced to what decides which text is on
 * screen: `fetch`'s reuse and "satisfies" checks, the explicit trigger's preserved item, and hide.
 */
class Controller {
  constructor() {
    this.document = { uri: { toString: () => uri }, version: 3 };
    this.position = new Position(2, 0);
    this.result = undefined; // { request, items }
    this.operation = undefined; // { request, cancel, promise }
    this.calls = 0;
    this.shownHistory = [];
  }
  get shown() {
    return this.result?.items[0]?.insertText;
  }
  satisfies(done, request) {
    return (
      done.position.isEqual(request.position) &&
      done.version === request.version &&
      (request.kind === AUTOMATIC || done.kind === INVOKE)
    );
  }
  fetch(kind, preserve) {
    const request = { position: this.position, version: this.document.version, kind };
    if (this.operation && this.satisfies(this.operation.request, request)) {
      return this.operation.promise;
    }
    if (this.result && this.satisfies(this.result.request, request)) {
      return Promise.resolve();
    }
    this.operation?.cancel.cancel();
    const cancel = new CancellationTokenSource();
    const kept = preserve ? this.result?.items[0] : undefined;
    this.calls++;
    const promise = Promise.resolve(provide(this.document, this.position, { triggerKind: kind }, cancel.token, next)).then(
      (answer) => {
        if (cancel.token.isCancellationRequested || this.document.version !== request.version) {
          return;
        }
        if (this.dropNext) {
          // What VS Code does when a suggest-widget session cancels the pending fetch: the
          // provider's answer is thrown away and nobody is told.
          this.dropNext = false;
          this.operation = undefined;
          return;
        }
        this.operation = undefined;
        let items = Array.isArray(answer) ? answer : (answer?.items ?? []);
        if (kept && !items.some((i) => i.insertText === kept.insertText)) {
          items = [kept, ...items];
        }
        this.result = { request, items };
        this.shownHistory.push(this.shown);
      },
    );
    this.operation = { request, cancel, promise };
    return promise;
  }
  /** A keystroke: the document moves on and VS Code asks automatically. */
  type(text) {
    this.document = { uri: this.document.uri, version: this.document.version + 1 };
    this.position = new Position(this.position.line, this.position.character + text.length);
    this.result = undefined;
    return this.fetch(AUTOMATIC, false);
  }
  trigger() {
    return this.fetch(INVOKE, true);
  }
  hide() {
    this.operation?.cancel.cancel();
    this.operation = undefined;
    this.result = undefined;
  }
  /** Tab: what the editor would insert. */
  accept() {
    return this.shown;
  }
}

let controller;
let provide;
let next;
const executed = [];
const vscode = {
  Position,
  Range,
  InlineCompletionItem,
  CancellationTokenSource,
  InlineCompletionTriggerKind: { Invoke: INVOKE, Automatic: AUTOMATIC },
  window: {
    get activeTextEditor() {
      return controller && { document: controller.document, selection: { active: controller.position } };
    },
  },
  commands: {
    executeCommand: async (id) => {
      executed.push(id);
      if (id === "editor.action.inlineSuggest.trigger") {
        await controller.trigger();
      } else if (id === "editor.action.inlineSuggest.hide") {
        controller.hide();
      }
    },
  },
};
const originalLoad = Module._load;
Module._load = function (request, ...rest) {
  return request === "vscode" ? vscode : originalLoad.call(this, request, ...rest);
};
const { InlineStreams, completeLines } = require(path.join(process.cwd(), "out", "streaming.js"));

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const uri = "file:///w/sign.py";

/** A fresh controller, stream cache and scripted server; `server.calls` are its requests. */
function setup({ allowed = () => true } = {}) {
  controller = new Controller();
  executed.length = 0;
  const server = { calls: [] };
  next = (document, position, _context, token) =>
    new Promise((resolve) => server.calls.push({ version: document.version, position, token, resolve }));
  let begun = 0;
  let ended = 0;
  const streams = new InlineStreams({
    allowed,
    begin: () => {
      begun++;
      return () => ended++;
    },
  });
  provide = streams.middleware().provideInlineCompletionItems;
  const progress = (text) =>
    streams.onProgress({ uri, version: controller.document.version, position: controller.position, text });
  // The last progress of an early-answered request.
  const final = (text) =>
    streams.onProgress({ uri, version: controller.document.version, position: controller.position, text, final: true });
  return { streams, server, progress, final, counts: () => ({ begun, ended }) };
}
const answer = (text) => [new InlineCompletionItem(text)];

test("complete lines: a partial line is never shown, a complete one is", () => {
  assert.equal(completeLines(" <="), undefined);
  assert.equal(completeLines("\n    return"), undefined);
  assert.equal(completeLines(":\n    return x\n    re"), ":\n    return x");
  assert.equal(completeLines("a\n"), "a");
});

test("the issue: partials ' <=', ' <= 0', ' <= 0:' then the final ' <= 0:' show the final, and Tab inserts it", async () => {
  const { streams, server, progress } = setup();
  controller.type("if n");
  assert.equal(server.calls.length, 1);
  progress(" <=");
  progress(" <= 0");
  progress(" <= 0:");
  await sleep(60);
  server.calls[0].resolve(answer(" <= 0:"));
  await sleep(80);
  assert.equal(controller.shown, " <= 0:");
  assert.equal(controller.accept(), " <= 0:");
  assert.deepEqual(controller.shownHistory, [" <= 0:"], "a one-line answer is shown once, final");
  assert.equal(server.calls.length, 1);
  streams.dispose();
});

test("a multi-line answer shows its first complete line, then converges to the final text", async () => {
  const { streams, server, progress } = setup();
  controller.type("x");
  progress(":\n    ret");
  await sleep(10);
  assert.equal(controller.shown, ":", "the automatic call is answered with the first complete line");
  progress(":\n    return 1\n");
  await sleep(60);
  assert.equal(controller.shown, ":\n    return 1");
  server.calls[0].resolve(answer(":\n    return 1\n    # done"));
  await sleep(80);
  assert.equal(controller.shown, ":\n    return 1\n    # done");
  assert.equal(controller.accept(), ":\n    return 1\n    # done");
  for (const text of controller.shownHistory) {
    assert.ok(":\n    return 1\n    # done".startsWith(text), `every text shown is a prefix of the final: ${JSON.stringify(text)}`);
  }
  assert.equal(server.calls.length, 1, "replacements are answered from the cache");
  assert.equal(server.calls[0].token.isCancellationRequested, false, "VS Code's re-asking never cancels the server request");
  assert.ok(executed.includes("editor.action.inlineSuggest.hide"), "a replacement hides the old text first");
  streams.dispose();
});

test("a final answer that is empty takes the partial off the screen", async () => {
  const { streams, server, progress } = setup();
  controller.type("x");
  progress("a\nb");
  await sleep(10);
  assert.equal(controller.shown, "a");
  server.calls[0].resolve(null);
  await sleep(80);
  assert.equal(controller.shown, undefined);
  streams.dispose();
});

test("a keystroke supersedes the request: its partial is gone and the new request's answer shows", async () => {
  const { streams, server, progress, counts } = setup();
  controller.type("i");
  progress("f x:\n");
  await sleep(10);
  assert.equal(controller.shown, "f x:");
  controller.type("f");
  assert.equal(server.calls.length, 2);
  assert.equal(server.calls[0].token.isCancellationRequested, true, "the older server request is cancelled");
  assert.equal(controller.shown, undefined);
  server.calls[0].resolve(answer("f x:\n    pass"));
  // Progress for the superseded version changes nothing.
  streams.onProgress({ uri, version: controller.document.version - 1, position: new Position(2, 1), text: "zzz\n" });
  server.calls[1].resolve(answer(" y:"));
  await sleep(80);
  assert.equal(controller.shown, " y:");
  assert.deepEqual(counts(), { begun: 2, ended: 2 });
  streams.dispose();
});

test("an answer that comes after VS Code gave up on its call is still shown", async () => {
  const { streams, server } = setup();
  controller.type("x");
  controller.operation.cancel.cancel();
  controller.operation = undefined;
  await sleep(10);
  assert.equal(server.calls[0].token.isCancellationRequested, false);
  server.calls[0].resolve(answer(" = 1"));
  await sleep(80);
  assert.equal(controller.shown, " = 1");
  assert.equal(server.calls.length, 1);
  streams.dispose();
});

test("an answer VS Code throws away is asked for again, from the cache", async () => {
  const { streams, server } = setup();
  controller.type("x");
  controller.dropNext = true;
  server.calls[0].resolve(answer(" = 1"));
  await sleep(20);
  assert.equal(controller.shown, undefined, "VS Code dropped it");
  await sleep(150);
  assert.equal(controller.shown, " = 1");
  assert.equal(server.calls.length, 1);
  streams.dispose();
});

test("automatic requests are refused when the hooks say so; an explicit one still asks", async () => {
  const { streams, server } = setup({ allowed: (_doc, automatic) => !automatic });
  await controller.type("x");
  assert.equal(server.calls.length, 0);
  void controller.trigger();
  assert.equal(server.calls.length, 1, "an explicit trigger still asks");
  streams.dispose();
});

// The early answer: the server answers an automatic request with the text so far and goes on;
// progress after the response extends it, and the one marked `final` ends it.

/** Every text that was on screen is a prefix of `final` (the ghost text only grew). */
function onlyGrew(final) {
  for (const text of controller.shownHistory) {
    assert.ok(final.startsWith(text ?? ""), `${JSON.stringify(text)} is a prefix of the final ${JSON.stringify(final)}`);
  }
}

test("an early answer grows with the progress after it, ends on the final text, and Tab inserts that", async () => {
  const { streams, server, progress, final, counts } = setup();
  controller.type("if n");
  progress(" <");
  server.calls[0].resolve(answer(" <="));
  await sleep(10);
  assert.equal(controller.shown, " <=", "the early answer shows at once");
  assert.deepEqual(counts(), { begun: 1, ended: 1 });
  progress(" <= 0");
  await sleep(60);
  assert.equal(controller.shown, " <= 0", "the ghost text grows after the response");
  final(" <= 0:");
  await sleep(60);
  assert.equal(controller.shown, " <= 0:");
  assert.equal(controller.accept(), " <= 0:");
  onlyGrew(" <= 0:");
  assert.equal(server.calls.length, 1, "the growing text is answered from the cache");
  assert.equal(server.calls[0].token.isCancellationRequested, false);
  assert.ok(executed.includes("editor.action.inlineSuggest.hide"), "each replacement hides the old text first");
  // Later confirmations and progress change nothing: the stream is over.
  progress(" <= 0: # late");
  await sleep(150);
  assert.equal(controller.shown, " <= 0:");
  streams.dispose();
});

test("a multi-line early answer grows to the final text", async () => {
  const { streams, server, progress, final } = setup();
  controller.type("x");
  server.calls[0].resolve(answer(":\n    ret"));
  await sleep(10);
  assert.equal(controller.shown, ":\n    ret");
  progress(":\n    return 1");
  progress(":\n    return 1\n    # do");
  await sleep(60);
  assert.equal(controller.shown, ":\n    return 1\n    # do", "a replacement brings the newest text when it fires");
  final(":\n    return 1\n    # done");
  await sleep(60);
  assert.equal(controller.accept(), ":\n    return 1\n    # done");
  onlyGrew(":\n    return 1\n    # done");
  assert.equal(server.calls.length, 1);
  streams.dispose();
});

test("a final text shorter than what is shown replaces it (the final post-processing cut it)", async () => {
  const { streams, server, progress, final } = setup();
  controller.type("x");
  server.calls[0].resolve(answer(" = foo(bar"));
  await sleep(10);
  progress(" = foo(bar, baz");
  await sleep(60);
  assert.equal(controller.shown, " = foo(bar, baz");
  final(" = foo");
  await sleep(60);
  assert.equal(controller.shown, " = foo");
  assert.equal(controller.accept(), " = foo");
  streams.dispose();
});

test("an empty final text withdraws the early answer", async () => {
  const { streams, server, final } = setup();
  controller.type("x");
  server.calls[0].resolve(answer(" <="));
  await sleep(10);
  assert.equal(controller.shown, " <=");
  final("");
  await sleep(60);
  assert.equal(controller.shown, undefined, "no ghost text is left");
  await sleep(150);
  assert.equal(controller.shown, undefined, "and none comes back");
  streams.dispose();
});

test("a final text equal to the early answer changes nothing on screen", async () => {
  const { streams, server, final } = setup();
  controller.type("x");
  server.calls[0].resolve(answer(" = 1"));
  await sleep(10);
  final(" = 1");
  await sleep(150);
  assert.equal(controller.shown, " = 1");
  assert.ok(!executed.includes("editor.action.inlineSuggest.hide"), "nothing to replace");
  streams.dispose();
});

test("a final progress read before the response wins over it", async () => {
  const { streams, server, final } = setup();
  controller.type("if n");
  final(" <= 0:");
  await sleep(10);
  assert.equal(controller.shown, " <= 0:", "the waiting call gets the final text");
  server.calls[0].resolve(answer(" <="));
  await sleep(150);
  assert.equal(controller.shown, " <= 0:");
  assert.equal(controller.accept(), " <= 0:");
  streams.dispose();
});

test("an explicit trigger while a newer text is on its way does not keep the old one first", async () => {
  const { streams, server, progress, final } = setup();
  controller.type("if n");
  server.calls[0].resolve(answer(" <="));
  await sleep(10);
  progress(" <= 0");
  // The user asks explicitly before the replacement fires: VS Code keeps " <=" first.
  await controller.trigger();
  await sleep(60);
  assert.equal(controller.shown, " <= 0");
  final(" <= 0:");
  await sleep(150);
  assert.equal(controller.shown, " <= 0:");
  assert.equal(server.calls.length, 1);
  streams.dispose();
});

test("progress for an early answer the user typed past is dropped; the new request's answer shows", async () => {
  const { streams, server, progress, final } = setup();
  controller.type("i");
  server.calls[0].resolve(answer("f x"));
  await sleep(10);
  assert.equal(controller.shown, "f x");
  const old = { version: controller.document.version, position: controller.position };
  controller.type("f");
  assert.equal(server.calls.length, 2);
  streams.onProgress({ uri, ...old, text: "f x:" });
  streams.onProgress({ uri, ...old, text: "f x:", final: true });
  server.calls[1].resolve(answer(" x"));
  await sleep(10);
  assert.equal(controller.shown, " x");
  progress(" x:");
  final(" x:");
  await sleep(60);
  assert.equal(controller.shown, " x:");
  assert.equal(controller.accept(), " x:");
  streams.dispose();
});

test("an early answer VS Code throws away still comes back, grown, from the cache", async () => {
  const { streams, server, progress, final } = setup();
  controller.type("if n");
  controller.dropNext = true;
  server.calls[0].resolve(answer(" <="));
  await sleep(10);
  assert.equal(controller.shown, undefined, "VS Code dropped it");
  progress(" <= 0");
  await sleep(60);
  assert.equal(controller.shown, " <= 0");
  final(" <= 0:");
  await sleep(150);
  assert.equal(controller.shown, " <= 0:");
  assert.equal(server.calls.length, 1);
  streams.dispose();
});

test("a progress written after the response that does not extend the answer is older than it and dropped", async () => {
  const { streams, server, progress } = setup();
  controller.type("if n");
  server.calls[0].resolve(answer(" <= 0:"));
  await sleep(10);
  assert.equal(controller.shown, " <= 0:");
  // Sent before the response, written after it; the answer came at the model's end, so no final follows.
  progress(" <= 0");
  progress(" <=");
  await sleep(150);
  assert.equal(controller.shown, " <= 0:");
  assert.ok(controller.shownHistory.every((text) => text === " <= 0:"), JSON.stringify(controller.shownHistory));
  assert.ok(!executed.includes("editor.action.inlineSuggest.hide"), "nothing was replaced");
  assert.equal(controller.accept(), " <= 0:");
  streams.dispose();
});
