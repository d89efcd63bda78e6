use super::hygiene::{code_answer, prose_problem};
use super::*;

fn doc(language: &str, path: &str, text: &str) -> Document {
    Document::new(&format!("file:///w/{path}"), language, 1, text)
}

/// The char index of the first `marker` in `doc`.
fn at(doc: &Document, marker: &str) -> usize {
    let text = doc.text();
    let byte = text.find(marker).unwrap_or_else(|| panic!("`{marker}` not in the document"));
    doc.rope.byte_to_char(byte)
}

/// The titles at the first `marker`.
fn titles(doc: &Document, marker: &str) -> Vec<String> {
    let cursor = at(doc, marker);
    list(doc, cursor, cursor, &[]).into_iter().map(|c| c.title).collect()
}

fn apply(doc: &Document, edit: &Edit) -> String {
    let mut rope = doc.rope.clone();
    rope.remove(edit.start..edit.end);
    rope.insert(edit.start, &edit.text);
    rope.to_string()
}

const RUST: &str = "use std::fmt;\n\n/// Adds.\npub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n\n#[derive(Debug)]\npub struct Point {\n    x: i32,\n}\n\nfn later(x: u32) -> u32 {\n    todo!()\n}\n";

#[test]
fn listing_per_language() {
    let rust = doc("rust", "lib.rs", RUST);
    assert_eq!(titles(&rust, "a + b"), ["Glint: Update the doc comment of `add`", "Glint: Generate a test for `add`"]);
    assert_eq!(titles(&rust, "x: i32,"), ["Glint: Write the doc comment of `Point`"]);
    assert_eq!(
        titles(&rust, "todo!()"),
        ["Glint: Complete the body of `later`", "Glint: Write the doc comment of `later`"]
    );
    assert!(titles(&rust, "use std").is_empty());

    let python = doc(
        "python",
        "m.py",
        "class Shape:\n    def area(self):\n        pass\n\n    def name(self):\n        \"\"\"The name.\"\"\"\n        return 'shape'\n",
    );
    assert_eq!(
        titles(&python, "pass"),
        ["Glint: Complete the body of `area`", "Glint: Write the doc comment of `area`"]
    );
    assert_eq!(
        titles(&python, "return 'shape'"),
        ["Glint: Update the doc comment of `name`", "Glint: Generate a test for `name`"]
    );

    let ts = doc(
        "typescript",
        "a.ts",
        "/** Parses. */\nexport function parse(s: string): number {\n  throw new Error(\"not implemented\");\n}\nexport const twice = (n: number) => {\n  return n * 2;\n};\ninterface Shape {\n  area(): number;\n}\n",
    );
    assert_eq!(
        titles(&ts, "throw"),
        ["Glint: Complete the body of `parse`", "Glint: Update the doc comment of `parse`"]
    );
    assert_eq!(titles(&ts, "n * 2"), ["Glint: Write the doc comment of `twice`", "Glint: Generate a test for `twice`"]);
    assert_eq!(titles(&ts, "area()"), ["Glint: Write the doc comment of `Shape`"]);

    let go = doc(
        "go",
        "m.go",
        "package m\n\n// Sum adds.\nfunc Sum(a, b int) int {\n\treturn a + b\n}\n\nfunc (p *P) Run() {\n}\n",
    );
    assert_eq!(titles(&go, "return a"), ["Glint: Update the doc comment of `Sum`"]);
    assert_eq!(titles(&go, "Run()"), ["Glint: Complete the body of `Run`", "Glint: Write the doc comment of `Run`"]);

    let c = doc("c", "m.c", "int square(int x) {\n    return x * x;\n}\n");
    assert_eq!(titles(&c, "x * x"), ["Glint: Write the doc comment of `square`"]);
    let java = doc("java", "A.java", "class A {\n    int f() {\n        return 1;\n    }\n}\n");
    assert_eq!(titles(&java, "return 1"), ["Glint: Write the doc comment of `f`"]);
}

#[test]
fn a_selection_offers_a_rewrite_and_diagnostics_offer_fixes() {
    let rust = doc("rust", "lib.rs", RUST);
    let start = at(&rust, "a + b");
    let diagnostics = [
        Diagnostic { start, end: start + 5, message: "mismatched types\nexpected i32".into() },
        Diagnostic { start: 0, end: 3, message: "unused import".into() },
    ];
    let found = list(&rust, start, start + 5, &diagnostics);
    assert_eq!(found[0].kind, ActionKind::Fix);
    assert_eq!(found[0].title, "Glint: Fix `mismatched types`");
    assert_eq!(found[0].diagnostic, Some(0));
    assert_eq!(found.iter().filter(|c| c.kind == ActionKind::Fix).count(), 1);
    assert_eq!(found.last().map(|c| c.kind), Some(ActionKind::Rewrite));
}

