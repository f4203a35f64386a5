//! One task graph across ranks, as StarPU-MPI runs one: every rank runs
//! the same program and submits the same tasks in the same order; each
//! tensor has an owner rank; a task runs on the rank that owns what it
//! writes ([`owner`](super::owner)), and the other ranks only note what
//! it changes. A tensor a task needs on a rank that lacks its current
//! version is sent by its owner and kept there until the owner writes it
//! again.
//!
//! Each copy becomes two [external tasks](crate::External) in the ranks'
//! graphs: on the sender, a read that is ready once the tensor's last
//! writer there has finished; on the receiver, a write that the tasks
//! reading the copy wait for. A progress thread per rank sends what is
//! ready and matches what arrives, so workers never block on another
//! rank, and computation goes on while tensors travel. Messages carry the
//! copy's number in the plan, which every rank works out alike.
//!
//! How bytes travel is a [`Transport`]: MPI between processes, or
//! [`Threads`] between threads of one process (tests, and trying a
//! distribution on one machine).
//!
//! ```
//! use xpu::cluster::ranks::{Ranks, Threads};
//! use xpu::{DType, Kernel, BinaryOp, Runtime};
//! let handles: Vec<_> = Threads::group(2)
//!     .into_iter()
//!     .map(|transport| {
//!         std::thread::spawn(move || -> xpu::Result<Vec<f32>> {
//!             let rt = Runtime::builder().cpu_units(1).device_discovery(false).build()?;
//!             let ranks = Ranks::new(rt, transport);
//!             // a on rank 0, b and c on rank 1: the add runs on rank 1,
//!             // and a travels there.
//!             let a = ranks.tensor(0, &[4], || vec![1.0f32; 4])?;
//!             let b = ranks.tensor(1, &[4], || vec![2.0f32; 4])?;
//!             let c = ranks.empty(1, &[4], DType::F32)?;
//!             ranks.submit(&Kernel::Binary(BinaryOp::Add), &[a.read(), b.read(), c.write()])?;
//!             let sum = ranks.fetch::<f32>(&c)?;
//!             ranks.finish()?;
//!             Ok(sum)
//!         })
//!     })
//!     .collect();
//! for h in handles {
//!     assert_eq!(h.join().unwrap()?, vec![3.0; 4]);
//! }
//! # Ok::<(), xpu::Error>(())
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;
use smallvec::SmallVec;

use super::owner::{Copy, OwnerComputes};
use crate::dtype::{DType, Element};
use crate::error::{Error, Result};
use crate::external::External;
use crate::kernel::{ArgMeta, Kernel, Mode};
use crate::runtime::{Runtime, Task};
use crate::tensor::Tensor;

/// How ranks exchange bytes. Messages between two ranks may arrive in any
/// order: each says which copy it is.
pub trait Transport: Send + Sync + 'static {
    /// This process's rank.
    fn rank(&self) -> usize;
    /// Ranks in all.
    fn ranks(&self) -> usize;
    /// Starts sending `message` to rank `to`; returns before it arrives.
    fn send(&self, to: usize, message: Vec<u8>) -> Result<()>;
    /// A message that has arrived, with the rank it came from, if any.
    fn try_recv(&self) -> Result<Option<(usize, Vec<u8>)>>;
    /// Waits until every message sent has left this rank.
    fn flush(&self) -> Result<()> {
        Ok(())
    }
}

/// Ranks as threads of one process, exchanging messages over channels.
pub struct Threads {
    rank: usize,
    peers: Vec<Sender<(usize, Vec<u8>)>>,
    inbox: Mutex<Receiver<(usize, Vec<u8>)>>,
}

impl Threads {
    /// A transport for each of `ranks` ranks, rank `i` at index `i`.
    pub fn group(ranks: usize) -> Vec<Threads> {
        let (senders, inboxes): (Vec<_>, Vec<_>) = (0..ranks).map(|_| channel()).unzip();
        inboxes
            .into_iter()
            .enumerate()
            .map(|(rank, inbox)| Threads {
                rank,
                peers: senders.clone(),
                inbox: Mutex::new(inbox),
            })
            .collect()
    }
}

impl Transport for Threads {
    fn rank(&self) -> usize {
        self.rank
    }

    fn ranks(&self) -> usize {
        self.peers.len()
    }

    fn send(&self, to: usize, message: Vec<u8>) -> Result<()> {
        self.peers
            .get(to)
            .ok_or_else(|| Error::Config(format!("no rank {to} among {}", self.peers.len())))?
            .send((self.rank, message))
            .map_err(|_| Error::Config(format!("rank {to} has stopped: its thread ended")))
    }

    fn try_recv(&self) -> Result<Option<(usize, Vec<u8>)>> {
        match self.inbox.lock().try_recv() {
            Ok(m) => Ok(Some(m)),
            // This rank keeps a sender to itself: never disconnected.
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => Ok(None),
        }
    }
}

