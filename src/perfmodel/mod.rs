//! Performance models, what placement that learns predicts with: per
//! kernel and unit, the measured run times of each footprint (count, mean,
//! variance) and a law `a * n^b + c` over footprint size fitted to them
//! (`law.rs`), which predicts sizes never seen; per pair of memory nodes, a
//! transfer model (latency + bytes / bandwidth) fitted to the copies made.
//! Every prediction that meets a measurement adds to the model's error.
//!
//! The workers feed it from the same place the profile's records are
//! taken (a finished task: its kernel, unit, footprint and run time); the
//! memory manager feeds it each copy.
//!
//! ```
//! use xpu::perfmodel::{Footprint, PerfModels};
//! let models = PerfModels::new(1, 1);
//! let small = Footprint { key: 1, size: 1e3 };
//! let large = Footprint { key: 2, size: 1e5 };
//! assert_eq!(models.predict("relu", 0, &small), None);
//! models.observe("relu", 0, &small, 1e-6);
//! models.observe("relu", 0, &large, 1e-4);
//! assert_eq!(models.predict("relu", 0, &small), Some(1e-6));
//! // A size never seen, from the fitted law.
//! let between = Footprint { key: 3, size: 1e4 };
//! let predicted = models.predict("relu", 0, &between).unwrap();
//! assert!((predicted / 1e-5 - 1.0).abs() < 0.05);
//! ```

pub(crate) mod fnv;
mod law;

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::{MappedRwLockReadGuard, Mutex, RwLock, RwLockReadGuard};
use serde::Serialize;

use fnv::{FnvMap, KeyMap};
pub use law::Law;

use crate::kernel::{ArgMeta, Kernel};
use crate::unit::{NodeId, UnitId};

/// What a task's run time depends on: a key of its argument shapes and
/// dtypes (equal keys, equal work) and a size (bytes moved) for the laws.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct Footprint {
    pub key: u64,
    pub size: f64,
}

impl Footprint {
    /// The footprint of a task of `kernel` with these arguments: its key
    /// from their shapes, dtypes and modes, its size the kernel's byte
    /// count ([`crate::Kernel::bytes`]).
    ///
    /// ```
    /// use xpu::{perfmodel::Footprint, ArgMeta, DType, Kernel, Mode, UnaryOp};
    /// let arg = |shape, mode| ArgMeta { shape, dtype: DType::F32, mode };
    /// let relu = Kernel::Unary(UnaryOp::Relu);
    /// let small = Footprint::of(&relu, &[arg(&[256], Mode::Read), arg(&[256], Mode::Write)]);
    /// let large = Footprint::of(&relu, &[arg(&[512], Mode::Read), arg(&[512], Mode::Write)]);
    /// assert_eq!(small.size, 2.0 * 256.0 * 4.0);
    /// assert_ne!(small.key, large.key);
    /// ```
    pub fn of(kernel: &Kernel, args: &[ArgMeta<'_>]) -> Footprint {
        let bytes = kernel.bytes(args);
        let mut h = fnv::Fnv::default();
        for a in args {
            a.shape.hash(&mut h);
            a.dtype.hash(&mut h);
            a.mode.hash(&mut h);
        }
        Footprint {
            key: h.finish(),
            size: bytes.max(1) as f64,
        }
    }
}

/// A task's footprint, worked out the first time a policy or worker asks
/// for it and kept. Cheaper than a `OnceLock` on the placement path: two
/// threads that both find it empty compute the same value, so they need
/// not wait for each other.
#[derive(Debug, Default)]
pub(crate) struct FootprintCell {
    set: AtomicBool,
    key: AtomicU64,
    size: AtomicU64,
}

impl FootprintCell {
    /// The footprint, if worked out.
    pub fn get(&self) -> Option<Footprint> {
        self.set.load(Ordering::Acquire).then(|| Footprint {
            key: self.key.load(Ordering::Relaxed),
            size: f64::from_bits(self.size.load(Ordering::Relaxed)),
        })
    }

    /// The footprint, worked out by `compute` if it was not yet.
    pub fn get_or_compute(&self, compute: impl FnOnce() -> Footprint) -> Footprint {
        self.get().unwrap_or_else(|| {
            let fp = compute();
            self.key.store(fp.key, Ordering::Relaxed);
            self.size.store(fp.size.to_bits(), Ordering::Relaxed);
            self.set.store(true, Ordering::Release);
            fp
        })
    }
}

/// Running count, mean and variance (Welford).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Stats {
    pub count: u64,
    pub mean: f64,
    m2: f64,
}

