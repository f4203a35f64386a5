//! FPGA and NPU units on OpenCL: the kernel suite on every OpenCL unit
//! against the naive reference of `tests/common` (f32 and f16 for tensor
//! kernels, f32 and u8 for image kernels), a task graph across CPU, GPU,
//! FPGA and NPU units with an exact transfer list, the program cache
//! (cold, warm, corrupted entry), and configuration errors.
//!
//! The units come from `XPU_OPENCL_UNITS`, or `fpga=0:0,npu=0:0` (the first
//! device of the first platform presented as both kinds). Without an OpenCL
//! device the tests say so and pass; CI sets `XPU_REQUIRE_BACKENDS` with
//! `opencl` (and installs PoCL), so there a missing device fails them.
#![cfg(feature = "opencl")]

mod common;
#[path = "../examples/fpga_pipeline/stream.rs"]
mod fpga_stream;

use std::path::PathBuf;

use common::suite;
use common::{backend_units, check_on_units, Input};
use proptest::prelude::*;
use xpu::backend::opencl::{self, Origin};
use xpu::{BinaryOp, DType, Kernel, Placement, ReduceOp, Runtime, TaskOptions, UnaryOp, UnitKind};

fn units_spec() -> String {
    std::env::var("XPU_OPENCL_UNITS")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "fpga=0:0,npu=0:0".into())
}

/// A cache shared by the tests of one run, so each program compiles once.
fn test_cache() -> PathBuf {
    std::env::temp_dir().join("xpu-opencl-test-cache")
}

fn required() -> bool {
    std::env::var("XPU_REQUIRE_BACKENDS").is_ok_and(|v| v.split(',').any(|b| b.trim() == "opencl"))
}

/// A runtime with its OpenCL units, or `None` (and a note) when there are none.
fn opencl_runtime() -> Option<(Runtime, Vec<usize>)> {
    let rt = Runtime::builder()
        .cpu_units(1)
        .opencl_units(units_spec())
        .cache_dir(test_cache())
        .build()
        .expect("runtime");
    let units = backend_units(&rt, "opencl")?;
    Some((rt, units))
}

fn check_on_opencl(kernel: &Kernel, args: &[Input], dtypes: &[DType]) {
    if let Some((rt, units)) = opencl_runtime() {
        check_on_units(&rt, &units, kernel, args, dtypes);
    }
}

fn tensor_check(kernel: &Kernel, args: &[Input]) {
    check_on_opencl(kernel, args, &[DType::F32, DType::F16]);
}

fn image_check(kernel: &Kernel, args: &[Input]) {
    check_on_opencl(kernel, args, &[DType::F32, DType::U8]);
}

#[test]
fn both_kinds_come_up_and_say_what_they_are() {
    let Some((rt, units)) = opencl_runtime() else {
        assert!(!required(), "OpenCL is required but did not come up");
        return;
    };
    let kinds: Vec<UnitKind> = units.iter().map(|&u| rt.units()[u].kind).collect();
    if units_spec() == "fpga=0:0,npu=0:0" {
        assert_eq!(kinds, vec![UnitKind::Fpga, UnitKind::Npu]);
    }
    for &u in &units {
        let info = &rt.units()[u];
        assert!(info.details.contains("OpenCL"), "{}", info.details);
        let listing = opencl::list_devices().unwrap();
        let typed_cpu_or_gpu = listing.iter().any(|d| {
            info.device.starts_with(&d.name)
                && matches!(
                    d.device_type,
                    opencl::DeviceType::Cpu | opencl::DeviceType::Gpu
                )
        });
        if typed_cpu_or_gpu {
            assert!(
                info.emulated,
                "a CPU or GPU device presented as {} is emulated",
                info.kind
            );
        }
    }
}

#[test]
fn elementwise_reductions_softmax_layer_norm() {
    suite::tensor_kernels(&tensor_check);
}

#[test]
fn conv_and_pooling() {
    suite::conv_and_pooling(&tensor_check);
}

#[test]
fn image_ops_on_u8_and_f32() {
    suite::image_ops(&image_check);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn gemm_with_transposes(m in 1usize..100, n in 1usize..100, k in 1usize..100, ta in any::<bool>(), tb in any::<bool>(), beta in prop::sample::select(vec![0.0, 0.5])) {
        let (kernel, args) = suite::gemm(m, n, k, ta, tb, beta);
        tensor_check(&kernel, &args);
    }
}

#[test]
fn gemm_on_whole_blocks_agrees() {
    // Multiples of the register-blocked kernel's 8x32 (taken on devices
    // without dedicated local memory), with and without beta.
    for (m, n, k) in [(8, 32, 1), (64, 96, 40), (128, 128, 128)] {
        for beta in [0.0, -0.75] {
            let (kernel, args) = suite::gemm(m, n, k, false, false, beta);
            tensor_check(&kernel, &args);
        }
    }
}

