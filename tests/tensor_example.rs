//! The `tensor` example's network, small: tiled over every unit it gives
//! the same probabilities as on CPU units only, each row sums to 1, under
//! the default policy (dmda, which leaves emulated units idle when the CPU
//! is faster) and under eager, which hands work to every capable unit:
//! when several kinds of units are there, more than one does work.

#[path = "../examples/tensor/net.rs"]
mod net;

use xpu::{Placement, Policy, Runtime, UnitKind};

#[test]
fn the_forward_pass_agrees_across_units_and_spreads_work() {
    let shape = net::Shape {
        batch: 12,
        side: 8,
        hidden: 32,
        classes: 5,
        tile: 4,
    };
    let cpu = Runtime::builder()
        .cpu_units(1)
        .device_discovery(false)
        .build()
        .unwrap();
    let want = net::forward(&cpu, shape, Placement::Kind(UnitKind::Cpu)).unwrap();
    for policy in [Policy::default(), Policy::Eager] {
        let rt = Runtime::builder()
            .cpu_units(1)
            .policy(policy)
            .build()
            .unwrap();
        let got = net::forward(&rt, shape, Placement::Any).unwrap();
        assert_eq!(got.len(), 12 * 5);
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() <= 1e-4, "{policy:?}: {a} vs {b}");
        }
        for row in got.chunks(5) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        }
        let busy = rt.report().iter().filter(|r| r.tasks > 0).count();
        if policy == Policy::Eager && rt.units().len() > 1 {
            assert!(busy > 1, "only one of {} units did work", rt.units().len());
        }
    }
}
