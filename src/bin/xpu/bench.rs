//! `xpu bench`: kernel x unit x size tables, and whole DAGs.

use clap::Args;
use xpu::bench::{self, bench_kernels, BenchRow};
use xpu::tiled::Algorithm;
use xpu::{DType, Error, Policy, Runtime, UnitId, UnitKind};

use crate::report::progress;
use crate::RuntimeArgs;

#[derive(Args)]
pub struct BenchArgs {
    /// Kernels to time, comma-separated, or `all`.
    #[arg(long, value_delimiter = ',', default_value = "gemm")]
    kernel: Vec<String>,
    /// Units to time on: ids or kinds (cpu, gpu, fpga, ...), comma-separated.
    /// Default: every unit.
    #[arg(long, value_delimiter = ',')]
    unit: Vec<String>,
    /// Problem sizes: matrices are n x n, images n x n pixels.
    #[arg(long, value_delimiter = ',', default_value = "256,512,1024")]
    sizes: Vec<usize>,
    /// Element type: f32, f64, f16, bf16 or u8 (kernels without it are skipped).
    #[arg(long, default_value = "f32", value_parser = parse_dtype)]
    dtype: DType,
    /// Timed runs per cell (the best is reported), after one warm-up run;
    /// with --dag cholesky|lu, whole factorisations (a trace keeps the
    /// last).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Tasks submitted back to back per timed run (time is per task):
    /// shows a device's throughput rather than its latency per launch.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Draw the table as a chart to FILE (SVG): throughput against size,
    /// one panel per kernel, one line per unit.
    #[arg(long, value_name = "FILE")]
    plot: Option<std::path::PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Time a whole task graph instead: `cholesky` (tiled Cholesky, n^3/3
    /// flops), `lu` (tiled LU without pivoting, 2n^3/3 flops), `gemm` (tiled
    /// SGEMM against one direct call of the kernel), or
    /// the runtime's own cost per empty task: `indep` (no data), `chain` (one
    /// tensor read-written by every task), `spread` (1,000 tensors in turn).
    #[arg(long)]
    dag: Option<String>,
    /// Number of empty tasks for --dag indep|chain|spread.
    #[arg(long, default_value_t = 100_000)]
    tasks: usize,
    /// Matrix size for --dag.
    #[arg(long, default_value_t = 4096)]
    size: usize,
    /// Tile size for --dag.
    #[arg(long, default_value_t = 256)]
    tile: usize,
    /// With --dag cholesky|lu: the tiles as tensors of their own
    /// (`separate`), or as the 2-D blocks of one plain tensor
    /// (`partitioned`: scattered into the tiles before the timed
    /// factorisation and gathered after, both timed on their own).
    #[arg(long, default_value = "separate", value_parser = parse_layout)]
    layout: bench::TileLayout,
    /// With --dag: run the graph once under each of these policies, one
    /// line each (e.g. eager,round-robin,work-stealing,dmda), instead of
    /// under --policy.
    #[arg(long, value_delimiter = ',', value_parser = crate::parse_policy)]
    policies: Vec<Policy>,
}

fn parse_layout(s: &str) -> Result<bench::TileLayout, String> {
    bench::TileLayout::parse(s).map_err(|e| e.to_string())
}

fn parse_dtype(s: &str) -> Result<DType, String> {
    DType::parse(s).map_err(|e| e.to_string())
}

pub fn run(runtime: &RuntimeArgs, args: &BenchArgs) -> xpu::Result<()> {
    if let Some(other) = args.dag.as_deref().filter(|d| {
        !matches!(
            *d,
            "cholesky" | "lu" | "gemm" | "indep" | "chain" | "spread"
        )
    }) {
        return Err(Error::Config(format!(
            "unknown --dag `{other}` (cholesky, lu, gemm, indep, chain or spread)"
        )));
    }
    if !args.policies.is_empty() {
        if args.dag.is_none() {
            return Err(Error::Config(
                "--policies compares policies on a whole graph: add --dag".into(),
            ));
        }
        for &policy in &args.policies {
            let mut under = runtime.clone();
            under.policy = policy;
            let rt = under.build(None)?;
            run_on(&rt, args)?;
        }
        return Ok(());
    }
    // Kernel tables default to one CPU unit using every core, so the CPU
    // row shows the machine.
    let rt = runtime.build(args.dag.is_none().then_some(1))?;
    run_on(&rt, args)?;
    runtime.export(&rt, None, None)
}

fn run_on(rt: &Runtime, args: &BenchArgs) -> xpu::Result<()> {
    match args.dag.as_deref() {
        Some(name @ ("cholesky" | "lu")) => dag_factor(rt, args, Algorithm::parse(name)?),
        Some("gemm") => dag_gemm(rt, args),
        Some(mode) => dag_overhead(rt, args, mode),
        None => kernel_table(rt, args),
    }
}

fn print_json<T: serde::Serialize>(value: &T) -> xpu::Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Io(e.to_string()))?;
    println!("{text}");
    Ok(())
}