impl Stats {
    /// Statistics as stored: count, mean and sum of squared deviations.
    pub fn from_parts(count: u64, mean: f64, m2: f64) -> Stats {
        Stats { count, mean, m2 }
    }

    fn add(&mut self, x: f64) {
        self.count += 1;
        let d = x - self.mean;
        self.mean += d / self.count as f64;
        self.m2 += d * (x - self.mean);
    }

    /// Sample variance (0 below two samples).
    pub fn variance(&self) -> f64 {
        if self.count < 2 {
            0.0
        } else {
            self.m2 / (self.count - 1) as f64
        }
    }
}

/// One footprint's history on one unit: every sample's running stats
/// (kept across runs) and the latest few, whose median is the prediction
/// once there are three of them, so that a first run's cold caches or a
/// device's pipeline build do not drag the prediction.
#[derive(Debug, Clone, Copy)]
struct Entry {
    size: f64,
    seconds: Stats,
    recent: Latest<8>,
    /// The predicted seconds, worked out as samples arrive (a decision
    /// reads it for every unit, a sample comes far less often).
    estimate: f64,
}

impl Entry {
    fn new(size: f64, seconds: Stats, recent: Latest<8>) -> Entry {
        let mut entry = Entry {
            size,
            seconds,
            recent,
            estimate: 0.0,
        };
        entry.estimate = entry.median_or_mean();
        entry
    }

    fn add(&mut self, seconds: f64) {
        self.seconds.add(seconds);
        self.recent.push(seconds);
        self.estimate = self.median_or_mean();
    }

    /// The predicted seconds.
    fn estimate(&self) -> f64 {
        self.estimate
    }

    fn median_or_mean(&self) -> f64 {
        match self.recent.median() {
            Some(m) if self.recent.len() >= 3 => m,
            _ => self.seconds.mean,
        }
    }
}

/// The latest `N` values, the oldest overwritten first.
#[derive(Debug, Clone, Copy)]
struct Latest<const N: usize> {
    values: [f32; N],
    len: usize,
    next: usize,
}

impl<const N: usize> Default for Latest<N> {
    fn default() -> Self {
        Latest {
            values: [0.0; N],
            len: 0,
            next: 0,
        }
    }
}

impl<const N: usize> Latest<N> {
    fn push(&mut self, value: f64) {
        self.values[self.next] = value as f32;
        self.next = (self.next + 1) % N;
        self.len = (self.len + 1).min(N);
    }

    fn len(&self) -> usize {
        self.len
    }

    /// The values kept, oldest first.
    fn oldest_first(&self) -> Vec<f32> {
        let start = if self.len < N { 0 } else { self.next };
        (0..self.len)
            .map(|i| self.values[(start + i) % N])
            .collect()
    }

    /// The latest `N` of `values` (oldest first).
    fn from_oldest_first(values: &[f32]) -> Self {
        let mut latest = Latest::default();
        for &v in values {
            latest.push(f64::from(v));
        }
        latest
    }

    fn median(&self) -> Option<f64> {
        let mut v = self.values;
        let v = &mut v[..self.len];
        v.sort_by(f32::total_cmp);
        v.get(v.len() / 2).map(|&m| f64::from(m))
    }
}

/// The model of one kernel on one unit.
#[derive(Debug, Clone, Default)]
struct KernelModel {
    entries: KeyMap<Entry>,
    law: Option<Law>,
    /// Entries when the law was last fitted.
    fitted_at: usize,
    samples: u64,
    /// Tasks still to measure, every one, since a correction replaced a
    /// footprint's history: until the new history holds, a unit judged
    /// slow on one measurement (a preempted thread looks slow too) is
    /// measured on each task it gets, so it recovers at once if it was not.
    remeasure: u64,
    /// Relative error |predicted - measured| / measured of each prediction
    /// that met a measurement.
    error: Stats,
    /// The latest relative errors of predictions for footprints the model
    /// had measured before (its calibrated predictions, not the law's
    /// extrapolations).
    known_errors: Latest<64>,
}

