//! # xpu — a heterogeneous compute runtime
//!
//! Submit kernels on tensors; xpu works out the dependencies, places each
//! task on a processing unit, moves the data that unit needs, runs a real
//! kernel there, and accounts for time and bytes moved.
//!
//! ```
//! use xpu::{DType, Kernel, Policy, Runtime};
//!
//! let rt = Runtime::builder().policy(Policy::WorkStealing).build()?;
//! let a = rt.tensor(&[64, 64], vec![1.0f32; 64 * 64])?;
//! let b = rt.tensor(&[64, 64], vec![0.5f32; 64 * 64])?;
//! let c = rt.zeros(&[64, 64], DType::F32)?;
//! let d = rt.zeros(&[64, 64], DType::F32)?;
//! rt.submit(&Kernel::gemm(), &[a.read(), b.read(), c.write()])?;        // c = a b
//! rt.submit(&Kernel::Unary(xpu::UnaryOp::Relu), &[c.read(), d.write()])?; // waits for the gemm
//! let out: Vec<f32> = rt.read(&d)?;                                        // waits for the relu
//! assert!(out.iter().all(|&v| v == 32.0));
//! # Ok::<(), xpu::Error>(())
//! ```
//!
//! ## The path of a task
//!
//! [`Runtime::submit`] checks the accesses against the kernel
//! ([`Kernel::check`]), finds the units whose backend can run it
//! (`Backend::supports`, answered from the plan its launch follows, minus
//! units out of service) and links the task
//! into the graph (`graph`: read after write, write after read, write
//! after write, plus explicit `after` edges). When its last predecessor
//! finishes, the task goes to the scheduling policy (`sched`); a unit's
//! worker (`worker`) pops it, asks the memory manager (`memory`) for a
//! valid replica of each argument on the unit's memory node (copying only
//! stale ones, evicting what no task pins), and calls `Backend::launch`
//! inside a panic boundary. Its outcome poisons or clears the tensors it
//! wrote, releases its successors, and is recorded (`trace`) and counted.
//!
//! ## Module map
//!
//! Each line: what the module owns; what it may import from the crate.
//!
//! | module | owns | may import |
//! | --- | --- | --- |
//! | `error`, `dtype`, `host` | the error enum; element types; host facts (cores, memory, CPU model) and their use, from `/proc`; the data directory | (leaves) |
//! | `unit` | unit kinds, unit listings, which units are out of service | (leaf) |
//! | `kernel` | the built-in kernels: op tables, checks, FLOPs and bytes, JSON specs; user kernels ([`KernelDef`]); launch arguments ([`Arg`], [`DeviceBuffer`]) | `dtype`, `unit`, `error` |
//! | `backend` | the [`Backend`] trait, the registry of built-in backends and their stub twins; `cpu/`, `gpu/`, `opencl/`, `candle/` | `kernel`, `unit`, `dtype`, `host`, `error` |
//! | `trace` | the profile: task records, transfer and memory logs (bounded), the clock, Chrome trace, Gantt chart | `kernel`, `perfmodel` (footprints), `unit`, `error` |
//! | `graph` | tasks, their dependencies and how failures travel; job state | `kernel`, `tensor`, `unit`, `error` |
//! | `tensor` | tensor handles, names, their dependency and replica state | `graph`, `memory`, `kernel`, `dtype`, `partition` (family link) |
//! | `partition` | [`Partition`]s and their [`Parts`]: regions, shared host memory, the family state that plans scatters and gathers, the copy kernels | `tensor`, `memory`, `kernel`, `graph`, `runtime` (making tensors) |
//! | `memory` | replicas (MSI), node pools, pins, eviction, transfers | `backend`, `trace`, `perfmodel`, `tensor`, `kernel`, `unit`, `error` |
//! | `perfmodel` | performance models: run times per kernel, unit and footprint, fitted laws, transfer models | `kernel`, `unit` |
//! | `sched` | the policies (`push` a ready task, `pop` one for a unit), over any task that is `Placeable` (the runtime's or the simulator's) on a wall or virtual clock; dmda places by the models | `graph`, `perfmodel`, `unit` |
//! | `dag` | a graph known in advance: dependencies from accesses, bottom levels, priorities | `kernel` |
//! | `history` | the task history ([`history::TaskStore`]: SQLite or memory): loads models at start, stores runs | `perfmodel`, `trace`, `host` (data dir), `error` |
//! | `monitor` | host sampling and Prometheus metrics from runtime snapshots | `memory`, `sched`, `unit`, `host` (no runtime internals) |
//! | `worker` | the state the workers share and their loop: fetch, launch, release, measure; prefetch for dmda | `graph`, `memory`, `sched`, `perfmodel`, `history`, `backend`, `trace`, `monitor` (snapshot type), `unit` |
//! | `job` | [`Job`], the public handle of a group of tasks | `graph` |
//! | `external` | [`External`]: tasks no unit runs, ended by their holder | `graph`, `memory`, `tensor`, `worker` (shared state) |
//! | `batch` | [`Batch`]: tasks recorded first, submitted with priorities from their bottom level | `runtime`, `perfmodel`, `kernel`, `tensor` |
//! | `runtime` | [`Runtime`]: tensors, submit, wait, read, cancel, shut down | everything above |
//! | `builder` | [`RuntimeBuilder`]: options, building a runtime | `backend`, `memory`, `runtime`, `sched`, `unit` |
//! | `sim` | simulated platforms: descriptions, workloads, the event loop driving the policies on a virtual clock | `sched`, `perfmodel`, `dag`, `tiled`, `trace`, `kernel`, `unit` |
//! | `array` | tensors from and into `ndarray` arrays (feature `ndarray`) | `runtime`, `tensor`, `dtype` |
//! | `cluster` | beyond one machine: SLURM batch scripts, submission, a process's place in a job; owner-computes placement across ranks (who runs a task, which tensors move); one graph run across ranks over a transport (threads, or MPI with feature `mpi`) | the public API, `perfmodel` (the plan digest's hash) |
//! | `service` | the job service (feature `serve`): job documents, tokens and roles, limits, the SQLite queue, the HTTP API and its client | the public API |
//! | `llm`, `vision`, `tiled`, `bench` | applications on the public API | the public API |
//! | `bin/xpu` | the command-line tool | the public API |

