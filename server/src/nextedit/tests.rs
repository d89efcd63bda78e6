//! Next-edit predictions on small documents: a typist makes edits as an editor sends them, and the
//! prediction is applied to show the text it proposes.

use super::*;
use crate::document::Change;
use crate::position::{Encoding, LinePos};

/// Makes edits on a document as an editor sends them, recording them in a history (also used by
/// the history's own tests).
pub(super) struct Typist {
    pub(super) doc: Document,
    pub(super) history: History,
}

impl Typist {
    pub(super) fn new(language: &str, text: &str) -> Typist {
        let uri = match language {
            "rust" => "file:///t.rs",
            "python" => "file:///t.py",
            _ => "file:///t.ts",
        };
        Typist { doc: Document::new(uri, language, 1, text), history: History::default() }
    }

    /// Replaces the first occurrence of `find` on `line` (0-based) with `with`, one key at a time
    /// after selecting it, as a user would.
    fn retype(&mut self, line: u32, find: &str, with: &str) -> &mut Self {
        let text = self.doc.rope.line(line as usize).to_string();
        let column = text.find(find).unwrap_or_else(|| panic!("{find:?} not on line {line}: {text:?}"));
        let column = text[..column].encode_utf16().count() as u32;
        let width = find.encode_utf16().count() as u32;
        let mut chars = with.chars();
        let first = chars.next().map(String::from).unwrap_or_default();
        self.change(line, column, column + width, &first);
        let mut at = column + first.encode_utf16().count() as u32;
        for c in chars {
            self.change(line, at, at, &c.to_string());
            at += c.len_utf16() as u32;
        }
        self
    }

    pub(super) fn change(&mut self, line: u32, c0: u32, c1: u32, text: &str) {
        let change = Change {
            range: Some((LinePos { line, character: c0 }, LinePos { line, character: c1 })),
            text: text.into(),
        };
        let before = self.doc.clone();
        self.doc.apply_changes(self.doc.version + 1, std::slice::from_ref(&change), Encoding::Utf16);
        self.history.record(&before, &self.doc, &[change], Encoding::Utf16);
    }

    fn predict(&self) -> Option<Prediction> {
        let cursor = self.history.current.as_ref().map_or(0, |g| g.new_end);
        predict(&self.doc, &self.history, cursor)
    }

    /// The text with the prediction applied, and its source; the text unchanged and `none` when
    /// nothing is predicted.
    fn applied(&self) -> (String, &'static str) {
        let Some(prediction) = self.predict() else { return (self.doc.text(), "none") };
        let mut rope = self.doc.rope.clone();
        let mut edits = prediction.edits.clone();
        edits.sort_by_key(|e| std::cmp::Reverse(e.start));
        for edit in edits {
            rope.remove(edit.start..edit.end);
            rope.insert(edit.start, &edit.text);
        }
        (rope.to_string(), prediction.source.as_str())
    }
}

#[test]
fn a_rust_local_renamed_at_its_let_is_renamed_at_its_uses() {
    let mut t = Typist::new(
        "rust",
        "fn total(items: &[u32]) -> u32 {\n    let mut sum = 0;\n    for item in items {\n        sum += item;\n    }\n    // sum is returned\n    println!(\"{}\", sum);\n    sum\n}\n\nfn other() -> u32 {\n    let sum = 1;\n    sum\n}\n",
    );
    t.retype(1, "sum", "acc");
    let (text, source) = t.applied();
    assert_eq!(source, "rename");
    assert_eq!(
        text,
        "fn total(items: &[u32]) -> u32 {\n    let mut acc = 0;\n    for item in items {\n        acc += item;\n    }\n    // sum is returned\n    println!(\"{}\", acc);\n    acc\n}\n\nfn other() -> u32 {\n    let sum = 1;\n    sum\n}\n"
    );
    // Nearest to the cursor first.
    let edits = t.predict().map(|p| p.edits).unwrap_or_default();
    assert!(edits.windows(2).all(|w| w[0].start < w[1].start), "{edits:?}");
}

