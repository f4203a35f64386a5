//! Tiled algorithms built from tasks: a matrix split into square tiles, one
//! tensor each (its own, or a part of one plain tensor cut by
//! [`Partition::blocks`]), and the classic task-runtime workloads on them —
//! tiled GEMM, Cholesky and LU — whose parallelism comes from the task graph.
//! Each algorithm's graph is defined once, on tile coordinates
//! ([`Algorithm::for_each_task`]); the runtime and the simulator both take
//! it from there.

use smallvec::SmallVec;

use crate::cluster::owner::OwnerComputes;
use crate::cluster::ranks::{RankAccess, RankTensor, Ranks};
use crate::dtype::{DType, Element};
use crate::error::{Error, Result};
use crate::kernel::{Kernel, Mode};
use crate::partition::Partition;
use crate::runtime::{Runtime, TaskOptions};
use crate::tensor::{Access, Tensor};
use crate::unit::Placement;

/// An `n x n` row-major matrix as `t x t` tiles of `tile x tile`: the 2-D
/// blocks of one plain tensor ([`TiledMatrix::partition`]), or tensors of
/// their own ([`TiledMatrix::from_fn`], [`TiledMatrix::zeros`]).
///
/// ```
/// use xpu::{tiled::TiledMatrix, Runtime};
/// let rt = Runtime::builder().build()?;
/// let m = TiledMatrix::from_fn(&rt, 4, 2, |i, j| (i * 4 + j) as f32)?;
/// assert_eq!(m.to_vec::<f32>(&rt)?, (0..16).map(|v| v as f32).collect::<Vec<_>>());
/// let a = rt.tensor(&[4, 4], (0..16).map(|v| v as f32).collect::<Vec<_>>())?;
/// let p = TiledMatrix::partition(&rt, &a, 2)?;
/// assert_eq!(rt.read::<f32>(p.tile(1, 0))?, vec![8.0, 9.0, 12.0, 13.0]);
/// assert_eq!(p.to_vec::<f32>(&rt)?, m.to_vec::<f32>(&rt)?);
/// # Ok::<(), xpu::Error>(())
/// ```
pub struct TiledMatrix {
    n: usize,
    tile: usize,
    tiles: Vec<Tensor>,
    /// The tensor the tiles are parts of, if they are.
    whole: Option<Tensor>,
}

impl TiledMatrix {
    /// The tiles of a plain `n x n` tensor: its `tile x tile` blocks
    /// ([`Partition::blocks`]). Tasks may use the tensor itself before
    /// and after the tiles; the runtime keeps them coherent.
    pub fn partition(rt: &Runtime, a: &Tensor, tile: usize) -> Result<TiledMatrix> {
        let n = match a.shape() {
            [rows, cols] if rows == cols => *rows,
            other => {
                return Err(Error::Config(format!(
                    "a tiled matrix is square, {} has shape {other:?}",
                    a.label()
                )))
            }
        };
        tiles_per_side(n, tile)?;
        let tiles = a.partition(rt, Partition::blocks(tile, tile))?.into_vec();
        Ok(TiledMatrix {
            n,
            tile,
            tiles,
            whole: Some(a.clone()),
        })
    }

    /// The tensor the tiles are parts of (`None` for tiles of their own).
    pub fn whole(&self) -> Option<&Tensor> {
        self.whole.as_ref()
    }

    /// A matrix whose element `(i, j)` is `f(i, j)`, in tiles of their own.
    pub fn from_fn<T: Element>(
        rt: &Runtime,
        n: usize,
        tile: usize,
        f: impl Fn(usize, usize) -> T,
    ) -> Result<TiledMatrix> {
        let t = tiles_per_side(n, tile)?;
        let mut tiles = Vec::with_capacity(t * t);
        for ti in 0..t {
            for tj in 0..t {
                tiles.push(rt.tensor(&[tile, tile], tile_data(tile, ti, tj, &f))?);
            }
        }
        Ok(TiledMatrix {
            n,
            tile,
            tiles,
            whole: None,
        })
    }

    /// A zero matrix of `dtype`, in tiles of their own.
    pub fn zeros(rt: &Runtime, n: usize, tile: usize, dtype: DType) -> Result<TiledMatrix> {
        let t = tiles_per_side(n, tile)?;
        let tiles = (0..t * t)
            .map(|_| rt.zeros(&[tile, tile], dtype))
            .collect::<Result<_>>()?;
        Ok(TiledMatrix {
            n,
            tile,
            tiles,
            whole: None,
        })
    }

