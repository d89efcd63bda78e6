//! The transformer for GGUF `llama` and `qwen2` models, in candle's shape (`from_gguf`,
//! `forward(&mut self, tokens, index_pos)`) with an explicit, truncatable KV cache.
//!
//! Matrix products run on Glint's own kernels (`kernels::matmul` over weights repacked at load);
//! only a weight format without a packed kernel stays a candle tensor on candle's kernels.
//! Everything between them (norms, rotary embeddings, grouped-query attention over the cache) works
//! on plain `f32` slices so that the cache can grow in place, roll back to any prefix by resetting
//! its length, and serve grouped heads without copies. Each row and each query is computed the
//! same way whatever the batch it is in, so a prompt gives the same logits prefilled at once, in
//! chunks or after a cached prefix. The token loop, sampling and cancellation live in the runner
//! (`local/runner.rs`), not here.

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};

use crate::EngineError;
use crate::gguf::GgufFile;
use crate::kernels::{self, PackedMatrix, Q8Rows, Source, SyncPtr};
use crate::weight_cache::{self, WeightCache};

/// The architectures Glint runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    Llama,
    Qwen2,
}

impl Architecture {
    fn parse(name: &str) -> Option<Architecture> {
        match name {
            "llama" => Some(Architecture::Llama),
            "qwen2" => Some(Architecture::Qwen2),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Architecture::Llama => "llama",
            Architecture::Qwen2 => "qwen2",
        }
    }
}

/// Hyper-parameters read from the GGUF metadata.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub architecture: Architecture,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    pub n_embd: usize,
    pub n_ff: usize,
    pub vocab_size: usize,
    /// The context the model was trained with.
    pub train_context: usize,
    pub rope_base: f32,
    pub rope_dim: usize,
    pub rms_eps: f32,
    /// NEOX rotary layout (pairs `i` and `i + d/2`, qwen2) instead of interleaved pairs (llama).
    pub rope_neox: bool,
}

/// How weights are loaded.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Positions the cache and rotary tables are sized for; `None` means the training context,
    /// capped at 16,384.
    pub context_length: Option<usize>,
    /// Convert quantizations without a fast CPU kernel (Q4_1, Q5_0, Q5_1, F16, ...) to Q8_0.
    pub convert_slow_quants: bool,
    /// A folder for packed weights (see `weight_cache`): loads after the first map them instead
    /// of repacking the model. `None` repacks on every load.
    pub weight_cache: Option<std::path::PathBuf>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { context_length: None, convert_slow_quants: true, weight_cache: None }
    }
}

/// The key/value state of one sequence: for each layer, `len` positions of `kv_dim` values
/// (position-major) and keys (transposed in tiles of `KEY_TILE` positions). Truncating resets the length; the memory stays allocated for reuse.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    layers: Vec<LayerCache>,
    kv_dim: usize,
    len: usize,
}

#[derive(Debug, Clone, Default)]
struct LayerCache {
    k: Vec<f32>,
    v: Vec<f32>,
}

impl KvCache {
    /// An empty cache for `config`, with room for `reserve` positions before it grows.
    pub fn new(config: &ModelConfig, reserve: usize) -> KvCache {
        let kv_dim = config.n_kv_head * config.head_dim;
        let layers = (0..config.n_layer)
            .map(|_| LayerCache { k: Vec::with_capacity(reserve * kv_dim), v: Vec::with_capacity(reserve * kv_dim) })
            .collect();
        KvCache { layers, kv_dim, len: 0 }
    }

    /// Positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets every position from `len` on.
    pub fn truncate(&mut self, len: usize) {
        if len >= self.len {
            return;
        }
        self.len = len;
        for layer in &mut self.layers {
            layer.k.truncate(len.div_ceil(KEY_TILE) * KEY_TILE * self.kv_dim);
            layer.v.truncate(len * self.kv_dim);
        }
    }

    /// Bytes held, allocated capacity included.
    pub fn memory_bytes(&self) -> usize {
        self.layers.iter().map(|l| (l.k.capacity() + l.v.capacity()) * std::mem::size_of::<f32>()).sum()
    }
}

/// A weight matrix `(out, in)`: in our Q8 layout, or one of candle's quantized tensors for
/// formats with a fast candle kernel (Q4_0, K-quants).
enum Weight {
    Packed(Arc<PackedMatrix>),
    Candle(QMatMul),
}

/// A weight matrix with an optional bias.
struct Linear {
    weight: Weight,
    bias: Option<Vec<f32>>,
    out_dim: usize,
}

impl Linear {
    /// `x` holds `m` rows of `in` values; returns `m` rows of `out` values.
    fn forward(&self, x: &[f32], m: usize) -> Result<Vec<f32>, EngineError> {
        let mut y = match &self.weight {
            Weight::Packed(w) => kernels::matmul(&Q8Rows::quantize(x, m), w),
            Weight::Candle(w) => {
                let k = x.len() / m.max(1);
                let input = Tensor::from_slice(x, (m, k), &Device::Cpu)?;
                w.forward(&input)?.flatten_all()?.to_vec1::<f32>()?
            }
        };
        if let Some(bias) = &self.bias {
            for row in y.chunks_exact_mut(self.out_dim) {
                for (value, b) in row.iter_mut().zip(bias) {
                    *value += b;
                }
            }
        }
        Ok(y)
    }
}

/// Projections that read the same input (q/k/v, gate/up). Q8 weights are stacked into one matrix
/// so the input is quantized once and the thread pool is entered once.
struct Projections {
    parts: Vec<Linear>,
}

