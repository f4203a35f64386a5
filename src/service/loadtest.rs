//! A load test of a server (`xpu loadtest`): many clients submit small
//! GEMM jobs with idempotency keys, then every job is followed to its end
//! and its result checked; the report gives throughput, submit and
//! completion latency percentiles, and any job lost, failed, wrong or run
//! more than once. Each client opens its connection first (`GET /healthz`)
//! and all start submitting together, so the latencies are those of
//! submissions under load, not of connecting.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

use super::client::Client;
use super::document::JobDocument;
use super::store::JobState;
use crate::{Error, Result};

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    pub jobs: usize,
    pub clients: usize,
    /// Each job is one `size x size` f32 GEMM.
    pub size: usize,
    /// Idempotency keys are `PREFIX-i`: a second run with the same prefix
    /// (after a server restart, say) gets the same jobs back instead of
    /// new ones. Default: a random prefix.
    pub key_prefix: Option<String>,
}

/// What happened.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub jobs: usize,
    pub clients: usize,
    /// From the first submission to the last job's end.
    pub seconds: f64,
    pub jobs_per_second: f64,
    pub submit_p50_ms: f64,
    pub submit_p99_ms: f64,
    /// Server side, from acceptance to the end of the job.
    pub complete_p50_ms: f64,
    pub complete_p99_ms: f64,
    /// Submissions answered 429 (over a limit) and sent again.
    pub throttled: usize,
    pub failed: usize,
    /// Results that differ from the reference.
    pub wrong: usize,
    /// Jobs whose id was given to two keys (never expected).
    pub duplicated: usize,
    /// Jobs started more than once (after a restart).
    pub restarted: usize,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Job `i`: `c = a b` with `a` filled with `1 + i % 7` and `b` with 0.5,
/// so every element of `c` is `size * (1 + i % 7) * 0.5`.
fn job(i: usize, size: usize) -> Result<(JobDocument, f64)> {
    let fill = (1 + i % 7) as f64;
    let doc = serde_json::from_value(json!({
        "tensors": {
            "a": {"dtype": "f32", "shape": [size, size], "fill": fill},
            "b": {"dtype": "f32", "shape": [size, size], "fill": 0.5},
            "c": {"dtype": "f32", "shape": [size, size]}
        },
        "tasks": [{"kernel": {"name": "gemm"}, "args": ["a", "b", "c"]}],
        "results": ["c"]
    }))
    .map_err(|e| Error::Config(format!("load test job: {e}")))?;
    Ok((doc, size as f64 * fill * 0.5))
}

/// Runs `plan` against the server at `url` with `token`; `progress` is
/// called with the number of jobs submitted and then checked.
pub fn run(
    url: &str,
    token: &str,
    plan: &LoadPlan,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<LoadReport> {
    let clients = plan.clients.max(1);
    let run_id = match &plan.key_prefix {
        Some(prefix) => prefix.clone(),
        None => {
            let mut raw = [0u8; 6];
            getrandom::fill(&mut raw).map_err(|e| Error::Io(format!("no random bytes: {e}")))?;
            let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            format!("loadtest-{hex}")
        }
    };
    let counted = AtomicUsize::new(0);
    let connected = Barrier::new(clients);
    let start = Instant::now();
    struct Outcome {
        submit_ms: Vec<f64>,
        complete_ms: Vec<f64>,
        ids: Vec<String>,
        throttled: usize,
        failed: usize,
        wrong: usize,
        restarted: usize,
    }
    let outcomes: Vec<Result<Outcome>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let (run_id, counted, connected) = (&run_id, &counted, &connected);
                scope.spawn(move || -> Result<Outcome> {
                    let client = Client::new(url, Some(token));
                    let opened = client.call("GET", "/healthz", None, &[]);
                    // Every client waits for the others, even one that
                    // could not connect: it reports that after the wait.
                    connected.wait();
                    opened?.check()?;
                    let mine: Vec<usize> = (c..plan.jobs).step_by(clients).collect();
                    let mut out = Outcome {
                        submit_ms: Vec::new(),
                        complete_ms: Vec::new(),
                        ids: Vec::new(),
                        throttled: 0,
                        failed: 0,
                        wrong: 0,
                        restarted: 0,
                    };
                    let mut expected = Vec::new();
                    for &i in &mine {
                        let (doc, want) = job(i, plan.size)?;
                        let key = format!("{run_id}-{i}");
                        let status = loop {
                            let t = Instant::now();
                            match client.submit(&doc, Some(&key)) {
                                Ok(status) => {
                                    out.submit_ms.push(t.elapsed().as_secs_f64() * 1e3);
                                    break status;
                                }
                                Err(Error::Server { status: 429, .. }) => {
                                    out.throttled += 1;
                                    std::thread::sleep(Duration::from_millis(20));
                                }
                                Err(e) => return Err(e),
                            }
                        };
                        out.ids.push(status.id.clone());
                        expected.push((status.id, want));
                        progress(counted.fetch_add(1, Ordering::Relaxed) + 1);
                    }
                    for (id, want) in expected {
                        let status = client.wait(&id, Duration::from_secs(3600))?;
                        if status.attempts > 1 {
                            out.restarted += 1;
                        }
                        if status.state != JobState::Succeeded {
                            out.failed += 1;
                            continue;
                        }
                        if let Some(finished) = status.finished_ms {
                            let ms = finished.saturating_sub(status.submitted_ms);
                            out.complete_ms.push(ms as f64);
                        }
                        let results = client.results(&id)?;
                        let right = results.first().is_some_and(|r| {
                            r.values().iter().all(|&v| (v - want).abs() <= 1e-4 * want)
                        });
                        if !right {
                            out.wrong += 1;
                        }
                        progress(counted.fetch_add(1, Ordering::Relaxed) + 1);
                    }
                    Ok(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Io("a load test client panicked".into())))
            })
            .collect()
    });
    let seconds = start.elapsed().as_secs_f64();
    let mut submit = Vec::new();
    let mut complete = Vec::new();
    let mut ids = Vec::new();
    let (mut throttled, mut failed, mut wrong, mut restarted) = (0, 0, 0, 0);
    for outcome in outcomes {
        let o = outcome?;
        submit.extend(o.submit_ms);
        complete.extend(o.complete_ms);
        ids.extend(o.ids);
        throttled += o.throttled;
        failed += o.failed;
        wrong += o.wrong;
        restarted += o.restarted;
    }
    submit.sort_by(f64::total_cmp);
    complete.sort_by(f64::total_cmp);
    let jobs = ids.len();
    ids.sort();
    ids.dedup();
    Ok(LoadReport {
        jobs,
        clients,
        seconds,
        jobs_per_second: jobs as f64 / seconds.max(1e-9),
        submit_p50_ms: percentile(&submit, 0.50),
        submit_p99_ms: percentile(&submit, 0.99),
        complete_p50_ms: percentile(&complete, 0.50),
        complete_p99_ms: percentile(&complete, 0.99),
        throttled,
        failed,
        wrong,
        duplicated: jobs - ids.len(),
        restarted,
    })
}
