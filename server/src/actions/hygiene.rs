//! The model's text is parsed, not trusted: markdown fences and chatter are stripped, code is
//! reindented to its place, prose is formatted as the language's doc comment, and the edited
//! document is reparsed so that an edit never adds syntax errors.

use super::{DocStyle, Edit};
use crate::document::Document;

/// The code in a model's answer: the first fenced block when there is one (closed or not),
/// otherwise the answer without the chatter lines around the code. `None` when nothing is left.
pub fn extract_code(answer: &str) -> Option<String> {
    let answer = answer.replace("\r\n", "\n");
    let lines: Vec<&str> = answer.lines().collect();
    if let Some(open) = lines.iter().position(|l| l.trim_start().starts_with("```")) {
        let body: Vec<&str> =
            lines[open + 1..].iter().take_while(|l| !l.trim_start().starts_with("```")).copied().collect();
        let code = body.join("\n");
        return (!code.trim().is_empty()).then_some(code);
    }
    let is_chatter = |line: &str| {
        let t = line.trim();
        let lower = t.to_ascii_lowercase();
        (t.ends_with(':') && !t.contains('(') && t.split_whitespace().count() > 2 && !looks_like_code(t))
            || lower.starts_with("here is")
            || lower.starts_with("here's")
            || lower.starts_with("sure")
            || lower.starts_with("certainly")
            || lower.starts_with("this code")
            || lower.starts_with("the code")
            || lower.starts_with("i have")
            || lower.starts_with("i've")
            || lower.starts_with("explanation")
            || lower.starts_with("note:")
    };
    let start = lines.iter().position(|l| !l.trim().is_empty() && !is_chatter(l))?;
    let mut end = lines.len();
    // Stop at the first chatter line after the code.
    if let Some(chatter) = lines[start..].iter().position(|l| is_chatter(l) || is_sentence(l)) {
        end = start + chatter;
    }
    let code = lines[start..end].join("\n");
    let code = code.trim_end().to_string();
    (!code.trim().is_empty()).then_some(code)
}

fn looks_like_code(line: &str) -> bool {
    let first = line.split_whitespace().next().unwrap_or("");
    matches!(
        first,
        "def" | "class" | "if" | "elif" | "else:" | "for" | "while" | "try:" | "except" | "with" | "match" | "case"
    )
}

/// Prose for a doc comment: fenced code and code-looking lines dropped, comment markers removed,
/// at most a few sentences. `None` when no words are left.
pub fn extract_prose(answer: &str, name: &str) -> Option<String> {
    let answer = answer.replace("\r\n", "\n");
    let mut words = Vec::new();
    let mut in_fence = false;
    for line in answer.lines() {
        let t = line.trim();
        if t.starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        let t = t
            .trim_start_matches("///")
            .trim_start_matches("//")
            .trim_start_matches("/**")
            .trim_start_matches("*/")
            .trim_start_matches('*')
            .trim_start_matches('#')
            .trim_end_matches("*/")
            .trim_matches('"')
            .trim();
        let t = strip_interjection(t);
        let lower = t.to_ascii_lowercase();
        let code_like = t.ends_with('{')
            || t.ends_with(';')
            || t.starts_with("fn ")
            || t.starts_with("def ")
            || t.starts_with("pub ")
            || t.starts_with("func ")
            || t.starts_with("function ")
            || t.starts_with('@')
            || t.starts_with('}')
            || t.contains("=>");
        if t.is_empty() || code_like || lower.starts_with("here is") || lower.starts_with("here's") {
            if !words.is_empty() && t.is_empty() {
                // A paragraph break ends the description.
                break;
            }
            continue;
        }
        words.extend(t.split_whitespace().map(str::to_string));
        if words.len() > 80 {
            break;
        }
    }
    let mut text = words.join(" ");
    text = keep_sentences(&text, 3);
    let text = text.trim().trim_start_matches(name).trim().to_string();
    if text.split_whitespace().count() < 2 {
        return None;
    }
    let mut chars = text.chars();
    let first = chars.next()?;
    let mut text = format!("{}{}", first.to_uppercase(), chars.as_str());
    if !text.ends_with(['.', '!', '?']) {
        text.push('.');
    }
    Some(text)
}

/// The prose of a doc comment for `name`, or why the answer is no documentation: nothing left
/// after extraction, a restatement of the request ("The documentation for `greet` is:"), an
/// introduction without what it introduces, or words that say nothing beyond the name. The
/// reason becomes the action's error, so the retry loop tries again and the user learns why.
pub fn doc_prose(answer: &str, name: &str) -> Result<String, String> {
    let prose = extract_prose(answer, name).ok_or("the model's answer held no description")?;
    match prose_problem(&prose, name) {
        Some(problem) => Err(format!("the model's description {problem} ({prose:?})")),
        None => Ok(prose),
    }
}

