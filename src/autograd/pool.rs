//! Pooling on the tape.

use super::{Op, Rule, Tape, Values, Var};
use crate::error::Result;
use crate::ops::pool::{
    Pool2d, PoolIndices, adaptive_avg_pool2d, adaptive_avg_pool2d_backward, adaptive_max_pool2d,
    avg_pool2d, avg_pool2d_backward, global_avg_pool2d_backward, max_pool2d, max_pool2d_backward,
};
use crate::tensor::Tensor;

/// A pooling of input `x` (a node number) and what its backward needs.
#[derive(Debug)]
#[allow(missing_docs)] // the input's node number and the pooling's parameters
pub enum PoolOp {
    /// Mean over H×W: `[N, C, H, W]` → `[N, C, 1, 1]`.
    GlobalAvg { x: usize },
    /// Max pooling (fixed or adaptive windows), with where each maximum was.
    Max { x: usize, indices: PoolIndices },
    /// Average pooling over fixed windows.
    Avg {
        x: usize,
        window: Pool2d,
        count_include_pad: bool,
    },
    /// Adaptive average pooling.
    AdaptiveAvg { x: usize },
}

impl Tape {
    /// Mean over H×W: `[N, C, H, W]` → `[N, C, 1, 1]`.
    pub fn global_avg_pool(&self, x: &Var) -> Result<Var> {
        let op = |x| Op::Pool(PoolOp::GlobalAvg { x });
        self.unary(x, "global_avg_pool input", |x| x.global_avg_pool2d(), op)
    }

    /// Max pooling over `window` (PyTorch's `max_pool2d`, ceil_mode included).
    pub fn max_pool2d(&self, x: &Var, window: &Pool2d) -> Result<Var> {
        self.check_own(&[(x, "max_pool2d input")])?;
        let (y, indices) = max_pool2d(&x.value, window)?;
        self.record(&[(x, "max_pool2d input")], y, |ids| {
            Op::Pool(PoolOp::Max { x: ids[0], indices })
        })
    }

    /// Average pooling over `window` (PyTorch's `avg_pool2d`).
    pub fn avg_pool2d(&self, x: &Var, window: &Pool2d, count_include_pad: bool) -> Result<Var> {
        let f = |x: &Tensor| avg_pool2d(x, window, count_include_pad);
        let op = |x| {
            Op::Pool(PoolOp::Avg {
                x,
                window: *window,
                count_include_pad,
            })
        };
        self.unary(x, "avg_pool2d input", f, op)
    }

    /// Adaptive average pooling to `output` (PyTorch's `adaptive_avg_pool2d`).
    pub fn adaptive_avg_pool2d(&self, x: &Var, output: (usize, usize)) -> Result<Var> {
        let f = |x: &Tensor| adaptive_avg_pool2d(x, output);
        let op = |x| Op::Pool(PoolOp::AdaptiveAvg { x });
        self.unary(x, "adaptive_avg_pool2d input", f, op)
    }

    /// Adaptive max pooling to `output` (PyTorch's `adaptive_max_pool2d`).
    pub fn adaptive_max_pool2d(&self, x: &Var, output: (usize, usize)) -> Result<Var> {
        self.check_own(&[(x, "adaptive_max_pool2d input")])?;
        let (y, indices) = adaptive_max_pool2d(&x.value, output)?;
        self.record(&[(x, "adaptive_max_pool2d input")], y, |ids| {
            Op::Pool(PoolOp::Max { x: ids[0], indices })
        })
    }
}

impl Rule for PoolOp {
    fn inputs(&self) -> Vec<usize> {
        let (PoolOp::GlobalAvg { x }
        | PoolOp::Max { x, .. }
        | PoolOp::Avg { x, .. }
        | PoolOp::AdaptiveAvg { x }) = self;
        vec![*x]
    }

    fn name(&self) -> String {
        match self {
            PoolOp::GlobalAvg { .. } => "global_avg_pool".into(),
            PoolOp::Max { .. } => "max_pool2d".into(),
            PoolOp::Avg { window, .. } => format!(
                "avg_pool2d kernel {:?} stride {:?} pad {:?}",
                window.kernel, window.stride, window.padding
            ),
            PoolOp::AdaptiveAvg { .. } => "adaptive_avg_pool2d".into(),
        }
    }

    fn backward(
        &self,
        value: Values<'_>,
        _out: &Tensor,
        g: &Tensor,
    ) -> Result<Vec<(usize, Tensor)>> {
        let (x, dx) = match self {
            PoolOp::GlobalAvg { x } => (x, global_avg_pool2d_backward(g, value(*x).shape())?),
            PoolOp::Max { x, indices } => (x, max_pool2d_backward(g, indices, value(*x).shape())?),
            PoolOp::Avg {
                x,
                window,
                count_include_pad,
            } => {
                let shape = value(*x).shape();
                (
                    x,
                    avg_pool2d_backward(g, shape, window, *count_include_pad)?,
                )
            }
            PoolOp::AdaptiveAvg { x } => (x, adaptive_avg_pool2d_backward(g, value(*x).shape())?),
        };
        Ok(vec![(*x, dx)])
    }
}
