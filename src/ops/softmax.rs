//! Softmax and log-softmax over the last axis. Kernel: `shaders/softmax.wgsl`.

use crate::error::{Result, arg_err};
use crate::gpu::{Grid, Kernel, kernel};
use crate::tensor::Tensor;

const SOFTMAX: Kernel = kernel!("softmax.wgsl");

fn softmax_kernel(x: &Tensor, log: bool) -> Result<Tensor> {
    let Some(&len) = x.shape().last() else {
        return arg_err!("softmax: a scalar tensor has no last axis");
    };
    let rows = x.numel().checked_div(len).unwrap_or(0);
    let y = x.uninit_like(x.shape())?;
    x.device().dispatch(
        &SOFTMAX,
        "main",
        &[("LOG", f64::from(u8::from(log)))],
        &[x.buffer(), y.buffer()],
        &[rows as u32, len as u32],
        Grid::Linear(if len == 0 { 0 } else { rows as u64 }),
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
