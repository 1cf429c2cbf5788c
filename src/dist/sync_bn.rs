//! The collectives of batch norm with statistics over every rank's batch (sync batch
//! norm, PyTorch's `SyncBatchNorm`): each rank merges its own moments, the ranks gather
//! everyone's, and every rank merges those in rank order, getting the same bits; in the
//! backward, each rank's sums are summed over the ranks.

use super::SharedComm;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Every rank's moments of each channel, `[C, ranks, 3]` (count, mean, M2), from this
/// rank's `partial` `[C, segments, 3]`: merged per channel here (in f64, segment order),
/// then gathered (an all-reduce of a buffer in which each rank fills its own slot, so the
/// sum is exact). Batch norm's statistics merge the result as segments, in rank order.
/// Also returns the count over all ranks.
pub(crate) fn gather_moments(comm: &SharedComm, partial: &Tensor) -> Result<(Tensor, usize)> {
    let [c, segments, 3] = *partial.shape() else {
        return Err(Error::Internal(format!(
            "sync batch norm: moments shaped {:?}",
            partial.shape()
        )));
    };
    let values = partial.to_vec()?;
    let (rank, size) = (comm.rank(), comm.size());
    let mut gathered = vec![0.0f32; size * c * 3];
    for ch in 0..c {
        let (mut n, mut mean, mut m2) = (0.0f64, 0.0f64, 0.0f64);
        for seg in values[ch * segments * 3..(ch + 1) * segments * 3].chunks_exact(3) {
            let (nb, mb, m2b) = (f64::from(seg[0]), f64::from(seg[1]), f64::from(seg[2]));
            let total = n + nb;
            if total > 0.0 {
                let d = mb - mean;
                let f = nb / total;
                mean += d * f;
                m2 += m2b + d * d * n * f;
                n = total;
            }
        }
        let at = (rank * c + ch) * 3;
        gathered[at..at + 3].copy_from_slice(&[n as f32, mean as f32, m2 as f32]);
    }
    comm.lock().all_reduce_sum(&mut gathered)?;
    // [ranks, C, 3] to [C, ranks, 3].
    let count = (0..size).map(|r| gathered[r * c * 3] as usize).sum();
    let mut by_channel = vec![0.0f32; size * c * 3];
    for r in 0..size {
        for ch in 0..c {
            let from = (r * c + ch) * 3;
            let to = (ch * size + r) * 3;
            by_channel[to..to + 3].copy_from_slice(&gathered[from..from + 3]);
        }
    }
    let moments = Tensor::from_slice(partial.device(), &by_channel, &[c, size, 3])?;
    Ok((moments, count))
}

/// `partial` `[C, segments, k]` summed over its segments (in f64, segment order) and
/// then over the ranks: `[C, 1, k]`, the same bits on every rank; and `count` summed
/// over the ranks.
pub(crate) fn sum_over_ranks(
    comm: &SharedComm,
    partial: &Tensor,
    count: usize,
) -> Result<(Tensor, usize)> {
    let [c, segments, k] = *partial.shape() else {
        return Err(Error::Internal(format!(
            "sync batch norm: sums shaped {:?}",
            partial.shape()
        )));
    };
    let values = partial.to_vec()?;
    // The count rides along as the last value (exact in f32 up to 2^24 per rank).
    let mut sums = vec![0.0f32; c * k + 1];
    sums[c * k] = count as f32;
    for ch in 0..c {
        for j in 0..k {
            let total: f64 = (0..segments)
                .map(|s| f64::from(values[(ch * segments + s) * k + j]))
                .sum();
            sums[ch * k + j] = total as f32;
        }
    }
    comm.lock().all_reduce_sum(&mut sums)?;
    let total = Tensor::from_slice(partial.device(), &sums[..c * k], &[c, 1, k])?;
    Ok((total, sums[c * k] as usize))
}
