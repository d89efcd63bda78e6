//! Post-processing of a raw model completion before it is shown: cut it to one line or to the
//! end of the enclosing block, drop what repeats the text after the cursor, balance brackets
//! against the suffix, trim whitespace, and refuse empty or repetitive text.
//!
//! Architecture Invariant: imports nothing of LSP; a pure function of plain values.

use std::collections::HashMap;

use crate::context::{Mode, block_opener, line_parts, rest_is_closers};
use crate::document::Document;

/// A completion and where it would be inserted.
#[derive(Debug, Clone, Copy)]
pub struct PostInput<'a> {
    /// The model's raw text, to be inserted at `cursor`.
    pub completion: &'a str,
    pub doc: &'a Document,
    /// Rope char index of the cursor; clamped to the document.
    pub cursor: usize,
    pub mode: Mode,
}

/// Lines the completion is compared with below the cursor.
const LOOK_BELOW: usize = 8;
/// A line seen this many times makes a completion repetitive.
const REPEATS: usize = 3;

/// The cleaned completion, or `None` when it should not be shown: empty, whitespace only,
/// repetitive, or only repeating the text after the cursor. Better silent than noisy.
pub fn postprocess(input: &PostInput) -> Option<String> {
    let doc = input.doc;
    let cursor = input.cursor.min(doc.rope.len_chars());
    let cursor_line = doc.rope.char_to_line(cursor);
    let (before, after) = line_parts(doc, cursor);
    let text = input.completion.replace("\r\n", "\n").replace('\r', "\n");
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    // Whitespace before the cursor is not typed twice: not a space after `=`, not the
    // indentation the editor already put on an empty line.
    if before.ends_with([' ', '\t'])
        && let Some(first) = lines.first_mut()
    {
        *first = first.trim_start().to_string();
    }

    match input.mode {
        Mode::SingleLine => lines.truncate(1),
        Mode::MultiLine => {
            let keep = block_end(doc, cursor, &before, &after, &lines);
            lines.truncate(keep);
        }
    }
    for line in &mut lines {
        line.truncate(line.trim_end().len());
    }
    let below = lines_below(doc, cursor_line);
    drop_repeated_tail(&mut lines, &below, &before);
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    if let Some(last) = lines.last_mut() {
        balance_against(last, &after);
    }
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    if lines.iter().all(|l| l.trim().is_empty()) || repetitive(&lines) {
        return None;
    }
    let newline = if uses_crlf(doc, cursor_line) { "\r\n" } else { "\n" };
    Some(lines.join(newline))
}

/// How many lines of a multi-line completion belong to the block at the cursor: up to the
/// first line indented less than the block, or the line that closes it when the document does
/// not close it already. At the top level, up to a blank line followed by a new unindented item.
fn block_end(doc: &Document, cursor: usize, before: &str, after: &str, lines: &[String]) -> usize {
    let line_indent = width(leading(before));
    let opener = block_opener(before) && after.trim().is_empty();
    // What indentation the completion's lines must keep to stay in the block.
    let threshold = if opener {
        line_indent + 1
    } else if before.trim().is_empty() {
        width(before) + width(leading(lines.first().map_or("", String::as_str)))
    } else {
        line_indent
    };
    let mut depth: i32 = 0;
    for (i, line) in lines.iter().enumerate() {
        if i > 0 && !line.trim().is_empty() {
            let indent = width(leading(line));
            if indent < threshold {
                if opener && closes(line) && !closed_below(doc, cursor, line_indent, after) {
                    return i + 1;
                }
                return i;
            }
        }
        if i > 0 && threshold == 0 && line.trim().is_empty() && depth <= 0 {
            let next = lines[i + 1..].iter().find(|l| !l.trim().is_empty());
            if next.is_some_and(|l| width(leading(l)) == 0 && !closes(l)) {
                return i;
            }
        }
        depth += bracket_delta(line);
    }
    lines.len()
}

