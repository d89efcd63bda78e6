// Next-edit predictions (`glint/nextEdit`, docs/lsp-extensions.md): after the user changes the
// active document, the server may predict the edits that follow (the same rename at a local's
// other uses, the same change on sibling lines). The nearest one is shown where it would land: the
// text it replaces struck through, the proposed text after it (` → log.info(b)`) and a mark in the
// overview ruler. `Tab` jumps to it, `Tab` again applies it, and the next one is asked for and
// shown; `Escape` dismisses it. Every answer is for one document version: an answer for another
// version is dropped, and a shown edit is never applied to a document that changed since.
import * as vscode from "vscode";
import type { LanguageClient } from "vscode-languageclient/node";

export const NEXT_EDIT_METHOD = "glint/nextEdit";
export const VISIBLE_CONTEXT = "glint.nextEditVisible";
/** How long after a change of the document the extension asks. */
export const DEBOUNCE_MS = 75;

interface WirePosition {
  line: number;
  character: number;
}

interface WireEdit {
  range: { start: WirePosition; end: WirePosition };
  newText: string;
}

/** The server's answer: edits nearest to the asked position first, all valid on `version`. */
export interface NextEditResult {
  edits?: WireEdit[];
  source?: string | null;
  version?: number;
}

export interface NextEditHost {
  /** The running language client, or undefined while there is none. */
  client(): LanguageClient | undefined;
  /** Whether Glint may act in this document now (on, not snoozed, not off for its language). */
  allowed(document: vscode.TextDocument): boolean;
  /** One line in the extension's log, at debug level. */
  log(message: string): void;
}

/** The proposed text as the after-text shows it: its first line, shortened, `…` for the rest. */
export function previewText(newText: string, max = 60): string {
  if (newText === "") {
    return "(delete)";
  }
  const lines = newText.split("\n");
  let first = lines[0].replace(/\t/g, "  ");
  if (first.length > max) {
    first = `${first.slice(0, max - 1)}…`;
  } else if (lines.length > 1) {
    first += " …";
  }
  return first;
}

/** The nearest edit of an answer (the server orders them by distance), or undefined. */
export function nearestEdit<E>(edits: readonly E[] | undefined): E | undefined {
  return edits?.[0];
}

interface Shown {
  editor: vscode.TextEditor;
  document: vscode.TextDocument;
  /** The document version the prediction was made for. */
  version: number;
  range: vscode.Range;
  /** The text it replaces, as it was when shown. */
  oldText: string;
  newText: string;
  source: string;
  /** How many predicted edits the answer held (this one included). */
  count: number;
  /** Where the cursor was when it was asked for. */
  askedAt: vscode.Position;
  /** The cursor is on it (after the first Tab): the next Tab applies it. */
  jumped: boolean;
}

export class NextEdits implements vscode.Disposable {
  private readonly replaced = vscode.window.createTextEditorDecorationType({
    textDecoration: "line-through",
    backgroundColor: new vscode.ThemeColor("diffEditor.removedTextBackground"),
  });
  private readonly proposed = vscode.window.createTextEditorDecorationType({
    after: {
      color: new vscode.ThemeColor("editorGhostText.foreground"),
      backgroundColor: new vscode.ThemeColor("diffEditor.insertedTextBackground"),
      fontStyle: "italic",
    },
    overviewRulerColor: new vscode.ThemeColor("editorOverviewRuler.modifiedForeground"),
    overviewRulerLane: vscode.OverviewRulerLane.Center,
  });
  private readonly disposables: vscode.Disposable[] = [this.replaced, this.proposed];
  private shown: Shown | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** Increases with every request: only the latest one's answer is used. */
  private requests = 0;
  /** The document version our own apply produces (its change asks again instead of clearing). */
  private applying: { document: vscode.TextDocument; version: number } | undefined;
  /** A prediction dismissed with Escape stays hidden until the document changes. */
  private dismissed: { document: vscode.TextDocument; version: number } | undefined;

