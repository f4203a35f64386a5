//! A task graph known in advance, analysed: the dependencies that the
//! runtime would derive from each task's accesses (read after write,
//! write after read, write after write, in submission order), and each
//! task's bottom level (its own weight plus the heaviest chain after it).
//! [`crate::Batch`] ranks tasks with it; the simulator (`crate::sim`)
//! builds its graphs and lower bounds with it.

use std::collections::HashMap;

use crate::kernel::Mode;

/// The largest priority a ranking gives.
const TOP_PRIORITY: f64 = 1_000_000.0;

/// For each task, the later tasks that depend on it through the data it
/// accesses: `accesses(i)` lists task `i`'s (data id, mode) pairs, tasks
/// in submission order.
pub(crate) fn successors<I>(tasks: usize, accesses: impl Fn(usize) -> I) -> Vec<Vec<usize>>
where
    I: IntoIterator<Item = (u64, Mode)>,
{
    #[derive(Default)]
    struct DataState {
        writer: Option<usize>,
        readers: Vec<usize>,
    }
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); tasks];
    let mut data: HashMap<u64, DataState> = HashMap::new();
    for i in 0..tasks {
        for (id, mode) in accesses(i) {
            let s = data.entry(id).or_default();
            if mode.reads() {
                if let Some(w) = s.writer {
                    out[w].push(i);
                }
            }
            if mode.writes() {
                for &r in &s.readers {
                    if r != i {
                        out[r].push(i);
                    }
                }
                if let Some(w) = s.writer {
                    out[w].push(i);
                }
                s.writer = Some(i);
                s.readers.clear();
            } else {
                s.readers.push(i);
            }
        }
    }
    for s in &mut out {
        s.sort_unstable();
        s.dedup();
    }
    out
}

/// Each task's bottom level: its weight plus the largest bottom level of
/// its successors. Submission order is a topological order, so one walk
/// backwards does it.
pub(crate) fn bottom_levels(weights: &[f64], successors: &[Vec<usize>]) -> Vec<f64> {
    let mut level = vec![0.0f64; weights.len()];
    for i in (0..weights.len()).rev() {
        let after = successors[i].iter().map(|&s| level[s]).fold(0.0, f64::max);
        level[i] = weights[i] + after;
    }
    level
}

/// Bottom levels as priorities, scaled to 1..=1,000,000 (the longest
/// remaining chain highest).
pub(crate) fn priorities(levels: &[f64]) -> Vec<i32> {
    let top = levels.iter().copied().fold(0.0, f64::max);
    levels
        .iter()
        .map(|l| {
            if top > 0.0 {
                ((l / top) * TOP_PRIORITY).round().max(1.0) as i32
            } else {
                1
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_follow_the_data_and_levels_the_longest_chain() {
        use Mode::*;
        // 0 writes a; 1 reads a writes b; 2 reads a (parallel to 1);
        // 3 writes a (after both readers); 4 reads b.
        let tasks: Vec<Vec<(u64, Mode)>> = vec![
            vec![(1, Write)],
            vec![(1, Read), (2, Write)],
            vec![(1, Read)],
            vec![(1, Write)],
            vec![(2, Read)],
        ];
        let succ = successors(tasks.len(), |i| tasks[i].clone());
        assert_eq!(
            succ,
            vec![vec![1, 2, 3], vec![3, 4], vec![3], vec![], vec![]]
        );
        let levels = bottom_levels(&[1.0, 2.0, 5.0, 1.0, 3.0], &succ);
        assert_eq!(levels, vec![7.0, 5.0, 6.0, 1.0, 3.0]);
        let p = priorities(&levels);
        assert_eq!(p[0], 1_000_000);
        assert!(p[2] > p[1] && p[1] > p[4] && p[4] > p[3]);
    }
}
