//! Prompt templates: pure functions that turn a request's structured parts into the pieces of a
//! model-specific prompt (plain text and control tokens), and pick the tokens that end generation.
//!
//! Prompts run stable-to-volatile (other files, then the suffix where the model reads it first,
//! then the prefix), so that a keystroke appends to the end and the KV cache keeps the rest.

use crate::{GenerateRequest, Task};

pub mod actions;

/// One part of a rendered prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Text from the request or the template, encoded as plain text.
    Text(String),
    /// A control token, inserted by id.
    Token(&'static str),
}

/// How a model is prompted for completions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    /// No fill-in-the-middle: other files as commented headers, then the prefix.
    PrefixOnly,
    /// `<fim_prefix>`/`<fim_suffix>`/`<fim_middle>` (StarCoder, SmolLM), suffix-first when `spm`.
    StarCoder { spm: bool },
    /// `<|fim_prefix|>`/`<|fim_suffix|>`/`<|fim_middle|>` (Qwen2.5-Coder), other files as
    /// `<|file_sep|>` entries when the vocabulary has them. With `line_in_middle`, the cursor
    /// line's text before the cursor follows `<|fim_middle|>` (as llama.cpp's `/infill` places
    /// its `prompt`), so typing on a line only appends to the prompt and the KV cache keeps
    /// everything before it, the suffix included.
    Qwen { repo: bool, line_in_middle: bool },
    /// `<PRE>`/`<SUF>`/`<MID>` (CodeLlama), suffix-first when `spm`.
    CodeLlama { spm: bool },
    /// `<｜fim▁begin｜>`/`<｜fim▁hole｜>`/`<｜fim▁end｜>` (DeepSeek-Coder).
    DeepSeek,
}

/// The template plus what the vocabulary offers for instructions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromptFormat {
    pub template: Template,
    /// The vocabulary has `<|im_start|>`/`<|im_end|>`, so instructions use ChatML.
    pub chatml: bool,
}

/// Template names accepted by `LocalConfig::template`.
pub const TEMPLATE_NAMES: &[&str] = &[
    "prefix-only",
    "starcoder",
    "starcoder-psm",
    "qwen",
    "qwen-psm",
    "qwen-plain",
    "codellama",
    "codellama-psm",
    "deepseek",
];

impl PromptFormat {
    /// Picks the template from the vocabulary (`has` answers whether a token exists), or from
    /// `name` when given; a named template the vocabulary cannot express is an error.
    pub fn detect(has: impl Fn(&str) -> bool, name: Option<&str>) -> Result<PromptFormat, String> {
        let chatml = has("<|im_start|>") && has("<|im_end|>");
        let template = match name {
            Some(name) => {
                let template = match name {
                    "prefix-only" | "prefix" | "none" => Template::PrefixOnly,
                    "starcoder" | "starcoder-spm" | "smollm" => Template::StarCoder { spm: true },
                    "starcoder-psm" => Template::StarCoder { spm: false },
                    "qwen" => {
                        Template::Qwen { repo: has("<|file_sep|>") && has("<|repo_name|>"), line_in_middle: true }
                    }
                    "qwen-psm" => {
                        Template::Qwen { repo: has("<|file_sep|>") && has("<|repo_name|>"), line_in_middle: false }
                    }
                    "qwen-plain" => Template::Qwen { repo: false, line_in_middle: true },
                    "codellama" | "codellama-spm" => Template::CodeLlama { spm: true },
                    "codellama-psm" => Template::CodeLlama { spm: false },
                    "deepseek" => Template::DeepSeek,
                    other => {
                        return Err(format!(
                            "unknown prompt template `{other}` (known: {})",
                            TEMPLATE_NAMES.join(", ")
                        ));
                    }
                };
                if let Some(missing) = template.tokens().iter().find(|t| !has(t)) {
                    return Err(format!("template `{name}` needs token `{missing}`, which the model lacks"));
                }
                template
            }
            None => {
                if has("<|fim_prefix|>") && has("<|fim_suffix|>") && has("<|fim_middle|>") {
                    Template::Qwen { repo: has("<|file_sep|>") && has("<|repo_name|>"), line_in_middle: true }
                } else if has("<fim_prefix>") && has("<fim_suffix>") && has("<fim_middle>") {
                    Template::StarCoder { spm: true }
                } else if has("<｜fim▁begin｜>") && has("<｜fim▁hole｜>") && has("<｜fim▁end｜>") {
                    Template::DeepSeek
                } else if has("<PRE>") && has("<SUF>") && has("<MID>") {
                    Template::CodeLlama { spm: true }
                } else {
                    Template::PrefixOnly
                }
            }
        };
        Ok(PromptFormat { template, chatml })
    }

