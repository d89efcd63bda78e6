//! Test support: writes tiny random-weight GGUF models (llama architecture, byte-level BPE
//! vocabulary with merges, F32, Q8_0 and Q4_1 tensors) into temporary folders.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};

/// The shape and vocabulary of a tiny model.
#[derive(Debug, Clone)]
pub struct TinySpec {
    pub architecture: &'static str,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub n_ff: usize,
    pub n_layer: usize,
    pub context: usize,
    /// Printable byte-level tokens (GPT-2 spelling) after the control token `<|endoftext|>` (id 0).
    pub tokens: Vec<String>,
    pub merges: Vec<String>,
    pub seed: u64,
    /// Whether id 0 is the control token `<|endoftext|>` (the end-of-text token); otherwise it is
    /// the plain token `<pad>` and the model has no end-of-text token.
    pub eos: bool,
}

impl TinySpec {
    /// A llama model whose vocabulary covers every byte plus a few merges.
    pub fn llama() -> TinySpec {
        let mut tokens: Vec<String> = byte_chars().into_iter().map(String::from).collect();
        let merges = ["Ġ t", "h e", "Ġt he", "i n", "Ġ a", "e r", "o n", "Ġ =", "( )", "Ġ Ġ"];
        for merge in merges {
            tokens.push(merge.replace(' ', ""));
        }
        tokens.push("<|im_start|>".into());
        tokens.push("<|im_end|>".into());
        TinySpec {
            architecture: "llama",
            n_embd: 64,
            n_head: 4,
            n_kv_head: 2,
            n_ff: 128,
            n_layer: 2,
            context: 4096,
            tokens,
            merges: merges.iter().map(|m| m.to_string()).collect(),
            seed: 1,
            eos: true,
        }
    }

    /// Writes the model to `dir/name` and returns its path.
    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        let mut rng = Rng(self.seed);
        let vocab = self.tokens.len() + 1;
        let head_dim = self.n_embd / self.n_head;
        let kv_dim = self.n_kv_head * head_dim;
        let mut tensors: Vec<(String, QTensor)> = Vec::new();
        let matrix = |rng: &mut Rng, rows: usize, cols: usize, scale: f32, dtype: GgmlDType| {
            let data: Vec<f32> = (0..rows * cols).map(|_| rng.normal() * scale).collect();
            let t = Tensor::from_vec(data, (rows, cols), &Device::Cpu).unwrap();
            QTensor::quantize(&t, dtype).unwrap()
        };
        let vector = |rng: &mut Rng, len: usize| {
            let data: Vec<f32> = (0..len).map(|_| 1.0 + 0.1 * rng.normal()).collect();
            let t = Tensor::from_vec(data, len, &Device::Cpu).unwrap();
            QTensor::quantize(&t, GgmlDType::F32).unwrap()
        };
        let w = 1.0 / (self.n_embd as f32).sqrt();
        tensors.push(("token_embd.weight".into(), matrix(&mut rng, vocab, self.n_embd, 1.0, GgmlDType::Q8_0)));
        for i in 0..self.n_layer {
            let b = |s: &str| format!("blk.{i}.{s}");
            tensors.push((b("attn_norm.weight"), vector(&mut rng, self.n_embd)));
            tensors.push((b("attn_q.weight"), matrix(&mut rng, self.n_embd, self.n_embd, w, GgmlDType::Q8_0)));
            tensors.push((b("attn_k.weight"), matrix(&mut rng, kv_dim, self.n_embd, w, GgmlDType::Q4_1)));
            tensors.push((b("attn_v.weight"), matrix(&mut rng, kv_dim, self.n_embd, w, GgmlDType::Q8_0)));
            if self.architecture == "qwen2" {
                tensors.push((b("attn_q.bias"), vector(&mut rng, self.n_embd)));
                tensors.push((b("attn_k.bias"), vector(&mut rng, kv_dim)));
                tensors.push((b("attn_v.bias"), vector(&mut rng, kv_dim)));
            }
            tensors.push((b("attn_output.weight"), matrix(&mut rng, self.n_embd, self.n_embd, w, GgmlDType::F32)));
            tensors.push((b("ffn_norm.weight"), vector(&mut rng, self.n_embd)));
            tensors.push((b("ffn_gate.weight"), matrix(&mut rng, self.n_ff, self.n_embd, w, GgmlDType::Q4_1)));
            tensors.push((b("ffn_up.weight"), matrix(&mut rng, self.n_ff, self.n_embd, w, GgmlDType::Q4_1)));
            tensors.push((b("ffn_down.weight"), matrix(&mut rng, self.n_embd, self.n_ff, w, GgmlDType::Q8_0)));
        }
        tensors.push(("output_norm.weight".into(), vector(&mut rng, self.n_embd)));
        // An output projection whose row for the control token is zero, so that with random
        // weights the model practically never ends the text by itself.
        let first = if self.eos { "<|endoftext|>" } else { "<pad>" };
        let mut all_tokens = vec![first.to_string()];
        all_tokens.extend(self.tokens.iter().cloned());
        let is_control = |t: &str| t.starts_with("<|") && t.len() > 3;
        let mut output: Vec<f32> = (0..vocab * self.n_embd).map(|_| rng.normal() * 3.0 * w).collect();
        for (row, token) in output.chunks_exact_mut(self.n_embd).zip(&all_tokens) {
            if is_control(token) {
                row.iter_mut().for_each(|v| *v = 0.0);
            }
        }
        let output = Tensor::from_vec(output, (vocab, self.n_embd), &Device::Cpu).unwrap();
        tensors.push(("output.weight".into(), QTensor::quantize(&output, GgmlDType::Q8_0).unwrap()));

