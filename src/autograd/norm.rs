//! Batch, layer and group norm on the tape.

use super::{Op, Rule, Tape, Values, Var};
use crate::dist::SharedComm;
use crate::error::Result;
use crate::ops::norm::{
    BnAct, ChannelMoments, batch_norm_act_backward_owned, batch_norm_act_eval,
    batch_norm_act_eval_backward, batch_norm_act_train_synced, group_norm, group_norm_backward,
    layer_norm, layer_norm_backward,
};
use crate::tensor::Tensor;

/// A normalization: input `x`, optional affine `weight` and `bias` (node numbers), and the
/// statistics its backward needs.
#[derive(Debug)]
#[allow(missing_docs)] // node numbers and saved statistics, as named
pub enum NormOp {
    /// Batch norm in training mode, with the batch statistics, then the fused `act`.
    BatchNorm {
        x: usize,
        weight: Option<usize>,
        bias: Option<usize>,
        save_mean: Tensor,
        save_invstd: Tensor,
        /// The forward's scale and shift per channel (the fused activation's gradient
        /// is read off them).
        scale_shift: Tensor,
        act: BnAct,
        /// The ranks the statistics spanned (sync batch norm).
        sync: Option<SharedComm>,
    },
    /// Batch norm in evaluation mode (the running statistics are constants), then the
    /// fused `act`.
    BatchNormEval {
        x: usize,
        weight: Option<usize>,
        bias: Option<usize>,
        running_mean: Tensor,
        running_var: Tensor,
        eps: f32,
        act: BnAct,
    },
    /// Layer norm over the last `ndim` dims.
    LayerNorm {
        x: usize,
        weight: Option<usize>,
        bias: Option<usize>,
        ndim: usize,
        mean: Tensor,
        invstd: Tensor,
    },
    /// Group norm with `groups` groups.
    GroupNorm {
        x: usize,
        weight: Option<usize>,
        bias: Option<usize>,
        groups: usize,
        mean: Tensor,
        invstd: Tensor,
    },
}

/// Where a training batch norm's statistics come from besides a pass over its input.
#[derive(Clone, Copy, Debug, Default)]
pub struct BatchStats<'a> {
    /// The moments the op that computed the input wrote on the way (see
    /// [`Tape::conv2d_with_moments`]), merged instead of a pass over the input.
    pub moments: Option<&'a ChannelMoments>,
    /// The ranks whose batches the statistics span (sync batch norm, PyTorch's
    /// `SyncBatchNorm`): each rank's moments are gathered and merged in the forward, and
    /// the backward's sums added up over the ranks. Every rank must run the same batch
    /// norms in the same order.
    pub sync: Option<&'a SharedComm>,
}

/// Batch norm's running statistics.
#[derive(Clone, Copy, Debug)]
pub struct RunningStats<'a> {
    /// The running mean, `[C]`.
    pub mean: &'a Tensor,
    /// The running variance, `[C]`.
    pub var: &'a Tensor,
}

