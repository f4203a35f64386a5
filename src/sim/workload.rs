//! The graphs the simulator runs: a tiled algorithm's tasks (the same
//! [`Algorithm::for_each_task`] the runtime submits) or a random graph
//! over a pool of tiles, as tasks the scheduling policies place
//! ([`Placeable`]), with the tiles' replica sets beside them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use smallvec::SmallVec;

use super::platform::Platform;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::graph::UnitSet;
use crate::kernel::{ArgMeta, Kernel, Mode};
use crate::perfmodel::{Footprint, PerfModels};
use crate::sched::Placeable;
use crate::tiled::Algorithm;
use crate::unit::NodeId;

/// A task graph to simulate, on square f32 tiles of `tile x tile`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Workload {
    /// A tiled algorithm on a matrix of `tiles x tiles` tiles.
    Tiled {
        algorithm: Algorithm,
        tiles: usize,
        tile: usize,
    },
    /// `tasks` tasks, each a GEMM, TRSM or SYRK update of a tile chosen at
    /// random from `tiles` (reading one or two others); dependencies
    /// follow from the data. Reproducible from `seed`.
    Random {
        tasks: usize,
        tiles: usize,
        tile: usize,
        seed: u64,
    },
}

impl Workload {
    /// `cholesky 32x32 tiles of 960`, `random 1000 tasks on 64 tiles of 960`.
    pub fn describe(&self) -> String {
        match *self {
            Workload::Tiled {
                algorithm,
                tiles,
                tile,
            } => format!("{} {tiles}x{tiles} tiles of {tile}", algorithm.name()),
            Workload::Random {
                tasks, tiles, tile, ..
            } => format!("random {tasks} tasks on {tiles} tiles of {tile}"),
        }
    }

    fn tile_size(&self) -> usize {
        match *self {
            Workload::Tiled { tile, .. } | Workload::Random { tile, .. } => tile,
        }
    }
}

/// Where each tile has a valid copy (a bit per memory node) and its size.
pub(crate) struct Tiles {
    pub valid: Vec<AtomicU64>,
    pub bytes: u64,
}

impl Tiles {
    pub fn mask(&self, tile: u32) -> u64 {
        self.valid[tile as usize].load(Ordering::Acquire)
    }

    pub fn set_mask(&self, tile: u32, mask: u64) {
        self.valid[tile as usize].store(mask, Ordering::Release);
    }

    /// A node holding a valid copy, the host first.
    pub fn source(&self, tile: u32) -> Option<NodeId> {
        let m = self.mask(tile);
        (m != 0).then(|| {
            if m & 1 != 0 {
                0
            } else {
                m.trailing_zeros() as NodeId
            }
        })
    }
}

/// One simulated task.
pub(crate) struct SimTask {
    pub id: u64,
    pub kernel: u8,
    pub tiles: SmallVec<[(u32, Mode); 3]>,
    pub eligible: UnitSet,
    pub priority: i32,
    pub footprint: Footprint,
    pub flops: f64,
    pub kernels: Arc<[Kernel]>,
    pub data: Arc<Tiles>,
}

impl Placeable for SimTask {
    fn id(&self) -> u64 {
        self.id
    }

    fn kernel_name(&self) -> &str {
        self.kernels[self.kernel as usize].name()
    }

    fn eligible(&self) -> &UnitSet {
        &self.eligible
    }

    fn priority(&self) -> i32 {
        self.priority
    }

    fn footprint(&self) -> Footprint {
        self.footprint
    }

    fn transfer_time(&self, node: NodeId, models: &PerfModels) -> f64 {
        self.tiles
            .iter()
            .filter(|(_, mode)| mode.reads())
            .map(|&(tile, _)| {
                if self.data.mask(tile) & (1 << node) != 0 {
                    0.0
                } else {
                    self.data.source(tile).map_or(0.0, |src| {
                        models.transfer_time(src, node, self.data.bytes as usize)
                    })
                }
            })
            .sum()
    }
}

/// A task as generated, before placement facts are attached.
struct Generated {
    kernel: u8,
    tiles: SmallVec<[(u32, Mode); 3]>,
}

/// The workload's tasks in submission order, and what depends on what.
pub(crate) struct SimGraph {
    pub tasks: Vec<SimTask>,
    pub successors: Vec<Vec<usize>>,
}

