//! Task history (the task data manager): what ran, where and how long,
//! and the performance models learnt from it, kept across runs in a
//! [`TaskStore`]: one SQLite file under the data directory
//! ([`HistoryStore`], `history.sqlite`; `xpu history` and
//! `xpu perfmodel show` read it), or memory ([`MemoryStore`], for one
//! process). A runtime built with
//! [`RuntimeBuilder::history`](crate::RuntimeBuilder::history) or
//! [`RuntimeBuilder::task_store`](crate::RuntimeBuilder::task_store) loads
//! the models its units had in earlier runs and stores what it learnt, and
//! the tasks its profile recorded (the profiler's records: one recording
//! path), when it shuts down. Each task is kept with its kernel, its
//! footprint (argument shapes, dtypes and modes; the kernel's FLOPs and
//! bytes), its unit and memory node, its ready, start and end times, and
//! the bytes fetched for it and the nodes they came from.
//!
//! Units are matched across runs by identity (backend, kind, device,
//! index within the backend), memory nodes by name. A file that is not
//! SQLite, or holds another schema, is set aside (renamed, with a warning
//! naming both paths), never trusted.

mod memory;
mod store;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::RwLock;

pub use memory::MemoryStore;
pub use store::HistoryStore;

use crate::error::Result;
use crate::perfmodel::{FootprintRow, LinkRow, PerfModels};
use crate::trace::Profile;

/// Tasks a store keeps by default: the latest, older ones dropped as runs
/// are stored (the models keep what was learnt from them). A benchmark of
/// 300,000 empty tasks would otherwise add 30 MB to the file each time.
pub const TASKS_KEPT: usize = 200_000;

/// Where a runtime keeps its history: `history.sqlite` in the data
/// directory (`$XPU_DATA_DIR`, else `$XDG_DATA_HOME/xpu`, else
/// `~/.local/share/xpu`).
///
/// ```
/// std::env::set_var("XPU_DATA_DIR", "/tmp/xpu-doc-data");
/// assert_eq!(xpu::history::default_path(), std::path::PathBuf::from("/tmp/xpu-doc-data/history.sqlite"));
/// ```
pub fn default_path() -> PathBuf {
    crate::host::data_dir().join("history.sqlite")
}

/// One finished task, as a history keeps it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskRow {
    pub kernel: String,
    /// The unit's identity (backend/kind/device#index).
    pub unit: String,
    pub node: usize,
    /// Seconds since its run started.
    pub ready: f64,
    pub start: f64,
    pub end: f64,
    pub flops: f64,
    /// The footprint's key (0: not worked out), and what it stands for:
    /// each argument's shape, dtype and mode (`512x512 f32 R, ...`).
    pub footprint: u64,
    pub shapes: String,
    /// Bytes the kernel reads and writes (the footprint's size).
    pub bytes: u64,
    pub bytes_fetched: u64,
    /// The memory nodes the fetched bytes came from.
    pub fetched_from: Vec<usize>,
    pub ok: bool,
}

/// Tasks of one kernel on one unit over the tasks a store keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelSummary {
    pub kernel: String,
    pub unit: String,
    pub tasks: u64,
    pub failed: u64,
    /// Mean and total seconds from start to end.
    pub mean_seconds: f64,
    pub total_seconds: f64,
}

/// What one run hands the store when it ends: its policy, its tasks, and
/// the models as they stand (including what earlier runs stored).
#[derive(Debug, Clone, Default)]
pub struct RunRecord {
    pub policy: String,
    pub tasks: Vec<TaskRow>,
    pub footprints: Vec<FootprintRow>,
    pub links: Vec<LinkRow>,
}

