//! Quantized matrices and the matrix-vector products of the decode step.
//!
//! Weights are kept in blocks of 32 values along a row, as in GGUF files,
//! but repacked at load time so that the scales are `f32` arrays beside the
//! quants: Q4_1 (4-bit values with a scale and a minimum per block, as
//! SmolLM2's files hold) and Q8_0 (8-bit values with a scale, which also
//! takes every other GGUF type after candle dequantizes it). Activations
//! are quantized to 8 bits per block before a product, so the inner loop is
//! integer multiply-adds: AVX2 where the CPU has it (checked at run time),
//! plain Rust elsewhere. Rows are split over the decode team
//! ([`super::team`]).

use std::sync::OnceLock;

use parking_lot::Mutex;

use super::team::Team;

/// Values per quantization block.
pub const BLOCK: usize = 32;

/// Rows computed per parallel work item.
const ROWS_PER_ITEM: usize = 64;

/// Rows computed together, sharing the activation loads.
const GROUP: usize = 8;

/// How a matrix's blocks are stored.
enum Blocks {
    /// `value = d * q + m`, `q` in 0..16; a block's 16 bytes hold values
    /// 0..16 in their low nibbles and 16..32 in their high nibbles.
    Q4_1 {
        d: Vec<f32>,
        m: Vec<f32>,
        qs: Vec<u8>,
    },
    /// `value = d * q`, `q` in -127..=127.
    Q8_0 { d: Vec<f32>, qs: Vec<i8> },
}

/// A `rows x cols` weight matrix, row-major, quantized by blocks of 32.
pub struct QMatrix {
    rows: usize,
    cols: usize,
    blocks: Blocks,
}

/// Half-precision bits to f32.
fn f16_at(bytes: &[u8], at: usize) -> f32 {
    half::f16::from_le_bytes([bytes[at], bytes[at + 1]]).to_f32()
}

impl QMatrix {
    /// Repacks GGUF Q4_1 blocks (20 bytes each: f16 scale, f16 minimum,
    /// 16 bytes of nibbles); `None` if the data is not `rows x cols` of them.
    pub fn from_q4_1(rows: usize, cols: usize, data: &[u8]) -> Option<QMatrix> {
        let n = Self::block_count(rows, cols)?;
        if data.len() != n * 20 {
            return None;
        }
        let mut d = Vec::with_capacity(n);
        let mut m = Vec::with_capacity(n);
        let mut qs = Vec::with_capacity(n * 16);
        for block in data.chunks_exact(20) {
            d.push(f16_at(block, 0));
            m.push(f16_at(block, 2));
            qs.extend_from_slice(&block[4..]);
        }
        Some(QMatrix {
            rows,
            cols,
            blocks: Blocks::Q4_1 { d, m, qs },
        })
    }

    /// Quantizes a row-major f32 matrix to Q8_0; `None` if the sizes do not fit.
    pub fn from_f32(rows: usize, cols: usize, values: &[f32]) -> Option<QMatrix> {
        let n = Self::block_count(rows, cols)?;
        if values.len() != n * BLOCK {
            return None;
        }
        let mut d = Vec::with_capacity(n);
        let mut qs = vec![0i8; n * BLOCK];
        for (block, q) in values.chunks_exact(BLOCK).zip(qs.chunks_exact_mut(BLOCK)) {
            d.push(quantize_block(block, q));
        }
        Some(QMatrix {
            rows,
            cols,
            blocks: Blocks::Q8_0 { d, qs },
        })
    }

