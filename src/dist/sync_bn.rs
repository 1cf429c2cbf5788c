//! The collectives of batch norm with statistics over every rank's batch (sync batch
//! norm, PyTorch's `SyncBatchNorm`): each rank merges its own moments, the ranks gather
//! everyone's, and every rank merges those in rank order, getting the same bits; in the
//! backward, each rank's sums are summed over the ranks.
//!
//! Counts travel as two f32s each, `count >> 20` and `count & (2^20 - 1)`, both exact in
//! f32, so any count below 2^44 per rank arrives exactly (one f32 would round past 2^24:
//! 256 images of 112×112 pixels on 8 ranks are 2^24.6), and are added up as integers.

use super::SharedComm;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Bits of a count in its low part.
const LOW_BITS: u32 = 20;

/// `count` as two f32s, both exact.
fn split_count(count: usize) -> [f32; 2] {
    [
        (count >> LOW_BITS) as f32,
        (count & ((1 << LOW_BITS) - 1)) as f32,
    ]
}

/// The count [`split_count`] split.
fn join_count([high, low]: [f32; 2]) -> usize {
    ((high as usize) << LOW_BITS) + low as usize
}

/// The sum of every rank's count, from the all-reduced buffer's last `2 · size` values
/// (rank r's count at `2r`, `2r + 1`, the others' slots 0).
fn total_count(slots: &[f32]) -> usize {
    slots
        .chunks_exact(2)
        .map(|pair| join_count([pair[0], pair[1]]))
        .sum()
}

/// Every rank's moments of each channel, `[C, ranks, 3]` (count, mean, M2), from this
/// rank's `partial` `[C, segments, 3]` over `count` values per channel: merged per
/// channel here (in f64, segment order), then gathered (an all-reduce of a buffer in
/// which each rank fills its own slot, so the sum is exact). Batch norm's statistics
/// merge the result as segments, in rank order. Also returns the count over all ranks.
pub(crate) fn gather_moments(
    comm: &SharedComm,
    partial: &Tensor,
    count: usize,
) -> Result<(Tensor, usize)> {
    let [c, segments, 3] = *partial.shape() else {
        return Err(Error::Internal(format!(
            "sync batch norm: moments shaped {:?}",
            partial.shape()
        )));
    };
    let values = partial.to_vec()?;
    let (rank, size) = (comm.rank(), comm.size());
    let moments = size * c * 3;
    let mut gathered = vec![0.0f32; moments + 2 * size];
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
    gathered[moments + 2 * rank..moments + 2 * rank + 2].copy_from_slice(&split_count(count));
    comm.lock().all_reduce_sum(&mut gathered)?;
    // [ranks, C, 3] to [C, ranks, 3].
    let mut by_channel = vec![0.0f32; moments];
    for r in 0..size {
        for ch in 0..c {
            let from = (r * c + ch) * 3;
            let to = (ch * size + r) * 3;
            by_channel[to..to + 3].copy_from_slice(&gathered[from..from + 3]);
        }
    }
    let merged = Tensor::from_slice(partial.device(), &by_channel, &[c, size, 3])?;
    Ok((merged, total_count(&gathered[moments..])))
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
    let (rank, size) = (comm.rank(), comm.size());
    let mut sums = vec![0.0f32; c * k + 2 * size];
    for ch in 0..c {
        for j in 0..k {
            let total: f64 = (0..segments)
                .map(|s| f64::from(values[(ch * segments + s) * k + j]))
                .sum();
            sums[ch * k + j] = total as f32;
        }
    }
    sums[c * k + 2 * rank..c * k + 2 * rank + 2].copy_from_slice(&split_count(count));
    comm.lock().all_reduce_sum(&mut sums)?;
    let total = Tensor::from_slice(partial.device(), &sums[..c * k], &[c, 1, k])?;
    Ok((total, total_count(&sums[c * k..])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_travel_exactly_past_f32s_integers() {
        for count in [0, 1, 1 << 20, (1 << 24) + 1, 3_211_265, (1 << 40) + 12_345] {
            assert_eq!(join_count(split_count(count)), count);
        }
        let mut slots = vec![0.0f32; 6];
        slots[0..2].copy_from_slice(&split_count((1 << 24) + 1));
        slots[4..6].copy_from_slice(&split_count((1 << 24) + 3));
        assert_eq!(total_count(&slots), (1 << 25) + 4);
    }
}
