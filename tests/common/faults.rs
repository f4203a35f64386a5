//! The fault suite's engine: random task graphs with injected errors,
//! panics, delays, explicit edges and cancellations, submitted from several
//! threads at once, and checked task by task and tensor by tensor against
//! a sequential replay on the host.
//!
//! Each thread owns its tensors, so the order of its own submissions is the
//! whole story of its tensors: the replay of that order is the reference.
//! Built-in kernels (add, relu) run on every unit kind that has them;
//! user kernels (a scale-and-shift, a mix of two tensors, and the injected
//! faults) run on CPU units. Values are compared exactly: f32 addition and
//! relu are correctly rounded on every backend.

use std::collections::HashSet;
use std::sync::Once;
use std::time::{Duration, Instant};

use crate::rng::Rng;
use xpu::{BinaryOp, Error, Kernel, Mode, Placement, Runtime, Task, TaskOptions, Tensor, UnaryOp};

/// What to generate.
#[derive(Debug, Clone)]
pub struct FaultConfig {
    pub seed: u64,
    /// Threads submitting at once, each with its own tensors.
    pub threads: usize,
    pub tasks_per_thread: usize,
    pub tensors_per_thread: usize,
    /// Tasks submitted between two checks.
    pub batch: usize,
    /// Share of tasks that fail with an error.
    pub error_rate: f64,
    /// Share of tasks that panic.
    pub panic_rate: f64,
    /// Share of user-kernel tasks that sleep a little first.
    pub delay_rate: f64,
    /// Share of tasks with an explicit edge to an earlier task.
    pub after_rate: f64,
    /// Share of tasks the thread tries to cancel after submitting them.
    pub cancel_rate: f64,
    /// Share of built-in tasks pinned to a random unit (else any unit).
    pub pin_rate: f64,
}

impl FaultConfig {
    /// The rates of the targets: 1% errors, 0.1% panics.
    pub fn new(seed: u64, threads: usize, tasks_per_thread: usize) -> FaultConfig {
        FaultConfig {
            seed,
            threads,
            tasks_per_thread,
            tensors_per_thread: 32,
            batch: 2_000,
            error_rate: 0.01,
            panic_rate: 0.001,
            delay_rate: 0.02,
            after_rate: 0.05,
            cancel_rate: 0.005,
            pin_rate: 0.4,
        }
    }
}

/// What a run did and found.
#[derive(Debug, Default, Clone)]
pub struct FaultReport {
    pub tasks: u64,
    pub injected_errors: u64,
    pub injected_panics: u64,
    pub cancelled: u64,
    /// Tasks that did not succeed (their own fault, a dependency, a cancel).
    pub failed: u64,
    /// Tasks that failed for lack of memory.
    pub out_of_memory: u64,
    /// Differences from the sequential replay (empty when all is right).
    pub mismatches: Vec<String>,
    pub seconds: f64,
}

impl FaultReport {
    fn add(&mut self, other: FaultReport) {
        self.tasks += other.tasks;
        self.injected_errors += other.injected_errors;
        self.injected_panics += other.injected_panics;
        self.cancelled += other.cancelled;
        self.failed += other.failed;
        self.out_of_memory += other.out_of_memory;
        self.mismatches.extend(other.mismatches);
    }
}

impl std::fmt::Display for FaultReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} tasks in {:.1} s: {} errors and {} panics injected, {} cancelled, {} failed as expected, {} out of memory, {} wrong",
            self.tasks,
            self.seconds,
            self.injected_errors,
            self.injected_panics,
            self.cancelled,
            self.failed,
            self.out_of_memory,
            self.mismatches.len()
        )
    }
}

/// What a generated task computes.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// `c = a + b`.
    Add { a: usize, b: usize, c: usize },
    /// `b = relu(a)`.
    Relu { a: usize, b: usize },
    /// `x = x * 0.5 + 1` (user kernel).
    Affine { x: usize },
    /// `x = x * 0.5 + a` (user kernel).
    Mix { a: usize, x: usize },
    /// `x = value` everywhere (user kernel, writes without reading: it
    /// clears a poisoned tensor).
    Reset { x: usize, value: f32 },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    None,
    Error,
    Panic,
}

/// How a task ended, as the replay predicts it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Ok,
    /// Its own fault or its own cancellation.
    Own,
    /// Did not run because of this earlier task.
    Inherited(u64),
}

struct Planned {
    task: Task,
    op: Op,
    fault: Fault,
    after: Vec<usize>,
    cancelled: bool,
}

/// A tensor's expected state: its values, or the task that poisoned it.
#[derive(Clone)]
enum Expected {
    Values(Vec<f32>),
    Poisoned(u64),
}