#[test]
fn a_python_parameter_renamed_at_its_definition_follows_into_the_body_but_not_attributes_or_keywords() {
    let mut t = Typist::new(
        "python",
        "def show(name, out):\n    \"\"\"Prints name.\"\"\"\n    out.write(f\"{name}\\n\")\n    log(name=name, obj=out.name)\n    return name\n",
    );
    t.retype(0, "name", "label");
    let (text, source) = t.applied();
    assert_eq!(source, "rename");
    assert_eq!(
        text,
        "def show(label, out):\n    \"\"\"Prints name.\"\"\"\n    out.write(f\"{label}\\n\")\n    log(name=label, obj=out.name)\n    return label\n"
    );
}

#[test]
fn typescript_const_rename_and_shorthand_properties_keep_their_key() {
    let mut t =
        Typist::new("typescript", "function point(): P {\n  const x = 1;\n  const y = x + 1;\n  return { x, y };\n}\n");
    t.retype(1, "x", "left");
    let (text, source) = t.applied();
    assert_eq!(source, "rename");
    assert_eq!(text, "function point(): P {\n  const left = 1;\n  const y = left + 1;\n  return { x: left, y };\n}\n");
}

#[test]
fn no_rename_at_a_use_at_a_shadowed_name_or_into_a_name_in_use() {
    // Renamed at a use: the user may mean another variable.
    let mut t = Typist::new("rust", "fn f() {\n    let a = 1;\n    g(a);\n    h(a);\n}\n");
    t.retype(2, "a", "b");
    assert_eq!(t.applied().1, "none");
    // Shadowed further down.
    let mut t = Typist::new("rust", "fn f() {\n    let a = 1;\n    let a = a + 1;\n    h(a);\n}\n");
    t.retype(1, "a", "b");
    assert_eq!(t.applied().1, "none");
    // The new name is taken.
    let mut t = Typist::new("python", "def f(a, b):\n    return a + b\n");
    t.retype(0, "a", "b");
    assert_eq!(t.applied().1, "none");
}

#[test]
fn a_function_renamed_at_its_definition_follows_to_its_calls_in_the_file() {
    let mut t = Typist::new(
        "python",
        "def area(r):\n    return 3 * r * r\n\n\ndef main():\n    print(area(2))\n    x.area = area\n",
    );
    t.retype(0, "area", "disc_area");
    let (text, _) = t.applied();
    assert_eq!(
        text,
        "def disc_area(r):\n    return 3 * r * r\n\n\ndef main():\n    print(disc_area(2))\n    x.area = disc_area\n"
    );
}

#[test]
fn a_print_line_changed_to_logging_is_repeated_on_its_siblings() {
    let mut t = Typist::new(
        "python",
        "def report(a, b):\n    print(a)\n    print(b + 1, sep='')\n    value = a\n    print(value)\n    if a:\n        print(a)\n    # print(a)\n",
    );
    t.retype(1, "print", "log.info");
    let (text, source) = t.applied();
    assert_eq!(source, "pattern");
    assert_eq!(
        text,
        "def report(a, b):\n    log.info(a)\n    log.info(b + 1, sep='')\n    value = a\n    log.info(value)\n    if a:\n        print(a)\n    # print(a)\n"
    );
}

#[test]
fn a_method_swapped_on_one_of_parallel_lines_is_swapped_on_the_others_with_their_own_receivers() {
    let mut t = Typist::new(
        "typescript",
        "function f(a: string[], b: string[]) {\n  a.push(\"x\");\n  b.push(\"y\");\n  a.pop();\n}\n",
    );
    t.retype(1, "push", "unshift");
    let (text, source) = t.applied();
    assert_eq!(source, "pattern");
    assert_eq!(
        text,
        "function f(a: string[], b: string[]) {\n  a.unshift(\"x\");\n  b.unshift(\"y\");\n  a.pop();\n}\n"
    );
}

#[test]
fn an_argument_added_to_one_call_is_added_to_same_shaped_calls_keeping_their_names() {
    let mut t =
        Typist::new("rust", "fn f() {\n    draw(a, 1);\n    draw(b, 2);\n    draw(c, 3, 4);\n    draw(d, 5);\n}\n");
    t.change(1, 13, 13, ", &a");
    let (text, source) = t.applied();
    assert_eq!(source, "pattern");
    assert_eq!(
        text,
        "fn f() {\n    draw(a, 1, &a);\n    draw(b, 2, &b);\n    draw(c, 3, 4);\n    draw(d, 5, &d);\n}\n"
    );
}

