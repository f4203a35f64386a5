//! Beyond one machine, on engines that exist: SLURM batch scripts, job
//! submission and the place of a process in a job (`slurm.rs`); where
//! each task of a graph spread over ranks runs and which tensors move
//! between ranks (`owner.rs`); one task graph run across ranks, whose
//! copies travel over a transport (`ranks.rs`).

/// The [`ranks::Transport`] between MPI processes (feature `mpi`; built
/// without it, [`mpi::Mpi::init`] says the feature is off).
pub mod mpi {
    pub use crate::mpi_transport::Mpi;
}
pub mod owner;
pub mod ranks;
pub mod slurm;
