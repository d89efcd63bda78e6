//! Context from outside the local window: the headers of the scopes around the cursor, the file's
//! imports, signatures of definitions the window refers to (this file and other open files), and
//! recent edits.

use std::collections::{HashMap, HashSet};

use glint_engine::Snippet;
use ropey::Rope;
use tree_sitter::Node;

use super::index;
use super::lang::{self, Spec};
use super::window::{Window, bytes, cow, first_code_byte, syntax};
use super::{RecentEdit, display_path};
use crate::document::Document;
use crate::syntax::Lang;

/// A header longer than this many lines is cut; a signature has at most this many lines shown
/// whole (type definitions) before it is elided.
const MAX_HEADER_LINES: usize = 8;
const MAX_SIGNATURE_LINES: usize = 12;
const MAX_CLASS_MEMBERS: usize = 20;
const MAX_EDIT_LINES: usize = 20;
const MAX_SIGNATURES_PER_NAME: usize = 2;
/// Below this many tokens left, no signature fits; after this many that did not fit, stop
/// looking.
const MIN_SIGNATURE_TOKENS: usize = 8;
const MAX_SIGNATURE_MISSES: usize = 8;
const MAX_IMPORT_VISITS: usize = 100;
/// How far above the window a treeless document is searched for less indented header lines.
const MAX_INDENT_SCAN: usize = 500;

/// The header lines of the scopes enclosing the cursor that start above the window, with `...`
/// comment lines for what is skipped between them, and its token count. Innermost scopes win
/// when `cap` tokens do not hold them all.
pub(crate) fn headers(doc: &Document, win: &Window, cap: usize, count: &dyn Fn(&str) -> usize) -> (String, usize) {
    let start_line = win.start_line;
    if start_line == 0 {
        return (String::new(), 0);
    }
    let rope = &doc.rope;
    let (ranges, marker) = match syntax(doc) {
        Some((tree, spec)) => (scope_headers(tree.root_node(), spec, win), (spec.line_comment, "")),
        None => {
            let style = glint_engine::prompt::CommentStyle::for_language(&doc.language_id);
            (indentation_headers(rope, win), (style.open, style.close))
        }
    };
    let mut kept: Vec<(usize, usize)> = Vec::new();
    let mut tokens = 0;
    for &(first, last) in &ranges {
        if kept.iter().any(|&(f, l)| f <= first && last <= l) {
            continue;
        }
        let t = count(&cow(rope.slice(rope.line_to_char(first)..rope.line_to_char(last + 1)))) + 2;
        // An outer header alone still says where the cursor is.
        if tokens + t > cap {
            continue;
        }
        tokens += t;
        kept.push((first, last));
    }
    if kept.is_empty() {
        return (String::new(), 0);
    }
    kept.sort_unstable();
    let mut out = String::new();
    let mut next_line = 0;
    for (i, &(first, last)) in kept.iter().enumerate() {
        let first = first.max(next_line);
        if first > last {
            continue;
        }
        if i > 0 && first > next_line {
            push_elision(&mut out, rope, marker, first);
        }
        out.push_str(&cow(rope.slice(rope.line_to_char(first)..rope.line_to_char(last + 1))));
        next_line = last + 1;
    }
    if start_line > next_line {
        let target = (start_line..=win.cursor_line).find(|&l| first_code_byte(rope, l).is_some()).unwrap_or(start_line);
        push_elision(&mut out, rope, marker, target);
    }
    (out, tokens)
}

/// Header rows of the scopes around the cursor that start above the window, innermost first.
fn scope_headers(root: Node, spec: &Spec, win: &Window) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    let Some(innermost) = root.descendant_for_byte_range(win.cursor_byte, win.cursor_byte) else { return ranges };
    for node in crate::syntax::ancestors(root, innermost) {
        if spec.scopes.contains(&node.kind()) {
            let first = node.start_position().row;
            if first < win.start_line {
                let last = header_end_row(node).min(first + MAX_HEADER_LINES - 1).min(win.start_line - 1);
                ranges.push((first, last));
            }
        }
    }
    ranges
}

