//! Where actions apply: the function or type under the cursor, its body, its doc comment, and
//! where a language puts its tests. Found with tree-sitter; positions are rope chars.

use tree_sitter::Node;

use super::{DocStyle, Plan};
use crate::document::Document;
use crate::syntax::Lang;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefinitionKind {
    Function,
    Type,
}

/// A function or type definition.
#[derive(Debug, Clone)]
pub struct Definition {
    pub kind: DefinitionKind,
    pub name: String,
    /// The definition itself (without attributes, decorators or doc comment).
    pub start: usize,
    pub end: usize,
    /// Where a new doc comment goes: the start of the line of the first attribute, decorator or
    /// `export` in front of the definition.
    pub head: usize,
    /// The definition's text, for prompts.
    pub text: String,
    /// Body braces (brace languages) or the body block (Python), in chars.
    pub body: Option<(usize, usize)>,
    /// The body is empty or a placeholder (`todo!()`, `pass`, `...`, `throw new Error(..)`).
    pub placeholder_body: bool,
    /// An existing doc comment: whole lines (brace languages) or the docstring (Python).
    pub doc_comment: Option<(usize, usize)>,
}

const FUNCTIONS: &[&str] = &[
    "function_item",
    "function_definition",
    "function_declaration",
    "generator_function_declaration",
    "method_definition",
    "method_declaration",
    "constructor_declaration",
    "arrow_function",
    "function_expression",
];

const TYPES: &[&str] = &[
    "struct_item",
    "enum_item",
    "trait_item",
    "union_item",
    "type_item",
    "class_definition",
    "class_declaration",
    "abstract_class_declaration",
    "interface_declaration",
    "type_alias_declaration",
    "enum_declaration",
    "record_declaration",
    "type_declaration",
    "class_specifier",
    "struct_specifier",
];

/// The innermost function or type around `at`.
pub fn definition_at(doc: &Document, at: usize) -> Option<Definition> {
    let tree = doc.tree.as_ref()?;
    let rope = &doc.rope;
    let byte = rope.char_to_byte(at.min(rope.len_chars()));
    let mut node = tree.root_node().descendant_for_byte_range(byte, byte)?;
    loop {
        let kind = node.kind();
        let is_function = FUNCTIONS.contains(&kind) && function_is_named(node);
        let is_type = TYPES.contains(&kind) && type_has_body(node);
        if is_function || is_type {
            let name = name_of(doc, node)?;
            return Some(build(
                doc,
                node,
                name,
                if is_function { DefinitionKind::Function } else { DefinitionKind::Type },
            ));
        }
        node = node.parent()?;
    }
}

/// Anonymous functions only count when bound to a name (`const f = () => {..}`).
fn function_is_named(node: Node) -> bool {
    match node.kind() {
        "arrow_function" | "function_expression" => node.parent().is_some_and(|p| p.kind() == "variable_declarator"),
        _ => true,
    }
}

/// `struct Foo;` or a C forward declaration is not worth a doc action; a C `struct` with a body is.
fn type_has_body(node: Node) -> bool {
    match node.kind() {
        "struct_specifier" | "class_specifier" => node.child_by_field_name("body").is_some(),
        _ => true,
    }
}

fn text(doc: &Document, node: Node) -> String {
    let rope = &doc.rope;
    let len = rope.len_bytes();
    let (start, end) = (node.start_byte().min(len), node.end_byte().min(len));
    rope.byte_slice(start..end).to_string()
}

fn char_at(doc: &Document, byte: usize) -> usize {
    doc.rope.byte_to_char(byte.min(doc.rope.len_bytes()))
}

