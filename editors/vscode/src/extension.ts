// The Glint extension: starts `glint lsp`, forwards settings, shows a status bar item and offers
// the controls (on/off, snooze, per-language switch, model picker, accept next line or word).
// Inline completions come from vscode-languageclient's built-in `textDocument/inlineCompletion`
// support, routed through the streaming cache in streaming.ts.
import * as fs from "node:fs";
import * as vscode from "vscode";
import {
  DidChangeConfigurationNotification,
  LanguageClient,
  type LanguageClientOptions,
  NotificationType,
  type ServerOptions,
  State,
} from "vscode-languageclient/node";

import { LANGUAGES, autoCompletionsEnabled, glintEnabled, languageEnabled, resolveBinary, serverSettings } from "./config";
import { TraceChannel, stdioOptions } from "./logs";
import { CATALOG, DEFAULT_MODEL, displayModelName, loadingStep } from "./models";
import { NextEdits } from "./nextedit";
import { rewriteMiddleware, rewriteSelection } from "./rewrite";
import { type CompletionTimings, type EngineStatus, StatusBar } from "./status";
import { InlineStreams, type Progress } from "./streaming";

const PROGRESS = new NotificationType<Progress>("glint/inlineCompletionProgress");
const SNOOZE_KEY = "glint.snoozedUntil";

let client: LanguageClient | undefined;
let output: vscode.LogOutputChannel;
let trace: TraceChannel;
let status: StatusBar;
let streams: InlineStreams;
let extensionUri: vscode.Uri;
let globalState: vscode.Memento;
let snoozeTimer: ReturnType<typeof setTimeout> | undefined;
let loading: { what: string; done: () => void; step: (step: string | undefined) => void } | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  extensionUri = context.extensionUri;
  globalState = context.globalState;
  output = vscode.window.createOutputChannel("Glint", { log: true });
  trace = new TraceChannel();
  status = new StatusBar();
  streams = new InlineStreams({
    allowed,
    begin: () => beginCompletion(),
    settled: () => void refreshLatency(),
    log: (message) => output.debug(message),
  });
  context.subscriptions.push(output, trace, status, streams, { dispose: () => snoozeTimer && clearTimeout(snoozeTimer) });
  // Next-edit predictions (nextedit.ts): where Glint is on, not snoozed, not off for the language.
  const running = () => (client?.state === State.Running ? client : undefined);
  const nextEditAllowed = (doc: vscode.TextDocument) => LANGUAGES.includes(doc.languageId) && allowed(doc, false) && !snoozed();
  context.subscriptions.push(new NextEdits({ client: running, allowed: nextEditAllowed, log: (m) => output.debug(m) }));
  refreshSwitches();

  const command = (id: string, run: (...args: unknown[]) => unknown) =>
    context.subscriptions.push(vscode.commands.registerCommand(id, run));
  command("glint.triggerInlineCompletion", () => vscode.commands.executeCommand("editor.action.inlineSuggest.trigger"));
  command("glint.toggle", toggleGlint);
  command("glint.toggleAutoCompletions", toggleAutoCompletions);
  command("glint.snooze", (minutes) => snooze(typeof minutes === "number" ? minutes : undefined));
  command("glint.unsnooze", () => snoozeUntil(undefined));
  command("glint.toggleLanguage", toggleLanguage);
  command("glint.acceptNextLine", () => vscode.commands.executeCommand("editor.action.inlineSuggest.acceptNextLine"));
  command("glint.acceptNextWord", () => vscode.commands.executeCommand("editor.action.inlineSuggest.acceptNextWord"));
  command("glint.selectModel", selectModel);
  command("glint.switchEngine", switchEngine);
  command("glint.fetchModel", (name) => fetchModel(typeof name === "string" ? name : undefined));
  command("glint.showLogs", () => output.show(true));
  command("glint.showStatus", showStatus);
  command("glint.restartServer", restart);
  command("glint.rewriteSelection", () => rewriteSelection(client));
  command("glint.statusMenu", statusMenu);

  context.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      if (!event.affectsConfiguration("glint")) {
        return;
      }
      refreshSwitches();
      trace.refresh();
      if (event.affectsConfiguration("glint.enable")) {
        await (glintEnabled() ? start() : stop());
        return;
      }
      if (event.affectsConfiguration("glint.path")) {
        await restart();
        return;
      }
      if (client?.state === State.Running) {
        await client.sendNotification(DidChangeConfigurationNotification.type, { settings: { glint: serverSettings() } });
        await refreshStatus();
      }
    }),
    vscode.workspace.onDidCloseTextDocument((doc) => streams.forget(doc.uri.toString())),
    vscode.window.onDidChangeActiveTextEditor(() => refreshSwitches()),
  );

  if (glintEnabled()) {
    await start();
  }
}

