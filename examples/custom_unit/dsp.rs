//! A backend an embedder could write for a DSP with its own memory: the
//! runtime sees a unit of kind `dsp` on a memory node of its own, so every
//! tensor it touches is really copied in and out of that memory.
//!
//! The "device" is emulated on the host: its memory is a separate heap
//! buffer per allocation, and it runs xpu's CPU kernels on it, plus a kernel
//! of its own, `fir` (a finite impulse response filter). A contiguous part
//! of a partitioned tensor gets a view: a range of its whole's allocation
//! (`Backend::view`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use xpu::backend::cpu::run_kernel;
use xpu::{
    Arg, ArgData, ArgMeta, Backend, DType, DeviceBuffer, Error, Kernel, Mode, Result, UnitDesc,
    UnitKind, UnitMemory,
};

/// A range of one allocation in the DSP's memory: the whole allocation,
/// or a view of it (8-byte words keep every dtype aligned, so a view
/// starts at a whole word).
struct DspMemory {
    words: Arc<Mutex<Vec<u64>>>,
    /// The range's first word and its bytes.
    start: usize,
    bytes: usize,
}

impl DspMemory {
    /// A copy of the range's words.
    fn load(&self) -> Vec<u64> {
        let end = self.start + self.bytes.div_ceil(8);
        self.words.lock()[self.start..end].to_vec()
    }

    /// Writes `src` at the start of the range, never past its end (a
    /// view's neighbour may start in its last word).
    fn store(&self, src: &[u8]) {
        let src = &src[..src.len().min(self.bytes)];
        let mut w = self.words.lock();
        let bytes = bytemuck::cast_slice_mut::<u64, u8>(&mut w[self.start..]);
        bytes[..src.len()].copy_from_slice(src);
    }
}

/// The DSP backend: `units` DSP cores sharing one memory of `capacity` bytes.
pub struct DspBackend {
    units: usize,
    capacity: usize,
    launches: AtomicUsize,
}

impl DspBackend {
    pub fn new(units: usize, capacity: usize) -> DspBackend {
        DspBackend {
            units,
            capacity,
            launches: AtomicUsize::new(0),
        }
    }

    /// Kernels launched so far.
    pub fn launches(&self) -> usize {
        self.launches.load(Ordering::Relaxed)
    }
}

