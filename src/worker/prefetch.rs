//! Prefetch: when a policy that places each task ahead of time (`dmda`,
//! `dmdas`) queues a task on a busy unit with memory of its own, the inputs the
//! task lacks there start moving on a thread of their own, so the copies
//! overlap the unit's current work instead of following it. Best effort:
//! a prefetch only fills free room (it evicts nothing, so it never takes
//! memory a running task needs), and whatever fails is left for the
//! task's own fetch to meet and report. A request holds its task weakly:
//! a task that ended and was let go is not kept alive, nor are its
//! tensors, whose device buffers then go back to be reused.

use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;

use parking_lot::Mutex;

use crate::graph::TaskNode;
use crate::memory::MemoryManager;
use crate::unit::NodeId;

/// A task whose inputs are wanted on a node.
type Request = (Weak<TaskNode>, NodeId);

/// The prefetch thread of a runtime, and the queue of its requests.
pub(crate) struct Prefetcher {
    requests: Mutex<Option<Sender<Request>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Prefetcher {
    /// Starts the thread.
    pub fn start(memory: Arc<MemoryManager>) -> std::io::Result<Prefetcher> {
        let (tx, rx) = channel::<Request>();
        let thread = std::thread::Builder::new()
            .name("xpu-prefetch".into())
            .spawn(move || {
                for (task, node) in rx {
                    if let Some(task) = task.upgrade() {
                        prefetch(&memory, &task, node);
                    }
                }
            })?;
        Ok(Prefetcher {
            requests: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Asks for `task`'s inputs on `node`.
    pub fn request(&self, task: &Arc<TaskNode>, node: NodeId) {
        if let Some(tx) = &*self.requests.lock() {
            let _ = tx.send((Arc::downgrade(task), node));
        }
    }

    /// Ends the thread once the requests queued so far are done.
    pub fn stop(&self) {
        self.requests.lock().take();
        if let Some(thread) = self.thread.lock().take() {
            let _ = thread.join();
        }
    }
}

/// Copies to `node` each input of `task` that is not valid there, while
/// the node has free room for it and the task has not started (a task
/// that started fetches for itself, and once it ends a later writer may
/// be changing the tensor).
fn prefetch(memory: &MemoryManager, task: &TaskNode, node: NodeId) {
    for a in task.accesses.iter().filter(|a| a.mode.reads()) {
        let t = &a.tensor.inner;
        if !task.is_waiting() || !memory.has_room(node, t.nbytes()) {
            return;
        }
        if t.replicas.lock().state(node).is_valid() {
            continue;
        }
        if memory
            .prefetch(t, node, task.id, &|| task.is_waiting())
            .is_err()
        {
            return;
        }
    }
}
