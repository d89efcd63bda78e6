//! Entry points for the fuzz targets in `fuzz/` and their regression tests: each takes arbitrary
//! bytes, drives one part of the server (framing, document edits, context building,
//! post-processing) or of the engine (loading a GGUF model file, in `gguf`) and panics only when
//! an invariant breaks. A crate of its own, so that neither library ships these assertions;
//! `cargo test --workspace` runs the regression tests, and `fuzz/` calls the entry points.

pub mod gguf;

use glint_server::context::{self, ContextInput, Decision, Mode, RecentEdit};
use glint_server::document::{Change, Document};
use glint_server::position::{self, Encoding, LinePos};
use glint_server::postprocess::{PostInput, postprocess};
use glint_server::transport::{self, Frame};

/// Reads LSP frames from `data` until its end. Every well-formed frame must hold a JSON-RPC
/// object, every malformed one an error reply, and reading must end.
pub fn transport_frames(data: &[u8]) {
    futures::executor::block_on(async {
        let mut reader = tokio::io::BufReader::with_capacity(64, data);
        let mut frames = 0usize;
        // Each frame consumes at least one byte of input, so this many frames means a loop.
        while let Ok(Some(frame)) = transport::read_frame(&mut reader).await {
            frames += 1;
            assert!(frames <= data.len(), "more frames than input bytes");
            match frame {
                Frame::Message(body, method) => {
                    let value: serde_json::Value = serde_json::from_slice(&body).expect("a message is valid JSON");
                    assert!(value.is_object(), "a message is an object");
                    assert_eq!(value.get("method").and_then(|m| m.as_str()), method.as_deref());
                }
                Frame::Malformed(reply) => {
                    assert!(reply["error"]["code"].is_i64(), "an error reply has a code: {reply}");
                    assert!(serde_json::to_vec(&reply).is_ok());
                }
            }
        }
    });
}

/// Applies a sequence of `didChange` notifications decoded from `data` (random ranges, some past
/// the ends or reversed, in one of the three encodings) and checks the text against an
/// independent reference after each one, and the incremental tree against a fresh parse.
pub fn document_edits(data: &[u8]) {
    let mut input = Bytes(data);
    let encoding = [Encoding::Utf8, Encoding::Utf16, Encoding::Utf32][input.byte() as usize % 3];
    let (uri, language) = LANGUAGES[input.byte() as usize % LANGUAGES.len()];
    let initial = input.text(24);
    let mut expected = initial.clone();
    let mut doc = Document::new(uri, language, 0, &initial);
    let mut version = 0;
    while !input.is_empty() {
        version += 1;
        let count = 1 + input.byte() as usize % 3;
        let mut changes = Vec::new();
        for _ in 0..count {
            let full = input.byte() % 32 == 0;
            let start = LinePos { line: input.coordinate(), character: input.coordinate() };
            let end = LinePos { line: input.coordinate(), character: input.coordinate() };
            let text = input.text(8);
            let change = Change { range: (!full).then_some((start, end)), text };
            reference::apply(&mut expected, &change, encoding);
            changes.push(change);
        }
        doc.apply_changes(version, &changes, encoding);
        assert_eq!(doc.text(), expected, "after notification {version} ({encoding:?}): {changes:?}");
    }
    let fresh = Document::new(uri, language, 0, &expected);
    if let (Some(incremental), Some(fresh)) = (&doc.tree, &fresh.tree) {
        assert_eq!(incremental.root_node().to_sexp(), fresh.root_node().to_sexp(), "trees differ for {expected:?}");
    }
    // Positions survive a round trip through every encoding.
    let len = doc.rope.len_chars();
    for char_idx in [0, len / 3, len / 2, len] {
        for encoding in [Encoding::Utf8, Encoding::Utf16, Encoding::Utf32] {
            let pos = position::from_char(&doc.rope, char_idx, encoding);
            let back = position::to_char(&doc.rope, pos, encoding);
            // A position between `\r` and `\n` has no LSP position of its own.
            let inside_crlf = char_idx > 0
                && char_idx < len
                && doc.rope.char(char_idx - 1) == '\r'
                && doc.rope.char(char_idx) == '\n';
            assert!(back == char_idx || inside_crlf, "{char_idx} -> {pos:?} -> {back} ({encoding:?})");
        }
    }
}

