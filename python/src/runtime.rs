//! The `Runtime` class and what it hands out: `Unit`, `Task`, `Profile`.

use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyString};
use serde_json::{Map, Value};
use xpu::llm::{generate, GenerateOptions, LanguageModel};

use crate::array::{parse_dtype, read, tensor_from};
use crate::errors::{to_py, UnknownKernelError};
use crate::tensor::{Access, Tensor};

/// A runtime: it discovers the machine's processing units, places each
/// task on one, moves the data that unit needs, and runs real kernels.
///
/// `policy`: "eager", "round-robin", "work-stealing", "dmda" (default),
/// "dmdas" or "energy" (at most 1.2x slower than dmda). `units`: "all" (every device found) or "cpu" (CPU units only).
/// `cpu_units`: how many CPU units (default: one per core).
#[pyclass(module = "xpu", frozen)]
pub struct Runtime {
    rt: Arc<xpu::Runtime>,
    /// The language model `generate` loaded last, and from where.
    model: Mutex<Option<(PathBuf, Arc<LanguageModel>)>>,
}

#[pymethods]
impl Runtime {
    #[new]
    #[pyo3(signature = (policy = None, units = "all", cpu_units = None, profiling = true))]
    fn new(
        py: Python<'_>,
        policy: Option<&str>,
        units: &str,
        cpu_units: Option<usize>,
        profiling: bool,
    ) -> PyResult<Runtime> {
        let discovery = match units {
            "all" => true,
            "cpu" => false,
            other => {
                return Err(PyValueError::new_err(format!(
                    "units={other:?}: expected \"all\" (every device) or \"cpu\" (CPU units only)"
                )))
            }
        };
        let mut builder = xpu::Runtime::builder()
            .device_discovery(discovery)
            .profiling(profiling);
        if let Some(p) = policy {
            builder = builder.policy(xpu::Policy::parse(p).map_err(to_py)?);
        }
        if let Some(n) = cpu_units {
            builder = builder.cpu_units(n);
        }
        let rt = py.detach(|| builder.build()).map_err(to_py)?;
        Ok(Runtime {
            rt: Arc::new(rt),
            model: Mutex::new(None),
        })
    }

    /// Every processing unit, in id order.
    fn units(&self) -> Vec<Unit> {
        self.rt.units().iter().map(Unit::of).collect()
    }

    /// The scheduling policy's name.
    #[getter]
    fn policy(&self) -> String {
        self.rt.policy().as_str().to_string()
    }

    /// A tensor holding a copy of `array` (a numpy array, or anything
    /// numpy.ascontiguousarray takes); float32, float64, float16, uint8 or
    /// uint32.
    #[pyo3(signature = (array, name = None))]
    fn tensor(&self, array: &Bound<'_, PyAny>, name: Option<&str>) -> PyResult<Tensor> {
        let tensor = tensor_from(&self.rt, array)?;
        Ok(named(tensor, name))
    }

    /// A zero-filled tensor.
    #[pyo3(signature = (shape, dtype = "float32", name = None))]
    fn zeros(&self, shape: Vec<usize>, dtype: &str, name: Option<&str>) -> PyResult<Tensor> {
        let tensor = self.rt.zeros(&shape, parse_dtype(dtype)?).map_err(to_py)?;
        Ok(named(tensor, name))
    }

    /// A tensor with no content yet: its memory is allocated where the
    /// first task writes it; reading it before that is an error.
    #[pyo3(signature = (shape, dtype = "float32", name = None))]
    fn empty(&self, shape: Vec<usize>, dtype: &str, name: Option<&str>) -> PyResult<Tensor> {
        Ok(named(self.rt.empty(&shape, parse_dtype(dtype)?), name))
    }