fn dag_factor(rt: &Runtime, args: &BenchArgs, algorithm: Algorithm) -> xpu::Result<()> {
    // A warm-up run, then --reps timed ones (a fresh matrix each), the
    // best reported, as the kernel table does; the profile (and so a
    // trace or Gantt chart) keeps the last. For f32, a direct SGEMM call
    // follows each run: the rate a factorisation is judged by, taken
    // alternately with it so that drift on a shared machine falls on both.
    let mut sgemm =
        (args.dtype == DType::F32).then(|| bench::DirectSgemm::new(args.size.min(2048)));
    let mut runs = Vec::with_capacity(args.reps + 1);
    for _ in 0..=args.reps.max(1) {
        rt.clear_profile();
        runs.push(bench::factor(
            rt,
            algorithm,
            args.size,
            args.tile,
            args.dtype,
            args.layout,
        )?);
        if let Some(sgemm) = sgemm.as_mut() {
            sgemm.time_once()?;
        }
    }
    let mut timed = runs.split_off(1);
    timed.sort_by(|a, b| b.gflops.total_cmp(&a.gflops));
    let median = timed[timed.len() / 2].gflops;
    let run = &timed[0];
    let sgemm = sgemm.map(|s| s.best());
    if args.json {
        let mut best = serde_json::to_value(run).map_err(|e| Error::Io(e.to_string()))?;
        best["median_gflops"] = median.into();
        best["runs"] = timed.len().into();
        best["direct_sgemm"] =
            serde_json::to_value(&sgemm).map_err(|e| Error::Io(e.to_string()))?;
        return print_json(&best);
    }
    // The same-run SGEMM reference on the same line: one line per run.
    let reference = sgemm.map_or(String::new(), |g| {
        format!(
            "; {:.2}x direct SGEMM {n}x{n} ({:.1} GFLOP/s, same run)",
            run.gflops / g.gflops,
            g.gflops,
            n = g.size
        )
    });
    let copies = match run.layout {
        bench::TileLayout::Separate => String::new(),
        bench::TileLayout::Partitioned => format!(
            "; partitioned: scatter {:.1} ms before, gather and read {:.1} ms after",
            run.split_seconds * 1e3,
            run.assemble_seconds * 1e3
        ),
    };
    println!(
        "xpu {}{} {}: {:.1} GFLOP/s{reference} (best of {} after a warm-up, median {:.1}; {} tasks, {:.3} s, tile {}, residual {:.2e}, policy {}{copies})",
        run.algorithm,
        run.size,
        run.dtype,
        run.gflops,
        timed.len(),
        median,
        run.tasks,
        run.seconds,
        run.tile,
        run.residual,
        rt.policy().as_str()
    );
    Ok(())
}

fn dag_overhead(rt: &Runtime, args: &BenchArgs, mode: &str) -> xpu::Result<()> {
    let run = bench::overhead(rt, bench::OverheadMode::parse(mode)?, args.tasks)?;
    if args.json {
        return print_json(&run);
    }
    println!(
        "xpu {mode} {:.3} us/task ({:.2} M tasks/s, {} tasks, policy {})",
        run.us_per_task,
        run.tasks_per_second * 1e-6,
        run.tasks,
        rt.policy().as_str()
    );
    Ok(())
}

