//! A backend an embedder could write for a DSP with its own memory: the
//! runtime sees a unit of kind `dsp` on a memory node of its own, so every
//! tensor it touches is really copied in and out of that memory.
//!
//! The "device" is emulated on the host: its memory is a separate heap
//! buffer per allocation, and it runs xpu's CPU kernels on it, plus a kernel
//! of its own, `fir` (a finite impulse response filter).

use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use xpu::backend::cpu::run_kernel;
use xpu::{
    Arg, ArgData, ArgMeta, Backend, DType, DeviceBuffer, Error, Kernel, Mode, Result, UnitDesc,
    UnitKind, UnitMemory,
};

/// One allocation in the DSP's memory (8-byte words keep every dtype aligned).
struct DspMemory(Mutex<Vec<u64>>);

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

fn words(buf: &DeviceBuffer) -> Result<&Mutex<Vec<u64>>> {
    Ok(&buf.handle::<DspMemory>("dsp")?.0)
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
        Ok(DeviceBuffer::new(bytes, DspMemory(Mutex::new(words))))
    }

    fn upload(&self, dst: &DeviceBuffer, src: &[u8]) -> Result<()> {
        let mut w = words(dst)?.lock();
        bytemuck::cast_slice_mut::<u64, u8>(&mut w)[..src.len()].copy_from_slice(src);
        Ok(())
    }

    fn download(&self, src: &DeviceBuffer, dst: &mut [u8]) -> Result<()> {
        let w = words(src)?.lock();
        dst.copy_from_slice(&bytemuck::cast_slice::<u64, u8>(&w)[..dst.len()]);
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
            copies.push(words(a.device()?)?.lock().clone());
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
                *words(a.device()?)?.lock() = c;
            }
        }
        Ok(())
    }
}
