//! Kernels from outside: a user kernel is a name, an access list, a check
//! of its arguments, a cost, and any of a CPU function, WGSL source, OpenCL
//! C source, or implementations that a named backend (one of an
//! embedder's own included) recognises. The runtime places it only on units
//! whose backend has an implementation.
//!
//! Device programs see the task's arguments in order (WGSL: storage
//! buffers at `@group(0) @binding(0..n)`; OpenCL C: `__global` pointers as
//! the first `n` kernel arguments), then the words of [`Launch::params`]
//! (WGSL: a uniform buffer at `@binding(n)`, padded to 16 bytes; OpenCL C:
//! one `uint` argument each), and run on [`Launch::grid`] (WGSL: workgroups;
//! OpenCL C: work items).

use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{Arg, ArgMeta, Kernel, Mode};
use crate::error::{Error, Result};
use crate::unit::UnitKind;

/// A user kernel's CPU implementation: it gets the task's arguments in the
/// order of its access list.
pub type CpuFn = dyn Fn(&mut [Arg<'_>]) -> Result<()> + Send + Sync;

/// Checks a user kernel's arguments (shapes, dtypes) at submission.
pub type CheckFn = dyn Fn(&[ArgMeta<'_>]) -> Result<()> + Send + Sync;

/// A user kernel's floating-point operations for its argument shapes.
pub type FlopsFn = dyn Fn(&[&[usize]]) -> f64 + Send + Sync;

/// How a device program is launched for its argument shapes.
pub type LaunchFn = dyn Fn(&[&[usize]]) -> Launch + Send + Sync;

/// One launch of a device program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// WGSL: workgroups in x, y, z; OpenCL C: work items in x, y, z.
    pub grid: [u32; 3],
    /// Words passed after the buffers (`f32` values as `to_bits()`).
    pub params: Vec<u32>,
}

impl Launch {
    /// One work item per element of a tensor of `len` elements (OpenCL C),
    /// or one per element in workgroups of `per_group` (WGSL); the length
    /// is the first parameter.
    ///
    /// ```
    /// use xpu::kernel::Launch;
    /// assert_eq!(Launch::per_element(1000, 256), Launch { grid: [4, 1, 1], params: vec![1000] });
    /// assert_eq!(Launch::per_element(1000, 1).grid, [1000, 1, 1]);
    /// ```
    pub fn per_element(len: usize, per_group: u32) -> Launch {
        Launch {
            grid: [(len as u32).div_ceil(per_group.max(1)).max(1), 1, 1],
            params: vec![len as u32],
        }
    }
}

/// Source of a device program: its text, entry point, and launch rule.
pub struct DeviceProgram {
    source: String,
    entry: String,
    launch: Box<LaunchFn>,
}

impl DeviceProgram {
    /// The program text.
    pub fn source(&self) -> &str {
        &self.source
    }
    /// The entry point (WGSL) or kernel function (OpenCL C).
    pub fn entry(&self) -> &str {
        &self.entry
    }
    /// The launch for these argument shapes.
    pub fn launch(&self, shapes: &[&[usize]]) -> Launch {
        (self.launch)(shapes)
    }
}

/// An implementation for a backend that can show a kernel its replicas in
/// host memory (the candle backend, whose CPU device keeps them there): a
/// CPU function, run on that backend's units of the listed kinds, on the
/// unit's own memory node. Given with
/// `KernelDef::backend("candle", HostKernel::new(&[UnitKind::Lpu], f))`.
pub struct HostKernel {
    kinds: Vec<UnitKind>,
    run: Box<CpuFn>,
}

impl HostKernel {
    /// `run` for the units of `kinds`.
    pub fn new<F>(kinds: &[UnitKind], run: F) -> HostKernel
    where
        F: Fn(&mut [Arg<'_>]) -> Result<()> + Send + Sync + 'static,
    {
        HostKernel {
            kinds: kinds.to_vec(),
            run: Box::new(run),
        }
    }
    /// Whether units of `kind` run it.
    pub fn runs_on(&self, kind: UnitKind) -> bool {
        self.kinds.contains(&kind)
    }
    /// Runs it on host views of the arguments.
    pub fn run(&self, args: &mut [Arg<'_>]) -> Result<()> {
        (self.run)(args)
    }
}

/// A kernel defined by the user: see [`Kernel::define`].
pub struct CustomKernel {
    id: u64,
    name: String,
    modes: Vec<Mode>,
    check: Option<Box<CheckFn>>,
    flops: Option<Box<FlopsFn>>,
    cpu: Option<Box<CpuFn>>,
    wgsl: Option<DeviceProgram>,
    opencl: Option<DeviceProgram>,
    backends: Vec<(String, Arc<dyn Any + Send + Sync>)>,
}

impl CustomKernel {
    /// A number no other user kernel of this process has: device programs
    /// are cached under it.
    pub fn id(&self) -> u64 {
        self.id
    }
    /// The name it was defined with.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The declared access modes, one per argument.
    pub fn modes(&self) -> &[Mode] {
        &self.modes
    }
    /// The CPU implementation, if any.
    pub fn cpu(&self) -> Option<&CpuFn> {
        self.cpu.as_deref()
    }
    /// The WGSL program, if any.
    pub fn wgsl(&self) -> Option<&DeviceProgram> {
        self.wgsl.as_ref()
    }
    /// The OpenCL C program, if any.
    pub fn opencl(&self) -> Option<&DeviceProgram> {
        self.opencl.as_ref()
    }
    /// The implementation given for the backend named `backend`, if it is
    /// of type `T`.
    pub fn implementation<T: Any + Send + Sync>(&self, backend: &str) -> Option<&T> {
        self.backends
            .iter()
            .find(|(name, _)| name == backend)
            .and_then(|(_, imp)| imp.downcast_ref::<T>())
    }
    /// Whether an implementation was given for the backend named `backend`.
    pub fn has_implementation(&self, backend: &str) -> bool {
        self.backends.iter().any(|(name, _)| name == backend)
    }

    pub(super) fn check(&self, args: &[ArgMeta<'_>]) -> Result<()> {
        self.check.as_ref().map_or(Ok(()), |check| check(args))
    }

    pub(super) fn flops(&self, shapes: &[&[usize]]) -> f64 {
        self.flops.as_ref().map_or(0.0, |f| f(shapes))
    }
}

impl std::fmt::Debug for CustomKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backends: Vec<&str> = self.backends.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("CustomKernel")
            .field("name", &self.name)
            .field("modes", &self.modes)
            .field("cpu", &self.cpu.is_some())
            .field("wgsl", &self.wgsl.is_some())
            .field("opencl", &self.opencl.is_some())
            .field("backends", &backends)
            .finish()
    }
}

/// A user kernel being defined: [`Kernel::define`], then implementations,
/// then [`KernelDef::build`] (or `Runtime::register`, which also validates
/// and builds its device programs).
pub struct KernelDef {
    kernel: CustomKernel,
}

impl KernelDef {
    pub(super) fn new(name: &str, modes: &[Mode]) -> KernelDef {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        KernelDef {
            kernel: CustomKernel {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                name: name.to_string(),
                modes: modes.to_vec(),
                check: None,
                flops: None,
                cpu: None,
                wgsl: None,
                opencl: None,
                backends: Vec::new(),
            },
        }
    }

    /// The name being defined.
    pub fn name(&self) -> &str {
        &self.kernel.name
    }

    /// Checks the arguments at submission (the argument count and access
    /// modes are checked before it); its error is the submission's.
    pub fn check<F>(mut self, check: F) -> KernelDef
    where
        F: Fn(&[ArgMeta<'_>]) -> Result<()> + Send + Sync + 'static,
    {
        self.kernel.check = Some(Box::new(check));
        self
    }

    /// The floating-point operations a task performs on its argument
    /// shapes (reported in profiles and used by placement).
    pub fn flops<F>(mut self, flops: F) -> KernelDef
    where
        F: Fn(&[&[usize]]) -> f64 + Send + Sync + 'static,
    {
        self.kernel.flops = Some(Box::new(flops));
        self
    }

    /// The CPU implementation: it runs on CPU units.
    pub fn cpu<F>(mut self, cpu: F) -> KernelDef
    where
        F: Fn(&mut [Arg<'_>]) -> Result<()> + Send + Sync + 'static,
    {
        self.kernel.cpu = Some(Box::new(cpu));
        self
    }

    /// A WGSL compute shader: it runs on GPU units.
    pub fn wgsl<F>(mut self, source: &str, entry: &str, launch: F) -> KernelDef
    where
        F: Fn(&[&[usize]]) -> Launch + Send + Sync + 'static,
    {
        self.kernel.wgsl = Some(program(source, entry, launch));
        self
    }

    /// An OpenCL C kernel: it runs on OpenCL units (FPGA, NPU).
    pub fn opencl<F>(mut self, source: &str, entry: &str, launch: F) -> KernelDef
    where
        F: Fn(&[&[usize]]) -> Launch + Send + Sync + 'static,
    {
        self.kernel.opencl = Some(program(source, entry, launch));
        self
    }

    /// An implementation for the backend named `backend` (see
    /// [`Backend::name`](crate::backend::Backend::name)), of a type that
    /// backend knows: an embedder's backend finds it with
    /// [`CustomKernel::implementation`].
    pub fn backend<T: Any + Send + Sync>(mut self, backend: &str, implementation: T) -> KernelDef {
        self.kernel
            .backends
            .push((backend.to_string(), Arc::new(implementation)));
        self
    }

    /// The kernel, once it has a name and at least one implementation.
    ///
    /// ```
    /// use xpu::{Kernel, Mode};
    /// let err = Kernel::define("nothing", &[Mode::Read]).build().unwrap_err();
    /// assert!(err.to_string().contains("no implementation"));
    /// ```
    pub fn build(self) -> Result<Kernel> {
        let k = self.kernel;
        let fail = |what: &str| {
            Err(Error::KernelSpec {
                field: "name".into(),
                what: format!("user kernel `{}`: {what}", k.name),
            })
        };
        if k.name.is_empty() {
            return fail("the name is empty");
        }
        if k.cpu.is_none() && k.wgsl.is_none() && k.opencl.is_none() && k.backends.is_empty() {
            return fail("no implementation (give a CPU function, WGSL, OpenCL C or a backend's)");
        }
        Ok(KernelDef { kernel: k }.into_kernel())
    }

    /// The kernel as it stands, unchecked.
    pub(super) fn into_kernel(self) -> Kernel {
        Kernel::Custom(Arc::new(self.kernel))
    }
}

fn program<F>(source: &str, entry: &str, launch: F) -> DeviceProgram
where
    F: Fn(&[&[usize]]) -> Launch + Send + Sync + 'static,
{
    DeviceProgram {
        source: source.to_string(),
        entry: entry.to_string(),
        launch: Box::new(launch),
    }
}
