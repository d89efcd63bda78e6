// The model catalog as the extension shows it: readable names for the status bar and the model
// picker. Pure functions without the `vscode` module, so they are tested in plain Node.

/** One model of `glint model list`, by the catalog name the server accepts in `glint.model`. */
export interface CatalogModel {
  name: string;
  label: string;
  detail: string;
}

/**
 * The catalog `glint model list` prints. The picker offers these even when the server is too old
 * to list them, since `glint.model` accepts the names either way.
 */
export const CATALOG: CatalogModel[] = [
  { name: "smollm2-135m", label: "SmolLM2 135M", detail: "SmolLM2-135M-Instruct (Q4_1): the smallest and fastest, weaker code" },
  { name: "qwen2.5-coder-0.5b", label: "Qwen2.5 Coder 0.5B", detail: "the default model: Qwen2.5-Coder-0.5B-Instruct (Q4_K_M), fill-in-the-middle code" },
  { name: "qwen2.5-coder-1.5b", label: "Qwen2.5 Coder 1.5B", detail: "Qwen2.5-Coder-1.5B-Instruct (Q4_K_M): the best code, wants a fast CPU" },
];

/** The model the server loads when `glint.model` is empty (the engine's `DEFAULT_MODEL`). */
export const DEFAULT_MODEL = "qwen2.5-coder-0.5b";

// Families whose spelling a title-cased GGUF name gets wrong ("Smollm2", "Qwen2.5 Coder").
const FAMILIES: [RegExp, string][] = [
  [/^smol[\s_-]?lm[\s_-]?2$/i, "SmolLM2"],
  [/^smol[\s_-]?lm$/i, "SmolLM"],
  [/^qwen[\s_-]?2\.5$/i, "Qwen2.5"],
  [/^qwen[\s_-]?3$/i, "Qwen3"],
  [/^qwen$/i, "Qwen"],
  [/^deepseek$/i, "DeepSeek"],
  [/^starcoder[\s_-]?2$/i, "StarCoder2"],
  [/^codellama$/i, "CodeLlama"],
  [/^llama$/i, "Llama"],
  [/^coder$/i, "Coder"],
  [/^instruct$/i, "Instruct"],
];

// A parameter count such as 135M, 0.5B, 1.5b or 7B: the last word worth keeping in a name.
const SIZE = /^\d+(\.\d+)?[mbk]$/i;

/**
 * A readable model name: a catalog name maps to its label; a GGUF `general.name` or file name
 * keeps its family words up to the parameter count and drops the training noise after it
 * ("Smollm2 135M 8k Lc100K Mix1 Ep2" is "SmolLM2 135M", "qwen2.5-coder-0.5b-instruct-q4_0.gguf"
 * is "Qwen2.5 Coder 0.5B").
 */
export function displayModelName(raw: string | undefined): string {
  const name = (raw ?? "").trim();
  if (!name) {
    return "";
  }
  const catalog = CATALOG.find((model) => model.name === name.toLowerCase());
  if (catalog) {
    return catalog.label;
  }
  const base = name
    .split(/[\\/]/)
    .pop()!
    .replace(/\.gguf$/i, "");
  // Qwen's "2.5" is a version, not a separator, so split on spaces, dashes and underscores only.
  const words = base.split(/[\s_-]+/).filter(Boolean);
  const sizeAt = words.findIndex((word) => SIZE.test(word));
  if (sizeAt < 0) {
    return base;
  }
  const kept = words.slice(0, sizeAt + 1);
  // Glue a family split in two by the separators ("Smol LM2", "qwen 2.5") back together.
  const parts: string[] = [];
  for (const word of kept) {
    const glued = parts.length > 0 ? `${parts[parts.length - 1]}${word}` : undefined;
    if (glued && FAMILIES.some(([pattern]) => pattern.test(glued)) && !SIZE.test(word)) {
      parts[parts.length - 1] = glued;
    } else {
      parts.push(word);
    }
  }
  return parts
    .map((word) => {
      if (SIZE.test(word)) {
        return word.toUpperCase();
      }
      const family = FAMILIES.find(([pattern]) => pattern.test(word));
      return family ? family[1] : word.charAt(0).toUpperCase() + word.slice(1);
    })
    .join(" ");
}

/** A step of the server's engine start (`glint/status` `engine.step`) as a notification shows it. */
export interface LoadingStep {
  /** What is happening, in a few words: "downloading 12.0 MB of 98.4 MB (12%)", "loading". */
  message: string;
  /** How far a download got, 0 to 100, when the step is one. */
  percent?: number;
}

// A model fetch's part event: "NAME part I/N (REQUIREMENT): STAGE; DONE of TOTAL (P%)".
const FETCH_PART = /^\S+ part (\d+)\/(\d+) \([^)]*\): [^;]+; (.+ of .+) \((\d+)%\)$/;

/**
 * Rewords a step of the server's engine start for people: a fetch's part events become the
 * download's size and percentage, the checksum and load steps a word each; any other step (a
 * remote engine's message) is shown as it is.
 */
export function loadingStep(step: string | undefined): LoadingStep | undefined {
  const text = (step ?? "").trim();
  if (!text) {
    return undefined;
  }
  const part = FETCH_PART.exec(text);
  if (part) {
    const [, index, count, bytes, percent] = part;
    const of = count === "1" ? "" : ` (part ${index} of ${count})`;
    return { message: `downloading ${bytes} (${percent}%)${of}`, percent: Number(percent) };
  }
  if (/^assembling /.test(text)) {
    return { message: "checking the download", percent: 100 };
  }
  if (/^model ready at |^model \S+ already present at |^licence /.test(text)) {
    return { message: "downloaded", percent: 100 };
  }
  if (/^loading /.test(text)) {
    return { message: "loading" };
  }
  return { message: text };
}
