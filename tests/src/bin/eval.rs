//! Completion quality on the shared real-code cases, driven through the LSP server: exact match
//! and edit similarity per language and kind, Glint's syntax-aware context and post-processing
//! against a baseline with the same model, budget and engine, in one run. The baseline is the
//! strongest simple one, `plain-fim` (llama.vscode's window and cut rules); `naive` (raw model
//! text) is available for comparison with older figures.
//!
//! `cargo run --release -p glint-tests --bin eval -- [--per-cell N] [--model PATH] [--cases FILE] [--baseline plain-fim|naive]`

#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use glint_engine::{Engine, LocalConfig, LocalEngine, fetch};
use glint_tests::cases::{self, Case};
use glint_tests::{LspClient, ServerOptions, capabilities};
use serde_json::json;

struct Args {
    baseline: String,
    /// A prompt template for the local engine (see `prompt::TEMPLATE_NAMES`); detected when absent.
    template: Option<String>,
    per_cell: usize,
    model: Option<PathBuf>,
    cases: PathBuf,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args =
        Args { baseline: "plain-fim".into(), template: None, per_cell: 4, model: None, cases: cases::default_path() };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--per-cell" => args.per_cell = value()?.parse()?,
            "--model" => args.model = Some(PathBuf::from(value()?)),
            "--cases" => args.cases = PathBuf::from(value()?),
            "--baseline" => args.baseline = value()?,
            "--template" => args.template = Some(value()?),
            "--help" | "-h" => {
                println!(
                    "usage: eval [--per-cell N (default 4; 0 = all)] [--model PATH] [--cases FILE] [--baseline plain-fim|naive] [--template NAME]"
                );
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    Ok(args)
}

#[derive(Default, Clone, Copy)]
struct Cell {
    n: usize,
    exact: usize,
    similarity: f64,
    shown: usize,
}

impl Cell {
    fn add(&mut self, expected: &str, got: Option<&str>) {
        let got = got.unwrap_or("");
        self.n += 1;
        self.shown += usize::from(!got.is_empty());
        self.exact += usize::from(cases::exact_match(expected, got));
        self.similarity += cases::edit_similarity(expected, got);
    }
    fn merge(&mut self, other: &Cell) {
        self.n += other.n;
        self.exact += other.exact;
        self.similarity += other.similarity;
        self.shown += other.shown;
    }
    fn es(&self) -> f64 {
        self.similarity / self.n.max(1) as f64
    }
    fn em(&self) -> f64 {
        100.0 * self.exact as f64 / self.n.max(1) as f64
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // A real model on a busy machine can take far longer than a test's default wait.
    glint_tests::set_timeout(std::time::Duration::from_secs(300));
    glint_server::logging::init("warn");
    let args = parse_args()?;
    let model = match fetch::resolve_model(args.model.as_deref()) {
        Ok(model) => model,
        Err(e) => {
            println!("SKIP eval: {e}");
            return Ok(());
        }
    };
    let all = cases::load(&args.cases).with_context(|| format!("reading {}", args.cases.display()))?;
    let mut per: BTreeMap<(String, String), Vec<&Case>> = BTreeMap::new();
    for case in &all {
        per.entry((case.language.clone(), case.kind.clone())).or_default().push(case);
    }
    let chosen: Vec<&Case> = per
        .values()
        .flat_map(|cells| cells.iter().take(if args.per_cell == 0 { usize::MAX } else { args.per_cell }).copied())
        .collect();
    let config = LocalConfig { template: args.template.clone(), ..LocalConfig::default() };
    let engine: Arc<dyn Engine> = Arc::new(LocalEngine::load(&model, config)?);
    println!("eval: {} cases ({} per language and kind), model {}", chosen.len(), args.per_cell, engine.info().model);

    let mut results: BTreeMap<&str, BTreeMap<(String, String), Cell>> = BTreeMap::new();
    let baseline = args.baseline.as_str();
    for (system, settings) in [("glint", json!({})), (baseline, json!({"contextStrategy": baseline}))] {
        let started = Instant::now();
        let client = LspClient::in_process(ServerOptions {
            injected_engine: Some(Arc::clone(&engine)),
            ..ServerOptions::default()
        });
        // Quality is that of the whole answer: an early answer is a prefix the same generation
        // goes on to complete (streamed, or on the next key), so the evaluation waits for the end.
        let mut options = json!({"debounceMs": 0, "maxTokens": 128, "earlyAnswerMs": 0});
        options.as_object_mut().into_iter().for_each(|o| {
            if let Some(extra) = settings.as_object() {
                o.extend(extra.clone());
            }
        });
        client.initialize(capabilities(&["utf-16"]), options).await;
        for (i, case) in chosen.iter().enumerate() {
            let (language_id, ext) = cases::language_id(&case.language);
            let uri = format!("file:///eval/{system}/{i}.{ext}");
            client.open(&uri, language_id, &format!("{}{}", case.prefix, case.suffix)).await;
            let line = case.prefix.matches('\n').count() as u32;
            let line_start = case.prefix.rfind('\n').map_or(0, |p| p + 1);
            let character = case.prefix[line_start..].encode_utf16().count() as u32;
            // Single-line and block cases are what automatic triggers see; random spans are
            // what a user asks for explicitly.
            let trigger = if case.kind == "random_span" { 1 } else { 2 };
            let response = client
                .request(
                    "textDocument/inlineCompletion",
                    json!({"textDocument": {"uri": uri}, "position": {"line": line, "character": character},
                           "context": {"triggerKind": trigger}}),
                )
                .await;
            let got = response["result"][0]["insertText"].as_str().map(str::to_string);
            results
                .entry(system)
                .or_default()
                .entry((case.language.clone(), case.kind.clone()))
                .or_default()
                .add(&case.expected, got.as_deref());
            client.notify("textDocument/didClose", json!({"textDocument": {"uri": uri}})).await;
        }
        println!("{system}: {} cases in {:.1} s", chosen.len(), started.elapsed().as_secs_f64());
    }

    println!("\n| language | kind | n | glint EM % | {baseline} EM % | glint ES | {baseline} ES | ES ratio |");
    println!("|---|---|---|---|---|---|---|---|");
    let (glint, naive) = (&results["glint"], &results[baseline]);
    let mut totals = (Cell::default(), Cell::default());
    let mut wins = 0;
    for (key, g) in glint {
        let n = naive.get(key).copied().unwrap_or_default();
        wins += usize::from(g.es() > n.es());
        totals.0.merge(g);
        totals.1.merge(&n);
        print_row(&key.0, &key.1, g, &n);
    }
    let (g, n) = totals;
    print_row("all", "all", &g, &n);
    println!(
        "\nglint wins on edit similarity in {wins} of {} cells; shown: glint {} / {baseline} {} of {}",
        glint.len(),
        g.shown,
        n.shown,
        g.n
    );
    Ok(())
}

fn print_row(language: &str, kind: &str, g: &Cell, n: &Cell) {
    println!(
        "| {language} | {kind} | {} | {:.1} | {:.1} | {:.3} | {:.3} | {:.2} |",
        g.n,
        g.em(),
        n.em(),
        g.es(),
        n.es(),
        g.es() / n.es().max(1e-9)
    );
}
