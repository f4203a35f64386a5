//! Random task graphs — thousands of tasks over a few hundred tensors with
//! random accesses, some placed on a unit with its own memory — give exactly
//! the result of running the tasks one by one in submission order, under
//! every policy.

#[path = "../examples/custom_unit/dsp.rs"]
#[allow(dead_code)] // the DSP's own kernel is not used here
mod dsp;

use std::sync::Arc;

use proptest::prelude::*;
use xpu::{Kernel, Mode, Placement, Policy, Runtime, TaskOptions, UnitKind};

const P: f64 = 1_000_003.0;
const LEN: usize = 4;

/// What one task does, on plain vectors.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// y = (31 y + x + 7) mod P
    Mix1 { x: usize, y: usize },
    /// y = (17 y + 3 a + b + 1) mod P
    Mix2 { a: usize, b: usize, y: usize },
    /// y = c
    Set { y: usize, c: usize },
    /// reads x, changes nothing
    Peek { x: usize },
}

fn kernels() -> (Kernel, Kernel, Vec<Kernel>, Kernel) {
    let mix1 = Kernel::custom("mix1", &[Mode::Read, Mode::ReadWrite], |args| {
        let x = args[0].as_slice::<f64>()?.to_vec();
        for (y, x) in args[1].as_mut_slice::<f64>()?.iter_mut().zip(x) {
            *y = (31.0 * *y + x + 7.0) % P;
        }
        Ok(())
    });
    let mix2 = Kernel::custom("mix2", &[Mode::Read, Mode::Read, Mode::ReadWrite], |args| {
        let a = args[0].as_slice::<f64>()?.to_vec();
        let b = args[1].as_slice::<f64>()?.to_vec();
        for ((y, a), b) in args[2].as_mut_slice::<f64>()?.iter_mut().zip(a).zip(b) {
            *y = (17.0 * *y + 3.0 * a + b + 1.0) % P;
        }
        Ok(())
    });
    let sets = (0..5)
        .map(|c| {
            Kernel::custom("set", &[Mode::Write], move |args| {
                args[0].as_mut_slice::<f64>()?.fill(c as f64);
                Ok(())
            })
        })
        .collect();
    let peek = Kernel::custom("peek", &[Mode::Read], |args| {
        args[0].as_slice::<f64>()?;
        Ok(())
    });
    (mix1, mix2, sets, peek)
}

fn random_ops(seed: u64, tensors: usize, tasks: usize) -> Vec<Op> {
    let mut state = seed;
    let mut next = move |n: usize| {
        // splitmix64
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % n as u64) as usize
    };
    (0..tasks)
        .map(|_| {
            let y = next(tensors);
            let other = |n: &mut dyn FnMut(usize) -> usize| (y + 1 + n(tensors - 1)) % tensors;
            match next(10) {
                0..=3 => Op::Mix1 {
                    x: other(&mut next),
                    y,
                },
                4..=6 => Op::Mix2 {
                    a: other(&mut next),
                    b: other(&mut next),
                    y,
                },
                7 => Op::Set { y, c: next(5) },
                _ => Op::Peek { x: y },
            }
        })
        .collect()
}

fn sequential(ops: &[Op], tensors: usize) -> Vec<Vec<f64>> {
    let mut v: Vec<Vec<f64>> = (0..tensors).map(|i| vec![i as f64; LEN]).collect();
    for op in ops {
        match *op {
            Op::Mix1 { x, y } => {
                let x = v[x].clone();
                for (y, x) in v[y].iter_mut().zip(x) {
                    *y = (31.0 * *y + x + 7.0) % P;
                }
            }
            Op::Mix2 { a, b, y } => {
                let (a, b) = (v[a].clone(), v[b].clone());
                for ((y, a), b) in v[y].iter_mut().zip(a).zip(b) {
                    *y = (17.0 * *y + 3.0 * a + b + 1.0) % P;
                }
            }
            Op::Set { y, c } => v[y].fill(c as f64),
            Op::Peek { .. } => {}
        }
    }
    v
}

fn run_dag(policy: Policy, ops: &[Op], tensors: usize, seed: u64) -> Vec<Vec<f64>> {
    let rt = Runtime::builder()
        .policy(policy)
        .cpu_units(2)
        .device_discovery(false)
        .backend(Arc::new(dsp::DspBackend::new(1, 64 * 1024)))
        .build()
        .unwrap();
    let (mix1, mix2, sets, peek) = kernels();
    let ts: Vec<_> = (0..tensors)
        .map(|i| rt.tensor(&[LEN], vec![i as f64; LEN]).unwrap())
        .collect();
    for (i, op) in ops.iter().enumerate() {
        // Every seventh task (shifted by the seed) goes to the DSP, so copies
        // move between memory nodes while other tasks run.
        let placement = if (i as u64 + seed).is_multiple_of(7) {
            Placement::Kind(UnitKind::Custom("dsp"))
        } else {
            Placement::Any
        };
        let opts = TaskOptions::default()
            .on(placement)
            .priority((i % 3 == 0) as i32);
        let task = match *op {
            Op::Mix1 { x, y } => rt.submit_with(&mix1, &[ts[x].read(), ts[y].rw()], opts),
            Op::Mix2 { a, b, y } => {
                rt.submit_with(&mix2, &[ts[a].read(), ts[b].read(), ts[y].rw()], opts)
            }
            Op::Set { y, c } => rt.submit_with(&sets[c], &[ts[y].write()], opts),
            Op::Peek { x } => rt.submit_with(&peek, &[ts[x].read()], opts),
        };
        task.unwrap();
    }
    rt.wait_all();
    ts.iter().map(|t| rt.read::<f64>(t).unwrap()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4, ..ProptestConfig::default() })]

    #[test]
    fn random_dags_match_sequential_execution_under_every_policy(seed in any::<u64>()) {
        let (tensors, tasks) = (200, 3000);
        let ops = random_ops(seed, tensors, tasks);
        let expected = sequential(&ops, tensors);
        for policy in Policy::ALL {
            let got = run_dag(policy, &ops, tensors, seed);
            prop_assert!(got == expected, "policy {} differs from sequential execution", policy.as_str());
        }
    }
}
