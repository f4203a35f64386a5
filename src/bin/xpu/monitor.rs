//! `xpu monitor`: a live view of the host and every unit while a workload
//! runs, and the final figures as Prometheus metrics.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use clap::Args;
use xpu::monitor::Sample;
use xpu::{Placement, Runtime};

use crate::demo::{self, DemoArgs};
use crate::report::{bytes, tasks_finished};
use crate::RuntimeArgs;

#[derive(Args)]
pub struct MonitorArgs {
    /// Sampling period in milliseconds.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(10..))]
    period_ms: u64,
    /// What runs while monitoring: `demo` (the demo's workload, sized by
    /// the options below) or `idle` (nothing, for --seconds).
    #[arg(long, default_value = "demo", value_parser = ["demo", "idle"])]
    workload: String,
    /// How long to watch an idle runtime.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Print the runtime's and the host's metrics in the Prometheus text
    /// format at the end.
    #[arg(long)]
    prometheus: bool,
    #[command(flatten)]
    demo: DemoArgs,
}

pub fn run(runtime: &RuntimeArgs, args: &MonitorArgs) -> xpu::Result<()> {
    let rt = runtime.build(None)?;
    let period = Duration::from_millis(args.period_ms);
    let monitor = rt.monitor(period);
    let live = std::io::stdout().is_terminal();
    let start = Instant::now();
    // The workload's outputs stay alive while it runs, as a user's would.
    let workload = match args.workload.as_str() {
        "demo" => Some(demo::submit(&rt, &args.demo, Placement::Any)?),
        _ => None,
    };
    let tasks = workload.as_ref().map(|w| w.tasks);
    let done = |rt: &Runtime| match tasks {
        Some(n) => tasks_finished(rt) >= n,
        None => start.elapsed().as_secs_f64() >= args.seconds,
    };
    let mut shown = 0;
    loop {
        let finished = done(&rt);
        std::thread::sleep(if finished {
            period + period / 2
        } else {
            period
        });
        let samples = monitor.samples();
        for s in samples.iter().skip(shown) {
            if live {
                // Redraw in place: home, clear, the view.
                print!("\x1b[H\x1b[2J{}", view(s, tasks));
            } else {
                println!("{}", line(s));
            }
        }
        shown = samples.len();
        if finished {
            break;
        }
    }
    rt.synchronize()?;
    if args.prometheus {
        println!("{}", monitor.metrics());
    }
    runtime.export(&rt, None, None)
}

/// One sample as a compact line (when stdout is not a terminal).
fn line(s: &Sample) -> String {
    let units: Vec<String> = s
        .units
        .iter()
        .map(|u| {
            format!(
                "{}: {} done, {} queued, {:.0}%",
                u.label,
                u.tasks,
                u.queued,
                100.0 * u.utilisation
            )
        })
        .collect();
    format!(
        "t={:.2}s cpu {:.0}% mem {}/{} rss {} | {}",
        s.at,
        s.host.cpu_percent,
        bytes(s.host.memory_used),
        bytes(s.host.memory_total),
        bytes(s.host.process_resident),
        units.join(" | ")
    )
}

/// One sample as a full-screen view.
fn view(s: &Sample, tasks: Option<u64>) -> String {
    let mut out = format!(
        "xpu monitor  t={:.1}s  (Ctrl-C to stop)\n\nhost: cpu {:.0}%  memory {} of {}  this process {}\ncores:",
        s.at,
        s.host.cpu_percent,
        bytes(s.host.memory_used),
        bytes(s.host.memory_total),
        bytes(s.host.process_resident)
    );
    for (i, c) in s.host.cores.iter().enumerate() {
        out.push_str(&format!(" {i}:{c:>3.0}%"));
    }
    let done: u64 = s.units.iter().map(|u| u.tasks + u.failed).sum();
    match tasks {
        Some(n) => out.push_str(&format!("\n\nworkload: {done} of {n} tasks done")),
        None => out.push_str(&format!("\n\n{done} tasks done")),
    }
    out.push_str(&format!(
        ", {} waiting in shared queues\n\n",
        s.shared_queue
    ));
    out.push_str(&format!(
        "{:<14} {:>8} {:>7} {:>7}  {:<22} {:>11} {:>14} {:<17} {:>21}\n",
        "unit", "done", "failed", "queued", "busy", "node memory", "device says", "power", "energy"
    ));
    for u in &s.units {
        let filled = (u.utilisation * 20.0).round() as usize;
        out.push_str(&format!(
            "{:<14} {:>8} {:>7} {:>7}  [{:<20}] {:>11} {:>14} {:<17} {:>21}\n",
            u.label,
            u.tasks,
            u.failed,
            u.queued,
            "#".repeat(filled.min(20)),
            bytes(u.node_allocated as u64),
            u.device_reported.map_or_else(|| "-".to_string(), bytes),
            u.power.as_str(),
            format!("{:.1} J ({})", u.joules, u.energy_source)
        ));
    }
    out
}
