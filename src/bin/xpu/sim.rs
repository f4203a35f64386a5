//! `xpu sim`: a task graph on a simulated platform, one line per policy.

use std::path::{Path, PathBuf};

use clap::Args;
use xpu::sim::{simulate, Platform, SimOptions, SimReport, Workload};
use xpu::tiled::Algorithm;
use xpu::{Error, Policy};

use crate::report::bytes;
use crate::RuntimeArgs;

#[derive(Args)]
pub struct SimArgs {
    /// The platform description (TOML): memory nodes, links, units and
    /// their speeds. `platforms/` has 4gpu-8cpu, laptop-igpu and 64-units.
    #[arg(long, value_name = "FILE")]
    platform: PathBuf,
    /// The graph: cholesky, lu, gemm (tiled, --tiles per side) or random
    /// (--tasks updates of tiles drawn from --tiles).
    #[arg(long, default_value = "cholesky")]
    dag: String,
    /// Tiles per side (cholesky, lu, gemm), or tiles in the pool (random).
    #[arg(long, default_value_t = 16)]
    tiles: usize,
    /// Tile size: tiles are TILE x TILE f32 (1920: the GPUs of the shipped
    /// platforms compute a GEMM tile in about the time its copy takes).
    #[arg(long, default_value_t = 1920)]
    tile: usize,
    /// Tasks of a random graph.
    #[arg(long, default_value_t = 100_000)]
    tasks: usize,
    /// Seed of a random graph.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Run the graph under each of these policies, a line each (default:
    /// --policy).
    #[arg(long, value_delimiter = ',', value_parser = crate::parse_policy)]
    policies: Vec<Policy>,
    /// Start with empty performance models, as on a fresh data directory
    /// (default: models that know every kernel and link, as after
    /// `xpu calibrate`).
    #[arg(long)]
    fresh_models: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(runtime: &RuntimeArgs, args: &SimArgs) -> xpu::Result<()> {
    let platform = Platform::load(&args.platform)?;
    let workload = match args.dag.as_str() {
        "random" => Workload::Random {
            tasks: args.tasks,
            tiles: args.tiles,
            tile: args.tile,
            seed: args.seed,
        },
        name => Workload::Tiled {
            algorithm: Algorithm::parse(name).map_err(|_| {
                Error::Config(format!(
                    "unknown --dag `{name}` (cholesky, lu, gemm or random)"
                ))
            })?,
            tiles: args.tiles,
            tile: args.tile,
        },
    };
    let policies = if args.policies.is_empty() {
        vec![runtime.policy]
    } else {
        args.policies.clone()
    };
    let wants_profile = runtime.gantt.is_some() || runtime.trace.is_some();
    let mut reports = Vec::new();
    for (i, &policy) in policies.iter().enumerate() {
        let options = SimOptions {
            policy,
            calibrated: !args.fresh_models,
            profile: wants_profile,
            slowdown: runtime.slowdown,
        };
        let report = simulate(&platform, &workload, &options)?;
        if !args.json {
            if i == 0 {
                print_header(&platform, &report, args.fresh_models);
            }
            print_line(&report);
        }
        if let Some(profile) = &report.profile {
            let path = |p: &Option<PathBuf>| {
                p.as_deref()
                    .map(|p| per_policy(p, policy, policies.len() > 1))
            };
            crate::write_profile(
                profile,
                path(&runtime.trace).as_deref(),
                path(&runtime.gantt).as_deref(),
            )?;
        }
        reports.push(report);
    }
    let peak = xpu::host::process_peak_resident_bytes();
    if args.json {
        let text = serde_json::to_string_pretty(&serde_json::json!({
            "simulated": true,
            "reports": reports,
            "peak_resident_bytes": peak,
        }))
        .map_err(|e| Error::Io(e.to_string()))?;
        println!("{text}");
    } else {
        println!("peak resident memory of this process: {}", bytes(peak));
    }
    Ok(())
}

/// `gantt.svg` as `gantt-dmda.svg` when several policies each draw one.
fn per_policy(path: &Path, policy: Policy, several: bool) -> PathBuf {
    if !several {
        return path.to_path_buf();
    }
    let stem = path
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let name = match path.extension() {
        Some(ext) => format!("{stem}-{}.{}", policy.as_str(), ext.to_string_lossy()),
        None => format!("{stem}-{}", policy.as_str()),
    };
    path.with_file_name(name)
}

fn print_header(platform: &Platform, report: &SimReport, fresh: bool) {
    println!(
        "simulated: {} ({} tasks) on platform `{}` ({} units, {} memory nodes), {} models",
        report.workload,
        report.tasks,
        platform.name,
        platform.units.len(),
        platform.nodes.len(),
        if fresh { "fresh" } else { "calibrated" }
    );
    println!(
        "lower bound {:.4} s = max(critical path on the fastest units {:.4} s, work spread over the units {:.4} s)",
        report.lower_bound, report.critical_path, report.area_bound
    );
    println!("energy: modelled, each unit busy at its kind's power in the state it ran each task in (platforms/energy/; normal but under the energy policy) and idle power the rest of the makespan");
    println!(
        "{:<14} {:>12} {:>9} {:>12} {:>11} {:>10} {:>10} {:>9}",
        "policy", "makespan", "vs bound", "energy", "moved", "transfers", "evictions", "sim time"
    );
}

fn print_line(r: &SimReport) {
    println!(
        "{:<14} {:>10.4} s {:>8.2}x {:>10.1} J {:>11} {:>10} {:>10} {:>7.2} s",
        r.policy,
        r.makespan,
        r.ratio,
        r.energy_joules,
        bytes(r.bytes_moved),
        r.transfers,
        r.evictions,
        r.wall_seconds
    );
    if let Some(s) = &r.energy_search {
        let by_state = r.units.iter().fold([0u64; 3], |mut n, u| {
            for (n, t) in n.iter_mut().zip(u.tasks_by_state) {
                *n += t;
            }
            n
        });
        let kept = match s.decision_slowdown {
            Some(bound) => format!(
                "each decision within {bound:.3}x dmda's finish (the least energy of {} schedules tried)",
                s.tried
            ),
            None => format!(
                "dmda's choices (none of {} schedules tried saved energy within the limit)",
                s.tried
            ),
        };
        println!(
            "  energy: {:.2}x dmda's makespan ({:.4} s, limit {:.4} s), {:.1}% less energy than dmda's {:.1} J; \
             {kept}; tasks at low-power/normal/high-performance: {}/{}/{}",
            r.makespan / s.dmda_makespan,
            s.dmda_makespan,
            s.makespan_limit,
            100.0 * (1.0 - r.energy_joules / s.dmda_energy_joules),
            s.dmda_energy_joules,
            by_state[0],
            by_state[1],
            by_state[2],
        );
    }
}
