//! Next-edit predictions on real code: edit cases built from the real files of
//! `../shared/eval/cases-dev.jsonl` (Python, Rust, TypeScript, JavaScript), each typed key by key
//! into a document as an editor sends it, with the edits that should follow known from the text
//! alone (a plain lexer, not the syntax trees the predictions use). Prints per kind of case the
//! share of exact predictions, precision (no wrong edit proposed) and the prediction's latency,
//! then the latency on 10,000-line files. Asserts nothing.
//!
//! `cargo bench -p glint-tests --bench next_edit`

#![allow(clippy::print_stdout)]

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};

use glint_server::document::{Change, Document};
use glint_server::nextedit::{self, History};
use glint_server::position::{Encoding, LinePos};
use glint_tests::{cases, corpus, stats};

/// At most this many cases of each kind per file, so a few large files do not dominate.
const PER_FILE: usize = 2;

fn main() {
    let path = cases::default_path();
    let all = match cases::load(&path) {
        Ok(all) => all,
        Err(error) => {
            println!("SKIP: no cases at {} ({error})", path.display());
            return;
        }
    };
    // Each case holds a whole real file; take each file once.
    let mut files: BTreeMap<String, (String, String)> = BTreeMap::new();
    for case in &all {
        if matches!(case.language.as_str(), "python" | "rust" | "typescript" | "javascript") {
            let text = format!("{}{}{}", case.prefix, case.expected, case.suffix);
            files.entry(case.path.clone()).or_insert((case.language.clone(), text));
        }
    }
    let mut edit_cases = Vec::new();
    for (path, (language, text)) in &files {
        edit_cases.extend(build_cases(path, language, text));
    }
    println!(
        "next-edit predictions on {} edit cases from {} real files ({})",
        edit_cases.len(),
        files.len(),
        path.display()
    );
    let mut tallies: BTreeMap<&'static str, Tally> = BTreeMap::new();
    let mut failures: Vec<String> = Vec::new();
    for case in &edit_cases {
        let outcome = run(case);
        let tally = tallies.entry(case.kind).or_default();
        tally.add(&outcome);
        if !outcome.precise() && failures.len() < 12 {
            failures.push(format!("  {}", outcome.describe(case, 3)));
        }
    }
    print_table(&tallies);
    if !failures.is_empty() {
        println!("imprecise cases (up to 12):");
        for failure in failures {
            println!("{failure}");
        }
    }
    println!();
    println!("exact: the proposal is exactly the expected edits (for negative cases: nothing).");
    println!("precision: of the cases with a proposal, the share whose every edit is expected.");
    println!("no-wrong: of all cases, the share with no unexpected edit proposed.");
    println!("latency: the prediction after the last key (edit history, trees, rules), one thread.");
    println!();
    large_files();
    if let Ok(model) = std::env::var("GLINT_NEXT_EDIT_MODEL") {
        model_predictions(&model, &edit_cases);
    }
}