#[test]
fn a_body_is_filled_in_place_with_the_files_indentation() {
    let rust = doc("rust", "lib.rs", RUST);
    let cursor = at(&rust, "todo!()");
    let plan = plan(&rust, ActionKind::CompleteBody, &Request { start: cursor, end: cursor, ..Request::default() })
        .expect("a plan");
    let Plan::Fill { doc: hole, cursor, .. } = &plan else { panic!("a fill-in plan") };
    let hole_text = hole.text();
    assert!(hole_text.contains("fn later(x: u32) -> u32 {\n    \n}\n"), "{hole_text}");
    assert_eq!(hole.rope.char(*cursor - 1), ' ');
    assert_eq!(hole.rope.char(*cursor), '\n');
    let edit = plan.finish(&rust, "x * 2").expect("an edit");
    assert!(apply(&rust, &edit).ends_with("fn later(x: u32) -> u32 {\n    x * 2\n}\n"));
    assert_eq!(plan.finish(&rust, "   ").unwrap_err(), "the model wrote nothing");
    // Code that breaks the file is refused.
    assert!(plan.finish(&rust, "x * (2").unwrap_err().contains("does not parse"));
}

#[test]
fn python_bodies_and_docstrings() {
    let python = doc("python", "m.py", "def area(w, h):\n    pass\n\n\ndef name():\n    return 'x'\n");
    let cursor = at(&python, "pass");
    let body = plan(&python, ActionKind::CompleteBody, &Request { start: cursor, end: cursor, ..Request::default() })
        .expect("a plan");
    let edit = body.finish(&python, "return w * h").expect("an edit");
    assert!(apply(&python, &edit).starts_with("def area(w, h):\n    return w * h\n"));

    let cursor = at(&python, "return 'x'");
    let docs = plan(&python, ActionKind::Document, &Request { start: cursor, end: cursor, ..Request::default() })
        .expect("a plan");
    let edit = docs.finish(&python, "Sure! Returns the name of the shape").expect("an edit");
    assert!(
        apply(&python, &edit)
            .ends_with("def name():\n    \"\"\"Returns the name of the shape.\"\"\"\n    return 'x'\n"),
        "{}",
        apply(&python, &edit)
    );
}

#[test]
fn doc_comments_follow_each_languages_convention() {
    let rust = doc("rust", "lib.rs", RUST);
    let cursor = at(&rust, "a + b");
    let request = Request { start: cursor, end: cursor, ..Request::default() };
    let edit = plan(&rust, ActionKind::Document, &request)
        .and_then(|p| p.finish(&rust, "```rust\nfn add() {}\n```\nReturns the sum of `a` and `b`"))
        .expect("an edit");
    // The old `/// Adds.` is replaced, the attribute-free function keeps its place.
    assert!(
        apply(&rust, &edit).contains("\n/// Returns the sum of `a` and `b`.\npub fn add("),
        "{}",
        apply(&rust, &edit)
    );
    assert!(!apply(&rust, &edit).contains("Adds."));

    let struct_at = at(&rust, "x: i32,");
    let edit = plan(&rust, ActionKind::Document, &Request { start: struct_at, end: struct_at, ..Request::default() })
        .and_then(|p| p.finish(&rust, "A point on a line."))
        .expect("an edit");
    assert!(apply(&rust, &edit).contains("\n/// A point on a line.\n#[derive(Debug)]\npub struct Point"));

    let go = doc("go", "m.go", "package m\n\nfunc Sum(a, b int) int {\n\treturn a + b\n}\n");
    let cursor = at(&go, "return");
    let edit = plan(&go, ActionKind::Document, &Request { start: cursor, end: cursor, ..Request::default() })
        .and_then(|p| p.finish(&go, "Returns the sum of a and b."))
        .expect("an edit");
    assert!(apply(&go, &edit).contains("\n// Sum returns the sum of a and b.\nfunc Sum("));

    let ts = doc("typescript", "a.ts", "class A {\n  run(n: number): number {\n    return n;\n  }\n}\n");
    let cursor = at(&ts, "return n");
    let edit = plan(&ts, ActionKind::Document, &Request { start: cursor, end: cursor, ..Request::default() })
        .and_then(|p| p.finish(&ts, "/** Runs it. */"))
        .expect("an edit");
    assert!(apply(&ts, &edit).contains("{\n  /**\n   * Runs it.\n   */\n  run(n: number)"), "{}", apply(&ts, &edit));

    let c = doc("c", "m.c", "int square(int x) {\n    return x * x;\n}\n");
    let cursor = at(&c, "x * x");
    let edit = plan(&c, ActionKind::Document, &Request { start: cursor, end: cursor, ..Request::default() })
        .and_then(|p| p.finish(&c, "Squares x."))
        .expect("an edit");
    assert!(apply(&c, &edit).starts_with("/**\n * @brief Squares x.\n */\nint square"));

    assert!(
        plan(&c, ActionKind::Document, &Request { start: cursor, end: cursor, ..Request::default() })
            .and_then(|p| p.finish(&c, "```c\nint x;\n```"))
            .is_err()
    );
}

