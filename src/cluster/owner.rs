//! Owner-computes across ranks, as StarPU-MPI places a task graph: every
//! rank sees the same tasks in the same order, each tensor has an owner
//! rank, and a task runs on the rank that owns what it writes. A tensor
//! it reads that its rank does not hold in its current version is sent
//! there by its owner, once: the copy stays valid on that rank (a cached
//! replica) until the owner writes the tensor again, the same rule as
//! between memory nodes. A tensor written away from its owner (a task
//! writing tensors of two owners) goes back to its owner afterwards.
//!
//! Since every rank plans the same tasks in the same order, each works
//! out the same plan alone: which tasks it runs, what it sends and what
//! it receives, with no message to agree on them.
//!
//! ```
//! use xpu::cluster::owner::{Copy, OwnerComputes};
//! use xpu::Mode;
//! // Tensor 'a' on rank 0, 'b' and 'c' on rank 1.
//! let mut plan = OwnerComputes::default();
//! let first = plan.task(&[('a', Mode::Read, 0), ('c', Mode::Write, 1)]);
//! assert_eq!(first.rank, 1);
//! assert_eq!(first.before, vec![Copy { tensor: 'a', from: 0, to: 1 }]);
//! // Rank 1 still holds 'a': no second copy.
//! let second = plan.task(&[('a', Mode::Read, 0), ('b', Mode::ReadWrite, 1)]);
//! assert!(second.before.is_empty());
//! // Rank 0 writes 'a': rank 1's copy is stale, the next reader there needs a new one.
//! plan.task(&[('a', Mode::ReadWrite, 0)]);
//! let third = plan.task(&[('a', Mode::Read, 0), ('b', Mode::ReadWrite, 1)]);
//! assert_eq!(third.before.len(), 1);
//! ```

use std::collections::HashMap;
use std::hash::Hash;

use smallvec::SmallVec;

use crate::kernel::Mode;

/// One tensor sent from one rank to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copy<K> {
    pub tensor: K,
    pub from: usize,
    pub to: usize,
}

/// Where one task runs and the copies around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed<K> {
    /// The rank that runs it: the owner of the first tensor it writes
    /// (of the first it reads, if it writes none).
    pub rank: usize,
    /// Copies to receive on `rank` before it runs.
    pub before: Vec<Copy<K>>,
    /// Copies back to their owners after it ran (tensors it wrote that
    /// `rank` does not own).
    pub after: Vec<Copy<K>>,
}

/// The ranks holding each tensor's current version, as tasks are planned
/// in order; tensors are keyed by `K`. A tensor never seen is held by its
/// owner only.
#[derive(Debug, Clone)]
pub struct OwnerComputes<K> {
    holders: HashMap<K, SmallVec<[usize; 4]>>,
}

impl<K> Default for OwnerComputes<K> {
    fn default() -> Self {
        OwnerComputes {
            holders: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq + std::marker::Copy> OwnerComputes<K> {
    /// Plans the next task, given each access as (tensor, mode, owner
    /// rank). A task with no access runs on rank 0.
    pub fn task(&mut self, accesses: &[(K, Mode, usize)]) -> Placed<K> {
        let rank = accesses
            .iter()
            .find(|a| a.1.writes())
            .or(accesses.first())
            .map_or(0, |a| a.2);
        let before = accesses
            .iter()
            .filter(|a| a.1.reads())
            .filter_map(|&(tensor, _, owner)| self.bring(tensor, owner, rank))
            .collect();
        let mut after = Vec::new();
        for &(tensor, _, owner) in accesses.iter().filter(|a| a.1.writes()) {
            let held = self.holders.entry(tensor).or_default();
            held.clear();
            held.push(rank);
            if owner != rank {
                held.push(owner);
                after.push(Copy {
                    tensor,
                    from: rank,
                    to: owner,
                });
            }
        }
        Placed {
            rank,
            before,
            after,
        }
    }

    /// Plans a read of `tensor` (owned by `owner`) on rank `to`: the copy
    /// from its owner that `to` needs first, unless it holds the current
    /// version already; `to` holds it after.
    pub fn bring(&mut self, tensor: K, owner: usize, to: usize) -> Option<Copy<K>> {
        let held = self
            .holders
            .entry(tensor)
            .or_insert_with(|| SmallVec::from_elem(owner, 1));
        if held.contains(&to) {
            return None;
        }
        held.push(to);
        Some(Copy {
            tensor,
            from: owner,
            to,
        })
    }

    /// Whether `rank` holds the current version of `tensor` (its owner
    /// does, for a tensor never seen).
    pub fn holds(&self, tensor: K, rank: usize, owner: usize) -> bool {
        self.holders
            .get(&tensor)
            .map_or(rank == owner, |h| h.contains(&rank))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_writing_a_tensor_owned_elsewhere_sends_it_back() {
        let mut plan = OwnerComputes::default();
        // Runs on rank 2 (owner of x); y (rank 0's) comes back afterwards.
        let placed = plan.task(&[("x", Mode::Write, 2), ("y", Mode::ReadWrite, 0)]);
        assert_eq!(placed.rank, 2);
        assert_eq!(
            placed.before,
            vec![Copy {
                tensor: "y",
                from: 0,
                to: 2
            }]
        );
        assert_eq!(
            placed.after,
            vec![Copy {
                tensor: "y",
                from: 2,
                to: 0
            }]
        );
        assert!(plan.holds("y", 0, 0) && plan.holds("y", 2, 0) && !plan.holds("y", 1, 0));
        // A reader on rank 2 or 0 needs nothing; one on rank 1 does.
        assert!(plan
            .task(&[("y", Mode::Read, 0), ("z", Mode::Write, 0)])
            .before
            .is_empty());
        assert_eq!(
            plan.task(&[("y", Mode::Read, 0), ("w", Mode::Write, 1)])
                .before
                .len(),
            1
        );
    }

    #[test]
    fn a_task_with_no_write_runs_where_its_first_input_lives() {
        let mut plan = OwnerComputes::default();
        let placed = plan.task(&[("x", Mode::Read, 3), ("y", Mode::Read, 1)]);
        assert_eq!(placed.rank, 3);
        assert_eq!(placed.before.len(), 1);
        assert!(placed.after.is_empty());
        assert_eq!(plan.task(&[]).rank, 0);
    }
}