impl Projections {
    /// Loads the projections `parts` (`(name, rows)`, each `rows x cols`) of one layer. Where all
    /// of them pack to the same format they are packed as one stacked matrix, straight from the
    /// file; otherwise each is loaded on its own (see `load_weight`).
    fn load(
        gguf: &GgufFile,
        packer: &mut Packer,
        parts: &[(String, usize)],
        cols: usize,
        convert: bool,
        slow: &mut Vec<String>,
    ) -> Result<Projections, EngineError> {
        let mut sources = Vec::with_capacity(parts.len());
        let mut biases = Vec::with_capacity(parts.len());
        for (name, rows) in parts {
            let weight = format!("{name}.weight");
            sources.push(packable(gguf, &weight, *rows, cols, convert)?);
            let bias = format!("{name}.bias");
            biases.push(if gguf.has_tensor(&bias) { Some(load_vector(gguf, &bias, *rows)?) } else { None });
        }
        let sources: Option<Vec<Source<'_>>> = sources.into_iter().collect();
        let out_dim = parts.iter().map(|(_, rows)| rows).sum();
        let stacked_name = || parts.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>().join("+");
        if parts.len() > 1
            && let Some(stacked) = sources.and_then(|sources| packer.pack(&stacked_name(), &sources, out_dim, cols))
        {
            let bias = biases.iter().any(Option::is_some).then(|| {
                biases
                    .iter()
                    .zip(parts)
                    .flat_map(|(b, (_, rows))| b.clone().unwrap_or_else(|| vec![0.0; *rows]))
                    .collect()
            });
            return Ok(Projections { parts: vec![Linear { weight: Weight::Packed(stacked), bias, out_dim }] });
        }
        let parts = parts
            .iter()
            .zip(biases)
            .map(|((name, rows), bias)| {
                let weight = load_weight(gguf, packer, &format!("{name}.weight"), *rows, cols, convert, slow)?;
                Ok(Linear { weight, bias, out_dim: *rows })
            })
            .collect::<Result<_, EngineError>>()?;
        Ok(Projections { parts })
    }

    /// The one projection of a single-part load.
    fn single(mut self) -> Result<Linear, EngineError> {
        match self.parts.len() {
            1 => Ok(self.parts.remove(0)),
            n => Err(EngineError::Model(format!("expected one projection, loaded {n}"))),
        }
    }

    /// The outputs of every projection, each `m` rows of its own width, in order.
    fn forward(&self, x: &[f32], m: usize, widths: &[usize]) -> Result<Vec<Vec<f32>>, EngineError> {
        if self.parts.len() == widths.len() {
            return self.parts.iter().map(|p| p.forward(x, m)).collect();
        }
        let fused = self.parts.first().ok_or_else(|| EngineError::Model("empty projection".into()))?;
        let y = fused.forward(x, m)?;
        let mut outputs: Vec<Vec<f32>> = widths.iter().map(|w| Vec::with_capacity(w * m)).collect();
        for row in y.chunks_exact(fused.out_dim) {
            let mut offset = 0;
            for (out, &width) in outputs.iter_mut().zip(widths) {
                out.extend_from_slice(&row[offset..offset + width]);
                offset += width;
            }
        }
        Ok(outputs)
    }
}

struct Layer {
    attn_norm: Vec<f32>,
    qkv: Projections,
    wo: Linear,
    ffn_norm: Vec<f32>,
    gate_up: Projections,
    w_down: Linear,
}

/// The token embedding table, looked up row by row without a float copy of the whole table.
enum Embeddings {
    Packed(Arc<PackedMatrix>),
    Candle(Arc<QTensor>),
}

/// A loaded model with its current KV cache.
pub struct Model {
    config: ModelConfig,
    embeddings: Embeddings,
    layers: Vec<Layer>,
    output_norm: Vec<f32>,
    output: Linear,
    /// `cos` and `sin` for every position and rotary pair, position-major.
    rope_cos: Vec<f32>,
    rope_sin: Vec<f32>,
    context_length: usize,
    cache: KvCache,
}

impl Model {
    /// Loads a GGUF model file.
    pub fn load(path: &std::path::Path, options: LoadOptions) -> Result<Model, EngineError> {
        let started = std::time::Instant::now();
        let gguf = GgufFile::open(path)?;
        let header = started.elapsed();
        let model = Model::from_gguf(&gguf, options)?;
        tracing::debug!(
            header_ms = header.as_millis(),
            total_ms = started.elapsed().as_millis(),
            "loaded {}",
            path.display()
        );
        Ok(model)
    }