/// A tensor of a graph spread over ranks: its owner, and this rank's
/// copy (valid only while the plan says this rank holds it).
#[derive(Clone)]
pub struct RankTensor {
    id: usize,
    owner: usize,
    local: Tensor,
}

impl RankTensor {
    /// The rank that owns it: tasks writing it run there.
    pub fn owner(&self) -> usize {
        self.owner
    }

    /// Read access.
    pub fn read(&self) -> RankAccess {
        self.access(Mode::Read)
    }

    /// Write access.
    pub fn write(&self) -> RankAccess {
        self.access(Mode::Write)
    }

    /// Read-write access.
    pub fn rw(&self) -> RankAccess {
        self.access(Mode::ReadWrite)
    }

    fn access(&self, mode: Mode) -> RankAccess {
        RankAccess {
            tensor: self.clone(),
            mode,
        }
    }
}

/// A task's access to a [`RankTensor`].
#[derive(Clone)]
pub struct RankAccess {
    tensor: RankTensor,
    mode: Mode,
}

/// Copies this rank sent and received, and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Traffic {
    pub copies_sent: u64,
    pub bytes_sent: u64,
    pub copies_received: u64,
    pub bytes_received: u64,
}

/// One task graph across ranks; see the module docs.
pub struct Ranks {
    rt: Runtime,
    transport: Arc<dyn Transport>,
    plan: Mutex<Plan>,
    progress: Arc<Progress>,
    thread: Option<JoinHandle<()>>,
}

/// What every rank works out alike: who holds what, and how many copies
/// were planned (each copy's number names its message) and tensors made.
#[derive(Default)]
struct Plan {
    holders: OwnerComputes<usize>,
    copies: u64,
    tensors: usize,
}

/// What the progress thread works through.
#[derive(Default)]
struct Pending {
    /// Copies to send: number, destination, the read of the tensor.
    sends: Vec<(u64, usize, External)>,
    /// Copies to receive, by number: the write of this rank's copy.
    receives: HashMap<u64, External>,
    /// Messages arrived before their receive was planned here, by number.
    arrived: HashMap<u64, (usize, Vec<u8>)>,
    /// The transport's first failure: every copy since fails with it.
    failure: Option<String>,
}

#[derive(Default)]
struct Progress {
    pending: Mutex<Pending>,
    stop: AtomicBool,
    copies_sent: AtomicU64,
    bytes_sent: AtomicU64,
    copies_received: AtomicU64,
    bytes_received: AtomicU64,
}

/// A message: the copy's number, whether the sender had the tensor (1)
/// or only the reason it has not (0), then the bytes or the reason.
fn frame(number: u64, payload: std::result::Result<&[u8], String>) -> Vec<u8> {
    let (ok, body) = match &payload {
        Ok(bytes) => (1u8, *bytes),
        Err(reason) => (0u8, reason.as_bytes()),
    };
    let mut message = Vec::with_capacity(9 + body.len());
    message.extend_from_slice(&number.to_le_bytes());
    message.push(ok);
    message.extend_from_slice(body);
    message
}

/// The copy's number and its bytes (or the sender's reason for sending
/// none) from a message.
fn unframe(message: &[u8]) -> Result<(u64, std::result::Result<&[u8], String>)> {
    if message.len() < 9 {
        return Err(Error::Config(format!(
            "a message of {} bytes is too short to be a copy (9 bytes of header)",
            message.len()
        )));
    }
    let mut number = [0u8; 8];
    number.copy_from_slice(&message[..8]);
    let body = &message[9..];
    let payload = match message[8] {
        1 => Ok(body),
        _ => Err(String::from_utf8_lossy(body).into_owned()),
    };
    Ok((u64::from_le_bytes(number), payload))
}

impl Ranks {
    /// Spreads `rt`'s graph over the ranks `transport` reaches, and starts
    /// this rank's progress thread.
    pub fn new(rt: Runtime, transport: impl Transport) -> Ranks {
        let transport: Arc<dyn Transport> = Arc::new(transport);
        let progress = Arc::new(Progress::default());
        let thread = {
            let (transport, progress) = (transport.clone(), progress.clone());
            std::thread::Builder::new()
                .name(format!("xpu-rank-{}", transport.rank()))
                .spawn(move || progress.run(&*transport))
                .ok()
        };
        Ranks {
            rt,
            transport,
            plan: Mutex::new(Plan::default()),
            progress,
            thread,
        }
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.transport.rank()
    }

    /// Ranks in all.
    pub fn ranks(&self) -> usize {
        self.transport.ranks()
    }

    /// This rank's runtime.
    pub fn runtime(&self) -> &Runtime {
        &self.rt
    }

