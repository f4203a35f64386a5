//! `xpu calibrate`: every kernel at a ladder of small sizes on every unit,
//! and copies to and from every device memory, measured into the
//! performance models and stored in the task history, so that `--policy
//! dmda` places well from the first task of the next run.

use std::time::Duration;

use clap::Args;
use xpu::bench::{calibrate, calibration_steps, CalibrateOptions};

use crate::report::progress;
use crate::RuntimeArgs;

#[derive(Args)]
pub struct CalibrateArgs {
    /// Two sizes (128, 256) and two runs each, at most 20 s, instead of
    /// four sizes (64 to 512) and three runs, at most 120 s.
    #[arg(long)]
    quick: bool,
    /// Only these kernels (repeat the option, or separate with commas).
    #[arg(long, value_delimiter = ',')]
    kernel: Vec<String>,
    /// Stop starting new measurements after this many seconds.
    #[arg(long)]
    seconds: Option<u64>,
}

pub fn run(runtime: &RuntimeArgs, args: &CalibrateArgs) -> xpu::Result<()> {
    if runtime.no_history {
        return Err(xpu::Error::Config(
            "--no-history: calibration would be lost at exit; drop --no-history \
             (or name a file with --history)"
                .into(),
        ));
    }
    let rt = runtime.build(None)?;
    let mut options = if args.quick {
        CalibrateOptions::quick()
    } else {
        CalibrateOptions::full()
    };
    options.kernels = args.kernel.clone();
    if let Some(s) = args.seconds {
        options.budget = Duration::from_secs(s);
    }
    let bar = progress(calibration_steps(&rt, &options) as u64, "calibrating");
    let steps = calibrate(&rt, &options, |step| {
        bar.set_message(format!("{} on unit {}", step.what, step.unit));
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    let measured = steps.iter().filter(|s| s.seconds > 0.0).count();
    println!(
        "calibrated {} kernel x unit x size cases and transfers ({} skipped: unsupported, too slow or over time)",
        measured,
        steps.len() - measured
    );
    println!(
        "{:<16} {:<5} {:<36} {:>8} {:>5} {:>7} {:>7}  law t = a*n^b + c (n bytes)",
        "kernel", "unit", "device", "samples", "fps", "error", "all"
    );
    let summaries = rt.perf_models().summaries();
    let percent = |e: Option<f64>| e.map_or("-".into(), |e| format!("{:.1}%", e * 100.0));
    for m in &summaries {
        let u = &rt.units()[m.unit];
        println!(
            "{:<16} {:<5} {:<36} {:>8} {:>5} {:>7} {:>7}  {}",
            m.kernel,
            format!("{} {}", u.id, u.kind),
            u.device.chars().take(36).collect::<String>(),
            m.samples,
            m.footprints,
            percent(m.median_known_error),
            percent((m.predictions_checked > 0).then_some(m.mean_error)),
            m.law.map_or("-".into(), |(a, b, c)| format!(
                "{a:.3e}*n^{b:.2} + {c:.2e}"
            )),
        );
    }
    let mut errors: Vec<f64> = summaries
        .iter()
        .filter_map(|m| m.median_known_error)
        .collect();
    errors.sort_by(f64::total_cmp);
    if let Some(median) = errors.get(errors.len() / 2) {
        println!(
            "median prediction error over {} models: {:.1}% (error: each model's median \
             |predicted - measured| / measured for sizes it had measured; all: the mean \
             over every prediction, the law's for unmeasured sizes included)",
            errors.len(),
            median * 100.0
        );
    }
    drop(rt);
    println!(
        "stored in {}",
        crate::history::path(runtime.history.as_ref()).display()
    );
    Ok(())
}
