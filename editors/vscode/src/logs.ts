// Where the server's words go: one line per event in the "Glint" output channel, and the LSP
// traffic in "Glint Trace" when `glint.trace.server` asks for it.
//
// The server writes each log line twice, to stderr and as `window/logMessage` (stderr is for
// terminals and crashes before the connection exists). vscode-languageclient shows both, stderr
// always at `[error]`, so every line appeared twice. Here `window/logMessage` is the one source at
// its real level; stderr lines that repeat it go to `trace`, and only what the protocol cannot
// carry (a panic, a line that is not a log line) is shown as a warning or an error.
//
// vscode-languageclient traces only while its trace channel's log level is Trace, which a log
// output channel gets from "Developer: Set Log Level", not from `glint.trace.server`; so the trace
// channel here is a plain output channel whose level follows the setting.
import type * as stream from "node:stream";
import * as readline from "node:readline";
import * as vscode from "vscode";

/** A stderr line as `tracing`'s formatter writes it: timestamp, level, then the message. */
const LOG_LINE = /^\d{4}-\d\d-\d\dT[\d:.]+Z?\s+(TRACE|DEBUG|INFO|WARN|ERROR)\s/;

/** The level at which a server stderr line belongs in the output channel. */
export function stderrLevel(line: string): "trace" | "warn" | "error" {
  if (/panicked at|^error: /i.test(line)) {
    return "error";
  }
  return LOG_LINE.test(line) ? "trace" : "warn";
}

/** `stdioOptions` for the language client: stderr lines at their level, nothing twice. */
export function stdioOptions(output: vscode.LogOutputChannel) {
  const lines = (input: stream.Readable, each: (line: string) => void) =>
    readline.createInterface({ input, crlfDelay: Infinity, terminal: false, historySize: 0 }).on("line", each);
  return {
    stdout: (input: stream.Readable) => lines(input, (line) => output.info(line)),
    stderr: (input: stream.Readable) =>
      lines(input, (line) => {
        if (line.trim()) {
          output[stderrLevel(line)](line);
        }
      }),
  };
}

type TraceSetting = "off" | "messages" | "verbose";

/** The LSP trace channel: a LogOutputChannel look-alike whose level is `glint.trace.server`. */
export class TraceChannel implements vscode.LogOutputChannel {
  readonly name = "Glint Trace";
  private readonly channel = vscode.window.createOutputChannel("Glint Trace");
  private readonly levelChanged = new vscode.EventEmitter<vscode.LogLevel>();
  readonly onDidChangeLogLevel = this.levelChanged.event;
  private level: vscode.LogLevel;

  constructor() {
    this.level = TraceChannel.levelOf(this.setting());
  }

  get logLevel(): vscode.LogLevel {
    return this.level;
  }

  /** Follows `glint.trace.server`; the client re-reads the level and sends `$/setTrace`. */
  refresh(): void {
    const level = TraceChannel.levelOf(this.setting());
    if (level !== this.level) {
      this.level = level;
      this.levelChanged.fire(level);
    }
  }

  private setting(): TraceSetting {
    return vscode.workspace.getConfiguration("glint").get<TraceSetting>("trace.server", "off");
  }

  private static levelOf(setting: TraceSetting): vscode.LogLevel {
    return setting === "off" ? vscode.LogLevel.Info : vscode.LogLevel.Trace;
  }

  private line(level: string, message: string | Error, args: unknown[]): void {
    const text = message instanceof Error ? (message.stack ?? message.message) : message;
    const rest = args.length > 0 ? ` ${args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" ")}` : "";
    this.channel.appendLine(`${new Date().toISOString()} [${level}] ${text}${rest}`);
  }

  trace(message: string, ...args: unknown[]): void {
    if (this.level === vscode.LogLevel.Trace) {
      this.line("trace", message, args);
    }
  }
  debug(message: string, ...args: unknown[]): void {
    this.line("debug", message, args);
  }
  info(message: string, ...args: unknown[]): void {
    this.line("info", message, args);
  }
  warn(message: string, ...args: unknown[]): void {
    this.line("warning", message, args);
  }
  error(error: string | Error, ...args: unknown[]): void {
    this.line("error", error, args);
  }
  append(value: string): void {
    this.channel.append(value);
  }
  appendLine(value: string): void {
    this.channel.appendLine(value);
  }
  replace(value: string): void {
    this.channel.replace(value);
  }
  clear(): void {
    this.channel.clear();
  }
  show(columnOrPreserveFocus?: vscode.ViewColumn | boolean, preserveFocus?: boolean): void {
    if (typeof columnOrPreserveFocus === "boolean" || columnOrPreserveFocus === undefined) {
      this.channel.show(columnOrPreserveFocus);
    } else {
      this.channel.show(columnOrPreserveFocus, preserveFocus);
    }
  }
  hide(): void {
    this.channel.hide();
  }
  dispose(): void {
    this.levelChanged.dispose();
    this.channel.dispose();
  }
}
