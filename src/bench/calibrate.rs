//! Calibration: every benchmark kernel at a ladder of small sizes on every
//! unit that runs it, and copies of a few sizes to and from every device
//! memory, so that the performance models know each (kernel, unit) pair
//! and each link before real work arrives. The runtime's workers measure
//! the tasks and copies as they always do when models are kept; a runtime
//! with a task history stores what was learnt when it shuts down.

use std::time::{Duration, Instant};

use super::{bench_case, bench_kernels, measure};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::kernel::{Kernel, UnaryOp};
use crate::runtime::Runtime;
use crate::unit::{Placement, UnitId, HOST};
use crate::TaskOptions;

/// What to calibrate and for how long.
#[derive(Debug, Clone)]
pub struct CalibrateOptions {
    /// Kernels (names); empty: every benchmark kernel.
    pub kernels: Vec<String>,
    /// Problem sizes, smallest first (matrices and images `n x n`).
    pub sizes: Vec<usize>,
    /// Runs of each case.
    pub reps: usize,
    /// Stop starting new cases after this long.
    pub budget: Duration,
    /// A case slower than this skips the larger sizes of its pair.
    pub slow_case: Duration,
}

impl CalibrateOptions {
    /// The full ladder: 64 to 512, three runs each, at most two minutes.
    pub fn full() -> CalibrateOptions {
        CalibrateOptions {
            kernels: Vec::new(),
            sizes: vec![64, 128, 256, 512],
            reps: 3,
            budget: Duration::from_secs(120),
            slow_case: Duration::from_millis(500),
        }
    }

    /// `--quick`: two sizes, two runs, at most twenty seconds.
    pub fn quick() -> CalibrateOptions {
        CalibrateOptions {
            kernels: Vec::new(),
            sizes: vec![128, 256],
            reps: 2,
            budget: Duration::from_secs(20),
            slow_case: Duration::from_millis(200),
        }
    }
}

/// One calibration step, as it finishes.
#[derive(Debug, Clone)]
pub struct CalibrationStep {
    /// `kernel` name, or `transfer` for a copy probe.
    pub what: String,
    pub unit: UnitId,
    pub size: usize,
    pub seconds: f64,
}

/// The steps `calibrate` will take (for a progress bar).
pub fn calibration_steps(rt: &Runtime, options: &CalibrateOptions) -> usize {
    let kernels = kernel_names(options).len();
    let devices = rt.units().iter().filter(|u| u.node != HOST).count();
    rt.units().len() * kernels * options.sizes.len() + devices * TRANSFER_SIZES.len()
}

/// Bytes copied by the transfer probes.
const TRANSFER_SIZES: [usize; 3] = [64 << 10, 1 << 20, 16 << 20];

fn kernel_names(options: &CalibrateOptions) -> Vec<String> {
    if options.kernels.is_empty() {
        bench_kernels().into_iter().map(String::from).collect()
    } else {
        options.kernels.clone()
    }
}

/// Runs the calibration on `rt`, calling `progress` after each step
/// (skipped steps included, with `seconds` 0). The runtime must keep
/// models: a policy that uses them, or a task history.
///
/// ```
/// use xpu::bench::{calibrate, CalibrateOptions};
/// use xpu::{Policy, Runtime};
/// let rt = Runtime::builder().cpu_units(1).device_discovery(false).policy(Policy::Dmda).build()?;
/// let mut options = CalibrateOptions::quick();
/// options.kernels = vec!["relu".into()];
/// let steps = calibrate(&rt, &options, |_| {})?;
/// assert_eq!(steps.len(), 2);
/// assert!(rt.perf_models().samples("relu", 0) >= 2);
/// # Ok::<(), xpu::Error>(())
/// ```
pub fn calibrate(
    rt: &Runtime,
    options: &CalibrateOptions,
    mut progress: impl FnMut(&CalibrationStep),
) -> Result<Vec<CalibrationStep>> {
    if !rt.keeps_models() {
        return Err(Error::Config(
            "calibration feeds the performance models: build the runtime with a policy \
             that uses them (dmda, dmdas) or with a task history"
                .into(),
        ));
    }
    let start = Instant::now();
    let mut steps = Vec::new();
    let mut record = |step: CalibrationStep, steps: &mut Vec<CalibrationStep>| {
        progress(&step);
        steps.push(step);
    };
    for name in kernel_names(options) {
        for unit in rt.units().iter().map(|u| u.id) {
            let mut skip = false;
            for &size in &options.sizes {
                let mut step = CalibrationStep {
                    what: name.clone(),
                    unit,
                    size,
                    seconds: 0.0,
                };
                if !skip && start.elapsed() < options.budget {
                    let case = bench_case(&name, size, DType::F32)?;
                    let t = Instant::now();
                    match measure(rt, unit, &case, options.reps, 1) {
                        Ok(_) => {
                            step.seconds = t.elapsed().as_secs_f64();
                            skip = t.elapsed() > options.slow_case;
                        }
                        // The unit does not run this kernel: no model to make.
                        Err(Error::NoCapableUnit { .. }) => skip = true,
                        Err(e) => return Err(e),
                    }
                }
                record(step, &mut steps);
            }
        }
    }
    for unit in rt.units().iter().filter(|u| u.node != HOST).map(|u| u.id) {
        for bytes in TRANSFER_SIZES {
            let mut step = CalibrationStep {
                what: "transfer".into(),
                unit,
                size: bytes,
                seconds: 0.0,
            };
            if start.elapsed() < options.budget {
                let t = Instant::now();
                if probe_transfer(rt, unit, bytes)? {
                    step.seconds = t.elapsed().as_secs_f64();
                }
            }
            record(step, &mut steps);
        }
    }
    Ok(steps)
}

/// Copies `bytes` to `unit`'s memory and back (through a relu there);
/// false if the unit runs no relu.
fn probe_transfer(rt: &Runtime, unit: UnitId, bytes: usize) -> Result<bool> {
    let n = (bytes / 4).max(1);
    let x = rt.tensor(&[n], vec![1.0f32; n])?;
    let y = rt.empty(&[n], DType::F32);
    let on = TaskOptions::default().on(Placement::Unit(unit));
    match rt.submit_with(&Kernel::Unary(UnaryOp::Relu), &[x.read(), y.write()], on) {
        Ok(_) => {}
        Err(Error::NoCapableUnit { .. }) => return Ok(false),
        Err(e) => return Err(e),
    }
    rt.read::<f32>(&y)?;
    Ok(true)
}
