//! A partitioned tensor, its parts and their parts: a family, whose state
//! says which members hold current content, and which scatters and
//! gathers a task needs before it.
//!
//! Every member either holds its own content, or has one *active* split
//! whose parts hold it (recursively), or both (after a read made them
//! agree). A part is *live* when its parent's active split is the one it
//! belongs to, and so on up to the whole; the flags of a member that is
//! not live mean nothing. Before a task, each member it names is made to
//! hold its content: a live member whose content is in its parts gathers
//! them; a member that is not live has its parent made to hold, then the
//! parent's split scattered (a task per part). After a task that writes a member, the
//! member holds, its parts are stale, and its ancestors hold no more.
//!
//! The state follows submission order, not execution: the scatters and
//! gathers it asks for are tasks, and the graph orders them between the
//! tasks on the whole and on the parts. They run on CPU units, on the
//! host replicas: so before any member's host memory that overlaps a
//! part's is written, the part's valid content has been brought to the
//! host, and a stale device copy is never the only one left to be written
//! back over it. A family's lock is held from a
//! task's planning until its dependencies are linked, so that concurrent
//! submissions see the state in the order their tasks are linked.
//!
//! Members share memory (a contiguous part's host slice and device view
//! lie in its whole's), so a task that writes a member also waits for the
//! unfinished readers of every member sharing elements with it.

use std::sync::{Arc, Weak};

use parking_lot::lock_api::ArcMutexGuard;
use parking_lot::{Mutex, RawMutex};
use smallvec::SmallVec;

use super::copy::{self, Direction};
use super::{part_name, Partition, Parts, Region};
use crate::error::{Error, Result};
use crate::graph::TaskNode;
use crate::kernel::Kernel;
use crate::memory::{HostBuffer, ReplicaSet, ReplicaState};
use crate::runtime::Runtime;
use crate::tensor::{Access, Tensor, TensorInner};

pub(crate) type Family = Mutex<FamilyState>;

/// How a tensor belongs to a family.
pub(crate) enum FamilyLink {
    /// The tensor that was partitioned first: it owns the family.
    Root(Arc<Family>),
    /// A part, at any depth. Once the root is gone, the part is a tensor
    /// of its own that holds what it last held.
    Part {
        family: Weak<Family>,
        member: usize,
        /// Its parent and its byte offset there, when it is contiguous in
        /// it (its memory may then be a range of the parent's).
        within: Option<(Weak<TensorInner>, usize)>,
    },
}

/// A family and a member's place in it.
type Membership = (Arc<Family>, usize);

impl FamilyLink {
    fn resolve(&self) -> Option<Membership> {
        match self {
            FamilyLink::Root(family) => Some((family.clone(), 0)),
            FamilyLink::Part { family, member, .. } => Some((family.upgrade()?, *member)),
        }
    }
}

pub(crate) struct FamilyState {
    members: Vec<Member>,
}

struct Member {
    tensor: MemberTensor,
    parent: Option<Link>,
    splits: Vec<Split>,
    /// Its own content is current.
    holds: bool,
    /// The split whose parts hold current content.
    active: Option<usize>,
    /// Tasks (not scatters or gathers) and caller reads that read it and
    /// may not have finished.
    readers: Vec<Weak<TaskNode>>,
}

/// The root is held weakly (it owns the family); parts strongly, so that
/// a part the caller dropped still keeps its content for a gather.
enum MemberTensor {
    Root(Weak<TensorInner>),
    Part(Tensor),
}

/// A member's place: its parent and which of the parent's splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Link {
    member: usize,
    split: usize,
}

struct Split {
    partition: Partition,
    parts: Vec<usize>,
    grid: Vec<usize>,
    /// Per part, the task that copies the whole into it.
    scatters: Vec<Kernel>,
    /// `None` for overlapping parts: they are never written, so never gathered.
    gather: Option<Kernel>,
}