/// Replays `op` on tensors of `len` elements.
fn apply(op: Op, state: &mut [Expected], len: usize) {
    let vals = |state: &[Expected], i: usize| match &state[i] {
        Expected::Values(v) => v.clone(),
        Expected::Poisoned(_) => unreachable!("the replay checks poison first"),
    };
    match op {
        Op::Add { a, b, c } => {
            let (va, vb) = (vals(state, a), vals(state, b));
            state[c] = Expected::Values(va.iter().zip(&vb).map(|(x, y)| x + y).collect());
        }
        Op::Relu { a, b } => {
            state[b] = Expected::Values(vals(state, a).iter().map(|x| x.max(0.0)).collect());
        }
        Op::Affine { x } => {
            state[x] = Expected::Values(vals(state, x).iter().map(|v| v * 0.5 + 1.0).collect());
        }
        Op::Mix { a, x } => {
            let (va, vx) = (vals(state, a), vals(state, x));
            state[x] = Expected::Values(vx.iter().zip(&va).map(|(v, w)| v * 0.5 + w).collect());
        }
        Op::Reset { x, value } => state[x] = Expected::Values(vec![value; len]),
    }
}

fn reads(op: Op) -> Vec<usize> {
    match op {
        Op::Add { a, b, .. } => vec![a, b],
        Op::Relu { a, .. } => vec![a],
        Op::Affine { x } => vec![x],
        Op::Mix { a, x } => vec![a, x],
        Op::Reset { .. } => vec![],
    }
}

fn writes(op: Op) -> usize {
    match op {
        Op::Add { c, .. } => c,
        Op::Relu { b, .. } => b,
        Op::Affine { x } | Op::Mix { x, .. } | Op::Reset { x, .. } => x,
    }
}

fn user_kernel(op: Op, fault: Fault, delay: Option<Duration>) -> Kernel {
    let modes: &[Mode] = match op {
        Op::Mix { .. } => &[Mode::Read, Mode::ReadWrite],
        Op::Reset { .. } => &[Mode::Write],
        _ => &[Mode::ReadWrite],
    };
    let name = match fault {
        Fault::None => "compute",
        Fault::Error => "injected-error",
        Fault::Panic => "injected-panic",
    };
    Kernel::custom(name, modes, move |args| {
        if let Some(d) = delay {
            std::thread::sleep(d);
        }
        match fault {
            Fault::Error => {
                return Err(Error::Device {
                    backend: "cpu".into(),
                    message: "injected error".into(),
                })
            }
            Fault::Panic => panic!("injected panic"),
            Fault::None => {}
        }
        match op {
            Op::Mix { .. } => {
                let a = args[0].as_f32()?.to_vec();
                for (v, w) in args[1].as_f32_mut()?.iter_mut().zip(&a) {
                    *v = *v * 0.5 + w;
                }
            }
            Op::Reset { value, .. } => args[0].as_f32_mut()?.fill(value),
            _ => {
                for v in args[0].as_f32_mut()? {
                    *v = *v * 0.5 + 1.0;
                }
            }
        }
        Ok(())
    })
}

fn same(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x == y || (x.is_nan() && y.is_nan()))
}

