//! Ranks as processes that `mpirun` launches, on one machine or many (cargo feature
//! `mpi`): Open MPI, through rsmpi, moves the bytes. `mpirun -np 2 --hostfile hosts
//! target/release/examples/train_cifar --distributed` (docs/distributed.md).
//!
//! A rank that dies makes `mpirun` end the whole job and name the process that exited:
//! MPI's default error handler is fatal, so no rank waits forever for a dead one.

use mpi::collective::SystemOperation;
use mpi::environment::{Threading, Universe};
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator as _, CommunicatorCollectives, Root};

use super::Communicator;
use crate::error::{Error, Result};

/// This process's rank in MPI's world communicator.
pub struct MpiComm {
    world: SimpleCommunicator,
    // Finalizes MPI when dropped, after the communicator.
    _universe: Universe,
}

// SAFETY: MPI is initialized at `Threading::Serialized` (checked in `init`), which lets
// any thread make MPI calls as long as no two make them at once; every call here takes
// `&mut self` or runs under the single owner of the value, so they never overlap.
unsafe impl Send for MpiComm {}

impl MpiComm {
    /// Initializes MPI (once per process) and joins the world communicator. An `Err`
    /// when MPI is already initialized or cannot let the communicator move between
    /// threads.
    pub fn init() -> Result<MpiComm> {
        let (universe, level) =
            mpi::initialize_with_threading(Threading::Serialized).ok_or_else(|| {
                Error::Distributed("MPI is already initialized in this process".into())
            })?;
        if level < Threading::Serialized {
            return Err(Error::Distributed(format!(
                "this MPI library offers threading level {level:?}; liandan needs Serialized"
            )));
        }
        Ok(MpiComm {
            world: universe.world(),
            _universe: universe,
        })
    }
}

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