export async function deactivate(): Promise<void> {
  await stop();
}

/** Whether VS Code may ask for inline completions in `document` now. */
function allowed(document: vscode.TextDocument, automatic: boolean): boolean {
  if (!glintEnabled() || !languageEnabled(document.languageId)) {
    return false;
  }
  return !automatic || (autoCompletionsEnabled() && !snoozed());
}

function snoozed(): boolean {
  const until = globalState.get<number>(SNOOZE_KEY);
  return until !== undefined && until > Date.now();
}

function refreshSwitches(): void {
  const language = vscode.window.activeTextEditor?.document.languageId;
  status.setSwitches({
    enabled: glintEnabled(),
    autoEnabled: autoCompletionsEnabled(),
    snoozedUntil: snoozed() ? globalState.get<number>(SNOOZE_KEY) : undefined,
    languageOff: language && !languageEnabled(language) ? language : undefined,
  });
}

function beginCompletion(): () => void {
  const end = status.begin();
  return () => {
    end();
    void refreshLatency();
  };
}

async function start(): Promise<void> {
  if (client) {
    return;
  }
  const binary = resolveBinary();
  if (!binary.resolved) {
    const message = `Glint: cannot find the server binary \`${binary.configured}\`. Install it (cargo install --path server) or set "glint.path".`;
    status.setProblem("server binary not found");
    output.error(message);
    void vscode.window.showErrorMessage(message, "Open Settings", "How to Install").then((choice) => {
      if (choice === "Open Settings") {
        void vscode.commands.executeCommand("workbench.action.openSettings", "glint.path");
      } else if (choice === "How to Install") {
        // The bundled README has an "Install the server" section.
        // vsce packages it as readme.md.
        const readme = ["readme.md", "README.md"].map((name) => vscode.Uri.joinPath(extensionUri, name)).find((uri) => fs.existsSync(uri.fsPath));
        void vscode.commands.executeCommand("markdown.showPreview", readme);
      }
    });
    return;
  }
  const serverOptions: ServerOptions = { command: binary.resolved, args: ["lsp"] };
  const clientOptions: LanguageClientOptions = {
    documentSelector: LANGUAGES.flatMap((language) => [
      { scheme: "file", language },
      { scheme: "untitled", language },
    ]),
    initializationOptions: { glint: serverSettings() },
    outputChannel: output,
    traceOutputChannel: trace,
    stdioOptions: stdioOptions(output),
    middleware: { ...streams.middleware(), ...rewriteMiddleware(() => client) },
  };
  const starting = new LanguageClient("glint", "Glint", serverOptions, clientOptions);
  client = starting;
  starting.onNotification(PROGRESS, (progress) => streams.onProgress(progress));
  try {
    await starting.start();
    output.info(`started ${binary.resolved} lsp`);
    await refreshStatus();
  } catch (error) {
    status.setProblem("the server failed to start");
    output.error(`the server failed to start: ${String(error)}`);
    void vscode.window.showErrorMessage(`Glint: the server failed to start (${String(error)}). See the Glint output.`, "Show Logs").then(
      (choice) => choice && output.show(true),
    );
  }
}

async function stop(): Promise<void> {
  const running = client;
  client = undefined;
  loading?.done();
  if (running) {
    try {
      await running.stop(2000);
    } catch (error) {
      output.warn(`stopping the server: ${String(error)}`);
    }
  }
}

async function restart(): Promise<void> {
  await stop();
  status.setProblem(undefined);
  if (glintEnabled()) {
    await start();
  }
}

