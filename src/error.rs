//! The one error type of the crate.
//!
//! Every fallible call returns [`Result<T>`](crate::Result). Variants carry what
//! a user needs to fix the problem: the kernel, the argument, the shapes.

use crate::dtype::DType;
use crate::tensor::TensorLabel;

/// Everything that can go wrong in xpu.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// A kernel was given the wrong number of tensor accesses.
    #[error("kernel `{kernel}` takes {expected} tensor {}, got {got}", plural(*expected, "access", "accesses"))]
    ArgCount {
        kernel: String,
        expected: usize,
        got: usize,
    },
    /// An argument has a shape the kernel cannot use.
    #[error("kernel `{kernel}`: {what}")]
    Shape { kernel: String, what: String },
    /// An argument has a dtype the kernel cannot use.
    #[error(
        "kernel `{kernel}`: argument {arg}{} has dtype {got}, expected {expected}",
        name_text(name)
    )]
    DType {
        kernel: String,
        arg: usize,
        /// The tensor's name, if it has one.
        name: Option<String>,
        got: DType,
        expected: String,
    },
    /// An argument is accessed with a mode the kernel does not allow.
    #[error(
        "kernel `{kernel}`: argument {arg}{} must be accessed as {expected}, got {got}",
        name_text(name)
    )]
    AccessMode {
        kernel: String,
        arg: usize,
        /// The tensor's name, if it has one.
        name: Option<String>,
        expected: &'static str,
        got: &'static str,
    },
    /// Data given to create a tensor does not match its shape.
    #[error("tensor of shape {shape:?} needs {expected} elements, got {got}")]
    DataLength {
        shape: Vec<usize>,
        expected: usize,
        got: usize,
    },
    /// Bytes given to create a tensor, or a buffer to read it into, do
    /// not match its shape and dtype.
    #[error("tensor of shape {shape:?} {dtype} needs {expected} bytes, got {got}")]
    ByteLength {
        shape: Vec<usize>,
        dtype: DType,
        expected: usize,
        got: usize,
    },
    /// A tensor was read back with the wrong element type.
    #[error("{tensor} has dtype {actual}, read as {requested}")]
    ReadDType {
        tensor: TensorLabel,
        actual: DType,
        requested: DType,
    },
    /// A tensor handle from another runtime was used.
    #[error("{tensor} belongs to another runtime")]
    ForeignTensor { tensor: TensorLabel },
    /// The same tensor appears twice in one task and at least once written.
    #[error("{tensor} appears twice in one task and is written: aliasing is not allowed")]
    AliasedWrite { tensor: TensorLabel },
    /// A partition that does not fit the tensor, or one it already has.
    #[error("cannot cut {tensor} into {partition}: {reason}")]
    Partition {
        tensor: TensorLabel,
        partition: String,
        reason: String,
    },
    /// A task writes a part of a partition whose parts overlap.
    #[error("{tensor} is one of the overlapping parts of {whole} ({partition}): it is read-only; write the whole, or a part of a partition without a halo")]
    ReadOnlyPart {
        tensor: TensorLabel,
        whole: TensorLabel,
        partition: String,
    },
    /// A task writes a tensor and also names one that shares elements with
    /// it (its whole, one of its parts, or a part of another partition).
    #[error("a task that writes {tensor} cannot also access {other}: they share elements")]
    PartsOverlap {
        tensor: TensorLabel,
        other: TensorLabel,
    },
    /// No unit can run the kernel with these arguments (or the pin excludes all of them).
    #[error("no unit can run kernel `{kernel}`{detail}")]
    NoCapableUnit { kernel: String, detail: String },
    /// A unit id or kind that does not exist.
    #[error("unknown unit: {0}")]
    UnknownUnit(String),
    /// A tensor was read before any task or constructor wrote it.
    #[error("{tensor} is read before it was ever written")]
    Uninitialised { tensor: TensorLabel },
    /// A kernel failed while running.
    #[error("task {task} (`{kernel}` on unit {unit}) failed: {reason}")]
    KernelFailed {
        task: u64,
        kernel: String,
        unit: usize,
        reason: String,
    },
    /// A task did not run because a task it depends on failed.
    #[error("task {task} did not run: it depends on failed task {failed_task}: {cause}")]
    DependencyFailed {
        task: u64,
        failed_task: u64,
        cause: Box<Error>,
    },
    /// An [`External`](crate::External) task was failed by its holder, or
    /// dropped before it was completed.
    #[error("external task {task} failed: {reason}")]
    ExternalFailed { task: u64, reason: String },
    /// A tensor's content is lost because the task that wrote it failed.
    #[error("{tensor} is poisoned: task {failed_task} that writes it failed: {cause}")]
    Poisoned {
        tensor: TensorLabel,
        failed_task: u64,
        cause: Box<Error>,
    },
    /// A memory node has no room for a request even with every replica
    /// that no task pins evicted: the replicas pinned by running and
    /// fetching tasks (`pinned` bytes, by `pinned_by`) leave too little.
    #[error("memory node {node} is out of memory: {requested} bytes requested, {pinned} of {capacity} bytes are pinned by running or fetching tasks{}", pinned_by_text(pinned_by))]
    OutOfMemory {
        node: usize,
        requested: usize,
        pinned: usize,
        capacity: usize,
        /// The tasks pinning replicas on the node (empty: none, or host memory).
        pinned_by: Vec<u64>,
    },
    /// A task was cancelled before it started, or reads data that a
    /// cancelled task should have written (`cancelled_task` names it).
    #[error("{}", cancelled_text(*task, *cancelled_task))]
    Cancelled { task: u64, cancelled_task: u64 },
    /// A device stopped working (driver reset, device removed): its unit is
    /// taken out of service and the replicas on its memory are lost.
    #[error("device lost on {backend}: {message}")]
    DeviceLost { backend: String, message: String },
    /// A unit is out of service because its device was lost.
    #[error("unit {unit} is down: {reason}")]
    UnitDown { unit: usize, reason: String },
    /// A kernel spec (JSON) that names no built-in kernel or has a bad
    /// parameter; `field` is the offending field.
    #[error("kernel spec: field `{field}`: {what}")]
    KernelSpec { field: String, what: String },
    /// A kernel found one of its arguments unusable (wrong dtype, not
    /// writable, on the wrong memory).
    #[error("argument {arg}{}: {what}", name_text(name))]
    Argument {
        arg: usize,
        name: Option<String>,
        what: String,
    },
    /// A device reported an error.
    #[error("device error on {backend}: {message}")]
    Device { backend: String, message: String },
    /// A required backend failed to come up.
    #[error("backend `{backend}` is required (XPU_REQUIRE_BACKENDS) but unavailable: {reason}")]
    BackendRequired { backend: String, reason: String },
    /// A part of the library left out of this build by its cargo features.
    #[error("{what} is not compiled in (feature `{feature}`)")]
    NotCompiled {
        what: &'static str,
        feature: &'static str,
    },
    /// An invalid runtime or command-line configuration.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The runtime was shut down.
    #[error("the runtime is shut down")]
    ShutDown,
    /// Input/output failure (writing a report, reading a file).
    #[error("i/o error: {0}")]
    Io(String),
    /// A model file that cannot be used: not GGUF, truncated, or a model
    /// this runtime does not run.
    #[error("model file {path}: {what}")]
    Model { path: String, what: String },
    /// A trace file that is not JSON in the trace-event format xpu writes.
    #[error("not a valid xpu trace: {0}")]
    Trace(String),
    /// A job document (see `service::JobDocument`) that cannot run: the
    /// field is its path in the document (`tasks[2].args[0]`).
    #[error("job document: `{field}`: {what}")]
    JobDocument { field: String, what: String },
    /// A request without a valid bearer token (the job service).
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// A token whose role does not reach the route's.
    #[error("forbidden: this needs role {needs}; the token's role is {has}")]
    Forbidden { needs: String, has: String },
    /// A request over one of its role's limits.
    #[error("over the limit `{limit}` of role {role}: {requested} asked, {allowed} allowed")]
    LimitExceeded {
        limit: &'static str,
        role: String,
        allowed: u64,
        requested: u64,
    },
    /// Something named that does not exist (or that the caller may not see).
    #[error("not found: {0}")]
    NotFound(String),
    /// A request the job service cannot take now (a duplicate, a drain).
    #[error("conflict: {0}")]
    Conflict(String),
    /// An error answer from an `xpu serve` server, as its client sees it.
    #[error("server answered {status}: {message}")]
    Server { status: u16, message: String },
}

fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 {
        one
    } else {
        many
    }
}

fn name_text(name: &Option<String>) -> String {
    name.as_ref().map(|n| format!(" `{n}`")).unwrap_or_default()
}

impl Error {
    /// The error with the names of the arguments' tensors filled in, for
    /// errors about one argument; `names[i]` is argument `i`'s name. Shape
    /// errors, whose text may speak of several arguments, list the named
    /// ones at the end.
    pub(crate) fn with_argument_names(self, names: &[Option<&str>]) -> Error {
        let name = |i: usize| names.get(i).copied().flatten().map(str::to_string);
        match self {
            Error::DType {
                kernel,
                arg,
                name: None,
                got,
                expected,
            } => Error::DType {
                kernel,
                arg,
                name: name(arg),
                got,
                expected,
            },
            Error::AccessMode {
                kernel,
                arg,
                name: None,
                expected,
                got,
            } => Error::AccessMode {
                kernel,
                arg,
                name: name(arg),
                expected,
                got,
            },
            Error::Shape { kernel, what } => {
                let named: Vec<String> = names
                    .iter()
                    .enumerate()
                    .filter_map(|(i, n)| n.map(|n| format!("{i} `{n}`")))
                    .collect();
                let what = if named.is_empty() {
                    what
                } else {
                    format!("{what} (arguments {})", named.join(", "))
                };
                Error::Shape { kernel, what }
            }
            e => e,
        }
    }
}

fn pinned_by_text(tasks: &[u64]) -> String {
    const SHOWN: usize = 8;
    if tasks.is_empty() {
        return String::new();
    }
    let mut ids: Vec<String> = tasks.iter().take(SHOWN).map(u64::to_string).collect();
    if tasks.len() > SHOWN {
        ids.push(format!("and {} more", tasks.len() - SHOWN));
    }
    format!(
        " ({} {})",
        plural(tasks.len(), "task", "tasks"),
        ids.join(", ")
    )
}

fn cancelled_text(task: u64, cancelled_task: u64) -> String {
    if task == cancelled_task {
        format!("task {task} was cancelled before it started")
    } else {
        format!(
            "task {task} did not run: it reads data of task {cancelled_task}, which was cancelled"
        )
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.to_string())
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