/// The parts `whole` was cut into by `partition`, if it was.
pub(super) fn existing(whole: &Tensor, partition: &Partition) -> Option<Parts> {
    let (family, member) = whole.inner.family.get()?.resolve()?;
    let state = family.lock();
    let split = state.members[member]
        .splits
        .iter()
        .find(|s| s.partition == *partition)?;
    let tensors = split
        .parts
        .iter()
        .map(|&p| state.tensor(p))
        .collect::<Option<Vec<Tensor>>>()?;
    Some(Parts {
        tensors,
        grid: split.grid.clone(),
    })
}

/// Cuts `whole` into parts at `regions` (a grid of `grid`) and adds them
/// to its family.
pub(super) fn split(
    rt: &Runtime,
    whole: &Tensor,
    partition: &Partition,
    regions: Vec<Region>,
    grid: &[usize],
) -> Result<Parts> {
    let fail = |reason: &str| Error::Partition {
        tensor: whole.label(),
        partition: partition.to_string(),
        reason: reason.to_string(),
    };
    let inner = &whole.inner;
    let link = inner.family.get_or_init(|| {
        let root = Member {
            tensor: MemberTensor::Root(Arc::downgrade(inner)),
            parent: None,
            splits: Vec::new(),
            holds: has_content(inner),
            active: None,
            readers: Vec::new(),
        };
        FamilyLink::Root(Arc::new(Mutex::new(FamilyState {
            members: vec![root],
        })))
    });
    let (family, member) = link
        .resolve()
        .ok_or_else(|| fail("the tensor it is a part of was dropped"))?;
    let mut state = family.lock();
    if state.members[member]
        .splits
        .iter()
        .any(|s| s.partition == *partition)
    {
        return Err(fail(
            "it is already partitioned this way: use the parts that call returned (or Tensor::parts)",
        ));
    }
    let memory = &inner.memory;
    let buffer = memory.host_buffer(inner)?;
    let element = inner.dtype.size();
    let first = state.members.len();
    let mut parts = Vec::with_capacity(regions.len());
    for region in &regions {
        let bytes = region.len() * element;
        let offset = region.contiguous_start(&inner.shape).map(|s| s * element);
        let host = match offset {
            Some(offset) => HostBuffer::slice(&buffer, offset, bytes)?,
            None => memory.host_alloc(None, bytes)?,
        };
        let replicas = ReplicaSet::with_host_buffer(Arc::new(host), ReplicaState::Invalid);
        let part = rt
            .new_tensor(&region.shape, inner.dtype, replicas)
            .named(&part_name(whole, &region.index));
        let _ = part.inner.family.set(FamilyLink::Part {
            family: Arc::downgrade(&family),
            member: first + parts.len(),
            within: offset.map(|offset| (Arc::downgrade(inner), offset)),
        });
        parts.push(part);
    }
    let copy_task = |direction, regions: &[Region]| {
        copy::copy_task(direction, &inner.shape, inner.id, element, regions, memory)
    };
    let scatters = regions
        .iter()
        .map(|r| copy_task(Direction::Scatter, std::slice::from_ref(r)))
        .collect::<Result<Vec<Kernel>>>()?;
    let gather = match partition.overlaps() {
        true => None,
        false => Some(copy_task(Direction::Gather, &regions)?),
    };
    let index = state.members[member].splits.len();
    state.members[member].splits.push(Split {
        partition: partition.clone(),
        parts: (first..first + parts.len()).collect(),
        grid: grid.to_vec(),
        scatters,
        gather: gather.clone(),
    });
    state.members.extend(parts.iter().map(|p| Member {
        tensor: MemberTensor::Part(p.clone()),
        parent: Some(Link {
            member,
            split: index,
        }),
        splits: Vec::new(),
        holds: false,
        active: None,
        readers: Vec::new(),
    }));
    // A member with no content yet gets it from the parts written first.
    let empty = !state.members[member].holds && state.members[member].active.is_none();
    if empty && gather.is_some() && state.is_live(member) {
        state.members[member].active = Some(index);
    }
    Ok(Parts {
        tensors: parts,
        grid: grid.to_vec(),
    })
}

