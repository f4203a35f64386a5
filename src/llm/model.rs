//! A llama-architecture transformer read from a GGUF file, and its decode
//! step: new tokens in, the KV cache extended, the last token's logits out.
//!
//! The file is read with candle's GGUF reader; Q4_1 matrices are repacked
//! as they are, every other quantized or float matrix is dequantized by
//! candle and requantized to Q8_0 (see [`super::quant`]). One decode step
//! is one fused pass over the layers: no per-op dispatch, the matrix
//! products split over the thread pool, attention read from and appended
//! to the cache in place.

use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::GgmlDType;
use candle_core::Device;

use super::quant::{QActivations, QMatrix, BLOCK};
use super::tokenizer::Tokenizer;
use crate::error::{Error, Result};

/// The shape of the network.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub layers: usize,
    pub dim: usize,
    pub hidden: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub vocab: usize,
    /// The longest sequence the model was trained for.
    pub context: usize,
    pub rope_base: f32,
    pub norm_eps: f32,
}

impl Config {
    /// Width of the keys (and values) of one token in one layer.
    pub fn kv_dim(&self) -> usize {
        self.kv_heads * self.head_dim
    }

    /// Shape of a KV cache for `context` positions:
    /// `[layers, 2 (keys, values), kv_heads, context, head_dim]`.
    pub fn cache_shape(&self, context: usize) -> [usize; 5] {
        [self.layers, 2, self.kv_heads, context, self.head_dim]
    }
}

struct Layer {
    attn_norm: Vec<f32>,
    /// Queries, keys and values stacked: `dim + 2 kv_dim` rows.
    qkv: QMatrix,
    output: QMatrix,
    ffn_norm: Vec<f32>,
    /// Gate and up projections stacked: `2 hidden` rows.
    gate_up: QMatrix,
    down: QMatrix,
}

/// The weights of a loaded model.
pub struct Weights {
    pub config: Config,
    embedding: QMatrix,
    layers: Vec<Layer>,
    norm: Vec<f32>,
    /// The output projection; `None` when it is the embedding (tied).
    output: Option<QMatrix>,
}

impl std::fmt::Debug for Weights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Weights")
            .field("config", &self.config)
            .field("bytes", &self.bytes())
            .finish()
    }
}

/// A model file error naming the file.
pub(crate) fn model_error(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::Model {
        path: path.display().to_string(),
        what: what.to_string(),
    }
}

/// An open GGUF file: its header and a reader for its tensors.
pub(crate) struct Gguf<'p> {
    path: &'p Path,
    content: Content,
    reader: BufReader<File>,
}