    /// Matrix size.
    pub fn size(&self) -> usize {
        self.n
    }

    /// Tiles per side.
    pub fn tiles_per_side(&self) -> usize {
        self.n / self.tile
    }

    /// The tile at tile-row `i`, tile-column `j`.
    pub fn tile(&self, i: usize, j: usize) -> &Tensor {
        &self.tiles[i * self.tiles_per_side() + j]
    }

    /// All its tiles.
    pub fn tiles(&self) -> &[Tensor] {
        &self.tiles
    }

    /// Reads the whole matrix back, row-major (waits for the tiles' writers).
    pub fn to_vec<T: Element>(&self, rt: &Runtime) -> Result<Vec<T>> {
        if let Some(whole) = &self.whole {
            return rt.read(whole);
        }
        assemble(self.n, self.tile, |ti, tj| rt.read(self.tile(ti, tj)))
    }
}

/// Tile `(ti, tj)` of the matrix whose element `(i, j)` is `f(i, j)`.
fn tile_data<T>(tile: usize, ti: usize, tj: usize, f: impl Fn(usize, usize) -> T) -> Vec<T> {
    (0..tile * tile)
        .map(|e| f(ti * tile + e / tile, tj * tile + e % tile))
        .collect()
}

/// The `n x n` matrix, row-major, from its tiles as `read(ti, tj)` gives them.
fn assemble<T: Element>(
    n: usize,
    tile: usize,
    mut read: impl FnMut(usize, usize) -> Result<Vec<T>>,
) -> Result<Vec<T>> {
    let t = n / tile;
    let mut out = vec![T::zeroed(); n * n];
    for ti in 0..t {
        for tj in 0..t {
            let data = read(ti, tj)?;
            for r in 0..tile {
                let dst = (ti * tile + r) * n + tj * tile;
                out[dst..dst + tile].copy_from_slice(&data[r * tile..(r + 1) * tile]);
            }
        }
    }
    Ok(out)
}

/// A tiled matrix spread over ranks ([`Ranks`]): tile `(i, j)` is owned
/// by `distribution.owner(i, j)`, and tasks writing it run there.
pub struct RankTiledMatrix {
    n: usize,
    tile: usize,
    tiles: Vec<RankTensor>,
}

impl RankTiledMatrix {
    /// A matrix whose element `(i, j)` is `f(i, j)` (each tile computed
    /// on its owner only), spread by `distribution` over `ranks`.
    pub fn from_fn<T: Element>(
        ranks: &Ranks,
        n: usize,
        tile: usize,
        distribution: Distribution,
        f: impl Fn(usize, usize) -> T,
    ) -> Result<RankTiledMatrix> {
        if distribution.ranks() != ranks.ranks() {
            return Err(Error::Config(format!(
                "the distribution spreads tiles over {} ranks, but there are {}",
                distribution.ranks(),
                ranks.ranks()
            )));
        }
        let t = tiles_per_side(n, tile)?;
        let mut tiles = Vec::with_capacity(t * t);
        for ti in 0..t {
            for tj in 0..t {
                let owner = distribution.owner(ti, tj);
                tiles.push(ranks.tensor(owner, &[tile, tile], || tile_data(tile, ti, tj, &f))?);
            }
        }
        Ok(RankTiledMatrix { n, tile, tiles })
    }

    /// The tile at tile-row `i`, tile-column `j`.
    pub fn tile(&self, i: usize, j: usize) -> &RankTensor {
        &self.tiles[i * (self.n / self.tile) + j]
    }

    /// The whole matrix, row-major, on every rank (a collective, like
    /// [`Ranks::fetch`]).
    pub fn to_vec<T: Element>(&self, ranks: &Ranks) -> Result<Vec<T>> {
        assemble(self.n, self.tile, |ti, tj| ranks.fetch(self.tile(ti, tj)))
    }
}

