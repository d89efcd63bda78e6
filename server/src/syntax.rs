//! Languages Glint parses and incremental tree-sitter parsing over a rope.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;

use ropey::Rope;
use tree_sitter::{InputEdit, Node, Parser, Point, Tree};

/// Documents larger than this are kept as plain text without a syntax tree.
pub const MAX_TREE_BYTES: usize = 5 * 1024 * 1024;

/// A language with a tree-sitter grammar built into Glint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    Rust,
    Python,
    JavaScript,
    TypeScript,
    Tsx,
    Go,
    C,
    Cpp,
    Java,
}

impl Lang {
    pub const ALL: [Lang; 9] = [
        Lang::Rust,
        Lang::Python,
        Lang::JavaScript,
        Lang::TypeScript,
        Lang::Tsx,
        Lang::Go,
        Lang::C,
        Lang::Cpp,
        Lang::Java,
    ];

    /// The language for an LSP `languageId`, falling back to the file extension of `path`.
    pub fn detect(language_id: &str, path: &str) -> Option<Lang> {
        Lang::from_language_id(language_id).or_else(|| Lang::from_path(path))
    }

    pub fn from_language_id(id: &str) -> Option<Lang> {
        Some(match id {
            "rust" => Lang::Rust,
            "python" => Lang::Python,
            "javascript" | "javascriptreact" | "jsx" => Lang::JavaScript,
            "typescript" => Lang::TypeScript,
            "typescriptreact" | "tsx" => Lang::Tsx,
            "go" => Lang::Go,
            "c" => Lang::C,
            "cpp" | "c++" => Lang::Cpp,
            "java" => Lang::Java,
            _ => return None,
        })
    }

    pub fn from_path(path: &str) -> Option<Lang> {
        let ext = Path::new(path).extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "rs" => Lang::Rust,
            "py" | "pyi" | "pyw" => Lang::Python,
            "js" | "mjs" | "cjs" | "jsx" => Lang::JavaScript,
            "ts" | "mts" | "cts" => Lang::TypeScript,
            "tsx" => Lang::Tsx,
            "go" => Lang::Go,
            "c" | "h" => Lang::C,
            "cc" | "cpp" | "cxx" | "c++" | "hpp" | "hh" | "hxx" | "h++" | "ipp" => Lang::Cpp,
            "java" => Lang::Java,
            _ => return None,
        })
    }

    /// The canonical LSP `languageId`.
    pub fn id(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::JavaScript => "javascript",
            Lang::TypeScript => "typescript",
            Lang::Tsx => "typescriptreact",
            Lang::Go => "go",
            Lang::C => "c",
            Lang::Cpp => "cpp",
            Lang::Java => "java",
        }
    }

    pub fn grammar(self) -> tree_sitter::Language {
        match self {
            Lang::Rust => tree_sitter_rust::LANGUAGE.into(),
            Lang::Python => tree_sitter_python::LANGUAGE.into(),
            Lang::JavaScript => tree_sitter_javascript::LANGUAGE.into(),
            Lang::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
            Lang::Tsx => tree_sitter_typescript::LANGUAGE_TSX.into(),
            Lang::Go => tree_sitter_go::LANGUAGE.into(),
            Lang::C => tree_sitter_c::LANGUAGE.into(),
            Lang::Cpp => tree_sitter_cpp::LANGUAGE.into(),
            Lang::Java => tree_sitter_java::LANGUAGE.into(),
        }
    }
}

thread_local! {
    // Parsers are cheap to keep and not `Sync`; one per language per thread avoids re-creating them
    // on every keystroke.
    static PARSERS: RefCell<HashMap<Lang, Parser>> = RefCell::new(HashMap::new());
}

/// Parses `rope` as `lang`, reusing `old` (already `edit`ed to match the rope) when given.
/// Returns `None` only if tree-sitter gives up, which it does not without a timeout.
pub fn parse(lang: Lang, rope: &Rope, old: Option<&Tree>) -> Option<Tree> {
    PARSERS.with(|parsers| {
        let mut parsers = parsers.borrow_mut();
        let parser = match parsers.entry(lang) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                let mut parser = Parser::new();
                parser.set_language(&lang.grammar()).ok()?;
                entry.insert(parser)
            }
        };
        let len = rope.len_bytes();
        let mut read = |byte: usize, _: Point| -> &[u8] {
            if byte >= len {
                return &[];
            }
            let (chunk, chunk_start, _, _) = rope.chunk_at_byte(byte);
            &chunk.as_bytes()[byte - chunk_start..]
        };
        parser.parse_with_options(&mut read, old, None)
    })
}

/// `node` and its ancestors, innermost first, up to `root`. `Node::parent` searches down from the
/// root on every call, so walking up with it costs O(depth²): minutes for a file with 100,000
/// nested brackets. This finds the whole chain in one descent.
pub fn ancestors<'t>(root: Node<'t>, node: Node<'t>) -> impl Iterator<Item = Node<'t>> {
    let mut chain = Vec::new();
    let mut at = Some(root);
    while let Some(current) = at {
        chain.push(current);
        if current == node {
            break;
        }
        at = current.child_with_descendant(node).filter(|next| *next != current);
    }
    if chain.last() != Some(&node) {
        // `node` is not under `root`: it is its own only ancestor we can vouch for.
        chain = vec![node];
    }
    chain.into_iter().rev()
}

/// The tree-sitter point of a byte offset. Rows follow the rope's (LSP's) lines.
pub fn point(rope: &Rope, byte: usize) -> Point {
    let byte = byte.min(rope.len_bytes());
    let row = rope.byte_to_line(byte);
    Point { row, column: byte - rope.line_to_byte(row) }
}

/// The `InputEdit` for replacing the bytes `start..old_end` of `before` with `new_len` bytes,
/// given the rope after the edit.
pub fn input_edit(before: (Point, Point), after: &Rope, start: usize, old_end: usize, new_len: usize) -> InputEdit {
    InputEdit {
        start_byte: start,
        old_end_byte: old_end,
        new_end_byte: start + new_len,
        start_position: before.0,
        old_end_position: before.1,
        new_end_position: point(after, start + new_len),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_grammar_loads_and_parses() {
        for lang in Lang::ALL {
            let tree = parse(lang, &Rope::from_str("x"), None);
            assert!(tree.is_some(), "{lang:?} did not parse");
        }
    }

    #[test]
    fn ancestors_follow_the_parent_links() {
        let text = "fn f() {\n    let x = [1, (2, vec![3])];\n    // done\n}\n";
        let rope = Rope::from_str(text);
        let tree = parse(Lang::Rust, &rope, None).expect("a tree");
        let root = tree.root_node();
        for byte in 0..=text.len() {
            let node = root.descendant_for_byte_range(byte, byte).expect("a node");
            let mut expected = vec![node];
            while let Some(parent) = expected.last().and_then(|n| n.parent()) {
                expected.push(parent);
            }
            assert_eq!(ancestors(root, node).collect::<Vec<_>>(), expected, "at byte {byte}");
        }
    }

    #[test]
    fn language_id_wins_over_the_extension() {
        assert_eq!(Lang::detect("python", "file:///a.rs"), Some(Lang::Python));
        assert_eq!(Lang::detect("plaintext", "file:///a.tsx"), Some(Lang::Tsx));
        assert_eq!(Lang::detect("markdown", "file:///README.md"), None);
    }
}