    /// Loads the weights of a `llama` or `qwen2` GGUF.
    pub(crate) fn from_gguf(gguf: &GgufFile, options: LoadOptions) -> Result<Model, EngineError> {
        let arch_name = gguf.string("general.architecture")?;
        let architecture = Architecture::parse(&arch_name).ok_or_else(|| EngineError::UnsupportedArchitecture {
            path: gguf.path().to_path_buf(),
            architecture: arch_name.clone(),
        })?;
        let config = read_config(gguf, architecture)?;
        let context_length = options.context_length.unwrap_or(config.train_context.min(16_384)).max(16);
        let convert = options.convert_slow_quants;
        let mut slow = Vec::new();
        let slot = options
            .weight_cache
            .as_deref()
            .and_then(|dir| weight_cache::CacheSlot::new(dir, gguf.path(), &format!("convert={convert}")));
        let packer = &mut Packer::new(slot.as_ref().and_then(WeightCache::open));

        let embeddings = match packer.load(gguf, "token_embd.weight", config.vocab_size, config.n_embd, convert)? {
            Some(table) => Embeddings::Packed(table),
            None => {
                let table = gguf.tensor("token_embd.weight")?;
                slow.push(format!("token_embd.weight ({:?})", table.dtype()));
                Embeddings::Candle(Arc::new(table))
            }
        };
        gguf.release("token_embd.");
        let q_dim = config.n_head * config.head_dim;
        let kv_dim = config.n_kv_head * config.head_dim;
        let (n_embd, n_ff) = (config.n_embd, config.n_ff);
        let mut layers = Vec::with_capacity(config.n_layer);
        for i in 0..config.n_layer {
            let name = |part: &str| format!("blk.{i}.{part}");
            let attn_norm = load_vector(gguf, &name("attn_norm.weight"), n_embd)?;
            let ffn_norm = load_vector(gguf, &name("ffn_norm.weight"), n_embd)?;
            let qkv_parts = [(name("attn_q"), q_dim), (name("attn_k"), kv_dim), (name("attn_v"), kv_dim)];
            let qkv = Projections::load(gguf, packer, &qkv_parts, n_embd, convert, &mut slow)?;
            let wo = Projections::load(gguf, packer, &[(name("attn_output"), n_embd)], q_dim, convert, &mut slow)?
                .single()?;
            let gate_up_parts = [(name("ffn_gate"), n_ff), (name("ffn_up"), n_ff)];
            let gate_up = Projections::load(gguf, packer, &gate_up_parts, n_embd, convert, &mut slow)?;
            let w_down =
                Projections::load(gguf, packer, &[(name("ffn_down"), n_embd)], n_ff, convert, &mut slow)?.single()?;
            layers.push(Layer { attn_norm, qkv, wo, ffn_norm, gate_up, w_down });
            gguf.release(&format!("blk.{i}."));
        }
        let output_norm = load_vector(gguf, "output_norm.weight", n_embd)?;
        let output = if gguf.has_tensor("output.weight") {
            let weight = load_weight(gguf, packer, "output.weight", config.vocab_size, n_embd, convert, &mut slow)?;
            gguf.release("output.");
            Linear { weight, bias: None, out_dim: config.vocab_size }
        } else {
            // Tied embeddings: the output projection shares the embedding table.
            let weight = match &embeddings {
                Embeddings::Packed(w) => Weight::Packed(Arc::clone(w)),
                Embeddings::Candle(t) => Weight::Candle(QMatMul::from_arc(Arc::clone(t))?),
            };
            Linear { weight, bias: None, out_dim: config.vocab_size }
        };
        if !slow.is_empty() {
            tracing::info!(
                "{} weight tensors have no fast kernel here and run on candle's generic kernels (slower): {}",
                slow.len(),
                slow.join(", ")
            );
        }
        if let Some(slot) = slot {
            packer.write_cache_if_missed(slot);
        }
        let (rope_cos, rope_sin) = rope_tables(&config, context_length);
        let cache = KvCache::new(&config, context_length.min(512));
        Ok(Model { config, embeddings, layers, output_norm, output, rope_cos, rope_sin, context_length, cache })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The most positions a sequence may hold.
    pub fn context_length(&self) -> usize {
        self.context_length
    }

    /// The current cache.
    pub fn cache(&self) -> &KvCache {
        &self.cache
    }

    /// Swaps in another sequence's cache and returns the current one.
    pub fn replace_cache(&mut self, cache: KvCache) -> KvCache {
        std::mem::replace(&mut self.cache, cache)
    }

    /// Forgets every cached position from `len` on.
    pub fn cache_truncate(&mut self, len: usize) {
        self.cache.truncate(len);
    }

    /// Copies the cached keys and values of positions `from..from + len` out of the cache, keys
    /// rotated as if they sat `shift` positions later (RoPE composes: rotating by the old position
    /// and then by `shift` is rotating by the new one). Values carry no position. The copy is
    /// approximate as a prefill: each position still reflects the context it was computed in.
    pub fn cache_extract_shifted(&self, from: usize, len: usize, shift: isize) -> Option<KvChunk> {
        let cfg = &self.config;
        let kv_dim = self.cache.kv_dim;
        if len == 0 || from.checked_add(len)? > self.cache.len || self.cache.layers.len() != self.layers.len() {
            return None;
        }
        let pairs = cfg.rope_dim / 2;
        let (cos, sin): (Vec<f32>, Vec<f32>) = (0..pairs)
            .map(|i| {
                let inv_freq = 1.0 / f64::from(cfg.rope_base).powf(2.0 * i as f64 / cfg.rope_dim as f64);
                let angle = shift as f64 * inv_freq;
                (angle.cos() as f32, angle.sin() as f32)
            })
            .unzip();
        let tile_size = kv_dim * KEY_TILE;
        let layers = self
            .cache
            .layers
            .iter()
            .map(|layer| {
                let mut k = Vec::with_capacity(len * kv_dim);
                for t in from..from + len {
                    let tile = &layer.k[(t / KEY_TILE) * tile_size..(t / KEY_TILE + 1) * tile_size];
                    k.extend((0..kv_dim).map(|j| tile[j * KEY_TILE + t % KEY_TILE]));
                }
                rotate(&mut k, cfg, &cos, &sin);
                let v = layer.v[from * kv_dim..(from + len) * kv_dim].to_vec();
                (k, v)
            })
            .collect();
        Some(KvChunk { layers, len })
    }

    /// Appends a chunk from [`Model::cache_extract_shifted`] at the end of the cache.
    pub fn cache_append(&mut self, chunk: &KvChunk) -> Result<(), EngineError> {
        let at = self.cache.len;
        if at + chunk.len > self.context_length || chunk.layers.len() != self.cache.layers.len() {
            return Err(EngineError::Model("a cached chunk does not fit the cache".into()));
        }
        let cfg = self.config.clone();
        for (layer, (k, v)) in self.cache.layers.iter_mut().zip(&chunk.layers) {
            store_keys(&mut layer.k, k, &cfg, at);
            layer.v.extend_from_slice(v);
        }
        self.cache.len = at + chunk.len;
        Ok(())
    }

    /// A fresh, empty cache for this model.
    pub fn new_cache(&self) -> KvCache {
        KvCache::new(&self.config, self.context_length.min(512))
    }

    /// Runs `tokens` at positions `index_pos..`, after forgetting any cached position from
    /// `index_pos` on, and returns the logits of the last token.
    pub fn forward(&mut self, tokens: &[u32], index_pos: usize) -> Result<Vec<f32>, EngineError> {
        if index_pos > self.cache.len {
            return Err(EngineError::Model(format!(
                "forward at position {index_pos} but the cache holds only {} positions",
                self.cache.len
            )));
        }
        if tokens.is_empty() {
            return Err(EngineError::Model("forward with no tokens".into()));
        }
        let end = index_pos + tokens.len();
        if end > self.context_length {
            return Err(EngineError::ContextOverflow { prompt: end, context: self.context_length });
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= self.config.vocab_size) {
            return Err(EngineError::Model(format!("token id {bad} is outside the vocabulary")));
        }
        self.cache.truncate(index_pos);
        if self.cache.layers.len() != self.layers.len() {
            self.cache = self.new_cache();
        }
        let m = tokens.len();
        let cfg = &self.config;
        let n_embd = cfg.n_embd;
        let mut x = self.embed(tokens)?;
        let q_dim = cfg.n_head * cfg.head_dim;
        let kv_dim = cfg.n_kv_head * cfg.head_dim;

        let mut normed = vec![0f32; m * n_embd];
        for (layer, cache) in self.layers.iter().zip(self.cache.layers.iter_mut()) {
            rms_norm(&x, &layer.attn_norm, cfg.rms_eps, &mut normed);
            let mut qkv = layer.qkv.forward(&normed, m, &[q_dim, kv_dim, kv_dim])?.into_iter();
            let (Some(mut q), Some(mut k), Some(v)) = (qkv.next(), qkv.next(), qkv.next()) else {
                return Err(EngineError::Model("attention projections are missing".into()));
            };
            apply_rope(&mut q, cfg.n_head, cfg, &self.rope_cos, &self.rope_sin, index_pos);
            apply_rope(&mut k, cfg.n_kv_head, cfg, &self.rope_cos, &self.rope_sin, index_pos);
            store_keys(&mut cache.k, &k, cfg, index_pos);
            cache.v.extend_from_slice(&v);
            let attn = attention(&q, &cache.k, &cache.v, cfg, index_pos, m);
            let o = layer.wo.forward(&attn, m)?;
            add_assign(&mut x, &o);

            rms_norm(&x, &layer.ffn_norm, cfg.rms_eps, &mut normed);
            let mut gate_up = layer.gate_up.forward(&normed, m, &[cfg.n_ff, cfg.n_ff])?.into_iter();
            let (Some(mut gate), Some(up)) = (gate_up.next(), gate_up.next()) else {
                return Err(EngineError::Model("feed-forward projections are missing".into()));
            };
            for (g, u) in gate.iter_mut().zip(&up) {
                *g = silu(*g) * u;
            }
            let down = layer.w_down.forward(&gate, m)?;
            add_assign(&mut x, &down);
        }
        self.cache.len = end;

        let last = &x[(m - 1) * n_embd..];
        let mut h = vec![0f32; n_embd];
        rms_norm(last, &self.output_norm, cfg.rms_eps, &mut h);
        self.output.forward(&h, 1)
    }

    fn embed(&self, tokens: &[u32]) -> Result<Vec<f32>, EngineError> {
        let n_embd = self.config.n_embd;
        match &self.embeddings {
            Embeddings::Packed(table) => {
                let mut x = vec![0f32; tokens.len() * n_embd];
                for (row, &t) in x.chunks_exact_mut(n_embd).zip(tokens) {
                    table.row_into(t as usize, row);
                }
                Ok(x)
            }
            Embeddings::Candle(table) => {
                let ids = Tensor::from_slice(tokens, tokens.len(), &Device::Cpu)?;
                Ok(table.embedding(&ids)?.flatten_all()?.to_vec1::<f32>()?)
            }
        }
    }
}

fn read_config(gguf: &GgufFile, architecture: Architecture) -> Result<ModelConfig, EngineError> {
    let arch = architecture.name();
    let key = |k: &str| format!("{arch}.{k}");
    let n_head = gguf.uint(&key("attention.head_count"))?;
    let n_kv_head = gguf.opt_uint(&key("attention.head_count_kv")).unwrap_or(n_head);
    let n_embd = gguf.uint(&key("embedding_length"))?;
    let n_layer = gguf.uint(&key("block_count"))?;
    let n_ff = gguf.uint(&key("feed_forward_length"))?;
    if n_head == 0 || n_kv_head == 0 || n_head % n_kv_head != 0 || n_embd % n_head != 0 {
        return Err(gguf.invalid(format!(
            "inconsistent attention shape: {n_head} heads, {n_kv_head} key/value heads, {n_embd} embedding"
        )));
    }
    let head_dim = gguf.opt_uint(&key("attention.key_length")).unwrap_or(n_embd / n_head);
    let rope_dim = gguf.opt_uint(&key("rope.dimension_count")).unwrap_or(head_dim).min(head_dim);
    let vocab_size = match gguf.tensor_dims("token_embd.weight") {
        Some(dims) if dims.len() == 2 && dims[1] == n_embd => dims[0],
        Some(dims) => {
            return Err(
                gguf.invalid(format!("tensor `token_embd.weight` has shape {dims:?}, expected [vocabulary, {n_embd}]"))
            );
        }
        None => return Err(gguf.invalid("tensor `token_embd.weight` is missing")),
    };
    // Everything sized by the metadata (layers, caches, rotary tables) is allocated later; check
    // the metadata against the tensor table first, with checked arithmetic, so that a hostile
    // header is an error rather than an allocation failure.
    let q_dim = n_head.checked_mul(head_dim);
    let kv_dim = n_kv_head.checked_mul(head_dim);
    let expect = |name: String, want: Option<[usize; 2]>| -> Result<(), EngineError> {
        match (gguf.tensor_dims(&name), want) {
            (Some(dims), Some(want)) if dims == want => Ok(()),
            (Some(dims), _) => Err(gguf.invalid(format!(
                "tensor `{name}` has shape {dims:?}, which does not match the metadata ({n_head} heads of {head_dim}, {n_kv_head} key/value heads, {n_embd} embedding, {n_ff} feed-forward)"
            ))),
            (None, _) => Err(gguf.invalid(format!("tensor `{name}` is missing"))),
        }
    };
    if n_layer == 0 || n_layer > gguf.tensor_count() {
        return Err(gguf
            .invalid(format!("`{arch}.block_count` is {n_layer}, but the file has {} tensors", gguf.tensor_count())));
    }
    if head_dim == 0 || n_ff == 0 {
        return Err(gguf.invalid(format!("empty attention heads ({head_dim}) or feed-forward ({n_ff})")));
    }
    for layer in [0, n_layer - 1] {
        expect(format!("blk.{layer}.attn_q.weight"), q_dim.map(|q| [q, n_embd]))?;
        expect(format!("blk.{layer}.attn_k.weight"), kv_dim.map(|kv| [kv, n_embd]))?;
        expect(format!("blk.{layer}.ffn_gate.weight"), Some([n_ff, n_embd]))?;
    }
    Ok(ModelConfig {
        architecture,
        n_layer,
        n_head,
        n_kv_head,
        head_dim,
        n_embd,
        n_ff,
        vocab_size,
        train_context: gguf.opt_uint(&key("context_length")).unwrap_or(4096),
        rope_base: gguf.opt_f32(&key("rope.freq_base")).unwrap_or(10_000.0),
        rope_dim: rope_dim & !1,
        rms_eps: gguf.opt_f32(&key("attention.layer_norm_rms_epsilon")).unwrap_or(1e-6),
        rope_neox: architecture == Architecture::Qwen2,
    })
}

/// Loads a weight matrix of `rows x cols` into our packed formats straight from the file's
/// blocks (see `kernels::convert`): exactly for Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and (up to f16
/// rounding of the sub-block scales) Q4_K and Q5_K; requantized to 8 bits block by block for Q6_K
/// and float tensors when `convert` is set (always for F32). Anything else stays a candle tensor
/// on candle's generic kernels and is named in `slow`, which the loader logs once.
fn load_weight(
    gguf: &GgufFile,
    packer: &mut Packer,
    name: &str,
    rows: usize,
    cols: usize,
    convert: bool,
    slow: &mut Vec<String>,
) -> Result<Weight, EngineError> {
    match packer.load(gguf, name, rows, cols, convert)? {
        Some(packed) => Ok(Weight::Packed(packed)),
        None => {
            let tensor = gguf.tensor(name)?;
            slow.push(format!("{name} ({:?})", tensor.dtype()));
            Ok(Weight::Candle(QMatMul::from_qtensor(tensor)?))
        }
    }
}

/// Packs weights, or maps them from the packed weights cache when it holds them, and keeps every
/// matrix by name to write that cache after a load that missed it.
struct Packer {
    cache: Option<WeightCache>,
    matrices: Vec<(String, Arc<PackedMatrix>)>,
    missed: bool,
}

impl Packer {
    fn new(cache: Option<WeightCache>) -> Packer {
        Packer { cache, matrices: Vec::new(), missed: false }
    }