fn dag_gemm(rt: &Runtime, args: &BenchArgs) -> xpu::Result<()> {
    let direct = bench::direct_sgemm(args.size, args.reps)?;
    let tiled = bench::tiled_sgemm(rt, args.size, args.tile, args.reps)?;
    if args.json {
        return print_json(&serde_json::json!({ "direct": direct, "tiled": tiled }));
    }
    println!(
        "xpu sgemm{} direct: {:.1} GFLOP/s",
        direct.size, direct.gflops
    );
    println!(
        "xpu sgemm{} tiled DAG (tile {}): {:.1} GFLOP/s = {:.0}% of direct, max error {:.1e}, policy {}",
        tiled.size,
        args.tile,
        tiled.gflops,
        100.0 * tiled.gflops / direct.gflops,
        tiled.max_error,
        rt.policy().as_str()
    );
    Ok(())
}

/// The units named on the command line (ids or kinds), or all of them.
fn select_units(rt: &Runtime, names: &[String]) -> xpu::Result<Vec<UnitId>> {
    if names.is_empty() {
        return Ok(rt.units().iter().map(|u| u.id).collect());
    }
    let mut ids = Vec::new();
    for name in names {
        if let Ok(id) = name.parse::<UnitId>() {
            if id >= rt.units().len() {
                return Err(Error::UnknownUnit(format!(
                    "unit {id} (this machine has {})",
                    rt.units().len()
                )));
            }
            ids.push(id);
            continue;
        }
        let kind = UnitKind::parse(name)?;
        let found: Vec<UnitId> = rt
            .units()
            .iter()
            .filter(|u| u.kind == kind)
            .map(|u| u.id)
            .collect();
        if found.is_empty() {
            return Err(Error::UnknownUnit(format!(
                "no {kind} unit on this machine (see `xpu info`)"
            )));
        }
        ids.extend(found);
    }
    Ok(ids)
}

fn kernel_table(rt: &Runtime, args: &BenchArgs) -> xpu::Result<()> {
    let units = select_units(rt, &args.unit)?;
    let kernels: Vec<String> = if args.kernel.iter().any(|k| k == "all") {
        bench_kernels().iter().map(|s| s.to_string()).collect()
    } else {
        args.kernel.clone()
    };
    let cases = kernels
        .iter()
        .flat_map(|k| args.sizes.iter().map(move |&s| (k.clone(), s)))
        .map(|(k, s)| bench::bench_case(&k, s, args.dtype))
        .collect::<xpu::Result<Vec<_>>>()?;
    let bar = progress((cases.len() * units.len()) as u64, "benchmarking");
    let mut rows: Vec<BenchRow> = Vec::new();
    let mut skipped = Vec::new();
    for case in &cases {
        for &unit in &units {
            bar.set_message(format!(
                "{} {} on unit {unit}",
                case.kernel.name(),
                case.size
            ));
            match bench::measure(rt, unit, case, args.reps, args.batch) {
                Ok(row) => rows.push(row),
                Err(e @ (Error::NoCapableUnit { .. } | Error::DType { .. })) => skipped.push(
                    format!("{} {} on unit {unit}: {e}", case.kernel.name(), case.size),
                ),
                Err(e) => return Err(e),
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    if let Some(path) = &args.plot {
        std::fs::write(path, bench::bench_chart_svg(&rows)?)
            .map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
        eprintln!("chart: {}", path.display());
    }
    if args.json {
        return print_json(&rows);
    }
    println!(
        "{:<14} {:<5} {:<6} {:>6} {:<5} {:>11} {:>10} {:>9}",
        "kernel", "unit", "kind", "size", "dtype", "time", "GFLOP/s", "GB/s"
    );
    for r in &rows {
        let kind = if r.emulated {
            format!("{}*", r.kind)
        } else {
            r.kind.clone()
        };
        println!(
            "{:<14} {:<5} {:<6} {:>6} {:<5} {:>9.3}ms {:>10.2} {:>9.2}",
            r.kernel,
            r.unit,
            kind,
            r.size,
            r.dtype.to_string(),
            r.seconds * 1e3,
            r.gflops,
            r.gbps
        );
    }
    if rows.iter().any(|r| r.emulated) {
        println!("* emulated: the device is not the hardware its kind names");
    }
    for s in skipped {
        println!("skipped: {s}");
    }
    Ok(())
}
