//! The threads that run queued jobs on the runtime, one job each at a
//! time, and the watchdog that cancels a job past its time limit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};

use super::auth::Role;
use super::document::JobDocument;
use super::limits::RoleLimits;
use super::store::{Claimed, Ending, JobState, JobStore, SubjectUploads, CHECKPOINT_EVERY};
use crate::{Error, Job, Result, Runtime};

/// A job being run.
struct Running {
    job: Job,
    done: Arc<AtomicU64>,
    deadline: Instant,
    time_limit: Duration,
    /// Why it was cancelled, once it was.
    cancelled: Mutex<Option<String>>,
}

/// Runs the queue.
pub(crate) struct Runner {
    store: Arc<JobStore>,
    rt: Arc<Runtime>,
    limits: Arc<RwLock<RoleLimits>>,
    running: Mutex<HashMap<String, Arc<Running>>>,
    /// Counts wake-ups: a submission or a finished job may let a worker
    /// claim a job.
    wake: Mutex<u64>,
    woken: Condvar,
    draining: AtomicBool,
    stopping: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// How long an idle worker waits before looking at the queue again
/// without being woken.
const IDLE_POLL: Duration = Duration::from_millis(250);

impl Runner {
    /// `workers` threads running jobs, and the watchdog.
    pub fn start(
        store: Arc<JobStore>,
        rt: Arc<Runtime>,
        limits: Arc<RwLock<RoleLimits>>,
        workers: usize,
    ) -> Result<Arc<Runner>> {
        let runner = Arc::new(Runner {
            store,
            rt,
            limits,
            running: Mutex::new(HashMap::new()),
            wake: Mutex::new(0),
            woken: Condvar::new(),
            draining: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
        });
        let spawn = |name: String, body: fn(&Runner)| {
            let r = runner.clone();
            std::thread::Builder::new()
                .name(name)
                .spawn(move || body(&r))
                .map_err(|e| Error::Io(format!("starting a job thread: {e}")))
        };
        let mut threads = Vec::new();
        for i in 0..workers.max(1) {
            threads.push(spawn(format!("xpu-serve-job-{i}"), Runner::work)?);
        }
        threads.push(spawn("xpu-serve-watchdog".into(), Runner::watch)?);
        threads.push(spawn("xpu-serve-checkpoint".into(), Runner::checkpoints)?);
        *runner.threads.lock() = threads;
        Ok(runner)
    }

    /// Tells an idle worker to look at the queue.
    pub fn wake(&self) {
        *self.wake.lock() += 1;
        self.woken.notify_all();
    }

    fn idle(&self) {
        let mut wake = self.wake.lock();
        let seen = *wake;
        while *wake == seen && !self.stopping.load(Ordering::Acquire) {
            if self.woken.wait_for(&mut wake, IDLE_POLL).timed_out() {
                break;
            }
        }
    }

    fn work(&self) {
        // The job claimed when the last one ended, in the same transaction.
        let mut next: Option<(Claimed, Arc<Running>)> = None;
        while !self.stopping.load(Ordering::Acquire) {
            let job = match next.take() {
                Some(job) => job,
                None if self.draining.load(Ordering::Acquire) => {
                    self.idle();
                    continue;
                }
                None => match self.claim() {
                    Ok(Some(job)) => job,
                    Ok(None) => {
                        self.idle();
                        continue;
                    }
                    Err(e) => {
                        eprintln!("xpu serve: {e}");
                        self.idle();
                        continue;
                    }
                },
            };
            next = self.run(job);
        }
    }

    /// What limits how many jobs a subject of `role` runs at once.
    fn max_running(&self, role: Role) -> u64 {
        self.limits.read().of(role).max_running_jobs
    }

    /// Takes the next job and lists it as running, both under the running
    /// list's lock, so that a cancel never finds a job in neither place.
    fn claim(&self) -> Result<Option<(Claimed, Arc<Running>)>> {
        let mut list = self.running.lock();
        let claimed = self.store.claim_next(&|role| self.max_running(role))?;
        Ok(claimed.map(|c| self.listed(&mut list, c)))
    }

    /// `claimed`, listed as running (the list's lock held by the caller).
    fn listed(
        &self,
        list: &mut HashMap<String, Arc<Running>>,
        claimed: Claimed,
    ) -> (Claimed, Arc<Running>) {
        let now = Instant::now();
        let time_limit = self.limits.read().of(claimed.role).run_time();
        let running = Arc::new(Running {
            job: Job::new(),
            done: Arc::new(AtomicU64::new(0)),
            deadline: now
                .checked_add(time_limit)
                .unwrap_or(now + Duration::from_secs(1 << 40)),
            time_limit,
            cancelled: Mutex::new(None),
        });
        list.insert(claimed.id.clone(), running.clone());
        (claimed, running)
    }