    /// The packed form of a weight, or `None` where it has none (see `load_weight`).
    fn load(
        &mut self,
        gguf: &GgufFile,
        name: &str,
        rows: usize,
        cols: usize,
        convert: bool,
    ) -> Result<Option<Arc<PackedMatrix>>, EngineError> {
        Ok(packable(gguf, name, rows, cols, convert)?.and_then(|source| self.pack(name, &[source], rows, cols)))
    }

    /// `sources` stacked and packed (see `PackedMatrix::pack`) under `name`, or the cache's copy.
    fn pack(&mut self, name: &str, sources: &[Source<'_>], rows: usize, cols: usize) -> Option<Arc<PackedMatrix>> {
        let matrix = match self.cache.as_ref().and_then(|cache| cache.matrix(name, rows, cols)) {
            Some(cached) => cached,
            None => {
                let packed = PackedMatrix::pack(sources, cols)?;
                self.missed = true;
                packed
            }
        };
        let matrix = Arc::new(matrix);
        self.matrices.push((name.to_owned(), Arc::clone(&matrix)));
        Some(matrix)
    }

    /// After a load that packed anything itself, writes the cache on a thread of its own, so the
    /// next load maps what this one computed.
    fn write_cache_if_missed(&mut self, slot: weight_cache::CacheSlot) {
        if !self.missed || self.matrices.is_empty() {
            return;
        }
        let matrices = std::mem::take(&mut self.matrices);
        let spawned = std::thread::Builder::new().name("glint-weight-cache".into()).spawn(move || {
            let started = std::time::Instant::now();
            match weight_cache::write(&slot, &matrices) {
                Ok(()) => tracing::info!(
                    path = %slot.path().display(),
                    ms = started.elapsed().as_millis() as u64,
                    "packed weights cached for the next load"
                ),
                Err(e) => tracing::warn!(path = %slot.path().display(), "could not cache the packed weights: {e}"),
            }
        });
        if let Err(e) = spawned {
            tracing::warn!("could not start writing the packed weights cache: {e}");
        }
    }
}

/// A weight's bytes to pack, after checking its shape; `None` where its format is one to leave
/// on candle's kernels (see `load_weight`).
fn packable<'a>(
    gguf: &'a GgufFile,
    name: &str,
    rows: usize,
    cols: usize,
    convert: bool,
) -> Result<Option<Source<'a>>, EngineError> {
    let (dtype, dims) = gguf.tensor_info(name)?;
    if dims != [rows, cols] {
        return Err(gguf.invalid(format!("tensor `{name}` has shape {dims:?}, expected [{rows}, {cols}]")));
    }
    let requantized = matches!(dtype, GgmlDType::Q6K | GgmlDType::F16 | GgmlDType::BF16);
    if requantized && !convert || convert_to_q8_in_benchmarks(dtype) {
        return Ok(None);
    }
    Ok(Some(Source { dtype, bytes: gguf.tensor_bytes(name)?, rows }))
}