impl<'p> Gguf<'p> {
    /// Opens and reads the header, and checks that every tensor lies
    /// inside the file (a truncated download fails here, not halfway).
    pub fn open(path: &'p Path) -> Result<Gguf<'p>> {
        let file = File::open(path).map_err(|e| model_error(path, e))?;
        let mut reader = BufReader::new(file);
        let content = Content::read(&mut reader)
            .map_err(|e| model_error(path, format!("not a readable GGUF file: {e}")))?;
        let size = reader
            .seek(SeekFrom::End(0))
            .map_err(|e| model_error(path, e))?;
        for (name, info) in &content.tensor_infos {
            let elements = info.shape.elem_count();
            let block = info.ggml_dtype.block_size();
            let end = content.tensor_data_offset
                + info.offset
                + (elements / block * info.ggml_dtype.type_size()) as u64;
            if end > size {
                return Err(model_error(
                    path,
                    format!(
                        "the file is truncated: it has {size} bytes, tensor `{name}` ends at byte {end}"
                    ),
                ));
            }
        }
        Ok(Gguf {
            path,
            content,
            reader,
        })
    }

    fn value(&self, key: &str) -> Result<&Value> {
        self.content
            .metadata
            .get(key)
            .ok_or_else(|| model_error(self.path, format!("metadata `{key}` is missing")))
    }

    fn usize(&self, key: &str) -> Result<usize> {
        let v = self.value(key)?;
        // `to_u64` takes every unsigned width; some writers use i32.
        v.to_u64()
            .map(|v| v as usize)
            .or_else(|_| v.to_i32().map(|v| v.max(0) as usize))
            .map_err(|e| model_error(self.path, format!("metadata `{key}`: {e}")))
    }

    fn f32_or(&self, key: &str, default: f32) -> Result<f32> {
        match self.content.metadata.get(key) {
            None => Ok(default),
            Some(v) => v
                .to_f32()
                .map_err(|e| model_error(self.path, format!("metadata `{key}`: {e}"))),
        }
    }

    fn u32_opt(&self, key: &str) -> Option<u32> {
        self.content.metadata.get(key).and_then(|v| v.to_u32().ok())
    }

    fn strings(&self, key: &str) -> Result<Vec<String>> {
        let bad = |e: candle_core::Error| model_error(self.path, format!("metadata `{key}`: {e}"));
        self.value(key)?
            .to_vec()
            .map_err(bad)?
            .iter()
            .map(|v| v.to_string().cloned().map_err(bad))
            .collect()
    }

    /// The network's shape, checked for what the decode step needs.
    pub fn config(&self) -> Result<Config> {
        let arch = self
            .value("general.architecture")?
            .to_string()
            .map_err(|e| model_error(self.path, e))?;
        if arch != "llama" {
            return Err(model_error(
                self.path,
                format!("architecture `{arch}` is not supported (llama only)"),
            ));
        }
        let key = |k: &str| format!("llama.{k}");
        let dim = self.usize(&key("embedding_length"))?;
        let heads = self.usize(&key("attention.head_count"))?;
        let kv_heads = self.usize(&key("attention.head_count_kv")).unwrap_or(heads);
        let config = Config {
            layers: self.usize(&key("block_count"))?,
            dim,
            hidden: self.usize(&key("feed_forward_length"))?,
            heads,
            kv_heads,
            head_dim: dim.checked_div(heads).unwrap_or(0),
            vocab: self
                .value("tokenizer.ggml.tokens")
                .map_or(0, |v| v.to_vec().map_or(0, |tokens| tokens.len())),
            context: self.usize(&key("context_length"))?,
            rope_base: self.f32_or(&key("rope.freq_base"), 10_000.0)?,
            norm_eps: self.f32_or(&key("attention.layer_norm_rms_epsilon"), 1e-5)?,
        };
        let fits = heads > 0
            && kv_heads > 0
            && heads % kv_heads == 0
            && dim % heads == 0
            && config.head_dim.is_multiple_of(2)
            && dim % BLOCK == 0
            && config.hidden.is_multiple_of(BLOCK)
            && config.vocab > 0;
        if !fits {
            return Err(model_error(
                self.path,
                format!("unsupported shape {config:?}: heads must divide the width and be a multiple of the KV heads, widths multiples of {BLOCK}"),
            ));
        }
        Ok(config)
    }

    /// The tokenizer from the metadata.
    pub fn tokenizer(&self) -> Result<Tokenizer> {
        let model = self
            .value("tokenizer.ggml.model")?
            .to_string()
            .map_err(|e| model_error(self.path, e))?;
        if model != "gpt2" {
            return Err(model_error(
                self.path,
                format!("tokenizer `{model}` is not supported (byte-level BPE, `gpt2`, only)"),
            ));
        }
        let tokens = self.strings("tokenizer.ggml.tokens")?;
        let types = match self.content.metadata.get("tokenizer.ggml.token_type") {
            Some(v) => v
                .to_vec()
                .map_err(|e| model_error(self.path, e))?
                .iter()
                .map(|t| t.to_i32().map_err(|e| model_error(self.path, e)))
                .collect::<Result<Vec<_>>>()?,
            None => vec![1; tokens.len()],
        };
        if types.len() != tokens.len() {
            return Err(model_error(
                self.path,
                format!("{} token types for {} tokens", types.len(), tokens.len()),
            ));
        }
        let merges = self.strings("tokenizer.ggml.merges")?;
        let pre = match self.content.metadata.get("tokenizer.ggml.pre") {
            Some(v) => v
                .to_string()
                .map_err(|e| model_error(self.path, e))?
                .clone(),
            None => "gpt2".to_string(),
        };
        Tokenizer::new(
            tokens,
            &types,
            &merges,
            &pre,
            self.u32_opt("tokenizer.ggml.bos_token_id"),
            self.u32_opt("tokenizer.ggml.eos_token_id"),
        )
        .map_err(|e| model_error(self.path, e))
    }

    fn has(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    /// Tensor `name` as f32 values, checked to have `len` of them.
    fn floats(&mut self, name: &str, len: usize) -> Result<Vec<f32>> {
        let t = self
            .content
            .tensor(&mut self.reader, name, &Device::Cpu)
            .and_then(|q| q.dequantize(&Device::Cpu))
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| model_error(self.path, format!("tensor `{name}`: {e}")))?;
        if t.len() != len {
            return Err(model_error(
                self.path,
                format!("tensor `{name}` has {} values, expected {len}", t.len()),
            ));
        }
        Ok(t)
    }

    /// Matrix `name`, checked to be `rows x cols`.
    fn matrix(&mut self, name: &str, rows: usize, cols: usize) -> Result<QMatrix> {
        let bad = |e: String| model_error(self.path, format!("tensor `{name}`: {e}"));
        let q = self
            .content
            .tensor(&mut self.reader, name, &Device::Cpu)
            .map_err(|e| bad(e.to_string()))?;
        if q.shape().dims() != [rows, cols] {
            return Err(bad(format!(
                "shape {:?}, expected [{rows}, {cols}]",
                q.shape().dims()
            )));
        }
        let repacked = if q.dtype() == GgmlDType::Q4_1 {
            let data = q.data().map_err(|e| bad(e.to_string()))?;
            QMatrix::from_q4_1(rows, cols, &data)
        } else {
            let values = q
                .dequantize(&Device::Cpu)
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.to_vec1::<f32>())
                .map_err(|e| bad(e.to_string()))?;
            QMatrix::from_f32(rows, cols, &values)
        };
        repacked.ok_or_else(|| bad(format!("{rows} x {cols} is not whole blocks")))
    }