fn name_of(doc: &Document, node: Node) -> Option<String> {
    if let Some(name) = node.child_by_field_name("name") {
        return Some(text(doc, name));
    }
    match node.kind() {
        "arrow_function" | "function_expression" => {
            node.parent().and_then(|p| p.child_by_field_name("name")).map(|n| text(doc, n))
        }
        // Go: `type Foo struct {..}` names its type_spec.
        "type_declaration" => {
            let mut cursor = node.walk();
            let spec = node.named_children(&mut cursor).find(|c| c.kind() == "type_spec")?;
            spec.child_by_field_name("name").map(|n| text(doc, n))
        }
        // C and C++: the name hides in nested declarators.
        _ => {
            let mut declarator = node.child_by_field_name("declarator")?;
            for _ in 0..8 {
                match declarator.child_by_field_name("declarator") {
                    Some(inner) => declarator = inner,
                    None => break,
                }
            }
            Some(text(doc, declarator))
        }
    }
}

/// The node the definition's comments and attributes attach to: `export` statements, Python
/// decorators, C++ templates, a `const f = () => ..` declaration.
fn outer(node: Node) -> Node {
    let mut outer = node;
    if matches!(node.kind(), "arrow_function" | "function_expression")
        && let Some(declaration) = node.parent().and_then(|declarator| declarator.parent())
    {
        outer = declaration;
    }
    while let Some(parent) = outer.parent() {
        if matches!(parent.kind(), "export_statement" | "decorated_definition" | "template_declaration") {
            outer = parent;
        } else {
            break;
        }
    }
    outer
}

fn build(doc: &Document, node: Node, name: String, kind: DefinitionKind) -> Definition {
    let outer = outer(node);
    // Rust attributes and Java annotations are siblings in front of the definition.
    let mut first = outer;
    while let Some(previous) = first.prev_named_sibling() {
        if matches!(previous.kind(), "attribute_item" | "decorator")
            && previous.end_position().row + 1 >= first.start_position().row
        {
            first = previous;
        } else {
            break;
        }
    }
    let head_line = doc.rope.byte_to_line(first.start_byte().min(doc.rope.len_bytes()));
    let head = doc.rope.line_to_char(head_line);
    let body_node = node.child_by_field_name("body");
    let body = body_node.map(|b| (char_at(doc, b.start_byte()), char_at(doc, b.end_byte())));
    let placeholder_body = body_node.is_some_and(|b| is_placeholder(&text(doc, b)));
    let doc_comment = if doc.lang == Some(Lang::Python) {
        body_node.and_then(|b| python_docstring(doc, b))
    } else {
        comment_above(doc, first)
    };
    Definition {
        kind,
        name,
        start: char_at(doc, node.start_byte()),
        end: char_at(doc, node.end_byte()),
        head,
        text: text(doc, outer),
        body,
        placeholder_body,
        doc_comment,
    }
}

/// Whether a body's text is empty or a placeholder.
pub fn is_placeholder(body: &str) -> bool {
    let inner = body.trim();
    let inner = inner.strip_prefix('{').and_then(|b| b.strip_suffix('}')).unwrap_or(inner);
    let code: String = inner
        .lines()
        .map(str::trim)
        .filter(|l| !(l.is_empty() || l.starts_with("//") || l.starts_with('#')))
        .collect::<Vec<_>>()
        .join(" ");
    let code = code.trim().trim_end_matches(';').trim();
    const PLACEHOLDERS: &[&str] = &[
        "todo!(",
        "unimplemented!(",
        "throw new Error(",
        "throw new UnsupportedOperationException(",
        "raise NotImplementedError",
        "panic(\"not implemented",
        "panic(\"TODO",
        "panic(\"todo",
    ];
    code.is_empty() || code == "pass" || code == "..." || PLACEHOLDERS.iter().any(|p| code.starts_with(p))
}

