//! Quantized matrices and the matrix-vector products of the decode step.
//!
//! Weights are kept in blocks of 32 values along a row, as in GGUF files:
//! Q4_1 (4-bit values with a scale and a minimum per block, as SmolLM2's
//! files hold) and Q8_0 (8-bit values with a scale, which also takes every
//! other GGUF type after candle dequantizes it), with half-precision
//! scales, so a matrix is no bigger than in the file. At load time the
//! rows are interleaved by groups of [`GROUP`]: for each block, the group's
//! eight scales, eight minimums and eight quant blocks lie side by side, so
//! a product reads each group as one sequential stream and converts eight
//! scales with one instruction. Activations are quantized to 8 bits per
//! block before a product, so the inner loop is integer multiply-adds:
//! AVX-512 VNNI or AVX2 where the CPU has them (checked at run time),
//! plain Rust elsewhere. Groups are split over the decode team
//! ([`super::team`]).

use std::sync::OnceLock;

use half::f16;
use parking_lot::Mutex;

use super::team::Team;

/// Values per quantization block.
pub const BLOCK: usize = 32;

/// Rows interleaved and computed together, sharing the activation loads.
const GROUP: usize = 8;

/// Groups per parallel work item.
const GROUPS_PER_ITEM: usize = 8;

/// How a matrix's blocks are stored; block `b` of row `GROUP * g + k` is
/// entry `(g * nb + b) * GROUP + k` of each array (`nb` blocks per row).
enum Blocks {
    /// `value = d * q + m`, `q` in 0..16; a block's 16 bytes hold values
    /// 0..16 in their low nibbles and 16..32 in their high nibbles.
    Q4_1 {
        d: Vec<f16>,
        m: Vec<f16>,
        qs: Vec<u8>,
    },
    /// `value = d * q`, `q` in -127..=127.
    Q8_0 { d: Vec<f16>, qs: Vec<i8> },
}

/// A `rows x cols` weight matrix quantized by blocks of 32, its rows
/// interleaved by groups (the last group padded with zero rows).
pub struct QMatrix {
    rows: usize,
    cols: usize,
    blocks: Blocks,
}

/// Where block `b` of row `r` goes in the interleaved arrays.
fn slot(r: usize, b: usize, nb: usize) -> usize {
    ((r / GROUP) * nb + b) * GROUP + r % GROUP
}

/// Quantizes 32 values to `q` (in -127..=127) and returns the scale.
fn quantize_block(values: &[f32], q: &mut [i8]) -> f32 {
    let max = values.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = max / 127.0;
    let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
    for (q, v) in q.iter_mut().zip(values) {
        *q = (v * inv).round() as i8;
    }
    d
}

impl QMatrix {
    /// Blocks per row, and slots in the padded arrays; `None` unless the
    /// rows are whole blocks.
    fn layout(rows: usize, cols: usize) -> Option<(usize, usize)> {
        let nb = cols / BLOCK;
        (cols.is_multiple_of(BLOCK) && cols > 0).then(|| (nb, rows.div_ceil(GROUP) * GROUP * nb))
    }

    /// Repacks GGUF Q4_1 blocks (20 bytes each: f16 scale, f16 minimum,
    /// 16 bytes of nibbles); `None` if the data is not `rows x cols` of them.
    pub fn from_q4_1(rows: usize, cols: usize, data: &[u8]) -> Option<QMatrix> {
        let (nb, slots) = Self::layout(rows, cols)?;
        if data.len() != rows * nb * 20 {
            return None;
        }
        let mut d = vec![f16::ZERO; slots];
        let mut m = vec![f16::ZERO; slots];
        let mut qs = vec![0u8; slots * 16];
        for (i, block) in data.chunks_exact(20).enumerate() {
            let s = slot(i / nb, i % nb, nb);
            d[s] = f16::from_le_bytes([block[0], block[1]]);
            m[s] = f16::from_le_bytes([block[2], block[3]]);
            qs[s * 16..s * 16 + 16].copy_from_slice(&block[4..]);
        }
        Some(QMatrix {
            rows,
            cols,
            blocks: Blocks::Q4_1 { d, m, qs },
        })
    }

