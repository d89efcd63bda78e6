//! Engine benchmarks on the real default model: prefill and decode throughput, cold and warm time
//! to first token, cancellation latency and peak memory, side by side with llama.cpp (through
//! llama-cpp-python) when it is importable. Prints medians and p99; asserts nothing.
//!
//! Run: `cargo bench -p glint-engine --bench engine`. The llama.cpp column needs a Python with
//! llama-cpp-python (`GLINT_BENCH_PYTHON`, default `python3`); see `llama_cpp_bench.py`.
//! `GLINT_BENCH_MODEL` picks the model file; `GLINT_BENCH_LLAMA_MODELS` adds llama.cpp runs on
//! other files of the same model (its best format), each printed against Glint's figures.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use glint_engine::model::{LoadOptions, Model};
use glint_engine::{Chunk, Engine, GenerateRequest, LocalConfig, LocalEngine};

/// Source text to build prompts from: this crate's own code.
const CORPUS: &[&str] = &[
    include_str!("../src/model.rs"),
    include_str!("../src/local/runner.rs"),
    include_str!("../src/prompt.rs"),
    include_str!("../src/tokenizer.rs"),
    include_str!("../src/fetch.rs"),
];

/// What the warm runs type after a prompt, a character more each.
const TYPED: &str = "    let value = compute(x, y);\n    value";