#[test]
fn fixes_and_rewrites_take_fenced_or_chatty_code_and_refuse_broken_code() {
    let text = "fn main() {\n    let x: i32 = \"one\";\n    println!(\"{x}\");\n}\n";
    let rust = doc("rust", "main.rs", text);
    let start = at(&rust, "\"one\"");
    let request = Request {
        start,
        end: start + 5,
        diagnostic: Some(Diagnostic { start, end: start + 5, message: "mismatched types".into() }),
        ..Request::default()
    };
    let fix = plan(&rust, ActionKind::Fix, &request).expect("a plan");
    let Plan::Instruct { code, .. } = &fix else { panic!("an instruction plan") };
    assert_eq!(code, text, "the whole short function is the region");
    let fenced = "Here is the fixed code:\n```rust\nfn main() {\n    let x: i32 = 1;\n    println!(\"{x}\");\n}\n```\nThis changes the string to a number.";
    let edit = fix.finish(&rust, fenced).expect("an edit");
    assert_eq!(apply(&rust, &edit), "fn main() {\n    let x: i32 = 1;\n    println!(\"{x}\");\n}\n");
    let chatty = "Sure, here is the corrected version:\nfn main() {\n    let x: i32 = 1;\n    println!(\"{x}\");\n}";
    assert_eq!(apply(&rust, &fix.finish(&rust, chatty).expect("an edit")), apply(&rust, &edit));
    let broken = "```rust\nfn main() {\n    let x: i32 = 1;\n```";
    assert!(fix.finish(&rust, broken).unwrap_err().contains("does not parse"));
    assert!(fix.finish(&rust, "I cannot help with that.").is_err() || fix.finish(&rust, "").is_err());

    // A rewrite of an indented selection is reindented to its place, CRLF kept.
    let crlf = doc("rust", "lib.rs", "fn f() {\r\n    let a = 1;\r\n    let b = 2;\r\n}\r\n");
    let start = at(&crlf, "let a");
    let end = at(&crlf, "2;") + 2;
    let rewrite = plan(
        &crlf,
        ActionKind::Rewrite,
        &Request { start, end, instruction: Some("inline".into()), ..Request::default() },
    )
    .expect("a plan");
    let edit = rewrite.finish(&crlf, "```\nlet (a, b) = (1, 2);\n```").expect("an edit");
    assert_eq!(apply(&crlf, &edit), "fn f() {\r\n    let (a, b) = (1, 2);\r\n}\r\n");
}

#[test]
fn tests_go_where_the_language_keeps_them() {
    let rust = doc("rust", "lib.rs", "pub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n");
    let cursor = at(&rust, "a + b");
    let test =
        plan(&rust, ActionKind::Test, &Request { start: cursor, end: cursor, ..Request::default() }).expect("a plan");
    let edit = test.finish(&rust, "assert_eq!(add(1, 2), 3);").expect("an edit");
    assert_eq!(
        apply(&rust, &edit),
        "pub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n\n#[cfg(test)]\nmod tests {\n    use super::*;\n\n    #[test]\n    fn test_add() {\n        assert_eq!(add(1, 2), 3);\n    }\n}\n"
    );
    // An existing test module takes the new test.
    let with_module = doc("rust", "lib.rs", &apply(&rust, &edit));
    let again = plan(&with_module, ActionKind::Test, &Request { start: cursor, end: cursor, ..Request::default() })
        .expect("a plan");
    let edit = again.finish(&with_module, "assert_eq!(add(0, 0), 0);").expect("an edit");
    let text = apply(&with_module, &edit);
    assert!(text.contains("    fn test_add_2() {\n        assert_eq!(add(0, 0), 0);\n    }\n}\n"), "{text}");
    assert_eq!(text.matches("mod tests").count(), 1);

    let python = doc(
        "python",
        "m.py",
        "def area(w, h):\n    return w * h\n\n\nif __name__ == \"__main__\":\n    print(area(1, 2))\n",
    );
    let cursor = at(&python, "return");
    let test =
        plan(&python, ActionKind::Test, &Request { start: cursor, end: cursor, ..Request::default() }).expect("a plan");
    let text = apply(&python, &test.finish(&python, "assert area(2, 3) == 6").expect("an edit"));
    assert!(text.contains("\ndef test_area():\n    assert area(2, 3) == 6\n\n\nif __name__"), "{text}");
}

