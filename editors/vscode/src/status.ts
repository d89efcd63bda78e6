// The status bar item: engine and model from `glint/status`, the last latency, a spinner while a
// completion is being generated, and a warning look when the server is not running.
import * as vscode from "vscode";

export interface EngineStatus {
  state?: string;
  error?: string;
  info?: { kind?: string; model?: string };
}

export class StatusBar implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private engine = "starting";
  private model = "";
  private latencyMs?: number;
  private inFlight = 0;
  private problem?: string;
  private autoEnabled = true;

  constructor() {
    this.item = vscode.window.createStatusBarItem("glint.status", vscode.StatusBarAlignment.Right, 100);
    this.item.name = "Glint";
    this.item.command = "glint.statusMenu";
    this.render();
    this.item.show();
  }

  setEngine(status: EngineStatus | undefined): void {
    this.problem = undefined;
    if (!status) {
      this.engine = "unknown";
      this.model = "";
    } else if (status.state === "failed") {
      this.engine = "failed";
      this.problem = status.error ?? "the engine failed to start";
    } else if (status.info) {
      this.engine = status.info.kind ?? status.state ?? "ready";
      this.model = status.info.model ?? "";
    } else {
      this.engine = status.state ?? "unknown";
    }
    this.render();
  }

  setProblem(problem: string | undefined): void {
    this.problem = problem;
    this.render();
  }

  setAutoEnabled(enabled: boolean): void {
    this.autoEnabled = enabled;
    this.render();
  }

  /** Marks a completion as started; call the returned function when it ends. */
  begin(): (latencyMs?: number) => void {
    this.inFlight++;
    this.render();
    let done = false;
    return (latencyMs?: number) => {
      if (done) {
        return;
      }
      done = true;
      this.inFlight = Math.max(0, this.inFlight - 1);
      if (latencyMs !== undefined) {
        this.latencyMs = latencyMs;
      }
      this.render();
    };
  }

  private render(): void {
    const icon = this.inFlight > 0 ? "$(loading~spin)" : this.problem ? "$(warning)" : this.autoEnabled ? "$(sparkle)" : "$(circle-slash)";
    const latency = this.latencyMs !== undefined ? ` ${Math.round(this.latencyMs)} ms` : "";
    this.item.text = `${icon} Glint${latency}`;
    const lines = [
      `Glint: ${this.problem ? this.problem : this.engine}${this.model ? ` · ${this.model}` : ""}`,
      `Automatic completions: ${this.autoEnabled ? "on" : "off"}`,
    ];
    if (this.latencyMs !== undefined) {
      lines.push(`Last completion: ${Math.round(this.latencyMs)} ms`);
    }
    lines.push("Click for options");
    this.item.tooltip = lines.join("\n");
    this.item.backgroundColor = this.problem ? new vscode.ThemeColor("statusBarItem.warningBackground") : undefined;
  }

  dispose(): void {
    this.item.dispose();
  }
}