fn closes(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with(['}', ')', ']']) || t == "end" || t.starts_with("end ")
}

/// Whether the document already closes the block opened on the cursor line: a closer right
/// after the cursor, or the syntax tree pairs the opener with a real closer, or (without a
/// tree) the next non-blank line is a closer at the cursor line's indentation.
fn closed_below(doc: &Document, cursor: usize, indent: usize, after: &str) -> bool {
    if after.trim_start().starts_with(['}', ')', ']']) {
        return true;
    }
    if let Some(closed) = closed_in_tree(doc, cursor) {
        return closed;
    }
    let rope = &doc.rope;
    let cursor_line = rope.char_to_line(cursor);
    for line in cursor_line + 1..rope.len_lines().min(cursor_line + 1 + LOOK_BELOW) {
        let text = rope.line(line).to_string();
        if text.trim().is_empty() {
            continue;
        }
        return width(leading(&text)) == indent && closes(&text);
    }
    false
}

/// What the tree says about the `{`, `(` or `[` just before the cursor: closed when its node
/// ends in a real closer and no enclosing node lacks its own. Error recovery pairs an unclosed
/// `{` with the next `}` it finds, the enclosing function's, and marks that one missing or
/// wraps the function in an error. `None` without a tree, an opener, or a clean parse.
fn closed_in_tree(doc: &Document, cursor: usize) -> Option<bool> {
    let tree = doc.tree.as_ref()?;
    let rope = &doc.rope;
    let line_start = rope.line_to_char(rope.char_to_line(cursor));
    let opener = (line_start..cursor).rev().find(|&i| !rope.char(i).is_whitespace())?;
    let closer = match rope.char(opener) {
        '{' => "}",
        '(' => ")",
        '[' => "]",
        _ => return None,
    };
    let byte = rope.char_to_byte(opener);
    let root = tree.root_node();
    let token = root.descendant_for_byte_range(byte, byte + 1)?;
    let mut ancestors = crate::syntax::ancestors(root, token).skip(1);
    let node = ancestors.next()?;
    let last = node.child(node.child_count().checked_sub(1)?)?;
    if last.kind() != closer || last.is_missing() {
        return Some(false);
    }
    for parent in ancestors {
        // Inside an error node the pairing is a guess; the indentation says more.
        if parent.is_error() {
            return None;
        }
        let last = parent.child_count().checked_sub(1).and_then(|i| parent.child(i));
        if last.is_some_and(|l| l.is_missing()) {
            return Some(false);
        }
    }
    Some(true)
}

/// Cuts the completion where it starts repeating the lines below the cursor, indentation
/// included (an inner `else:` is not the outer one below). A line that only closes a bracket is
/// a repetition only when the completion has not opened one for it to close, and when the
/// repetition goes on or ends the completion.
fn drop_repeated_tail(lines: &mut Vec<String>, below: &[String], before: &str) {
    let Some(first_below) = below.first() else { return };
    let at_line_start = before.trim().is_empty();
    let mut depth = 0;
    for i in 0..lines.len() {
        let here = if i == 0 { format!("{before}{}", lines[0]) } else { lines[i].clone() };
        let matches = !here.trim().is_empty() && here.trim_end() == first_below && (i > 0 || at_line_start);
        if matches {
            let trivial = !here.chars().any(char::is_alphanumeric);
            let rest: Vec<&str> =
                lines[i + 1..].iter().map(|l| l.trim_end()).filter(|l| !l.trim().is_empty()).collect();
            let continues = rest.first().is_none_or(|next| below.get(1).is_some_and(|b| b == next));
            if !trivial || (continues && depth <= 0) {
                lines.truncate(i);
                return;
            }
        }
        depth += bracket_delta(&lines[i]);
    }
}

