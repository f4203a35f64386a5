//! GPU units (wgpu): the kernel suite on every GPU unit found against the
//! naive reference of `tests/common` in f32 (tolerance 1e-4 relative, as
//! for the CPU) and, where the adapter has SHADER_F16, in f16 (2e-2), and
//! a task graph that ping-pongs tensors between CPU and GPU
//! with an exact transfer count.
//!
//! Without a GPU adapter the tests say so and pass; CI sets
//! `XPU_REQUIRE_BACKENDS=...,wgpu`, so there a missing adapter fails them.

mod common;

use common::suite::{self, ramp};
use common::{backend_units, check_on_units, Input};
use proptest::prelude::*;
use xpu::{BinaryOp, DType, Kernel, Placement, Runtime, TaskOptions, UnaryOp, UnitKind};

/// A runtime with its GPU units, or `None` (and a note) when there are none.
fn gpu_runtime() -> Option<(Runtime, Vec<usize>)> {
    let rt = Runtime::builder().cpu_units(1).build().expect("runtime");
    let gpus = backend_units(&rt, "wgpu")?;
    Some((rt, gpus))
}

/// Checks a kernel on every GPU unit in f32, and in f16 on the units whose
/// adapter has SHADER_F16 when `f16` (lavapipe has it).
fn check_on_gpus_in(kernel: &Kernel, args: &[Input], f16: bool) {
    let Some((rt, gpus)) = gpu_runtime() else {
        return;
    };
    for gpu in gpus {
        let has_f16 = rt.units()[gpu].details.contains("f32 and f16");
        let dtypes: &[DType] = if f16 && has_f16 {
            &[DType::F32, DType::F16]
        } else {
            &[DType::F32]
        };
        check_on_units(&rt, &[gpu], kernel, args, dtypes);
    }
}

/// Tensor kernels: f32, and f16 where the GPU has it.
fn check_on_gpus(kernel: &Kernel, args: &[Input]) {
    check_on_gpus_in(kernel, args, true);
}

/// Long reductions, whose partial sums f16 would round: f32 only.
fn check_f32_on_gpus(kernel: &Kernel, args: &[Input]) {
    check_on_gpus_in(kernel, args, false);
}

#[test]
fn elementwise_reductions_softmax_layer_norm() {
    suite::tensor_kernels(&check_on_gpus);
}

#[test]
fn long_reductions_in_two_passes() {
    suite::long_reductions(&check_f32_on_gpus);
}

#[test]
fn conv_and_pooling() {
    suite::conv_and_pooling(&check_on_gpus);
}