impl KernelModel {
    fn predict(&self, fp: &Footprint) -> Option<f64> {
        match self.entries.get(&fp.key) {
            Some(e) => Some(e.estimate()),
            None => self.law.map(|l| l.eval(fp.size).max(0.0)),
        }
    }

    fn observe(&mut self, fp: &Footprint, seconds: f64) {
        if let Some(p) = self.predict(fp) {
            let error = (p - seconds).abs() / seconds.max(1e-12);
            self.error.add(error);
            if self.entries.contains_key(&fp.key) {
                self.known_errors.push(error);
            }
        }
        self.samples += 1;
        self.remeasure = self.remeasure.saturating_sub(1);
        self.entries
            .entry(fp.key)
            .or_insert(Entry::new(fp.size, Stats::default(), Latest::default()))
            .add(seconds);
        // Refit as the history grows: each new footprint, and every 32
        // samples (means move).
        if self.entries.len() != self.fitted_at || self.samples.is_multiple_of(32) {
            self.refit();
        }
    }

    fn refit(&mut self) {
        let points: Vec<(f64, f64, f64)> = self
            .entries
            .values()
            .map(|e| (e.size, e.estimate(), (e.seconds.count as f64).sqrt()))
            .collect();
        self.law = Law::fit(&points);
        self.fitted_at = self.entries.len();
    }
}

/// Latency plus bytes over bandwidth, fitted to the copies between two
/// memory nodes (plain least squares on running sums).
#[derive(Debug, Clone, Copy, Default)]
struct TransferModel {
    n: f64,
    sx: f64,
    sy: f64,
    sxx: f64,
    sxy: f64,
}

/// A (kernel, unit) pair has every task measured until it has this many
/// samples...
pub const FULL_SAMPLES: u64 = 16;
/// ...then one task in this many.
pub const SAMPLE_EVERY: u64 = 8;

/// Assumed before a pair of nodes has copied anything: a PCIe-like link.
const PRIOR_LATENCY: f64 = 10e-6;
const PRIOR_BANDWIDTH: f64 = 8e9;

impl TransferModel {
    fn observe(&mut self, bytes: f64, seconds: f64) {
        self.n += 1.0;
        self.sx += bytes;
        self.sy += seconds;
        self.sxx += bytes * bytes;
        self.sxy += bytes * seconds;
    }

    /// (latency in seconds, bandwidth in bytes per second).
    fn law(&self) -> (f64, f64) {
        if self.n == 0.0 {
            return (PRIOR_LATENCY, PRIOR_BANDWIDTH);
        }
        let det = self.n * self.sxx - self.sx * self.sx;
        let slope = if det > 1e-9 * self.sxx.max(1.0) {
            (self.n * self.sxy - self.sx * self.sy) / det
        } else {
            0.0
        };
        if slope <= 0.0 {
            // One size only: all of it is bandwidth.
            let bw = if self.sy > 0.0 {
                self.sx / self.sy
            } else {
                PRIOR_BANDWIDTH
            };
            return (0.0, bw.max(1.0));
        }
        let latency = ((self.sy - slope * self.sx) / self.n).max(0.0);
        (latency, 1.0 / slope)
    }
}

/// One footprint's history, as stored across runs; the unit by identity.
#[derive(Debug, Clone, PartialEq)]
pub struct FootprintRow {
    pub kernel: String,
    pub unit: String,
    pub key: u64,
    pub size: f64,
    pub count: u64,
    pub mean: f64,
    pub m2: f64,
    /// The latest samples, oldest first (their median is the prediction).
    pub recent: Vec<f32>,
}

/// A link's transfer model as stored: the nodes by name, and the running
/// sums (n, Σbytes, Σseconds, Σbytes², Σbytes·seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct LinkRow {
    pub from: String,
    pub to: String,
    pub sums: [f64; 5],
}

/// A kernel's model on a unit, as listed.
#[derive(Debug, Clone, Serialize)]
pub struct ModelSummary {
    pub kernel: String,
    pub unit: UnitId,
    pub samples: u64,
    pub footprints: usize,
    /// Fitted law, if any.
    pub law: Option<(f64, f64, f64)>,
    /// Mean relative prediction error, and how many predictions met a
    /// measurement.
    pub mean_error: f64,
    pub predictions_checked: u64,
    /// Median relative error of the latest predictions for footprints the
    /// model had measured (what a calibrated model predicts), if any.
    pub median_known_error: Option<f64>,
}

