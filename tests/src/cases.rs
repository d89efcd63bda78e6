//! The shared completion cases (`shared/eval/cases-dev.jsonl`): real code with a masked span.

use std::path::PathBuf;

use serde_json::Value;

/// One case: `prefix + expected + suffix` is the original file.
#[derive(Debug, Clone)]
pub struct Case {
    pub id: String,
    pub language: String,
    pub kind: String,
    pub path: String,
    pub prefix: String,
    pub suffix: String,
    pub expected: String,
}

/// Where the cases live: `GLINT_CASES`, else `../shared/eval/cases-dev.jsonl` beside the checkout.
pub fn default_path() -> PathBuf {
    std::env::var_os("GLINT_CASES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/eval/cases-dev.jsonl"))
}

pub fn load(path: &std::path::Path) -> anyhow::Result<Vec<Case>> {
    let text = std::fs::read_to_string(path)?;
    let mut cases = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)?;
        let field = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        cases.push(Case {
            id: field("id"),
            language: field("language"),
            kind: field("kind"),
            path: field("path"),
            prefix: field("prefix"),
            suffix: field("suffix"),
            expected: field("expected"),
        });
    }
    Ok(cases)
}

/// The LSP languageId and a file extension for a case's language.
pub fn language_id(language: &str) -> (&'static str, &'static str) {
    match language {
        "python" => ("python", "py"),
        "rust" => ("rust", "rs"),
        "typescript" => ("typescript", "ts"),
        "javascript" => ("javascript", "js"),
        "go" => ("go", "go"),
        "c" => ("c", "c"),
        _ => ("plaintext", "txt"),
    }
}

/// Whitespace-normalised text: lines stripped, inner runs of spaces collapsed, blank lines dropped.
pub fn normalize(text: &str) -> String {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// 1 - Levenshtein distance / max length, on normalised strings (1.0 for two empty strings).
pub fn edit_similarity(a: &str, b: &str) -> f64 {
    let (a, b) = (normalize(a), normalize(b));
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    strsim::normalized_levenshtein(&a, &b)
}

pub fn exact_match(a: &str, b: &str) -> bool {
    normalize(a) == normalize(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_follow_the_usual_definitions() {
        assert!(exact_match("  a  =  1\n\n", "a = 1"));
        assert!(!exact_match("a = 1", "a = 2"));
        assert!((edit_similarity("abcd", "abcx") - 0.75).abs() < 1e-9);
        assert_eq!(edit_similarity("", ""), 1.0);
        assert_eq!(edit_similarity("abc", ""), 0.0);
    }
}