/// Where task histories are kept: runs stored one at a time, the models
/// as the last run left them, the tasks of every run.
///
/// ```
/// use xpu::history::{MemoryStore, RunRecord, TaskRow, TaskStore};
/// let store = MemoryStore::default();
/// let task = |s: f64| TaskRow { kernel: "gemm".into(), unit: "cpu/cpu/host#0".into(), end: s, ok: true, ..TaskRow::default() };
/// store.store_run(&RunRecord { policy: "dmda".into(), tasks: vec![task(1.0), task(3.0)], ..RunRecord::default() })?;
/// assert_eq!(store.runs()?, 1);
/// let summary = store.summary()?;
/// assert_eq!((summary[0].tasks, summary[0].mean_seconds), (2, 2.0));
/// assert_eq!(store.tasks(1)?[0].end, 3.0);
/// # Ok::<(), xpu::Error>(())
/// ```
pub trait TaskStore: Send + Sync {
    /// Stores one run, all or nothing, then drops the oldest tasks beyond
    /// those the store keeps ([`TASKS_KEPT`] unless set otherwise).
    fn store_run(&self, run: &RunRecord) -> Result<()>;
    /// Runs stored.
    fn runs(&self) -> Result<u64>;
    /// The per-footprint history of every model, as last stored.
    fn footprints(&self) -> Result<Vec<FootprintRow>>;
    /// Every link's transfer model, as last stored.
    fn links(&self) -> Result<Vec<LinkRow>>;
    /// Tasks per kernel and unit over the tasks kept, by kernel then unit.
    fn summary(&self) -> Result<Vec<KernelSummary>>;
    /// The last `limit` tasks stored, oldest first.
    fn tasks(&self, limit: usize) -> Result<Vec<TaskRow>>;
}

/// A runtime's tie to its task store: the identities its units and nodes
/// are stored under, what its footprints stand for, and whether this run
/// was stored yet.
pub(crate) struct RunHistory {
    store: Arc<dyn TaskStore>,
    units: Vec<String>,
    nodes: Vec<String>,
    /// Each footprint key met in this run, and its arguments in words.
    shapes: RwLock<HashMap<u64, String>>,
    stored: std::sync::atomic::AtomicBool,
}

impl RunHistory {
    /// Ties `store` to units of these identities and nodes of these names,
    /// and gives `models` what earlier runs learnt of them.
    pub fn attach(
        store: Arc<dyn TaskStore>,
        units: Vec<String>,
        nodes: Vec<String>,
        models: &PerfModels,
    ) -> crate::Result<RunHistory> {
        models.import(&store.footprints()?, &units);
        models.import_links(&store.links()?, &nodes);
        Ok(RunHistory {
            store,
            units,
            nodes,
            shapes: RwLock::new(HashMap::new()),
            stored: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Notes what footprint `key` stands for, the first time it is met.
    pub fn note_footprint(&self, key: u64, describe: impl FnOnce() -> String) {
        if !self.shapes.read().contains_key(&key) {
            self.shapes.write().entry(key).or_insert_with(describe);
        }
    }

    /// Stores this run once: the tasks its profile holds and the models
    /// as they stand.
    pub fn store_once(
        &self,
        models: &PerfModels,
        profile: &Profile,
        policy: &str,
    ) -> crate::Result<()> {
        if self.stored.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return Ok(());
        }
        let shapes = self.shapes.read();
        let tasks = profile
            .tasks
            .iter()
            .map(|t| TaskRow {
                kernel: t.kernel.clone(),
                unit: self.units.get(t.unit).cloned().unwrap_or_default(),
                node: profile.units.get(t.unit).map_or(0, |u| u.node),
                ready: t.ready,
                start: t.start,
                end: t.end,
                flops: t.flops,
                footprint: t.footprint.map_or(0, |f| f.key),
                shapes: t
                    .footprint
                    .and_then(|f| shapes.get(&f.key).cloned())
                    .unwrap_or_default(),
                bytes: t.footprint.map_or(0, |f| f.size as u64),
                bytes_fetched: t.bytes_fetched,
                fetched_from: t.fetched_from.clone(),
                ok: t.ok,
            })
            .collect();
        drop(shapes);
        self.store.store_run(&RunRecord {
            policy: policy.to_string(),
            tasks,
            footprints: models.export(&self.units),
            links: models.export_links(&self.nodes),
        })
    }
}

/// How a unit is known across runs: backend, kind, device and its index
/// within the backend.
pub(crate) fn unit_identity(backend: &str, kind: &str, device: &str, index: usize) -> String {
    format!("{backend}/{kind}/{device}#{index}")
}
