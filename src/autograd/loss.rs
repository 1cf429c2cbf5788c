//! Softmax, log-softmax and the cross-entropy loss on the tape.

use super::{Op, Rule, Tape, Values, Var};
use crate::error::Result;
use crate::ops::loss::{
    bce_with_logits, bce_with_logits_backward, cross_entropy, cross_entropy_backward,
    pixel_cross_entropy, pixel_cross_entropy_backward,
};
use crate::tensor::Tensor;

/// A softmax or loss op of input `x` (a node number).
#[derive(Debug)]
#[allow(missing_docs)] // the input's node number and the loss's parameters
pub enum LossOp {
    /// Softmax over the last axis.
    Softmax { x: usize },
    /// Log-softmax over the last axis.
    LogSoftmax { x: usize },
    /// Mean cross-entropy with label smoothing.
    CrossEntropy {
        logits: usize,
        targets: Vec<usize>,
        smoothing: f32,
    },
    /// Mean binary cross-entropy with logits, against fixed targets.
    BceWithLogits { logits: usize, targets: Tensor },
    /// Mean cross-entropy per pixel over the channels, some pixels ignored.
    PixelCrossEntropy {
        logits: usize,
        targets: Vec<usize>,
        ignore_index: Option<usize>,
    },
}

impl Tape {
    /// Softmax over the last axis.
    pub fn softmax(&self, x: &Var) -> Result<Var> {
        let op = |x| Op::Loss(LossOp::Softmax { x });
        self.unary(x, "softmax input", |x| x.softmax(), op)
    }

    /// Log-softmax over the last axis.
    pub fn log_softmax(&self, x: &Var) -> Result<Var> {
        let op = |x| Op::Loss(LossOp::LogSoftmax { x });
        self.unary(x, "log_softmax input", |x| x.log_softmax(), op)
    }

    /// Mean cross-entropy of `logits [N, C]` against class indices, with label smoothing.
    pub fn cross_entropy(&self, logits: &Var, targets: &[usize], smoothing: f32) -> Result<Var> {
        let op = |logits| {
            Op::Loss(LossOp::CrossEntropy {
                logits,
                targets: targets.to_vec(),
                smoothing,
            })
        };
        let f = |x: &Tensor| cross_entropy(x, targets, smoothing);
        self.unary(logits, "cross_entropy logits", f, op)
    }

    /// Mean binary cross-entropy of `logits` against `targets` (probabilities in [0, 1],
    /// the same shape; no gradient flows to them): a GAN's discriminator loss, with
    /// targets of ones for real images and zeros for generated ones.
    pub fn bce_with_logits(&self, logits: &Var, targets: &Tensor) -> Result<Var> {
        let op = |logits| {
            Op::Loss(LossOp::BceWithLogits {
                logits,
                targets: targets.clone(),
            })
        };
        let f = |x: &Tensor| bce_with_logits(x, targets);
        self.unary(logits, "bce_with_logits logits", f, op)
    }

    /// Mean cross-entropy per pixel of `logits` `[N, C, H, W]` against one class per
    /// pixel, pixels whose target is `ignore_index` left out (semantic segmentation; see
    /// [`crate::ops::loss::pixel_cross_entropy`]).
    pub fn pixel_cross_entropy(
        &self,
        logits: &Var,
        targets: &[usize],
        ignore_index: Option<usize>,
    ) -> Result<Var> {
        let op = |logits| {
            Op::Loss(LossOp::PixelCrossEntropy {
                logits,
                targets: targets.to_vec(),
                ignore_index,
            })
        };
        let f = |x: &Tensor| pixel_cross_entropy(x, targets, ignore_index);
        self.unary(logits, "pixel_cross_entropy logits", f, op)
    }
}

impl Rule for LossOp {
    fn inputs(&self) -> Vec<usize> {
        let (LossOp::Softmax { x }
        | LossOp::LogSoftmax { x }
        | LossOp::CrossEntropy { logits: x, .. }
        | LossOp::BceWithLogits { logits: x, .. }
        | LossOp::PixelCrossEntropy { logits: x, .. }) = self;
        vec![*x]
    }

    fn name(&self) -> String {
        match self {
            LossOp::Softmax { .. } => "softmax".into(),
            LossOp::LogSoftmax { .. } => "log_softmax".into(),
            LossOp::CrossEntropy { smoothing, .. } => {
                format!("cross_entropy smoothing={smoothing}")
            }
            LossOp::BceWithLogits { .. } => "bce_with_logits".into(),
            LossOp::PixelCrossEntropy { ignore_index, .. } => {
                format!("pixel_cross_entropy ignore={ignore_index:?}")
            }
        }
    }

    fn backward(
        &self,
        value: Values<'_>,
        out: &Tensor,
        g: &Tensor,
    ) -> Result<Vec<(usize, Tensor)>> {
        let last = |t: &Tensor| t.ndim().saturating_sub(1);
        Ok(match self {
            // y = softmax(x): dx = y · (g - Σ g·y), the sum over each row.
            LossOp::Softmax { x } => {
                let gy = g.mul(out)?;
                let row = gy.sum(&[last(&gy)], true)?;
                vec![(*x, gy.sub(&out.mul(&row)?)?)]
            }
            // y = log_softmax(x): dx = g - exp(y) · Σ g.
            LossOp::LogSoftmax { x } => {
                let row = g.sum(&[last(g)], true)?;
                vec![(*x, g.sub(&out.exp()?.mul(&row)?)?)]
            }
            LossOp::CrossEntropy {
                logits,
                targets,
                smoothing,
            } => {
                // The rule for a unit incoming gradient, scaled by the actual one (a
                // one-element tensor that stays on the device).
                let unit = cross_entropy_backward(value(*logits), targets, *smoothing, 1.0)?;
                vec![(*logits, unit.mul(g)?)]
            }
            LossOp::BceWithLogits { logits, targets } => {
                let unit = bce_with_logits_backward(value(*logits), targets)?;
                vec![(*logits, unit.mul(g)?)]
            }
            LossOp::PixelCrossEntropy {
                logits,
                targets,
                ignore_index,
            } => {
                let unit = pixel_cross_entropy_backward(value(*logits), targets, *ignore_index)?;
                vec![(*logits, unit.mul(g)?)]
            }
        })
    }
}