/// Without a grammar, the lines above the window that are indented less than everything
/// below them are its headers (`function M.build(target)`, `section:`), innermost first.
/// Closing lines and comments are indented like headers but say nothing; they are skipped.
fn indentation_headers(rope: &Rope, win: &Window) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    let first_code = (win.start_line..=win.cursor_line).find_map(|l| first_code_byte(rope, l));
    let Some(mut indent) = first_code else { return ranges };
    let floor = win.start_line.saturating_sub(MAX_INDENT_SCAN);
    for line in (floor..win.start_line).rev() {
        if indent == 0 {
            break;
        }
        let Some(width) = first_code_byte(rope, line) else { continue };
        if width >= indent {
            continue;
        }
        let text = cow(rope.line(line));
        let code = text.trim();
        let closer = code.starts_with(['}', ')', ']']) || code == "end" || code.starts_with("end ");
        let comment = ["//", "#", "--", ";", "/*", "*", "%"].iter().any(|m| code.starts_with(m));
        if closer || comment {
            continue;
        }
        ranges.push((line, line));
        indent = width;
    }
    ranges
}

/// The last row of a scope's header: the line of its body's `{`, or of the last token before
/// an indented body (Python's `:`). Comments between the two are extras and do not count.
fn header_end_row(node: Node) -> usize {
    let Some(body) = node.child_by_field_name("body") else { return node.start_position().row };
    if body.kind().starts_with('{') || body.child(0).is_some_and(|c| c.kind() == "{") {
        return body.start_position().row;
    }
    let mut row = node.start_position().row;
    let mut cursor = node.walk();
    for child in node.children(&mut cursor) {
        if child.start_byte() >= body.start_byte() {
            break;
        }
        if !child.is_extra() {
            row = child.end_position().row;
        }
    }
    row
}

/// A `...` comment line indented like `line`, in the line ending the document uses there.
fn push_elision(out: &mut String, rope: &Rope, (open, close): (&str, &str), line: usize) {
    let text = rope.line(line);
    let indent: String = text.chars().take_while(|c| *c == ' ' || *c == '\t').collect();
    out.push_str(&indent);
    out.push_str(open);
    out.push_str(" ...");
    out.push_str(close);
    let len = text.len_chars();
    let crlf = len >= 2 && text.char(len - 2) == '\r' && text.char(len - 1) == '\n';
    out.push_str(if crlf { "\r\n" } else { "\n" });
}

/// Where the extras come from besides the window: the document, the other open documents, the
/// recent edits.
pub(crate) struct Around<'a> {
    pub doc: &'a Document,
    pub others: &'a [&'a Document],
    pub recent_edits: &'a [RecentEdit],
}

/// Everything from outside the window, measured for one window: the headers of the enclosing
/// scopes that start above it and the snippets, with the tokens they cost together.
pub(crate) struct Extras {
    extra: Extra,
    /// The share of the budget the headers and snippets were measured in.
    reserve: usize,
    pub tokens: usize,
}

impl Extras {
    /// The headers for `win`, then imports, recent edits and signatures in what the headers leave
    /// of `reserve` tokens.
    pub fn collect(around: &Around, win: &Window, reserve: usize, count: &dyn Fn(&str) -> usize) -> Extras {
        let (header, header_tokens) = headers(around.doc, win, reserve, count);
        let extra = Extra::collect(around, win, &header, reserve.saturating_sub(header_tokens), count);
        Extras { tokens: header_tokens + extra.tokens, extra, reserve }
    }

    /// Drops what the window now shows itself, after it grew.
    pub fn retain_outside(&mut self, win: &Window) {
        self.extra.retain_outside(win);
    }

    /// The prompt's prefix for the final window (its headers, then its text), where the headers
    /// end in it, and the snippets.
    pub fn finish(self, win: &Window, count: &dyn Fn(&str) -> usize) -> (String, usize, Vec<Snippet>) {
        // Moving the window up only removes headers, so this fits in what was counted above.
        let (mut prefix, _) = headers(win.doc, win, self.reserve, count);
        let header_len = prefix.len();
        prefix.push_str(&win.prefix_text());
        (prefix, header_len, self.extra.into_snippets())
    }
}

/// Snippets from outside the window, with the tokens they cost.
struct Extra {
    path: String,
    imports: Vec<(usize, String)>,
    edits: Vec<Snippet>,
    signatures: Vec<Signature>,
    pub tokens: usize,
}

struct Signature {
    /// Index into the documents looked at: 0 is the current one.
    doc: usize,
    path: String,
    /// Where the name was last referenced in the prefix: larger is nearer the cursor.
    relevance: usize,
    /// Rows of the definition in its document.
    rows: (usize, usize),
    /// The impl, class or trait the definition is a member of: its start, header line and
    /// closing line, shown around the members it holds.
    container: Option<(usize, String, String)>,
    text: String,
    tokens: usize,
}

