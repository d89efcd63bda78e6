// Streamed ghost text. VS Code's inline completion API has no way to update a suggestion that is
// already shown: a provider answers once per call, and VS Code will not start a second call for
// the same position and document version while one is still running (it reuses the running one).
// So the server's `glint/inlineCompletionProgress` notifications (text so far) are kept here: a
// waiting provider call is answered with the first partial text at once, and each later partial
// that extends what is on screen re-triggers the inline suggestion; the provider call that
// follows is answered from this cache without a new server request, while the one real request
// keeps running (with its own cancellation token, so VS Code's re-trigger does not cancel it).
// The final answer replaces the last partial the same way.
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
}

type Answer = vscode.InlineCompletionItem[] | vscode.InlineCompletionList | null | undefined;

/** One server request for one document version and cursor position. */
interface Stream {
  uri: string;
  version: number;
  position: vscode.Position;
  partial?: string;
  shown?: string;
  done: boolean;
  final: Answer;
  pending: Promise<Answer>;
  /** Provider calls waiting for the next text (partial or final). */
  waiters: ((answer: Answer) => void)[];
  cancel: vscode.CancellationTokenSource;
}

export interface StreamingHooks {
  /** Whether automatic (as-you-type) requests are allowed. */
  autoEnabled(): boolean;
  /** Called when a server request starts; the returned function is called with its latency. */
  begin(): (latencyMs?: number) => void;
}

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
    const shown = stream.shown ?? "";
    stream.partial = progress.text;
    if (progress.text.length > shown.length && progress.text.startsWith(shown)) {
      if (stream.waiters.length > 0) {
        this.answerWaiters(stream, partialItem(stream, progress.text));
      } else {
        this.scheduleTrigger(stream);
      }
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
    if (context.triggerKind === vscode.InlineCompletionTriggerKind.Automatic && !this.hooks.autoEnabled()) {
      return null;
    }
    const uri = document.uri.toString();
    if (context.selectedCompletionInfo) {
      // Extending a selected suggest-widget item is a different question; do not mix it into the cache.
      const finish = this.hooks.begin();
      const started = Date.now();
      try {
        return await next(document, position, context, token);
      } finally {
        finish(Date.now() - started);
      }
    }
    const existing = this.streams.get(uri);
    if (existing && existing.version === document.version && existing.position.isEqual(position)) {
      if (existing.done) {
        existing.shown = firstText(existing.final);
        return existing.final;
      }
      if (existing.partial !== undefined && existing.partial !== existing.shown) {
        existing.shown = existing.partial;
        return partialItem(existing, existing.partial);
      }
      return this.wait(existing, token);
    }

    existing?.cancel.cancel();
    const cancel = new vscode.CancellationTokenSource();
    const finish = this.hooks.begin();
    const started = Date.now();
    const stream: Stream = {
      uri,
      version: document.version,
      position,
      done: false,
      final: undefined,
      waiters: [],
      cancel,
      pending: Promise.resolve(undefined),
    };
    stream.pending = Promise.resolve(next(document, position, context, cancel.token)).then(
      (answer) => {
        stream.done = true;
        stream.final = answer;
        finish(Date.now() - started);
        const text = firstText(answer);
        if (stream.waiters.length > 0) {
          this.answerWaiters(stream, answer);
        } else if (text !== undefined && text !== stream.shown && this.streams.get(uri) === stream) {
          this.scheduleTrigger(stream);
        }
        return answer;
      },
      () => {
        stream.done = true;
        stream.final = null;
        finish();
        this.answerWaiters(stream, null);
        return null;
      },
    );
    this.streams.set(uri, stream);
    return this.wait(stream, token);
  }

  /** Waits for the stream's next text (partial or final) unless VS Code gives up on this call first. */
  private wait(stream: Stream, token: vscode.CancellationToken): Promise<Answer> {
    return new Promise<Answer>((resolve) => {
      const waiter = (answer: Answer) => {
        sub.dispose();
        resolve(answer);
      };
      const sub = token.onCancellationRequested(() => {
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
    stream.shown = firstText(answer);
    for (const waiter of waiters) {
      waiter(answer);
    }
  }

  /** Re-triggers the inline suggestion, at most once per 30 ms, if the editor is still there. */
  private scheduleTrigger(stream: Stream): void {
    if (this.triggerTimer) {
      return;
    }
    this.triggerTimer = setTimeout(() => {
      this.triggerTimer = undefined;
      const editor = vscode.window.activeTextEditor;
      if (
        !editor ||
        editor.document.uri.toString() !== stream.uri ||
        editor.document.version !== stream.version ||
        !editor.selection.active.isEqual(stream.position) ||
        this.streams.get(stream.uri) !== stream
      ) {
        return;
      }
      void vscode.commands.executeCommand("editor.action.inlineSuggest.trigger");
    }, 30);
  }
}

function partialItem(stream: Stream, text: string): vscode.InlineCompletionItem[] {
  return [new vscode.InlineCompletionItem(text, new vscode.Range(stream.position, stream.position))];
}

function firstText(answer: Answer): string | undefined {
  const items = Array.isArray(answer) ? answer : answer?.items;
  const first = items?.[0]?.insertText;
  return typeof first === "string" ? first : first?.value;
}
