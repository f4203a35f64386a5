//! Tiled algorithms built from tasks: a matrix split into square tiles, one
//! tensor each, and the classic task-runtime workloads on them — tiled GEMM
//! and tiled Cholesky — whose parallelism comes from the task graph.

use crate::dtype::{DType, Element};
use crate::error::{Error, Result};
use crate::kernel::Kernel;
use crate::runtime::{Runtime, TaskOptions};
use crate::tensor::Tensor;
use crate::unit::Placement;

/// An `n x n` row-major matrix stored as `t x t` tiles of `tile x tile`.
///
/// ```
/// use xpu::{tiled::TiledMatrix, Runtime};
/// let rt = Runtime::builder().build()?;
/// let m = TiledMatrix::from_fn(&rt, 4, 2, |i, j| (i * 4 + j) as f32)?;
/// assert_eq!(m.to_vec::<f32>(&rt)?, (0..16).map(|v| v as f32).collect::<Vec<_>>());
/// # Ok::<(), xpu::Error>(())
/// ```
pub struct TiledMatrix {
    n: usize,
    tile: usize,
    tiles: Vec<Tensor>,
}

impl TiledMatrix {
    /// A matrix whose element `(i, j)` is `f(i, j)`.
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
                let data: Vec<T> = (0..tile * tile)
                    .map(|e| f(ti * tile + e / tile, tj * tile + e % tile))
                    .collect();
                tiles.push(rt.tensor(&[tile, tile], data)?);
            }
        }
        Ok(TiledMatrix { n, tile, tiles })
    }

    /// A zero matrix of `dtype`.
    pub fn zeros(rt: &Runtime, n: usize, tile: usize, dtype: DType) -> Result<TiledMatrix> {
        let t = tiles_per_side(n, tile)?;
        let tiles = (0..t * t)
            .map(|_| rt.zeros(&[tile, tile], dtype))
            .collect::<Result<_>>()?;
        Ok(TiledMatrix { n, tile, tiles })
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

    /// Reads the whole matrix back, row-major (waits for the tiles' writers).
    pub fn to_vec<T: Element>(&self, rt: &Runtime) -> Result<Vec<T>> {
        let (n, tile, t) = (self.n, self.tile, self.tiles_per_side());
        let mut out = vec![T::zeroed(); n * n];
        for ti in 0..t {
            for tj in 0..t {
                let data: Vec<T> = rt.read(self.tile(ti, tj))?;
                for r in 0..tile {
                    let dst = (ti * tile + r) * n + tj * tile;
                    out[dst..dst + tile].copy_from_slice(&data[r * tile..(r + 1) * tile]);
                }
            }
        }
        Ok(out)
    }
}

fn tiles_per_side(n: usize, tile: usize) -> Result<usize> {
    if tile == 0 || n == 0 || !n.is_multiple_of(tile) {
        return Err(Error::Config(format!(
            "a {n}x{n} matrix cannot be split into {tile}x{tile} tiles (the size must be a positive multiple of the tile)"
        )));
    }
    Ok(n / tile)
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
    let t = a.tiles_per_side();
    if b.n != a.n || c.n != a.n || b.tile != a.tile || c.tile != a.tile {
        return Err(Error::Config(
            "tiled gemm needs three matrices of one size and tiling".into(),
        ));
    }
    let first = Kernel::gemm();
    let accumulate = Kernel::gemm().scaled(1.0, 1.0);
    let opts = TaskOptions::default().on(placement);
    for i in 0..t {
        for j in 0..t {
            for k in 0..t {
                let (kernel, out) = if k == 0 {
                    (&first, c.tile(i, j).write())
                } else {
                    (&accumulate, c.tile(i, j).rw())
                };
                rt.submit_with(
                    kernel,
                    &[a.tile(i, k).read(), b.tile(k, j).read(), out],
                    opts.clone(),
                )?;
            }
        }
    }
    Ok(t * t * t)
}

/// Submits the right-looking tiled Cholesky factorisation `A = L L^T` of a
/// symmetric positive definite matrix, in place on its lower tiles; returns
/// the task count. The tasks go as one [`Batch`](crate::Batch): each gets
/// a priority from its distance to the end of the graph, so the critical
/// path (POTRF, then the TRSMs and updates that feed the next POTRF) runs
/// first.
pub fn cholesky(rt: &Runtime, a: &TiledMatrix) -> Result<usize> {
    let t = a.tiles_per_side();
    let update = Kernel::gemm().transpose_b().scaled(-1.0, 1.0);
    let mut batch = rt.batch();
    for k in 0..t {
        batch.add(&Kernel::Potrf, &[a.tile(k, k).rw()]);
        for i in k + 1..t {
            batch.add(&Kernel::Trsm, &[a.tile(k, k).read(), a.tile(i, k).rw()]);
        }
        for i in k + 1..t {
            batch.add(&Kernel::Syrk, &[a.tile(i, k).read(), a.tile(i, i).rw()]);
            for j in k + 1..i {
                batch.add(
                    &update,
                    &[a.tile(i, k).read(), a.tile(j, k).read(), a.tile(i, j).rw()],
                );
            }
        }
    }
    let tasks = batch.len();
    batch.submit()?;
    Ok(tasks)
}