    /// The rows of `parts` one after the other (all of one width); kept
    /// as they are when all share a format, else requantized to Q8_0.
    pub fn stack(parts: Vec<QMatrix>) -> Option<QMatrix> {
        let rows = parts.iter().map(|p| p.rows).sum();
        let cols = parts.first().map_or(0, |p| p.cols);
        let mut d = Vec::new();
        let mut m = Vec::new();
        let mut q4 = Vec::new();
        let mut q8 = Vec::new();
        let (mut fours, mut eights) = (0, 0);
        for p in &parts {
            match &p.blocks {
                Blocks::Q4_1 { d: pd, m: pm, qs } => {
                    fours += 1;
                    d.extend_from_slice(pd);
                    m.extend_from_slice(pm);
                    q4.extend_from_slice(qs);
                }
                Blocks::Q8_0 { d: pd, qs } => {
                    eights += 1;
                    d.extend_from_slice(pd);
                    q8.extend_from_slice(qs);
                }
            }
        }
        let blocks = if eights == 0 {
            Blocks::Q4_1 { d, m, qs: q4 }
        } else if fours == 0 {
            Blocks::Q8_0 { d, qs: q8 }
        } else {
            let mut values = vec![0f32; rows * cols];
            let mut at = 0;
            for p in &parts {
                for r in 0..p.rows {
                    p.row(r, &mut values[at..at + cols]);
                    at += cols;
                }
            }
            return QMatrix::from_f32(rows, cols, &values);
        };
        Some(QMatrix { rows, cols, blocks })
    }