/// Benchmarks may compare a format's packed kernel with candle's (`GLINT_CANDLE_KERNELS=Q4K,Q6K`,
/// names as candle prints them).
fn convert_to_q8_in_benchmarks(dtype: GgmlDType) -> bool {
    std::env::var("GLINT_CANDLE_KERNELS").is_ok_and(|list| list.split(',').any(|d| d == format!("{dtype:?}")))
}

fn load_vector(gguf: &GgufFile, name: &str, len: usize) -> Result<Vec<f32>, EngineError> {
    let values = gguf.tensor_f32(name)?;
    if values.len() != len {
        return Err(gguf.invalid(format!("tensor `{name}` has {} values, expected {len}", values.len())));
    }
    Ok(values)
}

fn rope_tables(config: &ModelConfig, positions: usize) -> (Vec<f32>, Vec<f32>) {
    let pairs = config.rope_dim / 2;
    let mut cos = Vec::with_capacity(positions * pairs);
    let mut sin = Vec::with_capacity(positions * pairs);
    let inv_freq: Vec<f64> =
        (0..pairs).map(|i| 1.0 / f64::from(config.rope_base).powf(2.0 * i as f64 / config.rope_dim as f64)).collect();
    for pos in 0..positions {
        for &f in &inv_freq {
            let angle = pos as f64 * f;
            cos.push(angle.cos() as f32);
            sin.push(angle.sin() as f32);
        }
    }
    (cos, sin)
}

