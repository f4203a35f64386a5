//! A team of threads for the matrix products of a decode step.
//!
//! A decode step runs about a hundred products of a few tens of
//! microseconds each. A general pool puts its idle threads to sleep
//! between them and pays a wake-up (a futex round trip) every time; this
//! team's helpers spin while products keep coming and sleep only after a
//! pause of [`SPIN_FOR`]. The calling thread works too, taking items from
//! the same counter, and returns once every helper has left the job.

use std::cell::UnsafeCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::power::PowerState;

/// How long an idle helper spins before it sleeps, in the `Normal` power
/// state (`HighPerformance`: four times as long).
const SPIN_FOR: Duration = Duration::from_millis(2);

/// A job: `items` calls of `run`, the lifetime erased (see [`Team::run`]),
/// by the caller and the first `helpers` helpers.
#[derive(Clone, Copy)]
struct Job {
    run: *const (dyn Fn(usize) + Sync),
    items: usize,
    helpers: usize,
}

struct Shared {
    /// Bumped to publish a job.
    generation: AtomicU64,
    job: UnsafeCell<Job>,
    next: AtomicUsize,
    /// Helpers that have not finished the current job.
    working: AtomicUsize,
    panicked: AtomicBool,
    sleep: Mutex<()>,
    wake: Condvar,
    /// Helpers that take part in jobs (the power state's).
    width: AtomicUsize,
    /// Nanoseconds an idle helper spins before it sleeps.
    spin_for: AtomicU64,
}

// SAFETY: `job` is written only by the thread holding `Team::busy`, before
// it bumps `generation` (release), and read by helpers after they see the
// bump (acquire); the closure it points to is `Sync`.
unsafe impl Sync for Shared {}
// SAFETY: as above; the raw pointer is only dereferenced under that protocol.
unsafe impl Send for Shared {}

/// The team: the caller plus `helpers` threads.
pub struct Team {
    shared: Arc<Shared>,
    helpers: usize,
    /// Held by the thread running a job; another caller runs alone.
    busy: Mutex<()>,
}

fn no_job(_: usize) {}

impl Team {
    fn new(threads: usize) -> Team {
        let noop: &'static (dyn Fn(usize) + Sync) = &no_job;
        let shared = Arc::new(Shared {
            generation: AtomicU64::new(0),
            job: UnsafeCell::new(Job {
                run: noop,
                items: 0,
                helpers: 0,
            }),
            next: AtomicUsize::new(0),
            working: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            sleep: Mutex::new(()),
            wake: Condvar::new(),
            width: AtomicUsize::new(usize::MAX),
            spin_for: AtomicU64::new(SPIN_FOR.as_nanos() as u64),
        });
        let helpers = threads.saturating_sub(1);
        let mut spawned = 0;
        for i in 0..helpers {
            let s = shared.clone();
            let index = spawned;
            if std::thread::Builder::new()
                .name(format!("xpu-decode-{i}"))
                .spawn(move || helper(&s, index))
                .is_ok()
            {
                spawned += 1;
            }
        }
        Team {
            shared,
            helpers: spawned,
            busy: Mutex::new(()),
        }
    }

    /// The process's team: one thread per core.
    pub fn global() -> &'static Team {
        static TEAM: OnceLock<Team> = OnceLock::new();
        TEAM.get_or_init(|| Team::new(std::thread::available_parallelism().map_or(1, |n| n.get())))
    }

    /// Runs the team's jobs as `state` asks: the caller alone in
    /// `LowPower`; every helper in `Normal`, idle helpers spinning for
    /// [`SPIN_FOR`] before they sleep; every helper spinning four times as
    /// long in `HighPerformance`. Returns what it does, in words.
    pub fn set_power_state(&self, state: PowerState) -> String {
        let (width, spin) = match state {
            PowerState::LowPower => (0, SPIN_FOR),
            PowerState::Normal => (self.helpers, SPIN_FOR),
            PowerState::HighPerformance => (self.helpers, 4 * SPIN_FOR),
        };
        let s = &*self.shared;
        s.width.store(width, Ordering::Relaxed);
        s.spin_for.store(spin.as_nanos() as u64, Ordering::Relaxed);
        format!(
            "decode steps on {} thread(s), idle helpers spin {} ms before sleeping",
            width + 1,
            spin.as_millis()
        )
    }

    /// Calls `run(i)` for every `i < items`, spread over the team; returns
    /// when all calls are done. If another job holds the team, runs alone.
    pub fn run(&self, items: usize, run: &(dyn Fn(usize) + Sync)) {
        let helpers = self.shared.width.load(Ordering::Relaxed).min(self.helpers);
        let guard = match self.busy.try_lock() {
            Some(g) if helpers > 0 && items > 1 => g,
            _ => {
                (0..items).for_each(run);
                return;
            }
        };
        let s = &*self.shared;
        // SAFETY: the erased closure is only called until `working` drops
        // to zero, which this function waits for before it returns.
        let erased: *const (dyn Fn(usize) + Sync) = unsafe { std::mem::transmute(run) };
        // SAFETY: helpers read `job` only after the generation bump below.
        unsafe {
            *s.job.get() = Job {
                run: erased,
                items,
                helpers,
            }
        };
        s.next.store(0, Ordering::Relaxed);
        // Every helper acknowledges the job, those beyond `helpers` without
        // taking items: none may read a later job as this one's.
        s.working.store(self.helpers, Ordering::Relaxed);
        s.generation.fetch_add(1, Ordering::Release);
        {
            let _lock = s.sleep.lock();
            s.wake.notify_all();
        }
        // Helpers may still be inside `run` when this thread's share
        // panics: wait for them before unwinding past the closure.
        let mine = catch_unwind(AssertUnwindSafe(|| take_items(s, items, run)));
        while s.working.load(Ordering::Acquire) > 0 {
            std::hint::spin_loop();
        }
        drop(guard);
        if let Err(panic) = mine {
            std::panic::resume_unwind(panic);
        }
        if s.panicked.swap(false, Ordering::Relaxed) {
            panic!("a decode helper thread panicked");
        }
    }
}

