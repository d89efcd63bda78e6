//! The structured request the server sends and the summary an engine returns at the end.
//! The engine, not the server, turns these parts into a model-specific prompt.

use serde::{Deserialize, Serialize};

/// One completion or instruction request, as structured parts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerateRequest {
    /// Text before the cursor, already cut to the context budget.
    pub prefix: String,
    /// Text after the cursor, already cut to the context budget.
    pub suffix: String,
    /// Extra context from this and other files (signatures, recent edits), most relevant last.
    pub snippets: Vec<Snippet>,
    /// The document's path relative to the workspace, when known; templates may show it.
    pub path: Option<String>,
    /// LSP `languageId` (`rust`, `python`, ...), when known.
    pub language: Option<String>,
    /// The most tokens to generate.
    pub max_tokens: u32,
    /// Generation stops before any of these strings; the stop string is not streamed.
    pub stop: Vec<String>,
    pub sampling: Sampling,
    /// Give up after this many milliseconds from the request's arrival at the engine.
    pub deadline_ms: Option<u64>,
    /// A key that groups requests sharing a prompt (usually the document URI), so an engine can
    /// keep one warm KV cache per session.
    pub session: Option<String>,
    /// What to do with the parts.
    pub task: Task,
}

/// What the engine is asked to do.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Task {
    /// Continue the code at the cursor (fill in the middle where the model can).
    #[default]
    Complete,
    /// Follow an instruction about the code in `prefix`/`suffix`/`snippets` (code actions).
    /// Instruction-following models get a chat template; plain models a commented instruction.
    Instruct { system: String, instruction: String },
}

/// A file excerpt given to the model as extra context.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snippet {
    pub path: String,
    pub text: String,
}

/// How to pick the next token. The default is greedy, so completions are deterministic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Sampling {
    /// 0 means greedy.
    pub temperature: f32,
    pub top_k: Option<usize>,
    pub top_p: Option<f32>,
    /// Penalise tokens seen in the last `repeat_last_n` tokens; 1.0 is off.
    pub repeat_penalty: f32,
    pub repeat_last_n: usize,
    pub seed: u64,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling { temperature: 0.0, top_k: None, top_p: None, repeat_penalty: 1.0, repeat_last_n: 64, seed: 0 }
    }
}

/// Why a generation ended, with its timings. Sent as the last chunk.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Finish {
    pub reason: FinishReason,
    /// A human-readable message when `reason` is `Error`.
    pub error: Option<String>,
    pub timings: Timings,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model ended the text or a stop sequence matched.
    #[default]
    Stop,
    /// `max_tokens` was reached.
    Length,
    /// The consumer dropped the generation or a newer request superseded it.
    Cancelled,
    /// `deadline_ms` passed.
    Deadline,
    /// The engine failed; see `Finish::error`.
    Error,
}

/// What a generation cost. Zero where an engine cannot tell.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Tokens in the rendered prompt.
    pub prompt_tokens: usize,
    /// Prompt tokens whose KV state was reused from an earlier request.
    pub cached_tokens: usize,
    pub prefill_ms: f64,
    /// From the request's arrival at the engine to the first generated token.
    pub ttft_ms: f64,
    pub decode_tokens: usize,
    pub decode_tokens_per_s: f64,
    pub total_ms: f64,
}