/// Cached keys and values of consecutive positions, taken out of a cache to be put back at
/// another position (see [`Model::cache_extract_shifted`]).
#[derive(Debug, Clone)]
pub struct KvChunk {
    /// Per layer: keys and values, position-major.
    layers: Vec<(Vec<f32>, Vec<f32>)>,
    len: usize,
}

impl KvChunk {
    /// Positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Rotates every head in `x` by one angle per rotary pair (`cos`, `sin`), in the model's pair
/// layout: the rotation `apply_rope` applies for one position.
fn rotate(x: &mut [f32], cfg: &ModelConfig, cos: &[f32], sin: &[f32]) {
    let pairs = cos.len();
    for head in x.chunks_exact_mut(cfg.head_dim) {
        if cfg.rope_neox {
            let (lo, hi) = head.split_at_mut(pairs);
            for j in 0..pairs {
                let (a, b) = (lo[j], hi[j]);
                lo[j] = a * cos[j] - b * sin[j];
                hi[j] = a * sin[j] + b * cos[j];
            }
        } else {
            for j in 0..pairs {
                let (a, b) = (head[2 * j], head[2 * j + 1]);
                head[2 * j] = a * cos[j] - b * sin[j];
                head[2 * j + 1] = a * sin[j] + b * cos[j];
            }
        }
    }
}

/// Rotates each head of each row of `x` (`m` rows of `n_heads * head_dim`) by its position.
fn apply_rope(x: &mut [f32], n_heads: usize, cfg: &ModelConfig, cos: &[f32], sin: &[f32], index_pos: usize) {
    let hd = cfg.head_dim;
    let pairs = cfg.rope_dim / 2;
    for (i, row) in x.chunks_exact_mut(n_heads * hd).enumerate() {
        let base = (index_pos + i) * pairs;
        rotate(row, cfg, &cos[base..base + pairs], &sin[base..base + pairs]);
    }
}

fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let d = weight.len();
    for (row, dst) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let mean_sq = row.iter().map(|v| v * v).sum::<f32>() / d as f32;
        let scale = 1.0 / (mean_sq + eps).sqrt();
        for ((o, v), w) in dst.iter_mut().zip(row).zip(weight) {
            *o = v * scale * w;
        }
    }
}

fn add_assign(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// `a * b + c`, fused where the build targets FMA (x86-64-v3, as the project's cargo config
/// sets); elsewhere `mul_add` would be a slow library call.
#[inline(always)]
fn fmadd(a: f32, b: f32, c: f32) -> f32 {
    if cfg!(target_feature = "fma") { a.mul_add(b, c) } else { a * b + c }
}

/// `e^x` for `x <= 0` (softmax after subtracting the maximum), as a polynomial the compiler can
/// vectorize: relative error below 1e-5 over the range softmax uses, and exactly 1 at 0.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    let t = x.max(-87.0) * std::f32::consts::LOG2_E;
    let n = t.floor();
    let f = t - n;
    // 2^f on [0, 1): Taylor series of e^(f ln 2) to degree 7.
    let p = 1.0
        + f * (std::f32::consts::LN_2
            + f * (0.240_226_5
                + f * (0.055_504_11
                    + f * (0.009_618_129 + f * (0.001_333_355_8 + f * (1.540_353e-4 + f * 1.525_273e-5))))));
    // 2^n from the bits of n + 127 + 2^23, whose low mantissa bits are n + 127 (1..=127 here):
    // unlike a float-to-integer cast, this stays in vector registers.
    p * f32::from_bits(((n + (127.0 + 8_388_608.0)).to_bits() & 0xff) << 23)
}

/// Positions per key tile: keys are stored transposed in tiles of this many positions, so that
/// one query's scores against a tile come out of vector multiply-adds with no horizontal sums.
const KEY_TILE: usize = 8;

/// Queries of one head processed together, sharing each key tile they read.
const QUERY_BLOCK: usize = 4;

/// Stores the keys of `m` new positions (`index_pos..`) into the tiled key cache
/// (`[tile][kv head][dim][lane]`).
fn store_keys(k_tiles: &mut Vec<f32>, k: &[f32], cfg: &ModelConfig, index_pos: usize) {
    let hd = cfg.head_dim;
    let kv_dim = cfg.n_kv_head * hd;
    let tile_size = kv_dim * KEY_TILE;
    for (i, row) in k.chunks_exact(kv_dim).enumerate() {
        let t = index_pos + i;
        let (tile, lane) = (t / KEY_TILE, t % KEY_TILE);
        if k_tiles.len() < (tile + 1) * tile_size {
            k_tiles.resize((tile + 1) * tile_size, 0.0);
        }
        let dst = &mut k_tiles[tile * tile_size..(tile + 1) * tile_size];
        for (j, &value) in row.iter().enumerate() {
            dst[j * KEY_TILE + lane] = value;
        }
    }
}

