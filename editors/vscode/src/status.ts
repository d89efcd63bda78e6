// The status bar item: on, off or snoozed, engine and readable model name from `glint/status`,
// the last real completion's latency (the engine's time to first token and total, never a
// cache hit), a spinner while a completion is being generated, and a warning look when the
// server is not running.
import * as vscode from "vscode";

import { displayModelName } from "./models";

export interface EngineStatus {
  state?: string;
  error?: string;
  /** While loading: the start's latest step (a model fetch's progress, the load). */
  step?: string;
  info?: { kind?: string; model?: string };
}

/** `lastCompletion` of `glint/status` (docs/lsp-extensions.md). */
export interface CompletionTimings {
  cacheHit?: boolean;
  firstChunkMs?: number | null;
  totalMs?: number;
}

/** What the user switched: all of Glint, automatic completions, a snooze, this language. */
export interface Switches {
  enabled: boolean;
  autoEnabled: boolean;
  snoozedUntil?: number;
  languageOff?: string;
}

export class StatusBar implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private engine = "starting";
  private model = "";
  private latency?: { firstMs?: number; totalMs: number };
  private inFlight = 0;
  private problem?: string;
  private switches: Switches = { enabled: true, autoEnabled: true };

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
      this.model = displayModelName(status.info.model);
    } else {
      this.engine = status.state ?? "unknown";
    }
    this.render();
  }

  /**
   * Records the server's own timings of its last completion. A typing-through cache hit answers
   * in a millisecond without the model, so it would hide the figure users care about; skip it.
   */
  setLastCompletion(timings: CompletionTimings | undefined | null): void {
    if (!timings || timings.cacheHit || typeof timings.totalMs !== "number") {
      return;
    }
    this.latency = { firstMs: timings.firstChunkMs ?? undefined, totalMs: timings.totalMs };
    this.render();
  }

  setProblem(problem: string | undefined): void {
    this.problem = problem;
    this.render();
  }

  setSwitches(switches: Switches): void {
    this.switches = switches;
    this.render();
  }

  /** Marks a completion as started; call the returned function when it ends. */
  begin(): () => void {
    this.inFlight++;
    this.render();
    let done = false;
    return () => {
      if (done) {
        return;
      }
      done = true;
      this.inFlight = Math.max(0, this.inFlight - 1);
      this.render();
    };
  }

  private render(): void {
    const { enabled, autoEnabled, snoozedUntil, languageOff } = this.switches;
    const snoozed = snoozedUntil !== undefined && snoozedUntil > Date.now();
    let icon: string;
    let label = "Glint";
    if (!enabled) {
      icon = "$(circle-slash)";
      label = "Glint off";
    } else if (this.inFlight > 0) {
      icon = "$(loading~spin)";
    } else if (this.problem) {
      icon = "$(warning)";
    } else if (snoozed) {
      icon = "$(bell-slash)";
      label = `Glint snoozed to ${clock(snoozedUntil)}`;
    } else if (languageOff) {
      icon = "$(circle-slash)";
      label = `Glint off for ${languageOff}`;
    } else {
      icon = autoEnabled ? "$(sparkle)" : "$(circle-outline)";
    }
    const showLatency = enabled && !snoozed && !languageOff && this.latency;
    this.item.text = `${icon} ${label}${showLatency ? ` ${Math.round(this.latency!.totalMs)} ms` : ""}`;
    const lines = [
      `Glint: ${!enabled ? "off" : this.problem ? this.problem : this.engine}${enabled && this.model ? ` · ${this.model}` : ""}`,
      `Automatic completions: ${autoEnabled ? "on" : "off"}${snoozed ? ` (snoozed until ${clock(snoozedUntil)})` : ""}`,
    ];
    if (languageOff) {
      lines.push(`Off for ${languageOff}`);
    }
    if (this.latency) {
      const first = this.latency.firstMs !== undefined ? `first token ${Math.round(this.latency.firstMs)} ms, ` : "";
      lines.push(`Last completion: ${first}total ${Math.round(this.latency.totalMs)} ms`);
    }
    lines.push("Click for options");
    this.item.tooltip = lines.join("\n");
    this.item.backgroundColor = enabled && this.problem ? new vscode.ThemeColor("statusBarItem.warningBackground") : undefined;
  }

  dispose(): void {
    this.item.dispose();
  }
}

function clock(time: number | undefined): string {
  const date = new Date(time ?? 0);
  return `${String(date.getHours()).padStart(2, "0")}:${String(date.getMinutes()).padStart(2, "0")}`;
}