  constructor(private readonly host: NextEditHost) {
    this.disposables.push(
      vscode.commands.registerCommand("glint.nextEdit.accept", async (args?: { fallback?: string }) => {
        // From the Tab key: when the edit went away meanwhile (the context key lags), Tab does
        // what it does without one.
        if (!this.shown && typeof args?.fallback === "string") {
          await vscode.commands.executeCommand(args.fallback);
          return;
        }
        await this.accept();
      }),
      vscode.commands.registerCommand("glint.nextEdit.dismiss", () => this.dismiss()),
      vscode.workspace.onDidChangeTextDocument((event) => this.onChange(event)),
      vscode.window.onDidChangeActiveTextEditor(() => this.clear("the editor changed")),
      vscode.window.onDidChangeTextEditorSelection((event) => this.onSelection(event)),
      vscode.workspace.onDidChangeConfiguration((event) => {
        if (event.affectsConfiguration("glint") && this.shown && !this.enabledFor(this.shown.document)) {
          this.clear("turned off");
        }
      }),
      vscode.workspace.onDidCloseTextDocument((document) => {
        if (this.shown?.document === document) {
          this.clear("the document closed");
        }
      }),
      { dispose: () => this.timer && clearTimeout(this.timer) },
    );
    void vscode.commands.executeCommand("setContext", VISIBLE_CONTEXT, false);
  }

  dispose(): void {
    this.clear(undefined);
    for (const disposable of this.disposables) {
      disposable.dispose();
    }
  }

  private enabledFor(document: vscode.TextDocument): boolean {
    return vscode.workspace.getConfiguration("glint").get<boolean>("nextEdit.enabled", true) && this.host.allowed(document);
  }

  private onChange(event: vscode.TextDocumentChangeEvent): void {
    if (event.contentChanges.length === 0) {
      return;
    }
    const editor = vscode.window.activeTextEditor;
    const ours = this.applying?.document === event.document && this.applying.version === event.document.version;
    if (this.applying?.document === event.document) {
      this.applying = undefined;
    }
    if (this.shown?.document === event.document) {
      // Whatever changed, the shown edit was made for the version before (not logged: every
      // keystroke of a rename would say so).
      this.clear(undefined);
    }
    if (editor?.document === event.document) {
      // After the client library has sent this change to the server.
      this.schedule(editor, ours ? 10 : DEBOUNCE_MS);
    }
  }

  private onSelection(event: vscode.TextEditorSelectionChangeEvent): void {
    const shown = this.shown;
    // Typing moves the cursor too, but its document change already refreshed the prediction; and
    // the cursor our own jump puts on the edit is near it.
    if (!shown || event.textEditor !== shown.editor || event.kind === undefined) {
      return;
    }
    const line = event.selections[0]?.active.line ?? shown.askedAt.line;
    const near = (line >= shown.range.start.line && line <= shown.range.end.line) || line === shown.askedAt.line;
    if (!near) {
      // The user went elsewhere: ask again from there (the nearest edit may be another one).
      this.clear("the cursor moved away");
      this.schedule(shown.editor, DEBOUNCE_MS);
    }
  }

