//! The copy tasks between a whole and its parts: `scatter_part` (the
//! whole read, a part written) and `gather_parts` (every part read, the
//! whole written). Host kernels: they run on CPU units, and skip a
//! part that shares the whole's memory at its place.

use std::sync::Arc;
use std::time::Instant;

use super::Region;
use crate::error::Result;
use crate::kernel::{Arg, Kernel, Mode};
use crate::memory::MemoryManager;
use crate::unit::HOST;

/// Which way a copy task moves the data.
#[derive(Clone, Copy)]
pub(super) enum Direction {
    /// The whole read, the parts written (`scatter_part`: one part each).
    Scatter,
    /// Every part read, the whole written (`gather_parts`).
    Gather,
}

/// The geometry a copy task works on, and where it counts its bytes.
struct Layout {
    whole: Vec<usize>,
    whole_id: u64,
    element: usize,
    regions: Vec<Region>,
    memory: Arc<MemoryManager>,
}

/// The task that copies between a whole of `whole` elements (tensor
/// `whole_id`, `element` bytes each) and its parts at `regions`.
pub(super) fn copy_task(
    direction: Direction,
    whole: &[usize],
    whole_id: u64,
    element: usize,
    regions: &[Region],
    memory: &Arc<MemoryManager>,
) -> Result<Kernel> {
    let layout = Layout {
        whole: whole.to_vec(),
        whole_id,
        element,
        regions: regions.to_vec(),
        memory: memory.clone(),
    };
    let parts = vec![
        match direction {
            Direction::Scatter => Mode::Write,
            Direction::Gather => Mode::Read,
        };
        layout.regions.len()
    ];
    let (name, modes) = match direction {
        Direction::Scatter => ("scatter_part", [&[Mode::Read][..], &parts].concat()),
        Direction::Gather => ("gather_parts", [&parts[..], &[Mode::Write]].concat()),
    };
    Kernel::define(name, &modes)
        .flops(|_| 0.0)
        .cpu(move |args| run(direction, &layout, args))
        .build()
}

fn run(direction: Direction, layout: &Layout, args: &mut [Arg<'_>]) -> Result<()> {
    let start = (Instant::now(), layout.memory.clock().ticks());
    let (whole, parts) = match direction {
        Direction::Scatter => {
            let (whole, parts) = args.split_at_mut(1);
            (&mut whole[0], parts)
        }
        Direction::Gather => {
            let (parts, whole) = args.split_at_mut(args.len() - 1);
            (&mut whole[0], parts)
        }
    };
    let e = layout.element;
    let mut copied = 0;
    for (part, region) in parts.iter_mut().zip(&layout.regions) {
        let start_in_whole = region.contiguous_start(&layout.whole);
        let (whole_bytes, part_bytes) = (whole.host()?.as_ptr(), part.host()?.as_ptr());
        if start_in_whole.is_some_and(|s| whole_bytes.wrapping_add(s * e) == part_bytes) {
            continue;
        }
        match direction {
            Direction::Scatter => {
                let from = whole.host()?;
                let to = part.host_mut()?;
                for_each_run(&layout.whole, region, |w, p, n| {
                    to[p * e..(p + n) * e].copy_from_slice(&from[w * e..(w + n) * e]);
                });
            }
            Direction::Gather => {
                let from = part.host()?;
                let to = whole.host_mut()?;
                for_each_run(&layout.whole, region, |w, p, n| {
                    to[w * e..(w + n) * e].copy_from_slice(&from[p * e..(p + n) * e]);
                });
            }
        }
        copied += region.len() * e;
    }
    if copied > 0 {
        layout
            .memory
            .copied_within(HOST, layout.whole_id, copied, start);
    }
    Ok(())
}

/// Calls `f(whole_start, part_start, len)` for each run of elements that
/// is contiguous in both the whole (of shape `whole`) and the part at
/// `region`, in the part's order.
fn for_each_run(whole: &[usize], region: &Region, mut f: impl FnMut(usize, usize, usize)) {
    let rank = whole.len();
    // Axes after the last one the part cuts are whole, so a run spans the
    // cut axis and everything after it.
    let cut = (0..rank)
        .rev()
        .find(|&d| region.shape[d] != whole[d])
        .unwrap_or(0);
    let run: usize = region.shape[cut..].iter().product();
    let mut strides = vec![1; rank];
    for d in (0..rank.saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * whole[d + 1];
    }
    let outer: usize = region.shape[..cut].iter().product();
    let mut index = vec![0; cut];
    for i in 0..outer {
        let w = (0..rank)
            .map(|d| (region.offset[d] + index.get(d).copied().unwrap_or(0)) * strides[d])
            .sum();
        f(w, i * run, run);
        for d in (0..cut).rev() {
            index[d] += 1;
            if index[d] < region.shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_walk_a_block_in_row_major_order() {
        let region = Region {
            offset: vec![1, 2, 0],
            shape: vec![2, 2, 3],
            index: vec![],
        };
        let mut runs = Vec::new();
        for_each_run(&[4, 5, 3], &region, |w, p, n| runs.push((w, p, n)));
        // rows 1 and 2, columns 2..4, all 3 channels: two runs of 6
        assert_eq!(runs, vec![(15 + 6, 0, 6), (30 + 6, 6, 6)]);
        let whole = Region {
            offset: vec![0, 0],
            shape: vec![2, 2],
            index: vec![],
        };
        let mut runs = Vec::new();
        for_each_run(&[2, 2], &whole, |w, p, n| runs.push((w, p, n)));
        assert_eq!(runs, vec![(0, 0, 4)]);
    }
}