    /// Matrices stacked by rows (Q, K, V; gate, up): one product for all.
    fn stacked(&mut self, parts: &[(&str, usize)], cols: usize) -> Result<QMatrix> {
        let matrices = parts
            .iter()
            .map(|&(name, rows)| self.matrix(name, rows, cols))
            .collect::<Result<Vec<_>>>()?;
        QMatrix::stack(matrices)
            .ok_or_else(|| model_error(self.path, "stacked matrices are not whole blocks"))
    }

    /// Every weight of the network.
    pub fn weights(&mut self) -> Result<Weights> {
        let c = self.config()?;
        let embedding = self.matrix("token_embd.weight", c.vocab, c.dim)?;
        let mut layers = Vec::with_capacity(c.layers);
        for l in 0..c.layers {
            let n = |part: &str| format!("blk.{l}.{part}.weight");
            layers.push(Layer {
                attn_norm: self.floats(&n("attn_norm"), c.dim)?,
                qkv: self.stacked(
                    &[
                        (&n("attn_q"), c.dim),
                        (&n("attn_k"), c.kv_dim()),
                        (&n("attn_v"), c.kv_dim()),
                    ],
                    c.dim,
                )?,
                output: self.matrix(&n("attn_output"), c.dim, c.dim)?,
                ffn_norm: self.floats(&n("ffn_norm"), c.dim)?,
                gate_up: self.stacked(
                    &[(&n("ffn_gate"), c.hidden), (&n("ffn_up"), c.hidden)],
                    c.dim,
                )?,
                down: self.matrix(&n("ffn_down"), c.dim, c.hidden)?,
            });
        }
        let norm = self.floats("output_norm.weight", c.dim)?;
        let output = if self.has("output.weight") {
            Some(self.matrix("output.weight", c.vocab, c.dim)?)
        } else {
            None
        };
        Ok(Weights {
            config: c,
            embedding,
            layers,
            norm,
            output,
        })
    }
}