/// The tensors whose memory `t` lies in, nearest first, with `t`'s byte
/// offset in each: its parent while it is contiguous there, that
/// parent's parent while the parent is contiguous in it, and so on.
pub(crate) fn enclosing(t: &TensorInner) -> SmallVec<[(Arc<TensorInner>, usize); 2]> {
    let mut chain: SmallVec<[(Arc<TensorInner>, usize); 2]> = SmallVec::new();
    let mut offset = 0;
    loop {
        let link = match chain.last() {
            Some((parent, _)) => parent.family.get(),
            None => t.family.get(),
        };
        let Some(FamilyLink::Part {
            within: Some((parent, at)),
            ..
        }) = link
        else {
            return chain;
        };
        let Some(parent) = parent.upgrade() else {
            return chain;
        };
        offset += at;
        chain.push((parent, offset));
    }
}

/// Whether a tensor being partitioned has content, or will have once the
/// tasks submitted so far ran (a failed writer's poison counts: it must
/// reach the parts).
fn has_content(t: &TensorInner) -> bool {
    t.replicas.lock().valid_source().is_some()
        || t.poison.get().is_some()
        || t.deps.lock().has_writer()
}

impl FamilyState {
    fn tensor(&self, member: usize) -> Option<Tensor> {
        match &self.members[member].tensor {
            MemberTensor::Root(inner) => inner.upgrade().map(|inner| Tensor { inner }),
            MemberTensor::Part(t) => Some(t.clone()),
        }
    }

    fn is_live(&self, mut member: usize) -> bool {
        while let Some(link) = self.members[member].parent {
            if self.members[link.member].active != Some(link.split) {
                return false;
            }
            member = link.member;
        }
        true
    }

    /// The links from the root down to `member`.
    fn path(&self, mut member: usize) -> SmallVec<[(Link, usize); 4]> {
        let mut path = SmallVec::new();
        while let Some(link) = self.members[member].parent {
            path.push((link, member));
            member = link.member;
        }
        path.reverse();
        path
    }

    /// Makes `member` hold its content, submitting the scatters and
    /// gathers that takes.
    fn ensure(&mut self, member: usize, submit: &mut Submit<'_>) -> Result<()> {
        if self.is_live(member) {
            let m = &self.members[member];
            let Some(split) = m.active.filter(|_| !m.holds) else {
                return Ok(());
            };
            let parts = m.splits[split].parts.clone();
            for &p in &parts {
                self.ensure(p, submit)?;
            }
            let (Some(gather), Some(whole)) = (
                self.members[member].splits[split].gather.clone(),
                self.tensor(member),
            ) else {
                return Ok(());
            };
            let mut accesses: Vec<Access> = parts
                .iter()
                .filter_map(|&p| self.tensor(p))
                .map(|t| t.read())
                .collect();
            accesses.push(whole.write());
            submit(&gather, &accesses)?;
            self.members[member].holds = true;
            return Ok(());
        }
        let Some(link) = self.members[member].parent else {
            return Ok(());
        };
        self.ensure(link.member, submit)?;
        let holds = self.members[link.member].holds;
        let parts = self.members[link.member].splits[link.split].parts.clone();
        if holds {
            let Some(whole) = self.tensor(link.member) else {
                return Ok(());
            };
            // A task per part: they run side by side, and a task on one
            // part waits for its own copy only.
            let scatters = self.members[link.member].splits[link.split]
                .scatters
                .clone();
            for (scatter, &p) in scatters.iter().zip(&parts) {
                if let Some(part) = self.tensor(p) {
                    submit(scatter, &[whole.read(), part.write()])?;
                }
            }
        }
        for &p in &parts {
            self.members[p].holds = holds;
            self.members[p].active = None;
        }
        self.members[link.member].active = Some(link.split);
        Ok(())
    }

    /// After a task that writes `member`: it alone holds its content.
    fn written(&mut self, member: usize) {
        self.members[member].holds = true;
        self.members[member].active = None;
        let mut at = member;
        while let Some(link) = self.members[at].parent {
            self.members[link.member].holds = false;
            self.members[link.member].active = Some(link.split);
            at = link.member;
        }
    }