/// The code of an answer that should be code, or why it is not: nothing left after extraction,
/// or only sentences that describe a change instead of making it.
pub fn code_answer(answer: &str) -> Result<String, String> {
    let code = extract_code(answer).ok_or("the model's answer held no code")?;
    if describes_instead_of_code(&code) {
        return Err(format!("the model described the change instead of writing code ({:?})", short(&code)));
    }
    Ok(code)
}

// How a model talks about the documentation it was asked for instead of writing it: one of
// these nouns, "for" or "of", then the definition itself ("The documentation for `greet`").
const DOC_NOUNS: &[&str] = &["documentation", "docstring", "doc comment", "comment", "description", "summary"];
const SELF_REFERENCES: &[&str] = &[
    "the function",
    "this function",
    "the method",
    "this method",
    "the class",
    "this class",
    "the code",
    "this code",
    "the above",
    "it",
    "this",
];
const RESTATEMENT_OPENINGS: &[&str] =
    &["this docstring", "this documentation", "this comment", "i will", "i'll", "let me", "here is", "here's"];

// Words that carry no meaning of their own in a one-line description of a definition.
const EMPTY_WORDS: &[&str] = &[
    "a",
    "an",
    "the",
    "this",
    "that",
    "is",
    "are",
    "be",
    "of",
    "for",
    "to",
    "in",
    "it",
    "its",
    "and",
    "or",
    "function",
    "method",
    "class",
    "struct",
    "type",
    "interface",
    "enum",
    "code",
    "definition",
    "above",
    "below",
    "given",
    "following",
    "documentation",
    "docstring",
    "comment",
    "here",
    "named",
    "called",
];

/// Why `prose` (from `extract_prose`) documents nothing, or `None` when it is a description.
pub fn prose_problem(prose: &str, name: &str) -> Option<&'static str> {
    let plain = prose.replace('`', "");
    let lower = plain.to_lowercase();
    let body = lower.trim_end_matches(['.', '!', '?']).trim_end();
    if body.ends_with(':') {
        return Some("introduces a description instead of giving one");
    }
    let name = name.to_lowercase();
    let names_itself = DOC_NOUNS.iter().any(|noun| {
        [" for ", " of "].iter().any(|link| {
            let phrase = format!("{noun}{link}");
            lower.match_indices(&phrase).any(|(at, _)| {
                let rest = &lower[at + phrase.len()..];
                let is_word_end = |tail: &str| tail.chars().next().is_none_or(|c| !c.is_alphanumeric() && c != '_');
                (!name.is_empty() && rest.starts_with(&name) && is_word_end(&rest[name.len()..]))
                    || SELF_REFERENCES.iter().any(|r| rest.starts_with(r) && is_word_end(&rest[r.len()..]))
            })
        })
    });
    if names_itself
        || lower.contains("as requested")
        || RESTATEMENT_OPENINGS.iter().any(|opening| lower.starts_with(opening))
    {
        return Some("restates the request instead of documenting");
    }
    let says_something = lower
        .split(|c: char| !c.is_alphanumeric() && c != '_')
        .filter(|word| !word.is_empty())
        .any(|word| word != name && !EMPTY_WORDS.contains(&word));
    if !says_something {
        return Some("says nothing about it");
    }
    None
}

/// Whether every line of an answer that should be code is an English sentence: several words,
/// a capital first letter, mostly plain words, and none of the punctuation code is made of.
fn describes_instead_of_code(code: &str) -> bool {
    let lines: Vec<&str> = code.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    !lines.is_empty()
        && lines.iter().all(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let plain = words
                .iter()
                .filter(|w| w.trim_end_matches(['.', ',', '!', '?']).chars().all(|c| c.is_alphabetic() || c == '\''))
                .count();
            words.len() >= 4
                && line.starts_with(|c: char| c.is_uppercase())
                && plain * 5 >= words.len() * 4
                && !line.contains(['(', ')', '{', '}', '[', ']', ';', '=', '<', '>'])
        })
}

fn short(text: &str) -> String {
    let first = text.lines().next().unwrap_or("");
    if first.chars().count() > 80 {
        format!("{}…", first.chars().take(80).collect::<String>())
    } else {
        first.to_string()
    }
}

/// `Sure! Returns x` → `Returns x`.
fn strip_interjection(line: &str) -> &str {
    for word in ["Sure", "Certainly", "Of course", "Okay", "OK"] {
        if let Some(rest) = line.strip_prefix(word)
            && let Some(rest) = rest.strip_prefix(['!', ',', '.'])
        {
            return rest.trim_start();
        }
    }
    line
}

/// A sentence of explanation rather than code: several words, ends with a period, no code marks.
fn is_sentence(line: &str) -> bool {
    let t = line.trim();
    t.split_whitespace().count() >= 3
        && t.ends_with('.')
        && t.chars().next().is_some_and(char::is_uppercase)
        && !t.contains(['=', '(', '{', ';', '#'])
}

