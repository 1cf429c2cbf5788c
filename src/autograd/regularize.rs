//! Dropout and stochastic depth on the tape.

use super::{Op, Rule, Tape, Values, Var};
use crate::error::{Result, arg_err};
use crate::ops::dropout::{dropout, dropout_backward};
use crate::rng::Rng;
use crate::tensor::Tensor;

/// A regularizer of input `x` (a node number).
#[derive(Debug)]
#[allow(missing_docs)] // the input's node number and what the backward needs
pub enum RegularizeOp {
    /// Dropout with its kept-element mask (`None`: identity, outside training).
    Dropout {
        x: usize,
        mask: Option<Tensor>,
        p: f32,
    },
    /// Stochastic depth with its per-sample scale `[N, 1, …]` (`None`: identity).
    StochasticDepth {
        x: usize,
        scale: Option<Tensor>,
        p: f32,
    },
}

impl Tape {
    /// Dropout with probability `p` (identity unless `training`), seeded.
    pub fn dropout(&self, x: &Var, p: f32, training: bool, seed: u64) -> Result<Var> {
        self.check_own(&[(x, "dropout input")])?;
        let (y, mask) = dropout(&x.value, p, training, seed)?;
        self.record(&[(x, "dropout input")], y, |ids| {
            Op::Regularize(RegularizeOp::Dropout { x: ids[0], mask, p })
        })
    }
}

/// The per-sample scales of stochastic depth: `1 / (1 - p)` for a sample kept (with
/// probability 1 - p), 0 for one dropped, shaped `[n, 1, …]` to broadcast over `shape`.
pub fn stochastic_depth_scale(shape: &[usize], p: f32, seed: u64) -> (Vec<f32>, Vec<usize>) {
    let mut rng = Rng::new(seed);
    let survival = 1.0 - f64::from(p);
    let values = (0..shape[0])
        .map(|_| {
            if rng.uniform() < survival {
                (1.0 / survival) as f32
            } else {
                0.0
            }
        })
        .collect();
    let mut scale_shape = vec![1; shape.len()];
    scale_shape[0] = shape[0];
    (values, scale_shape)
}

impl Tape {
    /// Stochastic depth (Huang et al., 2016; torchvision's `StochasticDepth(p, "row")`):
    /// in training, each sample of `x` (a residual branch) is dropped whole with
    /// probability `p` and the kept ones are scaled by 1 / (1 - p); the identity outside
    /// training. The per-sample draws come from `seed`, on the CPU.
    pub fn stochastic_depth(&self, x: &Var, p: f32, training: bool, seed: u64) -> Result<Var> {
        self.check_own(&[(x, "stochastic_depth input")])?;
        if !(0.0..=1.0).contains(&p) {
            return arg_err!("stochastic_depth: p {p} must be within [0, 1]");
        }
        if x.shape().is_empty() {
            return arg_err!("stochastic_depth: x needs a batch dimension, got shape []");
        }
        let scale = if training && p > 0.0 {
            let (values, shape) = stochastic_depth_scale(x.shape(), p, seed);
            Some(Tensor::from_vec(x.value.device(), values, &shape)?)
        } else {
            None
        };
        let y = match &scale {
            Some(scale) => x.value.mul(scale)?,
            None => x.value.clone(),
        };
        self.record(&[(x, "stochastic_depth input")], y, |ids| {
            Op::Regularize(RegularizeOp::StochasticDepth {
                x: ids[0],
                scale,
                p,
            })
        })
    }
}

impl Rule for RegularizeOp {
    fn inputs(&self) -> Vec<usize> {
        match self {
            RegularizeOp::Dropout { x, .. } | RegularizeOp::StochasticDepth { x, .. } => vec![*x],
        }
    }

    fn name(&self) -> String {
        match self {
            RegularizeOp::Dropout { p, .. } => format!("dropout p={p}"),
            RegularizeOp::StochasticDepth { p, .. } => format!("stochastic_depth p={p}"),
        }
    }

    fn backward(
        &self,
        _value: Values<'_>,
        _out: &Tensor,
        g: &Tensor,
    ) -> Result<Vec<(usize, Tensor)>> {
        let (x, grad) = match self {
            RegularizeOp::Dropout { x, mask, p } => (
                *x,
                match mask {
                    Some(mask) => dropout_backward(g, mask, *p)?,
                    None => g.clone(),
                },
            ),
            RegularizeOp::StochasticDepth { x, scale, .. } => (
                *x,
                match scale {
                    Some(scale) => g.mul(scale)?,
                    None => g.clone(),
                },
            ),
        };
        Ok(vec![(x, grad)])
    }
}
