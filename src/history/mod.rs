//! Task history (the task data manager): what ran, where and how long,
//! and the performance models learnt from it, kept across runs in one
//! SQLite file under the data directory (`history.sqlite`; `xpu history`
//! and `xpu perfmodel show` read it). A runtime built with
//! [`RuntimeBuilder::history`](crate::RuntimeBuilder::history) loads the
//! models its units had in earlier runs and stores what it learnt, and the
//! tasks its profile recorded, when it shuts down.
//!
//! Units are matched across runs by identity (backend, kind, device,
//! index within the backend), memory nodes by name. A file that is not
//! SQLite, or holds another schema, is set aside (renamed, with a warning
//! naming both paths), never trusted.

mod store;

use std::path::PathBuf;

pub use store::{HistoryStore, KernelSummary, TaskRow};

use crate::perfmodel::{FootprintRow, LinkRow, PerfModels};
use crate::trace::Profile;

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

/// What one run hands the store when it ends.
pub(crate) struct RunRecord {
    pub policy: String,
    pub tasks: Vec<TaskRow>,
    pub footprints: Vec<FootprintRow>,
    pub links: Vec<LinkRow>,
}

/// A runtime's tie to its history file: the identities its units and
/// nodes are stored under, and whether this run was stored yet.
pub(crate) struct RunHistory {
    store: HistoryStore,
    units: Vec<String>,
    nodes: Vec<String>,
    stored: std::sync::atomic::AtomicBool,
}

impl RunHistory {
    /// Ties `store` to units of these identities and nodes of these names,
    /// and gives `models` what earlier runs learnt of them.
    pub fn attach(
        store: HistoryStore,
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
            stored: std::sync::atomic::AtomicBool::new(false),
        })
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
                bytes_fetched: t.bytes_fetched,
                ok: t.ok,
            })
            .collect();
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