/// Submits `algorithm` on matrices spread over ranks (on every rank, in
/// the same order: each task runs on the owner of the tile it writes);
/// returns the task count. `operands` as [`Algorithm::operands`] says:
/// `[a, b, c]` for `C = A * B`, `[a]` for the factorisations, in place.
///
/// ```
/// use xpu::cluster::ranks::{Ranks, Threads};
/// use xpu::tiled::{run_on_ranks, Algorithm, Distribution, RankTiledMatrix};
/// use xpu::Runtime;
/// let handles: Vec<_> = Threads::group(2).into_iter().map(|transport| {
///     std::thread::spawn(move || -> xpu::Result<Vec<f64>> {
///         let rt = Runtime::builder().cpu_units(1).device_discovery(false).build()?;
///         let ranks = Ranks::new(rt, transport)?;
///         let spd = |i: usize, j: usize| if i == j { 8.0f64 } else { 1.0 };
///         let a = RankTiledMatrix::from_fn(&ranks, 8, 2, Distribution::block_cyclic(2), spd)?;
///         run_on_ranks(&ranks, Algorithm::Cholesky, &[&a])?;
///         a.to_vec(&ranks)
///     })
/// }).collect();
/// for h in handles {
///     let l = h.join().unwrap()?;
///     assert!((l[0] - 8f64.sqrt()).abs() < 1e-12);
/// }
/// # Ok::<(), xpu::Error>(())
/// ```
pub fn run_on_ranks(
    ranks: &Ranks,
    algorithm: Algorithm,
    operands: &[&RankTiledMatrix],
) -> Result<usize> {
    let Some(first) = operands.first() else {
        return Err(Error::Config(format!(
            "{} takes {} matrices, got none",
            algorithm.name(),
            algorithm.operands()
        )));
    };
    if operands.len() != algorithm.operands()
        || operands
            .iter()
            .any(|m| m.n != first.n || m.tile != first.tile)
    {
        return Err(Error::Config(format!(
            "{} takes {} matrices of one size and tile, got {}",
            algorithm.name(),
            algorithm.operands(),
            operands.len()
        )));
    }
    let mut tasks = 0;
    let mut failure = None;
    algorithm.for_each_task(first.n / first.tile, |kernel, tiles| {
        if failure.is_some() {
            return;
        }
        let accesses: SmallVec<[RankAccess; 3]> = tiles
            .iter()
            .map(|a| operands[a.operand].tile(a.row, a.col).access(a.mode))
            .collect();
        match ranks.submit(kernel, &accesses) {
            Ok(_) => tasks += 1,
            Err(e) => failure = Some(e),
        }
    });
    failure.map_or(Ok(tasks), Err)
}

fn tiles_per_side(n: usize, tile: usize) -> Result<usize> {
    if tile == 0 || n == 0 || !n.is_multiple_of(tile) {
        return Err(Error::Config(format!(
            "a {n}x{n} matrix cannot be split into {tile}x{tile} tiles (the size must be a positive multiple of the tile)"
        )));
    }
    Ok(n / tile)
}

/// A tiled algorithm's task graph on tile coordinates: what [`gemm()`],
/// [`cholesky`] and [`lu`] submit, and what `xpu sim` simulates.
///
/// ```
/// use xpu::tiled::Algorithm;
/// let mut kernels = Vec::new();
/// Algorithm::Cholesky.for_each_task(2, |kernel, tiles| {
///     kernels.push(format!("{} on {} tiles", kernel.name(), tiles.len()))
/// });
/// assert_eq!(kernels, ["potrf on 1 tiles", "trsm on 2 tiles", "syrk on 2 tiles", "potrf on 1 tiles"]);
/// assert_eq!(Algorithm::Cholesky.task_count(2), 4);
/// assert_eq!(Algorithm::parse("lu")?.task_count(3), 14);
/// # Ok::<(), xpu::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// `C = A * B`: one GEMM per tile product (operands A, B, C).
    Gemm,
    /// Right-looking Cholesky `A = L L^T` on the lower tiles.
    Cholesky,
    /// Right-looking LU without pivoting `A = L U`.
    Lu,
}

/// One tile a task of an [`Algorithm`] accesses: its operand (A, B, C
/// for GEMM as 0, 1, 2; 0 for the factorisations), tile row and column,
/// and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileAccess {
    pub operand: usize,
    pub row: usize,
    pub col: usize,
    pub mode: Mode,
}

impl Algorithm {
    /// Every algorithm.
    pub const ALL: [Algorithm; 3] = [Algorithm::Gemm, Algorithm::Cholesky, Algorithm::Lu];