impl Extra {
    fn collect(around: &Around, win: &Window, header: &str, cap: usize, count: &dyn Fn(&str) -> usize) -> Extra {
        let doc = around.doc;
        let path = display_path(&doc.uri);
        let mut extra = Extra { path, imports: Vec::new(), edits: Vec::new(), signatures: Vec::new(), tokens: 0 };
        if cap == 0 {
            return extra;
        }
        let overhead = count(&extra.path) + 2;
        // Imports are the most stable and cheap; they get up to a quarter, edits up to half,
        // signatures the rest.
        if let Some((tree, spec)) = syntax(doc) {
            let mut used = overhead;
            for (line, text) in imports(&doc.rope, tree.root_node(), spec, win.start_line) {
                let t = count(&text) + 1;
                if used + t > cap / 4 {
                    break;
                }
                used += t;
                extra.imports.push((line, text));
            }
            if !extra.imports.is_empty() {
                extra.tokens += used;
            }
        }
        let window_lines = window_lines(win);
        // Recent edits are a strong hint of what comes next; they may take half.
        let edit_cap = extra.tokens + cap / 2;
        for edit in around.recent_edits.iter().rev() {
            let text = edit_text(&edit.text);
            if text.is_empty() || mostly_in(&text, &window_lines) || extra.edits.iter().any(|s| s.text == text) {
                continue;
            }
            let path = display_path(&edit.uri);
            let t = count(&text) + count(&path) + 2 + text.lines().count();
            if extra.tokens + t > edit_cap {
                continue;
            }
            extra.tokens += t;
            extra.edits.push(Snippet { path, text });
        }
        extra.edits.reverse();
        if let Some(lang) = doc.lang {
            let remaining = cap.saturating_sub(extra.tokens);
            extra.signatures = signatures(around, lang, win, header, remaining, count);
            extra.tokens += extra.signatures.iter().map(|s| s.tokens).sum::<usize>();
        }
        extra
    }

    /// Drops what the window now shows itself, after it grew.
    fn retain_outside(&mut self, win: &Window) {
        self.imports.retain(|(line, _)| *line < win.start_line);
        self.signatures.retain(|s| s.doc != 0 || s.rows.1 < win.start_line || s.rows.0 >= win.end_line);
    }

    /// Imports, then recent edits, then signatures: the order in which they change least often
    /// while the user types in one place.
    fn into_snippets(self) -> Vec<Snippet> {
        let mut out = Vec::new();
        if !self.imports.is_empty() {
            let text = self.imports.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>().join("\n");
            out.push(Snippet { path: self.path.clone(), text });
        }
        out.extend(self.edits);
        // One snippet per document, the document with the nearest reference last; inside one,
        // source order.
        let mut groups: Vec<(usize, usize, Vec<Signature>)> = Vec::new();
        for sig in self.signatures {
            match groups.iter_mut().find(|g| g.0 == sig.doc) {
                Some(group) => {
                    group.1 = group.1.max(sig.relevance);
                    group.2.push(sig);
                }
                None => groups.push((sig.doc, sig.relevance, vec![sig])),
            }
        }
        groups.sort_by_key(|g| g.1);
        for (_, _, mut sigs) in groups {
            sigs.sort_by_key(|s| s.rows.0);
            let path = sigs.first().map(|s| s.path.clone()).unwrap_or_default();
            let mut lines: Vec<&str> = Vec::new();
            let mut open: Option<&(usize, String, String)> = None;
            for sig in &sigs {
                if open.map(|c| c.0) != sig.container.as_ref().map(|c| c.0) {
                    if let Some((_, _, closer)) = open.filter(|c| !c.2.is_empty()) {
                        lines.push(closer);
                    }
                    if let Some((_, head, _)) = &sig.container {
                        lines.push(head);
                    }
                    open = sig.container.as_ref();
                }
                lines.push(&sig.text);
            }
            if let Some((_, _, closer)) = open.filter(|c| !c.2.is_empty()) {
                lines.push(closer);
            }
            out.push(Snippet { path, text: lines.join("\n") });
        }
        out
    }
}