    fn block_count(rows: usize, cols: usize) -> Option<usize> {
        cols.is_multiple_of(BLOCK).then(|| rows * cols / BLOCK)
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Bytes the matrix occupies.
    pub fn bytes(&self) -> usize {
        match &self.blocks {
            Blocks::Q4_1 { d, m, qs } => 4 * (d.len() + m.len()) + qs.len(),
            Blocks::Q8_0 { d, qs } => 4 * d.len() + qs.len(),
        }
    }

    /// Row `r` as f32 values (an embedding lookup).
    pub fn row(&self, r: usize, out: &mut [f32]) {
        let nb = self.cols / BLOCK;
        for (b, values) in out.chunks_exact_mut(BLOCK).enumerate().take(nb) {
            let i = r * nb + b;
            match &self.blocks {
                Blocks::Q4_1 { d, m, qs } => {
                    let q = &qs[i * 16..i * 16 + 16];
                    for j in 0..16 {
                        values[j] = d[i] * (q[j] & 0x0F) as f32 + m[i];
                        values[j + 16] = d[i] * (q[j] >> 4) as f32 + m[i];
                    }
                }
                Blocks::Q8_0 { d, qs } => {
                    for (v, &q) in values.iter_mut().zip(&qs[i * BLOCK..(i + 1) * BLOCK]) {
                        *v = d[i] * q as f32;
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
        // Rows outer, tokens inner: each row is read once for all tokens.
        let mut by_row = vec![0f32; if tokens == 1 { 0 } else { self.rows * tokens }];
        let target = if tokens == 1 {
            &mut *out
        } else {
            &mut by_row[..]
        };
        let items: Vec<Mutex<&mut [f32]>> = target
            .chunks_mut(ROWS_PER_ITEM * tokens)
            .map(Mutex::new)
            .collect();
        Team::global().run(items.len(), &|item| {
            let mut chunk = items[item].lock();
            let first = item * ROWS_PER_ITEM;
            let rows = chunk.len() / tokens;
            let mut r = 0;
            while r < rows {
                let group = if rows - r >= GROUP { GROUP } else { 1 };
                for t in 0..tokens {
                    let sums = self.dot_rows(kernels, first + r, group, x, t);
                    for (k, v) in sums.iter().take(group).enumerate() {
                        chunk[(r + k) * tokens + t] = *v;
                    }
                }
                r += group;
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

    /// Rows `r..r + count` (`count` 1 or [`GROUP`]) dotted with token `t`
    /// of `x`, in the first `count` entries.
    fn dot_rows(
        &self,
        kernels: Kernels,
        r: usize,
        count: usize,
        x: &QActivations,
        t: usize,
    ) -> [f32; GROUP] {
        let nb = self.cols / BLOCK;
        let w = r * nb..(r + count) * nb;
        let a = t * nb..(t + 1) * nb;
        let (xd, xs) = (&x.d[a.clone()], &x.s[a.clone()]);
        let xq = &x.qs[a.start * BLOCK..a.end * BLOCK];
        let mut out = [0f32; GROUP];
        // SAFETY: `Kernels::detect` picked kernels this CPU runs, and the
        // slices hold `count` rows of `nb` blocks and one token's activations.
        unsafe {
            match &self.blocks {
                Blocks::Q4_1 { d, m, qs } => {
                    let (d, m, q) = (&d[w.clone()], &m[w.clone()], &qs[w.start * 16..w.end * 16]);
                    if count == GROUP {
                        out = (kernels.q4_1.0)(nb, d, m, q, xd, xs, xq);
                    } else {
                        out[0] = (kernels.q4_1.1)(nb, d, m, q, xd, xs, xq)[0];
                    }
                }
                Blocks::Q8_0 { d, qs } => {
                    let (d, q) = (&d[w.clone()], &qs[w.start * BLOCK..w.end * BLOCK]);
                    if count == GROUP {
                        out = (kernels.q8_0.0)(nb, d, q, xd, xq);
                    } else {
                        out[0] = (kernels.q8_0.1)(nb, d, q, xd, xq)[0];
                    }
                }
            }
        }
        out
    }
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
        for (block, q) in values.chunks_exact(BLOCK).zip(qs.chunks_exact_mut(BLOCK)) {
            let scale = quantize_block(block, q);
            d.push(scale);
            s.push(scale * q.iter().map(|&v| v as i32).sum::<i32>() as f32);
        }
        QActivations { tokens, d, s, qs }
    }
}

type Q4_1Dot<const R: usize> =
    unsafe fn(usize, &[f32], &[f32], &[u8], &[f32], &[f32], &[i8]) -> [f32; R];
type Q8_0Dot<const R: usize> = unsafe fn(usize, &[f32], &[i8], &[f32], &[i8]) -> [f32; R];

/// The inner loops this CPU runs, for a group of rows and for one row.
#[derive(Clone, Copy)]
struct Kernels {
    q4_1: (Q4_1Dot<GROUP>, Q4_1Dot<1>),
    q8_0: (Q8_0Dot<GROUP>, Q8_0Dot<1>),
}

impl Kernels {
    /// Plain Rust, for any CPU.
    fn portable() -> Kernels {
        Kernels {
            q4_1: (dot_q4_1::<GROUP>, dot_q4_1::<1>),
            q8_0: (dot_q8_0::<GROUP>, dot_q8_0::<1>),
        }
    }

    /// Every set this CPU runs (checked at run time), the best last.
    fn available() -> Vec<Kernels> {
        let mut all = vec![Kernels::portable()];
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                use x86::avx2 as k;
                all.push(Kernels {
                    q4_1: (k::dot_q4_1::<GROUP>, k::dot_q4_1::<1>),
                    q8_0: (k::dot_q8_0::<GROUP>, k::dot_q8_0::<1>),
                });
                if is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512vl") {
                    use x86::vnni as k;
                    all.push(Kernels {
                        q4_1: (k::dot_q4_1::<GROUP>, k::dot_q4_1::<1>),
                        q8_0: (k::dot_q8_0::<GROUP>, k::dot_q8_0::<1>),
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

fn dot_q4_1<const R: usize>(
    nb: usize,
    wd: &[f32],
    wm: &[f32],
    wq: &[u8],
    xd: &[f32],
    xs: &[f32],
    xq: &[i8],
) -> [f32; R] {
    std::array::from_fn(|k| {
        let mut sum = 0f32;
        for b in 0..nb {
            let i = k * nb + b;
            let q = &wq[i * 16..i * 16 + 16];
            let x = &xq[b * BLOCK..(b + 1) * BLOCK];
            let mut acc = 0i32;
            for j in 0..16 {
                acc += (q[j] & 0x0F) as i32 * x[j] as i32 + (q[j] >> 4) as i32 * x[j + 16] as i32;
            }
            sum += wd[i] * xd[b] * acc as f32 + wm[i] * xs[b];
        }
        sum
    })
}

fn dot_q8_0<const R: usize>(nb: usize, wd: &[f32], wq: &[i8], xd: &[f32], xq: &[i8]) -> [f32; R] {
    std::array::from_fn(|k| {
        let mut sum = 0f32;
        for b in 0..nb {
            let i = k * nb + b;
            let w = &wq[i * BLOCK..(i + 1) * BLOCK];
            let x = &xq[b * BLOCK..(b + 1) * BLOCK];
            let acc: i32 = w.iter().zip(x).map(|(&w, &x)| w as i32 * x as i32).sum();
            sum += wd[i] * xd[b] * acc as f32;
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

            use super::super::BLOCK;

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

            /// `R` consecutive Q4_1 rows of `nb` blocks . Q8 activations:
            /// unsigned nibbles times signed bytes, scaled in f32; the rows
            /// share each activation load and keep independent accumulators.
            ///
            /// # Safety
            /// The CPU must have the module's features; `wd` and `wm` hold
            /// `R * nb` scales, `wq` 16 bytes per block, `xd` and `xs` `nb`
            /// values and `xq` 32 bytes per block.
            #[target_feature(enable = $features)]
            pub unsafe fn dot_q4_1<const R: usize>(
                nb: usize,
                wd: &[f32],
                wm: &[f32],
                wq: &[u8],
                xd: &[f32],
                xs: &[f32],
                xq: &[i8],
            ) -> [f32; R] {
                let nibble = _mm_set1_epi8(0x0F);
                let mut acc = [_mm256_setzero_ps(); R];
                let mut minimum = [0f32; R];
                for b in 0..nb {
                    // SAFETY: in bounds by the caller's contract; unaligned.
                    let x = unsafe { _mm256_loadu_si256(xq.as_ptr().add(b * BLOCK).cast()) };
                    for k in 0..R {
                        let i = k * nb + b;
                        // SAFETY: as above.
                        let raw = unsafe { _mm_loadu_si128(wq.as_ptr().add(i * 16).cast()) };
                        let lo = _mm_and_si128(raw, nibble);
                        let hi = _mm_and_si128(_mm_srli_epi16::<4>(raw), nibble);
                        let sums = byte_dot(_mm256_set_m128i(hi, lo), x);
                        let scale = _mm256_set1_ps(wd[i] * xd[b]);
                        acc[k] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(sums), acc[k]);
                        minimum[k] += wm[i] * xs[b];
                    }
                }
                std::array::from_fn(|k| horizontal_sum(acc[k]) + minimum[k])
            }

            /// `R` consecutive Q8_0 rows . Q8 activations: `|w|` times `x`
            /// with `w`'s sign.
            ///
            /// # Safety
            /// As [`dot_q4_1`], with 32 bytes per block in `wq`.
            #[target_feature(enable = $features)]
            pub unsafe fn dot_q8_0<const R: usize>(
                nb: usize,
                wd: &[f32],
                wq: &[i8],
                xd: &[f32],
                xq: &[i8],
            ) -> [f32; R] {
                let mut acc = [_mm256_setzero_ps(); R];
                for b in 0..nb {
                    // SAFETY: in bounds by the caller's contract; unaligned.
                    let x = unsafe { _mm256_loadu_si256(xq.as_ptr().add(b * BLOCK).cast()) };
                    for k in 0..R {
                        let i = k * nb + b;
                        // SAFETY: as above.
                        let w = unsafe { _mm256_loadu_si256(wq.as_ptr().add(i * BLOCK).cast()) };
                        let sums = byte_dot(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
                        let scale = _mm256_set1_ps(wd[i] * xd[b]);
                        acc[k] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(sums), acc[k]);
                    }
                }
                std::array::from_fn(|k| horizontal_sum(acc[k]))
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    x86_kernels!(avx2, "avx2,fma", |w, x| {
        _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1))
    });
    x86_kernels!(vnni, "avx2,fma,avx512vnni,avx512vl", |w, x| {
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
        let (rows, cols) = (2 * GROUP + 1, 128);
        let q4 = QMatrix::from_q4_1(rows, cols, &q4_1_bytes(&values(rows * cols, 2))).unwrap();
        let q8 = QMatrix::from_f32(rows, cols, &values(rows * cols, 4)).unwrap();
        let x = QActivations::quantize(&values(cols, 6), 1);
        for w in [&q4, &q8] {
            for kernels in Kernels::available() {
                for (r, count) in [(0, GROUP), (GROUP, GROUP), (2 * GROUP, 1)] {
                    let a = w.dot_rows(kernels, r, count, &x, 0);
                    let b = w.dot_rows(Kernels::portable(), r, count, &x, 0);
                    for k in 0..count {
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
    fn sizes_that_are_not_blocks_are_refused() {
        assert!(QMatrix::from_f32(2, 33, &[0.0; 66]).is_none());
        assert!(QMatrix::from_q4_1(2, 32, &[0; 39]).is_none());
    }
}
