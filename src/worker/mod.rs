//! A unit's worker thread: takes ready tasks from the policy, fetches their
//! data onto the unit's memory node, launches the kernel inside a panic
//! boundary, and releases the tasks that depended on it. A unit whose
//! device was lost keeps its worker only to hand its queue to other units.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_utils::sync::Parker;
use smallvec::SmallVec;

pub(crate) use self::shared::{Accounts, Shared};
use crate::backend::{Arg, ArgData};
use crate::error::{Error, Result};
use crate::graph::{self, TaskNode};
use crate::memory::{Fetched, Storage};
use crate::perfmodel::SampleMemo;
use crate::power::{PowerChange, PowerState};
use crate::trace::TaskRecord;
use crate::unit::UnitId;

mod prefetch;
mod shared;

/// Polls before yielding the core, then yields before parking: a worker
/// that just finished a task usually finds the next one within microseconds.
const SPINS: u32 = 64;
const YIELDS: u32 = 256;

/// How long an idle worker polls and yields before parking, in its unit's
/// power state: `LowPower` parks at once (no core kept busy waiting),
/// `HighPerformance` waits four times as long as `Normal` (a task that
/// arrives meanwhile starts sooner).
#[derive(Clone, Copy)]
struct IdleBudget {
    spins: u32,
    yields: u32,
    says: &'static str,
}

impl IdleBudget {
    fn of(state: PowerState) -> IdleBudget {
        match state {
            PowerState::LowPower => IdleBudget {
                spins: 0,
                yields: 0,
                says: "the worker parks at once when idle",
            },
            PowerState::Normal => IdleBudget {
                spins: SPINS,
                yields: YIELDS,
                says: "the worker polls briefly when idle, then parks",
            },
            PowerState::HighPerformance => IdleBudget {
                spins: 4 * SPINS,
                yields: 4 * YIELDS,
                says: "the worker polls 4x longer when idle before parking",
            },
        }
    }
}

/// Starts a worker thread per unit, bound to the core `cores` gives it,
/// if any.
pub(crate) fn spawn(
    shared: &Arc<Shared>,
    parkers: Vec<Parker>,
    cores: Vec<Option<usize>>,
) -> Result<Vec<JoinHandle<()>>> {
    parkers
        .into_iter()
        .zip(cores)
        .enumerate()
        .map(|(unit, (parker, core))| {
            let s = shared.clone();
            let name = format!("xpu-{}{}", s.units[unit].kind, unit);
            std::thread::Builder::new()
                .name(name)
                .spawn(move || {
                    if let Some(core) = core {
                        if let Err(e) = crate::host::bind_thread_to_core(core) {
                            eprintln!("xpu: unit {unit}'s worker is not bound to core {core}: {e}");
                        }
                    }
                    run(s, unit, parker)
                })
                .map_err(|e| Error::Config(format!("cannot start worker thread: {e}")))
        })
        .collect()
}