#[test]
fn image_ops_on_f32_and_u8() {
    suite::image_ops(&|kernel: &Kernel, args: &[Input]| {
        let Some((rt, gpus)) = gpu_runtime() else {
            return;
        };
        check_on_units(&rt, &gpus, kernel, args, &[DType::F32, DType::U8]);
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn gemm_with_transposes(m in 1usize..150, n in 1usize..150, k in 1usize..150, ta in any::<bool>(), tb in any::<bool>(), beta in prop::sample::select(vec![0.0, 0.5])) {
        let (kernel, args) = suite::gemm(m, n, k, ta, tb, beta);
        check_on_gpus(&kernel, &args);
    }
}

#[test]
fn tensors_ping_pong_between_cpu_and_gpu_with_exact_transfers() {
    let Some((rt, gpus)) = gpu_runtime() else {
        return;
    };
    let gpu = gpus[0];
    let gpu_node = rt.units()[gpu].node;
    let on_gpu = TaskOptions::default().on(Placement::Unit(gpu));
    let on_cpu = TaskOptions::default().on(Placement::Kind(UnitKind::Cpu));
    let n = 4096;
    let x = rt
        .tensor(&[n], (0..n).map(|i| i as f32 - 2000.0).collect::<Vec<_>>())
        .unwrap();
    let (y, z, w) = (
        rt.empty(&[n], DType::F32),
        rt.empty(&[n], DType::F32),
        rt.empty(&[n], DType::F32),
    );
    rt.submit_with(
        &Kernel::Unary(UnaryOp::Relu),
        &[x.read(), y.write()],
        on_gpu.clone(),
    )
    .unwrap(); // x up
    rt.submit_with(
        &Kernel::Binary(BinaryOp::Add),
        &[y.read(), x.read(), z.write()],
        on_cpu,
    )
    .unwrap(); // y down
    rt.submit_with(
        &Kernel::Binary(BinaryOp::Mul),
        &[z.read(), y.read(), w.write()],
        on_gpu,
    )
    .unwrap(); // z up
    let got = rt.read::<f32>(&w).unwrap(); // w down
    for (i, v) in got.iter().enumerate() {
        let x = i as f32 - 2000.0;
        let y = x.max(0.0);
        assert_eq!(*v, (y + x) * y, "element {i}");
    }
    let moves: Vec<(u64, usize, usize)> = rt
        .transfers()
        .iter()
        .map(|t| (t.tensor, t.from, t.to))
        .collect();
    assert_eq!(
        moves,
        vec![
            (x.id(), 0, gpu_node),
            (y.id(), gpu_node, 0),
            (z.id(), 0, gpu_node),
            (w.id(), gpu_node, 0)
        ]
    );
}

#[test]
fn a_tensor_beyond_the_gpu_memory_limit_fails_cleanly() {
    let rt = Runtime::builder()
        .cpu_units(1)
        .device_memory_limit(1 << 16)
        .build()
        .unwrap();
    let Some(gpu) = rt.first_unit(UnitKind::Gpu) else {
        eprintln!("no GPU unit, test skipped");
        return;
    };
    let big = rt.tensor(&[1 << 16], vec![1.0f32; 1 << 16]).unwrap();
    let out = rt.empty(&[1 << 16], DType::F32);
    let t = rt
        .submit_with(
            &Kernel::Unary(UnaryOp::Relu),
            &[big.read(), out.write()],
            TaskOptions::default().on(Placement::Unit(gpu)),
        )
        .unwrap();
    let err = rt.wait(&t).unwrap_err().to_string();
    assert!(err.contains("out of memory"), "{err}");
    assert_eq!(rt.read::<f32>(&big).unwrap()[0], 1.0);
}

#[test]
fn eviction_on_the_gpu_node_writes_back_and_loses_nothing() {
    // Eight 16 KiB tiles are updated in place on the GPU (C += A B), so each
    // one's only valid copy is there; the node has room for three tiles
    // besides the small A and B, which every task touches. Every eviction
    // therefore picks a tile and must write it back.
    let tile = 64 * 64 * 4;
    let small = xpu::memory::size_class(64 * 4);
    let rt = Runtime::builder()
        .cpu_units(1)
        .device_memory_limit(3 * tile + 2 * small)
        .build()
        .unwrap();
    let Some(gpu) = rt
        .units()
        .iter()
        .find(|u| u.kind == UnitKind::Gpu)
        .map(|u| (u.id, u.node))
    else {
        eprintln!("no GPU unit, test skipped");
        return;
    };
    let on_gpu = TaskOptions::default().on(Placement::Unit(gpu.0));
    let a = rt.tensor(&[64, 1], vec![1.0f32; 64]).unwrap();
    let b = rt.tensor(&[1, 64], vec![1.0f32; 64]).unwrap();
    let tiles: Vec<_> = (0..8)
        .map(|i| rt.tensor(&[64, 64], vec![i as f32; 64 * 64]).unwrap())
        .collect();
    let update = Kernel::gemm().scaled(1.0, 1.0);
    for c in &tiles {
        rt.submit_with(&update, &[a.read(), b.read(), c.rw()], on_gpu.clone())
            .unwrap();
    }
    rt.wait_all();
    let node = rt.memory_stats()[gpu.1].clone();
    for (i, c) in tiles.iter().enumerate() {
        assert_eq!(
            rt.read::<f32>(c).unwrap(),
            vec![i as f32 + 1.0; 64 * 64],
            "tile {i}"
        );
    }
    assert!(node.evictions >= 5, "{node:?}");
    assert_eq!(node.write_backs, node.evictions, "{node:?}");
    assert!(node.peak <= node.capacity, "{node:?}");
}

#[test]
fn gemm_on_whole_tiles_takes_the_aligned_kernel_and_agrees() {
    for (m, n, k) in [(64, 64, 16), (128, 192, 48), (256, 64, 256)] {
        for beta in [0.0, -0.75] {
            let kernel = Kernel::gemm().scaled(0.5, beta);
            check_on_gpus(
                &kernel,
                &[ramp(&[m, k], 1.0), ramp(&[k, n], 1.0), ramp(&[m, n], 1.0)],
            );
        }
        // The same sizes with a transpose go through the general kernel.
        check_on_gpus(
            &Kernel::gemm().transpose_b(),
            &[
                ramp(&[m, k], 1.0),
                ramp(&[n, k], 1.0),
                Input::zeros(&[m, n]),
            ],
        );
    }
}

#[test]
fn the_gpu_reports_its_own_memory_use_beside_the_runtime_accounting() {
    let Some((rt, gpus)) = gpu_runtime() else {
        return;
    };
    let n = 1 << 20;
    let x = rt.tensor(&[n], vec![1.0f32; n]).unwrap();
    let y = rt.empty(&[n], DType::F32);
    let t = rt
        .submit_with(
            &Kernel::Unary(UnaryOp::Relu),
            &[x.read(), y.write()],
            TaskOptions::default().on(Placement::Unit(gpus[0])),
        )
        .unwrap();
    rt.wait(&t).unwrap();
    let node = rt.units()[gpus[0]].node;
    let prefix = format!("xpu_device_reported_bytes{{node=\"{node}\"");
    let metrics = rt.metrics();
    let Some(line) = metrics.lines().find(|l| l.starts_with(&prefix)) else {
        eprintln!("this adapter's API reports no allocator figures; test skipped");
        return;
    };
    let reported: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    let ours = rt.memory_stats()[node].allocated as f64;
    assert!(ours >= 2.0 * n as f64 * 4.0, "{ours}");
    assert!(
        reported >= ours,
        "device reports {reported} bytes, runtime holds {ours}"
    );
}

#[test]
fn power_states_change_how_many_launches_a_gpu_submits_together_and_results_stay_right() {
    let Some((rt, gpus)) = gpu_runtime() else {
        return;
    };
    let effects = common::chain_in_each_power_state(&rt, gpus[0]);
    assert_eq!(effects.len(), 3, "{effects:?}");
    assert!(
        effects[0].starts_with("submits every 1 launch(es)"),
        "{effects:?}"
    );
    assert!(
        effects[1].starts_with("submits every 128 launch(es)"),
        "{effects:?}"
    );
    assert!(
        effects[2].starts_with("submits every 32 launch(es)"),
        "{effects:?}"
    );
}