/// Builds contexts for a document and cursor decoded from `data`, in every supported language,
/// with another open document and a recent edit. The prefix must end where the cursor is.
pub fn context_build(data: &[u8]) {
    let mut input = Bytes(data);
    let (uri, language) = LANGUAGES[input.byte() as usize % LANGUAGES.len()];
    let budget = input.byte() as usize * 4;
    let invoked = input.byte() % 2 == 0;
    let at = input.byte();
    let other_text = input.text(16);
    let text = input.rest_text();
    let doc = Document::new(uri, language, 1, &text);
    let other = Document::new("file:///p/other", language, 1, &other_text);
    let cursor = doc.rope.len_chars() * at as usize / 255;
    let edits = [RecentEdit { uri: "file:///p/other".into(), text: other_text.clone() }];
    let others = [&other];
    let input =
        ContextInput { doc: &doc, cursor, budget_tokens: budget, invoked, others: &others, recent_edits: &edits };
    let count = |s: &str| s.len().div_ceil(3);
    let before: String = doc.rope.slice(..cursor).to_string();
    if let Decision::Complete(built) = context::build(&input, &count) {
        let last_line = built.prefix.rsplit('\n').next().unwrap_or("");
        assert!(before.ends_with(last_line), "the prefix does not end at the cursor: {:?}", built.prefix);
    }
    let naive = context::naive(&input, &count);
    assert!(before.ends_with(&naive.prefix), "the naive prefix does not end at the cursor");
}

/// Post-processes a model output decoded from `data` at a cursor in a document of every
/// supported language. What is shown is never blank.
pub fn postprocess_output(data: &[u8]) {
    let mut input = Bytes(data);
    let (uri, language) = LANGUAGES[input.byte() as usize % LANGUAGES.len()];
    let mode = if input.byte() % 2 == 0 { Mode::SingleLine } else { Mode::MultiLine };
    let at = input.byte();
    let text = input.text(48);
    let completion = input.rest_text();
    let doc = Document::new(uri, language, 1, &text);
    let cursor = doc.rope.len_chars() * at as usize / 255;
    if let Some(out) = postprocess(&PostInput { completion: &completion, doc: &doc, cursor, mode }) {
        assert!(!out.trim().is_empty(), "a blank completion was kept: {out:?}");
    }
}

/// Every language with a grammar, and one without.
const LANGUAGES: &[(&str, &str)] = &[
    ("file:///p/a.rs", "rust"),
    ("file:///p/a.py", "python"),
    ("file:///p/a.js", "javascript"),
    ("file:///p/a.ts", "typescript"),
    ("file:///p/a.tsx", "typescriptreact"),
    ("file:///p/a.go", "go"),
    ("file:///p/a.c", "c"),
    ("file:///p/a.cpp", "cpp"),
    ("file:///p/A.java", "java"),
    ("file:///p/a.lua", "lua"),
];

/// Text fragments that matter to the parsers and to position arithmetic; raw bytes add the rest.
const PIECES: &[&str] = &[
    "fn ",
    "def ",
    "class ",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    "\"",
    "'",
    "`",
    "/*",
    "*/",
    "//",
    "#",
    "\n",
    "\r\n",
    "\r",
    "    ",
    "\t",
    "é",
    "😀",
    "𝄞",
    "中",
    "x",
    "return ",
    ":",
    ";",
    "=",
    "\0",
    " ",
    "if ",
    "import os\n",
];

/// A cursor over fuzz input. Past the end every read is zero.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn byte(&mut self) -> u8 {
        let Some((&first, rest)) = self.0.split_first() else { return 0 };
        self.0 = rest;
        first
    }

    /// A line or column: small mostly, sometimes far past any end.
    fn coordinate(&mut self) -> u32 {
        match self.byte() {
            255 => u32::MAX,
            254 => 1 << 20,
            b => u32::from(b % 16),
        }
    }

    /// Up to `max` pieces: known fragments, or a raw UTF-8 character.
    fn text(&mut self, max: usize) -> String {
        let pieces = self.byte() as usize % (max + 1);
        let mut out = String::new();
        for _ in 0..pieces {
            let b = self.byte();
            if (b as usize) < PIECES.len() * 6 {
                out.push_str(PIECES[b as usize % PIECES.len()]);
            } else {
                let code = u32::from(b) << 8 | u32::from(self.byte());
                out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
            }
        }
        out
    }

    fn rest_text(&mut self) -> String {
        let text = String::from_utf8_lossy(self.0).into_owned();
        self.0 = &[];
        text
    }
}

