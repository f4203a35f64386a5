//! `xpu history` and `xpu perfmodel show`: what the task history file
//! holds — tasks per kernel and unit over the tasks it keeps, and each
//! performance model with its samples, fitted law and fit error.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use xpu::history::{HistoryStore, TaskStore};
use xpu::perfmodel::{FootprintRow, Law, PerfModels};

#[derive(Args)]
pub struct HistoryArgs {
    /// Only this kernel.
    #[arg(long)]
    kernel: Option<String>,
    /// Also list the last N tasks stored: kernel, unit, memory node,
    /// start and run time, footprint (argument shapes, dtypes, modes and
    /// bytes), and the bytes fetched and the nodes they came from.
    #[arg(long, value_name = "N")]
    tasks: Option<usize>,
}

#[derive(Args)]
pub struct PerfmodelArgs {
    #[command(subcommand)]
    command: PerfmodelCommand,
}

#[derive(Subcommand)]
enum PerfmodelCommand {
    /// Each (kernel, unit) model: samples, footprints, the law
    /// t = a * n^b + c over footprint size n (bytes), and how far the law
    /// is from the measured means (fit error).
    ///
    /// Example: xpu perfmodel show --kernel gemm
    Show {
        /// Only this kernel.
        #[arg(long)]
        kernel: Option<String>,
        /// Only units whose identity contains this text (e.g. `cpu`,
        /// `wgpu`, `#1`).
        #[arg(long)]
        unit: Option<String>,
    },
    /// Draw one kernel's models as SVG: each unit's measured footprints
    /// (bytes against seconds, log-log) and its fitted law.
    ///
    /// Example: xpu perfmodel plot --kernel gemm --out gemm-models.svg
    Plot {
        #[arg(long)]
        kernel: String,
        /// Where to write the chart (default: xpu-perfmodel-KERNEL.svg).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn open(path: &Path) -> xpu::Result<HistoryStore> {
    if !path.exists() {
        return Err(xpu::Error::Io(format!(
            "no task history at {} yet: run `xpu demo` (or any command) first, \
             or name a file with --history",
            path.display()
        )));
    }
    let (store, warning) = HistoryStore::open(path)?;
    if let Some(w) = warning {
        eprintln!("xpu: {w}");
    }
    Ok(store)
}

/// `xpu history`.
pub fn run(path: &Path, args: &HistoryArgs) -> xpu::Result<()> {
    let store = open(path)?;
    println!("task history {}: {} runs", path.display(), store.runs()?);
    println!(
        "{:<16} {:<48} {:>8} {:>7} {:>12} {:>10}",
        "kernel", "unit", "tasks", "failed", "mean", "total"
    );
    for s in store.summary()? {
        if args.kernel.as_ref().is_some_and(|k| *k != s.kernel) {
            continue;
        }
        println!(
            "{:<16} {:<48} {:>8} {:>7} {:>9.1} us {:>8.3} s",
            s.kernel,
            s.unit,
            s.tasks,
            s.failed,
            s.mean_seconds * 1e6,
            s.total_seconds
        );
    }
    if let Some(n) = args.tasks {
        list_tasks(&store, n, args.kernel.as_deref())?;
    }
    Ok(())
}

/// The last `n` stored tasks (of `kernel`, if given), oldest first.
fn list_tasks(store: &HistoryStore, n: usize, kernel: Option<&str>) -> xpu::Result<()> {
    let rows: Vec<_> = store
        .tasks(if kernel.is_some() { usize::MAX } else { n })?
        .into_iter()
        .filter(|t| kernel.is_none_or(|k| k == t.kernel))
        .collect();
    println!();
    println!(
        "{:<12} {:<48} {:>4} {:>10} {:>10} {:>10} {:>10}  {:<8} footprint",
        "kernel", "unit", "node", "start", "run", "bytes", "fetched", "from"
    );
    for t in &rows[rows.len().saturating_sub(n)..] {
        let from: Vec<String> = t.fetched_from.iter().map(|n| n.to_string()).collect();
        println!(
            "{:<12} {:<48} {:>4} {:>8.3} s {:>7.1} us {:>10} {:>10}  {:<8} {}",
            t.kernel,
            t.unit,
            t.node,
            t.start,
            (t.end - t.start) * 1e6,
            t.bytes,
            t.bytes_fetched,
            if from.is_empty() {
                "-".to_string()
            } else {
                from.join(",")
            },
            if t.shapes.is_empty() { "-" } else { &t.shapes },
        );
    }
    Ok(())
}

/// The stored footprints, the unit identities they name, and the models
/// fitted to them.
fn stored_models(path: &Path) -> xpu::Result<(Vec<FootprintRow>, Vec<String>, PerfModels)> {
    let store = open(path)?;
    let rows = store.footprints()?;
    let mut units: Vec<String> = rows.iter().map(|r| r.unit.clone()).collect();
    units.sort();
    units.dedup();
    let models = PerfModels::new(units.len(), 1);
    models.import(&rows, &units);
    Ok((rows, units, models))
}

/// `xpu perfmodel ...`.
pub fn perfmodel(path: &Path, args: &PerfmodelArgs) -> xpu::Result<()> {
    match &args.command {
        PerfmodelCommand::Show { kernel, unit } => show(path, kernel.as_deref(), unit.as_deref()),
        PerfmodelCommand::Plot { kernel, out } => {
            let out = out
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("xpu-perfmodel-{kernel}.svg")));
            plot(path, kernel, &out)
        }
    }
}

