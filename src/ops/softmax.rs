//! Softmax and log-softmax over the last axis. Kernel: `shaders/softmax.wgsl`, after two
//! reductions (`shaders/reduce.wgsl`) for each row's maximum and Σ exp(x - max), so rows
//! of any length stay within the loop budget.

use super::reduce::{Reduction, reduce_with};
use crate::error::{Result, arg_err};
use crate::gpu::{Grid, Kernel, kernel};
use crate::tensor::Tensor;

const SOFTMAX: Kernel = kernel!("softmax.wgsl");

/// Each row's maximum and Σ exp(x - maximum), as `[rows, 1]` tensors, for `x` viewed as
/// `[rows, len]` (`len` > 0). A row holding NaN has NaN for both.
pub(crate) fn row_stats(x: &Tensor, rows: usize, len: usize) -> Result<(Tensor, Tensor)> {
    let x2 = x.reshape(&[rows, len])?;
    let row_max = reduce_with(&x2, &[1], true, Reduction::Max, None, 1.0)?;
    let row_sum = reduce_with(&x2, &[1], true, Reduction::SumExp, Some(&row_max), 1.0)?;
    Ok((row_max, row_sum))
}

fn softmax_kernel(x: &Tensor, log: bool) -> Result<Tensor> {
    let Some(&len) = x.shape().last() else {
        return arg_err!("softmax: a scalar tensor has no last axis");
    };
    let y = x.uninit_like(x.shape())?;
    let n = x.numel();
    if n == 0 {
        return Ok(y);
    }
    let (row_max, row_sum) = row_stats(x, n / len, len)?;
    x.device().dispatch(
        &SOFTMAX,
        "main",
        &[("LOG", f64::from(u8::from(log)))],
        &[x.buffer(), row_max.buffer(), row_sum.buffer(), y.buffer()],
        &[n as u32, len as u32],
        Grid::for_items(n as u64, 256).trips(0),
    )?;
    Ok(y)
}

impl Tensor {
    /// `exp(x) / sum(exp(x))` over the last axis.
    pub fn softmax(&self) -> Result<Tensor> {
        softmax_kernel(self, false)
    }

    /// `x - log(sum(exp(x)))` over the last axis, computed stably.
    pub fn log_softmax(&self) -> Result<Tensor> {
        softmax_kernel(self, true)
    }
}