#[test]
fn an_argument_added_to_one_function_s_call_leaves_other_functions_calls_alone() {
    // Rust method chains, Python and TypeScript calls: the callee is part of the shape.
    let mut t = Typist::new(
        "rust",
        "fn f() {\n    let n = a\n        .add(x)\n        .sub(y)\n        .add(z)\n        .sum();\n}\n",
    );
    t.change(2, 14, 14, ", &mut ctx");
    let (text, _) = t.applied();
    assert_eq!(
        text,
        "fn f() {\n    let n = a\n        .add(x, &mut ctx)\n        .sub(y)\n        .add(z, &mut ctx)\n        .sum();\n}\n"
    );
    let mut t = Typist::new("python", "def f():\n    load(a)\n    save(b)\n    load(c)\n");
    t.change(1, 10, 10, ", strict=True");
    let (text, _) = t.applied();
    assert_eq!(text, "def f():\n    load(a, strict=True)\n    save(b)\n    load(c, strict=True)\n");
    let mut t = Typist::new("typescript", "function f() {\n  log.add(a);\n  log.drop(b);\n}\n");
    t.change(1, 11, 11, ", now");
    assert_eq!(t.predict(), None, "a method of another name is not a sibling");
}

#[test]
fn unrelated_edits_predict_nothing() {
    // A new line of code.
    let mut t = Typist::new("python", "def f():\n    x = 1\n    y = 2\n");
    t.change(2, 9, 9, "\n    z = 3");
    assert_eq!(t.applied().1, "none");
    // A changed number on one of several similar lines.
    let mut t = Typist::new("python", "x = 1\ny = 1\nz = 1\n");
    t.retype(0, "1", "2");
    assert_eq!(t.applied().1, "none");
    // A comment edited.
    let mut t = Typist::new("rust", "fn f() {\n    // print(a)\n    // print(b)\n}\n");
    t.retype(1, "print", "log");
    assert_eq!(t.applied().1, "none");
    // A changed argument variable.
    let mut t = Typist::new("python", "print(a)\nprint(a)\n");
    t.retype(0, "a", "b");
    assert_eq!(t.applied().1, "none");
}

#[test]
fn a_prediction_is_for_the_text_it_was_made_on() {
    let mut t = Typist::new("python", "def f(n):\n    return n\n");
    t.retype(0, "n", "count");
    assert!(t.predict().is_some());
    // Accepting it (one change with several edits) ends the logical edit: nothing more follows.
    let before = t.doc.clone();
    let change = Change {
        range: Some((LinePos { line: 1, character: 11 }, LinePos { line: 1, character: 12 })),
        text: "count".into(),
    };
    let changes = [
        change.clone(),
        Change {
            range: Some((LinePos { line: 0, character: 0 }, LinePos { line: 0, character: 0 })),
            text: String::new(),
        },
    ];
    t.doc.apply_changes(50, &changes, Encoding::Utf16);
    t.history.record(&before, &t.doc, &changes, Encoding::Utf16);
    assert!(t.predict().is_none());
}

#[test]
fn a_parameter_named_like_its_method_leaves_the_method_name_alone() {
    let mut t = Typist::new(
        "python",
        "class E:\n    @headers.setter\n    def headers(self, headers):\n        self.hdrs = headers\n",
    );
    t.retype(2, "headers)", "value)");
    assert_eq!(
        t.applied(),
        ("class E:\n    @headers.setter\n    def headers(self, value):\n        self.hdrs = value\n".into(), "rename")
    );
}

#[test]
fn pattern_edits_are_minimal() {
    let mut t = Typist::new("python", "def f():\n    a = set(x)\n    b = set(y)\n");
    t.retype(1, "set", "frozenset");
    let edits = t.predict().map(|p| p.edits).unwrap_or_default();
    assert_eq!(edits, vec![TextEdit { start: 38, end: 38, text: "frozen".into() }]);
}