#[test]
fn a_graph_across_cpu_gpu_fpga_and_npu_moves_exactly_what_it_needs() {
    let Some((rt, units)) = opencl_runtime() else {
        return;
    };
    let find = |kind: UnitKind| {
        rt.units()
            .iter()
            .find(|u| u.kind == kind)
            .map(|u| (u.id, u.node))
    };
    let (Some(fpga), Some(npu)) = (find(UnitKind::Fpga), find(UnitKind::Npu)) else {
        eprintln!("needs an FPGA and an NPU unit, have {units:?}; skipped");
        return;
    };
    let gpu = find(UnitKind::Gpu);
    let on = |id: usize| TaskOptions::default().on(Placement::Unit(id));
    let n = 1000;
    let x = rt
        .tensor(&[n], (0..n).map(|i| i as f32 - 500.0).collect::<Vec<_>>())
        .unwrap();
    let (y, z, w) = (
        rt.empty(&[n], DType::F32),
        rt.empty(&[n], DType::F32),
        rt.empty(&[n], DType::F32),
    );
    let total = rt.empty(&[1], DType::F32);
    // y = relu(x) on the GPU (or the FPGA without one), z = y + x on the
    // FPGA, w = z * y on the NPU, total = sum(w) on the CPU.
    let first = gpu.unwrap_or(fpga);
    rt.submit_with(
        &Kernel::Unary(UnaryOp::Relu),
        &[x.read(), y.write()],
        on(first.0),
    )
    .unwrap();
    rt.submit_with(
        &Kernel::Binary(BinaryOp::Add),
        &[y.read(), x.read(), z.write()],
        on(fpga.0),
    )
    .unwrap();
    rt.submit_with(
        &Kernel::Binary(BinaryOp::Mul),
        &[z.read(), y.read(), w.write()],
        on(npu.0),
    )
    .unwrap();
    rt.submit_with(
        &Kernel::Reduce {
            op: ReduceOp::Sum,
            axis: 0,
        },
        &[w.read(), total.write()],
        TaskOptions::default().on(Placement::Kind(UnitKind::Cpu)),
    )
    .unwrap();
    let want: f64 = (0..n)
        .map(|i| {
            let x = i as f64 - 500.0;
            let y = x.max(0.0);
            (y + x) * y
        })
        .sum();
    let got = rt.read::<f32>(&total).unwrap()[0] as f64;
    assert!((got - want).abs() <= 1e-5 * want, "{got} vs {want}");
    // (tensor, from, to, without the host): the FPGA and NPU units share
    // one OpenCL device, so what moves between them is a device copy.
    let moves: Vec<(u64, usize, usize, bool)> = rt
        .transfers()
        .iter()
        .map(|t| (t.tensor, t.from, t.to, t.direct))
        .collect();
    let mut expected = vec![(x.id(), 0, first.1, false)];
    if first != fpga {
        expected.extend([
            (y.id(), first.1, 0, false),
            (y.id(), 0, fpga.1, false),
            (x.id(), 0, fpga.1, false),
        ]);
    }
    expected.push((z.id(), fpga.1, npu.1, true));
    if first == fpga {
        expected.push((y.id(), fpga.1, npu.1, true));
    } else {
        expected.push((y.id(), 0, npu.1, false));
    }
    expected.push((w.id(), npu.1, 0, false));
    assert_eq!(moves, expected);
    // The trace says which copies went without the host.
    let profile = rt.profile();
    let read_back = xpu::trace::Profile::from_chrome_trace(&profile.chrome_trace()).unwrap();
    let direct = |p: &xpu::trace::Profile| p.transfers.iter().filter(|t| t.direct).count();
    assert_eq!(direct(&read_back), direct(&profile));
    assert!(direct(&profile) >= 1);
}