/// A doc comment directly above `first` (no blank line between): whole lines, in chars.
fn comment_above(doc: &Document, first: Node) -> Option<(usize, usize)> {
    let mut top: Option<Node> = None;
    let mut below = first;
    while let Some(previous) = below.prev_sibling() {
        let is_comment = matches!(previous.kind(), "line_comment" | "block_comment" | "comment");
        if !is_comment || previous.end_position().row + 1 < below.start_position().row {
            break;
        }
        let content = text(doc, previous);
        let is_doc = match doc.lang {
            Some(Lang::Go) => content.starts_with("//"),
            Some(Lang::Rust) => content.starts_with("///") || content.starts_with("/**"),
            _ => content.starts_with("/**") || content.starts_with("///"),
        };
        if !is_doc {
            break;
        }
        top = Some(previous);
        below = previous;
    }
    let top = top?;
    let start_line = doc.rope.byte_to_line(top.start_byte());
    let end_line = doc.rope.byte_to_line(first.start_byte().min(doc.rope.len_bytes()));
    Some((doc.rope.line_to_char(start_line), doc.rope.line_to_char(end_line)))
}

/// A Python docstring: the body's first statement when it is a string.
fn python_docstring(doc: &Document, body: Node) -> Option<(usize, usize)> {
    let first = body.named_child(0)?;
    if first.kind() != "expression_statement" || first.named_child(0)?.kind() != "string" {
        return None;
    }
    Some((char_at(doc, first.start_byte()), char_at(doc, first.end_byte())))
}

/// The indentation of the line holding char `at`.
pub fn line_indent(doc: &Document, at: usize) -> String {
    let line = doc.rope.char_to_line(at.min(doc.rope.len_chars()));
    doc.rope.line(line).chars().take_while(|c| *c == ' ' || *c == '\t').collect()
}

/// One level of indentation in this document.
pub fn indent_unit(doc: &Document) -> String {
    if doc.lang == Some(Lang::Go) {
        return "\t".into();
    }
    for line in doc.rope.lines().take(2000) {
        let first = line.chars().next();
        if first == Some('\t') {
            return "\t".into();
        }
        if first == Some(' ') {
            let spaces = line.chars().take_while(|c| *c == ' ').count();
            if (2..=8).contains(&spaces) && line.chars().nth(spaces).is_some_and(|c| !c.is_whitespace()) {
                return " ".repeat(spaces.min(4));
            }
        }
    }
    if matches!(doc.lang, Some(Lang::JavaScript | Lang::TypeScript | Lang::Tsx)) { "  ".into() } else { "    ".into() }
}

/// Where the doc comment of `def` goes: the range to replace, the style and the indentation.
pub fn doc_comment_target(doc: &Document, def: &Definition) -> Result<(usize, usize, DocStyle, String), String> {
    let style = match doc.lang {
        Some(Lang::Rust) => DocStyle::TripleSlash,
        Some(Lang::Python) => DocStyle::Docstring,
        Some(Lang::Go) => DocStyle::GoComment,
        Some(Lang::C | Lang::Cpp) => DocStyle::Doxygen,
        Some(Lang::JavaScript | Lang::TypeScript | Lang::Tsx | Lang::Java) => DocStyle::Block,
        None => return Err("no syntax for this language".into()),
    };
    if style == DocStyle::Docstring {
        let (body_start, _) = def.body.ok_or("the definition has no body")?;
        if doc.rope.char_to_line(body_start) == doc.rope.char_to_line(def.start) {
            return Err("one-line definitions cannot take a docstring".into());
        }
        let indent = line_indent(doc, body_start);
        return Ok(match def.doc_comment {
            Some((start, end)) => (start, end, style, indent),
            // Before the first statement, which keeps its own indentation after the new line.
            None => (body_start, body_start, style, indent),
        });
    }
    let indent = line_indent(doc, def.head);
    Ok(match def.doc_comment {
        Some((start, end)) => (start, end, style, indent),
        None => (def.head, def.head, style, indent),
    })
}

