//! Job documents: a task graph as data — named tensors (given inline, filled
//! with one value, or left for a task to write) and tasks that name a
//! kernel by its spec and their tensors by name — checked whole before
//! anything runs, then run on a [`Runtime`].
//!
//! ```
//! use xpu::service::{JobDocument, Limits, NoUploads};
//! let doc: JobDocument = serde_json::from_str(r#"{
//!     "tensors": {
//!         "a": {"dtype": "f32", "shape": [2, 2], "data": [1, 2, 3, 4]},
//!         "b": {"dtype": "f32", "shape": [2, 2], "fill": 1},
//!         "c": {"dtype": "f32", "shape": [2, 2]}
//!     },
//!     "tasks": [{"kernel": {"name": "gemm"}, "args": ["a", "b", "c"]}],
//!     "results": ["c"]
//! }"#)?;
//! let rt = xpu::Runtime::builder().device_discovery(false).build()?;
//! let checked = doc.check(&rt, &Limits::unlimited(), &NoUploads)?;
//! assert_eq!(checked.bytes, 3 * 16);
//! let results = doc.run(&rt, &xpu::Job::new(), &NoUploads, &|_| ())?;
//! assert_eq!(results[0].values(), vec![3.0, 3.0, 7.0, 7.0]);
//!
//! let bad: JobDocument = serde_json::from_str(
//!     r#"{"tensors": {"x": {"dtype": "f32", "shape": [3]}},
//!         "tasks": [{"kernel": {"name": "relu"}, "args": ["x", "x"]}]}"#)?;
//! let err = bad.check(&rt, &Limits::unlimited(), &NoUploads).unwrap_err();
//! assert!(err.to_string().contains("tasks[0].args[0]"), "{err}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::limits::Limits;
use crate::{
    Access, ArgMeta, DType, Error, Job, Kernel, Mode, Placement, Result, Runtime, Task,
    TaskOptions, Tensor,
};

/// A job: tensors by name, tasks over them in submission order (each
/// depends on the earlier tasks that touch the same tensors), and the
/// tensors to return.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobDocument {
    /// The tensors, by name (letters, digits, `_ - . [ ] ,`; at most 64).
    pub tensors: BTreeMap<String, TensorSpec>,
    /// The tasks, in submission order.
    pub tasks: Vec<TaskSpec>,
    /// The tensors whose contents the job returns (default: none).
    #[serde(default)]
    pub results: Vec<String>,
}

/// One tensor of a job.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TensorSpec {
    /// f32, f64, f16, bf16, u8 or u32.
    #[schema(value_type = String, example = "f32")]
    pub dtype: DType,
    pub shape: Vec<usize>,
    /// Every element, row-major (for small tensors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Vec<f64>>,
    /// One value for every element.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fill: Option<f64>,
    /// The id of bytes uploaded before (`POST /v1/uploads`): the elements,
    /// little-endian, row-major (for large tensors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<String>,
}

/// Where uploaded tensor contents are found (the job service keeps them
/// per subject); [`NoUploads`] where there are none.
pub trait Uploads {
    /// The upload's size in bytes, if it exists.
    fn size(&self, id: &str) -> Option<u64>;
    /// Its bytes.
    fn read(&self, id: &str) -> Result<Vec<u8>>;
}

/// No uploads: a document that names one is refused.
pub struct NoUploads;

impl Uploads for NoUploads {
    fn size(&self, _: &str) -> Option<u64> {
        None
    }

    fn read(&self, id: &str) -> Result<Vec<u8>> {
        Err(Error::NotFound(format!("upload {id:?}")))
    }
}

/// One task: a kernel by its spec (`{"name": "gemm", "alpha": 2}`, see
/// [`Kernel::from_spec`]) and its tensors.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    #[schema(value_type = Object, example = json!({"name": "gemm", "alpha": 1.0}))]
    pub kernel: serde_json::Value,
    /// The tensors in the kernel's argument order: a name (the access mode
    /// the kernel declares) or `{"tensor": NAME, "mode": "read" | "write" |
    /// "rw"}`.
    pub args: Vec<ArgSpec>,
    /// Higher runs first among ready tasks.
    #[serde(default)]
    pub priority: i32,
    /// A unit kind (`"gpu"`) or id to run on; default: where placement
    /// decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Earlier tasks (by index) this one waits for besides its data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<usize>,
}

/// A task's argument.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ArgSpec {
    Name(String),
    Access { tensor: String, mode: String },
}