fn take_items(s: &Shared, items: usize, run: &(dyn Fn(usize) + Sync)) {
    loop {
        let i = s.next.fetch_add(1, Ordering::Relaxed);
        if i >= items {
            return;
        }
        run(i);
    }
}

/// Helper number `index`: takes items of the jobs that ask for more than
/// `index` helpers, and acknowledges every job.
fn helper(s: &Shared, index: usize) {
    // Jobs published before this thread got here still count on it: start
    // from the generation the team was created with.
    let mut seen = 0;
    loop {
        let idle_since = Instant::now();
        let mut spins = 0u32;
        let current = loop {
            let g = s.generation.load(Ordering::Acquire);
            if g != seen {
                break g;
            }
            spins += 1;
            if spins.is_multiple_of(1024)
                && idle_since.elapsed().as_nanos() as u64 > s.spin_for.load(Ordering::Relaxed)
            {
                let mut lock = s.sleep.lock();
                if s.generation.load(Ordering::Acquire) == seen {
                    s.wake.wait_for(&mut lock, Duration::from_millis(100));
                }
                spins = 0;
                continue;
            }
            std::hint::spin_loop();
        };
        seen = current;
        // SAFETY: published before the generation bump just observed; the
        // caller keeps the closure alive until `working` reaches zero.
        let job = unsafe { *s.job.get() };
        if index < job.helpers {
            let result = catch_unwind(AssertUnwindSafe(|| {
                // SAFETY: as above.
                take_items(s, job.items, unsafe { &*job.run })
            }));
            if result.is_err() {
                s.panicked.store(true, Ordering::Relaxed);
            }
        }
        s.working.fetch_sub(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_states_set_how_many_threads_take_items() {
        let team = Team::new(3);
        let threads_used = |team: &Team| {
            let seen = Mutex::new(std::collections::HashSet::new());
            team.run(1000, &|_| {
                seen.lock().insert(std::thread::current().id());
                std::thread::sleep(Duration::from_micros(50));
            });
            seen.into_inner().len()
        };
        assert!(team
            .set_power_state(PowerState::LowPower)
            .starts_with("decode steps on 1 thread"));
        assert_eq!(threads_used(&team), 1);
        assert!(team
            .set_power_state(PowerState::Normal)
            .starts_with("decode steps on 3 thread"));
        // Helpers join as they wake: at least one besides the caller.
        assert!(threads_used(&team) > 1);
        assert!(team
            .set_power_state(PowerState::HighPerformance)
            .contains("spin 8 ms"));
        assert!(threads_used(&team) > 1);
    }

    #[test]
    fn every_item_runs_once() {
        let team = Team::new(3);
        for items in [0, 1, 2, 7, 1000] {
            let counts: Vec<AtomicUsize> = (0..items).map(|_| AtomicUsize::new(0)).collect();
            team.run(items, &|i| {
                counts[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == 1));
        }
    }

    #[test]
    fn concurrent_callers_both_finish() {
        let team = Team::new(2);
        let total = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..50 {
                        team.run(16, &|_| {
                            total.fetch_add(1, Ordering::Relaxed);
                        });
                    }
                });
            }
        });
        assert_eq!(total.load(Ordering::Relaxed), 4 * 50 * 16);
    }
}