    fn check_owner(&self, owner: usize) -> Result<()> {
        if owner >= self.ranks() {
            return Err(Error::Config(format!(
                "no rank {owner} to own a tensor: the ranks are 0 to {}",
                self.ranks() - 1
            )));
        }
        Ok(())
    }

    fn next_id(&self) -> usize {
        let mut plan = self.plan.lock();
        plan.tensors += 1;
        plan.tensors - 1
    }

    /// A tensor owned by `owner`, holding `data()` (called on the owner
    /// only) there.
    pub fn tensor<T: Element>(
        &self,
        owner: usize,
        shape: &[usize],
        data: impl FnOnce() -> Vec<T>,
    ) -> Result<RankTensor> {
        self.check_owner(owner)?;
        let local = if owner == self.rank() {
            self.rt.tensor(shape, data())?
        } else {
            self.rt.empty(shape, T::DTYPE)
        };
        Ok(RankTensor {
            id: self.next_id(),
            owner,
            local,
        })
    }

    /// A tensor owned by `owner`, not yet written.
    pub fn empty(&self, owner: usize, shape: &[usize], dtype: DType) -> Result<RankTensor> {
        self.check_owner(owner)?;
        Ok(RankTensor {
            id: self.next_id(),
            owner,
            local: self.rt.empty(shape, dtype),
        })
    }

    /// Submits a task on every rank: it runs on the owner of what it
    /// writes, which gets the task's handle; the copies it needs are
    /// planned on every rank alike. Every rank checks it the same way, so
    /// a bad task is refused everywhere.
    pub fn submit(&self, kernel: &Kernel, accesses: &[RankAccess]) -> Result<Option<Task>> {
        let metas: SmallVec<[ArgMeta<'_>; 4]> = accesses
            .iter()
            .map(|a| ArgMeta {
                shape: a.tensor.local.shape(),
                dtype: a.tensor.local.dtype(),
                mode: a.mode,
            })
            .collect();
        kernel.check(&metas)?;
        let keyed: SmallVec<[(usize, Mode, usize); 4]> = accesses
            .iter()
            .map(|a| (a.tensor.id, a.mode, a.tensor.owner))
            .collect();
        let (placed, first) = {
            let mut plan = self.plan.lock();
            let placed = plan.holders.task(&keyed);
            let first = plan.copies;
            plan.copies += (placed.before.len() + placed.after.len()) as u64;
            (placed, first)
        };
        let tensor = |id: usize| {
            &accesses
                .iter()
                .find(|a| a.tensor.id == id)
                .expect("a copy is of one of the task's tensors")
                .tensor
                .local
        };
        let mut number = first;
        for copy in &placed.before {
            self.post(copy, number, tensor(copy.tensor))?;
            number += 1;
        }
        let task = if placed.rank == self.rank() {
            let local: SmallVec<[_; 4]> = accesses
                .iter()
                .map(|a| match a.mode {
                    Mode::Read => a.tensor.local.read(),
                    Mode::Write => a.tensor.local.write(),
                    Mode::ReadWrite => a.tensor.local.rw(),
                })
                .collect();
            Some(self.rt.submit(kernel, &local)?)
        } else {
            None
        };
        for copy in &placed.after {
            self.post(copy, number, tensor(copy.tensor))?;
            number += 1;
        }
        Ok(task)
    }

    /// This rank's part in copy `number`: the read that sends it, the
    /// write that receives it, or nothing.
    fn post(&self, copy: &Copy<usize>, number: u64, tensor: &Tensor) -> Result<()> {
        let me = self.rank();
        if copy.from == me {
            let send = self.rt.external(tensor.read())?;
            self.progress
                .pending
                .lock()
                .sends
                .push((number, copy.to, send));
        } else if copy.to == me {
            let receive = self.rt.external(tensor.write())?;
            self.progress
                .pending
                .lock()
                .receives
                .insert(number, receive);
        }
        Ok(())
    }

    /// The current content of `t` on every rank (a collective: every rank
    /// calls it, in the same place in the program). Ranks lacking it get
    /// it from its owner.
    pub fn fetch<T: Element>(&self, t: &RankTensor) -> Result<Vec<T>> {
        let copies: Vec<(Copy<usize>, u64)> = {
            let mut plan = self.plan.lock();
            let mut copies = Vec::new();
            for rank in 0..self.ranks() {
                if let Some(copy) = plan.holders.bring(t.id, t.owner, rank) {
                    copies.push((copy, plan.copies));
                    plan.copies += 1;
                }
            }
            copies
        };
        for (copy, number) in &copies {
            self.post(copy, *number, &t.local)?;
        }
        self.rt.read(&t.local)
    }

    /// Waits for this rank's tasks and for every copy it sends or
    /// receives so far (the ranks' copies match: each waits for its
    /// peers' part in the same program).
    pub fn wait_all(&self) {
        loop {
            self.rt.wait_all();
            let p = self.progress.pending.lock();
            if p.sends.is_empty() && p.receives.is_empty() {
                return;
            }
            drop(p);
            std::thread::sleep(IDLE);
        }
    }

    /// What this rank sent and received so far.
    pub fn traffic(&self) -> Traffic {
        let p = &self.progress;
        Traffic {
            copies_sent: p.copies_sent.load(Ordering::Acquire),
            bytes_sent: p.bytes_sent.load(Ordering::Acquire),
            copies_received: p.copies_received.load(Ordering::Acquire),
            bytes_received: p.bytes_received.load(Ordering::Acquire),
        }
    }

    /// Waits for every task and copy of this rank, then stops its
    /// progress thread; the first transport failure, if any.
    pub fn finish(mut self) -> Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> Result<()> {
        self.wait_all();
        self.progress.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.transport.flush()?;
        match self.progress.pending.lock().failure.take() {
            Some(reason) => Err(Error::Config(reason)),
            None => Ok(()),
        }
    }
}

impl Drop for Ranks {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Pauses of the progress thread when it found nothing to do.
const IDLE: Duration = Duration::from_micros(50);

impl Progress {
    /// Sends what is ready and matches what arrives until told to stop
    /// with nothing left.
    fn run(&self, transport: &dyn Transport) {
        loop {
            let mut worked = self.send_ready(transport);
            worked |= self.receive(transport);
            if !worked {
                let p = self.pending.lock();
                if self.stop.load(Ordering::Acquire) && p.sends.is_empty() && p.receives.is_empty()
                {
                    return;
                }
                drop(p);
                std::thread::sleep(IDLE);
            }
        }
    }

