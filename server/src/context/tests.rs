//! Snapshot tests of context windows: fixtures with `$0` at the cursor, rendered as the engine
//! would get them. `UPDATE_EXPECT=1 cargo test -p glint-server --lib context` refreshes them.

use expect_test::{Expect, expect};

use super::*;

/// The engine's estimate (three bytes a token), so budgets in these tests read like real ones.
fn count(text: &str) -> usize {
    text.len().div_ceil(3)
}

pub(crate) fn doc_at(uri: &str, language_id: &str, fixture: &str) -> (Document, usize) {
    let offset = fixture.find("$0").expect("fixture has a $0 cursor");
    let text = fixture.replacen("$0", "", 1);
    let cursor = text[..offset].chars().count();
    (Document::new(uri, language_id, 1, &text), cursor)
}

fn render(decision: &Decision) -> String {
    let context = match decision {
        Decision::Skip(why) => return format!("skip: {why}\n"),
        Decision::Complete(context) => context,
    };
    let mut out = format!("{:?} {} {}\n", context.mode, context.language, context.path);
    for snippet in &context.snippets {
        out.push_str(&format!("--- snippet {}\n{}\n", snippet.path, snippet.text));
    }
    out.push_str(&format!("--- window\n{}$0{}", context.prefix, context.suffix));
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str("---\n");
    out
}

struct Case<'a> {
    uri: &'a str,
    language_id: &'a str,
    budget: usize,
    invoked: bool,
    others: &'a [&'a Document],
    recent_edits: &'a [RecentEdit],
}

impl Default for Case<'_> {
    fn default() -> Self {
        Case {
            uri: "file:///work/proj/src/main.rs",
            language_id: "rust",
            budget: 120,
            invoked: false,
            others: &[],
            recent_edits: &[],
        }
    }
}

/// Twelve lines of comments in the fixture's comment syntax and indentation, for each
/// `{filler}` line: text far enough from the cursor to fall out of a small window.
fn expand_filler(fixture: &str) -> String {
    let mut out = String::new();
    for line in fixture.split_inclusive('\n') {
        let code = line.trim_start();
        if let Some(marker) = code.strip_suffix("{filler}\n") {
            let indent = &line[..line.len() - code.len()];
            for i in 0..12 {
                out.push_str(&format!("{indent}{marker}filler line {i} keeps this part out of a small window\n"));
            }
        } else {
            out.push_str(line);
        }
    }
    out
}

fn run(case: Case, fixture: &str) -> Decision {
    let (doc, cursor) = doc_at(case.uri, case.language_id, &expand_filler(fixture));
    let input = ContextInput {
        doc: &doc,
        cursor,
        budget_tokens: case.budget,
        invoked: case.invoked,
        others: case.others,
        recent_edits: case.recent_edits,
    };
    let decision = build(&input, &count);
    if let Decision::Complete(context) = &decision {
        let total = count(&context.prefix)
            + count(&context.suffix)
            + context.snippets.iter().map(|s| count(&s.text) + count(&s.path)).sum::<usize>();
        // Per-line rounding lets the sum drift a little above the budget; a window twice the
        // budget would be a bug.
        assert!(total <= case.budget + case.budget / 5, "{total} tokens for a budget of {}", case.budget);
        let parts = assemble(&input, cursor, &count);
        assert_eq!(parts.prefix, context.prefix);
        let before = &doc.text()[..doc.rope.char_to_byte(cursor)];
        assert!(before.ends_with(&parts.prefix[parts.header_len..]), "the window is not cut from the text");
    }
    decision
}

fn check(case: Case, fixture: &str, expect: Expect) {
    expect.assert_eq(&render(&run(case, fixture)));
}