    /// `gemm`, `cholesky` or `lu`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Gemm => "gemm",
            Algorithm::Cholesky => "cholesky",
            Algorithm::Lu => "lu",
        }
    }

    /// The algorithm called `name`.
    pub fn parse(name: &str) -> Result<Algorithm> {
        crate::named::parse_named(name, "tiled algorithm", &Algorithm::ALL, Algorithm::name)
    }

    /// Matrices it works on.
    pub fn operands(self) -> usize {
        match self {
            Algorithm::Gemm => 3,
            Algorithm::Cholesky | Algorithm::Lu => 1,
        }
    }

    /// Whether its tasks go as one [`Batch`](crate::Batch), ranked by
    /// their distance to the end of the graph (the factorisations, whose
    /// critical path matters).
    pub fn ranked(self) -> bool {
        !matches!(self, Algorithm::Gemm)
    }

    /// Tasks on a matrix of `t` tiles per side.
    pub fn task_count(self, t: usize) -> usize {
        let mut n = 0;
        self.for_each_task(t, |_, _| n += 1);
        n
    }

    /// Calls `f` with each task's kernel and tiles, in submission order,
    /// for a matrix of `t` tiles per side.
    pub fn for_each_task(self, t: usize, mut f: impl FnMut(&Kernel, &[TileAccess])) {
        let tile = |operand, row, col, mode| TileAccess {
            operand,
            row,
            col,
            mode,
        };
        match self {
            Algorithm::Gemm => {
                let first = Kernel::gemm();
                let accumulate = Kernel::gemm().scaled(1.0, 1.0);
                for i in 0..t {
                    for j in 0..t {
                        for k in 0..t {
                            let (kernel, out) = if k == 0 {
                                (&first, Mode::Write)
                            } else {
                                (&accumulate, Mode::ReadWrite)
                            };
                            f(
                                kernel,
                                &[
                                    tile(0, i, k, Mode::Read),
                                    tile(1, k, j, Mode::Read),
                                    tile(2, i, j, out),
                                ],
                            );
                        }
                    }
                }
            }
            Algorithm::Cholesky => {
                let update = Kernel::gemm().transpose_b().scaled(-1.0, 1.0);
                for k in 0..t {
                    f(&Kernel::Potrf, &[tile(0, k, k, Mode::ReadWrite)]);
                    for i in k + 1..t {
                        f(
                            &Kernel::Trsm,
                            &[tile(0, k, k, Mode::Read), tile(0, i, k, Mode::ReadWrite)],
                        );
                    }
                    for i in k + 1..t {
                        f(
                            &Kernel::Syrk,
                            &[tile(0, i, k, Mode::Read), tile(0, i, i, Mode::ReadWrite)],
                        );
                        for j in k + 1..i {
                            f(
                                &update,
                                &[
                                    tile(0, i, k, Mode::Read),
                                    tile(0, j, k, Mode::Read),
                                    tile(0, i, j, Mode::ReadWrite),
                                ],
                            );
                        }
                    }
                }
            }
            Algorithm::Lu => {
                let update = Kernel::gemm().scaled(-1.0, 1.0);
                for k in 0..t {
                    f(&Kernel::Getrf, &[tile(0, k, k, Mode::ReadWrite)]);
                    for j in k + 1..t {
                        f(
                            &Kernel::TrsmLower,
                            &[tile(0, k, k, Mode::Read), tile(0, k, j, Mode::ReadWrite)],
                        );
                    }
                    for i in k + 1..t {
                        f(
                            &Kernel::TrsmUpper,
                            &[tile(0, k, k, Mode::Read), tile(0, i, k, Mode::ReadWrite)],
                        );
                    }
                    for i in k + 1..t {
                        for j in k + 1..t {
                            f(
                                &update,
                                &[
                                    tile(0, i, k, Mode::Read),
                                    tile(0, k, j, Mode::Read),
                                    tile(0, i, j, Mode::ReadWrite),
                                ],
                            );
                        }
                    }
                }
            }
        }
    }
}

/// Which rank owns each tile of a tiled matrix, for a task graph spread
/// over MPI ranks: a task runs on the rank that owns the tile it writes
/// (StarPU-MPI's owner-computes rule).
///
/// ```
/// use xpu::tiled::Distribution;
/// let d = Distribution::block_cyclic(6); // a 2 x 3 grid of ranks
/// assert_eq!(d, Distribution::BlockCyclic { p: 2, q: 3 });
/// assert_eq!(d.ranks(), 6);
/// assert_eq!((d.owner(0, 0), d.owner(0, 4), d.owner(3, 2)), (0, 1, 5));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distribution {
    /// Every tile on one rank.
    Single,
    /// 2-D block-cyclic over a `p x q` grid of ranks: tile `(i, j)` on
    /// rank `(i mod p) * q + (j mod q)`.
    BlockCyclic { p: usize, q: usize },
}