/// Import-like statements at the top level above `before_line`, with their first rows. Include
/// guards (`#ifndef X` ... `#endif`) wrap a C header's includes, so those are looked into.
fn imports(rope: &Rope, root: Node, spec: &Spec, before_line: usize) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut visits = 0;
    let mut stack = vec![root];
    while let Some(parent) = stack.pop() {
        let mut cursor = parent.walk();
        if !cursor.goto_first_child() {
            continue;
        }
        loop {
            let node = cursor.node();
            visits += 1;
            // Imports sit at the top; a file's thousandth item is not one worth a keystroke.
            if node.start_position().row >= before_line || visits > MAX_IMPORT_VISITS {
                break;
            }
            let kind = node.kind();
            if spec.imports.contains(&kind) || is_require(rope, node) {
                let text = bytes(rope, node.byte_range()).trim().to_string();
                out.push((node.start_position().row, text));
            } else if kind == "preproc_ifdef" || kind == "preproc_if" {
                stack.push(node);
            }
            if !cursor.goto_next_sibling() {
                break;
            }
        }
    }
    out.sort_by_key(|(line, _)| *line);
    out
}

/// `const x = require("y")` at the top of a CommonJS file is an import.
fn is_require(rope: &Rope, node: Node) -> bool {
    matches!(node.kind(), "lexical_declaration" | "variable_declaration")
        && node.end_position().row - node.start_position().row < 2
        && bytes(rope, node.byte_range()).contains("require(")
}

/// The trimmed lines of the window, to recognise text the model already sees.
fn window_lines(win: &Window) -> HashSet<String> {
    let rope = win.rope;
    let first = rope.char_to_line(win.prefix_start());
    let last = win.end_line.min(rope.len_lines());
    (first..last).map(|l| cow(rope.line(l)).trim().to_string()).filter(|l| !l.is_empty()).collect()
}

fn edit_text(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let first = lines.iter().position(|l| !l.trim().is_empty()).unwrap_or(lines.len());
    let last = lines.iter().rposition(|l| !l.trim().is_empty()).map_or(first, |i| i + 1);
    let last = last.min(first + MAX_EDIT_LINES);
    lines[first..last.max(first)].iter().map(|l| l.trim_end()).collect::<Vec<_>>().join("\n")
}

/// Whether at least half of the non-blank lines of `text` are in the window already.
fn mostly_in(text: &str, window: &HashSet<String>) -> bool {
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let present = lines.iter().filter(|l| window.contains(**l)).count();
    present * 2 >= lines.len()
}

/// Languages whose files can refer to each other's definitions.
fn family(lang: Lang) -> u8 {
    match lang {
        Lang::JavaScript | Lang::TypeScript | Lang::Tsx => 1,
        Lang::C | Lang::Cpp => 2,
        other => 3 + other as u8,
    }
}