    /// Submits `kernel` (a built-in kernel's name, or a user kernel's) on
    /// `accesses`, with its parameters as keywords:
    /// `rt.submit("gemm", [a.read(), b.read(), c.write()], trans_b=True)`.
    /// It runs once the tasks before it that touch the same tensors have.
    #[pyo3(signature = (kernel, accesses, **params))]
    fn submit(
        &self,
        kernel: &str,
        accesses: Vec<PyRef<'_, Access>>,
        params: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Task> {
        let mut spec = Map::new();
        spec.insert("name".into(), Value::from(kernel));
        if let Some(params) = params {
            for (key, value) in params.iter() {
                let key: String = key.extract()?;
                spec.insert(key.clone(), json_value(&key, &value)?);
            }
        }
        let kernel = self.rt.kernel(&Value::Object(spec)).map_err(to_py)?;
        let accesses: Vec<xpu::Access> = accesses.iter().map(|a| a.access.clone()).collect();
        let task = self.rt.submit(&kernel, &accesses).map_err(to_py)?;
        Ok(Task {
            task,
            rt: self.rt.clone(),
        })
    }

    /// Waits (without holding the GIL) for `task`; raises its error.
    fn wait(&self, py: Python<'_>, task: &Task) -> PyResult<()> {
        task.wait(py)
    }

    /// Waits (without holding the GIL) until every task submitted so far
    /// has finished.
    fn wait_all(&self, py: Python<'_>) {
        py.detach(|| self.rt.wait_all());
    }

    /// Waits for the tasks that write `tensor` (without holding the GIL)
    /// and returns its content as a numpy array of its shape and dtype.
    /// By default the array is the tensor's host copy itself, read-only
    /// and without a copy (tasks that write the tensor later write
    /// elsewhere, so it never changes); `writable=True` gives a copy of
    /// its own.
    #[pyo3(signature = (tensor, writable = false))]
    fn read(&self, py: Python<'_>, tensor: &Tensor, writable: bool) -> PyResult<Py<PyAny>> {
        read(py, &self.rt, &tensor.tensor, writable)
    }

    /// Continues `prompt` with a language model (GGUF llama) on the LPU, or
    /// on `unit` (an id or a kind such as "cpu"), greedily, and returns the
    /// generated text. `model`: the GGUF file (default: SmolLM2-135M in the
    /// data directory, as scripts/fetch-models.sh fetches it).
    #[pyo3(signature = (prompt, max_tokens = 32, model = None, unit = None))]
    fn generate(
        &self,
        py: Python<'_>,
        prompt: &str,
        max_tokens: usize,
        model: Option<PathBuf>,
        unit: Option<&str>,
    ) -> PyResult<String> {
        let placement = match unit {
            None => xpu::Placement::Kind(xpu::UnitKind::Lpu),
            Some(u) => match u.parse::<usize>() {
                Ok(id) => xpu::Placement::Unit(id),
                Err(_) => xpu::Placement::Kind(xpu::UnitKind::parse(u).map_err(to_py)?),
            },
        };
        let options = GenerateOptions {
            max_tokens,
            placement,
            ..GenerateOptions::default()
        };
        py.detach(|| {
            let model = self.model(model)?;
            generate(&self.rt, &model, prompt, &options, |_| {}).map(|r| r.text)
        })
        .map_err(to_py)
    }

    /// What the runtime recorded so far: tasks, transfers, units.
    fn profile(&self) -> Profile {
        Profile {
            profile: self.rt.profile(),
        }
    }

    /// The runtime's counters in the Prometheus text format.
    fn metrics(&self) -> String {
        self.rt.metrics()
    }

    fn __repr__(&self) -> String {
        format!(
            "Runtime(policy={:?}, units={})",
            self.rt.policy().as_str().to_string(),
            self.rt.units().len()
        )
    }
}

impl Runtime {
    /// The model at `path` (or the default one), loaded once.
    fn model(&self, path: Option<PathBuf>) -> xpu::Result<Arc<LanguageModel>> {
        let path = match path {
            Some(p) => p,
            None => LanguageModel::default_path()?,
        };
        let mut cached = self.model.lock();
        if let Some((p, m)) = cached.as_ref() {
            if *p == path {
                return Ok(m.clone());
            }
        }
        let model = Arc::new(LanguageModel::load(&path)?);
        *cached = Some((path, model.clone()));
        Ok(model)
    }
}

fn named(tensor: xpu::Tensor, name: Option<&str>) -> Tensor {
    Tensor {
        tensor: match name {
            Some(n) => tensor.named(n),
            None => tensor,
        },
    }
}

/// A keyword parameter as the kernel spec's JSON.
fn json_value(key: &str, value: &Bound<'_, PyAny>) -> PyResult<Value> {
    if value.is_instance_of::<PyBool>() {
        Ok(Value::from(value.extract::<bool>()?))
    } else if value.is_instance_of::<PyInt>() {
        Ok(Value::from(value.extract::<i64>()?))
    } else if value.is_instance_of::<PyFloat>() {
        Ok(Value::from(value.extract::<f64>()?))
    } else if value.is_instance_of::<PyString>() {
        Ok(Value::from(value.extract::<String>()?))
    } else {
        Err(UnknownKernelError::new_err(format!(
            "parameter `{key}`: expected a bool, int, float or str, got {}",
            value.get_type().name()?
        )))
    }
}

/// One processing unit.
#[pyclass(module = "xpu", frozen, get_all)]
pub struct Unit {
    /// Its id, as `unit=` takes it.
    id: usize,
    /// "cpu", "gpu", "tpu", "npu", "lpu", "fpga" or "vpu".
    kind: String,
    /// The backend that runs it: "cpu", "wgpu", "opencl", "candle".
    backend: String,
    /// The device's own name.
    device: String,
    /// True when the device is not the hardware its kind names.
    emulated: bool,
    /// True when the unit is out of service (its device was lost).
    down: bool,
    /// The memory node it computes on (0 is host memory).
    node: usize,
}

impl Unit {
    fn of(u: &xpu::UnitInfo) -> Unit {
        Unit {
            id: u.id,
            kind: u.kind.to_string(),
            backend: u.backend.clone(),
            device: u.device.clone(),
            emulated: u.emulated,
            down: u.is_down(),
            node: u.node,
        }
    }
}

#[pymethods]
impl Unit {
    fn __repr__(&self) -> String {
        format!(
            "Unit({} {}: {} on {}{})",
            self.kind,
            self.id,
            self.device,
            self.backend,
            if self.emulated { ", emulated" } else { "" }
        )
    }
}

/// A submitted task: wait for it with `task.wait()` or `rt.wait(task)`.
#[pyclass(module = "xpu", frozen)]
pub struct Task {
    task: xpu::Task,
    rt: Arc<xpu::Runtime>,
}

#[pymethods]
impl Task {
    /// Waits (without holding the GIL) for the task; raises its error.
    fn wait(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.rt.wait(&self.task)).map_err(to_py)
    }

    /// Whether it has finished.
    #[getter]
    fn done(&self) -> bool {
        self.task.is_done()
    }

    /// Its id (as in profiles and error messages).
    #[getter]
    fn id(&self) -> u64 {
        self.task.id()
    }

    fn __repr__(&self) -> String {
        format!("Task({}, done={})", self.task.id(), self.task.is_done())
    }
}

/// What a runtime recorded: write it as a Chrome trace (open in Perfetto).
#[pyclass(module = "xpu", frozen)]
pub struct Profile {
    profile: xpu::trace::Profile,
}

#[pymethods]
impl Profile {
    /// Writes the trace-event JSON that Perfetto and chrome://tracing open.
    fn write_chrome_trace(&self, path: PathBuf) -> PyResult<()> {
        self.profile.write_chrome_trace(path).map_err(to_py)
    }

    /// The number of tasks recorded.
    #[getter]
    fn tasks(&self) -> usize {
        self.profile.tasks.len()
    }
}
