//! Stand-in for `plot.rs` in a build without the `svg` feature.

use crate::bench::BenchRow;
use crate::error::{Error, Result};

/// A benchmark table as a chart: not compiled into this build.
pub fn bench_chart_svg(_rows: &[BenchRow]) -> Result<String> {
    Err(Error::NotCompiled {
        what: "benchmark chart drawing",
        feature: "svg",
    })
}