/// A fill-in document for the body of `def`: the body emptied, the cursor on an indented line.
pub fn body_hole(doc: &Document, def: &Definition) -> Option<Plan> {
    let (body_start, body_end) = def.body?;
    let rope = &doc.rope;
    let header_indent = line_indent(doc, def.start);
    let inner_indent = format!("{header_indent}{}", indent_unit(doc));
    let braces = rope.char(body_start) == '{' && body_end > body_start && rope.char(body_end - 1) == '}';
    let (start, end, before, after) = if braces {
        (body_start + 1, body_end - 1, format!("\n{inner_indent}"), format!("\n{header_indent}"))
    } else if doc.lang == Some(Lang::Python) && rope.char_to_line(body_start) != rope.char_to_line(def.start) {
        (body_start, body_end, String::new(), String::new())
    } else {
        return None;
    };
    let mut hole = rope.clone();
    hole.remove(start..end);
    hole.insert(start, &before);
    let cursor = start + before.chars().count();
    if !after.is_empty() {
        hole.insert(cursor, &after);
    }
    let hole = Document::new(&doc.uri, &doc.language_id, doc.version, &hole.to_string());
    Some(Plan::Fill { doc: hole, cursor, start, end, before, after })
}

/// A test scaffold for `def` where the language keeps tests, with the cursor in the test body.
pub fn test_scaffold(doc: &Document, def: &Definition) -> Option<Plan> {
    let rope = &doc.rope;
    let len = rope.len_chars();
    let base = test_name(doc, &def.name);
    let ends_with_newline = len > 0 && rope.char(len - 1) == '\n';
    let lead = if ends_with_newline { "\n" } else { "\n\n" };
    let (at, before, after) = match doc.lang? {
        Lang::Rust => match rust_tests_module(doc) {
            Some(close) => {
                let unit = indent_unit(doc);
                let indent = format!("{unit}{unit}");
                (close, format!("\n{unit}#[test]\n{unit}fn {base}() {{\n{indent}"), format!("\n{unit}}}\n"))
            }
            None => {
                let unit = indent_unit(doc);
                (
                    len,
                    format!(
                        "{lead}#[cfg(test)]\nmod tests {{\n{unit}use super::*;\n\n{unit}#[test]\n{unit}fn {base}() {{\n{unit}{unit}"
                    ),
                    format!("\n{unit}}}\n}}\n"),
                )
            }
        },
        Lang::Python => {
            let unit = indent_unit(doc);
            let at = python_main_guard(doc).unwrap_or(len);
            let (lead, tail) = if at == len { (format!("{lead}\n"), "\n") } else { ("\n".to_string(), "\n\n\n") };
            (at, format!("{lead}def {base}():\n{unit}"), tail.to_string())
        }
        Lang::JavaScript | Lang::TypeScript | Lang::Tsx => {
            let unit = indent_unit(doc);
            (len, format!("{lead}test(\"{}\", () => {{\n{unit}", def.name), "\n});\n".to_string())
        }
        _ => return None,
    };
    let mut filled = rope.clone();
    filled.insert(at, &format!("{before}{after}"));
    let cursor = at + before.chars().count();
    let hole = Document::new(&doc.uri, &doc.language_id, doc.version, &filled.to_string());
    Some(Plan::Fill { doc: hole, cursor, start: at, end: at, before, after })
}

/// Where a test written by instruction goes, and what wraps it there.
pub fn test_by_instruction(doc: &Document, def: &Definition, task: glint_engine::Task) -> Option<Plan> {
    let rope = &doc.rope;
    let len = rope.len_chars();
    let ends_with_newline = len > 0 && rope.char(len - 1) == '\n';
    let lead = if ends_with_newline { "\n" } else { "\n\n" };
    let unit = indent_unit(doc);
    let (at, before, indent, after, must_contain) = match doc.lang? {
        Lang::Rust => match rust_tests_module(doc) {
            Some(close) => (close, "\n".to_string(), unit, String::new(), "fn "),
            None => (
                len,
                format!("{lead}#[cfg(test)]\nmod tests {{\n{unit}use super::*;\n\n"),
                unit,
                "}\n".to_string(),
                "fn ",
            ),
        },
        Lang::Python => match python_main_guard(doc) {
            Some(at) => (at, String::new(), String::new(), "\n\n".to_string(), "def test"),
            None => (len, format!("{lead}\n"), String::new(), String::new(), "def test"),
        },
        Lang::JavaScript | Lang::TypeScript | Lang::Tsx => {
            (len, lead.to_string(), String::new(), String::new(), "test(")
        }
        _ => return None,
    };
    Some(Plan::Instruct {
        code: def.text.clone(),
        task,
        start: at,
        end: at,
        shape: super::Shape::Insert { before, indent, after, must_contain: must_contain.to_string() },
    })
}