/// `a . b` in eight independent partial sums, so that it vectorizes.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (a, b) in a8.zip(b8) {
        for i in 0..8 {
            lanes[i] += a[i] * b[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// `x / rms(x) * weight`.
fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let mean = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    for ((o, v), w) in out.iter_mut().zip(x).zip(weight) {
        *o = v * scale * w;
    }
}

/// The rotary embedding of one position: `(cos, sin)` of the angle of
/// each pair of a head's dimensions.
fn rotation(position: usize, head_dim: usize, base: f32) -> Vec<(f32, f32)> {
    (0..head_dim / 2)
        .map(|i| {
            let theta = position as f32 * base.powf(-2.0 * i as f32 / head_dim as f32);
            let (sin, cos) = theta.sin_cos();
            (cos, sin)
        })
        .collect()
}

/// Rotates adjacent pairs of each head by a position's rotation (GGUF
/// llama files store Q and K for this "normal" rotary layout).
fn rope(x: &mut [f32], rotation: &[(f32, f32)]) {
    for head in x.chunks_exact_mut(2 * rotation.len()) {
        for (pair, &(cos, sin)) in head.chunks_exact_mut(2).zip(rotation) {
            let (a, b) = (pair[0], pair[1]);
            pair[0] = a * cos - b * sin;
            pair[1] = a * sin + b * cos;
        }
    }
}

/// The products of `x` (`tokens` rows) with `w`.
fn project(w: &QMatrix, x: &[f32], tokens: usize) -> Vec<f32> {
    let mut out = vec![0f32; tokens * w.rows()];
    w.matmul(&QActivations::quantize(x, tokens), &mut out);
    out
}

impl Weights {
    /// Bytes the weights occupy.
    pub fn bytes(&self) -> usize {
        let layer = |l: &Layer| {
            4 * (l.attn_norm.len() + l.ffn_norm.len())
                + l.qkv.bytes()
                + l.output.bytes()
                + l.gate_up.bytes()
                + l.down.bytes()
        };
        self.embedding.bytes()
            + self.layers.iter().map(layer).sum::<usize>()
            + 4 * self.norm.len()
            + self.output.as_ref().map_or(0, QMatrix::bytes)
    }

    /// Parameters: multiply-adds per token in the matrix products.
    pub fn parameters(&self) -> usize {
        let c = &self.config;
        c.layers * (c.dim * (c.dim + 2 * c.kv_dim()) + c.dim * c.dim + 3 * c.dim * c.hidden)
            + c.vocab * c.dim
    }

    /// One decode step: runs `tokens` at positions `position..`, appending
    /// their keys and values to `cache` (of [`Config::cache_shape`] for some
    /// context), and writes the last token's logits.
    pub fn forward(
        &self,
        tokens: &[u32],
        position: usize,
        cache: &mut [f32],
        logits: &mut [f32],
    ) -> Result<()> {
        let c = &self.config;
        let (dim, kv_dim, hd) = (c.dim, c.kv_dim(), c.head_dim);
        let context = cache.len() / (c.layers * 2 * kv_dim).max(1);
        let n = tokens.len();
        let step_error = |what: String| Error::Config(format!("decode step: {what}"));
        if n == 0 || position + n > context || cache.len() != c.layers * 2 * kv_dim * context {
            return Err(step_error(format!(
                "{n} tokens at position {position} do not fit a cache of {context} positions"
            )));
        }
        if logits.len() != c.vocab {
            return Err(step_error(format!(
                "logits hold {} values, the vocabulary has {}",
                logits.len(),
                c.vocab
            )));
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= c.vocab) {
            return Err(step_error(format!(
                "token {bad} is outside the vocabulary of {}",
                c.vocab
            )));
        }
        let mut x = vec![0f32; n * dim];
        for (row, &t) in x.chunks_exact_mut(dim).zip(tokens) {
            self.embedding.row(t as usize, row);
        }
        let mut h = vec![0f32; n * dim];
        let mut attn = vec![0f32; n * dim];
        let group = c.heads / c.kv_heads;
        let scale = 1.0 / (hd as f32).sqrt();
        let mut scores = vec![0f32; position + n];
        let mut act = vec![0f32; n * c.hidden];
        let rotations: Vec<_> = (position..position + n)
            .map(|p| rotation(p, hd, c.rope_base))
            .collect();
        for (l, layer) in self.layers.iter().enumerate() {
            for (x, h) in x.chunks_exact(dim).zip(h.chunks_exact_mut(dim)) {
                rms_norm(x, &layer.attn_norm, c.norm_eps, h);
            }
            let mut qkv = project(&layer.qkv, &h, n);
            let layer_cache = &mut cache[l * 2 * kv_dim * context..(l + 1) * 2 * kv_dim * context];
            let (keys, values) = layer_cache.split_at_mut(kv_dim * context);
            for (t, row) in qkv.chunks_exact_mut(dim + 2 * kv_dim).enumerate() {
                let pos = position + t;
                let (q, kv) = row.split_at_mut(dim);
                rope(q, &rotations[t]);
                rope(&mut kv[..kv_dim], &rotations[t]);
                for g in 0..c.kv_heads {
                    let at = (g * context + pos) * hd;
                    keys[at..at + hd].copy_from_slice(&kv[g * hd..(g + 1) * hd]);
                    values[at..at + hd]
                        .copy_from_slice(&kv[kv_dim + g * hd..kv_dim + (g + 1) * hd]);
                }
            }
            for (t, row) in qkv.chunks_exact(dim + 2 * kv_dim).enumerate() {
                let seen = position + t + 1;
                for head in 0..c.heads {
                    let g = head / group;
                    let q = &row[head * hd..(head + 1) * hd];
                    let k = &keys[g * context * hd..(g * context + seen) * hd];
                    let v = &values[g * context * hd..(g * context + seen) * hd];
                    let s = &mut scores[..seen];
                    for (s, k) in s.iter_mut().zip(k.chunks_exact(hd)) {
                        *s = dot(q, k) * scale;
                    }
                    let max = s.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                    let mut total = 0f32;
                    for s in s.iter_mut() {
                        *s = (*s - max).exp();
                        total += *s;
                    }
                    let out = &mut attn[t * dim + head * hd..t * dim + (head + 1) * hd];
                    out.fill(0.0);
                    for (&p, v) in s.iter().zip(v.chunks_exact(hd)) {
                        let p = p / total;
                        for (o, v) in out.iter_mut().zip(v) {
                            *o += p * v;
                        }
                    }
                }
            }
            for (x, o) in x.iter_mut().zip(project(&layer.output, &attn, n)) {
                *x += o;
            }
            for (x, h) in x.chunks_exact(dim).zip(h.chunks_exact_mut(dim)) {
                rms_norm(x, &layer.ffn_norm, c.norm_eps, h);
            }
            let gate_up = project(&layer.gate_up, &h, n);
            for (a, gu) in act
                .chunks_exact_mut(c.hidden)
                .zip(gate_up.chunks_exact(2 * c.hidden))
            {
                let (gate, up) = gu.split_at(c.hidden);
                for ((a, g), u) in a.iter_mut().zip(gate).zip(up) {
                    *a = g / (1.0 + (-g).exp()) * u;
                }
            }
            for (x, d) in x.iter_mut().zip(project(&layer.down, &act, n)) {
                *x += d;
            }
        }
        let last = &x[(n - 1) * dim..];
        let mut normed = vec![0f32; dim];
        rms_norm(last, &self.norm, c.norm_eps, &mut normed);
        let head = self.output.as_ref().unwrap_or(&self.embedding);
        head.matmul(&QActivations::quantize(&normed, 1), logits);
        Ok(())
    }
}
