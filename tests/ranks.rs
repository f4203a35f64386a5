//! One task graph across ranks (threads of this process here, over the
//! `Threads` transport; MPI carries the same messages between
//! processes): random graphs with random owners give the sequential
//! results on every rank, tiled algorithms over a block-cyclic
//! distribution give the single-process results while moving exactly
//! the tiles the distribution requires, and failures reach the ranks that
//! wait on them instead of hanging them.

use xpu::cluster::ranks::{RankTensor, Ranks, Threads, Traffic};
use xpu::tiled::{self, run_on_ranks, Algorithm, Distribution, RankTiledMatrix, TiledMatrix};
use xpu::{BinaryOp, DType, Error, Kernel, Mode, Runtime, UnaryOp};

fn runtime() -> Runtime {
    Runtime::builder()
        .cpu_units(1)
        .device_discovery(false)
        .build()
        .unwrap()
}

/// Runs `program` on `n` ranks, one thread each; its results by rank.
fn on_ranks<R: Send + 'static>(
    n: usize,
    program: impl Fn(&Ranks) -> xpu::Result<R> + Send + Sync + Clone + 'static,
) -> Vec<(R, Traffic)> {
    let handles: Vec<_> = Threads::group(n)
        .into_iter()
        .map(|transport| {
            let program = program.clone();
            std::thread::spawn(move || {
                let ranks = Ranks::new(runtime(), transport).unwrap();
                let result = program(&ranks).unwrap();
                ranks.wait_all();
                let traffic = ranks.traffic();
                ranks.finish().unwrap();
                (result, traffic)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

/// Deterministic pseudo-random numbers.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

/// One step of a random graph: an op on tensors by index.
#[derive(Clone, Copy)]
enum Step {
    Add(usize, usize, usize),
    Halve(usize, usize),
    Relu(usize, usize),
    Increment(usize),
}

fn random_graph(seed: u64, tensors: usize, steps: usize) -> Vec<Step> {
    let mut rng = Lcg(seed);
    (0..steps)
        .map(|_| {
            let (a, b, c) = (rng.below(tensors), rng.below(tensors), rng.below(tensors));
            match rng.below(4) {
                0 if c != a && c != b => Step::Add(a, b, c),
                1 if c != a => Step::Halve(a, c),
                2 if c != a => Step::Relu(a, c),
                _ => Step::Increment(c),
            }
        })
        .collect()
}

fn increment() -> Kernel {
    Kernel::custom("increment", &[Mode::ReadWrite], |args| {
        args[0].as_f32_mut()?.iter_mut().for_each(|v| *v += 1.0);
        Ok(())
    })
}

fn halve() -> Kernel {
    Kernel::custom("halve", &[Mode::Read, Mode::Write], |args| {
        let a = args[0].as_f32()?.to_vec();
        for (out, v) in args[1].as_f32_mut()?.iter_mut().zip(a) {
            *out = v * 0.5;
        }
        Ok(())
    })
}

fn initial(i: usize) -> Vec<f32> {
    (0..16).map(|e| (i * 16 + e) as f32 - 40.0).collect()
}

/// The kernel and accesses of a step, given how to make each access.
fn submit_step<A>(
    step: Step,
    read: impl Fn(usize) -> A,
    write: impl Fn(usize) -> A,
    rw: impl Fn(usize) -> A,
) -> (Kernel, Vec<A>) {
    match step {
        Step::Add(a, b, c) => (
            Kernel::Binary(BinaryOp::Add),
            vec![read(a), read(b), write(c)],
        ),
        Step::Halve(a, c) => (halve(), vec![read(a), write(c)]),
        Step::Relu(a, c) => (Kernel::Unary(UnaryOp::Relu), vec![read(a), write(c)]),
        Step::Increment(c) => (increment(), vec![rw(c)]),
    }
}

fn sequential(graph: &[Step], tensors: usize) -> Vec<Vec<f32>> {
    let rt = runtime();
    let ts: Vec<_> = (0..tensors)
        .map(|i| rt.tensor(&[16], initial(i)).unwrap())
        .collect();
    for &step in graph {
        let (kernel, accesses) =
            submit_step(step, |i| ts[i].read(), |i| ts[i].write(), |i| ts[i].rw());
        rt.submit(&kernel, &accesses).unwrap();
    }
    ts.iter().map(|t| rt.read(t).unwrap()).collect()
}

#[test]
fn random_graphs_with_random_owners_equal_the_sequential_results_on_every_rank() {
    for (seed, ranks) in [(1u64, 2usize), (2, 3), (3, 4), (4, 3)] {
        let tensors = 8;
        let graph = random_graph(seed, tensors, 80);
        let expected = sequential(&graph, tensors);
        let mut rng = Lcg(seed + 100);
        let owners: Vec<usize> = (0..tensors).map(|_| rng.below(ranks)).collect();
        let results = on_ranks(ranks, move |r: &Ranks| -> xpu::Result<Vec<Vec<f32>>> {
            let ts: Vec<RankTensor> = owners
                .iter()
                .enumerate()
                .map(|(i, &owner)| r.tensor(owner, &[16], || initial(i)))
                .collect::<xpu::Result<_>>()?;
            for &step in &graph {
                let (kernel, accesses) =
                    submit_step(step, |i| ts[i].read(), |i| ts[i].write(), |i| ts[i].rw());
                r.submit(&kernel, &accesses)?;
            }
            ts.iter().map(|t| r.fetch::<f32>(t)).collect()
        });
        let sent: u64 = results.iter().map(|(_, t)| t.copies_sent).sum();
        let received: u64 = results.iter().map(|(_, t)| t.copies_received).sum();
        assert_eq!(sent, received, "seed {seed}: copies lost or made up");
        assert!(sent > 0, "seed {seed}: nothing moved between {ranks} ranks");
        for (rank, (got, _)) in results.into_iter().enumerate() {
            assert_eq!(got, expected, "seed {seed}, rank {rank} of {ranks}");
        }
    }
}

#[test]
fn tiled_algorithms_over_ranks_equal_one_process_and_move_the_minimum() {
    let (n, tile) = (32, 8);
    let spd = move |i: usize, j: usize| {
        if i == j {
            n as f64 + 4.0
        } else {
            1.0 / (1.0 + i.abs_diff(j) as f64)
        }
    };
    let general = |i: usize, j: usize| ((i * 7 + j * 3) % 11) as f64 - 5.0;
    for algorithm in Algorithm::ALL {
        for ranks in [2usize, 4] {
            let distribution = Distribution::block_cyclic(ranks);
            // One process.
            let rt = runtime();
            let expected = match algorithm {
                Algorithm::Gemm => {
                    let a = TiledMatrix::from_fn(&rt, n, tile, general).unwrap();
                    let b = TiledMatrix::from_fn(&rt, n, tile, spd).unwrap();
                    let c = TiledMatrix::zeros(&rt, n, tile, DType::F64).unwrap();
                    tiled::gemm(&rt, &a, &b, &c, xpu::Placement::Any).unwrap();
                    c.to_vec::<f64>(&rt).unwrap()
                }
                Algorithm::Cholesky | Algorithm::Lu => {
                    let a = TiledMatrix::from_fn(&rt, n, tile, spd).unwrap();
                    if algorithm == Algorithm::Cholesky {
                        tiled::cholesky(&rt, &a).unwrap();
                    } else {
                        tiled::lu(&rt, &a).unwrap();
                    }
                    a.to_vec::<f64>(&rt).unwrap()
                }
            };
            let results = on_ranks(
                ranks,
                move |r: &Ranks| -> xpu::Result<(Vec<f64>, Traffic)> {
                    let operands: Vec<RankTiledMatrix> = match algorithm {
                        Algorithm::Gemm => vec![
                            RankTiledMatrix::from_fn(r, n, tile, distribution, general)?,
                            RankTiledMatrix::from_fn(r, n, tile, distribution, spd)?,
                            RankTiledMatrix::from_fn(r, n, tile, distribution, |_, _| 0.0f64)?,
                        ],
                        _ => vec![RankTiledMatrix::from_fn(r, n, tile, distribution, spd)?],
                    };
                    let refs: Vec<&RankTiledMatrix> = operands.iter().collect();
                    run_on_ranks(r, algorithm, &refs)?;
                    r.wait_all();
                    // What the algorithm moved, before gathering the result.
                    let moved = r.traffic();
                    let result = operands.last().expect("an operand").to_vec::<f64>(r)?;
                    Ok((result, moved))
                },
            );
            let copies: u64 = results.iter().map(|((_, m), _)| m.copies_sent).sum();
            let bytes: u64 = results.iter().map(|((_, m), _)| m.bytes_sent).sum();
            let minimum = algorithm.min_transfers(n / tile, distribution) as u64;
            assert_eq!(copies, minimum, "{} on {ranks} ranks", algorithm.name());
            assert_eq!(bytes, minimum * (tile * tile * 8) as u64);
            for (rank, ((got, _), _)) in results.into_iter().enumerate() {
                let worst = got
                    .iter()
                    .zip(&expected)
                    .map(|(g, e)| (g - e).abs() / e.abs().max(1.0))
                    .fold(0.0f64, f64::max);
                assert!(
                    worst <= 1e-12,
                    "{} on rank {rank} of {ranks}: relative error {worst}",
                    algorithm.name()
                );
            }
        }
    }
}

#[test]
fn a_tensor_that_could_not_be_sent_fails_the_tasks_waiting_for_it_on_the_other_rank() {
    let results = on_ranks(2, |r: &Ranks| {
        // Rank 0 owns x; a failing kernel poisons it there.
        let x = r.tensor(0, &[4], || vec![1.0f32; 4])?;
        let y = r.empty(1, &[4], DType::F32)?;
        let broken = Kernel::custom("broken", &[Mode::ReadWrite], |_| {
            Err(Error::Config("the sensor is unplugged".into()))
        });
        r.submit(&broken, &[x.rw()])?;
        // Runs on rank 1, which needs x from rank 0.
        let relu = r.submit(&Kernel::Unary(UnaryOp::Relu), &[x.read(), y.write()])?;
        Ok(relu.map(|task| r.runtime().wait(&task).map_err(|e| e.to_string())))
    });
    let (on_rank_1, _) = &results[1];
    let err = on_rank_1
        .as_ref()
        .expect("the relu runs on rank 1")
        .as_ref()
        .unwrap_err();
    assert!(
        err.contains("rank 0 could not send copy") && err.contains("the sensor is unplugged"),
        "{err}"
    );
    assert!(results[0].0.is_none(), "rank 0 ran the relu");
}

#[test]
fn a_bad_owner_or_task_is_refused_on_every_rank() {
    let results = on_ranks(2, |r: &Ranks| {
        let owner = r
            .tensor(2, &[4], || vec![0.0f32; 4])
            .err()
            .map(|e| e.to_string());
        let a = r.tensor(0, &[4], || vec![0.0f32; 4])?;
        let b = r.tensor(1, &[5], || vec![0.0f32; 5])?;
        let c = r.empty(1, &[4], DType::F32)?;
        let task = r
            .submit(
                &Kernel::Binary(BinaryOp::Add),
                &[a.read(), b.read(), c.write()],
            )
            .err()
            .map(|e| e.to_string());
        // Runs on rank 1 (c's owner); rank 0 must refuse it too.
        let aliased = r
            .submit(
                &Kernel::Binary(BinaryOp::Add),
                &[a.read(), c.read(), c.write()],
            )
            .err()
            .map(|e| e.to_string());
        Ok((owner, task, aliased))
    });
    for ((owner, task, aliased), _) in results {
        let aliased = aliased.expect("a tensor read and written by one task accepted");
        assert!(aliased.contains("aliasing is not allowed"), "{aliased}");
        let owner = owner.expect("rank 2 of 2 accepted");
        assert!(owner.contains("no rank 2"), "{owner}");
        let task = task.expect("a shape mismatch accepted");
        assert!(task.contains("add"), "{task}");
    }
}

/// Runs `program(rank, ranks)` on two ranks, one thread each, with a short
/// patience; each returns what its program gives.
fn two_ranks<R: Send + 'static>(
    program: impl Fn(usize, &Ranks) -> xpu::Result<R> + Send + Sync + Clone + 'static,
) -> Vec<xpu::Result<R>> {
    let handles: Vec<_> = Threads::group(2)
        .into_iter()
        .enumerate()
        .map(|(rank, transport)| {
            let program = program.clone();
            std::thread::spawn(move || {
                let ranks = Ranks::new(runtime(), transport)
                    .unwrap()
                    .with_patience(std::time::Duration::from_millis(300));
                program(rank, &ranks)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn a_rank_that_stops_answering_fails_the_tasks_waiting_for_it_and_is_named() {
    let results = two_ranks(|rank, r: &Ranks| {
        let x = r.tensor(0, &[4], || vec![1.0f32; 4])?;
        let y = r.empty(1, &[4], DType::F32)?;
        if rank == 0 {
            // Rank 0 stops here: it never sends x.
            return Ok(None);
        }
        let relu = r.submit(&Kernel::Unary(UnaryOp::Relu), &[x.read(), y.write()])?;
        let task = relu.expect("the relu runs on rank 1, which owns y");
        Ok(Some(r.runtime().wait(&task).map_err(|e| e.to_string())))
    });
    let waited = results[1].as_ref().unwrap().as_ref().expect("rank 1 ran");
    let err = waited.as_ref().unwrap_err();
    assert!(err.contains("rank 0 sent nothing for copy 0"), "{err}");
}

#[test]
fn ranks_that_submit_different_graphs_are_told_so() {
    let results = two_ranks(|rank, r: &Ranks| {
        let x = r.tensor(0, &[4], || vec![1.0f32; 4])?;
        let y = r.empty(1, &[4], DType::F32)?;
        // The same accesses, but not the same kernel on both ranks.
        let op = if rank == 0 {
            UnaryOp::Relu
        } else {
            UnaryOp::Exp
        };
        let task = r.submit(&Kernel::Unary(op), &[x.read(), y.write()])?;
        Ok(task.map(|t| r.runtime().wait(&t).map_err(|e| e.to_string())))
    });
    let waited = results[1]
        .as_ref()
        .unwrap()
        .as_ref()
        .expect("rank 1 ran the task");
    let err = waited.as_ref().unwrap_err();
    assert!(err.contains("ranks disagree on the graph"), "{err}");
}