/// Signatures of definitions whose names the prefix mentions, nearest mention first, within
/// `cap` tokens.
fn signatures(
    around: &Around,
    lang: Lang,
    win: &Window,
    header: &str,
    cap: usize,
    count: &dyn Fn(&str) -> usize,
) -> Vec<Signature> {
    if cap == 0 {
        return Vec::new();
    }
    // The kept headers mention types too (parameters, base classes), less near the cursor.
    let prefix = format!("{header}{}", win.prefix_text());
    let names = referenced_names(&prefix);
    if names.is_empty() {
        return Vec::new();
    }
    let mut docs: Vec<&Document> = vec![around.doc];
    docs.extend(
        around
            .others
            .iter()
            .copied()
            .filter(|d| d.uri != around.doc.uri && d.lang.is_some_and(|l| family(l) == family(lang))),
    );
    let window_bytes = (win.rope.char_to_byte(win.prefix_start()), win.rope.char_to_byte(win.suffix_end()));
    let indexes: Vec<_> = docs
        .iter()
        .enumerate()
        .filter_map(|(i, doc)| {
            let (tree, spec) = syntax(doc)?;
            let f = lang::fields(doc.lang?);
            let root = tree.root_node();
            Some((i, *doc, spec, f, root, index::index(doc, root, spec, f, i == 0)))
        })
        .collect();
    // Nearest mention first, so the budget goes to what the cursor is about.
    let mut ordered: Vec<(&str, usize)> = names.into_iter().collect();
    ordered.sort_unstable_by_key(|&(_, relevance)| std::cmp::Reverse(relevance));
    let mut out: Vec<Signature> = Vec::new();
    let mut used = 0;
    let mut misses = 0;
    let mut paths: HashSet<usize> = HashSet::new();
    let mut containers: HashSet<(usize, usize)> = HashSet::new();
    'names: for (name, relevance) in ordered {
        let mut taken = 0;
        for (index, doc, spec, f, root, defs) in &indexes {
            if taken >= MAX_SIGNATURES_PER_NAME {
                continue 'names;
            }
            let exclude = (*index == 0).then_some(window_bytes);
            for node in defs.find(name, doc, *root, *f, exclude) {
                // Once the budget is nearly spent, or nothing fits any more, further
                // signatures cost time and give nothing.
                if cap.saturating_sub(used) < MIN_SIGNATURE_TOKENS || misses > MAX_SIGNATURE_MISSES {
                    break 'names;
                }
                if taken >= MAX_SIGNATURES_PER_NAME {
                    continue 'names;
                }
                let text = signature(&doc.rope, spec, node);
                let container = container_of(&doc.rope, node);
                let key = container.as_ref().map(|c| c.0);
                let duplicate = out.iter().any(|s| s.text == text && s.container.as_ref().map(|c| c.0) == key);
                if text.trim().is_empty() || duplicate {
                    continue;
                }
                let path = display_path(&doc.uri);
                let mut tokens = count(&text) + text.lines().count();
                if !paths.contains(index) {
                    tokens += count(&path) + 2;
                }
                let new_container = container.as_ref().filter(|c| !containers.contains(&(*index, c.0)));
                if let Some((_, head, closer)) = new_container {
                    tokens += count(head) + count(closer) + 2;
                }
                if used + tokens > cap {
                    // A smaller signature further down may still fit.
                    misses += 1;
                    continue;
                }
                used += tokens;
                taken += 1;
                paths.insert(*index);
                if let Some(c) = &container {
                    containers.insert((*index, c.0));
                }
                out.push(Signature {
                    doc: *index,
                    path,
                    relevance,
                    rows: (node.start_position().row, node.end_position().row),
                    container,
                    text,
                    tokens,
                });
            }
        }
    }
    out
}

