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
//! Ranks that stray from the same program are caught: each message also
//! carries a digest of every task and fetch planned before its copy, and a
//! receiver whose own digest differs fails the copy with an error saying
//! the ranks disagree on the graph. A rank that stops answering fails the
//! tasks waiting for it once a copy from it has been awaited for longer
//! than the ranks' patience ([`Ranks::with_patience`], a minute unless
//! set), with an error naming it.
//!
//! ```
//! use xpu::cluster::ranks::{Ranks, Threads};
//! use xpu::{DType, Kernel, BinaryOp, Runtime};
//! let handles: Vec<_> = Threads::group(2)
//!     .into_iter()
//!     .map(|transport| {
//!         std::thread::spawn(move || -> xpu::Result<Vec<f32>> {
//!             let rt = Runtime::builder().cpu_units(1).device_discovery(false).build()?;
//!             let ranks = Ranks::new(rt, transport)?;
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
use std::hash::Hasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use smallvec::SmallVec;

use super::owner::{Copy, OwnerComputes};
use crate::dtype::{DType, Element};
use crate::error::{Error, Result};
use crate::external::External;
use crate::kernel::{Kernel, Mode};
use crate::perfmodel::fnv::Fnv;
use crate::runtime::{Runtime, Task};
use crate::tensor::Tensor;
use crate::trace::PeerCopy;

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

    /// An access with the given mode.
    pub fn access(&self, mode: Mode) -> RankAccess {
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

/// What every rank works out alike: who holds what, how many copies were
/// planned (each copy's number names its message) and tensors made, and
/// a digest of every task and fetch planned so far.
#[derive(Default)]
struct Plan {
    holders: OwnerComputes<usize>,
    copies: u64,
    tensors: usize,
    digest: Fnv,
}

impl Plan {
    /// Adds a task (or a fetch) to the digest.
    fn note(&mut self, what: &str, accesses: &[(usize, Mode, usize)]) {
        self.digest.write(what.as_bytes());
        for &(tensor, mode, owner) in accesses {
            self.digest.write_u64(tensor as u64);
            self.digest.write_u8(mode as u8);
            self.digest.write_u64(owner as u64);
        }
    }
}

/// A copy this rank sends: the read of its tensor.
struct Outgoing {
    number: u64,
    to: usize,
    digest: u64,
    read: External,
}

/// A copy this rank receives: the write of its copy of the tensor.
struct Incoming {
    from: usize,
    digest: u64,
    write: External,
    /// Since when it has been ready, with nothing from `from` to write.
    awaited_since: Option<Instant>,
}

/// What the progress thread works through.
#[derive(Default)]
struct Pending {
    sends: Vec<Outgoing>,
    receives: HashMap<u64, Incoming>,
    /// Messages arrived before their receive was planned here, by number.
    arrived: HashMap<u64, (usize, Vec<u8>)>,
    /// The transport's first failure: every copy since fails with it.
    failure: Option<String>,
    /// Copies taken from `sends` and `receives` whose end (and count in
    /// the traffic) is still to come.
    in_hand: usize,
}

struct Progress {
    pending: Mutex<Pending>,
    /// How long a ready receive waits for its message.
    patience: Mutex<Duration>,
    stop: AtomicBool,
    copies_sent: AtomicU64,
    bytes_sent: AtomicU64,
    copies_received: AtomicU64,
    bytes_received: AtomicU64,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            pending: Mutex::default(),
            patience: Mutex::new(PATIENCE),
            stop: AtomicBool::new(false),
            copies_sent: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            copies_received: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
        }
    }
}

/// How long a rank waits, unless told otherwise, for a copy it needs.
const PATIENCE: Duration = Duration::from_secs(60);

/// Bytes before a message's payload: the copy's number, the sender's plan
/// digest, and whether the sender had the tensor.
const HEADER: usize = 17;

/// A copy's message: its header, then the tensor's bytes, or the reason
/// the sender has none.
struct Message<'a> {
    number: u64,
    digest: u64,
    payload: std::result::Result<&'a [u8], String>,
}

impl Message<'_> {
    fn encode(&self) -> Vec<u8> {
        let (ok, body) = match &self.payload {
            Ok(bytes) => (1u8, *bytes),
            Err(reason) => (0u8, reason.as_bytes()),
        };
        let mut message = Vec::with_capacity(HEADER + body.len());
        message.extend_from_slice(&self.number.to_le_bytes());
        message.extend_from_slice(&self.digest.to_le_bytes());
        message.push(ok);
        message.extend_from_slice(body);
        message
    }

    fn decode(message: &[u8]) -> Result<Message<'_>> {
        if message.len() < HEADER {
            return Err(Error::Config(format!(
                "a message of {} bytes is too short to be a copy ({HEADER} bytes of header)",
                message.len()
            )));
        }
        let word = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&message[at..at + 8]);
            u64::from_le_bytes(w)
        };
        let body = &message[HEADER..];
        Ok(Message {
            number: word(0),
            digest: word(8),
            payload: match message[16] {
                1 => Ok(body),
                _ => Err(String::from_utf8_lossy(body).into_owned()),
            },
        })
    }
}