/// What checking a document found: its size, for the limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    /// Bytes of all its tensors.
    pub bytes: u64,
    pub tasks: usize,
}

/// A result tensor of a finished job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobResult {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    /// Little-endian elements, row-major.
    pub bytes: Vec<u8>,
}

impl JobResult {
    /// The elements as f64.
    pub fn values(&self) -> Vec<f64> {
        self.dtype.decode(&self.bytes)
    }
}

/// The error for one field of a document; `field` is its path
/// (`tasks[2].args[0]`).
pub(crate) fn invalid(field: impl Into<String>, what: impl Into<String>) -> Error {
    Error::JobDocument {
        field: field.into(),
        what: what.into(),
    }
}

const MAX_NAME: usize = 64;

fn check_name(field: &str, name: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "_-.[],".contains(c);
    if name.is_empty() || name.len() > MAX_NAME || !name.chars().all(ok_char) {
        return Err(invalid(
            field,
            format!("tensor name {name:?}: use 1 to {MAX_NAME} letters, digits or `_ - . [ ] ,`"),
        ));
    }
    Ok(())
}

fn placement(field: &str, unit: &str) -> Result<Placement> {
    Placement::parse(unit).map_err(|e| invalid(field, e.to_string()))
}

impl ArgSpec {
    fn tensor(&self) -> &str {
        match self {
            ArgSpec::Name(n) => n,
            ArgSpec::Access { tensor, .. } => tensor,
        }
    }

    /// The access mode: given, or the one the kernel declares.
    fn mode(&self, field: &str, declared: Option<Mode>) -> Result<Mode> {
        match self {
            ArgSpec::Access { mode, .. } => match mode.as_str() {
                "read" => Ok(Mode::Read),
                "write" => Ok(Mode::Write),
                "rw" | "read_write" => Ok(Mode::ReadWrite),
                other => Err(invalid(
                    format!("{field}.mode"),
                    format!("unknown mode {other:?} (expected read, write or rw)"),
                )),
            },
            ArgSpec::Name(name) => declared.ok_or_else(|| {
                invalid(
                    field,
                    format!(
                        "the kernel declares no access mode here: give {{\"tensor\": {name:?}, \"mode\": ...}}"
                    ),
                )
            }),
        }
    }
}

impl TensorSpec {
    /// Elements and bytes, checked against overflow.
    fn size(&self, field: &str) -> Result<(usize, u64)> {
        if self.shape.is_empty() {
            return Err(invalid(
                format!("{field}.shape"),
                "needs at least one dimension",
            ));
        }
        let mut n: usize = 1;
        for (i, &d) in self.shape.iter().enumerate() {
            if d == 0 {
                return Err(invalid(format!("{field}.shape[{i}]"), "must be at least 1"));
            }
            n = n
                .checked_mul(d)
                .ok_or_else(|| invalid(format!("{field}.shape"), "the element count overflows"))?;
        }
        let bytes = (n as u64)
            .checked_mul(self.dtype.size() as u64)
            .ok_or_else(|| invalid(format!("{field}.shape"), "the byte count overflows"))?;
        Ok((n, bytes))
    }
}

impl JobDocument {
    /// Replaces each task's kernel that is only a registered name
    /// (`{"name": "double"}`) by the spec registered under it; `lookup`
    /// gives the registered spec of a name.
    pub fn expand_kernels(&mut self, lookup: &dyn Fn(&str) -> Option<serde_json::Value>) {
        for task in &mut self.tasks {
            let only_name = task
                .kernel
                .as_object()
                .filter(|m| m.len() == 1)
                .and_then(|m| m.get("name"))
                .and_then(|n| n.as_str())
                .and_then(lookup);
            if let Some(spec) = only_name {
                task.kernel = spec;
            }
        }
    }

