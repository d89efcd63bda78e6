//! Model predictions, for edits the rules do not cover (a parameter added, then the calls to
//! fix): the user's last edit as a before/after pair of lines, the code around the cursor as the
//! editable region, and the instruction to rewrite the region as the user would next. The
//! answer is diffed against the region line by line; what survives is a prediction only when every
//! change stays in the region, leaves the user's own edit alone, does not undo it, parses, and
//! carries a word the user's edit brought in. Precision first: a wrong proposal costs more than
//! none.

use glint_engine::{Engine, GenerateRequest, Task};

use super::{Edited, Group, TextEdit, is_ident_char};
use crate::actions::{Plan, Shape, hygiene};
use crate::document::Document;

/// Lines of the editable region above and below the cursor's line.
const REACH: usize = 12;
/// At most this many changed places in one answer: more is a rewrite, not a follow-up.
const MAX_HUNKS: usize = 6;

/// What to ask the model, and what its answer is checked against.
#[derive(Debug, Clone)]
pub struct Ask {
    /// The region's plan: its code, the instruction, chars `start..end` of the document.
    pub plan: Plan,
    /// The user's edit in the current text (chars), which no prediction may touch.
    edited_start: usize,
    edited_end: usize,
    /// The text the user's edit replaced, and the words it brought in (or took out, for a
    /// deletion): every predicted change must carry one.
    old_text: String,
    words: Vec<String>,
}

/// The question for the user's last logical edit `group` of `doc`, with the cursor at char
/// `cursor`; `None` when the edit is too large to describe or the document has no lines there.
pub fn ask(doc: &Document, group: &Group, cursor: usize) -> Option<Ask> {
    if group.revision != doc.revision {
        return None;
    }
    let edited = Edited::of(group, &doc.rope)?;
    let rope = &doc.rope;
    let old_text = group.base.slice(edited.start..edited.old_end).to_string();
    let new_text = rope.slice(edited.start..edited.new_end).to_string();
    // A one-line edit (the common follow-up trigger), described as the line before and after.
    let line = rope.char_to_line(edited.start);
    if old_text.contains('\n') || new_text.contains('\n') || rope.char_to_line(edited.new_end) != line {
        return None;
    }
    // An edit of a comment or a string asks for no follow-up in code.
    if let (Some(tree), Some(lang)) = (doc.tree.as_ref(), doc.lang) {
        let side = super::Side { rope, tree, lang };
        if super::pattern::in_comment_or_string(&side, rope.char_to_byte(edited.start)) {
            return None;
        }
    }
    let words = {
        let new_words = words_of(&new_text);
        let old_words = words_of(&old_text);
        let added: Vec<String> = new_words.iter().filter(|w| !old_words.contains(w)).cloned().collect();
        if added.is_empty() { old_words.into_iter().filter(|w| !new_words.contains(w)).collect() } else { added }
    };
    if words.is_empty() {
        return None;
    }
    let base_line = group.base.char_to_line(edited.start);
    let before_line = group.base.line(base_line).to_string();
    let after_line = rope.line(line).to_string();
    let cursor_line = rope.char_to_line(cursor.min(rope.len_chars()));
    let first = cursor_line.min(line).saturating_sub(REACH);
    let last = (cursor_line.max(line) + REACH + 1).min(rope.len_lines());
    let (start, end) = (rope.line_to_char(first), rope.line_to_char(last));
    let code = rope.slice(start..end).to_string();
    if code.trim().is_empty() {
        return None;
    }
    let task = glint_engine::prompt::actions::next_edit(
        &doc.language_id,
        before_line.trim_end_matches(['\n', '\r']),
        after_line.trim_end_matches(['\n', '\r']),
    );
    let plan = Plan::Instruct { shape: Shape::Lines { indent: hygiene::indent_of(&code) }, code, task, start, end };
    Some(Ask { plan, edited_start: edited.start, edited_end: edited.new_end, old_text, words })
}

impl Ask {
    /// The task and region as the engine request needs them.
    pub fn task(&self) -> Option<(&str, &Task)> {
        match &self.plan {
            Plan::Instruct { code, task, .. } => Some((code, task)),
            Plan::Fill { .. } => None,
        }
    }

    /// The engine request: greedy, about as long as the region, in the document's own session
    /// of next-edit questions (its KV cache kept apart from completions').
    pub fn request(&self, engine: &dyn Engine, doc: &Document) -> Option<GenerateRequest> {
        let (code, task) = self.task()?;
        Some(GenerateRequest {
            prefix: code.to_string(),
            path: Some(crate::context::display_path(&doc.uri)),
            language: Some(doc.language_id.to_string()),
            max_tokens: (engine.count_tokens(code) as u32 * 5 / 4 + 32).clamp(64, 768),
            task: task.clone(),
            session: Some(glint_engine::session_key(&format!("{}#nextedit", doc.uri))),
            ..GenerateRequest::default()
        })
    }