        let arch = self.architecture;
        let types: Vec<Value> = all_tokens.iter().map(|t| Value::I32(if is_control(t) { 3 } else { 1 })).collect();
        let mut metadata: Vec<(String, Value)> = vec![
            ("general.architecture".into(), Value::String(arch.into())),
            ("general.name".into(), Value::String("tiny-test".into())),
            (format!("{arch}.block_count"), Value::U32(self.n_layer as u32)),
            (format!("{arch}.embedding_length"), Value::U32(self.n_embd as u32)),
            (format!("{arch}.feed_forward_length"), Value::U32(self.n_ff as u32)),
            (format!("{arch}.attention.head_count"), Value::U32(self.n_head as u32)),
            (format!("{arch}.attention.head_count_kv"), Value::U32(self.n_kv_head as u32)),
            (format!("{arch}.context_length"), Value::U32(self.context as u32)),
            (format!("{arch}.rope.freq_base"), Value::F32(10000.0)),
            (format!("{arch}.attention.layer_norm_rms_epsilon"), Value::F32(1e-5)),
            ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
            ("tokenizer.ggml.pre".into(), Value::String("smollm".into())),
            (
                "tokenizer.ggml.tokens".into(),
                Value::Array(all_tokens.iter().map(|t| Value::String(t.clone())).collect()),
            ),
            ("tokenizer.ggml.token_type".into(), Value::Array(types)),
            (
                "tokenizer.ggml.merges".into(),
                Value::Array(self.merges.iter().map(|m| Value::String(m.clone())).collect()),
            ),
        ];
        if self.eos {
            metadata.push(("tokenizer.ggml.eos_token_id".into(), Value::U32(0)));
            metadata.push(("tokenizer.ggml.bos_token_id".into(), Value::U32(0)));
        }
        let metadata_refs: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let mut file = std::fs::File::create(&path).unwrap();
        candle_core::quantized::gguf_file::write(&mut file, &metadata_refs, &tensor_refs).unwrap();
        path
    }
}

/// GPT-2's printable spelling of each byte, in byte order.
pub fn byte_chars() -> Vec<char> {
    let mut printable: Vec<u32> = (u32::from(b'!')..=u32::from(b'~')).collect();
    printable.extend(0xA1..=0xAC);
    printable.extend(0xAE..=0xFF);
    let mut extra = 0;
    (0u32..256)
        .map(|b| {
            if printable.contains(&b) {
                char::from_u32(b).unwrap()
            } else {
                extra += 1;
                char::from_u32(255 + extra).unwrap()
            }
        })
        .collect()
}

/// A fresh temporary folder, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("glint-test-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 + 0.5) / (1u64 << 24) as f32
    }

    /// A standard normal sample (Box-Muller).
    fn normal(&mut self) -> f32 {
        let (u, v) = (self.next(), self.next());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f32::consts::PI * v).cos()
    }
}

/// The real default model, when it has been fetched.
pub fn real_model() -> Option<PathBuf> {
    let path = glint_engine::fetch::default_model_path();
    path.is_file().then_some(path)
}
