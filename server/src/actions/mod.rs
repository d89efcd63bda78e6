//! AI code actions without LSP types: which actions make sense at a range (found with
//! tree-sitter, no model call), how each one asks the engine, and how the engine's answer becomes
//! one exact edit of the document, checked to parse.
//!
//! An action resolves in three steps:
//! 1. `list` finds the candidates at a range (instant).
//! 2. `plan` turns one candidate into a [`Plan`]: either a fill-in document (the function body or
//!    a test scaffold with the cursor inside) to complete like any completion, or an instruction
//!    about a piece of code (document, fix, rewrite).
//! 3. `Plan::finish` shapes the engine's answer into an [`Edit`] of the original document:
//!    markdown fences and chatter stripped, indentation and line endings of the file kept, and
//!    the result reparsed so that it never introduces syntax errors the file did not have.
//!
//! Architecture Invariant: imports nothing of LSP; plain values in, plain values out.

pub(crate) mod hygiene;
mod targets;

#[cfg(test)]
mod tests;

use glint_engine::Task;
use glint_engine::prompt::actions as prompts;

use crate::document::Document;
use crate::syntax::Lang;
pub use hygiene::{extract_code, extract_prose};
use targets::{Definition, DefinitionKind};

/// The actions Glint offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionKind {
    /// Write the body of a function whose body is empty or a placeholder.
    CompleteBody,
    /// Write or update the doc comment of the function or type under the cursor.
    Document,
    /// Fix one diagnostic.
    Fix,
    /// Rewrite the selection by an instruction.
    Rewrite,
    /// Generate a unit test for the function under the cursor.
    Test,
}

impl ActionKind {
    pub const ALL: [ActionKind; 5] =
        [ActionKind::CompleteBody, ActionKind::Document, ActionKind::Fix, ActionKind::Rewrite, ActionKind::Test];

    /// The LSP code action kind, hierarchical so that clients can ask for one of them.
    pub fn code_action_kind(self) -> &'static str {
        match self {
            ActionKind::CompleteBody => "refactor.rewrite.glint.completeBody",
            ActionKind::Document => "refactor.rewrite.glint.document",
            ActionKind::Fix => "quickfix.glint.fix",
            ActionKind::Rewrite => "refactor.rewrite.glint.rewrite",
            ActionKind::Test => "refactor.glint.test",
        }
    }

    /// The short name used in action data and logs.
    pub fn id(self) -> &'static str {
        match self {
            ActionKind::CompleteBody => "completeBody",
            ActionKind::Document => "document",
            ActionKind::Fix => "fix",
            ActionKind::Rewrite => "rewrite",
            ActionKind::Test => "test",
        }
    }

    pub fn from_id(id: &str) -> Option<ActionKind> {
        ActionKind::ALL.into_iter().find(|k| k.id() == id)
    }
}

/// Every action title starts with this.
pub const TITLE_PREFIX: &str = "Glint: ";

/// A diagnostic the client sent with the request, in rope chars.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub start: usize,
    pub end: usize,
    pub message: String,
}

/// An action that makes sense at the requested range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub kind: ActionKind,
    pub title: String,
    /// For `Fix`: the index of the diagnostic in the request's list.
    pub diagnostic: Option<usize>,
}

/// The actions at the char range `start..end` of `doc`, most specific first. Calls no model.
pub fn list(doc: &Document, start: usize, end: usize, diagnostics: &[Diagnostic]) -> Vec<Candidate> {
    let len = doc.rope.len_chars();
    let (start, end) = (start.min(end).min(len), start.max(end).min(len));
    let mut out = Vec::new();
    for (index, diagnostic) in diagnostics.iter().enumerate() {
        // Overlap, with an empty range touching a diagnostic counting as inside it.
        if diagnostic.start <= end && start <= diagnostic.end {
            out.push(Candidate {
                kind: ActionKind::Fix,
                title: format!("{TITLE_PREFIX}Fix `{}`", short(&diagnostic.message, 60)),
                diagnostic: Some(index),
            });
        }
    }
    if let Some(def) = targets::definition_at(doc, start) {
        if def.kind == DefinitionKind::Function && def.placeholder_body {
            out.push(candidate(ActionKind::CompleteBody, format!("Complete the body of `{}`", def.name)));
        }
        let verb = if def.doc_comment.is_some() { "Update" } else { "Write" };
        out.push(candidate(ActionKind::Document, format!("{verb} the doc comment of `{}`", def.name)));
        if def.kind == DefinitionKind::Function && tests_supported(doc.lang) && !def.placeholder_body {
            out.push(candidate(ActionKind::Test, format!("Generate a test for `{}`", def.name)));
        }
    }
    if start < end {
        out.push(candidate(ActionKind::Rewrite, "Rewrite the selection…".into()));
    }
    out
}

