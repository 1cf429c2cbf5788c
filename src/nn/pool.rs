//! Pooling layers, as PyTorch's `nn.MaxPool2d`, `nn.AvgPool2d`, `nn.AdaptiveAvgPool2d`
//! and `nn.AdaptiveMaxPool2d`. They hold no tensors.

use super::{Ctx, Module};
use crate::autograd::Var;
use crate::error::Result;
use crate::ops::pool::Pool2d;

/// Max pooling over fixed windows.
#[derive(Clone, Copy, Debug)]
pub struct MaxPool2d(pub Pool2d);

impl Module for MaxPool2d {
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        ctx.tape.max_pool2d(x, &self.0)
    }
}

/// Average pooling over fixed windows.
#[derive(Clone, Copy, Debug)]
pub struct AvgPool2d {
    /// The windows.
    pub window: Pool2d,
    /// Whether the padding counts in the divisor (PyTorch's default: yes).
    pub count_include_pad: bool,
}

impl AvgPool2d {
    /// Average pooling over `window`, padding counted (PyTorch's default).
    pub fn new(window: Pool2d) -> Self {
        Self {
            window,
            count_include_pad: true,
        }
    }
}

impl Module for AvgPool2d {
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        ctx.tape.avg_pool2d(x, &self.window, self.count_include_pad)
    }
}

/// Adaptive average pooling to a fixed output size.
#[derive(Clone, Copy, Debug)]
pub struct AdaptiveAvgPool2d(pub (usize, usize));

impl Module for AdaptiveAvgPool2d {
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        if self.0 == (1, 1) {
            // The same values; a reduction needs no bins.
            return ctx.tape.global_avg_pool(x);
        }
        ctx.tape.adaptive_avg_pool2d(x, self.0)
    }
}

/// Adaptive max pooling to a fixed output size.
#[derive(Clone, Copy, Debug)]
pub struct AdaptiveMaxPool2d(pub (usize, usize));

impl Module for AdaptiveMaxPool2d {
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        ctx.tape.adaptive_max_pool2d(x, self.0)
    }
}