impl Ranks {
    /// Spreads `rt`'s graph over the ranks `transport` reaches, and starts
    /// this rank's progress thread (the error if it cannot start).
    pub fn new(rt: Runtime, transport: impl Transport) -> Result<Ranks> {
        let transport: Arc<dyn Transport> = Arc::new(transport);
        let progress = Arc::new(Progress::default());
        let rank = transport.rank();
        let thread = {
            let (transport, progress) = (transport.clone(), progress.clone());
            std::thread::Builder::new()
                .name(format!("xpu-rank-{rank}"))
                .spawn(move || progress.run(&*transport))
                .map_err(|e| {
                    Error::Io(format!("rank {rank}'s progress thread did not start: {e}"))
                })?
        };
        Ok(Ranks {
            rt,
            transport,
            plan: Mutex::new(Plan::default()),
            progress,
            thread: Some(thread),
        })
    }

    /// Sets how long a copy this rank needs may be awaited before the
    /// rank it comes from is taken for gone and the tasks waiting for the
    /// copy fail (a minute unless set).
    pub fn with_patience(self, patience: Duration) -> Ranks {
        *self.progress.patience.lock() = patience;
        self
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
        let local: SmallVec<[_; 4]> = accesses
            .iter()
            .map(|a| a.tensor.local.access(a.mode))
            .collect();
        self.rt.check_accesses(kernel, &local)?;
        let keyed: SmallVec<[(usize, Mode, usize); 4]> = accesses
            .iter()
            .map(|a| (a.tensor.id, a.mode, a.tensor.owner))
            .collect();
        let (placed, first, digest) = {
            let mut plan = self.plan.lock();
            plan.note(kernel.name(), &keyed);
            let placed = plan.holders.task(&keyed);
            let first = plan.copies;
            plan.copies += (placed.before.len() + placed.after.len()) as u64;
            (placed, first, plan.digest.finish())
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
            self.post(copy, number, digest, tensor(copy.tensor))?;
            number += 1;
        }
        let task = if placed.rank == self.rank() {
            Some(self.rt.submit(kernel, &local)?)
        } else {
            None
        };
        for copy in &placed.after {
            self.post(copy, number, digest, tensor(copy.tensor))?;
            number += 1;
        }
        Ok(task)
    }

    /// This rank's part in copy `number`, planned when the plan's digest
    /// was `digest`: the read that sends it, the write that receives it,
    /// or nothing.
    fn post(&self, copy: &Copy<usize>, number: u64, digest: u64, tensor: &Tensor) -> Result<()> {
        let me = self.rank();
        if copy.from == me {
            let read = self.rt.external(tensor.read())?;
            self.progress.pending.lock().sends.push(Outgoing {
                number,
                to: copy.to,
                digest,
                read,
            });
        } else if copy.to == me {
            let write = self.rt.external(tensor.write())?;
            let incoming = Incoming {
                from: copy.from,
                digest,
                write,
                awaited_since: None,
            };
            self.progress
                .pending
                .lock()
                .receives
                .insert(number, incoming);
        }
        Ok(())
    }