#[test]
fn rust_keeps_imports_headers_and_signatures() {
    check(
        Case { budget: 300, ..Case::default() },
        r#"
use std::collections::HashMap;
use std::fmt;

/// Parses one line of the configuration file.
fn parse_line(line: &str, strict: bool) -> Option<(String, String)> {
    let (key, value) = line.split_once('=')?;
    // {filler}
    Some((key.trim().to_string(), value.trim().to_string()))
}

struct Config {
    entries: HashMap<String, String>,
}

impl Config {
    pub fn load(text: &str) -> Config {
        let mut entries = HashMap::new();
        // {filler}
        for line in text.lines() {
            let trimmed = line.trim();
            if let Some((key, value)) = parse_line(trimmed, true) {
                $0
            }
        }
        Config { entries }
    }
}
"#,
        expect![[r#"
            MultiLine rust src/main.rs
            --- snippet src/main.rs
            fn parse_line(line: &str, strict: bool) -> Option<(String, String)>
            struct Config {
                entries: HashMap<String, String>,
            }
            --- window
            impl Config {
                pub fn load(text: &str) -> Config {
                    // ...
                    // filler line 5 keeps this part out of a small window
                    // filler line 6 keeps this part out of a small window
                    // filler line 7 keeps this part out of a small window
                    // filler line 8 keeps this part out of a small window
                    // filler line 9 keeps this part out of a small window
                    // filler line 10 keeps this part out of a small window
                    // filler line 11 keeps this part out of a small window
                    for line in text.lines() {
                        let trimmed = line.trim();
                        if let Some((key, value)) = parse_line(trimmed, true) {
                            $0
                        }
                    }
                    Config { entries }
                }
            }
            ---
        "#]],
    );
}

#[test]
fn python_keeps_class_and_method_headers() {
    check(
        Case { uri: "file:///srv/app/store.py", language_id: "python", budget: 300, ..Case::default() },
        r#"import os
from typing import Optional

def normalize(key: str, *, lower: bool = True) -> str:
    """Keys are compared without case."""
    # {filler}
    return key.lower() if lower else key


class Store:
    """A tiny key-value store."""

    def __init__(self, root: str):
        self.root = root
        self.items = {}

    def get(self, key: str) -> Optional[str]:
        # {filler}
        key = normalize(key)
        if key in self.items:
            $0
        return None
"#,
        expect![[r#"
            MultiLine python app/store.py
            --- snippet app/store.py
            import os
            --- snippet app/store.py
            def normalize(key: str, *, lower: bool = True) -> str: ...
            --- window
            class Store:
                # ...
                def get(self, key: str) -> Optional[str]:
                    # ...
                    # filler line 3 keeps this part out of a small window
                    # filler line 4 keeps this part out of a small window
                    # filler line 5 keeps this part out of a small window
                    # filler line 6 keeps this part out of a small window
                    # filler line 7 keeps this part out of a small window
                    # filler line 8 keeps this part out of a small window
                    # filler line 9 keeps this part out of a small window
                    # filler line 10 keeps this part out of a small window
                    # filler line 11 keeps this part out of a small window
                    key = normalize(key)
                    if key in self.items:
                        $0
                    return None
            ---
        "#]],
    );
}

#[test]
fn javascript_single_line_before_closing_brackets() {
    check(
        Case { uri: "file:///home/u/site/lib/fetch.js", language_id: "javascript", budget: 300, ..Case::default() },
        r#"const path = require('path')
import { readFile } from 'fs/promises'

function joinUrl(base, ...parts) {
  // {filler}
  return [base, ...parts].join('/')
}

export async function fetchAll(base, names) {
  const results = []
  // {filler}
  for (const name of names) {
    results.push(await fetch(joinUrl($0))
  }
  return results
}
"#,
        expect![[r#"
            SingleLine javascript lib/fetch.js
            --- snippet lib/fetch.js
            function joinUrl(base, ...parts)
            --- window
            export async function fetchAll(base, names) {
              // ...
              // filler line 0 keeps this part out of a small window
              // filler line 1 keeps this part out of a small window
              // filler line 2 keeps this part out of a small window
              // filler line 3 keeps this part out of a small window
              // filler line 4 keeps this part out of a small window
              // filler line 5 keeps this part out of a small window
              // filler line 6 keeps this part out of a small window
              // filler line 7 keeps this part out of a small window
              // filler line 8 keeps this part out of a small window
              // filler line 9 keeps this part out of a small window
              // filler line 10 keeps this part out of a small window
              // filler line 11 keeps this part out of a small window
              for (const name of names) {
                results.push(await fetch(joinUrl($0))
              }
              return results
            }
            ---
        "#]],
    );
}

#[test]
fn typescript_gives_interfaces_the_window_mentions() {
    check(
        Case { uri: "file:///p/src/shapes.ts", language_id: "typescript", budget: 300, ..Case::default() },
        r#"import { Logger } from './log';

export interface Shape {
  area(): number;
  name: string;
}

export class Canvas {
  private shapes: Shape[] = [];

  constructor(private readonly log: Logger) {}

  totalArea(): number {
    let total = 0;
    // {filler}
    for (const shape of this.shapes) {
      $0
    }
    return total;
  }
}
"#,
        expect![[r#"
            MultiLine typescript src/shapes.ts
            --- window
            export class Canvas {
              // ...
              totalArea(): number {
                let total = 0;
                // filler line 0 keeps this part out of a small window
                // filler line 1 keeps this part out of a small window
                // filler line 2 keeps this part out of a small window
                // filler line 3 keeps this part out of a small window
                // filler line 4 keeps this part out of a small window
                // filler line 5 keeps this part out of a small window
                // filler line 6 keeps this part out of a small window
                // filler line 7 keeps this part out of a small window
                // filler line 8 keeps this part out of a small window
                // filler line 9 keeps this part out of a small window
                // filler line 10 keeps this part out of a small window
                // filler line 11 keeps this part out of a small window
                for (const shape of this.shapes) {
                  $0
                }
                return total;
              }
            }
            ---
        "#]],
    );
}

#[test]
fn tsx_component() {
    check(
        Case { uri: "file:///p/src/List.tsx", language_id: "typescriptreact", budget: 300, ..Case::default() },
        r#"import React from 'react';

type Props = { items: string[]; onPick: (item: string) => void };

export function List({ items, onPick }: Props) {
  // {filler}
  const sorted = [...items].sort();
  return (
    <ul>
      {sorted.map((item) => (
        <li key={item} onClick={() => onPick(item)}>{item}</li>
      ))}
    </ul>
  );
}

export function Empty() {
  $0
}
"#,
        expect![[r#"
            MultiLine typescriptreact src/List.tsx
            --- snippet src/List.tsx
            import React from 'react';
            --- window
              // filler line 1 keeps this part out of a small window
              // filler line 2 keeps this part out of a small window
              // filler line 3 keeps this part out of a small window
              // filler line 4 keeps this part out of a small window
              // filler line 5 keeps this part out of a small window
              // filler line 6 keeps this part out of a small window
              // filler line 7 keeps this part out of a small window
              // filler line 8 keeps this part out of a small window
              // filler line 9 keeps this part out of a small window
              // filler line 10 keeps this part out of a small window
              // filler line 11 keeps this part out of a small window
              const sorted = [...items].sort();
              return (
                <ul>
                  {sorted.map((item) => (
                    <li key={item} onClick={() => onPick(item)}>{item}</li>
                  ))}
                </ul>
              );
            }

            export function Empty() {
              $0
            }
            ---
        "#]],
    );
}

#[test]
fn go_keeps_package_imports_and_types() {
    check(
        Case { uri: "file:///go/src/cache/cache.go", language_id: "go", budget: 300, ..Case::default() },
        r#"package cache

import (
	"sync"
	"time"
)

type entry struct {
	value   string
	expires time.Time
}

type Cache struct {
	mu    sync.Mutex
	items map[string]entry
}

func (c *Cache) Get(key string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// {filler}
	e, ok := c.items[key]
	if !ok || time.Now().After(e.expires) {
		$0
	}
	return e.value, true
}
"#,
        expect![[r#"
            MultiLine go cache/cache.go
            --- snippet cache/cache.go
            package cache
            --- snippet cache/cache.go
            type Cache struct {
            	mu    sync.Mutex
            	items map[string]entry
            }
            --- window
            func (c *Cache) Get(key string) (string, bool) {
            	// ...
            	// filler line 2 keeps this part out of a small window
            	// filler line 3 keeps this part out of a small window
            	// filler line 4 keeps this part out of a small window
            	// filler line 5 keeps this part out of a small window
            	// filler line 6 keeps this part out of a small window
            	// filler line 7 keeps this part out of a small window
            	// filler line 8 keeps this part out of a small window
            	// filler line 9 keeps this part out of a small window
            	// filler line 10 keeps this part out of a small window
            	// filler line 11 keeps this part out of a small window
            	e, ok := c.items[key]
            	if !ok || time.Now().After(e.expires) {
            		$0
            	}
            	return e.value, true
            }
            ---
        "#]],
    );
}

#[test]
fn c_keeps_includes_and_prototypes() {
    check(
        Case { uri: "file:///src/buf.c", language_id: "c", budget: 300, ..Case::default() },
        r#"#include <stdlib.h>
#include "buf.h"

struct buf {
    char *data;
    size_t len, cap;
};

static int buf_grow(struct buf *b, size_t need);

int buf_push(struct buf *b, char c)
{
    // {filler}
    if (b->len == b->cap) {
        if (buf_grow(b, b->len + 1) != 0)
            $0
    }
    b->data[b->len++] = c;
    return 0;
}
"#,
        expect![[r#"
            MultiLine c src/buf.c
            --- snippet src/buf.c
            #include <stdlib.h>
            --- snippet src/buf.c
            struct buf {
                char *data;
                size_t len, cap;
            };
            static int buf_grow(struct buf *b, size_t need);
            --- window
            int buf_push(struct buf *b, char c)
            {
                // ...
                // filler line 3 keeps this part out of a small window
                // filler line 4 keeps this part out of a small window
                // filler line 5 keeps this part out of a small window
                // filler line 6 keeps this part out of a small window
                // filler line 7 keeps this part out of a small window
                // filler line 8 keeps this part out of a small window
                // filler line 9 keeps this part out of a small window
                // filler line 10 keeps this part out of a small window
                // filler line 11 keeps this part out of a small window
                if (b->len == b->cap) {
                    if (buf_grow(b, b->len + 1) != 0)
                        $0
                }
                b->data[b->len++] = c;
                return 0;
            }
            ---
        "#]],
    );
}

#[test]
fn cpp_keeps_namespace_and_class_headers() {
    check(
        Case { uri: "file:///src/geo/poly.cpp", language_id: "cpp", budget: 300, ..Case::default() },
        r#"#include <vector>
#include "point.h"

namespace geo {

struct Point {
    double x, y;
};

class Polygon {
public:
    explicit Polygon(std::vector<Point> points) : points_(std::move(points)) {}

    double perimeter() const {
        double total = 0;
        // {filler}
        for (size_t i = 0; i < points_.size(); ++i) {
            const Point& a = points_[i];
            $0
        }
        return total;
    }

private:
    std::vector<Point> points_;
};

}  // namespace geo
"#,
        expect![[r#"
            MultiLine cpp geo/poly.cpp
            --- snippet geo/poly.cpp
            struct Point {
                double x, y;
            };
            --- window
            namespace geo {
            // ...
            class Polygon {
                // ...
                double perimeter() const {
                    // ...
                    // filler line 4 keeps this part out of a small window
                    // filler line 5 keeps this part out of a small window
                    // filler line 6 keeps this part out of a small window
                    // filler line 7 keeps this part out of a small window
                    // filler line 8 keeps this part out of a small window
                    // filler line 9 keeps this part out of a small window
                    // filler line 10 keeps this part out of a small window
                    // filler line 11 keeps this part out of a small window
                    for (size_t i = 0; i < points_.size(); ++i) {
                        const Point& a = points_[i];
                        $0
                    }
                    return total;
                }

            private:
                std::vector<Point> points_;
            };

            }  // namespace geo
            ---
        "#]],
    );
}

#[test]
fn java_keeps_package_imports_and_class() {
    check(
        Case { uri: "file:///src/main/java/org/ex/Queue.java", language_id: "java", budget: 300, ..Case::default() },
        r#"package org.ex;

import java.util.ArrayDeque;
import java.util.Deque;

public class Queue<T> {
    private final Deque<T> items = new ArrayDeque<>();
    private final int capacity;

    public Queue(int capacity) {
        this.capacity = capacity;
    }

    public boolean offer(T item) {
        // {filler}
        if (items.size() >= capacity) {
            return false;
        }
        $0
    }
}
"#,
        expect![[r#"
            MultiLine java ex/Queue.java
            --- snippet ex/Queue.java
            public class Queue<T> {
                private final Deque<T> items = new ArrayDeque<>();
                private final int capacity;
            }
            --- window
            public class Queue<T> {
                // ...
                public boolean offer(T item) {
                    // ...
                    // filler line 3 keeps this part out of a small window
                    // filler line 4 keeps this part out of a small window
                    // filler line 5 keeps this part out of a small window
                    // filler line 6 keeps this part out of a small window
                    // filler line 7 keeps this part out of a small window
                    // filler line 8 keeps this part out of a small window
                    // filler line 9 keeps this part out of a small window
                    // filler line 10 keeps this part out of a small window
                    // filler line 11 keeps this part out of a small window
                    if (items.size() >= capacity) {
                        return false;
                    }
                    $0
                }
            }
            ---
        "#]],
    );
}

#[test]
fn unknown_languages_get_line_windows() {
    check(
        Case { uri: "file:///p/scripts/build.lua", language_id: "lua", budget: 80, ..Case::default() },
        r#"local M = {}

-- {filler}
function M.build(target)
  local flags = {}
  -- {filler}
  for _, f in ipairs(target.flags) do
    $0
  end
  return flags
end

return M
"#,
        expect![[r#"
            MultiLine lua scripts/build.lua
            --- window
            function M.build(target)
              -- ...
              -- filler line 10 keeps this part out of a small window
              -- filler line 11 keeps this part out of a small window
              for _, f in ipairs(target.flags) do
                $0
              end
              return flags
            end

            return M
            ---
        "#]],
    );
}

/// One line per fixture: what `build` decides, with the reason when it skips.
fn decisions(cases: &[(&str, &str, bool)]) -> String {
    let mut out = String::new();
    for &(language_id, fixture, invoked) in cases {
        let uri = format!(
            "file:///t/x.{}",
            match language_id {
                "rust" => "rs",
                "python" => "py",
                "javascript" => "js",
                "go" => "go",
                "c" => "c",
                "java" => "java",
                _ => "txt",
            }
        );
        let decision = run(Case { uri: &uri, language_id, invoked, ..Case::default() }, fixture);
        let shown = match decision {
            Decision::Skip(why) => format!("skip ({why})"),
            Decision::Complete(context) => format!("{:?}", context.mode),
        };
        let invoked = if invoked { " [invoked]" } else { "" };
        out.push_str(&format!("{language_id:<10} {:<34} {shown}{invoked}\n", fixture.replace('\n', "⏎")));
    }
    out
}

#[test]
fn when_to_complete_and_how_much() {
    let table = decisions(&[
        ("rust", "let x = 1; // note $0", false),
        ("rust", "let x = 1; // note $0", true),
        ("rust", "/* a $0 */ let x = 1;", false),
        ("rust", "/* a */ $0", false),
        ("rust", "let s = \"ab$0\";", false),
        ("rust", "let s = \"ab\"$0;", false),
        ("rust", "let s = \"ab$0", false),
        ("rust", "fn f() {\n    let q = '\"'; let x = $0\n}", false),
        ("rust", "fn f() {\n    let q = \"a\\\"b$0\n}", false),
        ("rust", "foo($0)", false),
        ("rust", "foo($0bar)", false),
        ("rust", "foo($0bar)", true),
        ("rust", "fn f() {$0\n}", false),
        ("rust", "fn f() {\n    $0\n}", false),
        ("rust", "fn f() {\n    let x = $0\n}", false),
        ("rust", "fn f() {\n    let x = $0\n}", true),
        ("rust", "let p = Point::$0", false),
        ("python", "def f(x):$0", false),
        ("python", "x = f\"{a$0}\"", false),
        ("python", "x = f\"a$0{b}\"", false),
        ("python", "def f():\n    \"\"\"Doc $0\"\"\"", false),
        ("python", "# todo$0\nx = 1", false),
        ("python", "# todo\n$0x = 1", false),
        ("javascript", "const s = `${a$0}`", false),
        ("javascript", "items.map(x =>$0", false),
        ("go", "import \"fm$0\"", false),
        ("c", "#include \"bu$0\"", false),
        ("java", "int x = 1; // $0", false),
        ("plaintext", "# heading $0", false),
        ("plaintext", "say \"hi$0\"", false),
        ("plaintext", "say hi $0", false),
        ("plaintext", "$0", false),
    ]);
    expect![[r#"
        rust       let x = 1; // note $0              skip (inside a comment)
        rust       let x = 1; // note $0              MultiLine [invoked]
        rust       /* a $0 */ let x = 1;              skip (inside a comment)
        rust       /* a */ $0                         SingleLine
        rust       let s = "ab$0";                    skip (inside a string)
        rust       let s = "ab"$0;                    SingleLine
        rust       let s = "ab$0                      skip (inside a string)
        rust       fn f() {⏎    let q = '"'; let x = $0⏎} SingleLine
        rust       fn f() {⏎    let q = "a\"b$0⏎}     skip (inside a string)
        rust       foo($0)                            SingleLine
        rust       foo($0bar)                         skip (code after the cursor on its line)
        rust       foo($0bar)                         SingleLine [invoked]
        rust       fn f() {$0⏎}                       MultiLine
        rust       fn f() {⏎    $0⏎}                  MultiLine
        rust       fn f() {⏎    let x = $0⏎}          SingleLine
        rust       fn f() {⏎    let x = $0⏎}          MultiLine [invoked]
        rust       let p = Point::$0                  SingleLine
        python     def f(x):$0                        MultiLine
        python     x = f"{a$0}"                       SingleLine
        python     x = f"a$0{b}"                      skip (inside a string)
        python     def f():⏎    """Doc $0"""          skip (inside a string)
        python     # todo$0⏎x = 1                     skip (inside a comment)
        python     # todo⏎$0x = 1                     skip (code after the cursor on its line)
        javascript const s = `${a$0}`                 SingleLine
        javascript items.map(x =>$0                   MultiLine
        go         import "fm$0"                      skip (inside a string)
        c          #include "bu$0"                    skip (inside a string)
        java       int x = 1; // $0                   skip (inside a comment)
        plaintext  # heading $0                       skip (inside a comment)
        plaintext  say "hi$0"                         skip (inside a string)
        plaintext  say hi $0                          SingleLine
        plaintext  $0                                 MultiLine
    "#]]
    .assert_eq(&table);
}

#[test]
fn no_budget_no_completion() {
    let decision = run(Case { budget: 0, ..Case::default() }, "fn main() {\n    $0\n}\n");
    assert_eq!(decision, Decision::Skip("no token budget"));
}

#[test]
fn other_open_documents_give_signatures() {
    let (client, _) = doc_at(
        "file:///w/net/src/client.rs",
        "rust",
        r#"pub struct Client {
    base: String,
}

impl Client {
    pub fn new(base: &str) -> Client {
        Client { base: base.to_string() }
    }

    pub async fn get(&self, path: &str) -> Result<Vec<u8>, Error> {
        todo!()
    }
}
$0"#,
    );
    let (python, _) = doc_at("file:///w/tool.py", "python", "def get(path): ...\n$0");
    check(
        Case { others: &[&client, &python], budget: 300, ..Case::default() },
        r#"use crate::client::Client;

fn fetch_all(paths: &[&str]) -> Vec<Vec<u8>> {
    let client = Client::new("http://localhost");
    let mut out = Vec::new();
    for path in paths {
        out.push(client.get($0
    }
    out
}
"#,
        expect![[r#"
            SingleLine rust src/main.rs
            --- snippet src/client.rs
            pub struct Client {
                base: String,
            }
            impl Client {
                pub fn new(base: &str) -> Client
                pub async fn get(&self, path: &str) -> Result<Vec<u8>, Error>
            }
            --- window
            use crate::client::Client;

            fn fetch_all(paths: &[&str]) -> Vec<Vec<u8>> {
                let client = Client::new("http://localhost");
                let mut out = Vec::new();
                for path in paths {
                    out.push(client.get($0
                }
                out
            }
            ---
        "#]],
    );
}

#[test]
fn recent_edits_outside_the_window_are_kept_once() {
    let edits = [
        RecentEdit { uri: "file:///w/src/lib.rs".into(), text: "pub const LIMIT: usize = 64;\n".into() },
        // Already in the window: dropped.
        RecentEdit { uri: "file:///w/src/main.rs".into(), text: "    let total = 0;\n".into() },
        // The same text twice: kept once.
        RecentEdit { uri: "file:///w/src/lib.rs".into(), text: "pub const LIMIT: usize = 64;".into() },
        RecentEdit {
            uri: "file:///w/src/util.rs".into(),
            text: "\n\npub fn clamp(x: usize) -> usize {\n    x.min(LIMIT)\n}\n".into(),
        },
    ];
    check(
        Case { recent_edits: &edits, budget: 400, ..Case::default() },
        r#"fn main() {
    let total = 0;
    $0
}
"#,
        expect![[r#"
            MultiLine rust src/main.rs
            --- snippet src/lib.rs
            pub const LIMIT: usize = 64;
            --- snippet src/util.rs
            pub fn clamp(x: usize) -> usize {
                x.min(LIMIT)
            }
            --- window
            fn main() {
                let total = 0;
                $0
            }
            ---
        "#]],
    );
}

#[test]
fn the_naive_window_cuts_characters() {
    let (doc, cursor) = doc_at("file:///t/a.py", "python", "def add(a, b):\n    return a + b\n\nprint(add(1, $0))\n");
    let input = ContextInput { doc: &doc, cursor, budget_tokens: 8, invoked: false, others: &[], recent_edits: &[] };
    let context = naive(&input, &count);
    expect![[r#"
        (
            "+ b\n\nprint(add(1, ",
            "))\n",
            SingleLine,
            0,
        )
    "#]]
    .assert_debug_eq(&(context.prefix, context.suffix, context.mode, context.snippets.len()));
}

#[test]
fn display_paths_keep_the_last_two_components() {
    assert_eq!(display_path("file:///home/me/proj/src/main.rs"), "src/main.rs");
    assert_eq!(display_path("file:///c%3A/Users/me/My%20Docs/a.py"), "My Docs/a.py");
    assert_eq!(display_path("untitled:Untitled-1"), "untitled:Untitled-1");
    assert_eq!(display_path("a.rs"), "a.rs");
}

/// Every case of the development set, cursor at the masked span: `build` must not panic, must
/// stay within budget, and must cut its window from the real text.
#[test]
fn eval_cases_cut_windows_from_the_real_text() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/eval/cases-dev.jsonl");
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!("SKIP eval_cases_cut_windows_from_the_real_text: {} is missing", path.display());
        return;
    };
    let mut built = 0;
    let mut skipped = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let case: serde_json::Value = serde_json::from_str(line).expect("a JSON case");
        let field = |name: &str| case[name].as_str().unwrap_or_default().to_string();
        let (prefix, suffix, language) = (field("prefix"), field("suffix"), field("language"));
        let uri = format!("file:///eval/{}", field("path"));
        let doc = Document::new(&uri, &language, 1, &format!("{prefix}{suffix}"));
        let cursor = prefix.chars().count();
        for invoked in [false, true] {
            let input =
                ContextInput { doc: &doc, cursor, budget_tokens: 1024, invoked, others: &[], recent_edits: &[] };
            let parts = assemble(&input, cursor, &count);
            let total = count(&parts.prefix)
                + count(&parts.suffix)
                + parts.snippets.iter().map(|s| count(&s.text) + count(&s.path)).sum::<usize>();
            assert!(total <= 1024 + 1024 / 5, "{}: {total} tokens", field("id"));
            assert!(
                prefix.ends_with(&parts.prefix[parts.header_len..]),
                "{}: prefix not cut from the text",
                field("id")
            );
            assert!(suffix.starts_with(&parts.suffix), "{}: suffix not cut from the text", field("id"));
            assert!(parts.prefix.len() > parts.header_len || prefix.is_empty() || prefix.ends_with('\n'));
            match build(&input, &count) {
                Decision::Complete(_) => built += 1,
                Decision::Skip(_) => skipped += 1,
            }
        }
    }
    eprintln!("eval cases: {built} contexts built, {skipped} skipped");
    assert!(built > 0);
}

/// Whitespace-normalised, as the evaluation scores: lines trimmed, blank lines dropped.
fn normalized(text: &str) -> String {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A model that writes the masked span and then runs on into the real suffix is the worst case
/// for the stop rules: post-processing must cut it back to the span. Counts, per kind, how often
/// it does exactly (whitespace-normalised), for automatic and invoked triggers.
#[test]
fn eval_cases_stop_rules_cut_a_run_on_completion() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/eval/cases-dev.jsonl");
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!("SKIP eval_cases_stop_rules_cut_a_run_on_completion: {} is missing", path.display());
        return;
    };
    let mut table: std::collections::BTreeMap<(String, bool), (usize, usize, usize)> = Default::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let case: serde_json::Value = serde_json::from_str(line).expect("a JSON case");
        let field = |name: &str| case[name].as_str().unwrap_or_default().to_string();
        let (prefix, suffix, expected) = (field("prefix"), field("suffix"), field("expected"));
        let doc = Document::new(
            &format!("file:///eval/{}", field("path")),
            &field("language"),
            1,
            &format!("{prefix}{suffix}"),
        );
        let cursor = prefix.chars().count();
        for invoked in [false, true] {
            let row = table.entry((field("kind"), invoked)).or_default();
            let input =
                ContextInput { doc: &doc, cursor, budget_tokens: 1024, invoked, others: &[], recent_edits: &[] };
            let Decision::Complete(context) = build(&input, &count) else {
                row.2 += 1;
                continue;
            };
            let run_on: String = suffix.chars().take(300).collect();
            let completion = format!("{expected}{run_on}");
            let post = crate::postprocess::postprocess(&crate::postprocess::PostInput {
                completion: &completion,
                doc: &doc,
                cursor,
                mode: context.mode,
            });
            row.1 += 1;
            if normalized(post.as_deref().unwrap_or("")) == normalized(&expected) {
                row.0 += 1;
            } else if std::env::var("SHOW_MISSES").is_ok_and(|k| k == field("kind")) {
                eprintln!(
                    "--- {} {:?} invoked={invoked}\n{}⟨{}⟩\n expected ⟨{expected}⟩",
                    field("id"),
                    context.mode,
                    &prefix[prefix.len().saturating_sub(120)..],
                    post.unwrap_or_default()
                );
            }
        }
    }
    let mut exact = 0;
    let mut total = 0;
    for ((kind, invoked), (hits, n, skipped)) in &table {
        eprintln!("{kind:<12} invoked={invoked:<5} exact {hits}/{n} ({skipped} skipped)");
        exact += hits;
        total += n;
    }
    assert!(total > 0);
    eprintln!("exact {exact}/{total}");
    // Whole lines and whole blocks are what the stop rules are for; spans that end mid-line are
    // cut short by single-line mode by design.
    for kind in ["single_line", "multi_line"] {
        for invoked in [false, true] {
            let (hits, n, _) = table[&(kind.to_string(), invoked)];
            assert!(hits * 100 >= n * 90, "{kind} invoked={invoked}: only {hits}/{n} cut exactly");
        }
    }
}

/// Typing inside the window reuses the definition index of an earlier version: definitions
/// above keep their offsets, those below their distance from the end, and one that changed
/// since is not given from the stale index.
#[test]
fn the_definition_index_follows_typing_in_the_window() {
    use crate::document::Change;
    use crate::position::{Encoding, LinePos};

    let text = expand_filler(
        r#"fn above(a: u32) -> u32 {
    a
}

fn main() {
    // {filler}
    let x = above(1) + below(2);
    // {filler}
}

fn below(b: u32) -> u32 {
    b
}
"#,
    );
    let uri = "file:///w/src/index_follows.rs";
    let mut doc = Document::new(uri, "rust", 1, &text);
    let line = text.lines().position(|l| l.contains("let x")).expect("the call line") as u32;
    let signatures = |doc: &Document| {
        let cursor = doc.rope.line_to_char(line as usize + 1) - 1;
        let input = ContextInput { doc, cursor, budget_tokens: 200, invoked: true, others: &[], recent_edits: &[] };
        match build(&input, &count) {
            Decision::Complete(context) => {
                context.snippets.iter().map(|s| s.text.clone()).collect::<Vec<_>>().join("\n")
            }
            Decision::Skip(why) => why.to_string(),
        }
    };
    expect![[r#"
        fn above(a: u32) -> u32
        fn below(b: u32) -> u32"#]]
    .assert_eq(&signatures(&doc));
    // Version 2 types at the end of the call line, version 3 adds an attribute above `below`:
    // both keep the stale index usable. Version 4 renames `below` out of the window, so its old
    // entry no longer matches the tree.
    let at = |line: u32, character: u32| LinePos { line, character };
    doc.apply_changes(2, &[Change { range: Some((at(line, 31), at(line, 31))), text: " + 3".into() }], Encoding::Utf16);
    expect![[r#"
        fn above(a: u32) -> u32
        fn below(b: u32) -> u32"#]]
    .assert_eq(&signatures(&doc));
    let last = doc.rope.len_lines() as u32;
    let below_line = (0..last).find(|&l| doc.rope.line(l as usize).to_string().starts_with("fn below")).expect("below");
    doc.apply_changes(
        3,
        &[Change { range: Some((at(below_line, 0), at(below_line, 0))), text: "#[inline]\n".into() }],
        Encoding::Utf16,
    );
    expect![[r#"
        fn above(a: u32) -> u32
        fn below(b: u32) -> u32"#]]
    .assert_eq(&signatures(&doc));
    let renamed = below_line + 1;
    doc.apply_changes(
        4,
        &[Change { range: Some((at(renamed, 3), at(renamed, 8))), text: "other".into() }],
        Encoding::Utf16,
    );
    assert!(doc.text().contains("fn other(b: u32)"));
    expect!["fn above(a: u32) -> u32"].assert_eq(&signatures(&doc));
}

/// A minified file is one huge line: the window is cut inside it, between tokens, within budget.
#[test]
fn one_huge_line_is_cut_between_tokens() {
    let line: String = (0..4000).map(|i| format!("var a{i} = f({i}); ")).collect();
    let fixture = format!("{line}$0{line}\n");
    let Decision::Complete(context) = run(
        Case { uri: "file:///p/app.min.js", language_id: "javascript", budget: 64, invoked: true, ..Case::default() },
        &fixture,
    ) else {
        panic!("no context");
    };
    assert!(context.prefix.len() < 300 && !context.prefix.is_empty(), "prefix of {} bytes", context.prefix.len());
    assert!(line.ends_with(&context.prefix));
    assert!(line[..line.len() - context.prefix.len()].ends_with(' '), "prefix cut mid-token: {}", context.prefix);
    assert!(line.starts_with(&context.suffix) && !context.suffix.is_empty());
    assert!(line[context.suffix.len()..].starts_with(' '), "suffix cut mid-token: {}", context.suffix);
}

/// Typing line after line at the end of a long function moves the window's start only once per
/// `WINDOW_STEP` lines, so an engine's KV cache keeps the prompt's beginning.
#[test]
fn the_window_start_stays_put_while_typing() {
    let mut text = String::from("fn long() {\n");
    for i in 0..300usize {
        text.push_str(&format!("    let v{i} = v{} + {i};\n", i.saturating_sub(1)));
    }
    let mut starts = Vec::new();
    for typed in 0..48 {
        let doc =
            Document::new("file:///t/typing.rs", "rust", typed + 1, &format!("{text}    $\n}}\n").replace('$', ""));
        let cursor = doc.rope.line_to_char(doc.rope.len_lines() - 3) + 4;
        let input =
            ContextInput { doc: &doc, cursor, budget_tokens: 600, invoked: false, others: &[], recent_edits: &[] };
        let parts = assemble(&input, cursor, &count);
        let first = parts.prefix[parts.header_len..].lines().next().unwrap_or_default().to_string();
        if starts.last() != Some(&first) {
            starts.push(first);
        }
        text.push_str(&format!("    let w{typed} = {typed};\n"));
    }
    assert!(starts.len() <= 4, "the window start moved {} times in 48 lines: {starts:?}", starts.len() - 1);
}

mod never_panics {
    use proptest::prelude::*;

    use super::*;
    use crate::postprocess::{PostInput, postprocess};

    const PIECES: &[&str] = &[
        "fn ",
        "def ",
        "class ",
        "impl X ",
        "function ",
        "func ",
        "int ",
        "public ",
        "{",
        "}",
        "(",
        ")",
        "[",
        "]",
        "\"",
        "'",
        "`",
        "${",
        "/*",
        "*/",
        "//",
        "#",
        "--",
        "\n",
        "\r\n",
        "\r",
        "    ",
        "\t",
        "é",
        "𝄞",
        "x",
        "foo",
        ":",
        ";",
        ",",
        "=>",
        "import os\n",
        "use a::b;\n",
        "#include <x.h>\n",
        "\"\"\"",
        " ",
        "\0",
    ];
    const LANGUAGES: &[&str] =
        &["rust", "python", "javascript", "typescript", "typescriptreact", "go", "c", "cpp", "java", "lua"];

    fn text() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(PIECES), 0..120).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #[test]
        fn build_naive_and_postprocess(
            text in text(),
            other in text(),
            completion in text(),
            language in prop::sample::select(LANGUAGES),
            at in 0.0f64..=1.0,
            budget in 0usize..400,
            invoked in any::<bool>(),
        ) {
            let doc = Document::new("file:///p/a", language, 1, &text);
            let other = Document::new("file:///p/b", language, 1, &other);
            let cursor = (doc.rope.len_chars() as f64 * at) as usize;
            let edits = [RecentEdit { uri: "file:///p/b".into(), text: other.text() }];
            let others = [&other];
            let input = ContextInput { doc: &doc, cursor, budget_tokens: budget, invoked, others: &others, recent_edits: &edits };
            let decision = build(&input, &count);
            let context = naive(&input, &count);
            prop_assert!(text.ends_with(&context.prefix) || text[..].contains(&context.prefix));
            let mode = match decision {
                Decision::Complete(context) => context.mode,
                Decision::Skip(_) => Mode::MultiLine,
            };
            for mode in [mode, Mode::SingleLine] {
                if let Some(out) = postprocess(&PostInput { completion: &completion, doc: &doc, cursor, mode }) {
                    prop_assert!(!out.trim().is_empty());
                }
            }
        }
    }
}