#[test]
fn the_program_cache_is_cold_then_warm_and_rebuilds_a_corrupt_entry() {
    let dir = std::env::temp_dir().join(format!("xpu-opencl-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let requests = opencl::parse_units("fpga=0:0").unwrap();
    let Ok(cold) = opencl::discover(Some(&requests), Some(&dir)) else {
        assert!(!required(), "OpenCL is required but did not come up");
        eprintln!("no OpenCL device, test skipped");
        return;
    };
    let report = cold.build_all(|_| {}).unwrap();
    assert_eq!(report.len(), cold.program_count());
    assert!(
        report.iter().all(|b| b.origin == Origin::Compiled),
        "{report:?}"
    );
    drop(cold);

    let warm = opencl::discover(Some(&requests), Some(&dir)).unwrap();
    let report = warm.build_all(|_| {}).unwrap();
    assert!(
        report.iter().all(|b| b.origin == Origin::Cached),
        "{report:?}"
    );
    drop(warm);

    let cache = dir.join("opencl");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    assert_eq!(entries.len(), report.len());
    let victim = &entries[0];
    let mut bytes = std::fs::read(victim).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    std::fs::write(victim, &bytes).unwrap();

    let healed = opencl::discover(Some(&requests), Some(&dir)).unwrap();
    let report = healed.build_all(|_| {}).unwrap();
    let rebuilt: Vec<_> = report
        .iter()
        .filter(|b| b.origin == Origin::Rebuilt)
        .collect();
    assert_eq!(rebuilt.len(), 1, "{report:?}");
    assert_eq!(
        report.iter().filter(|b| b.origin == Origin::Cached).count(),
        report.len() - 1
    );
    assert_ne!(
        std::fs::read(victim).unwrap(),
        bytes,
        "the entry was rewritten"
    );
    drop(healed);
    let again = opencl::discover(Some(&requests), Some(&dir)).unwrap();
    assert!(again
        .build_all(|_| {})
        .unwrap()
        .iter()
        .all(|b| b.origin == Origin::Cached));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_malformed_unit_list_fails_the_build_and_a_missing_device_is_explained() {
    let err = Runtime::builder()
        .cpu_units(1)
        .device_discovery(true)
        .opencl_units("tpu=0:0")
        .build()
        .err()
        .expect("a bad list is an error")
        .to_string();
    assert!(
        err.contains("tpu=0:0") && err.contains("fpga or npu"),
        "{err}"
    );
    if std::env::var("XPU_REQUIRE_BACKENDS").is_ok() {
        return; // a missing device would (rightly) fail the build there
    }
    let rt = Runtime::builder()
        .cpu_units(1)
        .opencl_units("fpga=7:3")
        .build()
        .unwrap();
    let status = rt.backends().iter().find(|b| b.name == "opencl").unwrap();
    assert_eq!(status.units, 0);
    let reason = status.reason.clone().unwrap();
    assert!(reason.contains("7:3"), "{reason}");
}

#[test]
fn a_tensor_beyond_the_unit_memory_fails_the_task_not_the_runtime() {
    let rt = Runtime::builder()
        .cpu_units(1)
        .opencl_units(units_spec())
        .cache_dir(test_cache())
        .device_memory_limit(1 << 16)
        .build()
        .unwrap();
    let Some(unit) = rt
        .units()
        .iter()
        .find(|u| u.backend == "opencl")
        .map(|u| u.id)
    else {
        eprintln!("no OpenCL unit, test skipped");
        return;
    };
    let big = rt.tensor(&[1 << 16], vec![1.0f32; 1 << 16]).unwrap();
    let out = rt.empty(&[1 << 16], DType::F32);
    let t = rt
        .submit_with(
            &Kernel::Unary(UnaryOp::Relu),
            &[big.read(), out.write()],
            TaskOptions::default().on(Placement::Unit(unit)),
        )
        .unwrap();
    let err = rt.wait(&t).unwrap_err().to_string();
    assert!(err.contains("out of memory"), "{err}");
    let small = rt.tensor(&[4], vec![-1.0f32, 2.0, -3.0, 4.0]).unwrap();
    let res = rt.empty(&[4], DType::F32);
    let t = rt
        .submit_with(
            &Kernel::Unary(UnaryOp::Relu),
            &[small.read(), res.write()],
            TaskOptions::default().on(Placement::Unit(unit)),
        )
        .unwrap();
    rt.wait(&t).unwrap();
    assert_eq!(rt.read::<f32>(&res).unwrap(), vec![0.0, 2.0, 0.0, 4.0]);
}

#[test]
fn the_fpga_pipeline_streams_frames_and_moves_each_once() {
    let Some((rt, _)) = opencl_runtime() else {
        return;
    };
    let Some(fpga) = rt.units().iter().find(|u| u.kind == UnitKind::Fpga) else {
        eprintln!("no FPGA unit, test skipped");
        return;
    };
    let (frames, w, h) = (4, 64, 48);
    let s = fpga_stream::run(&rt, fpga.id, fpga.node, frames, w, h).unwrap();
    // The first frame went up in the warm-up; each other frame goes up once
    // and each edge map comes back once; intermediates stay on the FPGA.
    assert_eq!(s.bytes_in, (frames - 1) * w * h);
    assert_eq!(s.bytes_out, frames * w * h);
    assert_eq!(s.transfers, 2 * frames - 1);
    assert!(
        s.edge_fraction > 0.0 && s.edge_fraction < 0.5,
        "{}",
        s.edge_fraction
    );
    assert_eq!(s.last_edges.len(), w * h);
    assert_eq!(s.frames, frames);
    assert!(s.seconds > 0.0);
    // Differences are allowed only on the threshold (`run` checks that);
    // they must stay rare.
    assert!(
        s.differing_edges * 100 < frames * w * h,
        "{}",
        s.differing_edges
    );
}

#[test]
fn power_states_change_how_often_an_opencl_queue_is_flushed_and_results_stay_right() {
    let Some((rt, units)) = opencl_runtime() else {
        return;
    };
    let effects = common::chain_in_each_power_state(&rt, units[0]);
    assert_eq!(effects.len(), 3, "{effects:?}");
    for (effect, every) in effects.iter().zip([1, 32, 8]) {
        assert!(
            effect.starts_with(&format!("queue flushed every {every} launch(es)")),
            "{effects:?}"
        );
    }
}
