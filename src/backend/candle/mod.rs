//! TPU, VPU and LPU units on candle (cargo feature `candle`).
//!
//! The TPU unit runs the tensor kernels (GEMM, element-wise, reductions,
//! softmax, layer norm, convolution, pooling) as candle ops in f32, f64,
//! f16 and bf16; the VPU unit runs the image kernels (resize, Gaussian
//! blur, Sobel, RGB to gray, threshold) on u8 and f32 images, and
//! convolution and pooling on image batches; the LPU unit runs decode
//! steps of a language model ([`crate::llm`]) on its memory node, the KV
//! cache kept there between steps. Each unit has its own memory
//! node whose replicas are candle tensors on the unit's candle device.
//! Here that device is candle's CPU device, so all three units are
//! marked emulated; CUDA and Metal devices would back them where candle is built
//! with them.
//!
//! A replica arrives as bytes (an upload) and becomes a candle tensor of
//! the tensor's shape and dtype the first time a kernel uses it; kernel
//! results stay candle tensors until downloaded. The decode step works on
//! the node's memory in place (the candle CPU device's memory is host
//! memory): the cache and logits are kept as f32 arrays there. None of
//! these steps moves data between memory nodes, so the memory manager's
//! accounting is complete.

mod image;
mod ops;

use std::sync::Arc;

use candle_core::{Device, Tensor};
use parking_lot::Mutex;
use smallvec::SmallVec;

use crate::backend::{
    Arg, ArgData, Backend, DeviceBuffer, Discovered, DiscoveryOptions, UnitDesc, UnitMemory,
};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::kernel::{ArgMeta, Kernel};
use crate::unit::UnitKind;

/// Device memory a unit on the CPU device may use by default (bytes);
/// `XPU_CANDLE_MEMORY` overrides.
const DEFAULT_MEMORY: usize = 4 << 30;

fn candle_error(message: impl Into<String>) -> Error {
    Error::Device {
        backend: "candle".into(),
        message: message.into(),
    }
}

/// A candle failure as a device error, with what was being done.
fn failed(what: &str) -> impl Fn(candle_core::Error) -> Error + '_ {
    move |e| candle_error(format!("{what}: {e}"))
}

/// What a replica holds.
enum Stored {
    /// Nothing written yet.
    Empty,
    /// Uploaded bytes, not yet used by a kernel.
    Bytes(Vec<u8>),
    Tensor(Tensor),
    /// f32 values a decode step works on in place.
    Floats(Vec<f32>),
}

struct CandleBuffer {
    stored: Mutex<Stored>,
}

/// One unit: its kind and candle device.
struct Unit {
    kind: UnitKind,
    device: Device,
    name: String,
    capacity: usize,
}

/// The candle backend: a TPU, a VPU and an LPU unit.
pub struct CandleBackend {
    units: Vec<Unit>,
}

/// The candle backend for the registry (see [`crate::backend::discover`]).
pub fn discover_units(_options: &DiscoveryOptions) -> Discovered {
    Ok(discover().map(|b| b as Arc<dyn Backend>))
}

/// The candle units of this machine.
pub fn discover() -> std::result::Result<Arc<CandleBackend>, String> {
    let capacity = std::env::var("XPU_CANDLE_MEMORY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_MEMORY);
    let cpu = crate::host::cpu_model();
    let units = [UnitKind::Tpu, UnitKind::Vpu, UnitKind::Lpu]
        .into_iter()
        .map(|kind| Unit {
            kind,
            device: Device::Cpu,
            name: format!("candle CPU device ({cpu})"),
            capacity,
        })
        .collect();
    Ok(Arc::new(CandleBackend { units }))
}

fn candle_dtype(d: DType) -> candle_core::DType {
    match d {
        DType::F32 => candle_core::DType::F32,
        DType::F64 => candle_core::DType::F64,
        DType::F16 => candle_core::DType::F16,
        DType::BF16 => candle_core::DType::BF16,
        DType::U8 => candle_core::DType::U8,
        DType::U32 => candle_core::DType::U32,
    }
}

/// How a candle unit runs a kernel: the one place that decides which unit
/// kind runs what in which dtypes, for `supports` and `launch` alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// Tensor kernels as candle ops (`ops.rs`).
    Ops,
    /// Image kernels (`image.rs`).
    Image,
    /// A language model's decode step, in place on the node's memory.
    Decode,
}

