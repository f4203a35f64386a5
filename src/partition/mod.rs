//! Partitions: a tensor split into parts that are tensors themselves
//! (StarPU's data filters), with the whole and its parts kept coherent
//! through the task graph.
//!
//! [`Tensor::partition`] cuts a tensor by a [`Partition`] and returns the
//! [`Parts`]. Tasks may then use the whole and any part, in any order;
//! before a task runs, the runtime makes what it names current
//! (`family.rs`): a task on a part after the whole was written first
//! *scatters* the whole into the parts (a copy task per part), a task on
//! the whole after parts were written first *gathers* them into it. Scatters and gathers are
//! tasks (`copy.rs`), ordered by the usual read/write rules, placed,
//! profiled and counted like any kernel.
//!
//! **What is copied.** A part that is contiguous in its whole (blocks along
//! the first axis, bands, or any block that spans every later axis) shares
//! the whole's host memory: gathering and scattering it on the host copies
//! nothing. Other parts (column blocks, 2-D blocks) have their own host
//! memory, and gathers and scatters copy them; those bytes are counted in
//! [`NodeStats::bytes_copied`](crate::NodeStats::bytes_copied) and in the
//! transfer log (a transfer from the host to itself).
//!
//! **On devices** a contiguous part's replica is a *view* of its whole's
//! buffer ([`Backend::view`](crate::Backend::view)) wherever the whole
//! has storage on that device and the device allows one at the part's
//! offset: a wgpu storage binding at a multiple of the adapter's
//! `min_storage_buffer_offset_alignment` (the part's bytes a multiple of
//! four), an OpenCL sub-buffer at a multiple of `CL_DEVICE_MEM_BASE_ADDR_ALIGN`.
//! A view takes no device memory of its own; the whole's buffer is
//! given back only once no view of it is left. Other parts, parts whose
//! whole has no storage there, and every part on candle devices (whose
//! tensors cannot be written in place through a view) get buffers of
//! their own. The scatters and gathers themselves run on the host, so a
//! device view saves device memory, not the trips through host memory
//! that a task on the whole after tasks on its parts (or the other way
//! round) takes.
//!
//! **Ordering.** Members share memory, so a task that writes one waits,
//! besides the usual rules on its own tensor, for the earlier unfinished
//! readers of every member sharing elements with it (its whole, its
//! parts, parts of another partition): a task reading the whole never
//! sees a later write to a part, nor a task reading a part a later write
//! to the whole.

mod copy;
mod family;

pub(crate) use family::{enclosing, Coherence, FamilyLink};

use crate::error::{Error, Result};
use crate::runtime::Runtime;
use crate::tensor::Tensor;

/// How to cut a tensor into parts. Block sizes are in elements; where a
/// size does not divide the axis, the last block is smaller.
///
/// ```
/// use xpu::Partition;
/// assert_eq!(Partition::rows(256).to_string(), "blocks of 256 along axis 0");
/// assert_eq!(Partition::blocks(64, 32).to_string(), "64x32 blocks");
/// assert_eq!(Partition::bands(100, 2).to_string(), "bands of 100 rows with a halo of 2");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Partition {
    /// Blocks of `size` along `axis`, every other axis whole.
    Axis { axis: usize, size: usize },
    /// Blocks of the given sizes along `axis`, which must add up to it.
    Sizes { axis: usize, sizes: Vec<usize> },
    /// `rows x cols` blocks over the first two axes (any later axis whole,
    /// e.g. an image's channels).
    Blocks { rows: usize, cols: usize },
    /// Bands of `rows` along the first axis, each with up to `halo` more
    /// rows of its neighbours on either side (for stencils such as blur and
    /// Sobel). Bands overlap, so they are read-only.
    Bands { rows: usize, halo: usize },
}

impl Partition {
    /// Blocks of `size` rows (along the first axis).
    pub fn rows(size: usize) -> Partition {
        Partition::Axis { axis: 0, size }
    }
    /// Blocks of `size` columns (along the second axis).
    pub fn cols(size: usize) -> Partition {
        Partition::Axis { axis: 1, size }
    }
    /// Blocks of `size` along `axis`.
    pub fn along(axis: usize, size: usize) -> Partition {
        Partition::Axis { axis, size }
    }
    /// `rows x cols` blocks over the first two axes.
    pub fn blocks(rows: usize, cols: usize) -> Partition {
        Partition::Blocks { rows, cols }
    }
    /// Blocks of the given sizes along `axis`.
    pub fn sizes(axis: usize, sizes: &[usize]) -> Partition {
        Partition::Sizes {
            axis,
            sizes: sizes.to_vec(),
        }
    }
    /// Read-only bands of `rows` with `halo` rows of overlap on each side.
    pub fn bands(rows: usize, halo: usize) -> Partition {
        Partition::Bands { rows, halo }
    }

