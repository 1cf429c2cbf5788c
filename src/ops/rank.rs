//! The largest entries of each row: `argmax` and `topk` over the last axis. They read the
//! tensor back and rank on the CPU (a classifier's output is a few thousand values; the
//! caller wants them on the CPU anyway).

use crate::error::{Result, arg_err};
use crate::tensor::Tensor;

impl Tensor {
    /// The index of the largest value of each row (the last axis), as PyTorch's
    /// `argmax(-1)`: the first one on ties, and a NaN counts as the largest. Reads the
    /// tensor back. An `Err` for a tensor without elements along the last axis.
    pub fn argmax(&self) -> Result<Vec<usize>> {
        Ok(self.topk(1)?.into_iter().map(|row| row[0].0).collect())
    }

    /// The `k` largest values of each row (the last axis) with their indices, largest
    /// first (ties by index; NaN first, as PyTorch). Reads the tensor back. An `Err` when
    /// `k` is 0 or more than the row's length.
    pub fn topk(&self, k: usize) -> Result<Vec<Vec<(usize, f32)>>> {
        let len = self.shape().last().copied().unwrap_or(0);
        if k == 0 || k > len {
            return arg_err!(
                "topk: k = {k} must be within 1..={len}, the last axis of shape {:?}",
                self.shape()
            );
        }
        let values = self.to_vec()?;
        Ok(values
            .chunks_exact(len)
            .map(|row| {
                let mut order: Vec<usize> = (0..len).collect();
                // Descending, NaN first, stable so ties keep their order.
                order.sort_by(|&a, &b| match (row[a].is_nan(), row[b].is_nan()) {
                    (true, false) => std::cmp::Ordering::Less,
                    (false, true) => std::cmp::Ordering::Greater,
                    _ => row[b].total_cmp(&row[a]),
                });
                order.into_iter().take(k).map(|i| (i, row[i])).collect()
            })
            .collect())
    }
}
