//! Submission-time validation of a kernel's arguments: count, access
//! modes, dtypes and shapes, with errors that say what is wrong.

use super::{conv_out, gemm_dims, ArgMeta, Kernel, Mode};
use crate::dtype::DType;
use crate::error::{Error, Result};

impl Kernel {
    /// Checks argument count, modes, dtypes and shapes; called by `submit`.
    ///
    /// ```
    /// use xpu::{ArgMeta, DType, Kernel, Mode};
    /// let a = ArgMeta { shape: &[2, 3], dtype: DType::F32, mode: Mode::Read };
    /// let b = ArgMeta { shape: &[4, 5], dtype: DType::F32, mode: Mode::Read };
    /// let c = ArgMeta { shape: &[2, 5], dtype: DType::F32, mode: Mode::Write };
    /// let err = Kernel::gemm().check(&[a, b, c]).unwrap_err();
    /// assert!(err.to_string().contains("inner dimensions"));
    /// ```
    pub fn check(&self, args: &[ArgMeta<'_>]) -> Result<()> {
        if let Some(modes) = self.modes() {
            if modes.len() != args.len() {
                return Err(Error::ArgCount {
                    kernel: self.name().to_string(),
                    expected: modes.len(),
                    got: args.len(),
                });
            }
            for (i, (want, arg)) in modes.iter().zip(args).enumerate() {
                // A read-write access also satisfies a write-only slot.
                let ok = *want == arg.mode || (*want == Mode::Write && arg.mode == Mode::ReadWrite);
                if !ok {
                    return Err(Error::AccessMode {
                        kernel: self.name().to_string(),
                        arg: i,
                        name: None,
                        expected: want.as_str(),
                        got: arg.mode.as_str(),
                    });
                }
            }
        }
        self.check_dtypes(args)?;
        self.check_shapes(args)
    }

    fn check_dtypes(&self, args: &[ArgMeta<'_>]) -> Result<()> {
        let allowed: &[DType] = match self {
            Kernel::Noop => return Ok(()),
            Kernel::Custom(c) => return c.check(args),
            Kernel::Resize
            | Kernel::GaussianBlur { .. }
            | Kernel::Sobel
            | Kernel::RgbToGray
            | Kernel::Threshold { .. }
            | Kernel::GrayBlur { .. }
            | Kernel::SobelThreshold { .. } => &[DType::F32, DType::U8],
            Kernel::Potrf
            | Kernel::Trsm
            | Kernel::Syrk
            | Kernel::Getrf
            | Kernel::TrsmLower
            | Kernel::TrsmUpper => &[DType::F32, DType::F64],
            _ => &[DType::F32, DType::F64, DType::F16, DType::BF16],
        };
        let first = args[0].dtype;
        for (i, a) in args.iter().enumerate() {
            if !allowed.contains(&a.dtype) || a.dtype != first {
                let names: Vec<String> = allowed.iter().map(|d| d.to_string()).collect();
                return Err(Error::DType {
                    kernel: self.name().to_string(),
                    arg: i,
                    name: None,
                    got: a.dtype,
                    expected: if allowed.contains(&first) {
                        format!("{first} (the same as argument 0)")
                    } else {
                        format!("one of {}", names.join(", "))
                    },
                });
            }
        }
        Ok(())
    }

    fn check_shapes(&self, args: &[ArgMeta<'_>]) -> Result<()> {
        let s = |i: usize| args[i].shape;
        let rank = |i: usize, r: usize, name: &str| -> Result<()> {
            if s(i).len() == r {
                Ok(())
            } else {
                Err(self.shape_err(format!("{name} must have rank {r}, got shape {:?}", s(i))))
            }
        };
        let same = |i: usize, j: usize| -> Result<()> {
            if s(i) == s(j) {
                Ok(())
            } else {
                Err(self.shape_err(format!(
                    "argument {i} has shape {:?} but argument {j} has shape {:?}",
                    s(i),
                    s(j)
                )))
            }
        };
        let image = |i: usize| -> Result<()> {
            if matches!(s(i).len(), 2 | 3) && s(i).iter().all(|&d| d > 0) {
                Ok(())
            } else {
                Err(self.shape_err(format!("images are [H, W] or [H, W, C], got {:?}", s(i))))
            }
        };
        match self {
            Kernel::Noop | Kernel::Custom(_) => Ok(()),
            Kernel::Gemm {
                trans_a, trans_b, ..
            } => {
                rank(0, 2, "A")?;
                rank(1, 2, "B")?;
                rank(2, 2, "C")?;
                let (m, k) = gemm_dims(s(0), *trans_a);
                let (k2, n) = gemm_dims(s(1), *trans_b);
                if k != k2 {
                    return Err(self.shape_err(format!(
                        "inner dimensions differ: op(A) is {m}x{k}, op(B) is {k2}x{n}"
                    )));
                }
                if s(2) != [m, n] {
                    return Err(self.shape_err(format!("C must be {m}x{n}, got {:?}", s(2))));
                }
                Ok(())
            }
            Kernel::Unary(_)
            | Kernel::Softmax
            | Kernel::GaussianBlur { .. }
            | Kernel::Sobel
            | Kernel::Threshold { .. }
            | Kernel::SobelThreshold { .. } => {
                if !matches!(self, Kernel::Unary(_) | Kernel::Softmax) {
                    image(0)?;
                }
                if let Kernel::GaussianBlur { sigma } = self {
                    positive_sigma(self, *sigma)?;
                }
                same(0, 1)
            }
            Kernel::Binary(_) => {
                same(0, 1)?;
                same(0, 2)
            }
            Kernel::Reduce { axis, .. } => {
                if *axis >= s(0).len() {
                    return Err(
                        self.shape_err(format!("axis {axis} out of range for shape {:?}", s(0)))
                    );
                }
                let want = reduced_shape(s(0), *axis);
                if s(1) != want.as_slice() {
                    return Err(
                        self.shape_err(format!("output must have shape {want:?}, got {:?}", s(1)))
                    );
                }
                Ok(())
            }
            Kernel::LayerNorm { .. } => {
                let n = *s(0).last().ok_or_else(|| {
                    self.shape_err("input must have at least one axis".to_string())
                })?;
                for (i, name) in [(1, "gamma"), (2, "beta")] {
                    if s(i) != [n] {
                        return Err(
                            self.shape_err(format!("{name} must have shape [{n}], got {:?}", s(i)))
                        );
                    }
                }
                same(0, 3)
            }
            Kernel::Conv2d { stride, padding } => {
                rank(0, 4, "input (NCHW)")?;
                rank(1, 4, "weights (OIHW)")?;
                rank(2, 4, "output (NCHW)")?;
                let (x, w) = (s(0), s(1));
                if x[1] != w[1] {
                    return Err(self.shape_err(format!(
                        "input has {} channels, weights expect {}",
                        x[1], w[1]
                    )));
                }
                let oh = conv_out(x[2], w[2], *stride, *padding)
                    .ok_or_else(|| self.shape_err(format!("window {}x{} with stride {stride} and padding {padding} does not fit input {}x{}", w[2], w[3], x[2], x[3])))?;
                let ow = conv_out(x[3], w[3], *stride, *padding)
                    .ok_or_else(|| self.shape_err(format!("window {}x{} with stride {stride} and padding {padding} does not fit input {}x{}", w[2], w[3], x[2], x[3])))?;
                let want = [x[0], w[0], oh, ow];
                if s(2) != want {
                    return Err(self.shape_err(format!("output must be {want:?}, got {:?}", s(2))));
                }
                Ok(())
            }
            Kernel::Pool2d { window, stride, .. } => {
                rank(0, 4, "input (NCHW)")?;
                let x = s(0);
                let fit = |d: usize| conv_out(d, *window, *stride, 0);
                let (Some(oh), Some(ow)) = (fit(x[2]), fit(x[3])) else {
                    return Err(self.shape_err(format!(
                        "window {window} with stride {stride} does not fit input {}x{}",
                        x[2], x[3]
                    )));
                };
                let want = [x[0], x[1], oh, ow];
                if s(1) != want {
                    return Err(self.shape_err(format!("output must be {want:?}, got {:?}", s(1))));
                }
                Ok(())
            }
            Kernel::Resize => {
                image(0)?;
                image(1)?;
                if s(0).len() != s(1).len() || s(0).get(2) != s(1).get(2) {
                    return Err(self.shape_err(format!(
                        "input {:?} and output {:?} must have the same channels",
                        s(0),
                        s(1)
                    )));
                }
                Ok(())
            }
            Kernel::RgbToGray | Kernel::GrayBlur { .. } => {
                if let Kernel::GrayBlur { sigma } = self {
                    positive_sigma(self, *sigma)?;
                }
                rank(0, 3, "input")?;
                if s(0)[2] != 3 || s(1) != &s(0)[..2] {
                    return Err(self.shape_err(format!(
                        "input must be [H, W, 3] and output [H, W], got {:?} and {:?}",
                        s(0),
                        s(1)
                    )));
                }
                Ok(())
            }
            Kernel::Potrf | Kernel::Getrf => {
                rank(0, 2, "A")?;
                square(self, s(0))
            }
            Kernel::Trsm | Kernel::TrsmLower | Kernel::TrsmUpper => {
                let triangle = if matches!(self, Kernel::Trsm) {
                    "L"
                } else {
                    "LU"
                };
                rank(0, 2, triangle)?;
                rank(1, 2, "B")?;
                square(self, s(0))?;
                // TRSM_LL solves from the left (B's rows meet the
                // triangle), the others from the right (its columns).
                let (axis, what) = if matches!(self, Kernel::TrsmLower) {
                    (0, "rows")
                } else {
                    (1, "columns")
                };
                if s(1)[axis] != s(0)[0] {
                    return Err(self.shape_err(format!(
                        "B must have {} {what}, got shape {:?}",
                        s(0)[0],
                        s(1)
                    )));
                }
                Ok(())
            }
            Kernel::Syrk => {
                rank(0, 2, "A")?;
                rank(1, 2, "C")?;
                square(self, s(1))?;
                if s(0)[0] != s(1)[0] {
                    return Err(self.shape_err(format!(
                        "A must have {} rows, got shape {:?}",
                        s(1)[0],
                        s(0)
                    )));
                }
                Ok(())
            }
        }
    }
}

/// The shape of a reduction's output: the axis removed, `[1]` for a vector.
pub(crate) fn reduced_shape(shape: &[usize], axis: usize) -> Vec<usize> {
    let mut out: Vec<usize> = shape.to_vec();
    out.remove(axis);
    if out.is_empty() {
        out.push(1);
    }
    out
}

fn positive_sigma(k: &Kernel, sigma: f64) -> Result<()> {
    if sigma.is_finite() && sigma > 0.0 {
        Ok(())
    } else {
        Err(k.shape_err(format!("sigma must be > 0, got {sigma}")))
    }
}

fn square(k: &Kernel, s: &[usize]) -> Result<()> {
    if s[0] == s[1] {
        Ok(())
    } else {
        Err(k.shape_err(format!("the tile must be square, got {s:?}")))
    }
}