    /// Whether parts overlap (then they are read-only).
    pub fn overlaps(&self) -> bool {
        matches!(self, Partition::Bands { halo, .. } if *halo > 0)
    }

    /// The parts' regions in a tensor of `shape`, in row-major order of
    /// their grid, and the grid's extent per cut axis; or what does not fit.
    fn regions(&self, shape: &[usize]) -> std::result::Result<(Vec<Region>, Vec<usize>), String> {
        let cuts: Vec<(usize, Vec<(usize, usize)>)> = match self {
            Partition::Axis { axis, size } => vec![(*axis, blocks(shape, *axis, *size, 0)?)],
            Partition::Blocks { rows, cols } => {
                if shape.len() < 2 {
                    return Err(format!(
                        "2-D blocks need at least 2 axes, the tensor has {}",
                        shape.len()
                    ));
                }
                vec![
                    (0, blocks(shape, 0, *rows, 0)?),
                    (1, blocks(shape, 1, *cols, 0)?),
                ]
            }
            Partition::Bands { rows, halo } => vec![(0, blocks(shape, 0, *rows, *halo)?)],
            Partition::Sizes { axis, sizes } => vec![(*axis, given_sizes(shape, *axis, sizes)?)],
        };
        let grid: Vec<usize> = cuts.iter().map(|(_, c)| c.len()).collect();
        let mut regions = Vec::new();
        let mut index = vec![0; cuts.len()];
        loop {
            let mut offset = vec![0; shape.len()];
            let mut extent = shape.to_vec();
            for (i, (axis, ranges)) in cuts.iter().enumerate() {
                (offset[*axis], extent[*axis]) = ranges[index[i]];
            }
            regions.push(Region {
                offset,
                shape: extent,
                index: index.clone(),
            });
            let Some(i) = (0..index.len()).rev().find(|&i| index[i] + 1 < grid[i]) else {
                break;
            };
            index[i] += 1;
            index[i + 1..].iter_mut().for_each(|v| *v = 0);
        }
        Ok((regions, grid))
    }
}

/// Blocks of `size` along `axis` of `shape`, each widened by `halo` on both
/// sides within the axis: `(start, len)` each.
fn blocks(
    shape: &[usize],
    axis: usize,
    size: usize,
    halo: usize,
) -> std::result::Result<Vec<(usize, usize)>, String> {
    let n = axis_len(shape, axis)?;
    if size == 0 {
        return Err("a block size of 0".into());
    }
    if size > n {
        return Err(format!("blocks of {size} do not fit axis {axis} of {n}"));
    }
    Ok((0..n.div_ceil(size))
        .map(|i| {
            let start = (i * size).saturating_sub(halo);
            let end = ((i + 1) * size + halo).min(n);
            (start, end - start)
        })
        .collect())
}

fn given_sizes(
    shape: &[usize],
    axis: usize,
    sizes: &[usize],
) -> std::result::Result<Vec<(usize, usize)>, String> {
    let n = axis_len(shape, axis)?;
    if sizes.contains(&0) {
        return Err("a part of size 0".into());
    }
    let total: usize = sizes.iter().sum();
    if total != n {
        return Err(format!(
            "the parts cover {total} of axis {axis}'s {n}: they must cover it exactly"
        ));
    }
    let mut start = 0;
    Ok(sizes
        .iter()
        .map(|&len| {
            start += len;
            (start - len, len)
        })
        .collect())
}

fn axis_len(shape: &[usize], axis: usize) -> std::result::Result<usize, String> {
    shape
        .get(axis)
        .copied()
        .ok_or_else(|| format!("axis {axis} is outside a tensor of {} axes", shape.len()))
}

impl std::fmt::Display for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Partition::Axis { axis, size } => write!(f, "blocks of {size} along axis {axis}"),
            Partition::Sizes { axis, sizes } => {
                write!(f, "parts of sizes {sizes:?} along axis {axis}")
            }
            Partition::Blocks { rows, cols } => write!(f, "{rows}x{cols} blocks"),
            Partition::Bands { rows, halo } => {
                write!(f, "bands of {rows} rows with a halo of {halo}")
            }
        }
    }
}

/// Where one part sits in its whole: the first element's index, the
/// extent on each axis, and the part's place in the partition's grid.
#[derive(Debug, Clone)]
pub(crate) struct Region {
    pub offset: Vec<usize>,
    pub shape: Vec<usize>,
    pub index: Vec<usize>,
}