    /// Runs a job and records how it ended; unless the server is draining,
    /// claims the next job in the same transaction and returns it.
    fn run(&self, (claimed, running): (Claimed, Arc<Running>)) -> Option<(Claimed, Arc<Running>)> {
        let outcome = serde_json::from_str::<JobDocument>(&claimed.document)
            .map_err(|e| Error::JobDocument {
                field: "(document)".into(),
                what: e.to_string(),
            })
            .and_then(|doc| {
                let done = running.done.clone();
                let uploads = SubjectUploads {
                    store: &self.store,
                    subject: &claimed.subject,
                };
                doc.run(&self.rt, &running.job, &uploads, &move |n| {
                    done.store(n as u64, Ordering::Relaxed)
                })
            });
        let cancelled = running.cancelled.lock().clone();
        let (state, error, results) = match (outcome, cancelled) {
            (_, Some(why)) => (JobState::Cancelled, Some(why), Vec::new()),
            (Ok(results), None) => (JobState::Succeeded, None, results),
            (Err(e), None) => (JobState::Failed, Some(e.to_string()), Vec::new()),
        };
        let ending = Ending {
            id: &claimed.id,
            state,
            error: error.as_deref(),
            results: &results,
            tasks_done: running.done.load(Ordering::Relaxed),
        };
        let mut list = self.running.lock();
        let ended =
            if self.draining.load(Ordering::Acquire) || self.stopping.load(Ordering::Acquire) {
                self.store.finish(&ending).map(|()| None)
            } else {
                self.store
                    .finish_and_claim(&ending, &|role| self.max_running(role))
            };
        list.remove(&claimed.id);
        let next = match ended {
            Ok(next) => next.map(|c| self.listed(&mut list, c)),
            Err(e) => {
                eprintln!("xpu serve: job {}: {e}", claimed.id);
                None
            }
        };
        drop(list);
        self.wake();
        next
    }

    fn watch(&self) {
        while !self.stopping.load(Ordering::Acquire) {
            let now = Instant::now();
            for r in self.running.lock().values() {
                if now >= r.deadline {
                    let why = format!(
                        "ran past its time limit of {:.1} s (max_run_seconds)",
                        r.time_limit.as_secs_f64()
                    );
                    Self::cancel_running(r, why);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Copies the queue's log into its file every [`CHECKPOINT_EVERY`]
    /// (see [`JobStore::checkpoint`]); a failure is reported and tried
    /// again. Seldom, because each checkpoint flushes the file to disk,
    /// and writes wait meanwhile.
    fn checkpoints(&self) {
        let mut next = Instant::now() + CHECKPOINT_EVERY;
        while !self.stopping.load(Ordering::Acquire) {
            let now = Instant::now();
            if now < next {
                let mut wake = self.wake.lock();
                if !self.stopping.load(Ordering::Acquire) {
                    self.woken.wait_for(&mut wake, next - now);
                }
                continue;
            }
            next = now + CHECKPOINT_EVERY;
            if let Err(e) = self.store.checkpoint() {
                eprintln!("xpu serve: {e}");
            }
        }
    }

    fn cancel_running(r: &Running, why: String) {
        let mut cancelled = r.cancelled.lock();
        if cancelled.is_none() {
            *cancelled = Some(why);
            r.job.cancel();
        }
    }

    /// Cancels a job: at once if it is queued, by cancelling its tasks if
    /// it runs. Returns whether it was queued or running.
    pub fn cancel(&self, id: &str, why: &str) -> Result<bool> {
        let list = self.running.lock();
        if self.store.cancel_queued(id, why)? {
            return Ok(true);
        }
        match list.get(id) {
            Some(r) => {
                Self::cancel_running(r, why.to_string());
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Tasks done so far by a running job.
    pub fn progress(&self, id: &str) -> Option<u64> {
        self.running
            .lock()
            .get(id)
            .map(|r| r.done.load(Ordering::Relaxed))
    }

    /// Stops taking jobs from the queue (running ones finish).
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Whether [`Runner::drain`] was called.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Jobs running now.
    pub fn running(&self) -> usize {
        self.running.lock().len()
    }

    /// Stops every thread after the jobs they run end.
    pub fn stop(&self) {
        self.drain();
        self.stopping.store(true, Ordering::Release);
        self.wake();
        for t in self.threads.lock().drain(..) {
            let _ = t.join();
        }
    }
}