#[test]
fn code_extraction() {
    assert_eq!(extract_code("```python\nx = 1\n```").as_deref(), Some("x = 1"));
    assert_eq!(extract_code("```\nx = 1\n").as_deref(), Some("x = 1"), "an unclosed fence still counts");
    assert_eq!(extract_code("Here is the code:\nx = 1\n\nThis sets x.").as_deref(), Some("x = 1"));
    assert_eq!(extract_code("for x in y:\n    print(x)").as_deref(), Some("for x in y:\n    print(x)"));
    assert_eq!(extract_code("```\n\n```"), None);
    assert_eq!(extract_prose("```rust\nfn a() {}\n```", "a"), None);
    assert_eq!(
        extract_prose("/// Counts the lines\n/// in a file", "count").as_deref(),
        Some("Counts the lines in a file.")
    );
    assert_eq!(ActionKind::from_id("document"), Some(ActionKind::Document));
    assert!(ActionKind::ALL.iter().all(|k| ActionKind::from_id(k.id()) == Some(*k)));
}

#[test]
fn doc_comments_that_say_nothing_are_refused_with_the_reason() {
    let python = doc("python", "m.py", "def greet(name):\n    return f\"Hello, {name}\"\n");
    let cursor = at(&python, "return");
    let docs = plan(&python, ActionKind::Document, &Request { start: cursor, end: cursor, ..Request::default() })
        .expect("a plan");
    // The answer users saw applied: it parses, and says nothing.
    let why = docs.finish(&python, "The documentation for `greet` is:").expect_err("a restatement is refused");
    assert!(why.contains("introduces a description"), "{why}");
    for (answer, reason) in [
        ("The docstring for greet: it greets.", "restates the request"),
        ("Sure, I will document this function as requested.", "restates the request"),
        ("This docstring documents greet.", "restates the request"),
        ("The `greet` function.", "says nothing"),
        ("greet", "held no description"),
        ("", "held no description"),
    ] {
        let why = docs.finish(&python, answer).expect_err(answer);
        assert!(why.contains(reason), "{answer:?}: {why}");
    }
    // Descriptions that merely use the same nouns are documentation.
    let edit = docs.finish(&python, "Returns a greeting for `name`.").expect("an edit");
    assert!(apply(&python, &edit).contains("\"\"\"Returns a greeting for `name`.\"\"\""), "{}", apply(&python, &edit));
    assert_eq!(prose_problem("Returns the comment for a post.", "comment_of"), None);
    assert_eq!(prose_problem("Fetches the documentation for a crate.", "docs"), None);
    assert_eq!(prose_problem("Runs it.", "run"), None);
}

#[test]
fn rewrites_that_describe_instead_of_doing_are_refused() {
    let python = doc("python", "m.py", "def total(xs):\n    t = 0\n    for x in xs:\n        t += x\n    return t\n");
    let start = at(&python, "    t = 0");
    let end = at(&python, "    return t");
    let rewrite = plan(
        &python,
        ActionKind::Rewrite,
        &Request { start, end, instruction: Some("use sum".into()), ..Request::default() },
    )
    .expect("a plan");
    let why = rewrite
        .finish(&python, "You could replace the loop with the built in sum function")
        .expect_err("a description is refused");
    assert!(why.contains("described the change instead of writing code"), "{why}");
    let edit = rewrite.finish(&python, "```python\nt = sum(xs)\n```").expect("code is taken");
    assert!(apply(&python, &edit).contains("    t = sum(xs)\n    return t\n"), "{}", apply(&python, &edit));
    assert_eq!(code_answer("from os import path as p").as_deref(), Ok("from os import path as p"));
}