/// A tiny deterministic generator (SplitMix64).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn generate(workload: &Workload) -> Result<(Vec<Kernel>, Vec<Generated>, usize)> {
    let mut kernels: Vec<Kernel> = Vec::new();
    let kernel_index = |k: &Kernel, kernels: &mut Vec<Kernel>| -> u8 {
        match kernels.iter().position(|x| x.name() == k.name()) {
            Some(i) => i as u8,
            None => {
                kernels.push(k.clone());
                (kernels.len() - 1) as u8
            }
        }
    };
    let mut out = Vec::new();
    let tiles = match *workload {
        Workload::Tiled {
            algorithm, tiles, ..
        } => {
            if tiles == 0 {
                return Err(Error::Config(
                    "a tiled workload needs at least 1 tile".into(),
                ));
            }
            let per = tiles * tiles;
            algorithm.for_each_task(tiles, |kernel, access| {
                let k = kernel_index(kernel, &mut kernels);
                out.push(Generated {
                    kernel: k,
                    tiles: access
                        .iter()
                        .map(|a| ((a.operand * per + a.row * tiles + a.col) as u32, a.mode))
                        .collect(),
                });
            });
            algorithm.operands() * per
        }
        Workload::Random {
            tasks, tiles, seed, ..
        } => {
            if tiles < 3 {
                return Err(Error::Config(
                    "a random workload needs at least 3 tiles".into(),
                ));
            }
            let mut rng = SplitMix(seed);
            let update = Kernel::gemm().scaled(-1.0, 1.0);
            for _ in 0..tasks {
                let out_tile = rng.below(tiles) as u32;
                let choice = rng.below(10);
                let mut other = || loop {
                    let t = rng.below(tiles) as u32;
                    if t != out_tile {
                        break t;
                    }
                };
                let (kernel, reads): (&Kernel, SmallVec<[u32; 2]>) = match choice {
                    0..=6 => (&update, [other(), other()].into_iter().collect()),
                    7 | 8 => (&Kernel::Trsm, [other()].into_iter().collect()),
                    _ => (&Kernel::Syrk, [other()].into_iter().collect()),
                };
                let k = kernel_index(kernel, &mut kernels);
                let mut access: SmallVec<[(u32, Mode); 3]> =
                    reads.into_iter().map(|t| (t, Mode::Read)).collect();
                access.push((out_tile, Mode::ReadWrite));
                out.push(Generated {
                    kernel: k,
                    tiles: access,
                });
            }
            tiles
        }
    };
    Ok((kernels, out, tiles))
}

impl SimGraph {
    /// The tasks of `workload` for `platform`: each eligible on the units
    /// whose description gives a speed for its kernel. Every tile starts
    /// on the host (node 0). Priorities are bottom levels on the fastest
    /// units where the runtime would rank (`Algorithm::ranked`).
    pub fn build(workload: &Workload, platform: &Platform) -> Result<(SimGraph, Arc<Tiles>)> {
        let (kernels, generated, tile_count) = generate(workload)?;
        let kernels: Arc<[Kernel]> = kernels.into();
        let t = workload.tile_size();
        if t == 0 {
            return Err(Error::Config("the tile size must be positive".into()));
        }
        let data = Arc::new(Tiles {
            valid: (0..tile_count).map(|_| AtomicU64::new(1)).collect(),
            bytes: (t * t * DType::F32.size()) as u64,
        });
        let shape = [t, t];
        let mut tasks = Vec::with_capacity(generated.len());
        for (i, g) in generated.into_iter().enumerate() {
            let kernel = &kernels[g.kernel as usize];
            let metas: SmallVec<[ArgMeta<'_>; 3]> = g
                .tiles
                .iter()
                .map(|&(_, mode)| ArgMeta {
                    shape: &shape,
                    dtype: DType::F32,
                    mode,
                })
                .collect();
            let shapes: SmallVec<[&[usize]; 3]> = metas.iter().map(|m| m.shape).collect();
            let eligible: UnitSet = platform
                .units
                .iter()
                .enumerate()
                .filter(|(_, unit)| unit.speeds.contains_key(kernel.name()))
                .map(|(u, _)| u)
                .collect();
            if eligible.is_empty() {
                return Err(Error::Config(format!(
                    "no unit of platform `{}` runs `{}` (give it a speed under some unit's gflops or law)",
                    platform.name,
                    kernel.name()
                )));
            }
            tasks.push(SimTask {
                id: i as u64 + 1,
                kernel: g.kernel,
                footprint: Footprint::of(kernel, &metas),
                flops: kernel.flops(&shapes),
                tiles: g.tiles,
                eligible,
                priority: 0,
                kernels: kernels.clone(),
                data: data.clone(),
            });
        }
        let successors = crate::dag::successors(tasks.len(), |i| {
            tasks[i]
                .tiles
                .iter()
                .map(|&(tile, mode)| (tile as u64, mode))
        });
        let ranked = matches!(workload, Workload::Tiled { algorithm, .. } if algorithm.ranked());
        if ranked {
            let weights: Vec<f64> = tasks.iter().map(|t| fastest(t, platform)).collect();
            let levels = crate::dag::bottom_levels(&weights, &successors);
            for (t, p) in tasks.iter_mut().zip(crate::dag::priorities(&levels)) {
                t.priority = p;
            }
        }
        Ok((SimGraph { tasks, successors }, data))
    }
}

/// Seconds of `task` on the platform's fastest unit for it.
pub(crate) fn fastest(task: &SimTask, platform: &Platform) -> f64 {
    task.eligible
        .iter()
        .filter_map(|u| run_seconds(task, platform, u))
        .fold(f64::INFINITY, f64::min)
}

/// Seconds of `task` on unit `u`, if it runs there.
pub(crate) fn run_seconds(task: &SimTask, platform: &Platform, u: usize) -> Option<f64> {
    platform.units[u].seconds(task.kernel_name(), task.flops, task.footprint.size)
}