/// A program in the DSP's own form: what a user kernel gives this backend
/// (`KernelDef::backend("dsp", DspProgram(...))`), found again at launch
/// with `CustomKernel::implementation`.
pub struct DspProgram(pub fn(&mut [Arg<'_>]) -> Result<()>);

/// The DSP's own kernel: `y[i] = sum_k h[k] * x[i - k]` over f32 signals,
/// arguments `x (R), h (R), y (W)`. Only the DSP has an implementation,
/// so the runtime places it nowhere else.
pub fn fir() -> Result<Kernel> {
    Kernel::define("fir", &[Mode::Read, Mode::Read, Mode::Write])
        .check(|args| {
            let [x, h, y] = args else {
                return Err(dsp_error("fir takes x, h and y"));
            };
            if x.shape != y.shape || [x.dtype, h.dtype, y.dtype] != [DType::F32; 3] {
                return Err(Error::Shape {
                    kernel: "fir".into(),
                    what: "x and y must be f32 signals of one length, h f32 taps".into(),
                });
            }
            Ok(())
        })
        .flops(|shapes| 2.0 * shapes[0].iter().product::<usize>() as f64 * shapes[1][0] as f64)
        .backend("dsp", DspProgram(run_fir))
        .build()
}

fn run_fir(args: &mut [Arg<'_>]) -> Result<()> {
    let [x, h, y] = args else {
        return Err(dsp_error("fir takes x, h and y"));
    };
    let (x, h) = (x.as_f32()?, h.as_f32()?);
    for (i, out) in y.as_f32_mut()?.iter_mut().enumerate() {
        *out = h
            .iter()
            .enumerate()
            .filter(|(k, _)| *k <= i)
            .map(|(k, c)| c * x[i - k])
            .sum();
    }
    Ok(())
}

fn dsp_error(message: &str) -> Error {
    Error::Device {
        backend: "dsp".into(),
        message: message.into(),
    }
}

fn memory(buf: &DeviceBuffer) -> Result<&DspMemory> {
    buf.handle::<DspMemory>("dsp")
}

impl Backend for DspBackend {
    fn name(&self) -> &str {
        "dsp"
    }

    fn units(&self) -> Vec<UnitDesc> {
        (0..self.units)
            .map(|_| UnitDesc {
                resource: None,
                kind: UnitKind::Custom("dsp"),
                device: "host-emulated DSP".into(),
                emulated: true,
                // Its own (emulated) device: placement counts it as added
                // capacity.
                host_cores: false,
                memory: UnitMemory::Device {
                    index: 0,
                    capacity: self.capacity,
                },
                details: String::new(),
            })
            .collect()
    }

    fn alloc(&self, _memory: usize, bytes: usize) -> Result<DeviceBuffer> {
        let words = vec![0u64; bytes.div_ceil(8)];
        let memory = DspMemory {
            words: Arc::new(Mutex::new(words)),
            start: 0,
            bytes,
        };
        Ok(DeviceBuffer::new(bytes, memory))
    }

    fn view(
        &self,
        allocation: &Arc<DeviceBuffer>,
        offset: usize,
        bytes: usize,
    ) -> Option<Result<DeviceBuffer>> {
        let whole = allocation.downcast_ref::<DspMemory>()?;
        if !offset.is_multiple_of(8) || offset + bytes > whole.bytes {
            return None;
        }
        let view = DspMemory {
            words: whole.words.clone(),
            start: whole.start + offset / 8,
            bytes,
        };
        Some(Ok(DeviceBuffer::view(allocation, offset, bytes, view)))
    }

    fn upload(&self, dst: &DeviceBuffer, src: &[u8]) -> Result<()> {
        memory(dst)?.store(src);
        Ok(())
    }

    fn download(&self, src: &DeviceBuffer, dst: &mut [u8]) -> Result<()> {
        let words = memory(src)?.load();
        dst.copy_from_slice(&bytemuck::cast_slice::<u64, u8>(&words)[..dst.len()]);
        Ok(())
    }

    fn supports(&self, _unit: usize, kernel: &Kernel, _args: &[ArgMeta<'_>]) -> bool {
        match kernel {
            Kernel::Custom(c) => {
                c.implementation::<DspProgram>("dsp").is_some() || c.cpu().is_some()
            }
            _ => true,
        }
    }

    fn launch(&self, _unit: usize, kernel: &Kernel, args: &mut [Arg<'_>]) -> Result<()> {
        self.launches.fetch_add(1, Ordering::Relaxed);
        // Work on private copies of the buffers, then store the outputs.
        let mut copies: Vec<Vec<u64>> = Vec::with_capacity(args.len());
        for a in args.iter() {
            copies.push(memory(a.device()?)?.load());
        }
        {
            let mut local: Vec<Arg<'_>> = args
                .iter()
                .zip(copies.iter_mut())
                .map(|(a, c)| {
                    let bytes = a.len() * a.dtype.size();
                    a.with_data(ArgData::HostMut(
                        &mut bytemuck::cast_slice_mut::<u64, u8>(c)[..bytes],
                    ))
                })
                .collect();
            let own = match kernel {
                Kernel::Custom(c) => c.implementation::<DspProgram>("dsp"),
                _ => None,
            };
            match own {
                Some(DspProgram(run)) => run(&mut local)?,
                None => run_kernel(kernel, &mut local, 1)?,
            }
        }
        for (a, c) in args.iter().zip(copies) {
            if a.mode.writes() {
                memory(a.device()?)?.store(bytemuck::cast_slice(&c));
            }
        }
        Ok(())
    }
}