    /// Whether completions fill in the middle (the suffix shapes the answer).
    pub fn fim(&self) -> bool {
        self.template != Template::PrefixOnly
    }

    /// The prompt for `request`.
    pub fn render(&self, request: &GenerateRequest) -> Vec<Piece> {
        match &request.task {
            Task::Complete => self.template.render_completion(request),
            Task::Instruct { system, instruction } => {
                if self.chatml {
                    render_chatml(request, system, instruction)
                } else {
                    render_commented_instruction(request, instruction)
                }
            }
        }
    }
}

impl Template {
    /// The control tokens the template uses.
    fn tokens(&self) -> &'static [&'static str] {
        match self {
            Template::PrefixOnly => &[],
            Template::StarCoder { .. } => &["<fim_prefix>", "<fim_suffix>", "<fim_middle>"],
            Template::Qwen { repo: true, .. } => {
                &["<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|file_sep|>", "<|repo_name|>"]
            }
            Template::Qwen { repo: false, .. } => &["<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"],
            Template::CodeLlama { .. } => &["<PRE>", "<SUF>", "<MID>"],
            Template::DeepSeek => &["<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"],
        }
    }

    fn render_completion(&self, request: &GenerateRequest) -> Vec<Piece> {
        let comment = CommentStyle::for_request(request);
        let headed_prefix = || {
            let mut text = snippet_headers(request, comment);
            text.push_str(&request.prefix);
            text
        };
        let suffix = request.suffix.clone();
        match *self {
            Template::PrefixOnly => vec![Piece::Text(headed_prefix())],
            Template::StarCoder { spm: true } => vec![
                Piece::Token("<fim_prefix>"),
                Piece::Token("<fim_suffix>"),
                Piece::Text(suffix),
                Piece::Token("<fim_middle>"),
                Piece::Text(headed_prefix()),
            ],
            Template::StarCoder { spm: false } => vec![
                Piece::Token("<fim_prefix>"),
                Piece::Text(headed_prefix()),
                Piece::Token("<fim_suffix>"),
                Piece::Text(suffix),
                Piece::Token("<fim_middle>"),
            ],
            Template::Qwen { repo, line_in_middle } => {
                let mut pieces = Vec::new();
                let prefix_text = if repo && !request.snippets.is_empty() {
                    pieces.push(Piece::Token("<|repo_name|>"));
                    pieces.push(Piece::Text("workspace\n".into()));
                    for snippet in &request.snippets {
                        pieces.push(Piece::Token("<|file_sep|>"));
                        pieces.push(Piece::Text(format!("{}\n{}\n", snippet.path, snippet.text)));
                    }
                    pieces.push(Piece::Token("<|file_sep|>"));
                    pieces.push(Piece::Text(format!("{}\n", request.path.as_deref().unwrap_or("current_file"))));
                    request.prefix.clone()
                } else {
                    headed_prefix()
                };
                let mut prefix_text = prefix_text;
                let mut line = match prefix_text.rfind('\n') {
                    Some(at) if line_in_middle => prefix_text.split_off(at + 1),
                    None if line_in_middle => std::mem::take(&mut prefix_text),
                    _ => String::new(),
                };
                // Bare indentation after `<|fim_middle|>` makes Qwen2.5-Coder end at once (llama.cpp
                // greedy on the same prompt: nothing). Left out, the model writes the line whole,
                // indentation included, which the caller removes as the document has it already;
                // the first character typed then only appends to this prompt.
                if line.trim().is_empty() {
                    line.clear();
                }
                pieces.extend([
                    Piece::Token("<|fim_prefix|>"),
                    Piece::Text(prefix_text),
                    Piece::Token("<|fim_suffix|>"),
                    Piece::Text(suffix),
                    Piece::Token("<|fim_middle|>"),
                ]);
                if !line.is_empty() {
                    pieces.push(Piece::Text(line));
                }
                pieces
            }
            // CodeLlama's infilling format puts a space after <PRE> and before <MID>; in SPM mode
            // the prefix follows <MID> directly.
            Template::CodeLlama { spm: true } => vec![
                Piece::Token("<PRE>"),
                Piece::Text(" ".into()),
                Piece::Token("<SUF>"),
                Piece::Text(suffix),
                Piece::Text(" ".into()),
                Piece::Token("<MID>"),
                Piece::Text(headed_prefix()),
            ],
            Template::CodeLlama { spm: false } => vec![
                Piece::Token("<PRE>"),
                Piece::Text(format!(" {}", headed_prefix())),
                Piece::Text(" ".into()),
                Piece::Token("<SUF>"),
                Piece::Text(format!("{suffix} ")),
                Piece::Token("<MID>"),
            ],
            Template::DeepSeek => vec![
                Piece::Token("<｜fim▁begin｜>"),
                Piece::Text(headed_prefix()),
                Piece::Token("<｜fim▁hole｜>"),
                Piece::Text(suffix),
                Piece::Token("<｜fim▁end｜>"),
            ],
        }
    }
}

