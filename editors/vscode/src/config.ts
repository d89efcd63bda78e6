// Reading the extension's settings: what goes to the server (the README's Configuration schema)
// and what stays in the client (binary path, on/off and automatic-completion switches).
import * as fs from "node:fs";
import * as path from "node:path";
import * as vscode from "vscode";

/** Languages Glint parses with tree-sitter; the extension attaches to these. */
export const LANGUAGES = [
  "rust",
  "python",
  "javascript",
  "javascriptreact",
  "typescript",
  "typescriptreact",
  "go",
  "c",
  "cpp",
  "java",
];

/** Settings forwarded to the server, with the server's key names. */
const SERVER_KEYS = [
  "engine",
  "model",
  "contextTokens",
  "maxTokens",
  "debounceMs",
  "languages",
  "logLevel",
  "completionItems",
  "nextEditModel",
  "streaming",
  "threads",
] as const;

/**
 * The server's settings object. Empty strings and nulls become `null`, which the server reads as
 * "back to the default", so clearing a setting in the UI really clears it.
 */
export function serverSettings(): Record<string, unknown> {
  const config = vscode.workspace.getConfiguration("glint");
  const settings: Record<string, unknown> = {};
  for (const key of SERVER_KEYS) {
    const value = config.get<unknown>(key);
    settings[key] = value === undefined || value === "" ? null : value;
  }
  // Without streaming the extension cannot grow an early answer (docs/lsp-extensions.md), so it
  // asks for answers at the model's end; with streaming, the server's default applies.
  settings.earlyAnswerMs = settings.streaming === false ? 0 : null;
  return settings;
}

/** The master switch: off stops the server and shows nothing. */
export function glintEnabled(): boolean {
  return vscode.workspace.getConfiguration("glint").get<boolean>("enable", true);
}

/** The `glint.languages` switch for one language id; languages not listed are on. */
export function languageEnabled(languageId: string): boolean {
  const languages = vscode.workspace.getConfiguration("glint").get<Record<string, boolean>>("languages", {});
  return languages?.[languageId] !== false;
}

export function autoCompletionsEnabled(): boolean {
  return vscode.workspace.getConfiguration("glint").get<boolean>("enableAutoCompletions", true);
}

/**
 * Finds the `glint` binary from the `glint.path` setting: an explicit path must exist, a bare
 * name is looked up on PATH. Returns undefined when it cannot be found.
 */
export function resolveBinary(): { configured: string; resolved?: string } {
  const configured = vscode.workspace.getConfiguration("glint").get<string>("path", "glint").trim() || "glint";
  const expanded = configured.startsWith("~/") ? path.join(process.env.HOME ?? "", configured.slice(2)) : configured;
  if (expanded.includes("/") || expanded.includes("\\")) {
    return { configured, resolved: isExecutable(expanded) ? expanded : undefined };
  }
  const exts = process.platform === "win32" ? ["", ".exe", ".cmd"] : [""];
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    for (const ext of exts) {
      const candidate = path.join(dir, expanded + ext);
      if (dir && isExecutable(candidate)) {
        return { configured, resolved: candidate };
      }
    }
  }
  return { configured };
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}
