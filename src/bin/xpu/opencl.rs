//! `xpu opencl`: the OpenCL devices and how they map to units; building
//! every kernel ahead of time into the program cache.

use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, Subcommand};
use xpu::backend::opencl::{self, Origin};

use crate::report::progress;

#[derive(Args)]
pub struct OpenClArgs {
    #[command(subcommand)]
    command: OpenClCommand,
}

#[derive(Subcommand)]
enum OpenClCommand {
    /// List every OpenCL platform and device, its type, and the unit kind
    /// the mapping rule gives it (or the one XPU_OPENCL_UNITS asks for).
    Devices,
    /// Compile every kernel in kernels/*.cl for every OpenCL unit, in every
    /// element type, into the program cache — the way FPGA flows compile
    /// offline — and report what was compiled and what came from the cache.
    ///
    /// Examples:
    ///   XPU_OPENCL_UNITS=fpga=0:0 xpu opencl build
    ///   xpu opencl build --units fpga=0:0,npu=0:0 --cache-dir /tmp/xpu-cache
    Build(BuildArgs),
}

#[derive(Args)]
struct BuildArgs {
    /// Which devices are units, as in XPU_OPENCL_UNITS (`fpga=0:0,npu=0:1`);
    /// default: XPU_OPENCL_UNITS, else the mapping rule.
    #[arg(long)]
    units: Option<String>,
    /// Cache root (programs go to DIR/opencl); default: XPU_CACHE_DIR,
    /// else $XDG_CACHE_HOME/xpu, else ~/.cache/xpu.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
}

pub fn run(args: &OpenClArgs) -> xpu::Result<()> {
    match &args.command {
        OpenClCommand::Devices => devices(),
        OpenClCommand::Build(b) => build(b),
    }
}

fn devices() -> xpu::Result<()> {
    let listing = opencl::list_devices().map_err(xpu::Error::Config)?;
    let requests = opencl::unit_requests(None)?;
    println!(
        "{:<6} {:<12} {:<40} {:<28} unit",
        "id", "type", "device", "platform"
    );
    for d in &listing {
        let unit = match &requests {
            Some(r) => {
                let kinds: Vec<String> = r
                    .iter()
                    .filter(|q| q.platform == d.platform && q.device == d.device)
                    .map(|q| format!("{} (XPU_OPENCL_UNITS)", q.kind))
                    .collect();
                if kinds.is_empty() {
                    "none (not in XPU_OPENCL_UNITS)".to_string()
                } else {
                    kinds.join(", ")
                }
            }
            None => match opencl::kind_by_rule(d) {
                Some(kind) => kind.to_string(),
                None => format!(
                    "none ({} devices are served by the cpu/wgpu backends)",
                    d.device_type.as_str()
                ),
            },
        };
        println!(
            "{:<6} {:<12} {:<40} {:<28} {unit}",
            format!("{}:{}", d.platform, d.device),
            d.device_type.as_str(),
            d.name,
            d.platform_name
        );
    }
    Ok(())
}

fn build(args: &BuildArgs) -> xpu::Result<()> {
    let requests = opencl::unit_requests(args.units.as_deref())?;
    let cache = args.cache_dir.clone().or_else(opencl::default_cache_dir);
    let backend = opencl::discover(requests.as_deref(), cache.as_deref()).map_err(|reason| {
        xpu::Error::BackendRequired {
            backend: "opencl".into(),
            reason,
        }
    })?;
    match backend.cache_dir() {
        Some(dir) => println!("program cache: {}", dir.display()),
        None => println!("program cache: none (no cache directory could be found)"),
    }
    let start = Instant::now();
    let bar = progress(backend.program_count() as u64, "building kernels");
    let report = backend.build_all(|b| {
        bar.set_message(format!("unit {} {}", b.unit, b.program));
        bar.inc(1);
    });
    bar.finish_and_clear();
    let report = report?;
    println!(
        "{:<6} {:<18} {:<10} {:>9}",
        "unit", "program", "origin", "seconds"
    );
    for b in &report {
        let origin = match b.origin {
            Origin::Compiled => "compiled",
            Origin::Cached => "cached",
            Origin::Rebuilt => "rebuilt (cache entry was corrupt)",
        };
        println!(
            "{:<6} {:<18} {:<10} {:>9.3}",
            b.unit, b.program, origin, b.seconds
        );
    }
    let count = |o: Origin| report.iter().filter(|b| b.origin == o).count();
    println!(
        "{} programs in {:.2} s: {} compiled, {} from the cache, {} rebuilt",
        report.len(),
        start.elapsed().as_secs_f64(),
        count(Origin::Compiled),
        count(Origin::Cached),
        count(Origin::Rebuilt)
    );
    Ok(())
}