fn run(s: Arc<Shared>, unit: UnitId, parker: Parker) {
    let mut idle = 0u32;
    // When tasks follow each other without a pause, one task's end is the
    // next one's start: one clock read per task instead of two.
    let mut last_end: Option<Stamp> = None;
    let mut memo = SampleMemo::default();
    let mut state = s.power.applied(unit);
    let mut budget = IdleBudget::of(state);
    // When the unit's queue last ran dry, and whether it is gated since.
    let mut idle_since: Option<Instant> = None;
    let mut gated = false;
    let per_task = s.policy_kind.chooses_power_states();
    loop {
        if s.health.is_down(unit) {
            serve_while_down(&s, unit, &parker);
            return;
        }
        let wanted = s.power.wanted(unit);
        if !per_task && wanted != state {
            state = change_power_state(&s, unit, state, wanted);
            budget = IdleBudget::of(state);
            last_end = None;
        }
        if let Some(task) = s.policy.pop(unit) {
            if per_task && follow_placed_state(&s, unit, &mut state) {
                budget = IdleBudget::of(state);
                last_end = None;
            }
            if gated {
                ungate(&s, unit);
                gated = false;
            }
            idle_since = None;
            let start = last_end.take().unwrap_or_else(|| Stamp::now(&s));
            last_end = Some(execute(&s, unit, &task, start, state, &mut memo));
            idle = 0;
            continue;
        }
        last_end = None;
        if idle == 0 {
            // The queue ran dry: what the unit's launches recorded goes to
            // its device now.
            let (backend, local) = &s.unit_backends[unit];
            backend.flush(*local);
            idle_since.get_or_insert_with(Instant::now);
        }
        if s.shutdown.load(Ordering::Acquire) {
            return;
        }
        idle += 1;
        // A gated unit parks at once. Yielding may take long on a busy
        // machine: a unit due to be gated stops yielding.
        if !gated && idle < budget.spins {
            std::hint::spin_loop();
            continue;
        }
        if !gated && idle < budget.spins + budget.yields && !due_to_gate(&s, idle_since) {
            std::thread::yield_now();
            continue;
        }
        s.going_to_sleep(unit);
        if let Some(task) = s.policy.pop(unit) {
            s.woke_up(unit);
            if per_task && follow_placed_state(&s, unit, &mut state) {
                budget = IdleBudget::of(state);
            }
            if gated {
                ungate(&s, unit);
                gated = false;
            }
            idle_since = None;
            execute(&s, unit, &task, Stamp::now(&s), state, &mut memo);
            idle = 0;
            continue;
        }
        let idle_for = idle_since.map_or(Duration::ZERO, |t| t.elapsed());
        if !s.shutdown.load(Ordering::Acquire) && (per_task || s.power.wanted(unit) == state) {
            // The timeout only guards against a missed wake-up, and ends
            // the wait when the unit is due to be gated.
            let wait = match s.gate_after {
                Some(after) if !gated => after.saturating_sub(idle_for).clamp(GATE_CHECK, PARK),
                _ => PARK,
            };
            parker.park_timeout(wait);
        }
        s.woke_up(unit);
        if !gated && due_to_gate(&s, idle_since) {
            gate(&s, unit);
            gated = true;
        }
        idle = budget.spins;
    }
}

/// Longest park of an idle worker (the timeout only guards against a
/// missed wake-up).
const PARK: Duration = Duration::from_millis(50);
/// Shortest park of a worker waiting to gate its unit.
const GATE_CHECK: Duration = Duration::from_micros(100);

/// Whether a unit idle since `idle_since` is due to be gated.
fn due_to_gate(s: &Shared, idle_since: Option<Instant>) -> bool {
    s.gate_after
        .is_some_and(|after| idle_since.is_some_and(|t| t.elapsed() >= after))
}

/// Gates idle `unit`: its free device memory goes back to the device (down
/// to the static pool), its time from now on is counted gated, and
/// placement counts its wake-up latency in.
fn gate(s: &Shared, unit: UnitId) {
    let released = s.memory.trim(s.units[unit].node);
    s.power.gate(unit, s.started.elapsed(), released);
    s.policy
        .set_wake_latency(unit, s.power.wake_latency(&s.units[unit]));
}

/// Work woke gated `unit`: its gating ends and its wake-up latency is
/// measured.
fn ungate(s: &Shared, unit: UnitId) {
    s.power.wake(unit, s.started.elapsed());
    s.policy.set_wake_latency(unit, 0.0);
}

/// Under a policy that chooses power states, puts `unit` in the state of
/// the task it just took (at most the state set for the unit); a state
/// its backend refuses is not chosen again. Returns whether the state
/// changed.
fn follow_placed_state(s: &Shared, unit: UnitId, state: &mut PowerState) -> bool {
    let set = s.power.wanted(unit);
    let target = s
        .policy
        .power_state(unit)
        .map_or(set, |placed| placed.min(set));
    if target == *state {
        return false;
    }
    let to = change_power_state(s, unit, *state, target);
    if to != target {
        s.policy.refuse_power_state(unit, target);
    }
    let changed = to != *state;
    *state = to;
    changed
}

/// Puts `unit` in `wanted` between two of its tasks; returns the state it
/// is in after (the old one if the backend refused), and records the
/// change for the trace.
fn change_power_state(
    s: &Shared,
    unit: UnitId,
    from: PowerState,
    wanted: PowerState,
) -> PowerState {
    let (backend, local) = &s.unit_backends[unit];
    let (to, effect) = match backend.set_power_state(*local, wanted) {
        Ok(effect) => (wanted, format!("{effect}; {}", IdleBudget::of(wanted).says)),
        Err(e) => (from, format!("{wanted} refused: {e}")),
    };
    s.power.note_change(
        PowerChange {
            unit,
            at: s.started.elapsed().as_secs_f64(),
            from,
            to,
            effect,
        },
        wanted,
    );
    to
}

