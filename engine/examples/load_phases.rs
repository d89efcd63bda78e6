//! Loads a GGUF model and prints load time, greedy text for a fixed prompt, prefill and decode
//! rates and peak memory: a quick check while working on loading and kernels (the full comparison
//! with llama.cpp is `cargo bench -p glint-engine --bench engine`).
//!
//! Run: `cargo run --release -p glint-engine --example load_phases -- MODEL.gguf [REPS]`;
//! `LOAD_ONLY=1` stops after loading.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::time::Instant;

/// Seconds of CPU time this process has used: on a busy machine, rates from CPU time vary far
/// less than rates from wall time (run with `RAYON_NUM_THREADS=1` so that no worker spins).
fn cpu_seconds() -> f64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `t` is a valid timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let path = std::path::PathBuf::from(std::env::args().nth(1).expect("usage: load_phases MODEL.gguf [REPS]"));
    let reps: usize = std::env::args().nth(2).and_then(|r| r.parse().ok()).unwrap_or(3);
    let started = Instant::now();
    let tokenizer = glint_engine::tokenizer::Tokenizer::load(&path).unwrap();
    let t_tok = started.elapsed();
    let started = Instant::now();
    let mut model = glint_engine::model::Model::load(&path, glint_engine::model::LoadOptions::default()).unwrap();
    let t_model = started.elapsed();
    println!(
        "load: tokenizer {:.3}s (vocab {}), model {:.3}s",
        t_tok.as_secs_f64(),
        tokenizer.vocab_size(),
        t_model.as_secs_f64()
    );
    if std::env::var_os("LOAD_ONLY").is_some() {
        return;
    }
    let ids = tokenizer.encode("def fibonacci(n):\n").unwrap();
    let mut out = ids.clone();
    let mut logits = model.forward(&ids, 0).unwrap();
    for _ in 0..24 {
        let next = glint_engine::sampler::argmax(&logits);
        out.push(next);
        logits = model.forward(&[next], out.len() - 1).unwrap();
    }
    println!("{:?}", tokenizer.decode(&out));

    let text = include_str!("../src/model.rs");
    let tokens = tokenizer.encode(text).unwrap();
    let chunk = glint_engine::LocalConfig::default().prefill_chunk;
    let n = 512;
    let (mut prefill, mut decode, mut prefill_cpu, mut decode_cpu) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..reps {
        model.cache_truncate(0);
        let (started, cpu) = (Instant::now(), cpu_seconds());
        for (i, piece) in tokens[..n].chunks(chunk).enumerate() {
            model.forward(piece, i * chunk).unwrap();
        }
        prefill.push(n as f64 / started.elapsed().as_secs_f64());
        prefill_cpu.push(n as f64 / (cpu_seconds() - cpu));
        let (started, cpu) = (Instant::now(), cpu_seconds());
        for i in 0..32 {
            model.forward(&[tokens[n + i]], n + i).unwrap();
        }
        decode.push(32.0 / started.elapsed().as_secs_f64());
        decode_cpu.push(32.0 / (cpu_seconds() - cpu));
    }
    println!(
        "prefill@512 {:.1} tok/s, decode {:.1} tok/s; per CPU second: prefill {:.1}, decode {:.1} (medians of {reps})",
        median(prefill),
        median(decode),
        median(prefill_cpu),
        median(decode_cpu)
    );
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    println!("{}", status.lines().find(|l| l.starts_with("VmHWM")).unwrap());
}