/// A test function name for `name` that the file does not use yet.
fn test_name(doc: &Document, name: &str) -> String {
    let snake: String =
        name.chars().flat_map(|c| if c.is_uppercase() { vec!['_', c.to_ascii_lowercase()] } else { vec![c] }).collect();
    let base = format!("test_{}", snake.trim_start_matches('_'));
    let text = doc.rope.to_string();
    let mut candidate = base.clone();
    let mut n = 2;
    while text.contains(&format!("{candidate}(")) {
        candidate = format!("{base}_{n}");
        n += 1;
    }
    candidate
}

/// The char before the closing brace of a top-level `mod tests { .. }`.
fn rust_tests_module(doc: &Document) -> Option<usize> {
    let root = doc.tree.as_ref()?.root_node();
    let mut cursor = root.walk();
    let module = root.named_children(&mut cursor).find(|n| {
        n.kind() == "mod_item" && n.child_by_field_name("name").is_some_and(|name| text(doc, name) == "tests")
    })?;
    let body = module.child_by_field_name("body")?;
    let close = char_at(doc, body.end_byte()).checked_sub(1)?;
    (doc.rope.char(close) == '}').then_some(close)
}

/// The start of a top-level `if __name__ == "__main__":` block.
fn python_main_guard(doc: &Document) -> Option<usize> {
    let root = doc.tree.as_ref()?.root_node();
    let mut cursor = root.walk();
    let guard = root
        .named_children(&mut cursor)
        .find(|n| n.kind() == "if_statement" && text(doc, *n).starts_with("if __name__"))?;
    Some(char_at(doc, guard.start_byte()))
}

/// The region a fix may rewrite: the enclosing definition when it is short, otherwise the
/// diagnostic's lines with two lines around. Whole lines.
pub fn fix_region(doc: &Document, start: usize, end: usize) -> (usize, usize) {
    const MAX_LINES: usize = 60;
    if let Some(def) = definition_at(doc, start).filter(|d| d.kind == DefinitionKind::Function)
        && def.start <= start
        && end <= def.end
        && doc.rope.char_to_line(def.end) - doc.rope.char_to_line(def.start) < MAX_LINES
    {
        return whole_lines(doc, def.start, def.end);
    }
    let rope = &doc.rope;
    let first = rope.char_to_line(start.min(rope.len_chars())).saturating_sub(2);
    let last = (rope.char_to_line(end.min(rope.len_chars())) + 2).min(rope.len_lines().saturating_sub(1));
    whole_lines(doc, rope.line_to_char(first), rope.line_to_char(last))
}

/// `start..end` grown to whole lines, the last line's break included. A range ending at the start
/// of a line does not take that line.
pub fn whole_lines(doc: &Document, start: usize, end: usize) -> (usize, usize) {
    let rope = &doc.rope;
    let len = rope.len_chars();
    let (start, end) = (start.min(len), end.min(len));
    let first = rope.char_to_line(start);
    let mut last = rope.char_to_line(end);
    if end > start && last > first && rope.line_to_char(last) == end {
        last -= 1;
    }
    let end = if last + 1 < rope.len_lines() { rope.line_to_char(last + 1) } else { len };
    (rope.line_to_char(first), end)
}
