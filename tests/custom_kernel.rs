//! Kernels from outside: a user kernel with CPU, WGSL and OpenCL C
//! implementations (`examples/custom_kernel/axpy.rs`) runs on every unit
//! whose backend has one and matches the CPU result (1e-6 relative: one
//! multiply-add per element in f32); units without one never get it;
//! WGSL that does not validate and OpenCL C that does not build are
//! refused at registration with the compiler's message; the user's check
//! and cost are the runtime's.
//!
//! Backends that are absent are skipped with a note, except in CI, where
//! `XPU_REQUIRE_BACKENDS` makes building the runtime fail instead.

#[path = "../examples/custom_kernel/axpy.rs"]
mod axpy;
mod common;

use xpu::{DType, Error, Kernel, Launch, Mode, Placement, Runtime, TaskOptions, UnaryOp, UnitKind};

const TOLERANCE: f32 = 1e-6;

fn runtime() -> Runtime {
    Runtime::builder().cpu_units(1).build().expect("runtime")
}

fn inputs(n: usize) -> (Vec<f32>, Vec<f32>) {
    let x = (0..n).map(|i| (i as f32 * 0.37).cos() * 3.0).collect();
    let y = (0..n).map(|i| (i % 11) as f32 - 5.0).collect();
    (x, y)
}

#[test]
fn a_user_kernel_runs_on_every_unit_with_an_implementation_and_matches_the_cpu() {
    let rt = runtime();
    let kernel = rt.register(axpy::axpy(-1.5)).expect("registers");
    // Not a multiple of any workgroup size: the bounds checks matter.
    let n = 4_099;
    let (x, y0) = inputs(n);
    let xt = rt.tensor(&[n], x.clone()).unwrap();
    let expected: Vec<f32> = x.iter().zip(&y0).map(|(x, y)| -1.5 * x + y).collect();
    let mut ran_on = Vec::new();
    for unit in rt.units() {
        let has_implementation = matches!(unit.backend.as_str(), "cpu" | "wgpu" | "opencl");
        let y = rt.tensor(&[n], y0.clone()).unwrap();
        let placed = TaskOptions::default().on(Placement::Unit(unit.id));
        match rt.submit_with(&kernel, &[xt.read(), y.rw()], placed) {
            Ok(_) => assert!(
                has_implementation,
                "placed on {} unit {}",
                unit.backend, unit.id
            ),
            Err(Error::NoCapableUnit { kernel, .. }) => {
                assert!(
                    !has_implementation,
                    "unit {} ({}) refused it",
                    unit.id, unit.backend
                );
                assert_eq!(kernel, "axpy");
                continue;
            }
            Err(e) => panic!("unit {}: {e}", unit.id),
        }
        let got = rt.read::<f32>(&y).unwrap();
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            let err = (g - e).abs() / e.abs().max(1.0);
            assert!(
                err <= TOLERANCE,
                "unit {} ({}): element {i} is {g}, the CPU gives {e}",
                unit.id,
                unit.device
            );
        }
        ran_on.push(unit.backend.clone());
    }
    assert!(ran_on.iter().any(|b| b == "cpu"));
    for backend in ["wgpu", "opencl"] {
        if rt.units().iter().any(|u| u.backend == backend) {
            assert!(
                ran_on.iter().any(|b| b == backend),
                "never ran on {backend}"
            );
        } else {
            eprintln!("no {backend} unit: axpy not checked there");
        }
    }
}

#[test]
fn left_to_place_itself_a_kernel_goes_only_where_it_has_an_implementation() {
    let rt = runtime();
    let Some(gpu) = rt.first_unit(UnitKind::Gpu) else {
        eprintln!("no GPU unit: test skipped");
        return;
    };
    // WGSL only: the CPU units must never take it.
    let wgsl_only = Kernel::define("negate_gpu", &[Mode::ReadWrite]).wgsl(
        "@group(0) @binding(0) var<storage, read_write> x: array<f32>;\n\
             struct P { len: u32, a: u32, b: u32, c: u32 }\n\
             @group(0) @binding(1) var<uniform> p: P;\n\
             @compute @workgroup_size(64)\n\
             fn main(@builtin(global_invocation_id) id: vec3<u32>) {\n\
                 if (id.x < p.len) { x[id.x] = -x[id.x]; }\n\
             }\n",
        "main",
        |shapes| Launch::per_element(shapes[0][0], 64),
    );
    let kernel = rt.register(wgsl_only).unwrap();
    let t = rt.tensor(&[100], vec![1.0f32; 100]).unwrap();
    for _ in 0..6 {
        rt.submit(&kernel, &[t.rw()]).unwrap();
    }
    assert_eq!(rt.read::<f32>(&t).unwrap(), vec![1.0f32; 100]);
    let profile = rt.profile();
    let units: Vec<usize> = profile
        .tasks
        .iter()
        .filter(|t| t.kernel == "negate_gpu")
        .map(|t| t.unit)
        .collect();
    assert_eq!(units.len(), 6);
    assert!(
        units.iter().all(|u| rt.units()[*u].kind == UnitKind::Gpu),
        "ran on {units:?}; the GPU is unit {gpu}"
    );
    let on_cpu = TaskOptions::default().on(Placement::Kind(UnitKind::Cpu));
    let err = rt.submit_with(&kernel, &[t.rw()], on_cpu).unwrap_err();
    assert!(matches!(err, Error::NoCapableUnit { .. }), "{err}");
}