/// Identifiers in `text` with the byte offset of their last occurrence.
fn referenced_names(text: &str) -> HashMap<&str, usize> {
    let mut names = HashMap::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_alphabetic() || c == b'_' || c == b'$' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'$') {
                i += 1;
            }
            if i - start >= 2 {
                names.insert(&text[start..i], start);
            }
        } else if c.is_ascii_digit() {
            // Skip numbers whole, so `0x1f` is not an identifier `x1f`.
            while i < bytes.len() && bytes[i].is_ascii_alphanumeric() {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    names
}

/// The impl, class, trait or interface a member definition sits in, as its start byte, its
/// header line (`impl Client {`, `class Store:`) and its closing line (`}` or nothing).
fn container_of(rope: &Rope, node: Node) -> Option<(usize, String, String)> {
    let mut parent = node.parent()?;
    // Bodies and wrappers (`declaration_list`, `class_body`, Python's `block` and
    // `decorated_definition`) sit between a member and its container.
    for _ in 0..3 {
        if is_member_container(parent.kind()) {
            break;
        }
        parent = parent.parent()?;
    }
    if !is_member_container(parent.kind()) {
        return None;
    }
    let body = parent.child_by_field_name("body")?;
    let indent = indent_before(rope, parent);
    let head = bytes(rope, parent.start_byte()..body.start_byte()).trim_end().to_string();
    let braced = body.child(0).is_some_and(|c| c.kind() == "{");
    let (head, closer) = if braced {
        (format!("{indent}{head} {{"), format!("{indent}}}"))
    } else {
        (format!("{indent}{head}"), String::new())
    };
    Some((parent.start_byte(), head, closer))
}

fn is_member_container(kind: &str) -> bool {
    is_class_like(kind)
        || matches!(
            kind,
            "impl_item" | "interface_declaration" | "enum_declaration" | "record_declaration" | "struct_specifier"
        )
}

fn is_class_like(kind: &str) -> bool {
    matches!(
        kind,
        "class_definition" | "class_declaration" | "abstract_class_declaration" | "class_specifier" | "trait_item"
    )
}

/// A definition shown without its body: a function's header, a class's header with its members'
/// headers, a type whole (up to a few lines), anything else by its first line.
fn signature(rope: &Rope, spec: &Spec, node: Node) -> String {
    let indent = indent_before(rope, node);
    let body = node.child_by_field_name("body");
    let kind = node.kind();
    if is_class_like(kind)
        && let Some(body) = body
    {
        return class_outline(rope, spec, node, body, &indent);
    }
    if let Some(body) = body
        && body.start_byte() > node.start_byte()
        && !is_type_like(kind)
    {
        return format!("{indent}{}", head_text(rope, node, body, spec));
    }
    if is_type_like(kind) || matches!(kind, "function_signature_item" | "method_signature" | "function_signature") {
        let mut text = format!("{indent}{}", capped_text(rope, spec, node, &indent));
        // C's `struct s { ... };` leaves the `;` to its parent.
        if node.next_sibling().is_some_and(|n| n.kind() == ";" && n.start_byte() == node.end_byte()) {
            text.push(';');
        }
        return text;
    }
    first_line(rope, node, &indent)
}

fn is_type_like(kind: &str) -> bool {
    matches!(
        kind,
        "struct_item"
            | "enum_item"
            | "union_item"
            | "type_item"
            | "interface_declaration"
            | "type_alias_declaration"
            | "enum_declaration"
            | "type_declaration"
            | "struct_specifier"
            | "union_specifier"
            | "enum_specifier"
            | "type_definition"
            | "alias_declaration"
            | "record_declaration"
            | "preproc_def"
            | "preproc_function_def"
            | "declaration"
    )
}

/// A function's text up to its body, with a placeholder body where the language needs one to
/// read as a declaration.
fn head_text(rope: &Rope, node: Node, body: Node, spec: &Spec) -> String {
    let head = bytes(rope, node.start_byte()..body.start_byte()).trim_end().to_string();
    if spec.line_comment == "#" { format!("{head} ...") } else { head }
}

fn capped_text(rope: &Rope, spec: &Spec, node: Node, indent: &str) -> String {
    let text = bytes(rope, node.byte_range()).trim_end().to_string();
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() <= MAX_SIGNATURE_LINES {
        return text;
    }
    let mut out = lines[..MAX_SIGNATURE_LINES].join("\n");
    out.push_str(&format!("\n{indent}    {} ...", spec.line_comment));
    out
}

fn first_line(rope: &Rope, node: Node, indent: &str) -> String {
    let text = bytes(rope, node.byte_range());
    let line = text.lines().next().unwrap_or("").trim_end();
    format!("{indent}{line}")
}

/// A class header, its members' signatures, and its closing brace where it has one.
fn class_outline(rope: &Rope, spec: &Spec, node: Node, body: Node, indent: &str) -> String {
    let mut out = format!("{indent}{}", bytes(rope, node.start_byte()..body.start_byte()).trim_end());
    let braced = body.child(0).is_some_and(|c| c.kind() == "{");
    if braced {
        out.push_str(" {");
    }
    let mut cursor = body.walk();
    let mut members = 0;
    for member in body.named_children(&mut cursor) {
        let member = if member.kind() == "decorated_definition" {
            member.child_by_field_name("definition").unwrap_or(member)
        } else {
            member
        };
        let kind = member.kind();
        let wanted = spec.definitions.contains(&kind)
            || matches!(kind, "public_field_definition" | "field_definition" | "access_specifier");
        if !wanted {
            continue;
        }
        members += 1;
        if members > MAX_CLASS_MEMBERS {
            out.push_str(&format!("\n{indent}    {} ...", spec.line_comment));
            break;
        }
        out.push('\n');
        let member_indent = indent_before(rope, member);
        let text = match member.child_by_field_name("body") {
            Some(b) if b.start_byte() > member.start_byte() && !is_type_like(kind) => {
                format!("{member_indent}{}", head_text(rope, member, b, spec))
            }
            _ => first_line(rope, member, &member_indent),
        };
        out.push_str(&text);
    }
    if braced {
        out.push_str(&format!("\n{indent}}}"));
    }
    out
}

/// The whitespace before `node` on its line, when only whitespace precedes it.
fn indent_before(rope: &Rope, node: Node) -> String {
    let row = node.start_position().row;
    let line_start = rope.line_to_byte(row);
    let head = bytes(rope, line_start..node.start_byte().max(line_start));
    if head.chars().all(|c| c == ' ' || c == '\t') { head.into_owned() } else { String::new() }
}