impl Distribution {
    /// Block-cyclic over `ranks` ranks on the squarest grid (`p <= q`).
    pub fn block_cyclic(ranks: usize) -> Distribution {
        let ranks = ranks.max(1);
        let p = (1..=ranks)
            .take_while(|p| p * p <= ranks)
            .filter(|p| ranks.is_multiple_of(*p))
            .last()
            .unwrap_or(1);
        Distribution::BlockCyclic { p, q: ranks / p }
    }

    /// Ranks the tiles are spread over.
    pub fn ranks(&self) -> usize {
        match *self {
            Distribution::Single => 1,
            Distribution::BlockCyclic { p, q } => (p * q).max(1),
        }
    }

    /// The rank that owns tile `(row, col)`.
    pub fn owner(&self, row: usize, col: usize) -> usize {
        match *self {
            Distribution::Single => 0,
            Distribution::BlockCyclic { p, q } => (row % p.max(1)) * q.max(1) + col % q.max(1),
        }
    }
}

impl Algorithm {
    /// The fewest tile copies between ranks that running the algorithm on
    /// `t x t` tiles under `distribution` takes: each task runs where the
    /// tile it writes lives, and a tile another rank reads is sent to that
    /// rank once per version (kept there until its owner writes it again).
    ///
    /// ```
    /// use xpu::tiled::{Algorithm, Distribution};
    /// assert_eq!(Algorithm::Cholesky.min_transfers(4, Distribution::Single), 0);
    /// // 2 tiles per side on a 1 x 2 grid (columns alternate between the
    /// // ranks): only tile (1,0) moves, to rank 1, for the SYRK of (1,1).
    /// assert_eq!(Algorithm::Cholesky.min_transfers(2, Distribution::BlockCyclic { p: 1, q: 2 }), 1);
    /// ```
    pub fn min_transfers(self, t: usize, distribution: Distribution) -> usize {
        let mut plan = OwnerComputes::default();
        let mut copies = 0;
        self.for_each_task(t, |_, tiles| {
            let accesses: SmallVec<[_; 3]> = tiles
                .iter()
                .map(|a| {
                    let owner = distribution.owner(a.row, a.col);
                    ((a.operand, a.row, a.col), a.mode, owner)
                })
                .collect();
            let placed = plan.task(&accesses);
            copies += placed.before.len() + placed.after.len();
        });
        copies
    }
}

/// The tensor access of `tile` among `operands`.
fn access(operands: &[&TiledMatrix], tile: &TileAccess) -> Access {
    operands[tile.operand]
        .tile(tile.row, tile.col)
        .access(tile.mode)
}

/// [`cholesky`] across ranks: `A = L L^T` in place on a matrix spread by
/// its distribution, each task on the owner of the tile it writes
/// (called on every rank); returns the task count.
pub fn cholesky_on_ranks(ranks: &Ranks, a: &RankTiledMatrix) -> Result<usize> {
    run_on_ranks(ranks, Algorithm::Cholesky, &[a])
}

/// [`gemm()`] across ranks: `C = A * B` on matrices spread by their
/// distribution (called on every rank); returns the task count.
pub fn gemm_on_ranks(
    ranks: &Ranks,
    a: &RankTiledMatrix,
    b: &RankTiledMatrix,
    c: &RankTiledMatrix,
) -> Result<usize> {
    run_on_ranks(ranks, Algorithm::Gemm, &[a, b, c])
}

/// Submits `C = A * B` as one GEMM task per tile product, each placed by
/// `placement`; returns the task count.
///
/// ```
/// use xpu::{tiled::{gemm, TiledMatrix}, DType, Placement, Runtime};
/// let rt = Runtime::builder().build()?;
/// let a = TiledMatrix::from_fn(&rt, 8, 4, |i, j| if i == j { 2.0f32 } else { 0.0 })?;
/// let b = TiledMatrix::from_fn(&rt, 8, 4, |i, j| (i + j) as f32)?;
/// let c = TiledMatrix::zeros(&rt, 8, 4, DType::F32)?;
/// assert_eq!(gemm(&rt, &a, &b, &c, Placement::Any)?, 8);
/// assert_eq!(c.to_vec::<f32>(&rt)?[9], 2.0 * 2.0); // 2 * (1 + 1)
/// # Ok::<(), xpu::Error>(())
/// ```
pub fn gemm(
    rt: &Runtime,
    a: &TiledMatrix,
    b: &TiledMatrix,
    c: &TiledMatrix,
    placement: Placement,
) -> Result<usize> {
    if b.n != a.n || c.n != a.n || b.tile != a.tile || c.tile != a.tile {
        return Err(Error::Config(
            "tiled gemm needs three matrices of one size and tiling".into(),
        ));
    }
    let opts = TaskOptions::default().on(placement);
    let operands = [a, b, c];
    let mut submitted = Ok(0);
    Algorithm::Gemm.for_each_task(a.tiles_per_side(), |kernel, tiles| {
        if let Ok(n) = submitted {
            let accesses: Vec<Access> = tiles.iter().map(|t| access(&operands, t)).collect();
            submitted = rt
                .submit_with(kernel, &accesses, opts.clone())
                .map(|_| n + 1);
        }
    });
    submitted
}

