//! Conversions between LSP positions (line + offset in the negotiated encoding) and rope char
//! indices. Pure functions over `ropey::Rope`; lines break at `\n`, `\r\n` and a lone `\r`, as LSP says.
//!
//! Out-of-range positions are clamped the way VS Code does: a column past the end of its line
//! lands at the line's end (before the line break), a line past the last line lands at the end of
//! the document, and an offset inside a UTF-16 surrogate pair (or a UTF-8 sequence) snaps back to
//! the start of that character.

use ropey::{Rope, RopeSlice};

/// The unit LSP `character` offsets count in, negotiated at `initialize`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Encoding {
    Utf8,
    /// The LSP default, and the only one VS Code speaks.
    #[default]
    Utf16,
    Utf32,
}

impl Encoding {
    /// The name used in `general.positionEncodings` and `capabilities.positionEncoding`.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf-8",
            Encoding::Utf16 => "utf-16",
            Encoding::Utf32 => "utf-32",
        }
    }

    pub fn from_name(name: &str) -> Option<Encoding> {
        match name {
            "utf-8" => Some(Encoding::Utf8),
            "utf-16" => Some(Encoding::Utf16),
            "utf-32" => Some(Encoding::Utf32),
            _ => None,
        }
    }

    /// Picks the encoding for a client that offers `offered` in order of preference.
    /// UTF-8 and UTF-32 are cheaper for us, so we take the client's first choice when we speak it;
    /// a client that offers nothing gets UTF-16, as the specification requires.
    pub fn negotiate<'a>(offered: impl IntoIterator<Item = &'a str>) -> Encoding {
        offered.into_iter().find_map(Encoding::from_name).unwrap_or_default()
    }
}

/// A position as LSP sends it: zero-based line and offset in `Encoding` units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinePos {
    pub line: u32,
    pub character: u32,
}

/// The rope char index of an LSP position, clamped as described in the module docs.
pub fn to_char(rope: &Rope, pos: LinePos, encoding: Encoding) -> usize {
    let line_idx = pos.line as usize;
    if line_idx >= rope.len_lines() {
        return rope.len_chars();
    }
    let line = rope.line(line_idx);
    let content = content_chars(line);
    let offset = pos.character as usize;
    let column = match encoding {
        Encoding::Utf32 => offset.min(content),
        Encoding::Utf16 => line.utf16_cu_to_char(offset.min(line.char_to_utf16_cu(content))),
        Encoding::Utf8 => line.byte_to_char(offset.min(line.char_to_byte(content))),
    };
    rope.line_to_char(line_idx) + column
}

/// The LSP position of a rope char index (clamped to the end of the document).
pub fn from_char(rope: &Rope, char_idx: usize, encoding: Encoding) -> LinePos {
    let char_idx = char_idx.min(rope.len_chars());
    let line_idx = rope.char_to_line(char_idx);
    let column = char_idx - rope.line_to_char(line_idx);
    let line = rope.line(line_idx);
    let character = match encoding {
        Encoding::Utf32 => column,
        Encoding::Utf16 => line.char_to_utf16_cu(column),
        Encoding::Utf8 => line.char_to_byte(column),
    };
    LinePos { line: line_idx as u32, character: character as u32 }
}

/// Chars on a line before its line break.
pub fn content_chars(line: RopeSlice<'_>) -> usize {
    let len = line.len_chars();
    if len == 0 {
        return 0;
    }
    match line.char(len - 1) {
        '\n' if len >= 2 && line.char(len - 2) == '\r' => len - 2,
        '\n' | '\r' => len - 1,
        _ => len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(line: u32, character: u32) -> LinePos {
        LinePos { line, character }
    }

    #[test]
    fn lines_break_at_lf_crlf_and_lone_cr() {
        let rope = Rope::from_str("a\r\nb\rc\nd");
        assert_eq!(rope.len_lines(), 4);
        assert_eq!(to_char(&rope, pos(1, 0), Encoding::Utf16), 3);
        assert_eq!(to_char(&rope, pos(2, 0), Encoding::Utf16), 5);
        assert_eq!(to_char(&rope, pos(3, 0), Encoding::Utf16), 7);
    }

    #[test]
    fn past_the_end_of_a_line_clamps_before_its_break() {
        let rope = Rope::from_str("ab\r\ncd");
        assert_eq!(to_char(&rope, pos(0, 99), Encoding::Utf16), 2);
        assert_eq!(to_char(&rope, pos(0, 3), Encoding::Utf8), 2);
        assert_eq!(to_char(&rope, pos(9, 0), Encoding::Utf32), rope.len_chars());
    }

    #[test]
    fn astral_characters_count_per_encoding() {
        // 😀 is 1 char, 2 UTF-16 code units and 4 UTF-8 bytes.
        let rope = Rope::from_str("x😀y");
        assert_eq!(to_char(&rope, pos(0, 3), Encoding::Utf16), 2);
        assert_eq!(to_char(&rope, pos(0, 5), Encoding::Utf8), 2);
        assert_eq!(to_char(&rope, pos(0, 2), Encoding::Utf32), 2);
        assert_eq!(from_char(&rope, 2, Encoding::Utf16), pos(0, 3));
        assert_eq!(from_char(&rope, 2, Encoding::Utf8), pos(0, 5));
    }

    #[test]
    fn inside_a_surrogate_pair_snaps_back_to_the_character_start() {
        let rope = Rope::from_str("x😀y");
        assert_eq!(to_char(&rope, pos(0, 2), Encoding::Utf16), 1);
        assert_eq!(to_char(&rope, pos(0, 3), Encoding::Utf8), 1);
    }

    #[test]
    fn negotiation_takes_the_clients_first_supported_choice() {
        assert_eq!(Encoding::negotiate(["utf-8", "utf-32", "utf-16"]), Encoding::Utf8);
        assert_eq!(Encoding::negotiate(["utf-32", "utf-16"]), Encoding::Utf32);
        assert_eq!(Encoding::negotiate(["latin-1"]), Encoding::Utf16);
        assert_eq!(Encoding::negotiate([]), Encoding::Utf16);
    }
}