fn candidate(kind: ActionKind, title: String) -> Candidate {
    Candidate { kind, title: format!("{TITLE_PREFIX}{title}"), diagnostic: None }
}

fn short(text: &str, max_chars: usize) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    match line.char_indices().nth(max_chars) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line.to_string(),
    }
}

fn tests_supported(lang: Option<Lang>) -> bool {
    matches!(lang, Some(Lang::Rust | Lang::Python | Lang::JavaScript | Lang::TypeScript | Lang::Tsx))
}

/// One replacement in the original document, in rope chars.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub start: usize,
    pub end: usize,
    pub text: String,
}

/// How to ask the engine for an action, and how its answer becomes an edit.
#[derive(Debug, Clone)]
pub enum Plan {
    /// Complete `doc` (a copy of the document with a hole) at `cursor`, like a multi-line
    /// completion. The completion is put into the hole: `before + completion + after` replaces
    /// `start..end` of the original document.
    Fill { doc: Document, cursor: usize, start: usize, end: usize, before: String, after: String },
    /// Ask `task` about `code`; the answer replaces `start..end` (shaped by `shape`).
    Instruct { code: String, task: Task, start: usize, end: usize, shape: Shape },
}

/// What kind of text an instruction's answer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// Code for whole lines: fences and chatter stripped, reindented to `indent`.
    Lines { indent: String },
    /// Code inserted at a point: `before`, the code reindented to `indent`, `after`. The code
    /// must contain `must_contain` (a test must be a test).
    Insert { before: String, indent: String, after: String, must_contain: String },
    /// Prose for a doc comment, formatted in the language's convention.
    DocComment { style: DocStyle, indent: String, name: String },
}

/// A language's doc comment convention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocStyle {
    /// `/// text` (Rust).
    TripleSlash,
    /// `"""text"""` as the first statement of the body (Python).
    Docstring,
    /// `/** ... */` (JSDoc, Javadoc).
    Block,
    /// `/** @brief ... */` (Doxygen, C and C++).
    Doxygen,
    /// `// Name does ...` (Go).
    GoComment,
}

/// What `plan` needs besides the document.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The requested range, in rope chars.
    pub start: usize,
    pub end: usize,
    /// For `Fix`.
    pub diagnostic: Option<Diagnostic>,
    /// For `Rewrite`; a sensible default when empty.
    pub instruction: Option<String>,
}