    /// Checks the whole document against the kernels `rt` knows and the
    /// `limits`, without running anything: names, sizes, that each kernel
    /// exists and takes its tensors (count, modes, dtypes, shapes), that no
    /// tensor is read before it has contents, and that `after` points back.
    /// The error names the field (`tasks[3].args[1]`).
    pub fn check(&self, rt: &Runtime, limits: &Limits, uploads: &dyn Uploads) -> Result<Checked> {
        let mut bytes: u64 = 0;
        let mut has_contents: HashSet<&str> = HashSet::new();
        for (name, spec) in &self.tensors {
            let field = format!("tensors.{name}");
            check_name(&field, name)?;
            let (n, b) = spec.size(&field)?;
            limits.check_tensor_bytes(b)?;
            bytes = bytes.saturating_add(b);
            if let Some(id) = &spec.upload {
                if spec.data.is_some() || spec.fill.is_some() {
                    return Err(invalid(&field, "give one of `data`, `fill` and `upload`"));
                }
                match uploads.size(id) {
                    None => {
                        return Err(invalid(
                            format!("{field}.upload"),
                            format!("no upload {id:?} of yours"),
                        ))
                    }
                    Some(size) if size != b => {
                        return Err(invalid(
                            format!("{field}.upload"),
                            format!(
                                "upload {id:?} has {size} bytes; shape {:?} {} needs {b}",
                                spec.shape, spec.dtype
                            ),
                        ))
                    }
                    Some(_) => {
                        has_contents.insert(name);
                    }
                }
                continue;
            }
            match (&spec.data, spec.fill) {
                (Some(_), Some(_)) => {
                    return Err(invalid(&field, "give one of `data`, `fill` and `upload`"));
                }
                (Some(data), None) if data.len() != n => {
                    return Err(invalid(
                        format!("{field}.data"),
                        format!(
                            "shape {:?} needs {n} values, got {}",
                            spec.shape,
                            data.len()
                        ),
                    ));
                }
                (Some(_), None) | (None, Some(_)) => {
                    has_contents.insert(name);
                }
                (None, None) => {}
            }
        }
        limits.check_job(bytes, self.tasks.len())?;
        for (t, task) in self.tasks.iter().enumerate() {
            let field = format!("tasks[{t}]");
            let kernel = rt
                .kernel(&task.kernel)
                .map_err(|e| invalid(format!("{field}.kernel"), e.to_string()))?;
            let declared = kernel.modes();
            if let Some(modes) = declared.as_ref().filter(|m| m.len() != task.args.len()) {
                let count = Error::ArgCount {
                    kernel: kernel.name().to_string(),
                    expected: modes.len(),
                    got: task.args.len(),
                };
                return Err(invalid(format!("{field}.args"), count.to_string()));
            }
            let mut metas = Vec::with_capacity(task.args.len());
            for (i, arg) in task.args.iter().enumerate() {
                let arg_field = format!("{field}.args[{i}]");
                let name = arg.tensor();
                let spec = self.tensors.get(name).ok_or_else(|| {
                    invalid(&arg_field, format!("no tensor named {name:?} in `tensors`"))
                })?;
                let mode = arg.mode(
                    &arg_field,
                    declared.as_ref().and_then(|m| m.get(i).copied()),
                )?;
                if mode != Mode::Write && !has_contents.contains(name) {
                    return Err(invalid(
                        &arg_field,
                        format!(
                            "tensor {name:?} is read before it has contents (give it `data` or `fill`, or write it in an earlier task)"
                        ),
                    ));
                }
                metas.push((name, spec, mode));
            }
            for (i, &(name, _, mode)) in metas.iter().enumerate() {
                let twice = metas[..i].iter().any(|&(other, _, other_mode)| {
                    other == name && (mode != Mode::Read || other_mode != Mode::Read)
                });
                if twice {
                    return Err(invalid(
                        format!("{field}.args[{i}]"),
                        format!("tensor {name:?} appears twice and is written: a task may not alias what it writes"),
                    ));
                }
            }
            let args: Vec<ArgMeta<'_>> = metas
                .iter()
                .map(|(_, spec, mode)| ArgMeta {
                    shape: &spec.shape,
                    dtype: spec.dtype,
                    mode: *mode,
                })
                .collect();
            let names: Vec<Option<&str>> = metas.iter().map(|(n, _, _)| Some(*n)).collect();
            kernel
                .check(&args)
                .map_err(|e| invalid(&field, e.with_argument_names(&names).to_string()))?;
            for &(name, _, mode) in &metas {
                if mode != Mode::Read {
                    has_contents.insert(name);
                }
            }
            if let Some(unit) = &task.unit {
                let units = rt.units().len();
                if let Placement::Unit(id) = placement(&format!("{field}.unit"), unit)? {
                    if id >= units {
                        return Err(invalid(
                            format!("{field}.unit"),
                            format!(
                                "no unit {id}: this runtime has units 0 to {}",
                                units.saturating_sub(1)
                            ),
                        ));
                    }
                }
            }
            if let Some(&a) = task.after.iter().find(|&&a| a >= t) {
                return Err(invalid(
                    format!("{field}.after"),
                    format!("task {a} is not an earlier task (a task may wait only for earlier ones, so no cycle can form)"),
                ));
            }
        }
        for (i, name) in self.results.iter().enumerate() {
            if self.results[..i].contains(name) {
                return Err(invalid(
                    format!("results[{i}]"),
                    format!("tensor {name:?} is listed twice"),
                ));
            }
            if !self.tensors.contains_key(name) {
                return Err(invalid(
                    format!("results[{i}]"),
                    format!("no tensor named {name:?} in `tensors`"),
                ));
            }
            if !has_contents.contains(name.as_str()) {
                return Err(invalid(
                    format!("results[{i}]"),
                    format!("tensor {name:?} is never written and has no contents"),
                ));
            }
        }
        Ok(Checked {
            bytes,
            tasks: self.tasks.len(),
        })
    }

