//! The [`Transport`] between MPI processes (feature `mpi`: the `mpi`
//! crate over the system's MPI, Debian's `libopenmpi-dev`, with
//! `libclang-dev` to generate its bindings). Every rank runs the same
//! program, started by `mpirun -np N` (or inside a SLURM allocation, see
//! [`slurm`](super::slurm)); `MPI_COMM_WORLD` is the ranks.
//!
//! Sends are non-blocking (`MPI_Isend` on a buffer kept until the send
//! completes); receives take whatever has arrived from any rank
//! (`MPI_Improbe`, then `MPI_Mrecv` of its size), so the progress thread
//! never blocks on a peer. MPI is called from that thread and the one
//! that made the transport, one at a time (`MPI_THREAD_SERIALIZED`).

use mpi::request::{Request, StaticScope};
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use mpi::Threading;
use parking_lot::Mutex;

use crate::cluster::ranks::Transport;
use crate::error::{Error, Result};

/// `MPI_COMM_WORLD` as a [`Transport`] (see the module docs of
/// `xpu::cluster::mpi`). Made once per process; MPI is finalised when it
/// is dropped.
///
/// ```no_run
/// use xpu::cluster::{mpi::Mpi, ranks::Ranks};
/// let transport = Mpi::init()?;
/// let rt = xpu::Runtime::builder().build()?;
/// let ranks = Ranks::new(rt, transport)?;
/// println!("rank {} of {}", ranks.rank(), ranks.ranks());
/// ranks.finish()?;
/// # Ok::<(), xpu::Error>(())
/// ```
pub struct Mpi {
    rank: usize,
    ranks: usize,
    state: Mutex<MpiState>,
}

/// A send in flight on a buffer kept until it completes.
type SendRequest = Request<'static, [u8], StaticScope>;

/// What only one thread at a time may touch.
struct MpiState {
    world: SimpleCommunicator,
    /// Sends in flight, with the buffers they send (freed once complete).
    sending: Vec<(SendRequest, *mut [u8])>,
    /// Last, so that MPI is finalised after the requests are gone.
    _universe: mpi::environment::Universe,
}

// SAFETY: MPI is initialised with MPI_THREAD_SERIALIZED or more, and every
// call goes through the mutex around this state, one thread at a time;
// the buffers of the sends in flight are owned by it.
unsafe impl Send for MpiState {}

impl Mpi {
    /// Initialises MPI (with `MPI_THREAD_SERIALIZED` at least) and takes
    /// `MPI_COMM_WORLD`. Fails if MPI was already initialised in this
    /// process, or gives less thread support.
    pub fn init() -> Result<Mpi> {
        let (universe, threading) = mpi::initialize_with_threading(Threading::Serialized)
            .ok_or_else(|| Error::Config("MPI is already initialised in this process".into()))?;
        if !matches!(threading, Threading::Serialized | Threading::Multiple) {
            return Err(Error::Config(format!(
                "this MPI gives thread support {threading:?}; xpu's progress thread needs Serialized"
            )));
        }
        let world = universe.world();
        Ok(Mpi {
            rank: world.rank() as usize,
            ranks: world.size() as usize,
            state: Mutex::new(MpiState {
                world,
                sending: Vec::new(),
                _universe: universe,
            }),
        })
    }
}

impl MpiState {
    /// Frees the buffers of the sends that completed; with `wait`, waits
    /// for all of them.
    fn reap(&mut self, wait: bool) {
        let mut still = Vec::with_capacity(self.sending.len());
        for (request, buffer) in self.sending.drain(..) {
            let done = if wait {
                request.wait_without_status();
                None
            } else {
                request.test().err()
            };
            match done {
                None => {
                    // SAFETY: leaked in `send` for this request, which is
                    // complete: MPI no longer reads it.
                    drop(unsafe { Box::from_raw(buffer) });
                }
                Some(request) => still.push((request, buffer)),
            }
        }
        self.sending = still;
    }
}

impl Transport for Mpi {
    fn rank(&self) -> usize {
        self.rank
    }

    fn ranks(&self) -> usize {
        self.ranks
    }

    fn send(&self, to: usize, message: Vec<u8>) -> Result<()> {
        if to >= self.ranks {
            return Err(Error::Config(format!(
                "no rank {to} among {} MPI ranks",
                self.ranks
            )));
        }
        let mut state = self.state.lock();
        state.reap(false);
        let buffer: &'static mut [u8] = Box::leak(message.into_boxed_slice());
        let pointer: *mut [u8] = buffer;
        // SAFETY: the buffer stays allocated (leaked) until `reap` finds
        // this send complete; nothing writes it meanwhile.
        let buffer: &'static [u8] = unsafe { &*pointer };
        let request = state
            .world
            .process_at_rank(to as i32)
            .immediate_send(StaticScope, buffer);
        state.sending.push((request, pointer));
        Ok(())
    }

    fn try_recv(&self) -> Result<Option<(usize, Vec<u8>)>> {
        let mut state = self.state.lock();
        state.reap(false);
        let Some((message, status)) = state.world.any_process().immediate_matched_probe() else {
            return Ok(None);
        };
        let count = status.count(u8::equivalent_datatype());
        let len = usize::try_from(count)
            .map_err(|_| Error::Config(format!("MPI reports a message of {count} bytes")))?;
        let mut bytes = vec![0u8; len];
        message.matched_receive_into(&mut bytes[..]);
        Ok(Some((status.source_rank() as usize, bytes)))
    }

    fn flush(&self) -> Result<()> {
        self.state.lock().reap(true);
        Ok(())
    }
}

impl Drop for Mpi {
    fn drop(&mut self) {
        self.state.lock().reap(true);
    }
}
