// Streamed ghost text that converges to the server's final answer.
//
// VS Code's inline completion API cannot update a suggestion that is already shown: a provider
// answers once per call, VS Code reuses a running call for the same position and document
// version, and (VS Code 1.139, `InlineCompletionsSource.fetch`) an explicit trigger both keeps the
// suggestion on screen as the *first* item of the new result ("preserve current completion") and
// makes every later trigger at the same version and position a no-op (an explicit result
// "satisfies" any request). So a partial answered once and followed by a plain
// `editor.action.inlineSuggest.trigger` stays on screen for good, and Tab inserts it: the bug
// users saw. Two rules follow:
//
// 1. Show little that can go stale. A waiting provider call is answered with the final answer, or
//    earlier with the complete lines of the streamed text (never a half-written line), so a
//    one-line answer is shown once, already final.
// 2. Replace what is shown by hiding it first. A newer text for a shown request is brought on
//    screen with `editor.action.inlineSuggest.hide` (which clears VS Code's state, so nothing is
//    preserved and nothing "satisfies") and then `editor.action.inlineSuggest.trigger`; the call
//    that follows is answered from this cache without a new server request, while the one server
//    request keeps running with its own cancellation token. A final answer that is empty hides
//    the partial it replaces.
// 3. Confirm a final answer once: VS Code may drop an answer it asked for (see scheduleConfirm),
//    so shortly after a waiting call got the final text, VS Code is asked again, from the cache.
//
// An automatic request may be answered early, with the text the model has written so far, while
// the model goes on (docs/lsp-extensions.md). Nothing in the response says so; the progress that
// follows it for the same document version and position does. After the response, each progress
// text that extends the answer replaces it (rule 2, so the ghost text grows), and the
// progress marked `final` ends the stream: its text is the answer, even when it is shorter than
// what was shown or empty. A response answered at the model's end simply has no progress after it.
import * as vscode from "vscode";
import type { Middleware } from "vscode-languageclient/node";

type ProvideInlineCompletionItemsSignature = NonNullable<Middleware["provideInlineCompletionItems"]> extends (
  ...args: infer A
) => unknown
  ? A[4]
  : never;

/** Params of `glint/inlineCompletionProgress` (docs/lsp-extensions.md). */
export interface Progress {
  uri: string;
  version: number;
  position: { line: number; character: number };
  text: string;
  /** The last progress of an early-answered request: `text` is its final answer. */
  final?: boolean;
}

type Answer = vscode.InlineCompletionItem[] | vscode.InlineCompletionList | null | undefined;

/** One server request for one document version and cursor position. */
interface Stream {
  uri: string;
  version: number;
  position: vscode.Position;
  /** The complete lines of the latest text streamed before the response, when there are any. */
  lines?: string;
  /** The text VS Code was last given for this request (undefined: nothing yet). */
  shown?: string;
  /** The server responded; from then on `answer` is the newest answer. */
  answered: boolean;
  /** Nothing newer will come: a final progress, or a response with nothing in it. */
  done: boolean;
  /** The response, then each newer text streamed after it, then the final text. */
  answer: Answer;
  /** Provider calls waiting for the next text (complete lines or final). */
  waiters: ((answer: Answer) => void)[];
  cancel: vscode.CancellationTokenSource;
}

export interface StreamingHooks {
  /** Whether VS Code may ask for this document now (off, snoozed, language, automatic). */
  allowed(document: vscode.TextDocument, automatic: boolean): boolean;
  /** Called when a server request starts; the returned function is called when it ends. */
  begin(): () => void;
  /** Called when an early-answered request's final text arrives (its numbers are recorded then). */
  settled?(): void;
  /** A debug line about what the cache did, for the output channel at Debug level. */
  log?(message: string): void;
}

/** How long a replacement waits for more text before it re-triggers VS Code. */
export const RETRIGGER_MS = 30;
/** How long after a final answer VS Code is asked once more, in case it dropped the answer. */
export const CONFIRM_MS = 100;

export class InlineStreams implements vscode.Disposable {
  private readonly streams = new Map<string, Stream>();
  private triggerTimer?: ReturnType<typeof setTimeout>;

  constructor(private readonly hooks: StreamingHooks) {}

  /** The client middleware that routes inline completion requests through the stream cache. */
  middleware(): Middleware {
    return {
      provideInlineCompletionItems: (document, position, context, token, next) =>
        this.provide(document, position, context, token, next),
    };
  }

