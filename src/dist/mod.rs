//! Data-parallel training over several ranks — adapters in one process, or processes —
//! the way PyTorch's DistributedDataParallel does it: every rank starts from rank 0's
//! parameters, takes its own shard of each epoch's order, and averages its gradients
//! with the others' before every optimizer step, so the parameters stay equal.
//!
//! [`Communicator`] is the transport: all-reduce, broadcast, barrier, rank and size.
//! [`local_group`] runs the ranks as threads of one process, one adapter each; `MpiComm`
//! (cargo feature `mpi`) as processes `mpirun` launches, over Open MPI. Nothing here is
//! hand-written networking. Collectives run on the CPU over f32 slices: a rank reads its
//! gradients back, the ranks combine them, and each uploads the result.
//!
//! Determinism: a local all-reduce adds the ranks' contributions in rank order once for
//! all ranks, and MPI's reduces on rank 0 and broadcasts, so all ranks get the same
//! bits, and parameters updated from them stay bitwise equal.

mod local;
#[cfg(feature = "mpi")]
mod mpi;
mod parallel;
mod shared;
mod sync_bn;

pub use local::{LocalComm, local_group};
#[cfg(feature = "mpi")]
pub use mpi::{MpiComm, MpiRuntime};
pub use parallel::{GradientBuckets, broadcast_buffers, broadcast_store, shard};
pub use shared::SharedComm;
pub(crate) use sync_bn::{gather_moments, sum_over_ranks};

use crate::error::Result;

/// The operations data-parallel training needs from a group of `size` ranks. Every rank
/// calls the same collectives in the same order with slices of the same length. In a
/// local group a rank that leaves or stalls makes the others' calls return an
/// [`crate::Error::Distributed`] naming it, within the group's timeout; under MPI a rank
/// that fails ends the job (see `MpiRuntime`), and mpirun names it.
pub trait Communicator: Send {
    /// This rank's number, `0..size`.
    fn rank(&self) -> usize;
    /// How many ranks the group has.
    fn size(&self) -> usize;
    /// Replaces `data` on every rank by the element-wise sum over the ranks; every rank
    /// gets the same bits.
    fn all_reduce_sum(&mut self, data: &mut [f32]) -> Result<()>;
    /// Replaces `data` on every rank by `root`'s.
    fn broadcast(&mut self, data: &mut [f32], root: usize) -> Result<()>;
    /// Returns once every rank has called it.
    fn barrier(&mut self) -> Result<()>;

    /// Replaces `data` by the element-wise mean over the ranks (the sum, then a multiply
    /// by `1 / size`: the same bits on every rank).
    fn all_reduce_mean(&mut self, data: &mut [f32]) -> Result<()> {
        self.all_reduce_sum(data)?;
        let inv = 1.0 / self.size() as f32;
        data.iter_mut().for_each(|v| *v *= inv);
        Ok(())
    }
}