/// One thread's share: generates, submits, checks.
fn run_thread(rt: &Runtime, cfg: &FaultConfig, thread: usize) -> FaultReport {
    let mut rng = Rng(cfg.seed ^ (thread as u64 + 1).wrapping_mul(0xA076_1D64_78BD_642F));
    let len = 1 + rng.below(64);
    let mut report = FaultReport::default();
    let mut state: Vec<Expected> = Vec::new();
    let mut tensors: Vec<Tensor> = Vec::new();
    for i in 0..cfg.tensors_per_thread {
        let values: Vec<f32> = (0..len)
            .map(|_| (rng.below(2001) as f32 - 1000.0) / 1000.0)
            .collect();
        let t = rt
            .tensor(&[len], values.clone())
            .expect("tensor")
            .named(&format!("t{thread}.{i}"));
        tensors.push(t);
        state.push(Expected::Values(values));
    }
    // Tasks cancelled so far: a failure rooted there is a cancellation.
    let mut cancelled: HashSet<u64> = HashSet::new();
    let units = rt.units().len();
    let n = cfg.tensors_per_thread;
    let mut done = 0;
    while done < cfg.tasks_per_thread {
        let batch = cfg.batch.min(cfg.tasks_per_thread - done);
        let mut planned: Vec<Planned> = Vec::with_capacity(batch);
        for _ in 0..batch {
            let pick_other = |rng: &mut Rng, not: &[usize]| loop {
                let i = rng.below(n);
                if !not.contains(&i) {
                    break i;
                }
            };
            let a = rng.below(n);
            // Writers that read nothing clear poison about as fast as
            // readers spread it, so most tasks run.
            let op = match rng.below(10) {
                0 | 1 => {
                    let b = rng.below(n);
                    Op::Add {
                        a,
                        b,
                        c: pick_other(&mut rng, &[a, b]),
                    }
                }
                2 | 3 => Op::Relu {
                    a,
                    b: pick_other(&mut rng, &[a]),
                },
                4 => Op::Affine { x: a },
                5..=8 => Op::Reset {
                    x: a,
                    value: (rng.below(2001) as f32 - 1000.0) / 1000.0,
                },
                _ => Op::Mix {
                    a,
                    x: pick_other(&mut rng, &[a]),
                },
            };
            let fault = if rng.chance(cfg.panic_rate) {
                Fault::Panic
            } else if rng.chance(cfg.error_rate) {
                Fault::Error
            } else {
                Fault::None
            };
            // Faults are user kernels: a failing op becomes the user
            // kernel with the same accesses.
            let op = match (fault, op) {
                (Fault::None, op) => op,
                (_, Op::Add { a, c, .. }) => Op::Mix { a, x: c },
                (_, Op::Relu { b, .. }) => Op::Affine { x: b },
                (_, op) => op,
            };
            let mut opts = TaskOptions::default();
            let mut after = Vec::new();
            if !planned.is_empty() && rng.chance(cfg.after_rate) {
                let earlier = rng.below(planned.len());
                opts = opts.after(&planned[earlier].task);
                after.push(earlier);
            }
            let kernel = match op {
                Op::Add { .. } => Kernel::Binary(BinaryOp::Add),
                Op::Relu { .. } => Kernel::Unary(UnaryOp::Relu),
                _ => {
                    let delay = rng
                        .chance(cfg.delay_rate)
                        .then(|| Duration::from_micros(rng.below(300) as u64));
                    user_kernel(op, fault, delay)
                }
            };
            let accesses = match op {
                Op::Add { a, b, c } => {
                    vec![tensors[a].read(), tensors[b].read(), tensors[c].write()]
                }
                Op::Relu { a, b } => vec![tensors[a].read(), tensors[b].write()],
                Op::Affine { x } => vec![tensors[x].rw()],
                Op::Mix { a, x } => vec![tensors[a].read(), tensors[x].rw()],
                Op::Reset { x, .. } => vec![tensors[x].write()],
            };
            let builtin = matches!(op, Op::Add { .. } | Op::Relu { .. });
            let pinned = builtin && rng.chance(cfg.pin_rate);
            let placed = if pinned {
                opts.clone().on(Placement::Unit(rng.below(units)))
            } else {
                opts.clone()
            };
            let task = match rt.submit_with(&kernel, &accesses, placed) {
                Ok(t) => t,
                Err(Error::NoCapableUnit { .. }) if pinned => {
                    rt.submit_with(&kernel, &accesses, opts).expect("submit")
                }
                Err(e) => panic!("submission refused: {e}"),
            };
            match fault {
                Fault::Error => report.injected_errors += 1,
                Fault::Panic => report.injected_panics += 1,
                Fault::None => {}
            }
            planned.push(Planned {
                task,
                op,
                fault,
                after,
                cancelled: false,
            });
            if rng.chance(cfg.cancel_rate) {
                let victim = rng.below(planned.len());
                let p = &mut planned[victim];
                if !p.cancelled && rt.cancel(&p.task) {
                    p.cancelled = true;
                    report.cancelled += 1;
                }
            }
        }
        // The sequential replay of this batch, then the comparison.
        let mut outcomes: Vec<Outcome> = Vec::with_capacity(planned.len());
        for p in &planned {
            let id = p.task.id();
            let after_roots = p.after.iter().filter_map(|&i| match outcomes[i] {
                Outcome::Ok => None,
                Outcome::Own => Some(planned[i].task.id()),
                Outcome::Inherited(root) => Some(root),
            });
            let read_roots = reads(p.op).into_iter().filter_map(|i| match state[i] {
                Expected::Poisoned(root) => Some(root),
                Expected::Values(_) => None,
            });
            // A cancelled task is dropped before anything else is looked
            // at; otherwise an inherited failure comes before its own fault.
            let expected = match after_roots.chain(read_roots).min() {
                _ if p.cancelled => Outcome::Own,
                Some(root) => Outcome::Inherited(root),
                None if p.fault != Fault::None => Outcome::Own,
                None => Outcome::Ok,
            };
            match expected {
                Outcome::Ok => apply(p.op, &mut state, len),
                Outcome::Own => state[writes(p.op)] = Expected::Poisoned(id),
                Outcome::Inherited(root) => state[writes(p.op)] = Expected::Poisoned(root),
            }
            if p.cancelled {
                cancelled.insert(id);
            }
            let got = rt.wait(&p.task);
            let ok = match (&got, expected) {
                (Ok(()), Outcome::Ok) => true,
                (Err(Error::Cancelled { cancelled_task, .. }), Outcome::Own) => {
                    p.cancelled && *cancelled_task == id
                }
                (Err(Error::KernelFailed { task, reason, .. }), Outcome::Own) => {
                    let panicked = reason.contains("panicked: injected panic");
                    *task == id && !p.cancelled && panicked == (p.fault == Fault::Panic)
                }
                (Err(Error::DependencyFailed { failed_task, .. }), Outcome::Inherited(root)) => {
                    *failed_task == root && !cancelled.contains(&root)
                }
                (Err(Error::Cancelled { cancelled_task, .. }), Outcome::Inherited(root)) => {
                    *cancelled_task == root && cancelled.contains(&root)
                }
                _ => false,
            };
            if got.is_err() {
                report.failed += 1;
            }
            if let Err(e) = &got {
                if e.to_string().contains("out of memory") {
                    report.out_of_memory += 1;
                }
            }
            if !ok {
                report.mismatches.push(format!(
                    "thread {thread}, task {id} ({:?}, fault {:?}, cancelled {}): expected {expected:?}, got {got:?}",
                    p.op, p.fault, p.cancelled
                ));
            }
            outcomes.push(expected);
        }
        report.tasks += planned.len() as u64;
        done += batch;
        check_tensors(rt, thread, &tensors, &state, &mut report);
    }
    report
}