/// The route for `kernel` on a unit of `kind` with arguments of these
/// dtypes, or `None` if that unit does not run it.
fn route(kind: UnitKind, kernel: &Kernel, args: &[ArgMeta<'_>]) -> Option<Route> {
    let floats = [DType::F32, DType::F64, DType::F16, DType::BF16];
    let image = [DType::F32, DType::U8];
    let all = |allowed: &[DType]| args.iter().all(|a| allowed.contains(&a.dtype));
    let (route, allowed): (Route, &[DType]) = match (kind, kernel) {
        (UnitKind::Tpu | UnitKind::Vpu, Kernel::Conv2d { .. } | Kernel::Pool2d { .. }) => {
            (Route::Ops, &floats)
        }
        (
            UnitKind::Tpu,
            Kernel::Gemm { .. }
            | Kernel::Unary(_)
            | Kernel::Binary(_)
            | Kernel::Reduce { .. }
            | Kernel::Softmax
            | Kernel::LayerNorm { .. },
        ) => (Route::Ops, &floats),
        (
            UnitKind::Vpu,
            Kernel::Resize
            | Kernel::GaussianBlur { .. }
            | Kernel::Sobel
            | Kernel::RgbToGray
            | Kernel::Threshold { .. },
        ) => (Route::Image, &image),
        (UnitKind::Lpu, Kernel::Decode(_)) => return Some(Route::Decode),
        _ => return None,
    };
    all(allowed).then_some(route)
}

impl CandleBackend {
    fn unit(&self, index: usize) -> Result<&Unit> {
        self.units
            .get(index)
            .ok_or_else(|| candle_error(format!("no candle unit {index}")))
    }

    /// The argument as a candle tensor of its shape and dtype.
    fn tensor(&self, unit: &Unit, arg: &Arg<'_>) -> Result<Tensor> {
        let buf = arg.device()?.handle::<CandleBuffer>("candle")?;
        let mut stored = buf.stored.lock();
        let want = candle_dtype(arg.dtype);
        match &*stored {
            Stored::Tensor(t) if t.dtype() == want && t.dims() == arg.shape => Ok(t.clone()),
            Stored::Bytes(bytes) => {
                let n = arg.len() * arg.dtype.size();
                let bytes = bytes
                    .get(..n)
                    .ok_or_else(|| candle_error("a replica holds fewer bytes than its tensor"))?;
                let t = Tensor::from_raw_buffer(bytes, want, arg.shape, &unit.device)
                    .map_err(failed("loading a replica"))?;
                *stored = Stored::Tensor(t.clone());
                Ok(t)
            }
            Stored::Floats(values) if want == candle_core::DType::F32 => {
                let t = Tensor::from_slice(values, arg.shape, &unit.device)
                    .map_err(failed("loading a replica"))?;
                *stored = Stored::Tensor(t.clone());
                Ok(t)
            }
            Stored::Tensor(_) | Stored::Floats(_) => Err(candle_error(
                "a replica holds a tensor of another shape or dtype",
            )),
            Stored::Empty => Err(candle_error("a replica was read before it was written")),
        }
    }
}

impl Backend for CandleBackend {
    fn name(&self) -> &str {
        "candle"
    }

    fn units(&self) -> Vec<UnitDesc> {
        self.units
            .iter()
            .enumerate()
            .map(|(i, u)| UnitDesc {
                kind: u.kind,
                device: u.name.clone(),
                emulated: u.device.is_cpu(),
                memory: UnitMemory::Device {
                    index: i,
                    capacity: u.capacity,
                },
                details: match u.kind {
                    UnitKind::Tpu => "candle ops: GEMM, element-wise, reductions, softmax, layer norm, conv2d, pooling (f32, f64, f16, bf16)".into(),
                    UnitKind::Lpu => "language-model decode steps (GGUF llama, quantized mat-vec kernels), KV cache on the unit's node".into(),
                    _ => "candle ops: resize, Gaussian blur, Sobel, RGB to gray, threshold (u8, f32); conv2d and pooling on image batches".into(),
                },
            })
            .collect()
    }

    fn alloc(&self, memory: usize, bytes: usize) -> Result<DeviceBuffer> {
        self.unit(memory)?;
        Ok(DeviceBuffer::new(
            bytes,
            CandleBuffer {
                stored: Mutex::new(Stored::Empty),
            },
        ))
    }

    fn upload(&self, dst: &DeviceBuffer, src: &[u8]) -> Result<()> {
        let buf = dst.handle::<CandleBuffer>("candle")?;
        *buf.stored.lock() = Stored::Bytes(src.to_vec());
        Ok(())
    }

    fn download(&self, src: &DeviceBuffer, dst: &mut [u8]) -> Result<()> {
        let buf = src.handle::<CandleBuffer>("candle")?;
        match &*buf.stored.lock() {
            Stored::Bytes(b) if b.len() >= dst.len() => {
                let n = dst.len();
                dst.copy_from_slice(&b[..n]);
                Ok(())
            }
            Stored::Floats(values) if values.len() * 4 >= dst.len() => {
                let n = dst.len();
                dst.copy_from_slice(&bytemuck::cast_slice(values)[..n]);
                Ok(())
            }
            Stored::Tensor(t) => {
                let mut out: &mut [u8] = dst;
                t.write_bytes(&mut out)
                    .map_err(failed("reading a tensor back"))?;
                if out.is_empty() {
                    Ok(())
                } else {
                    Err(candle_error(
                        "a tensor read back was shorter than its replica",
                    ))
                }
            }
            _ => Err(candle_error("a replica was read before it was written")),
        }
    }

    fn supports(&self, unit: usize, kernel: &Kernel, args: &[ArgMeta<'_>]) -> bool {
        self.units
            .get(unit)
            .is_some_and(|u| route(u.kind, kernel, args).is_some())
    }

    fn launch(&self, unit: usize, kernel: &Kernel, args: &mut [Arg<'_>]) -> Result<()> {
        let u = self.unit(unit)?;
        let metas: SmallVec<[ArgMeta<'_>; 4]> = args.iter().map(Arg::meta).collect();
        let Some(route) = route(u.kind, kernel, &metas) else {
            return Err(candle_error(format!(
                "the {} unit does not run `{}` on these dtypes",
                u.kind,
                kernel.name()
            )));
        };
        if let Kernel::Decode(step) = kernel {
            return decode(step, args);
        }
        let Some((out, inputs)) = args.split_last() else {
            return Err(candle_error(format!(
                "`{}` without arguments",
                kernel.name()
            )));
        };
        let mut tensors = inputs
            .iter()
            .map(|a| self.tensor(u, a))
            .collect::<Result<Vec<_>>>()?;
        if out.mode.reads() {
            tensors.push(self.tensor(u, out)?);
        }
        let what = format!("`{}` on the {} unit", kernel.name(), u.kind);
        let result = match route {
            Route::Image => image::run(kernel, &tensors[0], out.shape),
            _ => ops::run(kernel, &tensors, out.shape),
        }
        .and_then(|t| {
            if out.dtype == DType::U8 {
                // Like the CPU path: round to nearest, saturate.
                t.round()?
                    .clamp(0f32, 255f32)?
                    .to_dtype(candle_core::DType::U8)
            } else {
                t.to_dtype(candle_dtype(out.dtype))
            }
        })
        .map_err(failed(&what))?;
        if result.dims() != out.shape {
            return Err(candle_error(format!(
                "{what} produced shape {:?}, expected {:?}",
                result.dims(),
                out.shape
            )));
        }
        let ArgData::Device(buf) = &out.data else {
            return Err(candle_error("the output is not a device buffer"));
        };
        *buf.handle::<CandleBuffer>("candle")?.stored.lock() = Stored::Tensor(result);
        Ok(())
    }
}

/// A replica's buffer.
fn buffer<'a>(arg: &'a Arg<'_>) -> Result<&'a CandleBuffer> {
    arg.device()?.handle::<CandleBuffer>("candle")
}

/// Token ids from a replica.
fn token_ids(arg: &Arg<'_>) -> Result<Vec<u32>> {
    let n = arg.len();
    let ids: Vec<u32> = match &*buffer(arg)?.stored.lock() {
        Stored::Bytes(bytes) => bytes
            .chunks_exact(4)
            .take(n)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Stored::Tensor(t) => t
            .flatten_all()
            .and_then(|t| t.to_vec1::<u32>())
            .map_err(failed("reading token ids"))?,
        _ => {
            return Err(candle_error(
                "the token ids were read before they were written",
            ))
        }
    };
    if ids.len() == n {
        Ok(ids)
    } else {
        Err(candle_error(
            "a replica holds fewer token ids than its tensor",
        ))
    }
}

/// The replica as `len` f32 values to work on in place (`Empty`: zeros).
fn floats_in_place(stored: &mut Stored, len: usize) -> Result<&mut Vec<f32>> {
    let values = match std::mem::replace(stored, Stored::Empty) {
        Stored::Empty => vec![0f32; len],
        Stored::Floats(v) => v,
        Stored::Bytes(b) => b
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Stored::Tensor(t) => t
            .flatten_all()
            .and_then(|t| t.to_dtype(candle_core::DType::F32))
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(failed("reading a tensor"))?,
    };
    *stored = Stored::Floats(values);
    match stored {
        Stored::Floats(v) if v.len() >= len => Ok(v),
        _ => Err(candle_error("a replica holds fewer values than its tensor")),
    }
}

/// A decode step on the LPU: the cache and logits updated where they are.
fn decode(step: &crate::llm::DecodeStep, args: &[Arg<'_>]) -> Result<()> {
    let [tokens, cache, logits] = args else {
        return Err(candle_error("a decode step takes three arguments"));
    };
    let ids = token_ids(tokens)?;
    let mut cache_stored = buffer(cache)?.stored.lock();
    let mut logits_stored = buffer(logits)?.stored.lock();
    let cache_values = floats_in_place(&mut cache_stored, cache.len())?;
    let logit_values = floats_in_place(&mut logits_stored, logits.len())?;
    step.weights.forward(
        &ids,
        step.position,
        &mut cache_values[..cache.len()],
        &mut logit_values[..logits.len()],
    )
}
