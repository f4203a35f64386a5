//! Beyond one machine, on engines that exist: SLURM batch scripts, job
//! submission and the place of a process in a job (`slurm.rs`). The task
//! graph spread over MPI ranks builds on these.

pub mod slurm;