  /** Handles one `glint/inlineCompletionProgress` notification. */
  onProgress(progress: Progress): void {
    const stream = this.streams.get(progress.uri);
    if (
      !stream ||
      stream.done ||
      stream.version !== progress.version ||
      stream.position.line !== progress.position.line ||
      stream.position.character !== progress.position.character
    ) {
      return;
    }
    if (progress.final) {
      // The final text wins over everything, even over a response that has not been read yet.
      stream.done = true;
      if (progress.text !== (firstText(stream.answer) ?? "")) {
        stream.answer = progress.text === "" ? null : item(stream, progress.text);
      }
      this.hooks.log?.(`final progress at ${placeOf(stream)}: ${JSON.stringify(progress.text)}, shown ${JSON.stringify(stream.shown ?? null)}`);
      this.hooks.settled?.();
      this.deliver(stream);
      return;
    }
    if (stream.answered) {
      // The model goes on after an early answer: the ghost text grows with it. A text that does
      // not extend the answer is a notification sent before the response but written after it
      // (the server's LSP library does not keep their order), so it is older than the answer.
      const answer = firstText(stream.answer) ?? "";
      if (progress.text.length <= answer.length || !progress.text.startsWith(answer)) {
        return;
      }
      stream.answer = item(stream, progress.text);
      this.deliver(stream);
      return;
    }
    const lines = completeLines(progress.text);
    if (lines === undefined || lines === stream.lines) {
      return;
    }
    stream.lines = lines;
    if (stream.waiters.length > 0) {
      this.answerWaiters(stream, item(stream, lines));
    } else if (stream.shown !== undefined && stream.shown !== lines) {
      this.scheduleReplace(stream);
    }
  }

  forget(uri: string): void {
    const stream = this.streams.get(uri);
    stream?.cancel.cancel();
    this.streams.delete(uri);
  }

  dispose(): void {
    for (const uri of [...this.streams.keys()]) {
      this.forget(uri);
    }
    if (this.triggerTimer) {
      clearTimeout(this.triggerTimer);
    }
  }

  private async provide(
    document: vscode.TextDocument,
    position: vscode.Position,
    context: vscode.InlineCompletionContext,
    token: vscode.CancellationToken,
    next: ProvideInlineCompletionItemsSignature,
  ): Promise<Answer> {
    if (!this.hooks.allowed(document, context.triggerKind === vscode.InlineCompletionTriggerKind.Automatic)) {
      return null;
    }
    const uri = document.uri.toString();
    const where = `v${document.version} ${position.line}:${position.character}`;
    this.hooks.log?.(`inline call (${context.triggerKind === vscode.InlineCompletionTriggerKind.Automatic ? "automatic" : "invoked"}) at ${where}`);
    if (context.selectedCompletionInfo) {
      // Extending a selected suggest-widget item is a different question; do not mix it into the cache.
      const finish = this.hooks.begin();
      try {
        return await next(document, position, context, token);
      } finally {
        finish();
      }
    }
    const existing = this.streams.get(uri);
    if (existing && existing.version === document.version && existing.position.isEqual(position)) {
      const newest = newestText(existing);
      if (newest === undefined) {
        return this.wait(existing, token);
      }
      if (!existing.answered && !existing.done && newest === existing.shown) {
        return this.wait(existing, token);
      }
      const answer = existing.answered || existing.done ? existing.answer : item(existing, newest);
      if (
        context.triggerKind === vscode.InlineCompletionTriggerKind.Invoke &&
        existing.shown !== undefined &&
        existing.shown !== "" &&
        existing.shown !== newest
      ) {
        // An explicit trigger keeps the suggestion on screen first in its result, so this call
        // cannot replace it: the old text stays until a hide clears it.
        this.hooks.log?.(`explicit call at ${where}: ${JSON.stringify(existing.shown)} stays first; replacing it`);
        this.scheduleReplace(existing);
        return answer;
      }
      existing.shown = newest;
      this.hooks.log?.(`answered from the cache at ${where}: ${existing.done ? "final" : existing.answered ? "answer" : "lines"} ${JSON.stringify(newest)}`);
      return answer;
    }

    existing?.cancel.cancel();
    const cancel = new vscode.CancellationTokenSource();
    const finish = this.hooks.begin();
    const stream: Stream = {
      uri,
      version: document.version,
      position,
      answered: false,
      done: false,
      answer: undefined,
      waiters: [],
      cancel,
    };
    this.streams.set(uri, stream);
    void Promise.resolve(next(document, position, context, cancel.token)).then(
      (answer) => this.settle(stream, answer, finish),
      () => this.settle(stream, null, finish),
    );
    return this.wait(stream, token);
  }

  /**
   * The server answered: waiting calls get the answer, and a stale text on screen is replaced. The
   * answer may be an early one that progress extends later; a final progress that came first wins.
   */
  private settle(stream: Stream, answer: Answer, finish: () => void): void {
    stream.answered = true;
    finish();
    if (!stream.done) {
      stream.answer = answer;
      stream.done = (firstText(answer) ?? "") === "";
    }
    this.hooks.log?.(
      `answer at ${placeOf(stream)}: ${JSON.stringify(firstText(answer) ?? "")}${stream.done ? "" : " (more may follow)"}, ` +
        `${stream.waiters.length} waiting, shown ${JSON.stringify(stream.shown ?? null)}`,
    );
    this.deliver(stream);
  }

