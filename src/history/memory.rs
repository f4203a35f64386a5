//! A task history in memory: for one process (several runtimes in turn,
//! tests, an embedder that keeps its own files), with what the SQLite
//! store keeps and answers.

use std::collections::BTreeMap;

use parking_lot::Mutex;

use super::{KernelSummary, RunRecord, TaskRow, TaskStore, TASKS_KEPT};
use crate::error::Result;
use crate::perfmodel::{FootprintRow, LinkRow};

/// A [`TaskStore`] in memory.
pub struct MemoryStore {
    inner: Mutex<Stored>,
    keep: usize,
}

impl Default for MemoryStore {
    fn default() -> MemoryStore {
        MemoryStore {
            inner: Mutex::default(),
            keep: TASKS_KEPT,
        }
    }
}

impl MemoryStore {
    /// Keeps the latest `tasks` tasks instead of [`TASKS_KEPT`].
    pub fn keep_tasks(mut self, tasks: usize) -> MemoryStore {
        self.keep = tasks;
        self
    }
}

#[derive(Default)]
struct Stored {
    runs: u64,
    tasks: Vec<TaskRow>,
    /// By (kernel, unit, footprint key), as the last run left them.
    footprints: BTreeMap<(String, String, u64), FootprintRow>,
    /// By (from, to).
    links: BTreeMap<(String, String), LinkRow>,
}

impl TaskStore for MemoryStore {
    fn store_run(&self, run: &RunRecord) -> Result<()> {
        let mut s = self.inner.lock();
        s.runs += 1;
        s.tasks.extend(run.tasks.iter().cloned());
        let dropped = s.tasks.len().saturating_sub(self.keep);
        s.tasks.drain(..dropped);
        for f in &run.footprints {
            s.footprints
                .insert((f.kernel.clone(), f.unit.clone(), f.key), f.clone());
        }
        for l in &run.links {
            s.links.insert((l.from.clone(), l.to.clone()), l.clone());
        }
        Ok(())
    }

    fn runs(&self) -> Result<u64> {
        Ok(self.inner.lock().runs)
    }

    fn footprints(&self) -> Result<Vec<FootprintRow>> {
        Ok(self.inner.lock().footprints.values().cloned().collect())
    }

    fn links(&self) -> Result<Vec<LinkRow>> {
        Ok(self.inner.lock().links.values().cloned().collect())
    }

    fn summary(&self) -> Result<Vec<KernelSummary>> {
        let s = self.inner.lock();
        let mut by: BTreeMap<(&str, &str), KernelSummary> = BTreeMap::new();
        for t in &s.tasks {
            let e = by
                .entry((&t.kernel, &t.unit))
                .or_insert_with(|| KernelSummary {
                    kernel: t.kernel.clone(),
                    unit: t.unit.clone(),
                    tasks: 0,
                    failed: 0,
                    mean_seconds: 0.0,
                    total_seconds: 0.0,
                });
            e.tasks += 1;
            e.failed += u64::from(!t.ok);
            e.total_seconds += t.end - t.start;
        }
        Ok(by
            .into_values()
            .map(|mut e| {
                e.mean_seconds = e.total_seconds / e.tasks as f64;
                e
            })
            .collect())
    }

    fn tasks(&self, limit: usize) -> Result<Vec<TaskRow>> {
        let s = self.inner.lock();
        Ok(s.tasks[s.tasks.len().saturating_sub(limit)..].to_vec())
    }
}