/// Causal grouped-query attention of `m` new queries (positions `index_pos..`) over the cache,
/// which already holds the new keys and values. Query heads read their group's key/value head in
/// place. Work is split over (head, block of queries) on candle's thread pool.
fn attention(q: &[f32], k_tiles: &[f32], v_cache: &[f32], cfg: &ModelConfig, index_pos: usize, m: usize) -> Vec<f32> {
    let q_dim = cfg.n_head * cfg.head_dim;
    let mut out = vec![0f32; m * q_dim];
    let blocks = m.div_ceil(QUERY_BLOCK);
    let items = cfg.n_head * blocks;
    let out_ptr = SyncPtr(out.as_mut_ptr());
    let work = |range: std::ops::Range<usize>| {
        let (mut scores, mut values) = (Vec::new(), Vec::new());
        for item in range {
            let head = item / blocks;
            let first = (item % blocks) * QUERY_BLOCK;
            let count = QUERY_BLOCK.min(m - first);
            let job = AttentionBlock { q, k_tiles, v_cache, cfg, index_pos, head, first, out: out_ptr };
            // SAFETY (inside): each item writes only its own queries' slice of this head.
            job.run(count, &mut scores, &mut values);
        }
    };
    if items <= 1 {
        work(0..items);
    } else {
        candle_core::utils::barrier_pool().execute_chunked(items, work);
    }
    out
}

/// One head's attention for a few consecutive queries.
struct AttentionBlock<'a> {
    q: &'a [f32],
    k_tiles: &'a [f32],
    v_cache: &'a [f32],
    cfg: &'a ModelConfig,
    index_pos: usize,
    head: usize,
    first: usize,
    out: SyncPtr,
}

