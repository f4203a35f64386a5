//! TPU and VPU units on candle: the tensor kernels on the TPU unit in f32,
//! f16 and bf16, convolution and pooling on both, and the image kernels on
//! the VPU unit in u8 and f32, each against the naive reference of
//! `tests/common` with its dtype's tolerance; and a graph that passes
//! tensors between CPU, TPU and VPU units with an exact transfer list.
#![cfg(feature = "candle")]

mod common;

use common::suite;
use common::{check_on_units, Input};
use proptest::prelude::*;
use xpu::{DType, Kernel, Placement, Runtime, TaskOptions, UnitKind, HOST};

fn runtime() -> Runtime {
    Runtime::builder().cpu_units(1).build().expect("runtime")
}

/// The unit of `kind` (candle's units are always there with the feature).
fn unit(rt: &Runtime, kind: UnitKind) -> (usize, usize) {
    let u = rt
        .units()
        .iter()
        .find(|u| u.kind == kind)
        .unwrap_or_else(|| panic!("no {kind} unit"));
    (u.id, u.node)
}

fn check_on(kind: UnitKind, dtypes: &[DType]) -> impl Fn(&Kernel, &[Input]) {
    let dtypes = dtypes.to_vec();
    move |kernel, args| {
        let rt = runtime();
        let (id, _) = unit(&rt, kind);
        check_on_units(&rt, &[id], kernel, args, &dtypes);
    }
}

const FLOATS: [DType; 3] = [DType::F32, DType::F16, DType::BF16];

#[test]
fn tensor_kernels_on_the_tpu() {
    suite::tensor_kernels(&check_on(UnitKind::Tpu, &FLOATS));
}

#[test]
fn conv_and_pooling_on_the_tpu_and_the_vpu() {
    suite::conv_and_pooling(&check_on(UnitKind::Tpu, &FLOATS));
    suite::conv_and_pooling(&check_on(UnitKind::Vpu, &[DType::F32]));
}

#[test]
fn image_kernels_on_the_vpu() {
    suite::image_ops(&check_on(UnitKind::Vpu, &[DType::U8, DType::F32]));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn gemm_with_transposes_on_the_tpu(m in 1usize..80, n in 1usize..80, k in 1usize..80, ta in any::<bool>(), tb in any::<bool>(), beta in prop::sample::select(vec![0.0, 0.5])) {
        let (kernel, args) = suite::gemm(m, n, k, ta, tb, beta);
        check_on(UnitKind::Tpu, &FLOATS)(&kernel, &args);
    }
}

#[test]
fn units_say_what_backs_them_and_refuse_what_they_do_not_run() {
    let rt = runtime();
    for kind in [UnitKind::Tpu, UnitKind::Vpu] {
        let info = &rt.units()[unit(&rt, kind).0];
        assert_eq!(info.backend, "candle");
        assert!(info.emulated, "candle's CPU device is not a {kind}");
    }
    let x = rt.tensor(&[4, 4], vec![1u8; 16]).unwrap();
    let y = rt.empty(&[4, 4], DType::U8);
    let on_tpu = TaskOptions::default().on(Placement::Kind(UnitKind::Tpu));
    let err = rt
        .submit_with(&Kernel::Sobel, &[x.read(), y.write()], on_tpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no unit can run kernel `sobel` on a tpu unit"),
        "{err}"
    );
}

#[test]
fn a_graph_across_cpu_tpu_and_vpu_moves_exactly_what_it_needs() {
    let rt = runtime();
    let ((tpu, tpu_node), (vpu, vpu_node)) = (unit(&rt, UnitKind::Tpu), unit(&rt, UnitKind::Vpu));
    let on = |id: usize| TaskOptions::default().on(Placement::Unit(id));
    let n = 32;
    let img = rt
        .tensor(
            &[n, n],
            (0..n * n).map(|i| (i % 251) as f32).collect::<Vec<_>>(),
        )
        .unwrap();
    let (blurred, weights, features, pooled) = (
        rt.empty(&[n, n], DType::F32),
        rt.tensor(&[n, n], vec![0.01f32; n * n]).unwrap(),
        rt.empty(&[n, n], DType::F32),
        rt.empty(&[1, 1, n / 2, n / 2], DType::F32),
    );
    // Blur on the VPU, a matrix product on the TPU, pooling on the VPU
    // (after a reshape-free view: the product is read as [1, 1, n, n] by a
    // CPU copy), then read back.
    rt.submit_with(
        &Kernel::GaussianBlur { sigma: 1.0 },
        &[img.read(), blurred.write()],
        on(vpu),
    )
    .unwrap();
    rt.submit_with(
        &Kernel::gemm(),
        &[blurred.read(), weights.read(), features.write()],
        on(tpu),
    )
    .unwrap();
    let as_batch = rt.empty(&[1, 1, n, n], DType::F32);
    let copy = Kernel::custom("copy", &[xpu::Mode::Read, xpu::Mode::Write], |args| {
        let src = args[0].as_f32()?.to_vec();
        args[1].as_f32_mut()?.copy_from_slice(&src);
        Ok(())
    });
    rt.submit_with(
        &copy,
        &[features.read(), as_batch.write()],
        TaskOptions::default().on(Placement::Kind(UnitKind::Cpu)),
    )
    .unwrap();
    rt.submit_with(
        &Kernel::Pool2d {
            op: xpu::PoolOp::Max,
            window: 2,
            stride: 2,
        },
        &[as_batch.read(), pooled.write()],
        on(vpu),
    )
    .unwrap();
    let got = rt.read::<f32>(&pooled).unwrap();
    assert_eq!(got.len(), n * n / 4);
    assert!(got.iter().all(|v| v.is_finite() && *v > 0.0));
    let moves: Vec<(u64, usize, usize)> = rt
        .transfers()
        .iter()
        .map(|t| (t.tensor, t.from, t.to))
        .collect();
    assert_eq!(
        moves,
        vec![
            (img.id(), HOST, vpu_node),
            (blurred.id(), vpu_node, HOST),
            (blurred.id(), HOST, tpu_node),
            (weights.id(), HOST, tpu_node),
            (features.id(), tpu_node, HOST),
            (as_batch.id(), HOST, vpu_node),
            (pooled.id(), vpu_node, HOST),
        ]
    );
}

#[test]
fn power_states_move_a_tpus_candle_ops_onto_one_thread_and_back_and_results_stay_right() {
    let rt = runtime();
    let (tpu, _) = unit(&rt, UnitKind::Tpu);
    let effects = common::chain_in_each_power_state(&rt, tpu);
    assert_eq!(effects.len(), 3, "{effects:?}");
    assert!(
        effects[0].starts_with("candle ops on the process's shared pool"),
        "{effects:?}"
    );
    assert!(
        effects[1].starts_with("candle ops on 1 thread"),
        "{effects:?}"
    );
    assert!(
        effects[2].starts_with("candle ops on the process's shared pool"),
        "{effects:?}"
    );
}