fn main() {
    let path = glint_engine::fetch::default_model_path();
    let path = std::env::var_os("GLINT_BENCH_MODEL").map(std::path::PathBuf::from).unwrap_or(path);
    if !path.is_file() {
        println!("SKIP: no model at {} (run `glint model fetch`)", path.display());
        return;
    }
    let quick = std::env::var_os("GLINT_BENCH_QUICK").is_some();
    let reps = |n: usize| if quick { n.div_ceil(3) } else { n };
    let tokenizer = glint_engine::tokenizer::Tokenizer::load(&path).unwrap();
    let corpus = CORPUS.join("\n");
    let tokens = tokenizer.encode(&corpus).unwrap();
    assert!(tokens.len() > 2048 + 160, "corpus too short: {} tokens", tokens.len());

    if let Some(cache) = std::env::var_os("GLINT_BENCH_SERVER_RSS") {
        one_server(&path, std::path::PathBuf::from(cache), &tokenizer, &tokens, &reps);
        return;
    }

    let mut ours = Results::default();
    // The packed weights cache as the server uses it, in a folder of the bench's own (emptied, so
    // the first load repacks); `GLINT_WEIGHT_CACHE=0` measures without it.
    let weight_cache = glint_engine::fetch::packed_weights_dir().map(|_| {
        let dir = std::env::temp_dir().join(format!("glint-bench-packed-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    });
    let options = LoadOptions { weight_cache: weight_cache.clone(), ..LoadOptions::default() };
    let started = Instant::now();
    let model = Model::load(&path, options.clone()).unwrap();
    ours.add("load_first_s", vec![started.elapsed().as_secs_f64()]);
    drop(model);
    if let Some(dir) = &weight_cache {
        // The cache is written on a thread of its own after the load: wait for it.
        let written = || {
            std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "weights"))
        };
        let waited = Instant::now();
        while !written() && waited.elapsed() < Duration::from_secs(120) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // Throughput on the weights as every load after the first has them.
    let mut model = Model::load(&path, options).unwrap();
    let threads = candle_core::utils::get_num_threads();
    println!("model {} ({} threads)", path.display(), threads);
    let chunk = LocalConfig::default().prefill_chunk;

    for (n, r) in [(128, reps(5)), (512, reps(3)), (2048, reps(2))] {
        let mut rates = Vec::new();
        for _ in 0..r {
            model.cache_truncate(0);
            let started = Instant::now();
            for (i, piece) in tokens[..n].chunks(chunk).enumerate() {
                model.forward(piece, i * chunk).unwrap();
            }
            rates.push(n as f64 / started.elapsed().as_secs_f64());
        }
        ours.add(&format!("prefill_{n}"), rates);
    }

    model.cache_truncate(0);
    for (i, piece) in tokens[..128].chunks(chunk).enumerate() {
        model.forward(piece, i * chunk).unwrap();
    }
    let mut step_rates = Vec::new();
    for i in 0..128 {
        let started = Instant::now();
        model.forward(&[tokens[128 + i]], 128 + i).unwrap();
        step_rates.push(1.0 / started.elapsed().as_secs_f64());
    }
    ours.add("decode", step_rates);
    drop(model);
    // Load time as the server pays it: header, tokenizer and weights, with the file in the page
    // cache from the loads above (llama.cpp's figure is measured the same way).
    let started = Instant::now();
    let engine =
        LocalEngine::load(&path, LocalConfig { weight_cache: weight_cache.clone(), ..LocalConfig::default() }).unwrap();
    ours.add("load_s", vec![started.elapsed().as_secs_f64()]);

    // End to end through the engine: time to first token as the server sees it.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let prompt_1024 = tokenizer.decode(&tokens[..1024]);
    let mut cold = Vec::new();
    for i in 0..reps(5) {
        // A different first line and a session of its own each time, so nothing is reused (a
        // shared session would reuse the shifted run of everything after the first line).
        let prefix = format!("// cold run {i}\n{prompt_1024}");
        let session = Some(format!("cold-{i}"));
        let request = GenerateRequest { prefix, max_tokens: 1, session, ..GenerateRequest::default() };
        let (_, finish) = runtime.block_on(engine.generate(request).collect_text());
        cold.push(finish.timings.ttft_ms);
    }
    ours.add("cold_ttft_ms", cold);

    let mut warm = Vec::new();
    let mut warm_tails: Vec<Vec<u32>> = Vec::new();
    let warmup = GenerateRequest { prefix: prompt_1024.clone(), max_tokens: 0, ..GenerateRequest::default() };
    runtime.block_on(engine.generate(warmup).collect_text());
    for end in 1..=TYPED.len().min(reps(30)) {
        let prefix = format!("{prompt_1024}{}", &TYPED[..end]);
        let ids = tokenizer.encode(&prefix).unwrap();
        warm_tails.push(ids[1024.min(ids.len())..].to_vec());
        let request = GenerateRequest { prefix, max_tokens: 1, ..GenerateRequest::default() };
        let (_, finish) = runtime.block_on(engine.generate(request).collect_text());
        warm.push(finish.timings.ttft_ms);
    }
    ours.add("warm_ttft_ms", warm);

    let mut cancel_decode = Vec::new();
    for i in 0..reps(10) {
        let request = GenerateRequest {
            prefix: format!("fn main() {{ // {i}\n"),
            max_tokens: 1000,
            ..GenerateRequest::default()
        };
        let mut generation = engine.generate(request);
        runtime.block_on(async { while !matches!(generation.next_chunk().await, Some(Chunk::Text(_)) | None) {} });
        let dropped = Instant::now();
        drop(generation);
        engine.wait_idle(Duration::from_secs(10));
        cancel_decode.push(dropped.elapsed().as_secs_f64() * 1e3);
    }
    ours.add("cancel_decode_ms", cancel_decode);

    let mut cancel_prefill = Vec::new();
    let prompt_2048 = tokenizer.decode(&tokens[..2048]);
    for i in 0..reps(5) {
        let prefix = format!("// cancelled run {i}\n{prompt_2048}");
        let generation = engine.generate(GenerateRequest { prefix, max_tokens: 8, ..GenerateRequest::default() });
        std::thread::sleep(Duration::from_millis(300));
        let dropped = Instant::now();
        drop(generation);
        engine.wait_idle(Duration::from_secs(10));
        cancel_prefill.push(dropped.elapsed().as_secs_f64() * 1e3);
    }
    ours.add("cancel_prefill_ms", cancel_prefill);
    let peak_rss_mb = peak_rss_mb();
    // Peak memory of one server, as llama.cpp's figure is of one process doing the same work: a
    // process of its own that loads from the packed weights written above (as every start after
    // the first does), and one that repacks (a first start).
    if let Some(dir) = &weight_cache {
        ours.add("server_rss_mb", one_server_rss(&path, dir));
        let fresh = std::env::temp_dir().join(format!("glint-bench-packed-first-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&fresh);
        ours.add("first_server_rss_mb", one_server_rss(&path, &fresh));
        let _ = std::fs::remove_dir_all(&fresh);
    }

    // llama.cpp on the same file, then on any other files of the same model named in
    // `GLINT_BENCH_LLAMA_MODELS` (comma-separated; e.g. the model requantized to Q4_0, llama.cpp's
    // fastest CPU format), each side by side with Glint on the file above.
    let mut files = vec![path.clone()];
    if let Ok(more) = std::env::var("GLINT_BENCH_LLAMA_MODELS") {
        files.extend(more.split(',').filter(|f| !f.is_empty()).map(std::path::PathBuf::from));
    }
    for file in files {
        println!("\nglint on {} vs llama.cpp on {}", path.display(), file.display());
        let mut theirs = llama_cpp(&file, &tokens, &warm_tails, threads, &reps);
        // llama.cpp has no cache of its own: each of its loads is a first one.
        if let Some(theirs) = theirs.as_mut()
            && let Some(load) = theirs.get("load_s").map(<[f64]>::to_vec)
        {
            theirs.add("load_first_s", load);
        }
        print_table(&ours, theirs.as_ref(), peak_rss_mb);
    }
    if let Some(dir) = weight_cache {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[derive(Default)]
struct Results(Vec<(String, Vec<f64>)>);

impl Results {
    fn add(&mut self, name: &str, values: Vec<f64>) {
        self.0.push((name.to_string(), values));
    }

    fn get(&self, name: &str) -> Option<&[f64]> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }
}

fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn print_table(ours: &Results, theirs: Option<&Results>, peak_rss_mb: f64) {
    let rows = [
        ("prefill_128", "prefill tok/s @128", true),
        ("prefill_512", "prefill tok/s @512", true),
        ("prefill_2048", "prefill tok/s @2048", true),
        ("decode", "decode tok/s (128 steps)", true),
        ("cold_ttft_ms", "cold TTFT ms, 1,024 tokens", false),
        ("warm_ttft_ms", "warm TTFT ms, +1 char", false),
        ("cancel_decode_ms", "cancel in decode, drop→idle ms", false),
        ("cancel_prefill_ms", "cancel in prefill, drop→idle ms", false),
        ("load_first_s", "first load s (weights repacked)", false),
        ("load_s", "load s (tokenizer + weights, warm)", false),
    ];
    println!();
    println!(
        "{:<34} {:>10} {:>10} {:>12} {:>12} {:>8}",
        "", "glint p50", "glint p99", "llama.cpp p50", "llama.cpp p99", "ratio"
    );
    for (key, label, higher_is_better) in rows {
        let Some(values) = ours.get(key) else { continue };
        // For rates the "p99" is the slow tail, the 1st percentile of the rate.
        let tail = if higher_is_better { 1.0 } else { 99.0 };
        let (p50, p99) = (percentile(values, 50.0), percentile(values, tail));
        match theirs.and_then(|t| t.get(key)) {
            Some(other) => {
                let (o50, o99) = (percentile(other, 50.0), percentile(other, tail));
                let ratio = if higher_is_better { p50 / o50 } else { o50 / p50 };
                println!("{label:<34} {p50:>10.1} {p99:>10.1} {o50:>12.1} {o99:>12.1} {ratio:>7.2}x");
            }
            None => println!("{label:<34} {p50:>10.1} {p99:>10.1}"),
        }
    }
    let their_rss = theirs.and_then(|t| t.get("peak_rss_mb")).map(|v| v[0]);
    let rss_rows = [
        ("peak RSS MB, one server", ours.get("server_rss_mb").and_then(|v| v.first().copied())),
        ("peak RSS MB, one server 1st start", ours.get("first_server_rss_mb").and_then(|v| v.first().copied())),
        ("peak RSS MB, this whole bench", Some(peak_rss_mb)),
    ];
    for (label, ours) in rss_rows {
        let Some(mb) = ours else { continue };
        match their_rss {
            Some(other) => println!("{label:<34} {mb:>10.0} {:>10} {other:>12.0} {:>12} {:>7.2}x", "", "", mb / other),
            None => println!("{label:<34} {mb:>10.0}"),
        }
    }
    println!("(ratio: glint relative to llama.cpp, above 1.00x means glint is better; RSS ratio is glint/llama.cpp)");
}

/// Runs this bench again as one server (see [`one_server`]) and reads its peak memory.
fn one_server_rss(model: &Path, weight_cache: &Path) -> Vec<f64> {
    let output = std::env::current_exe().ok().and_then(|exe| {
        std::process::Command::new(exe)
            .env("GLINT_BENCH_SERVER_RSS", weight_cache)
            .env("GLINT_BENCH_MODEL", model)
            .stderr(std::process::Stdio::inherit())
            .output()
            .ok()
    });
    let stdout = output.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    match stdout.lines().find_map(|l| l.strip_prefix("server_peak_rss_mb ")).and_then(|v| v.trim().parse().ok()) {
        Some(mb) => vec![mb],
        None => {
            println!("one-server run printed no peak memory: {stdout}");
            Vec::new()
        }
    }
}

/// One server's life as llama.cpp's script lives it, in this process: load (with the packed
/// weights cache in `weight_cache`), a 2,048-token prompt and 128 tokens written, a cold
/// 1,024-token prompt, then the warm prompts one character longer each, all in one document's
/// session. Prints its peak memory.
fn one_server(
    model: &Path,
    weight_cache: std::path::PathBuf,
    tokenizer: &glint_engine::tokenizer::Tokenizer,
    tokens: &[u32],
    reps: &dyn Fn(usize) -> usize,
) {
    let config = LocalConfig { weight_cache: Some(weight_cache), ..LocalConfig::default() };
    let engine = LocalEngine::load(model, config).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let session = Some("document".to_string());
    let run = |prefix: String, max_tokens: u32| {
        let request = GenerateRequest { prefix, max_tokens, session: session.clone(), ..GenerateRequest::default() };
        runtime.block_on(engine.generate(request).collect_text());
    };
    run(tokenizer.decode(&tokens[..2048]), 128);
    let prompt_1024 = tokenizer.decode(&tokens[..1024]);
    run(prompt_1024.clone(), 1);
    for end in 1..=TYPED.len().min(reps(30)) {
        run(format!("{prompt_1024}{}", &TYPED[..end]), 1);
    }
    drop(engine);
    println!("server_peak_rss_mb {:.1}", peak_rss_mb());
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn llama_cpp(
    model: &Path,
    tokens: &[u32],
    warm_tails: &[Vec<u32>],
    threads: usize,
    reps: &dyn Fn(usize) -> usize,
) -> Option<Results> {
    let python = std::env::var("GLINT_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/llama_cpp_bench.py");
    let available = std::process::Command::new(&python)
        .args(["-c", "import llama_cpp"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !available {
        println!(
            "llama.cpp: `{python}` cannot import llama_cpp; set GLINT_BENCH_PYTHON to a Python with llama-cpp-python for the comparison"
        );
        return None;
    }
    let spec = serde_json::json!({
        "tokens": tokens,
        "warm_tails": warm_tails,
        "reps": {"128": reps(5), "512": reps(3), "2048": reps(2), "cold": reps(5)},
    });
    let spec_path = std::env::temp_dir().join(format!("glint-bench-{}.json", std::process::id()));
    std::fs::write(&spec_path, spec.to_string()).ok()?;
    let output = std::process::Command::new(&python)
        .arg(&script)
        .arg(model)
        .arg(&spec_path)
        .arg(threads.to_string())
        .output()
        .ok()?;
    let _ = std::fs::remove_file(&spec_path);
    if !output.status.success() {
        println!("llama.cpp benchmark failed: {}", String::from_utf8_lossy(&output.stderr));
        return None;
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().rev().find(|l| l.starts_with('{'))?;
    let json: serde_json::Value = serde_json::from_str(line).ok()?;
    let mut results = Results::default();
    for (key, value) in json.as_object()? {
        let values: Vec<f64> = match value {
            serde_json::Value::Array(items) => items.iter().filter_map(|v| v.as_f64()).collect(),
            serde_json::Value::Number(n) => n.as_f64().into_iter().collect(),
            _ => continue,
        };
        results.add(key, values);
    }
    println!("llama.cpp: llama-cpp-python {}", json.get("version").and_then(|v| v.as_str()).unwrap_or("?"));
    Some(results)
}