#[test]
fn a_launch_the_device_refuses_fails_its_task_and_the_gpu_goes_on() {
    let rt = runtime();
    let Some(gpu) = rt.first_unit(UnitKind::Gpu) else {
        eprintln!("no GPU unit: test skipped");
        return;
    };
    let on_gpu = TaskOptions::default().on(Placement::Unit(gpu));
    // Valid WGSL whose parameters are 32 bytes, launched with one word (16
    // bytes once padded): the device refuses the launch.
    let short = Kernel::define("scale_short_params", &[Mode::ReadWrite]).wgsl(
        "@group(0) @binding(0) var<storage, read_write> x: array<f32>;\n\
             struct P { len: u32, a: u32, b: u32, c: u32, scale: vec4<f32> }\n\
             @group(0) @binding(1) var<uniform> p: P;\n\
             @compute @workgroup_size(64)\n\
             fn main(@builtin(global_invocation_id) id: vec3<u32>) {\n\
                 if (id.x < p.len) { x[id.x] = p.scale.x * x[id.x]; }\n\
             }\n",
        "main",
        |shapes| Launch::per_element(shapes[0][0], 64),
    );
    let kernel = rt.register(short).unwrap();
    let x = rt.tensor(&[100], vec![1.0f32; 100]).unwrap();
    let refused = rt.submit_with(&kernel, &[x.rw()], on_gpu.clone()).unwrap();
    let err = rt.wait(&refused).unwrap_err();
    assert!(err.to_string().contains("scale_short_params"), "{err}");
    // The unit stays in service: the next launches run, and the one after
    // the refusal is not blamed for it.
    let relu = Kernel::Unary(UnaryOp::Relu);
    let input: Vec<f32> = (0..100).map(|i| i as f32 - 50.0).collect();
    let y = rt.tensor(&[100], input.clone()).unwrap();
    let out = rt.empty(&[100], DType::F32);
    for _ in 0..2 {
        let task = rt
            .submit_with(&relu, &[y.read(), out.write()], on_gpu.clone())
            .unwrap();
        rt.wait(&task).unwrap();
    }
    let want: Vec<f32> = input.iter().map(|v| v.max(0.0)).collect();
    assert_eq!(rt.read::<f32>(&out).unwrap(), want);
}

#[test]
fn wgsl_that_does_not_validate_is_refused_at_registration() {
    let rt = runtime();
    let launch = |_: &[&[usize]]| Launch::per_element(1, 64);
    let undeclared = Kernel::define("undeclared", &[Mode::ReadWrite]).wgsl(
        "@compute @workgroup_size(64)\nfn main() {\n    x[0] = 1.0;\n}\n",
        "main",
        launch,
    );
    let err = rt.register(undeclared).unwrap_err().to_string();
    if !cfg!(feature = "wgpu") {
        return;
    }
    assert!(err.contains("user kernel `undeclared`"), "{err}");
    assert!(
        err.contains("no definition in scope for identifier: `x`"),
        "{err}"
    );
    let wrong_entry = Kernel::define("entry", &[Mode::ReadWrite]).wgsl(
        "@compute @workgroup_size(1)\nfn main() {}\n",
        "start",
        launch,
    );
    let err = rt.register(wrong_entry).unwrap_err().to_string();
    assert!(err.contains("no compute entry point `start`"), "{err}");
}

#[test]
fn opencl_c_that_does_not_build_is_refused_at_registration_with_the_build_log() {
    let rt = runtime();
    if !rt.units().iter().any(|u| u.backend == "opencl") {
        eprintln!("no OpenCL unit: test skipped");
        return;
    }
    let broken = Kernel::define("broken_cl", &[Mode::ReadWrite]).opencl(
        "__kernel void broken_cl(__global float* x) { x[0] = not_declared; }\n",
        "broken_cl",
        |_| Launch::per_element(1, 1),
    );
    let err = rt.register(broken).unwrap_err().to_string();
    assert!(err.contains("user kernel `broken_cl`"), "{err}");
    assert!(
        err.contains("not_declared"),
        "the build log names it: {err}"
    );
}

#[test]
fn the_user_check_and_cost_are_the_runtimes() {
    let rt = runtime();
    let kernel = rt.register(axpy::axpy(2.0)).unwrap();
    let x = rt.tensor(&[8], vec![1.0f32; 8]).unwrap();
    let short = rt.tensor(&[4], vec![1.0f32; 4]).unwrap();
    let err = rt.submit(&kernel, &[x.read(), short.rw()]).unwrap_err();
    assert!(
        err.to_string().contains("x has shape [8] but y has [4]"),
        "{err}"
    );
    let wrong = rt.zeros(&[8], DType::F64).unwrap();
    let err = rt.submit(&kernel, &[x.read(), wrong.rw()]).unwrap_err();
    assert!(err.to_string().contains("must be f32"), "{err}");
    let err = rt.submit(&kernel, &[x.read(), x.read()]).unwrap_err();
    assert!(matches!(err, Error::AccessMode { .. }), "{err}");
    let y = rt.tensor(&[8], vec![0.0f32; 8]).unwrap();
    rt.submit(&kernel, &[x.read(), y.rw()]).unwrap();
    rt.wait_all();
    let profile = rt.profile();
    let task = profile.tasks.iter().find(|t| t.kernel == "axpy").unwrap();
    assert_eq!(task.flops, 16.0);
}

#[test]
fn a_built_in_name_or_a_kernel_without_implementations_is_refused() {
    let rt = runtime();
    let err = rt
        .register(Kernel::define("relu", &[Mode::Read, Mode::Write]).cpu(|_| Ok(())))
        .unwrap_err();
    assert!(err.to_string().contains("built-in kernel"), "{err}");
    let err = rt
        .register(Kernel::define("empty", &[Mode::Read]))
        .unwrap_err();
    assert!(err.to_string().contains("no implementation"), "{err}");
}
