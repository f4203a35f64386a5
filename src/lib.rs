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

pub mod backend;
pub mod bench;
mod builder;
pub mod dtype;
pub mod error;
mod graph;
pub mod host;
mod job;
pub mod kernel;
#[cfg(feature = "candle")]
pub mod llm;
pub mod memory;
pub mod monitor;
mod profile;
mod runtime;
pub mod sched;
mod tensor;
pub mod tiled;
pub mod trace;
pub mod unit;
pub mod vision;
mod worker;

pub use backend::{
    Arg, ArgData, Backend, BackendStatus, DeviceBuffer, DiscoveryOptions, UnitDesc, UnitMemory,
};
pub use builder::{RuntimeBuilder, DEFAULT_PROFILE_CAPACITY};
pub use dtype::{DType, Element};
pub use error::{Error, Result};
pub use job::Job;
pub use kernel::{ArgMeta, BinaryOp, Kernel, Mode, PoolOp, ReduceOp, UnaryOp};
pub use memory::{MemoryEvent, MemoryEventKind, NodeStats, ReplicaState, Transfer};
pub use monitor::Monitor;
pub use profile::UnitReport;
pub use runtime::{Runtime, Task, TaskOptions};
pub use sched::{Policy, QueueLengths};
pub use tensor::{Access, Tensor, TensorLabel};
pub use unit::{NodeId, Placement, UnitId, UnitInfo, UnitKind, HOST};

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
