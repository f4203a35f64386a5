//! Simulated platforms: the runtime's scheduling policies placing a task
//! graph on hardware that is not here. A platform description (TOML, see
//! [`Platform`]) lists memory nodes with capacities, links with bandwidth
//! and latency, and units with their kind, node and speed per kernel
//! (GFLOP/s plus a fixed cost per task, or a fitted law as
//! `xpu perfmodel show` prints it). [`simulate`] runs no kernel: it
//! advances a virtual clock as tasks would run and data would move, with
//! the very policies a [`Runtime`](crate::Runtime) uses (they read the
//! virtual clock), and reports the makespan against a lower bound, bytes
//! moved, and (optionally) a [`Profile`](crate::trace::Profile) that
//! draws as the same Gantt chart a real run does.
//!
//! The workloads are the tiled algorithms the runtime runs
//! ([`crate::tiled::Algorithm`], the same task lists) and random graphs.
//! `platforms/` ships descriptions: `4gpu-8cpu.toml` (PCIe-like links),
//! `laptop-igpu.toml` (an integrated GPU sharing the host's memory) and
//! `64-units.toml`. `xpu sim` runs them from the command line.
//!
//! ```toml
//! name = "4 GPUs, 8 CPU cores"          # shown in every report
//! [[node]]                               # the first node is the host
//! name = "host"
//! [[node]]
//! name = "gpu{i}"                        # count = N repeats an entry, {i} = 0..N
//! count = 4
//! capacity_gib = 16                      # omitted: unbounded
//! [[link]]
//! between = ["host", "gpu{i}"]           # both directions, one queue each
//! count = 4
//! bandwidth_gbs = 12
//! latency_us = 10
//! [[unit]]
//! kind = "gpu"                           # cpu, gpu, tpu, npu, lpu, fpga, vpu
//! count = 4
//! node = "gpu{i}"
//! latency_us = 8                         # fixed cost per task
//! gflops = { gemm = 7000, trsm = 3000 }  # kernels it runs, and how fast
//! law = { syrk = { a = 1e-9, b = 1.0, c = 0.0 } }  # or seconds = a*bytes^b + c
//! resource = "card{i}"                   # units naming one device run one kernel at a time
//! ```
//!
//! Units that name one `resource` (two queues on one card, say) share it:
//! their kernels run one after another, and placement adds up their work
//! as that device's, as it does for real units on one device. The work
//! bound still counts them as separate units, so it is looser there.
//!
//! Nodes without a direct link copy through the host. Units of kind `cpu`
//! are taken to share the host's cores (as emulated units do on a real
//! machine); a unit runs only the kernels it has a speed for.

mod engine;
mod platform;
mod workload;

pub use engine::{simulate, EnergySearch, SimOptions, SimReport, SimUnitReport};
pub use platform::{Platform, SimLink, SimNode, SimUnit, Speed};
pub use workload::Workload;