/// Removes from the end of `last` what the rest of the cursor line already supplies: an exact
/// overlap (`foo)` before `)`), or a run of closers that starts with the same brackets.
fn balance_against(last: &mut String, after: &str) {
    let rest = after.trim();
    if rest.is_empty() {
        return;
    }
    for k in (1..=rest.len()).rev() {
        if rest.is_char_boundary(k) && last.ends_with(&rest[..k]) {
            last.truncate(last.len() - k);
            return;
        }
    }
    if !rest_is_closers(rest) {
        return;
    }
    let brackets = |s: &str| s.chars().filter(|c| matches!(c, ')' | ']' | '}')).collect::<String>();
    let wanted = brackets(rest);
    if wanted.is_empty() {
        return;
    }
    let run_start = last.trim_end_matches(|c: char| rest_is_closers(c.encode_utf8(&mut [0; 4]))).len();
    let run = &last[run_start..];
    if brackets(run).starts_with(&wanted) {
        last.truncate(run_start);
    }
}

/// The same substantial line three times, or one line that is a unit repeated over and over.
fn repetitive(lines: &[String]) -> bool {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for line in lines {
        let t = line.trim();
        if t.len() < 4 || !t.chars().any(char::is_alphanumeric) {
            continue;
        }
        let n = seen.entry(t).or_insert(0);
        *n += 1;
        if *n >= REPEATS {
            return true;
        }
    }
    lines.iter().any(|l| repeated_unit(l.trim()))
}

/// Whether `line` is some unit written four times or more in a row (`foo foo foo foo`).
fn repeated_unit(line: &str) -> bool {
    let chars: Vec<char> = line.chars().take(400).collect();
    let n = chars.len();
    if n < 12 {
        return false;
    }
    (1..=n / 4).any(|unit| chars.iter().enumerate().all(|(i, c)| *c == chars[i % unit]))
}

/// Net brackets a line opens, ignoring those in simple string literals.
fn bracket_delta(line: &str) -> i32 {
    let mut delta = 0;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in line.chars() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => quote = Some(c),
            '(' | '[' | '{' => delta += 1,
            ')' | ']' | '}' => delta -= 1,
            _ => {}
        }
    }
    delta
}

/// The non-blank lines after the cursor line, without their line breaks.
fn lines_below(doc: &Document, cursor_line: usize) -> Vec<String> {
    let rope = &doc.rope;
    (cursor_line + 1..rope.len_lines())
        .map(|l| rope.line(l).to_string().trim_end().to_string())
        .filter(|l| !l.trim().is_empty())
        .take(LOOK_BELOW)
        .collect()
}

fn uses_crlf(doc: &Document, line: usize) -> bool {
    let rope = &doc.rope;
    [line, line.saturating_sub(1)].iter().any(|&l| {
        let text = rope.line(l);
        let len = text.len_chars();
        len >= 2 && text.char(len - 2) == '\r' && text.char(len - 1) == '\n'
    })
}

fn leading(line: &str) -> &str {
    &line[..line.len() - line.trim_start_matches([' ', '\t']).len()]
}