  private schedule(editor: vscode.TextEditor, delay: number): void {
    if (this.timer) {
      clearTimeout(this.timer);
    }
    this.requests++;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.request(editor);
    }, delay);
  }

  private async request(editor: vscode.TextEditor): Promise<void> {
    const document = editor.document;
    const client = this.host.client();
    if (!client || vscode.window.activeTextEditor !== editor || !this.enabledFor(document)) {
      return;
    }
    const version = document.version;
    if (this.dismissed?.document === document && this.dismissed.version === version) {
      return;
    }
    const id = ++this.requests;
    const cursor = editor.selection.active;
    let result: NextEditResult | null;
    try {
      result = await client.sendRequest<NextEditResult | null>(NEXT_EDIT_METHOD, {
        textDocument: { uri: client.code2ProtocolConverter.asUri(document.uri), version },
        position: { line: cursor.line, character: cursor.character },
      });
    } catch (error) {
      this.host.log(`next edit: ${NEXT_EDIT_METHOD} failed: ${String(error)}`);
      return;
    }
    if (id !== this.requests || vscode.window.activeTextEditor !== editor || document.version !== version) {
      return; // superseded: the user typed or asked again meanwhile
    }
    const edit = nearestEdit(result?.edits);
    if (!edit || result?.version !== version) {
      this.clear(undefined);
      return;
    }
    const range = client.protocol2CodeConverter.asRange(edit.range);
    this.show({
      editor,
      document,
      version,
      range,
      oldText: document.getText(range),
      newText: edit.newText,
      source: result.source ?? "unknown",
      count: result.edits?.length ?? 1,
      askedAt: cursor,
      jumped: range.contains(cursor),
    });
  }

  private show(next: Shown): void {
    const same =
      this.shown?.document === next.document &&
      this.shown.version === next.version &&
      this.shown.range.isEqual(next.range) &&
      this.shown.newText === next.newText;
    this.shown = next;
    next.editor.setDecorations(this.replaced, next.range.isEmpty ? [] : [next.range]);
    next.editor.setDecorations(this.proposed, [
      {
        range: new vscode.Range(next.range.end, next.range.end),
        renderOptions: { after: { contentText: ` → ${previewText(next.newText)}` } },
        hoverMessage: new vscode.MarkdownString().appendText("Glint: predicted edit. Tab: go to it, then apply it; Escape: dismiss."),
      },
    ]);
    void vscode.commands.executeCommand("setContext", VISIBLE_CONTEXT, true);
    if (!same) {
      this.host.log(`next edit shown: ${next.source}, ${describe(next)}${next.count > 1 ? ` (1 of ${next.count})` : ""}`);
    }
  }

  /** Hides the shown edit; `why` is logged when it is worth a line. */
  private clear(why: string | undefined): void {
    const shown = this.shown;
    if (!shown) {
      return;
    }
    this.shown = undefined;
    shown.editor.setDecorations(this.replaced, []);
    shown.editor.setDecorations(this.proposed, []);
    void vscode.commands.executeCommand("setContext", VISIBLE_CONTEXT, false);
    if (why) {
      this.host.log(`next edit cleared (${why}): ${describe(shown)}`);
    }
  }

  /** Tab: jumps to the shown edit, or applies it when the cursor is already on it. */
  async accept(): Promise<boolean> {
    const shown = this.shown;
    const editor = vscode.window.activeTextEditor;
    if (!shown || !editor || editor !== shown.editor) {
      this.clear(undefined);
      return false;
    }
    if (shown.document.version !== shown.version) {
      // Stale: never applied; ask again for the current text.
      this.clear("stale");
      this.schedule(editor, 0);
      return false;
    }
    if (!shown.jumped) {
      shown.jumped = true;
      editor.selection = new vscode.Selection(shown.range.start, shown.range.start);
      editor.revealRange(shown.range, vscode.TextEditorRevealType.InCenterIfOutsideViewport);
      this.host.log(`next edit: jumped to ${describe(shown)}`);
      return true;
    }
    this.applying = { document: shown.document, version: shown.version + 1 };
    const applied = await editor.edit((builder) => builder.replace(shown.range, shown.newText), { undoStopBefore: true, undoStopAfter: true });
    if (!applied || shown.document.version !== shown.version + 1) {
      this.applying = undefined;
      this.host.log(`next edit not applied (the document changed): ${describe(shown)}`);
      this.clear(undefined);
      return false;
    }
    const lines = shown.newText.split("\n");
    const end =
      lines.length === 1
        ? shown.range.start.translate(0, lines[0].length)
        : new vscode.Position(shown.range.start.line + lines.length - 1, lines[lines.length - 1].length);
    editor.selection = new vscode.Selection(end, end);
    this.host.log(`next edit applied: ${shown.source}, ${describe(shown)}`);
    // Its document change asks for the rest (see onChange).
    return true;
  }

  /** Escape: hides the shown edit until the document changes. */
  dismiss(): void {
    const shown = this.shown;
    if (!shown) {
      return;
    }
    this.dismissed = { document: shown.document, version: shown.version };
    this.host.log(`next edit dismissed: ${describe(shown)}`);
    this.clear(undefined);
  }
}

function describe(shown: Shown): string {
  return `line ${shown.range.start.line + 1}: ${JSON.stringify(shown.oldText)} → ${JSON.stringify(shown.newText)} (version ${shown.version})`;
}