fn keep_sentences(text: &str, max: usize) -> String {
    let mut count = 0;
    for (i, c) in text.char_indices() {
        if c == '.' && text[i + 1..].starts_with(' ') {
            count += 1;
            if count == max {
                return text[..=i].to_string();
            }
        }
    }
    text.to_string()
}

/// The indentation of the first non-blank line.
pub fn indent_of(code: &str) -> String {
    code.lines()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.chars().take_while(|c| *c == ' ' || *c == '\t').collect())
        .unwrap_or_default()
}

/// `code` moved so that its least indented line sits at `indent`.
pub fn reindent(code: &str, indent: &str) -> String {
    let lines: Vec<&str> = code.lines().collect();
    let common = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.chars().take_while(|c| *c == ' ' || *c == '\t').count())
        .min()
        .unwrap_or(0);
    let mut out = String::new();
    for line in lines {
        if line.trim().is_empty() {
            out.push('\n');
            continue;
        }
        let rest: String = line.chars().skip(common).collect();
        out.push_str(indent);
        out.push_str(rest.trim_end());
        out.push('\n');
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

/// The document's line ending: `\r\n` when its first line ends so.
pub fn line_ending(doc: &Document) -> &'static str {
    let first = doc.rope.lines().next().map(|l| l.to_string()).unwrap_or_default();
    if first.ends_with("\r\n") { "\r\n" } else { "\n" }
}

pub fn with_line_ending(text: &str, newline: &str) -> String {
    if newline == "\n" { text.replace("\r\n", "\n") } else { text.replace("\r\n", "\n").replace('\n', newline) }
}

const WIDTH: usize = 96;

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// `prose` as a doc comment in `style`. Comments above a definition are whole lines at `indent`;
/// a docstring is the string alone, followed by a break and `indent` when `insert` (it then goes
/// in front of the body's first statement).
pub fn format_doc_comment(prose: &str, style: DocStyle, indent: &str, name: &str, insert: bool) -> String {
    let width = WIDTH.saturating_sub(indent.len() + 4).max(40);
    match style {
        DocStyle::TripleSlash => wrap(prose, width).iter().map(|l| format!("{indent}/// {l}\n")).collect(),
        DocStyle::GoComment => {
            let sentence = if prose.starts_with(name) {
                prose.to_string()
            } else {
                let mut chars = prose.chars();
                let first = chars.next().map(|c| c.to_lowercase().to_string()).unwrap_or_default();
                format!("{name} {first}{}", chars.as_str())
            };
            wrap(&sentence, width).iter().map(|l| format!("{indent}// {l}\n")).collect()
        }
        DocStyle::Block | DocStyle::Doxygen => {
            let prose = if style == DocStyle::Doxygen { format!("@brief {prose}") } else { prose.to_string() };
            let mut out = format!("{indent}/**\n");
            for line in wrap(&prose, width) {
                out.push_str(&format!("{indent} * {line}\n"));
            }
            out.push_str(&format!("{indent} */\n"));
            out
        }
        DocStyle::Docstring => {
            let prose = prose.replace("\"\"\"", "'''");
            let lines = wrap(&prose, width);
            let mut out = if lines.len() == 1 {
                format!("\"\"\"{}\"\"\"", lines[0])
            } else {
                let mut out = format!("\"\"\"{}\n", lines[0]);
                for line in &lines[1..] {
                    out.push_str(&format!("{indent}{line}\n"));
                }
                out.push_str(&format!("{indent}\"\"\""));
                out
            };
            if insert {
                out.push('\n');
                out.push_str(indent);
            }
            out
        }
    }
}

/// Fails when applying `edit` to `doc` adds syntax errors. Documents without a grammar pass.
pub fn check_parses(doc: &Document, edit: &Edit) -> Result<(), String> {
    let Some(tree) = &doc.tree else { return Ok(()) };
    let before = count_errors(tree.root_node());
    let mut rope = doc.rope.clone();
    let len = rope.len_chars();
    let (start, end) = (edit.start.min(len), edit.end.min(len));
    rope.remove(start..end);
    rope.insert(start, &edit.text);
    let edited = Document::new(&doc.uri, &doc.language_id, doc.version, &rope.to_string());
    let Some(edited_tree) = &edited.tree else { return Ok(()) };
    let after = count_errors(edited_tree.root_node());
    if after > before {
        return Err(format!("the model's code does not parse ({} new syntax errors)", after - before));
    }
    Ok(())
}

fn count_errors(root: tree_sitter::Node) -> usize {
    if !root.has_error() {
        return 0;
    }
    let mut count = 0;
    let mut cursor = root.walk();
    let mut descend = true;
    loop {
        let node = cursor.node();
        if descend && (node.is_error() || node.is_missing()) {
            count += 1;
        }
        if descend && node.has_error() && !node.is_error() && cursor.goto_first_child() {
            continue;
        }
        if cursor.goto_next_sibling() {
            descend = true;
            continue;
        }
        if !cursor.goto_parent() {
            return count;
        }
        descend = false;
    }
}
