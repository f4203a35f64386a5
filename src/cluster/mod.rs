//! Beyond one machine, on engines that exist: SLURM batch scripts, job
//! submission and the place of a process in a job (`slurm.rs`); where
//! each task of a graph spread over ranks runs and which tensors move
//! between ranks (`owner.rs`). The task graph spread over MPI ranks
//! builds on these.

pub mod owner;
pub mod slurm;
