//! Times loading a GGUF model in phases (header, tokenizer, weights) and prints peak memory.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::time::Instant;

fn main() {
    let path = std::path::PathBuf::from(std::env::args().nth(1).expect("usage: load_phases MODEL.gguf"));
    let started = Instant::now();
    let tokenizer = glint_engine::tokenizer::Tokenizer::load(&path).unwrap();
    let t_tok = started.elapsed();
    let started = Instant::now();
    let mut model = glint_engine::model::Model::load(&path, glint_engine::model::LoadOptions::default()).unwrap();
    let t_model = started.elapsed();
    println!(
        "tokenizer {:.3}s (vocab {}), model {:.3}s",
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
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    println!("{}", status.lines().find(|l| l.starts_with("VmHWM")).unwrap());
}