    /// Quantizes a row-major f32 matrix to Q8_0; `None` if the sizes do not fit.
    pub fn from_f32(rows: usize, cols: usize, values: &[f32]) -> Option<QMatrix> {
        let (nb, slots) = Self::layout(rows, cols)?;
        if values.len() != rows * cols {
            return None;
        }
        let mut d = vec![f16::ZERO; slots];
        let mut qs = vec![0i8; slots * BLOCK];
        for (i, block) in values.chunks_exact(BLOCK).enumerate() {
            let s = slot(i / nb, i % nb, nb);
            d[s] = f16::from_f32(quantize_block(block, &mut qs[s * BLOCK..(s + 1) * BLOCK]));
        }
        Some(QMatrix {
            rows,
            cols,
            blocks: Blocks::Q8_0 { d, qs },
        })
    }

    /// The rows of `parts` one after the other (all of one width); kept as
    /// they are when all share a format and fill their groups, else
    /// requantized to Q8_0.
    pub fn stack(parts: Vec<QMatrix>) -> Option<QMatrix> {
        let rows = parts.iter().map(|p| p.rows).sum();
        let cols = parts.first().map_or(0, |p| p.cols);
        let whole = parts
            .iter()
            .all(|p| p.cols == cols && p.rows.is_multiple_of(GROUP));
        let all = |q4: bool| {
            parts
                .iter()
                .all(|p| matches!(p.blocks, Blocks::Q4_1 { .. }) == q4)
        };
        if whole && all(true) {
            let (mut d, mut m, mut qs) = (Vec::new(), Vec::new(), Vec::new());
            for p in &parts {
                if let Blocks::Q4_1 {
                    d: pd,
                    m: pm,
                    qs: pq,
                } = &p.blocks
                {
                    d.extend_from_slice(pd);
                    m.extend_from_slice(pm);
                    qs.extend_from_slice(pq);
                }
            }
            return Some(QMatrix {
                rows,
                cols,
                blocks: Blocks::Q4_1 { d, m, qs },
            });
        }
        if whole && all(false) {
            let (mut d, mut qs) = (Vec::new(), Vec::new());
            for p in &parts {
                if let Blocks::Q8_0 { d: pd, qs: pq } = &p.blocks {
                    d.extend_from_slice(pd);
                    qs.extend_from_slice(pq);
                }
            }
            return Some(QMatrix {
                rows,
                cols,
                blocks: Blocks::Q8_0 { d, qs },
            });
        }
        let mut values = vec![0f32; rows * cols];
        let mut at = 0;
        for p in &parts {
            for r in 0..p.rows {
                p.row(r, &mut values[at..at + cols]);
                at += cols;
            }
        }
        QMatrix::from_f32(rows, cols, &values)
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Bytes the matrix occupies.
    pub fn bytes(&self) -> usize {
        match &self.blocks {
            Blocks::Q4_1 { d, m, qs } => 2 * (d.len() + m.len()) + qs.len(),
            Blocks::Q8_0 { d, qs } => 2 * d.len() + qs.len(),
        }
    }

    /// Row `r` as f32 values (an embedding lookup).
    pub fn row(&self, r: usize, out: &mut [f32]) {
        let nb = self.cols / BLOCK;
        for (b, values) in out.chunks_exact_mut(BLOCK).enumerate().take(nb) {
            let s = slot(r, b, nb);
            match &self.blocks {
                Blocks::Q4_1 { d, m, qs } => {
                    let (d, m) = (d[s].to_f32(), m[s].to_f32());
                    let q = &qs[s * 16..s * 16 + 16];
                    for j in 0..16 {
                        values[j] = d * (q[j] & 0x0F) as f32 + m;
                        values[j + 16] = d * (q[j] >> 4) as f32 + m;
                    }
                }
                Blocks::Q8_0 { d, qs } => {
                    let d = d[s].to_f32();
                    for (v, &q) in values.iter_mut().zip(&qs[s * BLOCK..(s + 1) * BLOCK]) {
                        *v = d * q as f32;
                    }
                }
            }
        }
    }

    /// `out[t][r] = row r . x[t]` for every token `t` of `x`; `out` is
    /// `x.tokens() x rows`.
    pub fn matmul(&self, x: &QActivations, out: &mut [f32]) {
        let tokens = x.tokens;
        let kernels = Kernels::detect();
        // Groups outer, tokens inner: each group is read once for all tokens.
        let mut by_row = vec![0f32; if tokens == 1 { 0 } else { self.rows * tokens }];
        let target = if tokens == 1 {
            &mut *out
        } else {
            &mut by_row[..]
        };
        let rows_per_item = GROUPS_PER_ITEM * GROUP;
        let items: Vec<Mutex<&mut [f32]>> = target
            .chunks_mut(rows_per_item * tokens)
            .map(Mutex::new)
            .collect();
        Team::global().run(items.len(), &|item| {
            let mut chunk = items[item].lock();
            let first = item * rows_per_item;
            let groups = (chunk.len() / tokens).div_ceil(GROUP);
            for g in 0..groups {
                for t in 0..tokens {
                    let sums = self.dot_group(kernels, first / GROUP + g, x, t);
                    for (k, v) in sums.iter().enumerate() {
                        let row = g * GROUP + k;
                        if first + row < self.rows {
                            chunk[row * tokens + t] = *v;
                        }
                    }
                }
            }
        });
        drop(items);
        if tokens > 1 {
            for (r, row) in by_row.chunks_exact(tokens).enumerate() {
                for (t, &v) in row.iter().enumerate() {
                    out[t * self.rows + r] = v;
                }
            }
        }
    }

    /// The rows of group `g` dotted with token `t` of `x`.
    fn dot_group(&self, kernels: Kernels, g: usize, x: &QActivations, t: usize) -> [f32; GROUP] {
        let nb = self.cols / BLOCK;
        let w = g * nb * GROUP..(g + 1) * nb * GROUP;
        let a = t * nb..(t + 1) * nb;
        let (xd, xs) = (&x.d[a.clone()], &x.s[a.clone()]);
        let xq = &x.qs[a.start * BLOCK..a.end * BLOCK];
        // SAFETY: `Kernels::detect` picked kernels this CPU runs, and the
        // slices hold one group of `nb` blocks and one token's activations.
        unsafe {
            match &self.blocks {
                Blocks::Q4_1 { d, m, qs } => (kernels.q4_1)(
                    nb,
                    &d[w.clone()],
                    &m[w.clone()],
                    &qs[w.start * 16..w.end * 16],
                    xd,
                    xs,
                    xq,
                ),
                Blocks::Q8_0 { d, qs } => (kernels.q8_0)(
                    nb,
                    &d[w.clone()],
                    &qs[w.start * BLOCK..w.end * BLOCK],
                    xd,
                    xq,
                ),
            }
        }
    }
}

/// Activations of some tokens quantized to 8 bits by blocks of 32, with
/// each block's scale and its scaled sum (for Q4_1's minimum).
pub struct QActivations {
    tokens: usize,
    d: Vec<f32>,
    s: Vec<f32>,
    qs: Vec<i8>,
}

impl QActivations {
    /// Quantizes `tokens` rows of `cols` values (`cols` a multiple of 32).
    pub fn quantize(values: &[f32], tokens: usize) -> QActivations {
        let n = values.len() / BLOCK;
        let mut d = Vec::with_capacity(n);
        let mut s = Vec::with_capacity(n);
        let mut qs = vec![0i8; n * BLOCK];
        // The scale and sum are rounded to half precision, as GGML's Q8_1
        // blocks store them, so that products match llama.cpp's.
        let half = |v: f32| f16::from_f32(v).to_f32();
        for (block, q) in values.chunks_exact(BLOCK).zip(qs.chunks_exact_mut(BLOCK)) {
            let scale = quantize_block(block, q);
            d.push(half(scale));
            s.push(half(
                scale * q.iter().map(|&v| v as i32).sum::<i32>() as f32,
            ));
        }
        QActivations { tokens, d, s, qs }
    }
}

/// A group of Q4_1 rows (`nb` blocks each, interleaved) dotted with one
/// token's activations.
type Q4_1Dot = unsafe fn(usize, &[f16], &[f16], &[u8], &[f32], &[f32], &[i8]) -> [f32; GROUP];
/// A group of Q8_0 rows dotted with one token's activations.
type Q8_0Dot = unsafe fn(usize, &[f16], &[i8], &[f32], &[i8]) -> [f32; GROUP];

/// The inner loops this CPU runs.
#[derive(Clone, Copy)]
struct Kernels {
    q4_1: Q4_1Dot,
    q8_0: Q8_0Dot,
}

impl Kernels {
    /// Plain Rust, for any CPU.
    fn portable() -> Kernels {
        Kernels {
            q4_1: dot_q4_1,
            q8_0: dot_q8_0,
        }
    }

