//! What data-parallel training does with a [`Communicator`]: start every rank from rank
//! 0's parameters and buffers, give each rank its shard of an epoch's order, and average
//! gradients in a few flat buckets rather than one collective per parameter.

use std::collections::HashMap;

use super::Communicator;
use crate::error::{Error, Result};
use crate::nn::{ParamKind, ParamStore};
use crate::tensor::Tensor;

/// Replaces every tensor of `store` (parameters and buffers) by rank 0's, as DDP does at
/// its start. Every rank must hold the same names and shapes in the same order (the same
/// model built the same way); an `Err` names the first difference.
pub fn broadcast_store(comm: &mut dyn Communicator, store: &mut ParamStore) -> Result<()> {
    broadcast_where(comm, store, |_| true)
}

/// Replaces the buffers of `store` (batch norm's running statistics and counters) by
/// rank 0's: each rank's own statistics of its shard otherwise (DDP's default too).
pub fn broadcast_buffers(comm: &mut dyn Communicator, store: &mut ParamStore) -> Result<()> {
    broadcast_where(comm, store, |kind| kind != ParamKind::Parameter)
}

/// Rank 0's tensors of the kinds `take` accepts, in store order.
fn broadcast_where(
    comm: &mut dyn Communicator,
    store: &mut ParamStore,
    take: impl Fn(ParamKind) -> bool,
) -> Result<()> {
    let chosen: Vec<(String, Tensor)> = store
        .iter_all()
        .filter(|(_, _, kind)| take(*kind))
        .map(|(n, t, _)| (n.to_string(), t.clone()))
        .collect();
    // The layout first, as numbers every rank can compare: each tensor's element count.
    let mine: Vec<f32> = chosen.iter().map(|(_, t)| t.numel() as f32).collect();
    let mut count = [mine.len() as f32];
    comm.broadcast(&mut count, 0)?;
    if count[0] as usize != mine.len() {
        return Err(Error::Distributed(format!(
            "rank {} holds {} tensors to broadcast, rank 0 {}: the ranks built different \
             models",
            comm.rank(),
            mine.len(),
            count[0]
        )));
    }
    let mut sizes = mine.clone();
    comm.broadcast(&mut sizes, 0)?;
    if let Some(i) = (0..sizes.len()).find(|&i| sizes[i] != mine[i]) {
        let (name, t) = &chosen[i];
        return Err(Error::Distributed(format!(
            "rank {}'s {name:?} {:?} has {} elements, rank 0's tensor at that place {}",
            comm.rank(),
            t.shape(),
            mine[i],
            sizes[i]
        )));
    }
    let mut flat = Vec::new();
    for (_, t) in &chosen {
        flat.extend(t.to_vec()?);
    }
    comm.broadcast(&mut flat, 0)?;
    let mut at = 0;
    for (name, old) in &chosen {
        let n = old.numel();
        let new = Tensor::from_slice(old.device(), &flat[at..at + n], old.shape())?;
        store.set(name, new)?;
        at += n;
    }
    Ok(())
}

/// Averages gradients over the ranks in flat buckets of at most `bucket_floats` values
/// each (a parameter larger than that gets a bucket of its own): a few large collectives
/// instead of one per parameter, as DDP's buckets.
#[derive(Clone, Copy, Debug)]
pub struct GradientBuckets {
    /// Most values in one bucket.
    pub bucket_floats: usize,
}

impl Default for GradientBuckets {
    /// 25 MB buckets, PyTorch's default.
    fn default() -> Self {
        Self {
            bucket_floats: 25 * 1024 * 1024 / 4,
        }
    }
}

impl GradientBuckets {
    /// Replaces each gradient of `grads` by its mean over the ranks. Gradients go in
    /// name order, so every rank packs the same buckets; every rank must hold the same
    /// names and shapes. Returns how many collectives it ran.
    pub fn average(
        &self,
        comm: &mut dyn Communicator,
        grads: &mut HashMap<String, Tensor>,
    ) -> Result<usize> {
        let mut names: Vec<String> = grads.keys().cloned().collect();
        names.sort();
        let mut collectives = 0;
        let mut start = 0;
        while start < names.len() {
            // The bucket: names[start..end], at least one gradient.
            let mut end = start;
            let mut floats = 0;
            while end < names.len()
                && (end == start || floats + grads[&names[end]].numel() <= self.bucket_floats)
            {
                floats += grads[&names[end]].numel();
                end += 1;
            }
            let mut flat = Vec::with_capacity(floats);
            for name in &names[start..end] {
                flat.extend(grads[name].to_vec()?);
            }
            comm.all_reduce_mean(&mut flat)?;
            collectives += 1;
            let mut at = 0;
            for name in &names[start..end] {
                let g = &grads[name];
                let n = g.numel();
                let mean = Tensor::from_slice(g.device(), &flat[at..at + n], g.shape())?;
                grads.insert(name.clone(), mean);
                at += n;
            }
            start = end;
        }
        Ok(collectives)
    }
}

/// Rank `rank`'s share of an epoch's `order` among `size` ranks, as PyTorch's
/// DistributedSampler: the order padded to a multiple of `size` by repeating its start,
/// then every `size`-th item from `rank`. All ranks get the same count, and together
/// they cover the order; every rank must shuffle with the same seed.
pub fn shard(order: &[usize], rank: usize, size: usize) -> Result<Vec<usize>> {
    if size == 0 || rank >= size {
        return Err(Error::InvalidArgument(format!(
            "shard: rank {rank} of a group of {size}"
        )));
    }
    if order.is_empty() {
        return Ok(Vec::new());
    }
    let per_rank = order.len().div_ceil(size);
    Ok((0..per_rank)
        .map(|i| order[(i * size + rank) % order.len()])
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_order_evenly() {
        let order: Vec<usize> = (0..10).rev().collect();
        let shards: Vec<Vec<usize>> = (0..3).map(|r| shard(&order, r, 3).unwrap()).collect();
        assert!(shards.iter().all(|s| s.len() == 4));
        assert_eq!(shards[0], [9, 6, 3, 0]);
        assert_eq!(shards[1], [8, 5, 2, 9]); // padded with the order's start
        let mut all: Vec<usize> = shards.concat();
        all.sort();
        all.dedup();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!(shard(&order, 0, 1).unwrap(), order);
        assert!(shard(&order, 3, 3).is_err());
        assert!(shard(&order, 0, 0).is_err());
        assert!(shard(&[], 1, 2).unwrap().is_empty());
    }
}