/// An independent implementation of LSP positions over a plain `String`, as VS Code clamps them:
/// what the document's rope arithmetic is checked against.
pub mod reference {
    use super::*;

    /// LSP lines of `s`: each line's byte range without its break.
    pub fn lines(s: &str) -> Vec<(usize, usize)> {
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut start = 0;
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\n' => {
                    out.push((start, i));
                    i += 1;
                    start = i;
                }
                b'\r' => {
                    out.push((start, i));
                    i += if bytes.get(i + 1) == Some(&b'\n') { 2 } else { 1 };
                    start = i;
                }
                _ => i += 1,
            }
        }
        out.push((start, bytes.len()));
        out
    }

    /// The byte offset of an LSP position: a column past its line's end lands at the end (before
    /// the break), a line past the last at the end of the text, a column inside a character at
    /// that character's start.
    pub fn offset(s: &str, pos: LinePos, encoding: Encoding) -> usize {
        let lines = lines(s);
        let Some(&(start, end)) = lines.get(pos.line as usize) else { return s.len() };
        let mut units = 0usize;
        for (i, ch) in s[start..end].char_indices() {
            let width = match encoding {
                Encoding::Utf8 => ch.len_utf8(),
                Encoding::Utf16 => ch.len_utf16(),
                Encoding::Utf32 => 1,
            };
            if units + width > pos.character as usize {
                return start + i;
            }
            units += width;
        }
        end
    }

    /// Applies one change as the server must: whole replacement, or a range with its ends
    /// swapped when reversed.
    pub fn apply(s: &mut String, change: &Change, encoding: Encoding) {
        let Some((start, end)) = change.range else {
            *s = change.text.clone();
            return;
        };
        let mut a = offset(s, start, encoding);
        let mut b = offset(s, end, encoding);
        if b < a {
            std::mem::swap(&mut a, &mut b);
        }
        s.replace_range(a..b, &change.text);
    }
}

#[cfg(test)]
mod tests {
    //! Inputs the fuzz targets found or that once broke an invariant; each stays a regression test.
    use super::*;

    #[test]
    fn reference_clamps_like_the_server_on_known_cases() {
        let pos = |line, character| LinePos { line, character };
        assert_eq!(reference::offset("ab\r\ncd", pos(0, 9), Encoding::Utf16), 2);
        assert_eq!(reference::offset("x😀y", pos(0, 2), Encoding::Utf16), 1);
        assert_eq!(reference::offset("a\rb", pos(1, 0), Encoding::Utf8), 2);
        assert_eq!(reference::offset("ab", pos(5, 0), Encoding::Utf32), 2);
    }

    #[test]
    fn empty_and_tiny_inputs() {
        for data in [&[][..], &[0], &[255; 8], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]] {
            transport_frames(data);
            document_edits(data);
            context_build(data);
            postprocess_output(data);
        }
    }

    /// 100,000 nested brackets once took minutes per completion (walking up the tree with
    /// `Node::parent` is quadratic in depth); now the context and post-processing are linear.
    #[test]
    fn deeply_nested_code_builds_a_context() {
        let depth = 100_000;
        for (uri, language) in
            [("file:///p/a.rs", "rust"), ("file:///p/a.py", "python"), ("file:///p/a.js", "javascript")]
        {
            let text = format!("x = {}\n{}\n", "[".repeat(depth), "]".repeat(depth));
            let doc = Document::new(uri, language, 1, &text);
            for cursor in [depth + 4, depth + 5 + depth / 2, 2] {
                let input = ContextInput {
                    doc: &doc,
                    cursor,
                    budget_tokens: 1024,
                    invoked: true,
                    others: &[],
                    recent_edits: &[],
                };
                let _ = context::build(&input, &|s: &str| s.len().div_ceil(3));
                for mode in [Mode::SingleLine, Mode::MultiLine] {
                    let _ = postprocess(&PostInput { completion: "1]\n]", doc: &doc, cursor, mode });
                }
            }
        }
    }

    #[test]
    fn framing_edge_cases() {
        transport_frames(b"Content-Length: 2\r\n\r\n{}");
        transport_frames(b"Content-Length: 99999999999999999999999\r\n\r\n");
        transport_frames(b"content-length:0\r\n\r\nContent-Length: 1\r\n\r\n[");
        transport_frames(b"Content-Length: 30\r\n\r\n{\"jsonrpc\":\"2.0\",\"method\":7}");
    }
}
