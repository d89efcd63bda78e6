// Rewrites by an instruction: the server's `glint.rewrite` command takes {uri, range, version?,
// instruction?}, computes the edit and applies it with `workspace/applyEdit`. The code action
// "Glint: Rewrite the selection…" carries the command without an instruction, so the middleware
// asks for one before the command reaches the server; the palette command does the same for the
// selection.
import * as vscode from "vscode";
import type { LanguageClient, MessageSignature, Middleware } from "vscode-languageclient/node";

export const REWRITE_COMMAND = "glint.rewrite";

/** Asks for the instruction; undefined when the user cancels or leaves it empty. */
export async function askInstruction(): Promise<string | undefined> {
  const instruction = await vscode.window.showInputBox({
    title: "Glint: Rewrite the selection",
    prompt: "Instruction, e.g. “use iterators” or “handle the error case”",
    ignoreFocusOut: true,
  });
  return instruction?.trim() ? instruction : undefined;
}

function isRewriteArgument(value: unknown): value is { instruction?: unknown } {
  return typeof value === "object" && value !== null && "uri" in value && "range" in value;
}

// Why the server gave up on an action after its retries; it has already shown this to the user.
const GAVE_UP = "Glint could not produce a valid edit";
// LSP's RequestFailed, which the server answers such a resolve with.
const REQUEST_FAILED = -32803;

function gaveUp(error: unknown): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  return code === REQUEST_FAILED && typeof message === "string" && message.startsWith(GAVE_UP);
}

/**
 * Client middleware: asks for the rewrite instruction; never resolves the rewrite action; and when
 * the server could not produce a valid edit (it says so in a message of its own), the action just
 * does nothing instead of a second, raw "Request codeAction/resolve failed" error. `client` gives
 * the running client (undefined: every resolve goes the default way).
 */
export function rewriteMiddleware(client: () => LanguageClient | undefined = () => undefined): Middleware {
  return {
    executeCommand: async (command, args, next) => {
      const [first, ...rest] = args;
      if (command !== REWRITE_COMMAND || !isRewriteArgument(first) || typeof first.instruction === "string") {
        return next(command, args);
      }
      const instruction = await askInstruction();
      if (instruction === undefined) {
        return undefined;
      }
      return next(command, [{ ...first, instruction }, ...rest]);
    },
    resolveCodeAction: async (item, token, next) => {
      // The rewrite action is complete as listed (a command, no edit): there is nothing to resolve.
      if (item.command?.command === REWRITE_COMMAND && item.edit === undefined) {
        return item;
      }
      const running = client();
      if (!running) {
        return next(item, token);
      }
      try {
        const result = await running.sendRequest(RESOLVE.method, running.code2ProtocolConverter.asCodeActionSync(item), token);
        return token.isCancellationRequested ? item : running.protocol2CodeConverter.asCodeAction(result as never, token);
      } catch (error) {
        return gaveUp(error) ? item : running.handleFailedRequest(RESOLVE, token, error, item);
      }
    },
  };
}

// codeAction/resolve as the client's error handling names it (only its method is read). Spelled out
// rather than imported, so this module loads without the client library (the unit tests).
const RESOLVE = { method: "codeAction/resolve", numberOfParams: 1 } as unknown as MessageSignature;

/** The palette command: rewrites the selection of the active editor by an instruction. */
export async function rewriteSelection(client: LanguageClient | undefined): Promise<void> {
  const editor = vscode.window.activeTextEditor;
  if (!editor || !client || editor.selection.isEmpty) {
    void vscode.window.showInformationMessage("Glint: select the code to rewrite first.");
    return;
  }
  const instruction = await askInstruction();
  if (!instruction) {
    return;
  }
  const converter = client.code2ProtocolConverter;
  try {
    await client.sendRequest("workspace/executeCommand", {
      command: REWRITE_COMMAND,
      arguments: [
        {
          uri: converter.asUri(editor.document.uri),
          version: editor.document.version,
          range: converter.asRange(editor.selection),
          instruction,
        },
      ],
    });
  } catch (error) {
    void vscode.window.showWarningMessage(`Glint: rewrite failed: ${String(error)}`);
  }
}
