//! xpu's C ABI: a runtime, its units, tensors from host buffers, tasks by
//! kernel spec (the JSON the kernel table serialises) or by a typed struct,
//! waiting, reading back, and user CPU kernels as C function pointers.
//!
//! The header `include/xpu.h` is generated from this crate by cbindgen at
//! build time (`build.rs`) and checked against the committed copy by the
//! test suite. Every entry point runs inside [`status::guard`], so errors
//! and panics come back as an [`XpuStatus`] with a message for
//! [`xpu_last_error`], never as an unwinding Rust panic.
//!
//! | module | owns |
//! | --- | --- |
//! | `status` | status codes, the thread-local last error, the panic guard, pointer checks |
//! | `runtime` | creating and freeing a runtime, its options, its units, waiting for all tasks |
//! | `tensor` | tensors from host buffers, reading them back |
//! | `task` | submitting by spec or typed struct, task handles |
//! | `user_kernel` | user CPU kernels as C function pointers |

pub mod runtime;
pub mod status;
pub mod task;
pub mod tensor;
pub mod user_kernel;

pub use runtime::{XpuRuntime, XpuRuntimeOptions, XpuUnitInfo};
pub use status::{xpu_last_error, XpuStatus};
pub use task::{XpuAccess, XpuGemm, XpuKernel, XpuTask};
pub use tensor::{XpuDtype, XpuTensor};
pub use user_kernel::{XpuBuffer, XpuCpuKernelFn, XpuMode};
