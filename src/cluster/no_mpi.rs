//! Stands in for the MPI transport when the crate is built without the
//! `mpi` feature: `Mpi::init` says so, and nothing else changes.

use std::convert::Infallible;

use crate::cluster::ranks::Transport;
use crate::error::{Error, Result};

/// The MPI transport, not compiled in: [`Mpi::init`] fails naming the
/// feature, so no value of it exists.
pub struct Mpi(Infallible);

impl Mpi {
    /// Always fails: the crate was built without the `mpi` feature.
    pub fn init() -> Result<Mpi> {
        Err(Error::NotCompiled {
            what: "the MPI transport",
            feature: "mpi",
        })
    }
}

impl Transport for Mpi {
    fn rank(&self) -> usize {
        match self.0 {}
    }

    fn ranks(&self) -> usize {
        match self.0 {}
    }

    fn send(&self, _to: usize, _message: Vec<u8>) -> Result<()> {
        match self.0 {}
    }

    fn try_recv(&self) -> Result<Option<(usize, Vec<u8>)>> {
        match self.0 {}
    }
}