    /// Runs the (checked) document on `rt` as one [`Job`]: creates its
    /// tensors, submits its tasks, waits for all of them (calling
    /// `progress` with the count that succeeded so far), and reads the
    /// results.
    /// The first failed task's error is returned; cancelling `job` stops
    /// what has not started.
    pub fn run(
        &self,
        rt: &Runtime,
        job: &Job,
        uploads: &dyn Uploads,
        progress: &dyn Fn(usize),
    ) -> Result<Vec<JobResult>> {
        let mut tensors: BTreeMap<&str, Tensor> = BTreeMap::new();
        for (name, spec) in &self.tensors {
            let tensor = match (&spec.upload, &spec.data, spec.fill) {
                (Some(id), _, _) => {
                    rt.tensor_from_bytes(&spec.shape, spec.dtype, &uploads.read(id)?)?
                }
                (None, Some(data), _) => {
                    rt.tensor_from_bytes(&spec.shape, spec.dtype, &spec.dtype.encode(data))?
                }
                (None, None, Some(v)) => {
                    let (n, _) = spec.size(name)?;
                    let one = spec.dtype.encode(&[v]);
                    rt.tensor_from_bytes(&spec.shape, spec.dtype, &one.repeat(n))?
                }
                (None, None, None) => rt.empty(&spec.shape, spec.dtype),
            };
            tensors.insert(name, tensor.named(name));
        }
        let mut submitted: Vec<Task> = Vec::with_capacity(self.tasks.len());
        for (t, task) in self.tasks.iter().enumerate() {
            let field = format!("tasks[{t}]");
            let kernel: Kernel = rt.kernel(&task.kernel)?;
            let declared = kernel.modes();
            let mut accesses: Vec<Access> = Vec::with_capacity(task.args.len());
            for (i, arg) in task.args.iter().enumerate() {
                let arg_field = format!("{field}.args[{i}]");
                let tensor = tensors.get(arg.tensor()).ok_or_else(|| {
                    invalid(&arg_field, format!("no tensor named {:?}", arg.tensor()))
                })?;
                let mode = arg.mode(
                    &arg_field,
                    declared.as_ref().and_then(|m| m.get(i).copied()),
                )?;
                accesses.push(tensor.access(mode));
            }
            let mut opts = TaskOptions::default().priority(task.priority).job(job);
            if let Some(unit) = &task.unit {
                opts = opts.on(placement(&format!("{field}.unit"), unit)?);
            }
            for &a in &task.after {
                let earlier = submitted.get(a).ok_or_else(|| {
                    invalid(format!("{field}.after"), format!("task {a} is not earlier"))
                })?;
                opts = opts.after(earlier);
            }
            submitted.push(rt.submit_with(&kernel, &accesses, opts)?);
        }
        let mut first_error = None;
        let mut done = 0;
        for task in &submitted {
            match rt.wait(task) {
                Ok(()) => {
                    done += 1;
                    progress(done);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        self.results
            .iter()
            .map(|name| {
                let tensor = tensors
                    .get(name.as_str())
                    .ok_or_else(|| invalid("results", format!("no tensor named {name:?}")))?;
                let mut bytes = vec![0u8; tensor.nbytes()];
                rt.read_into(tensor, &mut bytes)?;
                Ok(JobResult {
                    name: name.clone(),
                    dtype: tensor.dtype(),
                    shape: tensor.shape().to_vec(),
                    bytes,
                })
            })
            .collect()
    }
}