/// Model predictions (`nextedit::model`) on the cases the rules leave without a proposal, and on
/// negative cases (where any proposal is wrong): `GLINT_NEXT_EDIT_MODEL=NAME|PATH`, at most
/// `GLINT_NEXT_EDIT_MODEL_CASES` (default 12) cases of each kind.
fn model_predictions(model: &str, edit_cases: &[EditCase]) {
    use glint_engine::{Engine, LocalConfig, LocalEngine, fetch};
    let per_kind: usize = std::env::var("GLINT_NEXT_EDIT_MODEL_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(12);
    let path = match fetch::resolve_model(Some(std::path::Path::new(model))) {
        Ok(path) => path,
        Err(error) => {
            println!("SKIP model predictions: {error}");
            return;
        }
    };
    let engine = match LocalEngine::load(&path, LocalConfig::default()) {
        Ok(engine) => engine,
        Err(error) => {
            println!("SKIP model predictions: {error}");
            return;
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    println!();
    println!("model predictions ({}), on the cases the rules propose nothing for", engine.info().model);
    let mut tallies: BTreeMap<&'static str, Tally> = BTreeMap::new();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut shown = 0;
    for case in edit_cases {
        let tally = tallies.entry(case.kind).or_default();
        if tally.cases >= per_kind {
            continue;
        }
        let (doc, history, cursor) = typed(case);
        if nextedit::predict(&doc, &history, cursor).is_some() {
            continue;
        }
        let started = Instant::now();
        let ask = history.current.as_ref().and_then(|group| nextedit::model::ask(&doc, group, cursor));
        let asked = ask.as_ref().and_then(|a| Some((a, a.request(&engine, &doc)?)));
        let proposed: Vec<(usize, usize, String)> = match asked {
            None => Vec::new(),
            Some((ask, request)) => {
                let (answer, _) = runtime.block_on(engine.generate(request).collect_text());
                match ask.edits(&doc, &answer, cursor) {
                    Ok(edits) => edits.into_iter().map(|e| (e.start, e.end, e.text)).collect(),
                    Err(why) => {
                        let why = why.split(':').next().unwrap_or_default().chars().take(40).collect();
                        *reasons.entry(why).or_default() += 1;
                        Vec::new()
                    }
                }
            }
        };
        let latency = started.elapsed();
        let text: Vec<char> = doc.rope.chars().collect();
        let proposed: BTreeSet<_> = proposed.into_iter().map(|e| minimal(&text, e)).collect();
        let expected = case.expected.iter().map(|e| minimal(&text, e.clone())).collect();
        let outcome = Outcome { proposed, expected, latency };
        if !outcome.proposed.is_empty() && !outcome.precise() && shown < 8 {
            shown += 1;
            println!("  wrong: {}", outcome.describe(case, 2));
        }
        tally.add(&outcome);
    }
    print_table(&tallies);
    println!("answers refused by the checks: {reasons:?}");
    println!("latency: the whole model prediction (prompt, generation, checks), the engine's default threads.");
}

/// The tallies per kind of case (kinds with no case left out), then all of them together.
fn print_table(tallies: &BTreeMap<&'static str, Tally>) {
    println!(
        "{:<22} {:>6} {:>10} {:>9} {:>10} {:>9} {:>11} {:>11}",
        "kind", "cases", "proposed", "exact", "precision", "no-wrong", "p50", "p90"
    );
    let mut overall = Tally::default();
    for (kind, tally) in tallies {
        if tally.cases > 0 {
            tally.print(kind);
            overall.merge(tally);
        }
    }
    overall.print("all");
}

/// One edit case: keys typed into `text`, and the edits expected to follow.
struct EditCase {
    kind: &'static str,
    path: String,
    language: String,
    text: String,
    /// Zero-based line of the edit, for reports.
    line: usize,
    /// `(start char, end char, text)` changes, typed in order.
    keys: Vec<(usize, usize, String)>,
    /// `(start, end, text)` on the text after the keys.
    expected: BTreeSet<(usize, usize, String)>,
}

/// The proposed and the expected edits, both in their minimal form on the text after the keys
/// (`replace` → `replace_checked` is the insertion of `_checked`), and the prediction's latency.
struct Outcome {
    proposed: BTreeSet<(usize, usize, String)>,
    expected: BTreeSet<(usize, usize, String)>,
    latency: Duration,
}

impl Outcome {
    fn precise(&self) -> bool {
        self.proposed.is_subset(&self.expected)
    }

    /// The case and its first `shown` proposed and expected edits, for a wrong or imprecise one.
    fn describe(&self, case: &EditCase, shown: usize) -> String {
        format!(
            "{} {} line {}: proposed {:?}, expected {:?}",
            case.kind,
            case.path,
            case.line + 1,
            self.proposed.iter().take(shown).collect::<Vec<_>>(),
            self.expected.iter().take(shown).collect::<Vec<_>>()
        )
    }
}

/// An edit without the characters the replaced text and the new text share at their ends.
fn minimal(text: &[char], (start, end, new): (usize, usize, String)) -> (usize, usize, String) {
    let old = &text[start.min(end)..end.min(text.len())];
    let new: Vec<char> = new.chars().collect();
    let prefix = old.iter().zip(&new).take_while(|(a, b)| a == b).count();
    let suffix = old[prefix..].iter().rev().zip(new[prefix..].iter().rev()).take_while(|(a, b)| a == b).count();
    (start + prefix, end - suffix, new[prefix..new.len() - suffix].iter().collect())
}

#[derive(Default)]
struct Tally {
    cases: usize,
    proposed: usize,
    exact: usize,
    precise_proposals: usize,
    no_wrong: usize,
    latencies: Vec<Duration>,
}

impl Tally {
    fn add(&mut self, outcome: &Outcome) {
        self.cases += 1;
        let precise = outcome.precise();
        if !outcome.proposed.is_empty() {
            self.proposed += 1;
            self.precise_proposals += precise as usize;
        }
        self.exact += (outcome.proposed == outcome.expected) as usize;
        self.no_wrong += precise as usize;
        self.latencies.push(outcome.latency);
    }

    fn merge(&mut self, other: &Tally) {
        self.cases += other.cases;
        self.proposed += other.proposed;
        self.exact += other.exact;
        self.precise_proposals += other.precise_proposals;
        self.no_wrong += other.no_wrong;
        self.latencies.extend(&other.latencies);
    }

    fn print(&self, kind: &str) {
        if self.cases == 0 {
            return;
        }
        let pct = |n: usize, of: usize| {
            if of == 0 { "-".to_string() } else { format!("{:.1}%", 100.0 * n as f64 / of as f64) }
        };
        let summary = stats::summarize(&self.latencies);
        println!(
            "{:<22} {:>6} {:>10} {:>9} {:>10} {:>9} {:>8.3} ms {:>8.3} ms",
            kind,
            self.cases,
            pct(self.proposed, self.cases),
            pct(self.exact, self.cases),
            pct(self.precise_proposals, self.proposed),
            pct(self.no_wrong, self.cases),
            stats::ms(summary.p50),
            stats::ms(summary.p90),
        );
    }
}

/// Types the case's keys and asks for the prediction at the end of the last one.
fn run(case: &EditCase) -> Outcome {
    let (doc, history, cursor) = typed(case);
    let started = Instant::now();
    let prediction = nextedit::predict(&doc, &history, cursor);
    let latency = started.elapsed();
    let text: Vec<char> = doc.rope.chars().collect();
    let proposed = prediction
        .map(|p| p.edits.into_iter().map(|e| minimal(&text, (e.start, e.end, e.text))).collect())
        .unwrap_or_default();
    let expected = case.expected.iter().map(|e| minimal(&text, e.clone())).collect();
    Outcome { proposed, expected, latency }
}

/// The case's document after its keys, its edit history, and the cursor after the last key.
fn typed(case: &EditCase) -> (Document, History, usize) {
    let (language_id, extension) = cases::language_id(&case.language);
    let mut doc = Document::new(&format!("file:///eval/case.{extension}"), language_id, 1, &case.text);
    let mut history = History::default();
    let mut cursor = 0;
    for (start, end, text) in &case.keys {
        type_change(&mut doc, &mut history, *start, *end, text);
        cursor = start + text.chars().count();
    }
    (doc, history, cursor)
}

/// Applies one change given in chars, as `didChange` would, and records it.
fn type_change(doc: &mut Document, history: &mut History, start: usize, end: usize, text: &str) {
    let at = |char: usize| {
        let line = doc.rope.char_to_line(char);
        LinePos { line: line as u32, character: (char - doc.rope.line_to_char(line)) as u32 }
    };
    let change = Change { range: Some((at(start), at(end))), text: text.to_string() };
    let before = doc.clone();
    doc.apply_changes(doc.version + 1, std::slice::from_ref(&change), Encoding::Utf32);
    history.record(&before, doc, &[change], Encoding::Utf32);
}

/// Keys that select chars `start..end` and type `with` over them one by one.
fn retype(start: usize, end: usize, with: &str) -> Vec<(usize, usize, String)> {
    with.chars().enumerate().map(|(n, c)| (start + n, if n == 0 { end } else { start + n }, c.to_string())).collect()
}

fn build_cases(path: &str, language: &str, text: &str) -> Vec<EditCase> {
    let chars: Vec<char> = text.chars().collect();
    let masked = mask(&chars, language);
    let lines = line_starts(&chars);
    let mut out = Vec::new();
    let case = |kind, line, keys: Vec<(usize, usize, String)>, expected: BTreeSet<(usize, usize, String)>| {
        // Expected edits are found on the original text: move them past what the keys typed.
        let expected = expected
            .into_iter()
            .map(|(start, end, text)| (after_keys(&keys, start), after_keys(&keys, end), text))
            .collect();
        EditCase {
            kind,
            path: path.to_string(),
            language: language.to_string(),
            text: text.to_string(),
            line,
            keys,
            expected,
        }
    };
    for c in rename_cases(language, &chars, &masked, &lines).into_iter().take(PER_FILE) {
        out.push(case("rename", c.0, c.1, c.2));
    }
    let (callee, argument) = pattern_cases(language, &chars, &masked, &lines);
    for c in callee.into_iter().take(PER_FILE) {
        out.push(case("pattern: callee", c.0, c.1, c.2));
    }
    for c in argument.into_iter().take(PER_FILE) {
        out.push(case("pattern: argument", c.0, c.1, c.2));
    }
    if language == "python" {
        for c in parameter_cases(&chars, &masked, &lines).into_iter().take(PER_FILE) {
            out.push(case("parameter + one call", c.0, c.1, c.2));
        }
    }
    for (kind, c) in negative_cases(language, &chars, &masked, &lines) {
        out.push(case(kind, c.0, c.1, c.2));
    }
    out
}

/// `(start char, end char, text)` changes typed in order, each on the text as it is then.
type Keys = Vec<(usize, usize, String)>;
type Built = (usize, Keys, BTreeSet<(usize, usize, String)>);

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

fn line_starts(chars: &[char]) -> Vec<usize> {
    let mut starts = vec![0];
    starts.extend(chars.iter().enumerate().filter(|(_, c)| **c == '\n').map(|(i, _)| i + 1));
    starts
}

/// Where the char `at` of the original text is once the keys are typed (each key is given on the
/// text as it is when it is typed).
fn after_keys(keys: &[(usize, usize, String)], mut at: usize) -> usize {
    for (start, end, text) in keys {
        if at >= *end {
            at = at + text.chars().count() - (end - start);
        }
    }
    at
}

fn line_span(chars: &[char], lines: &[usize], line: usize) -> (usize, usize) {
    let start = lines[line];
    let end = lines.get(line + 1).map_or(chars.len(), |n| n - 1);
    (start, end)
}

fn indent_of(chars: &[char], lines: &[usize], line: usize) -> usize {
    let (start, end) = line_span(chars, lines, line);
    chars[start..end].iter().take_while(|c| **c == ' ' || **c == '\t').count()
}

/// The text with comments and string literals blanked (line breaks kept), by a plain lexer.
fn mask(chars: &[char], language: &str) -> Vec<char> {
    let mut out = chars.to_vec();
    let mut i = 0;
    let blank = |out: &mut Vec<char>, from: usize, to: usize| {
        for c in &mut out[from..to.min(chars.len())] {
            if *c != '\n' {
                *c = ' ';
            }
        }
    };
    let find = |from: usize, pat: &[char]| -> usize {
        (from..chars.len()).find(|&j| chars[j..].starts_with(pat)).map_or(chars.len(), |j| j + pat.len())
    };
    let python = language == "python";
    while i < chars.len() {
        let c = chars[i];
        let rest = &chars[i..];
        let end = if python && c == '#' || !python && rest.starts_with(&['/', '/']) {
            (i..chars.len()).find(|&j| chars[j] == '\n').unwrap_or(chars.len())
        } else if !python && rest.starts_with(&['/', '*']) {
            find(i + 2, &['*', '/'])
        } else if python && (rest.starts_with(&['"', '"', '"']) || rest.starts_with(&['\'', '\'', '\''])) {
            find(i + 3, &[c, c, c])
        } else if c == '"' || c == '`' || c == '\'' && language != "rust" {
            let mut j = i + 1;
            while j < chars.len() && chars[j] != c && !(c != '`' && python && chars[j] == '\n') {
                j += if chars[j] == '\\' { 2 } else { 1 };
            }
            j + 1
        } else if c == '\'' && language == "rust" {
            // A char literal ('x', '\n'), not a lifetime ('a).
            if chars.get(i + 1) == Some(&'\\') {
                find(i + 2, &['\''])
            } else if chars.get(i + 2) == Some(&'\'') {
                i + 3
            } else {
                i + 1
            }
        } else {
            i + 1
        };
        if end > i + 1 || c == '\'' && end == i + 3 {
            blank(&mut out, i, end);
        }
        i = end.max(i + 1);
    }
    out
}

/// Whole-word occurrences of `name` in `masked[from..to]`.
fn words(masked: &[char], from: usize, to: usize, name: &[char]) -> Vec<usize> {
    let to = to.min(masked.len());
    (from..to.saturating_sub(name.len() - 1))
        .filter(|&i| {
            masked[i..].starts_with(name)
                && (i == 0 || !is_ident(masked[i - 1]))
                && masked.get(i + name.len()).is_none_or(|c| !is_ident(*c))
        })
        .collect()
}

fn contains_word(chars: &[char], word: &str) -> bool {
    let word: Vec<char> = word.chars().collect();
    !words(chars, 0, chars.len(), &word).is_empty()
}

/// Renames of a local at its binding: Python parameters, Rust `let`s, JavaScript `const`/`let`s.
fn rename_cases(language: &str, chars: &[char], masked: &[char], lines: &[usize]) -> Vec<Built> {
    let mut out = Vec::new();
    for line in 0..lines.len() {
        let (start, end) = line_span(chars, lines, line);
        let text: String = masked[start..end].iter().collect();
        let trimmed = text.trim_start();
        let indent = text.len() - trimmed.len();
        let Some((name, site, scope_end)) = (match language {
            "python" => python_parameter(chars, masked, lines, line, trimmed, start + indent),
            _ => lexical_binding(language, masked, trimmed, start + indent),
        }) else {
            continue;
        };
        let name_chars: Vec<char> = name.chars().collect();
        let new_name = format!("{name}_next");
        if contains_word(chars, &new_name) || name.len() < 2 {
            continue;
        }
        let after_site = site + name_chars.len();
        let uses = words(masked, after_site, scope_end, &name_chars);
        let raw_uses = words(chars, after_site, scope_end, &name_chars);
        let ambiguous = uses.iter().any(|&u| {
            let before = masked[..u].iter().rev().find(|c| !c.is_whitespace());
            let next = masked.get(u + name_chars.len()).copied();
            let next2 = masked.get(u + name_chars.len() + 1).copied();
            let after = masked.get(u + name_chars.len()..).and_then(|r| r.iter().find(|c| !c.is_whitespace()));
            // A field, a keyword argument or key, a macro, a path, a shorthand (`{ x }`, `{ a,
            // x, b }` on one line or several): a resolver's question.
            before == Some(&'.')
                || next == Some(':')
                || next == Some('!')
                || (next == Some('=') && next2 != Some('=') && language == "python")
                || matches!(before, Some('{' | ','))
                    && matches!(after, Some(',' | '}'))
                    && enclosing_open(masked, u) == Some('{')
        });
        // Bound again in the scope (a shadowing `let`, a closure or loop variable, a nested function).
        let scope_text: String = masked[after_site..scope_end.min(masked.len())].iter().collect();
        let rebinds = [
            format!("let {name}"),
            format!("let mut {name}"),
            format!("const {name}"),
            format!("|{name}"),
            format!("for {name}"),
            format!("({name}) =>"),
            format!("{name} =>"),
        ]
        .iter()
        .any(|p| scope_text.contains(p.as_str()))
            || scope_text.contains("lambda")
            || scope_text.contains("def ")
            || scope_text.contains("function")
            || scope_text.contains("class ");
        if uses.is_empty() || ambiguous || rebinds || raw_uses.len() != uses.len() {
            continue;
        }
        let expected = uses.iter().map(|&u| (u, u + name_chars.len(), new_name.clone())).collect();
        out.push((line, retype(site, after_site, &new_name), expected));
    }
    out
}

/// The bracket that encloses char `at` (the nearest one opened before it and not closed).
fn enclosing_open(masked: &[char], at: usize) -> Option<char> {
    let mut depth = 0usize;
    for &c in masked[..at].iter().rev() {
        match c {
            ')' | ']' | '}' => depth += 1,
            '(' | '[' | '{' if depth == 0 => return Some(c),
            '(' | '[' | '{' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// A parameter of a one-line `def`: its name, its char offset and the end of the function.
fn python_parameter(
    chars: &[char],
    masked: &[char],
    lines: &[usize],
    line: usize,
    trimmed: &str,
    at: usize,
) -> Option<(String, usize, usize)> {
    let signature = trimmed.strip_prefix("def ")?;
    let open = signature.find('(')?;
    let close = signature.rfind("):")?;
    let params = &signature[open + 1..close];
    if params.contains(['(', '[', '{']) {
        return None;
    }
    let name = params
        .split(',')
        .map(|p| p.split([':', '=']).next().unwrap_or_default().trim())
        .find(|p| !p.is_empty() && !p.starts_with('*') && *p != "self" && *p != "cls" && p.chars().all(is_ident))?;
    let params_at = at + "def ".len() + open + 1;
    let name_chars: Vec<char> = name.chars().collect();
    let site = *words(masked, params_at, params_at + close - open, &name_chars).first()?;
    let indent = indent_of(chars, lines, line);
    let mut end_line = line + 1;
    while end_line < lines.len() {
        let (s, e) = line_span(chars, lines, end_line);
        let blank = masked[s..e].iter().all(|c| c.is_whitespace());
        if !blank && indent_of(masked, lines, end_line) <= indent {
            break;
        }
        end_line += 1;
    }
    let end = lines.get(end_line).copied().unwrap_or(chars.len());
    Some((name.to_string(), site, end))
}

/// A `let` (Rust) or `const`/`let` (JavaScript): its name, offset and the end of its block.
fn lexical_binding(language: &str, masked: &[char], trimmed: &str, at: usize) -> Option<(String, usize, usize)> {
    let (keyword, rest) = match language {
        "rust" => ("let ", trimmed.strip_prefix("let ")?),
        _ => {
            let keyword = if trimmed.starts_with("const ") { "const " } else { "let " };
            (keyword, trimmed.strip_prefix(keyword)?)
        }
    };
    let (rest, skipped) = match rest.strip_prefix("mut ") {
        Some(rest) => (rest, 4),
        None => (rest, 0),
    };
    let name: String = rest.chars().take_while(|c| is_ident(*c)).collect();
    let after = rest[name.len()..].trim_start();
    if name.is_empty() || name == "_" || !(after.starts_with('=') || after.starts_with(':')) {
        return None;
    }
    let site = at + keyword.len() + skipped;
    // The end of the enclosing block.
    let mut depth = 0i32;
    let mut end = masked.len();
    for (i, c) in masked.iter().enumerate().skip(site) {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth < 0 {
                    end = i;
                    break;
                }
            }
            _ => {}
        }
    }
    Some((name, site, end))
}

/// Lines starting with the same call (`prefix(`) in one block: the callee renamed on one line, and
/// an argument added at the end of one call.
fn pattern_cases(language: &str, chars: &[char], masked: &[char], lines: &[usize]) -> (Vec<Built>, Vec<Built>) {
    const KEYWORDS: [&str; 16] = [
        "if", "elif", "while", "for", "return", "assert", "not", "match", "switch", "catch", "with", "yield", "await",
        "del", "raise", "throw",
    ];
    let mut callee_cases = Vec::new();
    let mut argument_cases = Vec::new();
    let mut used = HashSet::new();
    for line in 0..lines.len() {
        let Some((key, callee_at)) = call_key(chars, masked, lines, line) else { continue };
        let first_word: String = key.chars().take_while(|c| is_ident(*c)).collect();
        if KEYWORDS.contains(&first_word.as_str()) || used.contains(&line) {
            continue;
        }
        let indent = indent_of(chars, lines, line);
        let siblings: Vec<usize> = block_lines(chars, masked, lines, line, indent)
            .into_iter()
            .filter(|&other| call_key(chars, masked, lines, other).is_some_and(|(k, _)| k == key))
            .collect();
        if siblings.len() < 2 {
            continue;
        }
        used.extend(siblings.iter().copied());
        used.insert(line);
        // The callee: the last word before `(`.
        let callee: String =
            key.chars().rev().take_while(|c| is_ident(*c)).collect::<Vec<_>>().into_iter().rev().collect();
        let new_callee = format!("{callee}_checked");
        if contains_word(chars, &new_callee) {
            continue;
        }
        let callee_len = callee.chars().count();
        let start = callee_at - callee_len;
        let expected = siblings
            .iter()
            .filter_map(|&s| call_key(chars, masked, lines, s).map(|(_, at)| (at - callee_len, at, new_callee.clone())))
            .collect();
        callee_cases.push((line, retype(start, callee_at, &new_callee), expected));
        // An argument added before the line's last `)` where the call ends the statement.
        let close = |l: usize| -> Option<usize> {
            let (s, e) = line_span(chars, lines, l);
            let text: String = masked[s..e].iter().collect();
            let trimmed = text.trim_end();
            let trimmed = trimmed.strip_suffix(';').unwrap_or(trimmed);
            (trimmed.ends_with(')') && !trimmed.ends_with("()") && balanced(trimmed))
                .then(|| s + trimmed.chars().count() - 1)
        };
        let extra = match language {
            "python" => ", strict=True",
            "rust" => ", &mut ctx",
            _ => ", options",
        };
        if let Some(at) = close(line) {
            let expected = siblings.iter().filter_map(|&s| close(s)).map(|c| (c, c, extra.to_string())).collect();
            let keys = extra.chars().enumerate().map(|(n, c)| (at + n, at + n, c.to_string())).collect();
            argument_cases.push((line, keys, expected));
        }
    }
    (callee_cases, argument_cases)
}

/// `(text of the line up to the first '(' , char offset of that '(')` when the line starts with
/// a call such as `x = obj.f(`.
fn call_key(chars: &[char], masked: &[char], lines: &[usize], line: usize) -> Option<(String, usize)> {
    let (start, end) = line_span(chars, lines, line);
    let text: String = masked[start..end].iter().collect();
    let trimmed = text.trim_start();
    let open = trimmed.find('(')?;
    let head = &trimmed[..open];
    let ok = !head.is_empty()
        && head.ends_with(is_ident)
        && head.chars().all(|c| is_ident(c) || matches!(c, '.' | ' ' | '='))
        && !head.contains("==");
    let at = start + (text.len() - trimmed.len()) + head.chars().count();
    // Only when what the lexer blanked is not hiding part of the call head.
    (ok && chars[start..at].iter().collect::<String>().trim_start() == head).then(|| (head.to_string(), at))
}

fn balanced(text: &str) -> bool {
    let mut depth = 0i32;
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => {}
        }
    }
    depth == 0
}

/// The lines up to 30 away from `line` with its indentation, without crossing a line indented less.
fn block_lines(chars: &[char], masked: &[char], lines: &[usize], line: usize, indent: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut walk = |range: &mut dyn Iterator<Item = usize>| {
        for other in range {
            let (s, e) = line_span(chars, lines, other);
            if masked[s..e].iter().all(|c| c.is_whitespace()) {
                if chars[s..e].iter().all(|c| c.is_whitespace()) {
                    continue;
                }
                // A comment line: not code, not the end of the block.
                continue;
            }
            let own = indent_of(chars, lines, other);
            if own < indent {
                break;
            }
            if own == indent {
                out.push(other);
            }
        }
    };
    walk(&mut (line + 1..lines.len().min(line + 31)));
    walk(&mut (line.saturating_sub(30)..line).rev());
    out
}

/// A parameter added to a top-level Python function and the same argument added to one of its
/// calls: the other calls should follow.
fn parameter_cases(chars: &[char], masked: &[char], lines: &[usize]) -> Vec<Built> {
    let mut out = Vec::new();
    for line in 0..lines.len() {
        let (start, end) = line_span(chars, lines, line);
        let text: String = masked[start..end].iter().collect();
        let Some(signature) = text.strip_prefix("def ") else { continue };
        let name: String = signature.chars().take_while(|c| is_ident(*c)).collect();
        let Some(close) = text.rfind("):") else { continue };
        if name.is_empty() || text[..close].ends_with('(') || text.contains('*') {
            continue;
        }
        let name_chars: Vec<char> = name.chars().collect();
        // Calls: the name followed by `(`, not a definition, not an attribute.
        let calls: Vec<usize> = words(masked, 0, masked.len(), &name_chars)
            .into_iter()
            .filter(|&at| {
                let before: String = masked[at.saturating_sub(4)..at].iter().collect();
                masked.get(at + name_chars.len()) == Some(&'(') && !before.ends_with("def ") && !before.ends_with('.')
            })
            .filter_map(|at| matching_paren(masked, at + name_chars.len()))
            .collect();
        if calls.len() < 2 {
            continue;
        }
        let def_close = start + text[..close].chars().count();
        let mut keys: Vec<(usize, usize, String)> =
            ", strict=False".chars().enumerate().map(|(n, c)| (def_close + n, def_close + n, c.to_string())).collect();
        let first = after_keys(&keys, calls[0]);
        keys.extend(", strict=True".chars().enumerate().map(|(n, c)| (first + n, first + n, c.to_string())));
        let expected = calls[1..].iter().map(|&at| (at, at, ", strict=True".to_string())).collect();
        out.push((line, keys, expected));
    }
    out
}

/// The offset of the `)` matching the `(` at `open`.
fn matching_paren(masked: &[char], open: usize) -> Option<usize> {
    let mut depth = 0;
    for (i, c) in masked.iter().enumerate().skip(open) {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Edits after which nothing should be proposed: a word added to a comment, a number changed, a
/// new statement typed on a new line.
fn negative_cases(language: &str, chars: &[char], masked: &[char], lines: &[usize]) -> Vec<(&'static str, Built)> {
    let mut out = Vec::new();
    let comment = (0..lines.len()).find(|&l| {
        let (s, e) = line_span(chars, lines, l);
        let raw: String = chars[s..e].iter().collect();
        let raw = raw.trim_start();
        (raw.starts_with("# ") || raw.starts_with("// ")) && masked[s..e].iter().all(|c| c.is_whitespace())
    });
    if let Some(l) = comment {
        let (_, e) = line_span(chars, lines, l);
        let keys = " (see above)".chars().enumerate().map(|(n, c)| (e + n, e + n, c.to_string())).collect();
        out.push(("negative: comment", (l, keys, BTreeSet::new())));
    }
    let number = (0..lines.len()).find_map(|l| {
        let (s, e) = line_span(chars, lines, l);
        (s..e.saturating_sub(2))
            .find(|&i| {
                masked[i] == '=' && masked[i + 1] == ' ' && masked[i + 2].is_ascii_digit() && masked[i - 1] == ' '
            })
            .map(|i| (l, i + 2))
    });
    if let Some((l, at)) = number {
        let digits = masked[at..].iter().take_while(|c| c.is_ascii_digit()).count();
        let new = if masked[at] == '7' { "8" } else { "7" };
        out.push(("negative: number", (l, retype(at, at + digits, new), BTreeSet::new())));
    }
    let statement = (lines.len() / 2..lines.len()).find(|&l| {
        let (s, e) = line_span(chars, lines, l);
        let text: String = masked[s..e].iter().collect();
        let t = text.trim_end();
        indent_of(chars, lines, l) > 0
            && (if language == "python" { t.contains(" = ") && !t.ends_with(':') } else { t.ends_with(';') })
    });
    if let Some(l) = statement {
        let (_, e) = line_span(chars, lines, l);
        let indent: String = " ".repeat(indent_of(chars, lines, l));
        let typed = match language {
            "python" => format!("\n{indent}extra_value = compute(1)"),
            "rust" => format!("\n{indent}let extra_value = compute(1);"),
            _ => format!("\n{indent}const extraValue = compute(1);"),
        };
        let keys = typed.chars().enumerate().map(|(n, c)| (e + n, e + n, c.to_string())).collect();
        out.push(("negative: new line", (l, keys, BTreeSet::new())));
    }
    out
}

/// Prediction latency on 10,000-line files: a local renamed in a function in the middle, a
/// top-level function renamed (the whole file is its scope), and a key with nothing to predict.
fn large_files() {
    println!("latency on 10,000-line files (200 predictions each, one thread)");
    for language in ["python", "rust", "typescript"] {
        let text = corpus::source(language, 10_000);
        let (id, ext) = cases::language_id(language);
        let chars: Vec<char> = text.chars().collect();
        let lines = line_starts(&chars);
        let middle = lines.len() / 2;
        let find_from = |from: usize, needle: &str| -> Option<usize> {
            let from_byte = text.char_indices().nth(from).map_or(text.len(), |(b, _)| b);
            text[from_byte..].find(needle).map(|b| text[..from_byte + b].chars().count())
        };
        let (local, function) = match language {
            "python" => ("total = 0.0", "def score_"),
            "rust" => ("let mut total", "pub fn score_"),
            _ => ("let total", "export function score"),
        };
        let Some(local_at) = find_from(lines[middle], local) else { continue };
        let local_at = local_at + local.find("total").unwrap_or(0);
        let Some(function_at) = find_from(lines[middle], function) else { continue };
        let function_at =
            function_at + function.len() - if language == "typescript" { "score".len() } else { "score_".len() };
        let function_len = chars[function_at..].iter().take_while(|c| is_ident(**c)).count();
        // Two calls of that function at the end of the file, so the rename has uses to find.
        let called: String = chars[function_at..function_at + function_len].iter().collect();
        let text = match language {
            "python" => format!("{text}\ndef main(items):\n    return {called}(items) or {called}(items, 2.0)\n"),
            "rust" => format!(
                "{text}\nfn main_score(items: &[Item]) -> Option<f64> {{\n    {called}(items, 1.0).or({called}(items, 2.0))\n}}\n"
            ),
            _ => format!(
                "{text}\nexport function mainScore(items: Item[]) {{\n  return {called}(items) ?? {called}(items, 2);\n}}\n"
            ),
        };
        let scenarios: [(&str, Keys); 3] = [
            ("rename a local", retype(local_at, local_at + "total".len(), "acc")),
            ("rename a function", retype(function_at, function_at + function_len, "weighted")),
            ("unrelated key", vec![(lines[middle], lines[middle], " ".to_string())]),
        ];
        for (what, keys) in scenarios {
            let mut doc = Document::new(&format!("file:///bench.{ext}"), id, 1, &text);
            let mut history = History::default();
            let mut cursor = 0;
            for (start, end, typed) in &keys {
                type_change(&mut doc, &mut history, *start, *end, typed);
                cursor = start + typed.chars().count();
            }
            let mut times = Vec::new();
            let mut edits = 0;
            for _ in 0..200 {
                let started = Instant::now();
                let prediction = nextedit::predict(&doc, &history, cursor);
                times.push(started.elapsed());
                edits = prediction.map_or(0, |p| p.edits.len());
            }
            println!("{language:>10}  {what:<18} {edits:>4} edits  {}", stats::summarize(&times));
        }
    }
}