// Index loops over small constant-size tiles read like the arithmetic they do.
#[allow(clippy::needless_range_loop)]
impl AttentionBlock<'_> {
    /// The block's `count` queries, in sub-blocks of 4, 2 or 1. Each query's scores, softmax
    /// and output are summed in the same order whatever sub-block it is in, so results do not
    /// depend on how a prompt is batched.
    fn run(&self, count: usize, scores: &mut Vec<f32>, out: &mut Vec<f32>) {
        let mut done = 0;
        while done < count {
            let first = self.first + done;
            // Eight sums at a time fit the 16 vector registers with their operands; more spill.
            done += match count - done {
                left if left >= 4 => self.run_queries::<4, 2>(first, scores, out),
                left if left >= 2 => self.run_queries::<2, 4>(first, scores, out),
                _ => self.run_queries::<1, 8>(first, scores, out),
            };
        }
    }

    /// `NQ` queries from `first`, reading `TT` key tiles at a time (`NQ * TT` independent sums
    /// hide the multiply-add latency). Returns `NQ`.
    fn run_queries<const NQ: usize, const TT: usize>(
        &self,
        first: usize,
        scores: &mut Vec<f32>,
        out: &mut Vec<f32>,
    ) -> usize {
        let cfg = self.cfg;
        let hd = cfg.head_dim;
        let q_dim = cfg.n_head * hd;
        let kv_dim = cfg.n_kv_head * hd;
        let group = cfg.n_head / cfg.n_kv_head;
        let g = self.head / group;
        let scale = 1.0 / (hd as f32).sqrt();
        let tile_size = kv_dim * KEY_TILE;
        // The last query sees the most keys.
        let max_keys = self.index_pos + first + NQ;
        let tiles = max_keys.div_ceil(KEY_TILE);
        let stride = tiles.next_multiple_of(TT) * KEY_TILE;
        scores.clear();
        scores.resize(NQ * stride, 0.0);

        let queries: [&[f32]; NQ] = std::array::from_fn(|j| {
            let i = first + j;
            &self.q[i * q_dim + self.head * hd..i * q_dim + (self.head + 1) * hd]
        });
        let key_tile = |tile: usize| {
            let at = tile.min(tiles - 1) * tile_size + g * hd * KEY_TILE;
            &self.k_tiles[at..at + hd * KEY_TILE]
        };
        for tile in (0..tiles).step_by(TT) {
            // Tiles past the last are read again (from the last) and their scores never used.
            let kts: [&[f32]; TT] = std::array::from_fn(|u| key_tile(tile + u));
            let mut acc = [[[0f32; KEY_TILE]; TT]; NQ];
            for d in 0..hd {
                for u in 0..TT {
                    let krow = &kts[u][d * KEY_TILE..(d + 1) * KEY_TILE];
                    for j in 0..NQ {
                        let qd = queries[j][d];
                        for l in 0..KEY_TILE {
                            acc[j][u][l] = fmadd(qd, krow[l], acc[j][u][l]);
                        }
                    }
                }
            }
            for j in 0..NQ {
                for u in 0..TT {
                    let at = j * stride + (tile + u) * KEY_TILE;
                    scores[at..at + KEY_TILE].copy_from_slice(&acc[j][u]);
                }
            }
        }

        let mut sums = [0f32; NQ];
        for (j, sum) in sums.iter_mut().enumerate() {
            let n_keys = self.index_pos + first + j + 1;
            let s = &mut scores[j * stride..(j + 1) * stride];
            // The maximum in eight lanes, which vectorizes (a running scalar maximum does not).
            let mut lanes = [f32::NEG_INFINITY; 8];
            let mut chunks = s[..n_keys].chunks_exact_mut(8);
            for chunk in &mut chunks {
                for (lane, v) in lanes.iter_mut().zip(chunk.iter_mut()) {
                    *v *= scale;
                    *lane = lane.max(*v);
                }
            }
            for (lane, v) in lanes.iter_mut().zip(chunks.into_remainder()) {
                *v *= scale;
                *lane = lane.max(*v);
            }
            let max = lanes.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            // Exponentials and their sum in eight lanes too (a running scalar sum is a chain of
            // dependent additions); the order depends on the query's key count alone.
            let mut totals = [0f32; 8];
            let mut chunks = s[..n_keys].chunks_exact_mut(8);
            for chunk in &mut chunks {
                for (total, v) in totals.iter_mut().zip(chunk.iter_mut()) {
                    *v = exp_nonpositive(*v - max);
                    *total += *v;
                }
            }
            for (total, v) in totals.iter_mut().zip(chunks.into_remainder()) {
                *v = exp_nonpositive(*v - max);
                *total += *v;
            }
            *sum = totals.iter().sum();
            // Positions this query does not see weigh exactly nothing: `fmadd(0, v, o)` is `o`.
            s[n_keys..].fill(0.0);
        }

        // The weighted sum of values, `8 * TT` dimensions of every query at a time, so that each
        // value row is read once for all the block's queries.
        out.clear();
        out.resize(NQ * hd, 0.0);
        let mut d0 = 0;
        while d0 + 8 * TT <= hd {
            self.weigh_values::<NQ, TT>(g, d0, max_keys, scores, stride, out);
            d0 += 8 * TT;
        }
        while d0 + 8 <= hd {
            self.weigh_values::<NQ, 1>(g, d0, max_keys, scores, stride, out);
            d0 += 8;
        }
        let row = |t: usize| &self.v_cache[t * kv_dim + g * hd..t * kv_dim + (g + 1) * hd];
        for d in d0..hd {
            for t in 0..max_keys {
                let v = row(t)[d];
                for j in 0..NQ {
                    out[j * hd + d] = fmadd(scores[j * stride + t], v, out[j * hd + d]);
                }
            }
        }
        for (j, sum) in sums.iter().enumerate() {
            let i = first + j;
            let inv = 1.0 / sum;
            // SAFETY: the slice for (query i, this head) is written by this work item only, and
            // the output buffer outlives the pool call.
            let dst = unsafe { std::slice::from_raw_parts_mut(self.out.get().add(i * q_dim + self.head * hd), hd) };
            for (d, o) in dst.iter_mut().zip(&out[j * hd..(j + 1) * hd]) {
                *d = o * inv;
            }
        }
        NQ
    }

    /// Dimensions `d0..d0 + 8 * W` of the `NQ` queries' weighted sums of values (`out`, `NQ` rows
    /// of `head_dim`) from their weights (`scores`, rows of `stride`), position by position.
    fn weigh_values<const NQ: usize, const W: usize>(
        &self,
        g: usize,
        d0: usize,
        keys: usize,
        scores: &[f32],
        stride: usize,
        out: &mut [f32],
    ) {
        let hd = self.cfg.head_dim;
        let kv_dim = self.cfg.n_kv_head * hd;
        let mut acc = [[[0f32; 8]; W]; NQ];
        for t in 0..keys {
            let at = t * kv_dim + g * hd + d0;
            let v = &self.v_cache[at..at + 8 * W];
            for j in 0..NQ {
                let p = scores[j * stride + t];
                for u in 0..W {
                    for l in 0..8 {
                        acc[j][u][l] = fmadd(p, v[u * 8 + l], acc[j][u][l]);
                    }
                }
            }
        }
        for j in 0..NQ {
            for u in 0..W {
                let at = j * hd + d0 + u * 8;
                out[at..at + 8].copy_from_slice(&acc[j][u]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotating_a_roped_key_by_a_shift_equals_roping_it_at_the_shifted_position() {
        for neox in [false, true] {
            let cfg = ModelConfig {
                architecture: if neox { Architecture::Qwen2 } else { Architecture::Llama },
                n_layer: 1,
                n_head: 2,
                n_kv_head: 2,
                head_dim: 8,
                n_embd: 16,
                n_ff: 16,
                vocab_size: 4,
                train_context: 512,
                rope_base: 10_000.0,
                rope_dim: 8,
                rms_eps: 1e-6,
                rope_neox: neox,
            };
            let (cos, sin) = rope_tables(&cfg, 512);
            let key: Vec<f32> = (0..16).map(|i| ((i * 7 % 11) as f32 - 5.0) / 3.0).collect();
            for (from, to) in [(300usize, 40usize), (5, 260), (100, 100)] {
                let mut at_from = key.clone();
                apply_rope(&mut at_from, 2, &cfg, &cos, &sin, from);
                let mut at_to = key.clone();
                apply_rope(&mut at_to, 2, &cfg, &cos, &sin, to);
                let shift = to as f64 - from as f64;
                let (c, s): (Vec<f32>, Vec<f32>) = (0..4)
                    .map(|i| {
                        let angle = shift / 10_000f64.powf(2.0 * i as f64 / 8.0);
                        (angle.cos() as f32, angle.sin() as f32)
                    })
                    .unzip();
                rotate(&mut at_from, &cfg, &c, &s);
                let diff = at_from.iter().zip(&at_to).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(diff < 1e-4, "neox {neox}, {from} -> {to}: max difference {diff}");
            }
        }
    }

    #[test]
    fn the_softmax_exponential_is_accurate() {
        for i in 0..=1740 {
            let x = -(i as f32) * 0.05;
            let (got, want) = (exp_nonpositive(x), x.exp());
            assert!((got - want).abs() <= 1e-5 * want + 1e-38, "e^{x}: {got} vs {want}");
        }
        assert_eq!(exp_nonpositive(0.0), 1.0);
        // Far below the maximum, weights are clamped to e^-87, negligible next to the maximum's 1.
        assert!(exp_nonpositive(-1000.0) < 2e-38);
    }
}