    /// The unfinished tasks (and caller reads) that read a member sharing
    /// elements with `member`: its whole, its parts, parts of another
    /// partition. A task that writes `member` waits for them, as for the
    /// readers of its own tensor, since the members may share memory.
    ///
    /// Scatters and gathers are not among them: what one of them reads
    /// goes only into a member that shares elements with `member` (so is
    /// stale once `member` is written, and copied again before its next
    /// use) or into elements that `member` does not have.
    fn readers_before_writing(&self, member: usize) -> SmallVec<[Arc<TaskNode>; 4]> {
        let mut readers = SmallVec::new();
        for other in self.overlapping(member) {
            readers.extend(
                self.members[other]
                    .readers
                    .iter()
                    .filter_map(Weak::upgrade)
                    .filter(|r| !r.is_done()),
            );
        }
        readers
    }

    /// The members that may share elements with `member` (those
    /// [`FamilyState::may_overlap`] finds, without looking at the
    /// others): its ancestors, its descendants, and everything under
    /// another partition of one of its ancestors.
    fn overlapping(&self, member: usize) -> Vec<usize> {
        let mut found = Vec::new();
        self.under(member, None, &mut found);
        let mut at = member;
        while let Some(link) = self.members[at].parent {
            found.push(link.member);
            self.under(link.member, Some(link.split), &mut found);
            at = link.member;
        }
        found
    }

    /// Pushes the parts of `member`, at any depth, onto `found`, but for
    /// those under its split `except`.
    fn under(&self, member: usize, except: Option<usize>, found: &mut Vec<usize>) {
        for (i, split) in self.members[member].splits.iter().enumerate() {
            if Some(i) == except {
                continue;
            }
            for &part in &split.parts {
                found.push(part);
                self.under(part, None, found);
            }
        }
    }