    /// Sends the copies whose tensor is ready; whether there were any.
    fn send_ready(&self, transport: &dyn Transport) -> bool {
        let ready: Vec<(u64, usize, External)> = {
            let mut p = self.pending.lock();
            let (ready, waiting) = std::mem::take(&mut p.sends)
                .into_iter()
                .partition(|(_, _, send)| send.is_ready());
            p.sends = waiting;
            ready
        };
        let worked = !ready.is_empty();
        for (number, to, send) in ready {
            let message = send
                .read(|bytes| frame(number, Ok(bytes)))
                .unwrap_or_else(|e| frame(number, Err(e.to_string())));
            let bytes = message.len().saturating_sub(9) as u64;
            match transport.send(to, message) {
                Ok(()) => {
                    self.copies_sent.fetch_add(1, Ordering::AcqRel);
                    self.bytes_sent.fetch_add(bytes, Ordering::AcqRel);
                    send.complete();
                }
                Err(e) => {
                    let reason = format!("sending copy {number} to rank {to}: {e}");
                    self.pending.lock().failure.get_or_insert(reason.clone());
                    send.fail(reason);
                }
            }
        }
        worked
    }

    /// Takes what arrived and ends the receives it answers; whether
    /// anything arrived or ended.
    fn receive(&self, transport: &dyn Transport) -> bool {
        let mut worked = false;
        loop {
            match transport.try_recv() {
                Ok(Some((from, message))) => {
                    worked = true;
                    match unframe(&message) {
                        Ok((number, _)) => {
                            self.pending.lock().arrived.insert(number, (from, message));
                        }
                        Err(e) => {
                            self.pending
                                .lock()
                                .failure
                                .get_or_insert(format!("from rank {from}: {e}"));
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    self.pending
                        .lock()
                        .failure
                        .get_or_insert(format!("receiving: {e}"));
                    break;
                }
            }
        }
        let answered: Vec<(u64, External, usize, Vec<u8>)> = {
            let mut guard = self.pending.lock();
            let p = &mut *guard;
            let numbers: Vec<u64> = p
                .receives
                .iter()
                .filter(|(n, receive)| p.arrived.contains_key(n) && receive.is_ready())
                .map(|(n, _)| *n)
                .collect();
            numbers
                .into_iter()
                .filter_map(|n| {
                    let receive = p.receives.remove(&n)?;
                    let (from, message) = p.arrived.remove(&n)?;
                    Some((n, receive, from, message))
                })
                .collect()
        };
        for (number, receive, from, message) in answered {
            worked = true;
            let written = match unframe(&message) {
                Ok((_, Ok(bytes))) => receive.write(bytes).map(|()| bytes.len()),
                Ok((_, Err(reason))) => Err(Error::Config(format!(
                    "rank {from} could not send copy {number}: {reason}"
                ))),
                Err(e) => Err(e),
            };
            match written {
                Ok(bytes) => {
                    self.copies_received.fetch_add(1, Ordering::AcqRel);
                    self.bytes_received
                        .fetch_add(bytes as u64, Ordering::AcqRel);
                    receive.complete();
                }
                Err(e) => receive.fail(e.to_string()),
            }
        }
        worked
    }
}