fn render_chatml(request: &GenerateRequest, system: &str, instruction: &str) -> Vec<Piece> {
    let language = request.language.as_deref().unwrap_or("");
    let mut user = String::new();
    for snippet in &request.snippets {
        user.push_str(&format!("{}:\n```{language}\n{}\n```\n\n", snippet.path, snippet.text));
    }
    let code = format!("{}{}", request.prefix, request.suffix);
    match &request.path {
        Some(path) => user.push_str(&format!("{path}:\n```{language}\n{code}\n```\n\n")),
        None => user.push_str(&format!("```{language}\n{code}\n```\n\n")),
    }
    user.push_str(instruction);
    let mut pieces = Vec::new();
    if !system.is_empty() {
        pieces.extend([
            Piece::Token("<|im_start|>"),
            Piece::Text(format!("system\n{system}")),
            Piece::Token("<|im_end|>"),
            Piece::Text("\n".into()),
        ]);
    }
    pieces.extend([
        Piece::Token("<|im_start|>"),
        Piece::Text(format!("user\n{user}")),
        Piece::Token("<|im_end|>"),
        Piece::Text("\n".into()),
        Piece::Token("<|im_start|>"),
        Piece::Text("assistant\n".into()),
    ]);
    pieces
}

fn render_commented_instruction(request: &GenerateRequest, instruction: &str) -> Vec<Piece> {
    let comment = CommentStyle::for_request(request);
    let mut text = snippet_headers(request, comment);
    text.push_str(&request.prefix);
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    for line in instruction.lines() {
        text.push_str(&comment.line(line));
    }
    vec![Piece::Text(text)]
}

/// Other files as comment blocks (`// Path: src/a.rs` then each line commented), then the current
/// file's path, as Copilot-style headers.
fn snippet_headers(request: &GenerateRequest, comment: CommentStyle) -> String {
    let mut out = String::new();
    for snippet in &request.snippets {
        out.push_str(&comment.line(&format!("Path: {}", snippet.path)));
        for line in snippet.text.lines() {
            out.push_str(&comment.line(line));
        }
        out.push_str(&comment.line(""));
    }
    if let Some(path) = &request.path {
        out.push_str(&comment.line(&format!("Path: {path}")));
    }
    out
}

/// How a language writes a one-line comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommentStyle {
    pub open: &'static str,
    pub close: &'static str,
}

impl CommentStyle {
    /// The comment syntax of an LSP language id, or of a file extension when the id is unknown.
    pub fn for_language(language: &str) -> CommentStyle {
        let (open, close) = match language {
            "python" | "py" | "ruby" | "rb" | "shellscript" | "sh" | "bash" | "zsh" | "fish" | "perl" | "pl" | "r"
            | "yaml" | "yml" | "toml" | "dockerfile" | "makefile" | "elixir" | "ex" | "exs" | "julia" | "jl"
            | "nix" | "powershell" | "ps1" | "cmake" | "coffeescript" => ("#", ""),
            "lua" | "sql" | "haskell" | "hs" | "elm" | "ada" => ("--", ""),
            "clojure" | "clj" | "lisp" | "scheme" | "racket" => (";;", ""),
            "erlang" | "erl" | "latex" | "tex" | "matlab" => ("%", ""),
            "html" | "xml" | "markdown" | "md" | "vue" | "svelte" => ("<!--", " -->"),
            "css" => ("/*", " */"),
            "vim" => ("\"", ""),
            "ocaml" | "ml" => ("(*", " *)"),
            _ => ("//", ""),
        };
        CommentStyle { open, close }
    }

    fn for_request(request: &GenerateRequest) -> CommentStyle {
        let language = request.language.clone().or_else(|| {
            request.path.as_deref().and_then(|p| p.rsplit_once('.')).map(|(_, ext)| ext.to_ascii_lowercase())
        });
        CommentStyle::for_language(language.as_deref().unwrap_or(""))
    }

