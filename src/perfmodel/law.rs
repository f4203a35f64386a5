//! A law `t = a * n^b + c` fitted to measured (size, seconds) points by
//! least squares on relative error, so that small sizes weigh as much as
//! large ones: for each exponent `b` the best `a, c >= 0` are a weighted
//! linear regression; `b` is searched on a grid, then refined.

/// `t = a * n^b + c`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Law {
    pub a: f64,
    pub b: f64,
    pub c: f64,
}

impl Law {
    /// The law's value at size `n`.
    pub fn eval(&self, n: f64) -> f64 {
        self.a * n.max(0.0).powf(self.b) + self.c
    }

    /// The best law through `points` (size, seconds, weight). With one
    /// distinct size the law is proportional (`b = 1, c = 0`); with two,
    /// `c = 0`. Returns `None` without points.
    ///
    /// ```
    /// use xpu::perfmodel::Law;
    /// let truth = Law { a: 2e-9, b: 1.5, c: 1e-5 };
    /// let points: Vec<(f64, f64, f64)> =
    ///     [1e3, 1e4, 1e5, 1e6].iter().map(|&n| (n, truth.eval(n), 1.0)).collect();
    /// let fit = Law::fit(&points).unwrap();
    /// assert!((fit.b - 1.5).abs() < 0.01);
    /// assert!((fit.eval(3e5) / truth.eval(3e5) - 1.0).abs() < 0.01);
    /// ```
    pub fn fit(points: &[(f64, f64, f64)]) -> Option<Law> {
        let points: Vec<(f64, f64, f64)> = points
            .iter()
            .copied()
            .filter(|&(n, t, w)| n > 0.0 && t > 0.0 && w > 0.0)
            .collect();
        let first = points.first()?;
        let distinct = points
            .iter()
            .any(|p| (p.0 - first.0).abs() > 1e-9 * first.0);
        if !distinct {
            let mean = points.iter().map(|p| p.1 * p.2).sum::<f64>()
                / points.iter().map(|p| p.2).sum::<f64>();
            return Some(Law {
                a: mean / first.0,
                b: 1.0,
                c: 0.0,
            });
        }
        let sizes = {
            let mut s: Vec<f64> = points.iter().map(|p| p.0).collect();
            s.sort_by(f64::total_cmp);
            s.dedup_by(|x, y| (*x - *y).abs() <= 1e-9 * *y);
            s.len()
        };
        let with_offset = sizes >= 3;
        let error = |b: f64| fit_at(&points, b, with_offset);
        // Coarse grid, then golden-section search around the best point.
        let mut best = (0.0, f64::INFINITY);
        let mut b = 0.0;
        while b <= 4.0 + 1e-12 {
            let e = error(b).1;
            if e < best.1 {
                best = (b, e);
            }
            b += 0.05;
        }
        let (mut lo, mut hi) = ((best.0 - 0.05).max(0.0), best.0 + 0.05);
        let ratio = (5f64.sqrt() - 1.0) / 2.0;
        for _ in 0..40 {
            let m1 = hi - ratio * (hi - lo);
            let m2 = lo + ratio * (hi - lo);
            if error(m1).1 <= error(m2).1 {
                hi = m2;
            } else {
                lo = m1;
            }
        }
        Some(error((lo + hi) / 2.0).0)
    }
}

/// The best `a, c >= 0` for exponent `b` (`c = 0` unless `with_offset`),
/// and its sum of squared relative errors.
fn fit_at(points: &[(f64, f64, f64)], b: f64, with_offset: bool) -> (Law, f64) {
    // Minimise sum w/t^2 (a x + c - t)^2 with x = n^b.
    let (mut sw, mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(n, t, w) in points {
        let x = n.powf(b);
        let w = w / (t * t);
        sw += w;
        sx += w * x;
        sy += w * t;
        sxx += w * x * x;
        sxy += w * x * t;
    }
    let through_zero = || Law {
        a: if sxx > 0.0 { (sxy / sxx).max(0.0) } else { 0.0 },
        b,
        c: 0.0,
    };
    let mut law = if with_offset {
        let det = sw * sxx - sx * sx;
        if det.abs() > 1e-300 {
            let a = (sw * sxy - sx * sy) / det;
            let c = (sy - a * sx) / sw;
            Law { a, b, c }
        } else {
            through_zero()
        }
    } else {
        through_zero()
    };
    if law.c < 0.0 {
        law = through_zero();
    }
    if law.a < 0.0 {
        law = Law {
            a: 0.0,
            b,
            c: sy / sw,
        };
    }
    let error = points
        .iter()
        .map(|&(n, t, w)| w * ((law.eval(n) - t) / t).powi(2))
        .sum();
    (law, error)
}
