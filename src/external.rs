//! External tasks: tasks that no unit runs. An [`External`] takes its
//! place in the graph like a task with its one access: it becomes ready
//! once the tensor's earlier writers (and, if it writes, earlier readers)
//! have finished, and later tasks on the tensor wait for it. Whoever
//! holds it does the work with the tensor's host bytes and then ends it:
//! a transfer to or from another process (the way a distributed runtime
//! receives a tile from another rank), a file read, a device the runtime
//! does not drive.
//!
//! Ending it releases the tasks that wait for it. Failing it, or dropping
//! it unended, poisons what it writes, and the tasks that read that fail
//! with an error naming it, as after a failed kernel. It may be failed
//! before it is ready: it then ends, with that failure, once it is.
//!
//! ```
//! use xpu::{DType, Kernel, Runtime, UnaryOp};
//! let rt = Runtime::builder().build()?;
//! let x = rt.empty(&[4], DType::F32);
//! let y = rt.empty(&[4], DType::F32);
//! // The bytes of x come from outside; the relu waits for them.
//! let arrival = rt.external(x.write())?;
//! rt.submit(&Kernel::Unary(UnaryOp::Relu), &[x.read(), y.write()])?;
//! let bytes: Vec<u8> = [-1.0f32, 2.0, -3.0, 4.0].iter().flat_map(|v| v.to_ne_bytes()).collect();
//! arrival.write(&bytes)?;
//! arrival.complete();
//! assert_eq!(rt.read::<f32>(&y)?, vec![0.0, 2.0, 0.0, 4.0]);
//! # Ok::<(), xpu::Error>(())
//! ```

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::graph::{self, TaskNode};
use crate::kernel::Mode;
use crate::tensor::Access;
use crate::trace::PeerCopy;
use crate::worker::Shared;

/// A task that no unit runs, ended by whoever holds it. Made by
/// [`Runtime::external`](crate::Runtime::external); see the module docs.
pub struct External {
    shared: Arc<Shared>,
    node: Arc<TaskNode>,
    ended: bool,
}

impl External {
    pub(crate) fn new(shared: Arc<Shared>, node: Arc<TaskNode>) -> External {
        External {
            shared,
            node,
            ended: false,
        }
    }

    /// The task's id (as in errors that name it).
    pub fn id(&self) -> u64 {
        self.node.id
    }

    /// Whether the tasks it waits for have finished: its work may start.
    pub fn is_ready(&self) -> bool {
        self.node.is_ready()
    }

    /// Waits until it is ready.
    pub fn wait_ready(&self) {
        self.shared.wait_until(|| self.node.is_ready());
    }

    fn access(&self) -> &Access {
        &self.node.accesses[0]
    }

    /// Now, to time a copy of the tensor to or from another rank.
    pub(crate) fn now(&self) -> (Instant, u64) {
        (Instant::now(), self.shared.clock.ticks())
    }

    /// Records `bytes` of the tensor sent to or received from another
    /// rank (`peer`), begun at `start` (from [`External::now`]).
    pub(crate) fn record_peer_copy(&self, peer: PeerCopy, bytes: usize, start: (Instant, u64)) {
        self.shared
            .memory
            .copied_between_ranks(self.access().tensor.inner.id, bytes, peer, start);
    }

    /// Waits until it is ready, then calls `f` with the tensor's bytes in
    /// host memory (copied there from a device if need be). Fails if it
    /// was made to write only, or if the task that wrote the tensor failed.
    pub fn read<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        let access = self.access();
        let inner = &access.tensor.inner;
        if !access.mode.reads() {
            return Err(Error::Config(format!(
                "external task {} only writes {}: it has nothing to read",
                self.node.id,
                inner.label()
            )));
        }
        self.wait_ready();
        inner.unpoisoned()?;
        self.shared
            .memory
            .on_host(inner, Mode::Read, self.node.id, |h| {
                // SAFETY: the tensor's writers come before or after this task
                // in the graph, and it is ready and not ended: none runs.
                f(unsafe { &h.bytes()[..inner.nbytes()] })
            })
    }

    /// Waits until it is ready, then makes `bytes` the tensor's content
    /// (its host replica, the only valid one after this). Fails if it was
    /// made to read only, or if `bytes` is not the tensor's size.
    pub fn write(&self, bytes: &[u8]) -> Result<()> {
        let access = self.access();
        let inner = &access.tensor.inner;
        if !access.mode.writes() {
            return Err(Error::Config(format!(
                "external task {} only reads {}: it may not write it",
                self.node.id,
                inner.label()
            )));
        }
        if bytes.len() != inner.nbytes() {
            return Err(Error::ByteLength {
                shape: inner.shape.to_vec(),
                dtype: inner.dtype,
                expected: inner.nbytes(),
                got: bytes.len(),
            });
        }
        self.wait_ready();
        self.shared
            .memory
            .on_host(inner, Mode::Write, self.node.id, |h| {
                // SAFETY: as in `read`; the memory manager gives a writer a
                // buffer no view shares.
                unsafe { &mut h.bytes_mut()[..bytes.len()] }.copy_from_slice(bytes);
            })
    }

    /// Waits until it is ready, then ends it: the tasks waiting for it
    /// may run.
    pub fn complete(mut self) {
        self.wait_ready();
        self.end(Ok(()));
    }

    /// Ends it as failed, now or once it is ready: what it writes is
    /// poisoned, and tasks that read that fail naming it and `reason`.
    pub fn fail(mut self, reason: impl Into<String>) {
        let reason = reason.into();
        self.end(Err(Error::ExternalFailed {
            task: self.node.id,
            reason,
        }));
    }

    fn end(&mut self, outcome: Result<()>) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        let _ = self.node.outcome.set(outcome.map_err(Box::new));
        // Pairs with the fence in `Shared::make_ready`: either this sees
        // the task ready, or its last predecessor sees it ended.
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.node.is_ready() {
            finish_ended(&self.shared, &self.node);
        }
    }
}

impl Drop for External {
    fn drop(&mut self) {
        let task = self.node.id;
        self.end(Err(Error::ExternalFailed {
            task,
            reason: "dropped before it was completed".into(),
        }));
    }
}

impl std::fmt::Debug for External {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("External")
            .field("id", &self.node.id)
            .field("tensor", &self.access().tensor.label())
            .field("mode", &self.access().mode)
            .field("ready", &self.is_ready())
            .finish()
    }
}

/// Finishes an inline task whose outcome is set and which is ready, once
/// (its holder and its last predecessor may both try): poisons or clears
/// what it writes, and releases the tasks that wait for it.
pub(crate) fn finish_ended(shared: &Shared, node: &Arc<TaskNode>) {
    if !node.start() {
        return;
    }
    let failure = node
        .outcome
        .get()
        .and_then(|o| graph::failure_of(node.id, o.as_ref().map_err(|e| &**e)));
    for a in node.accesses.iter().filter(|a| a.mode.writes()) {
        a.tensor.inner.poison.replace(failure.clone());
    }
    for ready in graph::release(node, failure.as_ref()) {
        shared.make_ready(ready, None);
    }
}