interface ServerStatus {
  engine?: EngineStatus;
  lastCompletion?: CompletionTimings | null;
}

async function requestStatus(): Promise<ServerStatus | undefined> {
  if (!client || client.state !== State.Running) {
    return undefined;
  }
  try {
    return await client.sendRequest<ServerStatus>("glint/status");
  } catch (error) {
    output.warn(`glint/status: ${String(error)}`);
    return undefined;
  }
}

async function refreshStatus(): Promise<ServerStatus | undefined> {
  const result = await requestStatus();
  if (!result) {
    return undefined;
  }
  status.setEngine(result.engine);
  status.setLastCompletion(result.lastCompletion);
  // While the model loads, is fetched or the engine connects, a notification says so with the
  // server's current step (a download's progress); look again shortly.
  if (result.engine?.state === "loading") {
    showLoading(result.engine.step);
    setTimeout(() => void refreshStatus(), 500);
  } else {
    loading?.done();
    if (result.engine?.state === "failed") {
      offerFix(result.engine.error ?? "the engine failed to start");
    }
  }
  return result;
}

let latencyTimer: ReturnType<typeof setTimeout> | undefined;

/** Reads the server's timings of the last completion, at most once per 200 ms of typing. */
async function refreshLatency(): Promise<void> {
  if (latencyTimer) {
    return;
  }
  latencyTimer = setTimeout(async () => {
    latencyTimer = undefined;
    const result = await requestStatus();
    status.setLastCompletion(result?.lastCompletion);
  }, 200);
}

/**
 * The notification while the engine starts: "Glint: SmolLM2 135M" with the server's step as its
 * message ("downloading 12.0 MB of 98.4 MB (12%)", "checking the download", "loading") and a
 * progress bar that follows a download's percentage.
 */