fn check_tensors(
    rt: &Runtime,
    thread: usize,
    tensors: &[Tensor],
    state: &[Expected],
    report: &mut FaultReport,
) {
    for (i, (t, want)) in tensors.iter().zip(state).enumerate() {
        let got = rt.read::<f32>(t);
        let ok = match (&got, want) {
            (Ok(v), Expected::Values(w)) => same(v, w),
            (Err(Error::Poisoned { failed_task, .. }), Expected::Poisoned(root)) => {
                failed_task == root
            }
            _ => false,
        };
        if !ok {
            let want = match want {
                Expected::Values(w) => format!("{w:?}"),
                Expected::Poisoned(root) => format!("poisoned by task {root}"),
            };
            let got = match got {
                Ok(v) => format!("{v:?}"),
                Err(e) => e.to_string(),
            };
            report.mismatches.push(format!(
                "thread {thread}, tensor t{thread}.{i}: expected {want}, got {got}"
            ));
        }
    }
}

/// Keeps the injected panics off standard error; other panics are printed
/// as usual.
fn quiet_injected_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&"injected panic") {
                previous(info);
            }
        }));
    });
}

/// Runs `cfg` on `rt` from `cfg.threads` threads at once.
pub fn run(rt: &Runtime, cfg: &FaultConfig) -> FaultReport {
    quiet_injected_panics();
    let start = Instant::now();
    let mut total = FaultReport::default();
    let reports: Vec<FaultReport> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..cfg.threads)
            .map(|t| scope.spawn(move || run_thread(rt, cfg, t)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a submitting thread panicked"))
            .collect()
    });
    for r in reports {
        total.add(r);
    }
    total.seconds = start.elapsed().as_secs_f64();
    total
}

/// Device memory for the random suite: twice the largest working set
/// (three tensors of at most 64 f32), so eviction runs often and no task
/// may fail for lack of room.
pub const DEVICE_CAPACITY: usize = 2 * 3 * 256;

/// Two CPU units, no devices: the runtime the soak measures.
pub fn soak_runtime(profiling: bool) -> Runtime {
    Runtime::builder()
        .cpu_units(2)
        .device_discovery(false)
        .profiling(profiling)
        .build()
        .expect("a CPU runtime")
}

/// Resident memory of this process in bytes (Linux), for soak checks.
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Submits `rounds` rounds of `per_round` tasks (half of them reading one
/// tensor), waiting after each; returns resident memory after each round.
pub fn soak(rt: &Runtime, rounds: usize, per_round: usize) -> Vec<u64> {
    let t = rt.tensor(&[1], vec![0.0f32]).unwrap();
    (0..rounds)
        .map(|_| {
            for i in 0..per_round {
                let access = if i % 2 == 0 { vec![t.read()] } else { vec![] };
                rt.submit(&Kernel::Noop, &access).unwrap();
            }
            rt.wait_all();
            rss_bytes().unwrap_or(0)
        })
        .collect()
}