/// A unit out of service runs nothing: its worker hands the tasks queued
/// for it to units in service, and fails those that no unit in service can
/// run, until the runtime shuts down.
fn serve_while_down(s: &Shared, unit: UnitId, parker: &Parker) {
    let reason = s.health.reason(unit).unwrap_or_default();
    loop {
        for task in s.policy.drain(unit) {
            if crate::sched::stranded(&*task, &s.health) {
                let down = Error::UnitDown {
                    unit,
                    reason: reason.clone(),
                };
                let now = Stamp::now(s);
                let span = Span {
                    start: now,
                    end: now,
                    state: s.power.applied(unit),
                };
                complete(s, unit, &task, span, Err(down), Fetches::default());
            } else {
                s.make_ready(task, None);
            }
        }
        if s.shutdown.load(Ordering::Acquire) {
            return;
        }
        parker.park_timeout(Duration::from_millis(1));
    }
}

/// A moment: the monotonic clock for the unit counters and, when
/// profiling, the profiler's clock reading.
#[derive(Clone, Copy)]
struct Stamp {
    instant: Instant,
    ticks: u64,
}

impl Stamp {
    fn now(s: &Shared) -> Stamp {
        Stamp {
            instant: Instant::now(),
            ticks: if s.recorder.is_on() {
                s.clock.ticks()
            } else {
                0
            },
        }
    }
}

/// Runs one task that was taken at `start`; returns when it ended.
/// `memo` is the worker's memory of which kernels it samples.
fn execute(
    s: &Shared,
    unit: UnitId,
    task: &Arc<TaskNode>,
    start: Stamp,
    state: PowerState,
    memo: &mut SampleMemo,
) -> Stamp {
    let not_run = |e| Launched {
        outcome: Err(e),
        fetched: Fetches::default(),
        run_seconds: None,
    };
    let launched = if !task.start() {
        not_run(Error::Cancelled {
            task: task.id,
            cancelled_task: task.id,
        })
    } else {
        match graph::inherited_failure(task) {
            Some(e) => not_run(e),
            None => launch(s, unit, task, memo),
        }
    };
    let end = Stamp::now(s);
    if let (Ok(()), Some(seconds)) = (&launched.outcome, launched.run_seconds) {
        let footprint = crate::sched::footprint(task);
        // A policy that chooses states predicts from the normal state's
        // time, and scales it by the unit's energy profile.
        let seconds = if s.policy_kind.chooses_power_states() {
            seconds / s.power.profile_of(&s.units[unit]).0.slowdown(state)
        } else {
            seconds
        };
        s.models
            .observe(task.kernel.name(), unit, &footprint, seconds);
    }
    complete(
        s,
        unit,
        task,
        Span { start, end, state },
        launched.outcome,
        launched.fetched,
    );
    end
}

/// When a task ran, and in which power state.
#[derive(Clone, Copy)]
struct Span {
    start: Stamp,
    end: Stamp,
    state: PowerState,
}

/// Records how `task` ended, poisons or clears what it writes, and
/// releases the tasks that waited for it.
fn complete(
    s: &Shared,
    unit: UnitId,
    task: &Arc<TaskNode>,
    Span { start, end, state }: Span,
    outcome: Result<()>,
    fetched: Fetches,
) {
    let ok = outcome.is_ok();
    for a in task.accesses.iter().filter(|a| a.mode.writes()) {
        a.tensor
            .inner
            .poison
            .replace(graph::failure_of(task.id, outcome.as_ref()));
    }
    let flops = if ok {
        let shapes: SmallVec<[&[usize]; 4]> =
            task.accesses.iter().map(|a| a.tensor.shape()).collect();
        task.kernel.flops(&shapes)
    } else {
        0.0
    };
    let busy = (end.instant - start.instant).as_nanos() as u64;
    s.counters
        .record(unit, ok, busy, flops, fetched.bytes as u64);
    s.power.record_busy(unit, state, busy);
    let recording = s.recorder.is_on();
    // Recorded before the task counts as finished, so that whoever waits
    // for it finds it in the profile.
    if recording {
        // A history keeps every task's footprint, and what it stands for.
        let footprint = match &s.history {
            Some(history) => {
                let fp = crate::sched::footprint(task);
                history.note_footprint(fp.key, || {
                    let args: Vec<String> =
                        task.accesses.iter().map(|a| a.meta().to_string()).collect();
                    args.join(", ")
                });
                Some(fp)
            }
            None => task.footprint.get(),
        };
        s.recorder.record(TaskRecord {
            id: task.id,
            kernel: task.kernel.clone(),
            unit,
            submitted: task.submitted_at,
            ready: task.ready_at.load(Ordering::Relaxed),
            start: start.ticks,
            end: end.ticks,
            ok,
            flops,
            bytes_fetched: fetched.bytes as u64,
            fetched_from: fetched.from,
            footprint,
            released_by: task.released_by.load(Ordering::Relaxed),
            tensors: task.accesses.iter().map(|a| a.tensor.id()).collect(),
            power: state,
        });
    }
    s.policy.finished(unit, task);
    for ready in graph::finish(task, outcome) {
        if recording {
            ready.ready_at.store(end.ticks, Ordering::Relaxed);
            ready.released_by.store(task.id, Ordering::Relaxed);
        }
        s.make_ready(ready, Some(unit));
    }
    s.task_done(unit, task);
}