/// Plans `kind` at the request's range, or says why it cannot be done there.
pub fn plan(doc: &Document, kind: ActionKind, request: &Request) -> Result<Plan, String> {
    let len = doc.rope.len_chars();
    let (start, end) = (request.start.min(request.end).min(len), request.start.max(request.end).min(len));
    let language = doc.language_id.to_string();
    match kind {
        ActionKind::CompleteBody => {
            let def = function_at(doc, start)?;
            targets::body_hole(doc, &def).ok_or_else(|| format!("`{}` has no body to complete", def.name))
        }
        ActionKind::Test => {
            let def = function_at(doc, start)?;
            targets::test_scaffold(doc, &def).ok_or_else(|| "tests are not supported for this language yet".into())
        }
        ActionKind::Document => {
            let def = targets::definition_at(doc, start).ok_or("no function or type at the cursor")?;
            let (start, end, style, indent) = targets::doc_comment_target(doc, &def)?;
            Ok(Plan::Instruct {
                code: def.text.clone(),
                task: prompts::document(&language, &def.name),
                start,
                end,
                shape: Shape::DocComment { style, indent, name: def.name.clone() },
            })
        }
        ActionKind::Fix => {
            let diagnostic = request.diagnostic.as_ref().ok_or("no diagnostic to fix")?;
            let (start, end) = targets::fix_region(doc, diagnostic.start, diagnostic.end);
            let code = doc.rope.slice(start..end).to_string();
            let line = doc.rope.char_to_line(diagnostic.start.min(len)) - doc.rope.char_to_line(start) + 1;
            Ok(Plan::Instruct {
                task: prompts::fix(&language, &diagnostic.message, line as u32),
                shape: Shape::Lines { indent: hygiene::indent_of(&code) },
                code,
                start,
                end,
            })
        }
        ActionKind::Rewrite => {
            if start == end {
                return Err("select the code to rewrite first".into());
            }
            let (start, end) = targets::whole_lines(doc, start, end);
            let code = doc.rope.slice(start..end).to_string();
            let instruction = request
                .instruction
                .as_deref()
                .map(str::trim)
                .filter(|i| !i.is_empty())
                .unwrap_or(prompts::DEFAULT_REWRITE);
            Ok(Plan::Instruct {
                task: prompts::rewrite(&language, instruction),
                shape: Shape::Lines { indent: hygiene::indent_of(&code) },
                code,
                start,
                end,
            })
        }
    }
}

/// A second way to do `kind` when the first plan's answers do not give a valid edit: a test
/// written by instruction instead of filled into a scaffold. `None` when there is none.
pub fn fallback(doc: &Document, kind: ActionKind, request: &Request) -> Option<Plan> {
    if kind != ActionKind::Test {
        return None;
    }
    let def = function_at(doc, request.start.min(request.end)).ok()?;
    targets::test_by_instruction(doc, &def, prompts::test(&doc.language_id, &def.name))
}

fn function_at(doc: &Document, at: usize) -> Result<Definition, String> {
    match targets::definition_at(doc, at) {
        Some(def) if def.kind == DefinitionKind::Function => Ok(def),
        _ => Err("no function at the cursor".into()),
    }
}

impl Plan {
    /// The edit the engine's answer makes, checked to parse without new errors.
    pub fn finish(&self, original: &Document, answer: &str) -> Result<Edit, String> {
        let newline = hygiene::line_ending(original);
        let edit = match self {
            Plan::Fill { start, end, before, after, .. } => {
                if answer.trim().is_empty() {
                    return Err("the model wrote nothing".into());
                }
                let text = format!("{before}{answer}{after}");
                Edit { start: *start, end: *end, text: hygiene::with_line_ending(&text, newline) }
            }
            Plan::Instruct { code, start, end, shape, .. } => {
                let text = match shape {
                    Shape::Lines { indent } => {
                        let code_answer = hygiene::code_answer(answer)?;
                        let mut text = hygiene::reindent(&code_answer, indent);
                        if code.ends_with('\n') && !text.ends_with('\n') {
                            text.push('\n');
                        }
                        if text.trim() == code.trim() {
                            return Err("the model's answer changes nothing".into());
                        }
                        text
                    }
                    Shape::Insert { before, indent, after, must_contain } => {
                        let mut code_answer = hygiene::code_answer(answer)?;
                        if !code_answer.contains(must_contain.as_str()) {
                            return Err(format!("the model's answer holds no `{must_contain}`"));
                        }
                        if original.lang == Some(Lang::Rust) && !code_answer.contains("#[test]") {
                            code_answer = format!("#[test]\n{}", code_answer.trim_start());
                        }
                        format!("{before}{}{after}", hygiene::reindent(&code_answer, indent))
                    }
                    Shape::DocComment { style, indent, name } => {
                        let prose = hygiene::doc_prose(answer, name)?;
                        hygiene::format_doc_comment(&prose, *style, indent, name, start == end)
                    }
                };
                Edit { start: *start, end: *end, text: hygiene::with_line_ending(&text, newline) }
            }
        };
        hygiene::check_parses(original, &edit)?;
        Ok(edit)
    }
}
