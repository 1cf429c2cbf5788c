//! Ranks as processes that `mpirun` launches, on one machine or many (cargo feature
//! `mpi`): Open MPI, through rsmpi, moves the bytes. `mpirun -np 2 --hostfile hosts
//! target/release/examples/train_cifar --distributed` (docs/distributed.md).
//!
//! A rank that dies makes `mpirun` end the whole job and name the process that exited:
//! MPI's default error handler is fatal. A rank that fails with an error ends the job
//! with [`MpiRuntime::abort`]. Either way no rank waits for a dead one. There is no
//! timeout: a rank that stalls without failing stalls the job.

use mpi::collective::SystemOperation;
use mpi::environment::{Threading, Universe};
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator as _, CommunicatorCollectives, Root};

use super::Communicator;
use crate::error::{Error, Result};

/// MPI in this process: initialized by [`MpiRuntime::init`], finalized when dropped.
/// MPI's finalize waits for every process of the job, so a rank that fails must not
/// simply return: [`MpiRuntime::abort`] ends the whole job at once (mpirun then names
/// the rank), where returning would leave the others waiting in their next collective.
pub struct MpiRuntime {
    universe: Universe,
}

impl MpiRuntime {
    /// Initializes MPI (once per process). An `Err` when MPI is already initialized or
    /// cannot let a communicator move between threads.
    pub fn init() -> Result<MpiRuntime> {
        let (universe, level) =
            mpi::initialize_with_threading(Threading::Serialized).ok_or_else(|| {
                Error::Distributed("MPI is already initialized in this process".into())
            })?;
        if level < Threading::Serialized {
            return Err(Error::Distributed(format!(
                "this MPI library offers threading level {level:?}; liandan needs Serialized"
            )));
        }
        Ok(MpiRuntime { universe })
    }

    /// This process's rank in the job's world communicator. Use it (and drop it) while
    /// the runtime lives.
    pub fn world(&self) -> MpiComm {
        MpiComm {
            world: self.universe.world(),
        }
    }

    /// Ends every process of the job with exit status `code` (MPI_Abort).
    pub fn abort(&self, code: i32) -> ! {
        self.universe.world().abort(code)
    }
}

/// This process's rank in MPI's world communicator (see [`MpiRuntime::world`]).
pub struct MpiComm {
    world: SimpleCommunicator,
}

// SAFETY: MPI is initialized at `Threading::Serialized` (checked in `MpiRuntime::init`),
// which lets any thread make MPI calls as long as no two make them at once; every call
// here takes `&mut self` or runs under the single owner of the value, so none overlap.
unsafe impl Send for MpiComm {}

impl Communicator for MpiComm {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    fn size(&self) -> usize {
        self.world.size() as usize
    }

    fn all_reduce_sum(&mut self, data: &mut [f32]) -> Result<()> {
        // A reduction to rank 0, then its broadcast: MPI_Allreduce may add in another
        // order on each rank, and the ranks' parameters must stay bitwise equal.
        let root = self.world.process_at_rank(0);
        if self.world.rank() == 0 {
            let mut sum = vec![0.0f32; data.len()];
            root.reduce_into_root(&data[..], &mut sum[..], SystemOperation::sum());
            data.copy_from_slice(&sum);
        } else {
            root.reduce_into(&data[..], SystemOperation::sum());
        }
        root.broadcast_into(data);
        Ok(())
    }

    fn broadcast(&mut self, data: &mut [f32], root: usize) -> Result<()> {
        if root >= self.size() {
            return Err(Error::InvalidArgument(format!(
                "broadcast from rank {root} in a group of {}",
                self.size()
            )));
        }
        self.world.process_at_rank(root as i32).broadcast_into(data);
        Ok(())
    }

    fn barrier(&mut self) -> Result<()> {
        self.world.barrier();
        Ok(())
    }
}