function showLoading(step: string | undefined): void {
  const config = vscode.workspace.getConfiguration("glint");
  const engine = config.get<string>("engine", "local").trim();
  // What is starting: the local engine's model by its readable name, or the remote engine.
  const what = engine === "local" ? displayModelName(config.get<string>("model", "").trim() || DEFAULT_MODEL) : engine;
  if (loading && loading.what !== what) {
    // Another model was chosen meanwhile: its own notification replaces this one.
    loading.done();
  }
  if (!loading) {
    let finish: () => void = () => undefined;
    const done = new Promise<void>((resolve) => (finish = resolve));
    let latest = step;
    let shown = "";
    let percent = 0;
    let progress: vscode.Progress<{ message?: string; increment?: number }> | undefined;
    const report = () => {
      const now = loadingStep(latest) ?? { message: "loading" };
      if (!progress || now.message === shown) {
        return;
      }
      shown = now.message;
      const increment = now.percent !== undefined && now.percent > percent ? now.percent - percent : undefined;
      percent = Math.max(percent, now.percent ?? 0);
      progress.report({ message: now.message, increment });
    };
    void vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Glint: ${what}` }, (p) => {
      progress = p;
      report();
      return done;
    });
    loading = {
      what,
      done: () => {
        loading = undefined;
        finish();
      },
      step: (s) => {
        latest = s;
        report();
      },
    };
  }
  loading.step(step);
}

let lastFixOffered: string | undefined;

/** A failed engine: say why once, and offer to fetch a catalog model that is not installed. */
function offerFix(error: string): void {
  if (lastFixOffered === error) {
    return;
  }
  lastFixOffered = error;
  const configured = vscode.workspace.getConfiguration("glint").get<string>("model", "").trim();
  const catalog = CATALOG.find((model) => model.name === configured) ?? (configured === "" ? CATALOG.find((model) => model.name === DEFAULT_MODEL) : undefined);
  const actions = catalog ? [`Fetch ${catalog.label}`, "Choose Model", "Show Logs"] : ["Choose Model", "Show Logs"];
  void vscode.window.showErrorMessage(`Glint: ${error}`, ...actions).then((choice) => {
    if (choice === "Show Logs") {
      output.show(true);
    } else if (choice === "Choose Model") {
      void selectModel();
    } else if (choice && catalog) {
      void fetchModel(catalog.name);
    }
  });
}

async function toggleGlint(): Promise<void> {
  await vscode.workspace.getConfiguration("glint").update("enable", !glintEnabled(), vscode.ConfigurationTarget.Global);
  void vscode.window.setStatusBarMessage(`Glint ${glintEnabled() ? "on" : "off"}`, 2000);
}

async function toggleAutoCompletions(): Promise<void> {
  const config = vscode.workspace.getConfiguration("glint");
  await config.update("enableAutoCompletions", !autoCompletionsEnabled(), vscode.ConfigurationTarget.Global);
  void vscode.window.setStatusBarMessage(`Glint: automatic completions ${autoCompletionsEnabled() ? "on" : "off"}`, 2000);
}

async function snooze(minutes?: number): Promise<void> {
  let chosen = minutes;
  if (chosen === undefined) {
    const picked = await vscode.window.showQuickPick(
      [5, 15, 60].map((m) => ({ label: `${m} minutes`, minutes: m })),
      { placeHolder: "Snooze automatic completions for" },
    );
    chosen = picked?.minutes;
  }
  if (chosen !== undefined && chosen > 0) {
    await snoozeUntil(Date.now() + chosen * 60_000);
  }
}

async function snoozeUntil(until: number | undefined): Promise<void> {
  await globalState.update(SNOOZE_KEY, until);
  if (snoozeTimer) {
    clearTimeout(snoozeTimer);
    snoozeTimer = undefined;
  }
  if (until !== undefined) {
    // Wake the status bar when the snooze ends; the provider reads the time itself.
    snoozeTimer = setTimeout(() => snoozeUntil(undefined), Math.max(0, until - Date.now()));
    await vscode.commands.executeCommand("editor.action.inlineSuggest.hide");
  }
  refreshSwitches();
}

/** Turns Glint off (or back on) for the active editor's language via `glint.languages`. */
async function toggleLanguage(): Promise<void> {
  const language = vscode.window.activeTextEditor?.document.languageId;
  if (!language) {
    void vscode.window.showInformationMessage("Glint: open a file to switch Glint for its language.");
    return;
  }
  const config = vscode.workspace.getConfiguration("glint");
  const languages = { ...config.get<Record<string, boolean>>("languages", {}) };
  if (languageEnabled(language)) {
    languages[language] = false;
  } else {
    delete languages[language];
  }
  await config.update("languages", languages, vscode.ConfigurationTarget.Global);
  void vscode.window.setStatusBarMessage(`Glint ${languageEnabled(language) ? "on" : "off"} for ${language}`, 2000);
}

async function selectModel(): Promise<void> {
  const config = vscode.workspace.getConfiguration("glint");
  const current = config.get<string>("model", "").trim();
  type Pick = vscode.QuickPickItem & { value?: string; browse?: boolean };
  const items: Pick[] = [
    ...CATALOG.map((model) => ({
      label: model.label,
      description: model.name + (model.name === current || (current === "" && model.name === DEFAULT_MODEL) ? " (current)" : ""),
      detail: model.detail,
      value: model.name,
    })),
    { label: "A GGUF file…", description: current && !CATALOG.some((m) => m.name === current) ? current : "", browse: true },
  ];
  const picked = await vscode.window.showQuickPick(items, { placeHolder: "Glint model", matchOnDescription: true });
  if (!picked) {
    return;
  }
  let value = picked.value;
  if (picked.browse) {
    const files = await vscode.window.showOpenDialog({ canSelectMany: false, filters: { "GGUF model": ["gguf"] } });
    value = files?.[0]?.fsPath;
  }
  if (value === undefined || value === current) {
    return;
  }
  lastFixOffered = undefined;
  await config.update("model", value, vscode.ConfigurationTarget.Global);
}

/**
 * Runs `glint model fetch NAME` as a task, so its own download progress shows in the terminal,
 * with a notification until it ends; then restarts the server so the model loads.
 */
async function fetchModel(name?: string): Promise<void> {
  const binary = resolveBinary();
  const model = name ?? (vscode.workspace.getConfiguration("glint").get<string>("model", "").trim() || DEFAULT_MODEL);
  const args = ["model", "fetch", model];
  const task = new vscode.Task(
    { type: "process", id: `glint-fetch-${model}` },
    vscode.TaskScope.Global,
    `fetch ${model}`,
    "Glint",
    new vscode.ProcessExecution(binary.resolved ?? binary.configured, args),
  );
  task.presentationOptions = { reveal: vscode.TaskRevealKind.Always, panel: vscode.TaskPanelKind.Dedicated };
  const execution = await vscode.tasks.executeTask(task);
  const exitCode = await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `Glint: downloading ${displayModelName(model) || model}…` },
    () =>
      new Promise<number | undefined>((resolve) => {
        const sub = vscode.tasks.onDidEndTaskProcess((event) => {
          if (event.execution === execution) {
            sub.dispose();
            resolve(event.exitCode);
          }
        });
      }),
  );
  if (exitCode === 0) {
    lastFixOffered = undefined;
    void vscode.window.setStatusBarMessage(`Glint: ${displayModelName(model) || model} is installed`, 3000);
    await restart();
  } else {
    void vscode.window.showErrorMessage(`Glint: \`glint model fetch ${model}\` failed (exit status ${exitCode ?? "unknown"}); see its terminal.`);
  }
}