    /// Every set this CPU runs (checked at run time), the best last.
    fn available() -> Vec<Kernels> {
        let mut all = vec![Kernels::portable()];
        #[cfg(target_arch = "x86_64")]
        {
            let has = |f: &str| match f {
                "avx2" => is_x86_feature_detected!("avx2"),
                "fma" => is_x86_feature_detected!("fma"),
                "f16c" => is_x86_feature_detected!("f16c"),
                "avx512vnni" => is_x86_feature_detected!("avx512vnni"),
                _ => is_x86_feature_detected!("avx512vl"),
            };
            if ["avx2", "fma", "f16c"].iter().all(|f| has(f)) {
                all.push(Kernels {
                    q4_1: x86::avx2::dot_q4_1,
                    q8_0: x86::avx2::dot_q8_0,
                });
                if has("avx512vnni") && has("avx512vl") {
                    all.push(Kernels {
                        q4_1: x86::vnni::dot_q4_1,
                        q8_0: x86::vnni::dot_q8_0,
                    });
                }
            }
        }
        all
    }

    /// The best set this CPU runs.
    fn detect() -> Kernels {
        static BEST: OnceLock<Kernels> = OnceLock::new();
        *BEST.get_or_init(|| Kernels::available().pop().unwrap_or_else(Kernels::portable))
    }
}

fn dot_q4_1(
    nb: usize,
    wd: &[f16],
    wm: &[f16],
    wq: &[u8],
    xd: &[f32],
    xs: &[f32],
    xq: &[i8],
) -> [f32; GROUP] {
    std::array::from_fn(|k| {
        let mut sum = 0f32;
        for b in 0..nb {
            let i = b * GROUP + k;
            let q = &wq[i * 16..i * 16 + 16];
            let x = &xq[b * BLOCK..(b + 1) * BLOCK];
            let mut acc = 0i32;
            for j in 0..16 {
                acc += (q[j] & 0x0F) as i32 * x[j] as i32 + (q[j] >> 4) as i32 * x[j + 16] as i32;
            }
            sum += wd[i].to_f32() * xd[b] * acc as f32 + wm[i].to_f32() * xs[b];
        }
        sum
    })
}

fn dot_q8_0(nb: usize, wd: &[f16], wq: &[i8], xd: &[f32], xq: &[i8]) -> [f32; GROUP] {
    std::array::from_fn(|k| {
        let mut sum = 0f32;
        for b in 0..nb {
            let i = b * GROUP + k;
            let w = &wq[i * BLOCK..(i + 1) * BLOCK];
            let x = &xq[b * BLOCK..(b + 1) * BLOCK];
            let acc: i32 = w.iter().zip(x).map(|(&w, &x)| w as i32 * x as i32).sum();
            sum += wd[i].to_f32() * xd[b] * acc as f32;
        }
        sum
    })
}

/// The x86-64 kernels: one body, instantiated for AVX2 (`maddubs` then
/// `madd` to sum byte products into i32) and for AVX-512 VNNI (`dpbusd`,
/// one instruction, on 256-bit registers).
#[cfg(target_arch = "x86_64")]
macro_rules! x86_kernels {
    ($module:ident, $features:literal, |$w:ident, $x:ident| $byte_dot:block) => {
        pub mod $module {
            use std::arch::x86_64::*;

            use half::f16;

            use super::super::{BLOCK, GROUP};

            /// Unsigned bytes of `w` times signed bytes of `x`, summed by
            /// fours into i32 lanes.
            #[target_feature(enable = $features)]
            fn byte_dot($w: __m256i, $x: __m256i) -> __m256i $byte_dot

            #[target_feature(enable = $features)]
            fn horizontal_sum(v: __m256) -> f32 {
                let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
                let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
                _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
            }

            /// The group's eight half-precision values at `at`, as f32.
            ///
            /// # Safety
            /// `v` holds eight values from `at`.
            #[target_feature(enable = $features)]
            unsafe fn eight(v: &[f16], at: usize) -> __m256 {
                // SAFETY: by the caller's contract; unaligned load.
                _mm256_cvtph_ps(unsafe { _mm_loadu_si128(v.as_ptr().add(at).cast()) })
            }

            /// A group of Q4_1 rows . Q8 activations: unsigned nibbles
            /// times signed bytes, scaled in f32; the rows share each
            /// activation load, their scales and minimums come eight at a
            /// time.
            ///
            /// # Safety
            /// The CPU must have the module's features; `wd` and `wm` hold
            /// `GROUP * nb` values, `wq` 16 bytes per block, `xd` and `xs`
            /// `nb` values and `xq` 32 bytes per block.
            #[target_feature(enable = $features)]
            pub unsafe fn dot_q4_1(
                nb: usize,
                wd: &[f16],
                wm: &[f16],
                wq: &[u8],
                xd: &[f32],
                xs: &[f32],
                xq: &[i8],
            ) -> [f32; GROUP] {
                let nibble = _mm_set1_epi8(0x0F);
                let mut acc = [_mm256_setzero_ps(); GROUP];
                let mut minimum = _mm256_setzero_ps();
                for b in 0..nb {
                    // SAFETY: in bounds by the caller's contract; unaligned.
                    let (x, d, m) = unsafe {
                        (
                            _mm256_loadu_si256(xq.as_ptr().add(b * BLOCK).cast()),
                            eight(wd, b * GROUP),
                            eight(wm, b * GROUP),
                        )
                    };
                    let scales = _mm256_mul_ps(d, _mm256_set1_ps(xd[b]));
                    minimum = _mm256_fmadd_ps(m, _mm256_set1_ps(xs[b]), minimum);
                    for (k, acc) in acc.iter_mut().enumerate() {
                        let i = b * GROUP + k;
                        // SAFETY: as above.
                        let raw = unsafe { _mm_loadu_si128(wq.as_ptr().add(i * 16).cast()) };
                        let lo = _mm_and_si128(raw, nibble);
                        let hi = _mm_and_si128(_mm_srli_epi16::<4>(raw), nibble);
                        let sums = byte_dot(_mm256_set_m128i(hi, lo), x);
                        let scale = _mm256_permutevar8x32_ps(scales, _mm256_set1_epi32(k as i32));
                        *acc = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(sums), *acc);
                    }
                }
                let mut minimums = [0f32; GROUP];
                // SAFETY: eight f32 lanes into eight floats.
                unsafe { _mm256_storeu_ps(minimums.as_mut_ptr(), minimum) };
                std::array::from_fn(|k| horizontal_sum(acc[k]) + minimums[k])
            }

            /// A group of Q8_0 rows . Q8 activations: `|w|` times `x` with
            /// `w`'s sign.
            ///
            /// # Safety
            /// As [`dot_q4_1`], with 32 bytes per block in `wq`.
            #[target_feature(enable = $features)]
            pub unsafe fn dot_q8_0(
                nb: usize,
                wd: &[f16],
                wq: &[i8],
                xd: &[f32],
                xq: &[i8],
            ) -> [f32; GROUP] {
                let mut acc = [_mm256_setzero_ps(); GROUP];
                for b in 0..nb {
                    // SAFETY: in bounds by the caller's contract; unaligned.
                    let (x, d) = unsafe {
                        (
                            _mm256_loadu_si256(xq.as_ptr().add(b * BLOCK).cast()),
                            eight(wd, b * GROUP),
                        )
                    };
                    let scales = _mm256_mul_ps(d, _mm256_set1_ps(xd[b]));
                    for (k, acc) in acc.iter_mut().enumerate() {
                        let i = b * GROUP + k;
                        // SAFETY: as above.
                        let w = unsafe { _mm256_loadu_si256(wq.as_ptr().add(i * BLOCK).cast()) };
                        let sums = byte_dot(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
                        let scale = _mm256_permutevar8x32_ps(scales, _mm256_set1_epi32(k as i32));
                        *acc = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(sums), *acc);
                    }
                }
                std::array::from_fn(|k| horizontal_sum(acc[k]))
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    x86_kernels!(avx2, "avx2,fma,f16c", |w, x| {
        _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1))
    });
    x86_kernels!(vnni, "avx2,fma,f16c,avx512vnni,avx512vl", |w, x| {
        _mm256_dpbusd_epi32(_mm256_setzero_si256(), w, x)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-1, 1).
    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let h = (i as u32 ^ seed).wrapping_mul(2_654_435_761) >> 8;
                (h % 2000) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    /// Q4_1 bytes for `rows x cols` values, quantized the GGUF way.
    fn q4_1_bytes(v: &[f32]) -> Vec<u8> {
        let mut out = Vec::new();
        for block in v.chunks_exact(BLOCK) {
            let min = block.iter().cloned().fold(f32::MAX, f32::min);
            let max = block.iter().cloned().fold(f32::MIN, f32::max);
            let d = (max - min) / 15.0;
            out.extend_from_slice(&half::f16::from_f32(d).to_le_bytes());
            out.extend_from_slice(&half::f16::from_f32(min).to_le_bytes());
            let q = |x: f32| (((x - min) / d).round() as u8).min(15);
            for j in 0..16 {
                out.push(q(block[j]) | (q(block[j + 16]) << 4));
            }
        }
        out
    }

    /// Each product against f64 dot products of the dequantized rows and
    /// the unquantized activations.
    fn check(w: &QMatrix, x: &[f32], tokens: usize) {
        let mut out = vec![0f32; tokens * w.rows()];
        w.matmul(&QActivations::quantize(x, tokens), &mut out);
        let mut row = vec![0f32; w.cols];
        for r in 0..w.rows() {
            w.row(r, &mut row);
            for t in 0..tokens {
                let xt = &x[t * w.cols..(t + 1) * w.cols];
                let want: f64 = row.iter().zip(xt).map(|(a, b)| *a as f64 * *b as f64).sum();
                let norm: f64 = row
                    .iter()
                    .zip(xt)
                    .map(|(a, b)| (*a * *b).abs() as f64)
                    .sum();
                let got = out[t * w.rows() + r] as f64;
                // 8-bit activations: relative error about 1/254 per term.
                assert!(
                    (got - want).abs() <= 0.01 * norm + 1e-4,
                    "row {r} token {t}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn q4_1_products_match_the_dequantized_reference() {
        let (rows, cols) = (130, 96);
        let w = QMatrix::from_q4_1(rows, cols, &q4_1_bytes(&values(rows * cols, 1))).unwrap();
        check(&w, &values(cols, 7), 1);
        check(&w, &values(3 * cols, 9), 3);
    }

    #[test]
    fn q8_0_products_match_the_dequantized_reference() {
        let (rows, cols) = (70, 64);
        let w = QMatrix::from_f32(rows, cols, &values(rows * cols, 3)).unwrap();
        check(&w, &values(cols, 5), 1);
        check(&w, &values(2 * cols, 11), 2);
    }

    #[test]
    fn every_kernel_set_agrees_with_plain_rust() {
        let (rows, cols) = (2 * GROUP + 3, 128);
        let q4 = QMatrix::from_q4_1(rows, cols, &q4_1_bytes(&values(rows * cols, 2))).unwrap();
        let q8 = QMatrix::from_f32(rows, cols, &values(rows * cols, 4)).unwrap();
        let x = QActivations::quantize(&values(cols, 6), 1);
        for w in [&q4, &q8] {
            for kernels in Kernels::available() {
                for group in 0..rows.div_ceil(GROUP) {
                    let a = w.dot_group(kernels, group, &x, 0);
                    let b = w.dot_group(Kernels::portable(), group, &x, 0);
                    for k in 0..GROUP {
                        assert!(
                            (a[k] - b[k]).abs() <= 1e-4 * a[k].abs().max(1.0),
                            "{a:?} vs {b:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn rows_come_back_as_they_went_in() {
        let (rows, cols) = (GROUP + 5, 64);
        let v = values(rows * cols, 8);
        let w = QMatrix::from_f32(rows, cols, &v).unwrap();
        let stacked = QMatrix::stack(vec![
            QMatrix::from_f32(GROUP, cols, &v[..GROUP * cols]).unwrap(),
            QMatrix::from_f32(rows - GROUP, cols, &v[GROUP * cols..]).unwrap(),
        ])
        .unwrap();
        let (mut a, mut b) = (vec![0f32; cols], vec![0f32; cols]);
        for r in 0..rows {
            w.row(r, &mut a);
            stacked.row(r, &mut b);
            assert_eq!(a, b);
            for (got, want) in a.iter().zip(&v[r * cols..(r + 1) * cols]) {
                assert!(
                    (got - want).abs() <= 1.0 / 127.0,
                    "row {r}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn sizes_that_are_not_blocks_are_refused() {
        assert!(QMatrix::from_f32(2, 33, &[0.0; 66]).is_none());
        assert!(QMatrix::from_q4_1(2, 32, &[0; 39]).is_none());
    }
}
