// Unit tests of the extension's rewrite glue (out/rewrite.js) with a stand-in `vscode` module: the
// code action's `glint.rewrite` (no instruction) asks for one and sends it with the action's
// arguments, a cancelled or blank answer sends nothing, other commands and rewrites that already
// carry an instruction pass through untouched, the rewrite action is never resolved, and an action
// the server gave up on (it says so itself) is not reported a second time.
// Run from editors/vscode after compile.
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const Module = require("node:module");
const path = require("node:path");

const answers = [];
const prompts = [];
const vscode = {
  window: {
    showInputBox: async (options) => {
      prompts.push(options);
      return answers.shift();
    },
  },
};
const originalLoad = Module._load;
Module._load = function (request, ...rest) {
  return request === "vscode" ? vscode : originalLoad.call(this, request, ...rest);
};
const { rewriteMiddleware } = require(path.join(process.cwd(), "out", "rewrite.js"));

const ARG = { uri: "file:///w/lib.rs", version: 3, range: { start: { line: 1, character: 4 }, end: { line: 1, character: 9 } } };

function recorder() {
  const calls = [];
  return { calls, next: async (command, args) => (calls.push({ command, args }), "sent") };
}

test("the rewrite action asks for the instruction and sends it with its arguments", async () => {
  const { calls, next } = recorder();
  answers.push("use iterators");
  prompts.length = 0;
  const result = await rewriteMiddleware().executeCommand("glint.rewrite", [ARG], next);
  assert.equal(result, "sent");
  assert.equal(prompts.length, 1);
  assert.deepEqual(calls, [{ command: "glint.rewrite", args: [{ ...ARG, instruction: "use iterators" }] }]);
});

test("a cancelled or blank instruction sends nothing", async () => {
  const { calls, next } = recorder();
  answers.push(undefined, "   ");
  const middleware = rewriteMiddleware();
  assert.equal(await middleware.executeCommand("glint.rewrite", [ARG], next), undefined);
  assert.equal(await middleware.executeCommand("glint.rewrite", [ARG], next), undefined);
  assert.deepEqual(calls, []);
});

test("other commands and rewrites with an instruction pass through without a prompt", async () => {
  const { calls, next } = recorder();
  prompts.length = 0;
  const middleware = rewriteMiddleware();
  await middleware.executeCommand("glint.applyAction", [ARG], next);
  await middleware.executeCommand("glint.rewrite", [{ ...ARG, instruction: "x" }], next);
  await middleware.executeCommand("glint.rewrite", [], next);
  assert.equal(prompts.length, 0);
  assert.deepEqual(calls.map((c) => c.args), [[ARG], [{ ...ARG, instruction: "x" }], []]);
});

test("the rewrite action is not resolved; other actions are", async () => {
  const middleware = rewriteMiddleware();
  const rewrite = { title: "Glint: Rewrite the selection…", command: { command: "glint.rewrite", arguments: [ARG] } };
  const doc = { title: "Glint: Write the doc comment of `add`" };
  const resolved = [];
  const next = async (item) => (resolved.push(item.title), { ...item, edit: {} });
  assert.equal(await middleware.resolveCodeAction(rewrite, {}, next), rewrite);
  assert.deepEqual(await middleware.resolveCodeAction(doc, {}, next), { ...doc, edit: {} });
  assert.deepEqual(resolved, [doc.title]);
});

test("an action the server gave up on does nothing, without a second error; other failures go the default way", async () => {
  const failures = [];
  let answer;
  const client = {
    code2ProtocolConverter: { asCodeActionSync: (item) => ({ title: item.title }) },
    protocol2CodeConverter: { asCodeAction: async (result) => ({ ...result, converted: true }) },
    sendRequest: async (method, params) => {
      assert.equal(method, "codeAction/resolve");
      return answer(params);
    },
    handleFailedRequest: (type, token, error, item) => (failures.push([type.method, error.message]), item),
  };
  const middleware = rewriteMiddleware(() => client);
  const doc = { title: "Glint: Write the doc comment of `add`" };
  const next = async () => assert.fail("the default resolve is not used while a client runs");
  const failed = (code, message) => Object.assign(new Error(message), { code });

  answer = async () => ({ title: doc.title, edit: {} });
  assert.deepEqual(await middleware.resolveCodeAction(doc, { isCancellationRequested: false }, next), { title: doc.title, edit: {}, converted: true });
  answer = async () => {
    throw failed(-32803, "Glint could not produce a valid edit: the model's description restates the request");
  };
  assert.equal(await middleware.resolveCodeAction(doc, { isCancellationRequested: false }, next), doc);
  assert.deepEqual(failures, [], "the server's own message is the only one");
  answer = async () => {
    throw failed(-32803, "Glint: the model is still loading; try again in a moment");
  };
  assert.equal(await middleware.resolveCodeAction(doc, { isCancellationRequested: false }, next), doc);
  assert.deepEqual(failures, [["codeAction/resolve", "Glint: the model is still loading; try again in a moment"]]);
});
