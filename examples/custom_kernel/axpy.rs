//! A user kernel with three implementations: `y = a * x + y` over f32
//! vectors, as a CPU function, a WGSL compute shader (GPU units) and an
//! OpenCL C kernel (FPGA and NPU units). The factor `a` travels to the
//! device programs as the bits of an f32 in the launch parameters.

use xpu::{ArgMeta, DType, Error, Kernel, KernelDef, Launch, Mode, Result};

/// Invocations per WGSL workgroup (`@workgroup_size` below).
const GROUP: u32 = 256;

const WGSL: &str = r#"
struct Params { len: u32, a: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(256)
fn axpy(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if (i < params.len) {
        y[i] = bitcast<f32>(params.a) * x[i] + y[i];
    }
}
"#;

const OPENCL: &str = r#"
__kernel void axpy(__global const float* x, __global float* y,
                   const uint len, const uint a_bits) {
    size_t i = get_global_id(0);
    if (i < len) {
        y[i] = as_float(a_bits) * x[i] + y[i];
    }
}
"#;

/// Both vectors f32 and of one length.
fn check(args: &[ArgMeta<'_>]) -> Result<()> {
    let [x, y] = args else {
        return Err(Error::Config("axpy takes x and y".into()));
    };
    if x.dtype != DType::F32 || y.dtype != DType::F32 {
        return Err(Error::Shape {
            kernel: "axpy".into(),
            what: format!("x and y must be f32, got {} and {}", x.dtype, y.dtype),
        });
    }
    if x.shape != y.shape {
        return Err(Error::Shape {
            kernel: "axpy".into(),
            what: format!("x has shape {:?} but y has {:?}", x.shape, y.shape),
        });
    }
    Ok(())
}

/// The kernel's definition: register it with `Runtime::register`.
pub fn axpy(a: f32) -> KernelDef {
    let len = |shapes: &[&[usize]]| shapes[0].iter().product::<usize>();
    Kernel::define("axpy", &[Mode::Read, Mode::ReadWrite])
        .check(check)
        .flops(move |shapes| 2.0 * len(shapes) as f64)
        .cpu(move |args| {
            let [x, y] = args else {
                return Err(Error::Config("axpy takes x and y".into()));
            };
            for (y, x) in y.as_f32_mut()?.iter_mut().zip(x.as_f32()?) {
                *y += a * x;
            }
            Ok(())
        })
        .wgsl(WGSL, "axpy", move |shapes| {
            let n = len(shapes);
            let mut launch = Launch::per_element(n, GROUP);
            launch.params.push(a.to_bits());
            launch
        })
        .opencl(OPENCL, "axpy", move |shapes| {
            let n = len(shapes);
            let mut launch = Launch::per_element(n, 1);
            launch.params.push(a.to_bits());
            launch
        })
}