async function switchEngine(): Promise<void> {
  const current = vscode.workspace.getConfiguration("glint").get<string>("engine", "local");
  const picked = await vscode.window.showQuickPick(
    [
      { label: "local", description: "in-process model (default)" },
      { label: "Remote engine…", description: "ws://, wss:// or http(s):// URL" },
    ],
    { placeHolder: `Engine (now: ${current})` },
  );
  if (!picked) {
    return;
  }
  let engine = picked.label;
  if (engine !== "local") {
    const url = await vscode.window.showInputBox({
      prompt: "Engine URL: ws://host:port (glint engine serve) or an OpenAI-compatible http(s):// server",
      value: current === "local" ? "ws://127.0.0.1:7878" : current,
      validateInput: (v) => (/^(wss?|https?):\/\/./.test(v) ? undefined : "Use ws://, wss://, http:// or https://"),
    });
    if (!url) {
      return;
    }
    engine = url;
  }
  await vscode.workspace.getConfiguration("glint").update("engine", engine, vscode.ConfigurationTarget.Global);
}

async function showStatus(): Promise<void> {
  const result = await refreshStatus();
  output.info(`glint/status: ${JSON.stringify(result ?? null, null, 2)}`);
  output.show(true);
}

async function statusMenu(): Promise<void> {
  const enabled = glintEnabled();
  const auto = autoCompletionsEnabled();
  const language = vscode.window.activeTextEditor?.document.languageId;
  const items: (vscode.QuickPickItem & { run: () => unknown })[] = [];
  items.push({ label: enabled ? "$(circle-slash) Turn Glint off" : "$(check) Turn Glint on", run: toggleGlint });
  if (enabled) {
    items.push({ label: auto ? "$(circle-outline) Disable automatic completions" : "$(sparkle) Enable automatic completions", run: toggleAutoCompletions });
    if (snoozed()) {
      items.push({ label: "$(bell) Stop snoozing", run: () => snoozeUntil(undefined) });
    } else {
      for (const minutes of [5, 15, 60]) {
        items.push({ label: `$(bell-slash) Snooze for ${minutes} minutes`, run: () => snooze(minutes) });
      }
    }
    if (language) {
      const on = languageEnabled(language);
      items.push({ label: on ? `$(circle-slash) Disable for ${language}` : `$(check) Enable for ${language}`, run: toggleLanguage });
    }
    items.push({ label: "$(symbol-misc) Choose model…", run: selectModel }, { label: "$(server) Switch engine…", run: switchEngine });
  }
  items.push(
    { label: "$(output) Show logs", run: () => output.show(true) },
    { label: "$(info) Show server status", run: showStatus },
    { label: "$(debug-restart) Restart server", run: restart },
  );
  const picked = await vscode.window.showQuickPick(items, { placeHolder: "Glint" });
  await picked?.run();
}