/// `xpu perfmodel show`.
fn show(path: &Path, kernel: Option<&str>, unit: Option<&str>) -> xpu::Result<()> {
    let (rows, units, models) = stored_models(path)?;
    println!("performance models in {}", path.display());
    println!(
        "{:<16} {:<48} {:>8} {:>5}  {:<34} {:>9}",
        "kernel", "unit", "samples", "fps", "law t = a*n^b + c (n bytes)", "fit error"
    );
    for m in models.summaries() {
        let name = &units[m.unit];
        if kernel.is_some_and(|k| k != m.kernel) || unit.is_some_and(|u| !name.contains(u)) {
            continue;
        }
        let law = m.law.map(|(a, b, c)| Law { a, b, c });
        let fit_error = law.map(|l| {
            let errs: Vec<f64> = rows
                .iter()
                .filter(|r| r.kernel == m.kernel && r.unit == *name)
                .map(|r| (l.eval(r.size) - r.mean).abs() / r.mean)
                .collect();
            errs.iter().sum::<f64>() / errs.len().max(1) as f64
        });
        println!(
            "{:<16} {:<48} {:>8} {:>5}  {:<34} {:>9}",
            m.kernel,
            name,
            m.samples,
            m.footprints,
            law.map_or("-".into(), |l| format!(
                "{:.3e}*n^{:.2} + {:.2e}",
                l.a, l.b, l.c
            )),
            fit_error.map_or("-".into(), |e| format!("{:.1}%", e * 100.0)),
        );
    }
    Ok(())
}

/// `xpu perfmodel plot`.
fn plot(path: &Path, kernel: &str, out: &Path) -> xpu::Result<()> {
    let (rows, units, models) = stored_models(path)?;
    let summaries = models.summaries();
    let laws: Vec<(String, Option<Law>)> = units
        .iter()
        .enumerate()
        .map(|(u, name)| {
            let law = summaries
                .iter()
                .find(|m| m.kernel == kernel && m.unit == u)
                .and_then(|m| m.law)
                .map(|(a, b, c)| Law { a, b, c });
            (name.clone(), law)
        })
        .collect();
    crate::perfmodel_plot::write(kernel, &rows, &laws, out)?;
    println!("performance models of `{kernel}`: {}", out.display());
    Ok(())
}

/// The history file the commands use.
pub fn path(given: Option<&PathBuf>) -> PathBuf {
    given.cloned().unwrap_or_else(xpu::history::default_path)
}
