//! Measured workloads shared by `xpu bench`, `xpu demo`, the examples and
//! the criterion benches: each runs real kernels and checks its result.

mod calibrate;
mod dense;
mod overhead;
mod table;

pub use crate::bench_plot::bench_chart_svg;
pub use calibrate::{calibrate, calibration_steps, CalibrateOptions, CalibrationStep};
pub use dense::{
    direct_sgemm, factor, gemm_a, gemm_b, spd_element, tiled_sgemm, DirectSgemm, FactorRun,
    GemmRun, TileLayout,
};
pub use overhead::{overhead, OverheadMode, OverheadRun};
pub use table::{bench_case, bench_kernels, measure, BenchCase, BenchRow};