impl Region {
    /// The element index of its first element in the whole, if its
    /// elements are one contiguous run of the whole's (row-major).
    pub fn contiguous_start(&self, whole: &[usize]) -> Option<usize> {
        let last_cut = (0..whole.len()).rev().find(|&d| self.shape[d] != whole[d]);
        if let Some(cut) = last_cut {
            if self.shape[..cut].iter().any(|&s| s != 1) {
                return None;
            }
        }
        Some(element_index(whole, &self.offset))
    }

    fn len(&self) -> usize {
        self.shape.iter().product()
    }
}

/// The row-major index of `at` in `shape`.
fn element_index(shape: &[usize], at: &[usize]) -> usize {
    shape.iter().zip(at).fold(0, |acc, (n, i)| acc * n + i)
}

/// The parts of a partitioned tensor, in row-major order of their grid:
/// index them as a slice, or by grid position with [`Parts::at`].
///
/// ```
/// use xpu::{DType, Partition, Runtime};
/// let rt = Runtime::builder().device_discovery(false).build()?;
/// let a = rt.zeros(&[5, 4], DType::F32)?.named("A");
/// let tiles = a.partition(&rt, Partition::blocks(2, 2))?;
/// assert_eq!(tiles.grid(), &[3, 2]);
/// assert_eq!(tiles.len(), 6);
/// assert_eq!(tiles.at(&[2, 1]).unwrap().name(), Some("A[2,1]"));
/// assert_eq!(tiles.at(&[2, 1]).unwrap().shape(), &[1, 2]); // the last row block is smaller
/// assert_eq!(tiles[0].shape(), &[2, 2]);
/// for tile in &tiles {
///     assert!(tile.name().unwrap().starts_with("A["));
/// }
/// # Ok::<(), xpu::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Parts {
    tensors: Vec<Tensor>,
    grid: Vec<usize>,
}

impl Parts {
    /// How many parts along each cut axis.
    pub fn grid(&self) -> &[usize] {
        &self.grid
    }
    /// The part at a grid position (one index per cut axis).
    pub fn at(&self, index: &[usize]) -> Option<&Tensor> {
        if index.len() != self.grid.len() || index.iter().zip(&self.grid).any(|(i, n)| i >= n) {
            return None;
        }
        self.tensors.get(element_index(&self.grid, index))
    }
    /// The parts as a vector.
    pub fn into_vec(self) -> Vec<Tensor> {
        self.tensors
    }
}

impl std::ops::Deref for Parts {
    type Target = [Tensor];
    fn deref(&self) -> &[Tensor] {
        &self.tensors
    }
}

impl<'a> IntoIterator for &'a Parts {
    type Item = &'a Tensor;
    type IntoIter = std::slice::Iter<'a, Tensor>;
    fn into_iter(self) -> Self::IntoIter {
        self.tensors.iter()
    }
}

impl IntoIterator for Parts {
    type Item = Tensor;
    type IntoIter = std::vec::IntoIter<Tensor>;
    fn into_iter(self) -> Self::IntoIter {
        self.tensors.into_iter()
    }
}

impl Tensor {
    /// Cuts the tensor into parts that tasks can use like any tensor,
    /// before, after and between tasks on the whole: the runtime keeps the
    /// whole and the parts coherent (see the [module docs](crate::Partition)
    /// for what it copies). A part may be partitioned again, and a tensor
    /// may have several partitions; each is made once.
    ///
    /// ```
    /// use xpu::{Kernel, Mode, Partition, Runtime};
    /// let rt = Runtime::builder().device_discovery(false).build()?;
    /// let x = rt.tensor(&[4, 2], vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])?.named("x");
    /// let rows = x.partition(&rt, Partition::rows(2))?;
    /// assert_eq!(rows[1].name(), Some("x[1]"));
    /// let negate = Kernel::custom("negate", &[Mode::ReadWrite], |args| {
    ///     args[0].as_f32_mut()?.iter_mut().for_each(|v| *v = -*v);
    ///     Ok(())
    /// });
    /// rt.submit(&negate, &[rows[1].rw()])?; // on the second block of rows...
    /// rt.submit(&negate, &[x.rw()])?;       // ...then on the whole, which sees it
    /// assert_eq!(rt.read::<f32>(&x)?, vec![-1.0, -2.0, -3.0, -4.0, 5.0, 6.0, 7.0, 8.0]);
    /// assert_eq!(rt.read::<f32>(&rows[0])?, vec![-1.0, -2.0, -3.0, -4.0]);
    /// let err = x.partition(&rt, Partition::rows(2)).unwrap_err();
    /// assert!(err.to_string().contains("already partitioned"), "{err}");
    /// # Ok::<(), xpu::Error>(())
    /// ```
    pub fn partition(&self, rt: &Runtime, partition: Partition) -> Result<Parts> {
        let fail = |reason: String| Error::Partition {
            tensor: self.label(),
            partition: partition.to_string(),
            reason,
        };
        if self.inner.runtime != rt.id() {
            return Err(Error::ForeignTensor {
                tensor: self.label(),
            });
        }
        let (regions, grid) = partition.regions(self.shape()).map_err(fail)?;
        family::split(rt, self, &partition, regions, &grid)
    }