#[cfg(feature = "ndarray")]
mod array;
pub mod backend;
mod batch;
pub mod bench;
mod builder;
pub mod cluster;
mod dag;
pub mod dtype;
pub mod error;
mod external;
mod graph;
pub mod history;
pub mod host;
mod job;
pub mod kernel;
#[cfg(feature = "llm")]
pub mod llm;
pub mod memory;
pub mod monitor;
mod named;
mod partition;
pub mod perfmodel;
pub mod power;
mod profile;
mod runtime;
pub mod sched;
#[cfg(feature = "serve")]
pub mod service;
pub mod sim;
mod tensor;
pub mod tiled;
pub mod trace;
pub mod unit;
pub mod vision;

// Parts the cargo features leave out keep their API through stub twins,
// chosen here (the backends' twins are chosen in `backend`).
#[cfg(feature = "svg")]
#[path = "bench/plot.rs"]
mod bench_plot;
#[cfg(not(feature = "svg"))]
#[path = "bench/no_plot.rs"]
mod bench_plot;
#[cfg(feature = "svg")]
#[path = "trace/gantt.rs"]
mod gantt;
#[cfg(not(feature = "svg"))]
#[path = "trace/no_gantt.rs"]
mod gantt;
#[cfg(feature = "mpi")]
#[path = "cluster/mpi.rs"]
mod mpi_transport;
#[cfg(not(feature = "mpi"))]
#[path = "cluster/no_mpi.rs"]
mod mpi_transport;
#[cfg(feature = "png")]
#[path = "vision/png_file.rs"]
mod png_file;
#[cfg(not(feature = "png"))]
#[path = "vision/no_png.rs"]
mod png_file;
mod worker;

pub use backend::{
    Arg, ArgData, Backend, BackendStatus, DeviceBuffer, DiscoveryOptions, UnitDesc, UnitMemory,
};
pub use batch::Batch;
pub use builder::{RuntimeBuilder, DEFAULT_GATE_AFTER, DEFAULT_PROFILE_CAPACITY};
pub use dtype::{DType, Element};
pub use error::{Error, Result};
pub use external::External;
pub use job::Job;
pub use kernel::{ArgMeta, BinaryOp, Kernel, KernelDef, Launch, Mode, PoolOp, ReduceOp, UnaryOp};
pub use memory::{HostView, MemoryEvent, MemoryEventKind, NodeStats, ReplicaState, Transfer};
pub use monitor::Monitor;
pub use partition::{Partition, Parts};
pub use profile::UnitReport;
pub use runtime::{Runtime, Task, TaskOptions};
pub use sched::{Policy, QueueLengths};
pub use tensor::{Access, Tensor, TensorLabel};
pub use unit::{NodeId, Placement, UnitId, UnitInfo, UnitKind, HOST};

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