/// Submits a factorisation of `a` in place as one [`Batch`](crate::Batch):
/// each task gets a priority from its distance to the end of the graph.
fn factor(rt: &Runtime, algorithm: Algorithm, a: &TiledMatrix) -> Result<usize> {
    let mut batch = rt.batch();
    algorithm.for_each_task(a.tiles_per_side(), |kernel, tiles| {
        let accesses: Vec<Access> = tiles.iter().map(|t| access(&[a], t)).collect();
        batch.add(kernel, &accesses);
    });
    let tasks = batch.len();
    batch.submit()?;
    Ok(tasks)
}

/// Submits the right-looking tiled Cholesky factorisation `A = L L^T` of a
/// symmetric positive definite matrix, in place on its lower tiles; returns
/// the task count. The tasks go as one [`Batch`](crate::Batch): each gets
/// a priority from its distance to the end of the graph, so the critical
/// path (POTRF, then the TRSMs and updates that feed the next POTRF) runs
/// first.
pub fn cholesky(rt: &Runtime, a: &TiledMatrix) -> Result<usize> {
    factor(rt, Algorithm::Cholesky, a)
}

/// Submits the right-looking tiled LU factorisation `A = L U` without
/// pivoting, in place (`L` unit lower below the diagonal, `U` on and
/// above it), ranked like [`cholesky`]; returns the task count. The
/// matrix must not need pivoting (e.g. diagonally dominant).
///
/// ```
/// use xpu::{tiled::{lu, TiledMatrix}, Runtime};
/// let rt = Runtime::builder().build()?;
/// // [[4, 1], [2, 3]] per element pair of a 2x2-tiled 4x4 matrix: 4 on the diagonal.
/// let a = TiledMatrix::from_fn(&rt, 4, 2, |i, j| if i == j { 4.0f64 } else { 1.0 })?;
/// assert_eq!(lu(&rt, &a)?, 5);
/// let f = a.to_vec::<f64>(&rt)?;
/// assert_eq!(f[0], 4.0);          // U's first row is A's
/// assert_eq!(f[4], 0.25);         // L's first column is A's over the pivot
/// # Ok::<(), xpu::Error>(())
/// ```
pub fn lu(rt: &Runtime, a: &TiledMatrix) -> Result<usize> {
    factor(rt, Algorithm::Lu, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_needs_each_operand_tile_once_per_other_rank_of_its_grid_row_or_column() {
        // C(i,j) runs where it lives; A(i,k) is read on the q ranks of grid
        // row i mod p (its owner among them), B(k,j) on the p ranks of grid
        // column j mod q: t^2 (q - 1) + t^2 (p - 1) copies.
        for (t, p, q) in [(4, 2, 2), (6, 2, 3), (3, 1, 3)] {
            let d = Distribution::BlockCyclic { p, q };
            assert_eq!(
                Algorithm::Gemm.min_transfers(t, d),
                t * t * (q - 1) + t * t * (p - 1),
                "{t} tiles on {p}x{q}"
            );
        }
        assert_eq!(Algorithm::Lu.min_transfers(5, Distribution::Single), 0);
    }

    #[test]
    fn a_tile_rewritten_by_its_owner_is_sent_again() {
        // Cholesky on 3x3 tiles, a 1x3 grid: column j on rank j. Tile (1,0)
        // is read by the SYRK of (1,1) (rank 1); (2,0) by the SYRK of (2,2)
        // (rank 2) and the update of (2,1) (rank 1); (1,0) also by that
        // update, on rank 1, which has it. (1,1) is rewritten by the POTRF
        // on rank 1 and read by the TRSM of (2,1) on rank 1: no copy. (2,1)
        // goes to rank 2 for the SYRK of (2,2).
        let d = Distribution::BlockCyclic { p: 1, q: 3 };
        assert_eq!(Algorithm::Cholesky.min_transfers(3, d), 4);
    }
}