    /// The parts [`Tensor::partition`] cut the tensor into with
    /// `partition`, if it did.
    ///
    /// ```
    /// use xpu::{DType, Partition, Runtime};
    /// let rt = Runtime::builder().device_discovery(false).build()?;
    /// let a = rt.zeros(&[4, 4], DType::F32)?;
    /// assert!(a.parts(&Partition::rows(2)).is_none());
    /// let rows = a.partition(&rt, Partition::rows(2))?;
    /// assert_eq!(a.parts(&Partition::rows(2)).unwrap()[1].id(), rows[1].id());
    /// # Ok::<(), xpu::Error>(())
    /// ```
    pub fn parts(&self, partition: &Partition) -> Option<Parts> {
        family::existing(self, partition)
    }
}

/// A part's name: its whole's (or `#id`) and its grid position, `A[2,3]`.
fn part_name(whole: &Tensor, index: &[usize]) -> String {
    let base = match whole.name() {
        Some(name) => name.to_string(),
        None => format!("#{}", whole.id()),
    };
    let position: Vec<String> = index.iter().map(|i| i.to_string()).collect();
    format!("{base}[{}]", position.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extents(p: &Partition, shape: &[usize]) -> Vec<(Vec<usize>, Vec<usize>)> {
        let (regions, _) = p.regions(shape).unwrap();
        regions.into_iter().map(|r| (r.offset, r.shape)).collect()
    }

    #[test]
    fn regions_cover_the_tensor_with_a_smaller_last_block() {
        assert_eq!(
            extents(&Partition::rows(2), &[5, 3]),
            vec![
                (vec![0, 0], vec![2, 3]),
                (vec![2, 0], vec![2, 3]),
                (vec![4, 0], vec![1, 3])
            ]
        );
        assert_eq!(
            extents(&Partition::blocks(2, 2), &[3, 3, 2]),
            vec![
                (vec![0, 0, 0], vec![2, 2, 2]),
                (vec![0, 2, 0], vec![2, 1, 2]),
                (vec![2, 0, 0], vec![1, 2, 2]),
                (vec![2, 2, 0], vec![1, 1, 2])
            ]
        );
        assert_eq!(
            extents(&Partition::bands(2, 1), &[6, 1]),
            vec![
                (vec![0, 0], vec![3, 1]),
                (vec![1, 0], vec![4, 1]),
                (vec![3, 0], vec![3, 1])
            ]
        );
        assert_eq!(
            extents(&Partition::sizes(1, &[1, 3]), &[2, 4]),
            vec![(vec![0, 0], vec![2, 1]), (vec![0, 1], vec![2, 3])]
        );
    }

    #[test]
    fn shapes_that_do_not_fit_are_named() {
        let err = |p: Partition, shape: &[usize]| p.regions(shape).unwrap_err();
        assert_eq!(err(Partition::rows(0), &[4]), "a block size of 0");
        assert_eq!(
            err(Partition::rows(5), &[4]),
            "blocks of 5 do not fit axis 0 of 4"
        );
        assert_eq!(
            err(Partition::along(2, 1), &[4, 4]),
            "axis 2 is outside a tensor of 2 axes"
        );
        assert_eq!(
            err(Partition::blocks(2, 2), &[4]),
            "2-D blocks need at least 2 axes, the tensor has 1"
        );
        assert_eq!(
            err(Partition::sizes(0, &[1, 2]), &[4]),
            "the parts cover 3 of axis 0's 4: they must cover it exactly"
        );
    }

    #[test]
    fn contiguity_follows_row_major_layout() {
        let whole = [4, 6, 3];
        let region = |offset: [usize; 3], shape: [usize; 3]| Region {
            offset: offset.to_vec(),
            shape: shape.to_vec(),
            index: vec![],
        };
        assert_eq!(
            region([2, 0, 0], [2, 6, 3]).contiguous_start(&whole),
            Some(36)
        );
        assert_eq!(
            region([1, 2, 0], [1, 3, 3]).contiguous_start(&whole),
            Some(24)
        );
        assert_eq!(region([0, 2, 0], [2, 3, 3]).contiguous_start(&whole), None);
        assert_eq!(
            region([0, 0, 1], [1, 1, 2]).contiguous_start(&whole),
            Some(1)
        );
        assert_eq!(
            region([0, 0, 0], [4, 6, 3]).contiguous_start(&whole),
            Some(0)
        );
    }
}
