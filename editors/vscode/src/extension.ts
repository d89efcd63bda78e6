// The Glint extension: starts `glint lsp`, forwards settings, shows a status bar item and offers
// commands. Inline completions come from vscode-languageclient's built-in
// `textDocument/inlineCompletion` support, routed through the streaming cache in streaming.ts.
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

import { LANGUAGES, autoCompletionsEnabled, resolveBinary, serverSettings } from "./config";
import { rewriteMiddleware, rewriteSelection } from "./rewrite";
import { type EngineStatus, StatusBar } from "./status";
import { InlineStreams, type Progress } from "./streaming";

const PROGRESS = new NotificationType<Progress>("glint/inlineCompletionProgress");

let client: LanguageClient | undefined;
let output: vscode.LogOutputChannel;
let status: StatusBar;
let streams: InlineStreams;
let extensionUri: vscode.Uri;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  extensionUri = context.extensionUri;
  output = vscode.window.createOutputChannel("Glint", { log: true });
  status = new StatusBar();
  status.setAutoEnabled(autoCompletionsEnabled());
  streams = new InlineStreams({ autoEnabled: autoCompletionsEnabled, begin: () => status.begin() });
  context.subscriptions.push(output, status, streams);

  const command = (id: string, run: (...args: unknown[]) => unknown) =>
    context.subscriptions.push(vscode.commands.registerCommand(id, run));
  command("glint.triggerInlineCompletion", () => vscode.commands.executeCommand("editor.action.inlineSuggest.trigger"));
  command("glint.toggleAutoCompletions", toggleAutoCompletions);
  command("glint.switchEngine", switchEngine);
  command("glint.fetchModel", fetchModel);
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
      status.setAutoEnabled(autoCompletionsEnabled());
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
  );

  await start();
}

export async function deactivate(): Promise<void> {
  await stop();
}

async function start(): Promise<void> {
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
    middleware: { ...streams.middleware(), ...rewriteMiddleware() },
  };
  client = new LanguageClient("glint", "Glint", serverOptions, clientOptions);
  client.onNotification(PROGRESS, (progress) => streams.onProgress(progress));
  try {
    await client.start();
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
  await start();
}

interface ServerStatus {
  engine?: EngineStatus;
  lastCompletion?: { totalMs?: number };
}

async function refreshStatus(): Promise<ServerStatus | undefined> {
  if (!client || client.state !== State.Running) {
    return undefined;
  }
  try {
    const result = await client.sendRequest<ServerStatus>("glint/status");
    status.setEngine(result?.engine);
    // The model may still be loading; look again shortly.
    if (result?.engine?.state === "loading") {
      setTimeout(() => void refreshStatus(), 1000);
    }
    return result;
  } catch (error) {
    output.warn(`glint/status: ${String(error)}`);
    return undefined;
  }
}

async function toggleAutoCompletions(): Promise<void> {
  const config = vscode.workspace.getConfiguration("glint");
  await config.update("enableAutoCompletions", !autoCompletionsEnabled(), vscode.ConfigurationTarget.Global);
  void vscode.window.setStatusBarMessage(`Glint: automatic completions ${autoCompletionsEnabled() ? "on" : "off"}`, 2000);
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

function fetchModel(): void {
  const binary = resolveBinary();
  const terminal = vscode.window.createTerminal({ name: "Glint: fetch model" });
  terminal.show();
  // `glint model fetch` prints its own download progress; it is idempotent and verifies sha256.
  terminal.sendText(`${quote(binary.resolved ?? binary.configured)} model fetch`);
}

async function showStatus(): Promise<void> {
  const result = await refreshStatus();
  output.info(`glint/status: ${JSON.stringify(result ?? null, null, 2)}`);
  output.show(true);
}

async function statusMenu(): Promise<void> {
  const auto = autoCompletionsEnabled();
  const items: (vscode.QuickPickItem & { run: () => unknown })[] = [
    { label: auto ? "$(circle-slash) Disable automatic completions" : "$(check) Enable automatic completions", run: toggleAutoCompletions },
    { label: "$(server) Switch engine…", run: switchEngine },
    { label: "$(output) Show logs", run: () => output.show(true) },
    { label: "$(info) Show server status", run: showStatus },
    { label: "$(debug-restart) Restart server", run: restart },
    { label: "$(cloud-download) Fetch the default model", run: fetchModel },
  ];
  const picked = await vscode.window.showQuickPick(items, { placeHolder: "Glint" });
  await picked?.run();
}

function quote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, "'\\''")}'`;
}