/// One kernel's models on every unit (see [`PerfModels::kernel`]); empty
/// when the kernel never ran.
pub(crate) struct KernelModels<'a>(Option<MappedRwLockReadGuard<'a, [KernelModel]>>);

impl KernelModels<'_> {
    /// Predicted run time in seconds on `unit` for `fp`; `None` while the
    /// pair has never run.
    pub fn predict(&self, unit: UnitId, fp: &Footprint) -> Option<f64> {
        self.0
            .as_ref()
            .and_then(|m| m.get(unit))
            .and_then(|m| m.predict(fp))
    }
}

/// What a unit's worker remembers between tasks of [`PerfModels::wants_sample`]:
/// the last kernel that had its full history on the unit, as of the
/// models' count of corrections. Such a pair is only sampled until a
/// correction, so most tasks are answered without the models' lock.
#[derive(Debug, Default)]
pub(crate) struct SampleMemo {
    full: String,
    corrections: u64,
}

impl SampleMemo {
    /// [`PerfModels::wants_sample`], remembering a pair with its full history.
    pub fn wants_sample(
        &mut self,
        models: &PerfModels,
        kernel: &str,
        unit: UnitId,
        task: u64,
    ) -> bool {
        if task.is_multiple_of(SAMPLE_EVERY) {
            return true;
        }
        // Read before the models: a correction made after this reading
        // changes the count, and the next task looks again.
        let corrections = models.corrections.load(Ordering::Acquire);
        if self.corrections == corrections && self.full == kernel {
            return false;
        }
        let wants = models.wants_sample(kernel, unit, task);
        if !wants {
            kernel.clone_into(&mut self.full);
            self.corrections = corrections;
        }
        wants
    }
}

/// Every model of a runtime.
pub struct PerfModels {
    units: usize,
    kernels: RwLock<FnvMap<String, Vec<KernelModel>>>,
    /// How many times a model was corrected ([`PerfModels::correct`]):
    /// a pair with its full history loses it only then.
    corrections: AtomicU64,
    transfers: Mutex<Vec<TransferModel>>,
    nodes: usize,
}

impl PerfModels {
    /// Empty models for `units` units and `nodes` memory nodes.
    pub fn new(units: usize, nodes: usize) -> PerfModels {
        PerfModels {
            units,
            kernels: RwLock::new(FnvMap::default()),
            corrections: AtomicU64::new(0),
            transfers: Mutex::new(vec![TransferModel::default(); nodes * nodes]),
            nodes,
        }
    }

    /// Predicted run time in seconds of `kernel` on `unit` for `fp`;
    /// `None` while the pair has never run.
    pub fn predict(&self, kernel: &str, unit: UnitId, fp: &Footprint) -> Option<f64> {
        self.kernel(kernel).predict(unit, fp)
    }