    /// Refuses a write to a part of overlapping parts.
    fn check_write(&self, member: usize, tensor: &Tensor) -> Result<()> {
        for (link, _) in self.path(member) {
            let split = &self.members[link.member].splits[link.split];
            if split.gather.is_none() {
                let whole = self
                    .tensor(link.member)
                    .map_or_else(|| tensor.label(), |t| t.label());
                return Err(Error::ReadOnlyPart {
                    tensor: tensor.label(),
                    whole,
                    partition: split.partition.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Whether `a` and `b` may share elements: one contains the other, or
    /// they are parts of two different partitions of one tensor.
    fn may_overlap(&self, a: usize, b: usize) -> bool {
        let (pa, pb) = (self.path(a), self.path(b));
        let common = pa.iter().zip(&pb).take_while(|(x, y)| x == y).count();
        match (pa.get(common), pb.get(common)) {
            (Some((x, _)), Some((y, _))) => x != y,
            _ => true,
        }
    }
}

/// Submits one scatter or gather on these accesses.
pub(crate) type Submit<'a> = dyn FnMut(&Kernel, &[Access]) -> Result<()> + 'a;

/// The families a task touches, locked while it is planned and linked.
pub(crate) struct Coherence {
    locked: SmallVec<[ArcMutexGuard<RawMutex, FamilyState>; 1]>,
    /// Per access: the index in `locked` of its family and its member.
    members: SmallVec<[Option<(usize, usize)>; 4]>,
}

impl Coherence {
    /// Locks the families of the tensors in `accesses` (in address order,
    /// so that two tasks never wait for each other); `None` when no tensor
    /// belongs to one.
    pub fn lock(accesses: &[Access]) -> Option<Coherence> {
        if accesses
            .iter()
            .all(|a| a.tensor.inner.family.get().is_none())
        {
            return None;
        }
        let links: SmallVec<[Option<Membership>; 4]> = accesses
            .iter()
            .map(|a| a.tensor.inner.family.get().and_then(FamilyLink::resolve))
            .collect();
        let mut families: SmallVec<[Arc<Family>; 1]> =
            links.iter().flatten().map(|(f, _)| f.clone()).collect();
        families.sort_by_key(|f| Arc::as_ptr(f) as usize);
        families.dedup_by(|a, b| Arc::ptr_eq(a, b));
        let members = links
            .iter()
            .map(|link| {
                let (family, member) = link.as_ref()?;
                let slot = families.iter().position(|f| Arc::ptr_eq(f, family))?;
                Some((slot, *member))
            })
            .collect();
        let locked = families.iter().map(|f| f.lock_arc()).collect();
        Some(Coherence { locked, members })
    }

    /// Checks the task's accesses against the partitions (no write to
    /// overlapping parts, no write beside a tensor that shares elements
    /// with it), then makes every member it names hold its content.
    pub fn prepare(&mut self, accesses: &[Access], submit: &mut Submit<'_>) -> Result<()> {
        for (i, a) in accesses.iter().enumerate() {
            let Some((family, member)) = self.members[i] else {
                continue;
            };
            let state = &self.locked[family];
            if a.mode.writes() {
                state.check_write(member, &a.tensor)?;
            }
            for (j, b) in accesses.iter().enumerate().skip(i + 1) {
                let Some((other_family, other)) = self.members[j] else {
                    continue;
                };
                let written = a.mode.writes() || b.mode.writes();
                if written
                    && other_family == family
                    && other != member
                    && state.may_overlap(member, other)
                {
                    let (w, o) = if a.mode.writes() { (a, b) } else { (b, a) };
                    return Err(Error::PartsOverlap {
                        tensor: w.tensor.label(),
                        other: o.tensor.label(),
                    });
                }
            }
        }
        for slot in self.members.clone().into_iter().flatten() {
            let (family, member) = slot;
            self.locked[family].ensure(member, submit)?;
        }
        Ok(())
    }

    /// The unfinished readers of tensors that share elements with one the
    /// task writes (see `FamilyState::readers_before_writing`): the task
    /// waits for them.
    pub fn readers_before(&self, accesses: &[Access]) -> SmallVec<[Arc<TaskNode>; 4]> {
        let mut readers = SmallVec::new();
        for (a, slot) in accesses.iter().zip(&self.members) {
            if let (true, Some((family, member))) = (a.mode.writes(), slot) {
                readers.extend(self.locked[*family].readers_before_writing(*member));
            }
        }
        readers
    }

    /// Records what `task`, now linked, reads and writes; unlocks the
    /// families.
    pub fn commit(mut self, accesses: &[Access], task: &Arc<TaskNode>) {
        for (a, slot) in accesses.iter().zip(&self.members) {
            let Some((family, member)) = *slot else {
                continue;
            };
            let state = &mut self.locked[family];
            if a.mode.writes() {
                state.written(member);
            } else {
                let readers = &mut state.members[member].readers;
                readers.retain(|r| r.upgrade().is_some_and(|r| !r.is_done()));
                readers.push(Arc::downgrade(task));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DType;

    #[test]
    fn the_members_found_overlapping_are_those_that_may_overlap() {
        let rt = Runtime::builder()
            .cpu_units(1)
            .device_discovery(false)
            .build()
            .unwrap();
        let w = rt.zeros(&[8, 6], DType::F32).unwrap();
        let rows = w.partition(&rt, Partition::rows(3)).unwrap();
        let tiles = w.partition(&rt, Partition::blocks(3, 4)).unwrap();
        w.partition(&rt, Partition::bands(3, 1)).unwrap();
        rows[1].partition(&rt, Partition::cols(2)).unwrap();
        let nested = tiles[0].partition(&rt, Partition::rows(2)).unwrap();
        nested[0].partition(&rt, Partition::rows(1)).unwrap();
        let Some(FamilyLink::Root(family)) = w.inner.family.get() else {
            panic!("W has no family");
        };
        let state = family.lock();
        let count = state.members.len();
        assert_eq!(count, 20, "the whole and 19 parts");
        for member in 0..count {
            let mut found = state.overlapping(member);
            found.sort_unstable();
            let expected: Vec<usize> = (0..count)
                .filter(|&o| o != member && state.may_overlap(member, o))
                .collect();
            assert_eq!(found, expected, "member {member}");
        }
    }
}