    /// The predicted edits the model's `answer` makes on `doc` (the text the question was asked
    /// on), nearest to `cursor` first; `Err` says why there are none.
    pub fn edits(&self, doc: &Document, answer: &str, cursor: usize) -> Result<Vec<TextEdit>, String> {
        let Plan::Instruct { code, start, .. } = &self.plan else { return Err("not a region".into()) };
        // Fences stripped, reindented, checked to parse with no new errors.
        let edit = self.plan.finish(doc, answer)?;
        let old_lines: Vec<&str> = code.split_inclusive('\n').collect();
        let new_lines: Vec<&str> = edit.text.split_inclusive('\n').collect();
        let hunks = diff_lines(&old_lines, &new_lines);
        if hunks.is_empty() {
            return Err("the model changed nothing".into());
        }
        if hunks.len() > MAX_HUNKS {
            return Err(format!("the model changed {} places", hunks.len()));
        }
        let line_start: Vec<usize> = old_lines
            .iter()
            .scan(*start, |at, line| {
                let here = *at;
                *at += line.chars().count();
                Some(here)
            })
            .collect();
        // A run of changed lines that kept its length is one edit per line (calls on
        // consecutive lines each get their own).
        let pieces = hunks.into_iter().flat_map(|hunk| {
            if hunk.old.len() == hunk.new.len() {
                hunk.old.zip(hunk.new).map(|(o, n)| Hunk { old: o..o + 1, new: n..n + 1 }).collect()
            } else {
                vec![hunk]
            }
        });
        let mut edits = Vec::new();
        for hunk in pieces {
            let from = line_start.get(hunk.old.start).copied().unwrap_or(start + code.chars().count());
            let old: String = old_lines[hunk.old.clone()].concat();
            let new: String = new_lines[hunk.new.clone()].concat();
            if old == new {
                continue;
            }
            let edit = minimal(from, &old, &new);
            // The user's edit is theirs: nothing may touch it or sit inside it.
            if edit.start <= self.edited_end && edit.end >= self.edited_start {
                return Err("the model changed the user's own edit".into());
            }
            // Undoing the user's edit elsewhere is not a follow-up.
            if !self.old_text.trim().is_empty() && edit.text.contains(self.old_text.trim()) {
                return Err("the model brought back what the user replaced".into());
            }
            let removed: String = doc.rope.slice(edit.start..edit.end).to_string();
            let carries = |text: &str| self.words.iter().any(|w| words_of(text).contains(w));
            if !carries(&edit.text) && !carries(&removed) {
                return Err(format!("the change {removed:?} → {:?} has nothing of the user's edit", edit.text));
            }
            edits.push(edit);
        }
        edits.sort_by_key(|e| (e.start.abs_diff(cursor), e.start));
        Ok(edits)
    }
}

/// The identifiers and literals of `text`.
fn words_of(text: &str) -> Vec<String> {
    text.split(|c: char| !is_ident_char(c)).filter(|w| !w.is_empty()).map(str::to_string).collect()
}

/// `old` (starting at char `from`) replaced by `new`, without the characters both share at their
/// ends.
fn minimal(from: usize, old: &str, new: &str) -> TextEdit {
    let (prefix, suffix) = super::shared_ends(old, new);
    let chars = |text: &str| text.chars().count();
    TextEdit {
        start: from + chars(&old[..prefix]),
        end: from + chars(&old[..old.len() - suffix]),
        text: new[prefix..new.len() - suffix].to_string(),
    }
}

/// One changed place: lines `old` of the old text became lines `new` of the new one.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hunk {
    old: std::ops::Range<usize>,
    new: std::ops::Range<usize>,
}

/// The changed places between two short lists of lines (a longest common subsequence; the
/// regions are a few dozen lines).
fn diff_lines(old: &[&str], new: &[&str]) -> Vec<Hunk> {
    let (n, m) = (old.len(), new.len());
    // lcs[i][j]: the longest common subsequence of old[i..] and new[j..].
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if old[i] == new[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let mut hunks = Vec::new();
    let (mut i, mut j) = (0, 0);
    let mut open: Option<(usize, usize)> = None;
    while i < n || j < m {
        if i < n && j < m && old[i] == new[j] {
            if let Some((oi, nj)) = open.take() {
                hunks.push(Hunk { old: oi..i, new: nj..j });
            }
            i += 1;
            j += 1;
            continue;
        }
        open.get_or_insert((i, j));
        if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            j += 1;
        } else {
            i += 1;
        }
    }
    if let Some((oi, nj)) = open {
        hunks.push(Hunk { old: oi..n, new: nj..m });
    }
    hunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_diffs_find_each_changed_place() {
        let old = ["a\n", "b\n", "c\n", "d\n"];
        let new = ["a\n", "B\n", "c\n", "d\n", "e\n"];
        assert_eq!(diff_lines(&old, &new), vec![Hunk { old: 1..2, new: 1..2 }, Hunk { old: 4..4, new: 4..5 }]);
        assert!(diff_lines(&old, &old).is_empty());
        assert_eq!(diff_lines(&old, &[]), vec![Hunk { old: 0..4, new: 0..0 }]);
    }

    #[test]
    fn edits_are_minimal() {
        assert_eq!(
            minimal(10, "load(a)\n", "load(a, strict=True)\n"),
            TextEdit { start: 16, end: 16, text: ", strict=True".into() }
        );
        // Offsets count characters, not bytes.
        assert_eq!(minimal(2, "é(ü)\n", "é(ü, ß)\n"), TextEdit { start: 5, end: 5, text: ", ß".into() });
    }
}