/// Indentation width with tabs at four columns; only compared within one file.
fn width(indent: &str) -> usize {
    indent.chars().map(|c| if c == '\t' { 4 } else { 1 }).sum()
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    /// Runs the post-processing of `completion` at the `$0` of `fixture` and shows the document
    /// as it would read with the completion inserted, or `(nothing)`.
    fn check(language_id: &str, fixture: &str, mode: Mode, completion: &str, expect: Expect) {
        let offset = fixture.find("$0").expect("fixture has a $0 cursor");
        let text = fixture.replacen("$0", "", 1);
        let cursor = text[..offset].chars().count();
        let doc = Document::new("file:///t/x", language_id, 1, &text);
        let out = postprocess(&PostInput { completion, doc: &doc, cursor, mode });
        let shown = match out {
            Some(inserted) => format!("{}⟨{inserted}⟩{}", &text[..offset], &text[offset..]),
            None => "(nothing)\n".to_string(),
        };
        expect.assert_eq(&shown);
    }

    #[test]
    fn single_line_stops_at_the_first_newline() {
        check(
            "rust",
            "fn f() {\n    let total = $0\n}\n",
            Mode::SingleLine,
            "a + b;\n    let other = 2;\n",
            expect![[r#"
                fn f() {
                    let total = ⟨a + b;⟩
                }
            "#]],
        );
    }

    #[test]
    fn multi_line_stops_where_the_indentation_drops() {
        check(
            "python",
            "def area(shape):\n    if shape.kind == 'circle':\n        $0\n    return 0\n",
            Mode::MultiLine,
            "r = shape.radius\n        return 3.14159 * r * r\n    elif shape.kind == 'square':\n        return shape.side ** 2\n",
            expect![[r#"
                def area(shape):
                    if shape.kind == 'circle':
                        ⟨r = shape.radius
                        return 3.14159 * r * r⟩
                    return 0
            "#]],
        );
    }

    #[test]
    fn a_block_opened_at_the_cursor_gets_its_closing_line_when_the_document_lacks_it() {
        check(
            "rust",
            "fn main() {\n    for x in items {$0\n",
            Mode::MultiLine,
            "\n        println!(\"{x}\");\n    }\n}\n\nfn other() {}\n",
            expect![[r#"
                fn main() {
                    for x in items {⟨
                        println!("{x}");
                    }⟩
            "#]],
        );
    }

    #[test]
    fn a_closer_below_that_belongs_to_the_enclosing_block_does_not_count() {
        check(
            "rust",
            "fn main() {\n    for x in items {$0\n}\n",
            Mode::MultiLine,
            "\n        println!(\"{x}\");\n    }\n}\n",
            expect![[r#"
                fn main() {
                    for x in items {⟨
                        println!("{x}");
                    }⟩
                }
            "#]],
        );
        check(
            "lua",
            "function f()\n  if x then\n    for i = 1, 3 {$0\n  end\nend\n",
            Mode::MultiLine,
            "\n      print(i)\n    }\n  end\n",
            expect![[r#"
                function f()
                  if x then
                    for i = 1, 3 {⟨
                      print(i)
                    }⟩
                  end
                end
            "#]],
        );
    }

    #[test]
    fn a_block_the_document_closes_already_is_not_closed_twice() {
        check(
            "rust",
            "fn main() {\n    for x in items {$0\n    }\n}\n",
            Mode::MultiLine,
            "\n        println!(\"{x}\");\n    }\n}\n",
            expect![[r#"
                fn main() {
                    for x in items {⟨
                        println!("{x}");⟩
                    }
                }
            "#]],
        );
    }

    #[test]
    fn at_the_top_level_a_new_item_after_a_blank_line_ends_it() {
        check(
            "python",
            "import os\n\n$0",
            Mode::MultiLine,
            "def home():\n    path = os.environ['HOME']\n\n    return path\n\n\ndef cwd():\n    return os.getcwd()\n",
            expect![[r#"
                import os

                ⟨def home():
                    path = os.environ['HOME']

                    return path⟩"#]],
        );
    }

    #[test]
    fn the_tail_that_repeats_the_lines_below_is_dropped() {
        check(
            "go",
            "func f() {\n\tx := load()\n\t$0\n\treturn x\n}\n",
            Mode::MultiLine,
            "check(x)\n\tlog.Print(x)\n\treturn x\n}",
            expect![[r#"
                func f() {
                	x := load()
                	⟨check(x)
                	log.Print(x)⟩
                	return x
                }
            "#]],
        );
    }

    #[test]
    fn a_completion_that_only_repeats_the_next_line_is_dropped() {
        check(
            "javascript",
            "function f() {\n  $0\n  return x;\n}\n",
            Mode::MultiLine,
            "return x;\n}",
            expect![[r#"
                (nothing)
            "#]],
        );
    }

    #[test]
    fn a_closing_bracket_the_suffix_has_is_not_emitted() {
        check(
            "typescript",
            "const v = compute(a, $0)\n",
            Mode::SingleLine,
            "b, c)",
            expect![[r#"
            const v = compute(a, ⟨b, c⟩)
        "#]],
        );
        check(
            "typescript",
            "const v = compute(a, $0);\n",
            Mode::SingleLine,
            "b, c);",
            expect![[r#"
            const v = compute(a, ⟨b, c⟩);
        "#]],
        );
        check(
            "c",
            "int v = max(a, $0)\n",
            Mode::SingleLine,
            "b);",
            expect![[r#"
            int v = max(a, ⟨b⟩)
        "#]],
        );
        check(
            "java",
            "int[] v = {1, $0};\n",
            Mode::SingleLine,
            "2, 3}",
            expect![[r#"
            int[] v = {1, ⟨2, 3⟩};
        "#]],
        );
    }

    #[test]
    fn trailing_whitespace_is_stripped() {
        check(
            "rust",
            "fn f() {\n    $0\n}\n",
            Mode::MultiLine,
            "let a = 1;   \n    let b = 2;\t\n\n\n",
            expect![[r#"
                fn f() {
                    ⟨let a = 1;
                    let b = 2;⟩
                }
            "#]],
        );
    }

    #[test]
    fn a_space_before_the_cursor_is_not_doubled() {
        check(
            "python",
            "total = $0\n",
            Mode::SingleLine,
            " a + b",
            expect![[r#"
            total = ⟨a + b⟩
        "#]],
        );
    }

    #[test]
    fn indentation_the_editor_put_there_is_not_doubled() {
        check(
            "python",
            "def f(items):\n    $0\n",
            Mode::MultiLine,
            "    for item in items:\n        print(item)\n    return len(items)\n",
            expect![[r#"
                def f(items):
                    ⟨for item in items:
                        print(item)
                    return len(items)⟩
            "#]],
        );
    }

    #[test]
    fn empty_and_blank_completions_are_dropped() {
        check(
            "rust",
            "let x = $0;\n",
            Mode::SingleLine,
            "",
            expect![[r#"
            (nothing)
        "#]],
        );
        check(
            "rust",
            "let x = $0;\n",
            Mode::SingleLine,
            "  \t ",
            expect![[r#"
            (nothing)
        "#]],
        );
        check(
            "rust",
            "let x = $0;\n",
            Mode::SingleLine,
            "\nfoo();",
            expect![[r#"
            (nothing)
        "#]],
        );
    }

    #[test]
    fn repetitive_completions_are_dropped() {
        check(
            "python",
            "def f():\n    $0\n",
            Mode::MultiLine,
            "print('hello')\n    print('hello')\n    print('hello')\n",
            expect![[r#"
                (nothing)
            "#]],
        );
        check(
            "python",
            "x = $0\n",
            Mode::SingleLine,
            "foo foo foo foo foo foo",
            expect![[r#"
            (nothing)
        "#]],
        );
    }

    #[test]
    fn closing_lines_repeated_are_not_repetition() {
        check(
            "c",
            "void f(void) {\n    if (a) {\n        if (b) {$0\n",
            Mode::MultiLine,
            "\n            if (c) {\n                g();\n            }\n        }\n    }\n}\n",
            expect![[r#"
                void f(void) {
                    if (a) {
                        if (b) {⟨
                            if (c) {
                                g();
                            }
                        }⟩
            "#]],
        );
    }

    #[test]
    fn crlf_documents_get_crlf_completions() {
        let text = "fn f() {\r\n    $0\r\n}\r\n";
        let offset = text.find("$0").expect("cursor");
        let doc = Document::new("file:///t/a.rs", "rust", 1, &text.replacen("$0", "", 1));
        let out = postprocess(&PostInput {
            completion: "let a = 1;\n    let b = 2;",
            doc: &doc,
            cursor: offset,
            mode: Mode::MultiLine,
        });
        assert_eq!(out.as_deref(), Some("let a = 1;\r\n    let b = 2;"));
    }
}