    /// `kernel`'s models on every unit, read-locked until dropped: placement
    /// asks about every eligible unit, and looks the kernel up once. Drop
    /// it before anything that may update a model.
    pub(crate) fn kernel(&self, kernel: &str) -> KernelModels<'_> {
        KernelModels(
            RwLockReadGuard::try_map(self.kernels.read(), |k| k.get(kernel).map(Vec::as_slice))
                .ok(),
        )
    }

    /// Adds a measured run time.
    pub fn observe(&self, kernel: &str, unit: UnitId, fp: &Footprint, seconds: f64) {
        if unit >= self.units || !seconds.is_finite() || seconds < 0.0 {
            return;
        }
        let mut kernels = self.kernels.write();
        // The kernel's name is copied only the first time it is seen.
        if !kernels.contains_key(kernel) {
            kernels.insert(kernel.to_string(), vec![KernelModel::default(); self.units]);
        }
        if let Some(per_unit) = kernels.get_mut(kernel) {
            per_unit[unit].observe(fp, seconds.max(1e-9));
        }
    }

    /// Replaces what is known of `fp` on `unit` with one measurement: for
    /// a time so far from the model's that the history no longer holds
    /// (a task far past its prediction), so the next decision uses it.
    pub fn correct(&self, kernel: &str, unit: UnitId, fp: &Footprint, seconds: f64) {
        if let Some(m) = self
            .kernels
            .write()
            .get_mut(kernel)
            .and_then(|per_unit| per_unit.get_mut(unit))
        {
            m.entries.remove(&fp.key);
            m.fitted_at = usize::MAX;
            // The measurement below is the first of them.
            m.remeasure = FULL_SAMPLES + 1;
        }
        self.corrections.fetch_add(1, Ordering::Release);
        self.observe(kernel, unit, fp, seconds);
    }

    /// Whether to measure task `task` of `kernel` on `unit`: every task
    /// while the pair has fewer than [`FULL_SAMPLES`] samples, or fewer
    /// since a correction replaced a footprint's history (see
    /// [`PerfModels::correct`]); then one in [`SAMPLE_EVERY`]. Measuring
    /// waits for the device to finish the kernel, which costs an
    /// asynchronous device its pipelining, so a known pair is sampled.
    pub fn wants_sample(&self, kernel: &str, unit: UnitId, task: u64) -> bool {
        task.is_multiple_of(SAMPLE_EVERY) || {
            let kernels = self.kernels.read();
            kernels
                .get(kernel)
                .and_then(|m| m.get(unit))
                .is_none_or(|m| m.samples < FULL_SAMPLES || m.remeasure > 0)
        }
    }

    /// Samples `kernel` has on `unit`.
    pub fn samples(&self, kernel: &str, unit: UnitId) -> u64 {
        self.kernels
            .read()
            .get(kernel)
            .and_then(|m| m.get(unit))
            .map_or(0, |m| m.samples)
    }

    /// Adds a measured copy of `bytes` from `from` to `to`.
    pub fn observe_transfer(&self, from: NodeId, to: NodeId, bytes: usize, seconds: f64) {
        if from < self.nodes && to < self.nodes && seconds.is_finite() && seconds > 0.0 {
            self.transfers.lock()[from * self.nodes + to].observe(bytes as f64, seconds);
        }
    }

    /// Predicted seconds to copy `bytes` from `from` to `to` (through the
    /// host between two devices).
    pub fn transfer_time(&self, from: NodeId, to: NodeId, bytes: usize) -> f64 {
        if from == to || from >= self.nodes || to >= self.nodes {
            return 0.0;
        }
        let hop = |t: &TransferModel| {
            let (latency, bandwidth) = t.law();
            latency + bytes as f64 / bandwidth
        };
        let models = self.transfers.lock();
        let host = crate::unit::HOST;
        if from != host && to != host {
            hop(&models[from * self.nodes + host]) + hop(&models[host * self.nodes + to])
        } else {
            hop(&models[from * self.nodes + to])
        }
    }

    /// (latency, bandwidth) of the copies from `from` to `to`, as fitted.
    pub fn transfer_law(&self, from: NodeId, to: NodeId) -> Option<(f64, f64)> {
        (from < self.nodes && to < self.nodes)
            .then(|| self.transfers.lock()[from * self.nodes + to].law())
    }

    /// Every footprint's history; `units[u]` is unit `u`'s identity.
    pub fn export(&self, units: &[String]) -> Vec<FootprintRow> {
        let kernels = self.kernels.read();
        let mut rows = Vec::new();
        for (kernel, per_unit) in kernels.iter() {
            for (unit, model) in per_unit.iter().enumerate() {
                let Some(identity) = units.get(unit) else {
                    continue;
                };
                rows.extend(model.entries.iter().map(|(key, e)| FootprintRow {
                    kernel: kernel.clone(),
                    unit: identity.clone(),
                    key: *key,
                    size: e.size,
                    count: e.seconds.count,
                    mean: e.seconds.mean,
                    m2: e.seconds.m2,
                    recent: e.recent.oldest_first(),
                }));
            }
        }
        rows
    }

    /// Takes stored footprints of the units whose identity is in `units`
    /// (others belong to units this runtime does not have).
    pub fn import(&self, rows: &[FootprintRow], units: &[String]) {
        let mut kernels = self.kernels.write();
        for row in rows {
            let Some(unit) = units.iter().position(|u| *u == row.unit) else {
                continue;
            };
            let usable = row.mean.is_finite() && row.mean > 0.0;
            if unit >= self.units || row.count == 0 || !usable {
                continue;
            }
            let model = &mut kernels
                .entry(row.kernel.clone())
                .or_insert_with(|| vec![KernelModel::default(); self.units])[unit];
            model.entries.insert(
                row.key,
                Entry::new(
                    row.size,
                    Stats::from_parts(row.count, row.mean, row.m2),
                    Latest::from_oldest_first(&row.recent),
                ),
            );
            model.samples += row.count;
            model.fitted_at = usize::MAX;
        }
        for per_unit in kernels.values_mut() {
            for model in per_unit.iter_mut().filter(|m| m.fitted_at == usize::MAX) {
                model.refit();
            }
        }
    }

    /// Every link's model; `nodes[n]` is node `n`'s name.
    pub fn export_links(&self, nodes: &[String]) -> Vec<LinkRow> {
        let models = self.transfers.lock();
        let mut rows = Vec::new();
        for (from, from_name) in nodes.iter().enumerate().take(self.nodes) {
            for (to, to_name) in nodes.iter().enumerate().take(self.nodes) {
                let t = &models[from * self.nodes + to];
                if t.n > 0.0 {
                    rows.push(LinkRow {
                        from: from_name.clone(),
                        to: to_name.clone(),
                        sums: [t.n, t.sx, t.sy, t.sxx, t.sxy],
                    });
                }
            }
        }
        rows
    }

    /// Takes stored link models between nodes named in `nodes`.
    pub fn import_links(&self, rows: &[LinkRow], nodes: &[String]) {
        let mut models = self.transfers.lock();
        for row in rows {
            let from = nodes.iter().position(|n| *n == row.from);
            let to = nodes.iter().position(|n| *n == row.to);
            if let (Some(from), Some(to)) = (from, to) {
                if from < self.nodes && to < self.nodes {
                    let [n, sx, sy, sxx, sxy] = row.sums;
                    models[from * self.nodes + to] = TransferModel {
                        n,
                        sx,
                        sy,
                        sxx,
                        sxy,
                    };
                }
            }
        }
    }

    /// Every kernel model, sorted by kernel then unit.
    pub fn summaries(&self) -> Vec<ModelSummary> {
        let kernels = self.kernels.read();
        let mut out: Vec<ModelSummary> = kernels
            .iter()
            .flat_map(|(name, per_unit)| {
                per_unit
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| m.samples > 0)
                    .map(move |(unit, m)| ModelSummary {
                        kernel: name.clone(),
                        unit,
                        samples: m.samples,
                        footprints: m.entries.len(),
                        law: m.law.map(|l| (l.a, l.b, l.c)),
                        mean_error: m.error.mean,
                        predictions_checked: m.error.count,
                        median_known_error: m.known_errors.median(),
                    })
            })
            .collect();
        out.sort_by(|x, y| x.kernel.cmp(&y.kernel).then(x.unit.cmp(&y.unit)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::{Footprint, PerfModels, SampleMemo, FULL_SAMPLES};

    #[test]
    fn a_sample_memo_answers_as_the_models_do_through_corrections_and_kernels() {
        let models = PerfModels::new(1, 1);
        let fp = Footprint { key: 3, size: 64.0 };
        let mut memo = SampleMemo::default();
        // Every answer of the memo, over a run of task ids, equals the
        // models' own answer at that moment.
        let agree = |memo: &mut SampleMemo, kernel: &str| {
            (1..200u64).all(|t| {
                memo.wants_sample(&models, kernel, 0, t) == models.wants_sample(kernel, 0, t)
            })
        };
        assert!(agree(&mut memo, "relu"), "a pair never run");
        for _ in 0..FULL_SAMPLES {
            models.observe("relu", 0, &fp, 1e-6);
        }
        assert!(agree(&mut memo, "relu"), "a pair measured in full");
        assert!(agree(&mut memo, "gelu"), "another kernel, never run");
        assert!(agree(&mut memo, "relu"), "back to the first kernel");
        models.correct("relu", 0, &fp, 1e-3);
        assert!(
            memo.wants_sample(&models, "relu", 0, 1),
            "a correction is seen at once"
        );
        assert!(agree(&mut memo, "relu"), "after a correction");
        for _ in 0..FULL_SAMPLES {
            models.observe("relu", 0, &fp, 1e-3);
        }
        assert!(agree(&mut memo, "relu"), "measured in full again");
    }
}