/// The inputs of a norm: `x`, then the weight and bias that are given.
fn norm_inputs<'a>(
    x: &'a Var,
    weight: Option<&'a Var>,
    bias: Option<&'a Var>,
) -> Vec<(&'a Var, &'a str)> {
    [
        Some((x, "norm input")),
        weight.map(|w| (w, "norm weight")),
        bias.map(|b| (b, "norm bias")),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// How a fused activation shows in an op's name: `batch_norm+relu6`.
fn act_suffix(act: BnAct) -> &'static str {
    match act {
        BnAct::Identity => "",
        BnAct::Relu => "+relu",
        BnAct::Relu6 => "+relu6",
    }
}

/// The tensor of an optional value.
fn tensor(v: Option<&Var>) -> Option<&Tensor> {
    v.map(|v| &v.value)
}

/// The node numbers of (weight, bias) among `ids` (x first, then those given).
fn affine_ids(ids: &[usize], weight: bool, bias: bool) -> (Option<usize>, Option<usize>) {
    let w = weight.then(|| ids[1]);
    let b = bias.then(|| ids[1 + usize::from(weight)]);
    (w, b)
}

impl Tape {
    /// Batch norm in training mode (batch statistics); returns the output and the new
    /// running mean and variance (PyTorch's momentum semantics: `new = (1 - momentum) ·
    /// old + momentum · batch`).
    pub fn batch_norm_train(
        &self,
        x: &Var,
        weight: Option<&Var>,
        bias: Option<&Var>,
        running: RunningStats,
        momentum: f32,
        eps: f32,
    ) -> Result<(Var, Tensor, Tensor)> {
        let affine = (weight, bias);
        self.batch_norm_act_train(x, affine, running, (momentum, eps), BnAct::Identity)
    }

    /// [`Tape::batch_norm_train`] followed by `act`, as one op: one pass over the
    /// activations each way instead of two.
    pub fn batch_norm_act_train(
        &self,
        x: &Var,
        affine: (Option<&Var>, Option<&Var>),
        running: RunningStats,
        hyper: (f32, f32),
        act: BnAct,
    ) -> Result<(Var, Tensor, Tensor)> {
        self.batch_norm_act_train_from(x, BatchStats::default(), affine, running, hyper, act)
    }

    /// [`Tape::batch_norm_act_train`], with the batch statistics as `stats` says: merged
    /// from the moments the convolution that computed `x` wrote on the way
    /// ([`Tape::conv2d_with_moments`], which saves a pass over `x`), and over every
    /// rank's batch (sync batch norm, forward and backward).
    pub fn batch_norm_act_train_from(
        &self,
        x: &Var,
        stats: BatchStats,
        (weight, bias): (Option<&Var>, Option<&Var>),
        running: RunningStats,
        hyper: (f32, f32),
        act: BnAct,
    ) -> Result<(Var, Tensor, Tensor)> {
        let inputs = norm_inputs(x, weight, bias);
        self.check_own(&inputs)?;
        let affine = (tensor(weight), tensor(bias));
        let running = (running.mean, running.var);
        let from = (stats.moments, stats.sync);
        let r = batch_norm_act_train_synced(&x.value, from, affine, running, hyper, act)?;
        let sync = stats.sync.cloned();
        let (save_mean, save_invstd, scale_shift) = (r.save_mean, r.save_invstd, r.scale_shift);
        let y = self.record(&inputs, r.y, |ids| {
            let (weight, bias) = affine_ids(ids, weight.is_some(), bias.is_some());
            Op::Norm(NormOp::BatchNorm {
                x: ids[0],
                weight,
                bias,
                save_mean,
                save_invstd,
                scale_shift,
                act,
                sync,
            })
        })?;
        Ok((y, r.running_mean, r.running_var))
    }

    /// Batch norm in evaluation mode (running statistics). Gradients flow through it to
    /// the input and the affine parameters, as through a frozen batch norm in PyTorch.
    pub fn batch_norm_eval(
        &self,
        x: &Var,
        weight: Option<&Var>,
        bias: Option<&Var>,
        running: RunningStats,
        eps: f32,
    ) -> Result<Var> {
        self.batch_norm_act_eval(x, (weight, bias), running, eps, BnAct::Identity)
    }

    /// [`Tape::batch_norm_eval`] followed by `act`, as one op.
    pub fn batch_norm_act_eval(
        &self,
        x: &Var,
        (weight, bias): (Option<&Var>, Option<&Var>),
        running: RunningStats,
        eps: f32,
        act: BnAct,
    ) -> Result<Var> {
        let inputs = norm_inputs(x, weight, bias);
        self.check_own(&inputs)?;
        let y = batch_norm_act_eval(
            &x.value,
            (tensor(weight), tensor(bias)),
            (running.mean, running.var),
            eps,
            act,
        )?;
        self.record(&inputs, y, |ids| {
            let (weight, bias) = affine_ids(ids, weight.is_some(), bias.is_some());
            Op::Norm(NormOp::BatchNormEval {
                x: ids[0],
                weight,
                bias,
                running_mean: running.mean.clone(),
                running_var: running.var.clone(),
                eps,
                act,
            })
        })
    }

    /// Layer norm over the last `ndim` dims, with optional affine parameters of that
    /// trailing shape.
    pub fn layer_norm(
        &self,
        x: &Var,
        ndim: usize,
        weight: Option<&Var>,
        bias: Option<&Var>,
        eps: f32,
    ) -> Result<Var> {
        let inputs = norm_inputs(x, weight, bias);
        self.check_own(&inputs)?;
        let (y, mean, invstd) = layer_norm(&x.value, ndim, tensor(weight), tensor(bias), eps)?;
        self.record(&inputs, y, |ids| {
            let (weight, bias) = affine_ids(ids, weight.is_some(), bias.is_some());
            Op::Norm(NormOp::LayerNorm {
                x: ids[0],
                weight,
                bias,
                ndim,
                mean,
                invstd,
            })
        })
    }

    /// Group norm with `groups` groups over the channels, optional affine `[C]`.
    pub fn group_norm(
        &self,
        x: &Var,
        groups: usize,
        weight: Option<&Var>,
        bias: Option<&Var>,
        eps: f32,
    ) -> Result<Var> {
        let inputs = norm_inputs(x, weight, bias);
        self.check_own(&inputs)?;
        let (y, mean, invstd) = group_norm(&x.value, groups, tensor(weight), tensor(bias), eps)?;
        self.record(&inputs, y, |ids| {
            let (weight, bias) = affine_ids(ids, weight.is_some(), bias.is_some());
            Op::Norm(NormOp::GroupNorm {
                x: ids[0],
                weight,
                bias,
                groups,
                mean,
                invstd,
            })
        })
    }
}

impl Rule for NormOp {
    fn inputs(&self) -> Vec<usize> {
        let (NormOp::BatchNorm {
            x, weight, bias, ..
        }
        | NormOp::BatchNormEval {
            x, weight, bias, ..
        }
        | NormOp::LayerNorm {
            x, weight, bias, ..
        }
        | NormOp::GroupNorm {
            x, weight, bias, ..
        }) = self;
        [Some(*x), *weight, *bias].into_iter().flatten().collect()
    }

    fn name(&self) -> String {
        match self {
            NormOp::BatchNorm { act, .. } => format!("batch_norm{}", act_suffix(*act)),
            NormOp::BatchNormEval { act, .. } => {
                format!("batch_norm{} (eval)", act_suffix(*act))
            }
            NormOp::LayerNorm { ndim, .. } => format!("layer_norm over {ndim} dims"),
            NormOp::GroupNorm { groups, .. } => format!("group_norm {groups} groups"),
        }
    }

    fn backward(
        &self,
        value: Values<'_>,
        out: &Tensor,
        g: &Tensor,
    ) -> Result<Vec<(usize, Tensor)>> {
        // A clone shares g's storage, so nothing is written over it.
        self.backward_owned(value, out, g.clone())
    }

    fn backward_owned(
        &self,
        value: Values<'_>,
        out: &Tensor,
        g: Tensor,
    ) -> Result<Vec<(usize, Tensor)>> {
        let weight_of = |w: &Option<usize>| w.map(value);
        // A fused activation's gradient is read off the output.
        let fused = |act: &BnAct| (*act != BnAct::Identity).then_some((*act, out));
        let ((dx, dw, db), x, weight, bias) = match self {
            NormOp::BatchNorm {
                x,
                weight,
                bias,
                save_mean,
                save_invstd,
                scale_shift,
                act,
                sync,
            } => (
                // Batch norm's dx may take g's place (training's last pass over it).
                batch_norm_act_backward_owned(
                    g,
                    value(*x),
                    weight_of(weight),
                    (save_mean, save_invstd),
                    (*act != BnAct::Identity).then_some((*act, scale_shift)),
                    sync.as_ref(),
                )?,
                x,
                weight,
                bias,
            ),
            NormOp::BatchNormEval {
                x,
                weight,
                bias,
                running_mean,
                running_var,
                eps,
                act,
            } => (
                batch_norm_act_eval_backward(
                    &g,
                    value(*x),
                    weight_of(weight),
                    (running_mean, running_var),
                    *eps,
                    fused(act),
                )?,
                x,
                weight,
                bias,
            ),
            NormOp::LayerNorm {
                x,
                weight,
                bias,
                ndim,
                mean,
                invstd,
            } => (
                layer_norm_backward(&g, value(*x), *ndim, weight_of(weight), mean, invstd)?,
                x,
                weight,
                bias,
            ),
            NormOp::GroupNorm {
                x,
                weight,
                bias,
                groups,
                mean,
                invstd,
            } => (
                group_norm_backward(&g, value(*x), *groups, weight_of(weight), mean, invstd)?,
                x,
                weight,
                bias,
            ),
        };
        let mut grads = vec![(*x, dx)];
        grads.extend(weight.map(|w| (w, dw)));
        grads.extend(bias.map(|b| (b, db)));
        Ok(grads)
    }
}
