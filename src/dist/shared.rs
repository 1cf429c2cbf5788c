//! [`SharedComm`]: one rank's communicator, shared by the trainer and the ops that
//! synchronize within a pass.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use super::Communicator;

/// A rank's communicator shared between the trainer (gradients, tallies, between passes)
/// and the ops that synchronize inside a pass: batch norm with statistics over every
/// rank's batch ([`crate::nn::Ctx::with_sync_bn`]), whose forward and backward run their
/// own collectives. A rank's pass runs on one thread, and each use holds the lock for
/// one collective, so the lock never waits on another rank.
#[derive(Clone)]
pub struct SharedComm {
    comm: Arc<Mutex<Box<dyn Communicator>>>,
    rank: usize,
    size: usize,
}

impl SharedComm {
    /// Shares `comm`.
    pub fn new(comm: Box<dyn Communicator>) -> Self {
        let (rank, size) = (comm.rank(), comm.size());
        Self {
            comm: Arc::new(Mutex::new(comm)),
            rank,
            size,
        }
    }

    /// The communicator, for one collective or a few in a row.
    pub fn lock(&self) -> MutexGuard<'_, Box<dyn Communicator>> {
        // A collective that panicked leaves no state behind worth refusing: the next
        // one reports the broken group itself.
        self.comm.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This rank's number.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// How many ranks the group has.
    pub fn size(&self) -> usize {
        self.size
    }
}

impl fmt::Debug for SharedComm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SharedComm(rank {} of {})", self.rank, self.size)
    }
}