    /// The current content of `t` on every rank (a collective: every rank
    /// calls it, in the same place in the program). Ranks lacking it get
    /// it from its owner.
    pub fn fetch<T: Element>(&self, t: &RankTensor) -> Result<Vec<T>> {
        let (copies, digest) = {
            let mut plan = self.plan.lock();
            plan.note("fetch", &[(t.id, Mode::Read, t.owner)]);
            let mut copies = Vec::new();
            for rank in 0..self.ranks() {
                if let Some(copy) = plan.holders.bring(t.id, t.owner, rank) {
                    copies.push((copy, plan.copies));
                    plan.copies += 1;
                }
            }
            (copies, plan.digest.finish())
        };
        for (copy, number) in &copies {
            self.post(copy, *number, digest, &t.local)?;
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
            if p.sends.is_empty() && p.receives.is_empty() && p.in_hand == 0 {
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
        let ready: Vec<Outgoing> = {
            let mut p = self.pending.lock();
            let (ready, waiting) = std::mem::take(&mut p.sends)
                .into_iter()
                .partition(|send| send.read.is_ready());
            p.sends = waiting;
            p.in_hand += ready.len();
            ready
        };
        let worked = !ready.is_empty();
        for send in ready {
            let (number, digest) = (send.number, send.digest);
            let start = send.read.now();
            let message = send
                .read
                .read(|bytes| {
                    Message {
                        number,
                        digest,
                        payload: Ok(bytes),
                    }
                    .encode()
                })
                .unwrap_or_else(|e| {
                    Message {
                        number,
                        digest,
                        payload: Err(e.to_string()),
                    }
                    .encode()
                });
            let bytes = (message.len() - HEADER) as u64;
            match transport.send(send.to, message) {
                Ok(()) => {
                    self.copies_sent.fetch_add(1, Ordering::AcqRel);
                    self.bytes_sent.fetch_add(bytes, Ordering::AcqRel);
                    let peer = PeerCopy {
                        rank: send.to,
                        sent: true,
                    };
                    send.read.record_peer_copy(peer, bytes as usize, start);
                    send.read.complete();
                }
                Err(e) => {
                    let reason = format!("sending copy {number} to rank {}: {e}", send.to);
                    self.pending.lock().failure.get_or_insert(reason.clone());
                    send.read.fail(reason);
                }
            }
            self.pending.lock().in_hand -= 1;
        }
        worked
    }

    /// Takes what arrived, ends the receives it answers, and fails those
    /// awaited past the ranks' patience; whether anything happened.
    fn receive(&self, transport: &dyn Transport) -> bool {
        let mut worked = false;
        loop {
            let arrived = transport.try_recv();
            let mut p = self.pending.lock();
            match arrived {
                Ok(Some((from, message))) => {
                    worked = true;
                    match Message::decode(&message) {
                        Ok(m) => {
                            let number = m.number;
                            p.arrived.insert(number, (from, message));
                        }
                        Err(e) => {
                            p.failure.get_or_insert(format!("from rank {from}: {e}"));
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    p.failure.get_or_insert(format!("receiving: {e}"));
                    break;
                }
            }
        }
        let patience = *self.patience.lock();
        let now = Instant::now();
        let (answered, overdue) = {
            let mut guard = self.pending.lock();
            let p = &mut *guard;
            let mut answered = Vec::new();
            let mut overdue = Vec::new();
            let numbers: Vec<u64> = p.receives.keys().copied().collect();
            for number in numbers {
                let Some(incoming) = p.receives.get_mut(&number) else {
                    continue;
                };
                if !incoming.write.is_ready() {
                    continue;
                }
                if p.arrived.contains_key(&number) {
                    let (from, message) = p.arrived.remove(&number).expect("checked");
                    let incoming = p.receives.remove(&number).expect("listed");
                    answered.push((number, incoming, from, message));
                } else {
                    let since = *incoming.awaited_since.get_or_insert(now);
                    if now.duration_since(since) > patience {
                        let incoming = p.receives.remove(&number).expect("listed");
                        overdue.push((number, incoming));
                    }
                }
            }
            p.in_hand += answered.len() + overdue.len();
            (answered, overdue)
        };
        for (number, incoming) in overdue {
            worked = true;
            let from = incoming.from;
            incoming.write.fail(format!(
                "rank {from} sent nothing for copy {number} in {patience:?}: has it stopped?"
            ));
            self.pending.lock().in_hand -= 1;
        }
        for (number, incoming, from, message) in answered {
            worked = true;
            let start = incoming.write.now();
            let written = match Message::decode(&message) {
                Ok(m) if m.digest != incoming.digest => Err(Error::Config(format!(
                    "ranks disagree on the graph: rank {from} planned copy {number} after other tasks than rank {} did (every rank must submit the same tasks in the same order)",
                    transport.rank()
                ))),
                Ok(Message {
                    payload: Ok(bytes), ..
                }) => incoming.write.write(bytes).map(|()| bytes.len()),
                Ok(Message {
                    payload: Err(reason),
                    ..
                }) => Err(Error::Config(format!(
                    "rank {from} could not send copy {number}: {reason}"
                ))),
                Err(e) => Err(e),
            };
            match written {
                Ok(bytes) => {
                    self.copies_received.fetch_add(1, Ordering::AcqRel);
                    self.bytes_received
                        .fetch_add(bytes as u64, Ordering::AcqRel);
                    let peer = PeerCopy {
                        rank: from,
                        sent: false,
                    };
                    incoming.write.record_peer_copy(peer, bytes, start);
                    incoming.write.complete();
                }
                Err(e) => incoming.write.fail(e.to_string()),
            }
            self.pending.lock().in_hand -= 1;
        }
        worked
    }
}