/// What was copied to a unit's node for one task: bytes, and the nodes
/// they came from (a bit per node).
#[derive(Debug, Clone, Copy, Default)]
struct Fetches {
    bytes: usize,
    from: u64,
}

impl Fetches {
    fn add(&mut self, copied: Fetched) {
        self.bytes += copied.bytes;
        if let Some(node) = copied.from {
            self.from |= 1 << node.min(63);
        }
    }
}

/// How a launch went: its outcome, the bytes fetched for it, and, when
/// the task was sampled for the performance models, the kernel's own time
/// (fetching excluded).
struct Launched {
    outcome: Result<()>,
    fetched: Fetches,
    run_seconds: Option<f64>,
}

/// Fetches the task's data onto the unit's node and runs the kernel, all
/// inside a panic boundary (a backend's upload or allocation may panic as
/// well as its kernel). A device that reports itself lost takes the unit
/// out of service.
fn launch(s: &Shared, unit: UnitId, task: &TaskNode, memo: &mut SampleMemo) -> Launched {
    let node = s.units[unit].node;
    let mut storages: SmallVec<[Storage; 4]> = SmallVec::new();
    let mut fetched = Fetches::default();
    let measuring = s.measuring && memo.wants_sample(&s.models, task.kernel.name(), unit, task.id);
    let mut run_seconds = None;
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        for a in &task.accesses {
            let (st, copied) = s.memory.acquire(&a.tensor.inner, node, a.mode, task.id)?;
            storages.push(st);
            fetched.add(copied);
        }
        let mut args: SmallVec<[Arg<'_>; 4]> = task
            .accesses
            .iter()
            .zip(&storages)
            .enumerate()
            .map(|(index, (a, st))| {
                let t = &a.tensor.inner;
                let data = match st {
                    // SAFETY: the task graph orders this task after every
                    // conflicting access of the tensor and before the next one,
                    // and submit rejects a tensor both read and written by one task.
                    Storage::Host(h) if a.mode.writes() => {
                        ArgData::HostMut(unsafe { &mut h.bytes_mut()[..t.nbytes()] })
                    }
                    Storage::Host(h) => ArgData::Host(unsafe { &h.bytes()[..t.nbytes()] }),
                    Storage::Device(d) => ArgData::Device(d),
                };
                Arg {
                    index,
                    name: t.name.get().map(|n| &**n),
                    shape: &t.shape,
                    dtype: t.dtype,
                    mode: a.mode,
                    data,
                }
            })
            .collect();
        let (backend, local) = &s.unit_backends[unit];
        let started = Instant::now();
        backend.launch(*local, &task.kernel, &mut args)?;
        if measuring {
            // Launches may return before the device is done: wait, so the
            // model measures the kernel, not its submission.
            backend.synchronize(*local)?;
            run_seconds = Some(started.elapsed().as_secs_f64());
        }
        Ok(())
    }))
    .unwrap_or_else(|payload| {
        Err(Error::KernelFailed {
            task: task.id,
            kernel: task.kernel.name().to_string(),
            unit,
            reason: panic_message(payload.as_ref()),
        })
    });
    for a in task.accesses.iter().take(storages.len()) {
        s.memory.release(&a.tensor.inner, node, task.id);
    }
    if let Err(lost @ Error::DeviceLost { .. }) = &result {
        s.take_out_of_service(unit, task.id, lost);
    }
    let result = result.map_err(|e| match e {
        e @ Error::KernelFailed { .. } => e,
        e => Error::KernelFailed {
            task: task.id,
            kernel: task.kernel.name().to_string(),
            unit,
            reason: e.to_string(),
        },
    });
    Launched {
        outcome: result,
        fetched,
        run_seconds,
    }
}

/// The text a panic was raised with.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked (with a value that is not text)".to_string()
    }
}