    fn line(&self, text: &str) -> String {
        if text.is_empty() {
            format!("{}{}\n", self.open, self.close)
        } else {
            format!("{} {}{}\n", self.open, text, self.close)
        }
    }
}

/// Tokens that end generation when the model produces them, among those the vocabulary has.
pub fn stop_token_names(has: impl Fn(&str) -> bool) -> Vec<&'static str> {
    const NAMES: &[&str] = &[
        "<|endoftext|>",
        "<|im_end|>",
        "<|im_start|>",
        "<|end|>",
        "<|eot_id|>",
        "<|file_sep|>",
        "<file_sep>",
        "<|repo_name|>",
        "<repo_name>",
        "<|fim_prefix|>",
        "<|fim_suffix|>",
        "<|fim_middle|>",
        "<|fim_pad|>",
        "<fim_prefix>",
        "<fim_suffix>",
        "<fim_middle>",
        "<fim_pad>",
        "<PRE>",
        "<SUF>",
        "<MID>",
        "<EOT>",
        "<|EOT|>",
        "<｜fim▁begin｜>",
        "<｜fim▁hole｜>",
        "<｜fim▁end｜>",
        "<｜end▁of▁sentence｜>",
    ];
    NAMES.iter().copied().filter(|n| has(n)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Snippet;

    fn vocab(tokens: &'static [&'static str]) -> impl Fn(&str) -> bool {
        move |t| tokens.contains(&t)
    }

    fn show(pieces: &[Piece]) -> String {
        pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.clone(),
                Piece::Token(t) => format!("[{t}]"),
            })
            .collect()
    }

    fn request() -> GenerateRequest {
        GenerateRequest {
            prefix: "def add(a, b):\n    return ".into(),
            suffix: "\n\nprint(add(1, 2))\n".into(),
            snippets: vec![Snippet { path: "util.py".into(), text: "def sub(a, b):\n    return a - b".into() }],
            path: Some("main.py".into()),
            language: Some("python".into()),
            ..GenerateRequest::default()
        }
    }

    #[test]
    fn prefix_only_puts_other_files_in_comments_before_the_prefix() {
        let format = PromptFormat::detect(vocab(&["<|endoftext|>", "<|im_start|>", "<|im_end|>"]), None).unwrap();
        assert_eq!(format.template, Template::PrefixOnly);
        assert!(format.chatml);
        assert!(!format.fim());
        assert_eq!(
            show(&format.render(&request())),
            "# Path: util.py\n# def sub(a, b):\n#     return a - b\n#\n# Path: main.py\ndef add(a, b):\n    return "
        );
    }

    #[test]
    fn starcoder_vocabulary_gets_suffix_first_fim() {
        let format = PromptFormat::detect(vocab(&["<fim_prefix>", "<fim_suffix>", "<fim_middle>"]), None).unwrap();
        assert_eq!(format.template, Template::StarCoder { spm: true });
        let text = show(&format.render(&GenerateRequest { snippets: vec![], path: None, ..request() }));
        assert_eq!(text, "[<fim_prefix>][<fim_suffix>]\n\nprint(add(1, 2))\n[<fim_middle>]def add(a, b):\n    return ");
    }

    #[test]
    fn qwen_vocabulary_gets_repo_style_fim() {
        let tokens = &["<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|file_sep|>", "<|repo_name|>"];
        let format = PromptFormat::detect(vocab(tokens), None).unwrap();
        assert_eq!(format.template, Template::Qwen { repo: true, line_in_middle: true });
        assert_eq!(
            show(&format.render(&request())),
            "[<|repo_name|>]workspace\n[<|file_sep|>]util.py\ndef sub(a, b):\n    return a - b\n[<|file_sep|>]main.py\n\
             [<|fim_prefix|>]def add(a, b):\n[<|fim_suffix|>]\n\nprint(add(1, 2))\n[<|fim_middle|>]    return "
        );
        // The classic layout keeps the whole prefix before the suffix.
        let psm = PromptFormat::detect(vocab(tokens), Some("qwen-psm")).unwrap();
        let r = GenerateRequest { snippets: vec![], path: None, ..request() };
        assert_eq!(
            show(&psm.render(&r)),
            "[<|fim_prefix|>]def add(a, b):\n    return [<|fim_suffix|>]\n\nprint(add(1, 2))\n[<|fim_middle|>]"
        );
    }

    #[test]
    fn typing_on_the_cursor_line_only_appends_to_a_qwen_prompt() {
        let tokens = &["<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"];
        let format = PromptFormat::detect(vocab(tokens), None).unwrap();
        let at = |prefix: &str| {
            show(&format.render(&GenerateRequest {
                prefix: prefix.into(),
                suffix: "\nrest\n".into(),
                ..GenerateRequest::default()
            }))
        };
        let (before, after) = (at("def f(n):\n    ret"), at("def f(n):\n    retu"));
        assert!(after.starts_with(&before), "{before:?} is not a prefix of {after:?}");
        assert_eq!(at("x"), "[<|fim_prefix|>][<|fim_suffix|>]\nrest\n[<|fim_middle|>]x");
        // Bare indentation never follows the middle token (the model would end at once), and the
        // first character typed after it still only appends.
        let (blank, typed) = (at("def f(n):\n    "), at("def f(n):\n    r"));
        assert_eq!(blank, "[<|fim_prefix|>]def f(n):\n[<|fim_suffix|>]\nrest\n[<|fim_middle|>]");
        assert!(typed.starts_with(&blank), "{blank:?} is not a prefix of {typed:?}");
    }

    #[test]
    fn codellama_and_deepseek_are_detected() {
        let codellama = PromptFormat::detect(vocab(&["<PRE>", "<SUF>", "<MID>"]), None).unwrap();
        let r = GenerateRequest { prefix: "a".into(), suffix: "b".into(), ..GenerateRequest::default() };
        assert_eq!(show(&codellama.render(&r)), "[<PRE>] [<SUF>]b [<MID>]a");
        let psm = PromptFormat::detect(vocab(&["<PRE>", "<SUF>", "<MID>"]), Some("codellama-psm")).unwrap();
        assert_eq!(show(&psm.render(&r)), "[<PRE>] a [<SUF>]b [<MID>]");
        let deepseek =
            PromptFormat::detect(vocab(&["<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"]), None).unwrap();
        assert_eq!(show(&deepseek.render(&r)), "[<｜fim▁begin｜>]a[<｜fim▁hole｜>]b[<｜fim▁end｜>]");
    }

    #[test]
    fn a_named_template_overrides_detection_and_is_checked() {
        let has = vocab(&["<fim_prefix>", "<fim_suffix>", "<fim_middle>"]);
        assert_eq!(PromptFormat::detect(&has, Some("prefix-only")).unwrap().template, Template::PrefixOnly);
        assert_eq!(
            PromptFormat::detect(&has, Some("starcoder-psm")).unwrap().template,
            Template::StarCoder { spm: false }
        );
        assert!(PromptFormat::detect(&has, Some("qwen")).unwrap_err().contains("<|fim_prefix|>"));
        assert!(PromptFormat::detect(&has, Some("nonsense")).unwrap_err().contains("unknown prompt template"));
    }

    #[test]
    fn instructions_use_chatml_when_the_vocabulary_has_it() {
        let r = GenerateRequest {
            prefix: "fn a() {}".into(),
            language: Some("rust".into()),
            task: Task::Instruct { system: "You write Rust.".into(), instruction: "Document a.".into() },
            ..GenerateRequest::default()
        };
        let chat = PromptFormat::detect(vocab(&["<|im_start|>", "<|im_end|>"]), None).unwrap();
        assert_eq!(
            show(&chat.render(&r)),
            "[<|im_start|>]system\nYou write Rust.[<|im_end|>]\n[<|im_start|>]user\n```rust\nfn a() {}\n```\n\nDocument a.[<|im_end|>]\n[<|im_start|>]assistant\n"
        );
        let plain = PromptFormat::detect(vocab(&[]), None).unwrap();
        assert_eq!(show(&plain.render(&r)), "fn a() {}\n// Document a.\n");
    }

    #[test]
    fn comment_styles_follow_the_language_or_the_extension() {
        assert_eq!(CommentStyle::for_language("rust").open, "//");
        assert_eq!(CommentStyle::for_language("lua").open, "--");
        assert_eq!(CommentStyle::for_language("html").close, " -->");
        let r = GenerateRequest { path: Some("x.rb".into()), prefix: "p".into(), ..GenerateRequest::default() };
        assert_eq!(show(&Template::PrefixOnly.render_completion(&r)), "# Path: x.rb\np");
    }

    #[test]
    fn stop_tokens_are_those_the_vocabulary_has() {
        assert_eq!(stop_token_names(vocab(&["<|endoftext|>", "<file_sep>", "x"])), vec!["<|endoftext|>", "<file_sep>"]);
    }
}
