//! Per-keystroke server cost on a 10,000-line file: apply one incremental edit, reparse the
//! tree incrementally, take a snapshot. Prints percentiles; asserts nothing.
//!
//! `cargo bench -p glint-tests --bench keystroke`

#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use glint_server::document::{Change, Document};
use glint_server::position::{Encoding, LinePos};
use glint_tests::{corpus, stats};

const KEYSTROKES: usize = 1000;
const LINES: usize = 10_000;

fn main() {
    println!("per-keystroke server cost, {LINES}-line files, {KEYSTROKES} keystrokes, one thread");
    for (language, uri) in
        [("rust", "file:///bench.rs"), ("python", "file:///bench.py"), ("typescript", "file:///bench.ts")]
    {
        let text = corpus::source(language, LINES);
        let started = Instant::now();
        let mut doc = Document::new(uri, language, 0, &text);
        let full_parse = started.elapsed();
        assert!(doc.tree.is_some(), "{language} did not parse");
        // Type a statement on a fresh line inside a function body in the middle of the file,
        // where people type.
        let typed = match language {
            "python" => "value = compute(items, weight) + offset ",
            _ => "const value = compute(items, weight) + offset; ",
        };
        let anchor = text.lines().enumerate().skip(LINES / 2).find(|(_, l)| l.contains("total = 0")).map(|(i, _)| i);
        let anchor = anchor.expect("an anchor line") as u32;
        let indent = "    ";
        let end_of_anchor = LinePos { line: anchor, character: 1000 };
        doc.apply_changes(
            0,
            &[Change { range: Some((end_of_anchor, end_of_anchor)), text: format!("\n{indent}") }],
            Encoding::Utf16,
        );
        let line = anchor + 1;
        // The same keystrokes on a copy kept as plain text: the share of the cost that is not
        // tree-sitter's.
        let mut plain = Document::new("file:///bench.txt", "plaintext", 0, &doc.text());
        let mut plain_times = Vec::with_capacity(KEYSTROKES);
        let mut edit_times = Vec::with_capacity(KEYSTROKES);
        let mut snapshot_times = Vec::with_capacity(KEYSTROKES);
        let mut column = 0u32;
        for (i, ch) in typed.chars().cycle().take(KEYSTROKES).enumerate() {
            // Every 40 keys, delete what was typed (like a select-and-delete), so the line stays short.
            let change = if column >= 40 {
                let c = Change {
                    range: Some((LinePos { line, character: 4 }, LinePos { line, character: 4 + column })),
                    text: String::new(),
                };
                column = 0;
                c
            } else {
                let at = LinePos { line, character: 4 + column };
                column += 1;
                Change { range: Some((at, at)), text: ch.to_string() }
            };
            let started = Instant::now();
            plain.apply_changes(i as i32 + 1, std::slice::from_ref(&change), Encoding::Utf16);
            plain_times.push(started.elapsed());
            let started = Instant::now();
            doc.apply_changes(i as i32 + 1, &[change], Encoding::Utf16);
            edit_times.push(started.elapsed());
            let started = Instant::now();
            let snapshot = doc.clone();
            snapshot_times.push(started.elapsed());
            drop(snapshot);
        }
        let edit = stats::summarize(&edit_times);
        let snap = stats::summarize(&snapshot_times);
        println!("{language:>10}  full parse of the file: {:.3} ms", stats::ms(full_parse));
        println!("{language:>10}  edit+reparse: {edit}");
        println!("{language:>10}  snapshot:     {snap}");
        println!("{language:>10}  edit only (no tree): {}", stats::summarize(&plain_times));
        assert_eq!(plain.text(), doc.text(), "both copies saw the same keystrokes");
        let target = Duration::from_millis(1);
        println!(
            "{language:>10}  p50 is {:.1}% of the 1 ms target",
            100.0 * edit.p50.as_secs_f64() / target.as_secs_f64()
        );
    }
}
