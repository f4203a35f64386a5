//! GPU units (wgpu): the kernel suite on every GPU unit found against the
//! naive f32 reference of `tests/common` (tolerance 1e-4 relative, as for
//! the CPU), and a task graph that ping-pongs tensors between CPU and GPU
//! with an exact transfer count.
//!
//! Without a GPU adapter the tests say so and pass; CI sets
//! `XPU_REQUIRE_BACKENDS=...,wgpu`, so there a missing adapter fails them.

mod common;

use common::{check_kernel, Input};
use proptest::prelude::*;
use xpu::{
    BinaryOp, DType, Kernel, Placement, PoolOp, ReduceOp, Runtime, TaskOptions, UnaryOp, UnitKind,
};

/// A runtime with its GPU units, or `None` (and a note) when there are none.
fn gpu_runtime() -> Option<(Runtime, Vec<usize>)> {
    let rt = Runtime::builder().cpu_units(1).build().expect("runtime");
    let gpus: Vec<usize> = rt
        .units()
        .iter()
        .filter(|u| u.kind == UnitKind::Gpu)
        .map(|u| u.id)
        .collect();
    if gpus.is_empty() {
        let why = rt
            .backends()
            .iter()
            .find(|b| b.name == "wgpu")
            .and_then(|b| b.reason.clone());
        eprintln!(
            "no GPU unit, GPU tests skipped: {}",
            why.unwrap_or_default()
        );
        return None;
    }
    Some((rt, gpus))
}

fn ramp(shape: &[usize], scale: f64) -> Input {
    let n: usize = shape.iter().product();
    Input::new(
        shape,
        (0..n)
            .map(|i| ((i * 37 % 101) as f64 / 101.0 - 0.5) * scale)
            .collect(),
    )
}

fn check_on_gpus(kernel: &Kernel, args: &[Input]) {
    let Some((rt, gpus)) = gpu_runtime() else {
        return;
    };
    for gpu in gpus {
        if let Err(e) = check_kernel(&rt, Placement::Unit(gpu), kernel, args, DType::F32) {
            panic!("unit {gpu} ({}): {e}", rt.units()[gpu].device);
        }
    }
}

#[test]
fn elementwise_reductions_softmax_layer_norm() {
    for shape in [vec![1], vec![7, 13], vec![3, 5, 300]] {
        let a = ramp(&shape, 4.0);
        let b = ramp(&shape, -2.0);
        let out = Input::zeros(&shape);
        for op in [UnaryOp::Relu, UnaryOp::Gelu, UnaryOp::Exp] {
            check_on_gpus(&Kernel::Unary(op), &[a.clone(), out.clone()]);
        }
        for op in [BinaryOp::Add, BinaryOp::Mul] {
            check_on_gpus(&Kernel::Binary(op), &[a.clone(), b.clone(), out.clone()]);
        }
        for axis in 0..shape.len() {
            let mut reduced = shape.clone();
            reduced.remove(axis);
            if reduced.is_empty() {
                reduced.push(1);
            }
            for op in [ReduceOp::Sum, ReduceOp::Max] {
                check_on_gpus(
                    &Kernel::Reduce { op, axis },
                    &[a.clone(), Input::zeros(&reduced)],
                );
            }
        }
        check_on_gpus(&Kernel::Softmax, &[a.clone(), out.clone()]);
        let n = *shape.last().unwrap();
        check_on_gpus(
            &Kernel::LayerNorm { eps: 1e-5 },
            &[a.clone(), ramp(&[n], 1.0), ramp(&[n], 0.3), out.clone()],
        );
    }
}

#[test]
fn conv_and_pooling() {
    check_on_gpus(
        &Kernel::Conv2d {
            stride: 1,
            padding: 1,
        },
        &[
            ramp(&[2, 3, 9, 7], 1.0),
            ramp(&[4, 3, 3, 3], 1.0),
            Input::zeros(&[2, 4, 9, 7]),
        ],
    );
    check_on_gpus(
        &Kernel::Conv2d {
            stride: 2,
            padding: 0,
        },
        &[
            ramp(&[1, 2, 8, 8], 1.0),
            ramp(&[3, 2, 2, 3], 1.0),
            Input::zeros(&[1, 3, 4, 3]),
        ],
    );
    for op in [PoolOp::Max, PoolOp::Avg] {
        check_on_gpus(
            &Kernel::Pool2d {
                op,
                window: 2,
                stride: 2,
            },
            &[ramp(&[2, 3, 8, 6], 1.0), Input::zeros(&[2, 3, 4, 3])],
        );
        check_on_gpus(
            &Kernel::Pool2d {
                op,
                window: 3,
                stride: 1,
            },
            &[ramp(&[1, 1, 5, 5], 1.0), Input::zeros(&[1, 1, 3, 3])],
        );
    }
}

#[test]
fn image_ops() {
    for shape in [vec![17, 23], vec![16, 12, 3]] {
        let img = ramp(&shape, 255.0);
        let mut half = shape.clone();
        half[0] = 9;
        half[1] = 31;
        check_on_gpus(&Kernel::Resize, &[img.clone(), Input::zeros(&half)]);
        check_on_gpus(
            &Kernel::GaussianBlur { sigma: 1.2 },
            &[img.clone(), Input::zeros(&shape)],
        );
        check_on_gpus(&Kernel::Sobel, &[img.clone(), Input::zeros(&shape)]);
        check_on_gpus(
            &Kernel::Threshold {
                value: 10.0,
                max: 255.0,
            },
            &[img.clone(), Input::zeros(&shape)],
        );
    }
    check_on_gpus(
        &Kernel::RgbToGray,
        &[ramp(&[5, 7, 3], 255.0), Input::zeros(&[5, 7])],
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn gemm_with_transposes(m in 1usize..150, n in 1usize..150, k in 1usize..150, ta in any::<bool>(), tb in any::<bool>(), beta in prop::sample::select(vec![0.0, 0.5])) {
        let a = ramp(&if ta { [k, m] } else { [m, k] }, 1.0);
        let b = ramp(&if tb { [n, k] } else { [k, n] }, 1.0);
        let mut kernel = Kernel::gemm().scaled(1.25, beta);
        if ta { kernel = kernel.transpose_a(); }
        if tb { kernel = kernel.transpose_b(); }
        check_on_gpus(&kernel, &[a, b, ramp(&[m, n], 1.0)]);
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
    let Some(gpu) = rt
        .units()
        .iter()
        .find(|u| u.kind == UnitKind::Gpu)
        .map(|u| u.id)
    else {
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