  /** Brings the stream's answer (after the response) to the waiting calls, or on screen. */
  private deliver(stream: Stream): void {
    const text = firstText(stream.answer) ?? "";
    if (stream.waiters.length > 0) {
      this.answerWaiters(stream, stream.answer);
      if (text !== "") {
        this.scheduleConfirm(stream);
      }
      return;
    }
    if (this.streams.get(stream.uri) !== stream || text === (stream.shown ?? "")) {
      return;
    }
    // Either a text is on screen and must become the newer one (or vanish when the final is
    // empty), or VS Code gave up on its call before any text came and should now show the answer.
    if (text !== "" || stream.shown !== undefined) {
      this.scheduleReplace(stream);
    }
  }

  /** Waits for the stream's next text unless VS Code gives up on this call first. */
  private wait(stream: Stream, token: vscode.CancellationToken): Promise<Answer> {
    return new Promise<Answer>((resolve) => {
      const waiter = (answer: Answer) => {
        sub.dispose();
        resolve(answer);
      };
      const sub = token.onCancellationRequested(() => {
        this.hooks.log?.(`VS Code gave up its call at v${stream.version} ${stream.position.line}:${stream.position.character}`);
        stream.waiters = stream.waiters.filter((w) => w !== waiter);
        sub.dispose();
        resolve(undefined);
      });
      stream.waiters.push(waiter);
    });
  }

  private answerWaiters(stream: Stream, answer: Answer): void {
    const waiters = stream.waiters;
    stream.waiters = [];
    stream.shown = firstText(answer) ?? "";
    for (const waiter of waiters) {
      waiter(answer);
    }
  }

  /**
   * Asks VS Code once more, shortly after a waiting call got the final answer. VS Code can drop
   * an answer without telling the provider: a suggest-widget session that starts while the model
   * is still generating (word-based suggestions after a keystroke) cancels the pending inline
   * fetch, and nothing fetches again, so the ghost text never appears (seen in VS Code 1.139
   * with the real model, about one time in ten). The extra call is answered from the cache, and
   * when the answer is on screen VS Code keeps it as it is.
   */
  private scheduleConfirm(stream: Stream): void {
    setTimeout(() => {
      const editor = vscode.window.activeTextEditor;
      if (
        this.streams.get(stream.uri) !== stream ||
        !editor ||
        editor.document.uri.toString() !== stream.uri ||
        editor.document.version !== stream.version ||
        !editor.selection.active.isEqual(stream.position)
      ) {
        return;
      }
      this.hooks.log?.(`confirming the final answer at v${stream.version} ${stream.position.line}:${stream.position.character}`);
      void vscode.commands.executeCommand("editor.action.inlineSuggest.trigger");
    }, CONFIRM_MS);
  }

  /**
   * Brings the stream's newest text on screen: hide (so VS Code keeps nothing of the old text and
   * asks again), then trigger. At most one replacement per RETRIGGER_MS; it reads the stream's
   * state when it fires, so a final answer that arrives meanwhile is what VS Code gets.
   */
  private scheduleReplace(stream: Stream): void {
    if (this.triggerTimer) {
      return;
    }
    this.triggerTimer = setTimeout(() => {
      this.triggerTimer = undefined;
      const editor = vscode.window.activeTextEditor;
      const current = this.streams.get(stream.uri);
      if (
        !current ||
        !editor ||
        editor.document.uri.toString() !== current.uri ||
        editor.document.version !== current.version ||
        !editor.selection.active.isEqual(current.position)
      ) {
        this.hooks.log?.("no replacement: the editor moved on");
        return;
      }
      const newest = newestText(current);
      if (newest === undefined || newest === (current.shown ?? "")) {
        return;
      }
      this.hooks.log?.(`replacing ${JSON.stringify(current.shown ?? null)} with ${JSON.stringify(newest)}: hide, trigger`);
      void (async () => {
        await vscode.commands.executeCommand("editor.action.inlineSuggest.hide");
        current.shown = "";
        if (newest !== "") {
          await vscode.commands.executeCommand("editor.action.inlineSuggest.trigger");
        }
      })();
    }, RETRIGGER_MS);
  }
}

/**
 * The part of a streamed text worth showing: its complete lines, without the last line break, or
 * undefined while the first line is still being written. A half-written line would be replaced
 * a moment later, and a replacement costs VS Code a hide and a new request.
 */
export function completeLines(text: string): string | undefined {
  const end = text.lastIndexOf("\n");
  if (end <= 0) {
    return undefined;
  }
  const lines = text.slice(0, end);
  return lines.trim() === "" ? undefined : lines;
}

/** The newest text of a stream: its answer once the server responded, else its complete lines. */
function newestText(stream: Stream): string | undefined {
  return stream.answered || stream.done ? (firstText(stream.answer) ?? "") : stream.lines;
}

function placeOf(stream: Stream): string {
  return `v${stream.version} ${stream.position.line}:${stream.position.character}`;
}

function item(stream: Stream, text: string): vscode.InlineCompletionItem[] {
  return [new vscode.InlineCompletionItem(text, new vscode.Range(stream.position, stream.position))];
}

function firstText(answer: Answer): string | undefined {
  const items = Array.isArray(answer) ? answer : answer?.items;
  const first = items?.[0]?.insertText;
  return typeof first === "string" ? first : first?.value;
}
