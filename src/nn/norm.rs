//! Normalization layers: [`BatchNorm2d`].

use super::{Ctx, Init, Module, Scope};
use crate::autograd::{BatchStats, RunningStats, Var};
use crate::error::{Result, arg_err};
use crate::ops::norm::{BnAct, ChannelMoments};
use crate::tensor::Tensor;

/// Batch norm's settings, PyTorch's names and defaults (`eps` 1e-5, `momentum` 0.1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNorm2dConfig {
    /// Added to the variance before the square root.
    pub eps: f32,
    /// Weight of the batch statistics in the running ones:
    /// `running = (1 - momentum) · running + momentum · batch`.
    pub momentum: f32,
}

impl Default for BatchNorm2dConfig {
    fn default() -> Self {
        Self {
            eps: 1e-5,
            momentum: 0.1,
        }
    }
}

impl BatchNorm2dConfig {
    /// With this `eps` (torchvision's Inception and MobileNetV3 use 1e-3).
    pub fn eps(mut self, eps: f32) -> Self {
        self.eps = eps;
        self
    }

    /// With this `momentum` (MobileNetV3 uses 0.01).
    pub fn momentum(mut self, momentum: f32) -> Self {
        self.momentum = momentum;
        self
    }
}

/// Batch norm over the channels of `[N, C, H, W]` (`nn.BatchNorm2d`): `weight` ones and
/// `bias` zeros (trained), `running_mean` zeros, `running_var` ones and
/// `num_batches_tracked` 0 (buffers), as PyTorch registers them.
pub struct BatchNorm2d {
    weight: String,
    bias: String,
    running_mean: String,
    running_var: String,
    num_batches_tracked: String,
    cfg: BatchNorm2dConfig,
}

impl BatchNorm2d {
    /// Registers the five tensors in `scope`.
    pub fn new(scope: &mut Scope, channels: usize, cfg: BatchNorm2dConfig) -> Result<Self> {
        if channels == 0 {
            return arg_err!("BatchNorm2d {:?}: channels must be positive", scope.path());
        }
        for (name, v) in [("eps", cfg.eps), ("momentum", cfg.momentum)] {
            if !v.is_finite() || v < 0.0 {
                return arg_err!(
                    "BatchNorm2d {:?}: {name} {v} must be finite and >= 0",
                    scope.path()
                );
            }
        }
        Ok(Self {
            weight: scope.param("weight", &[channels], Init::Ones)?,
            bias: scope.param("bias", &[channels], Init::Zeros)?,
            running_mean: scope.buffer("running_mean", &[channels], Init::Zeros)?,
            running_var: scope.buffer("running_var", &[channels], Init::Ones)?,
            num_batches_tracked: scope.counter("num_batches_tracked")?,
            cfg,
        })
    }
}

impl Module for BatchNorm2d {
    /// Training: batch statistics (recorded), running statistics and the batch count
    /// updated in the store. Evaluation: running statistics; gradients still flow to the
    /// input and the affine parameters, as through a frozen batch norm in PyTorch.
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        self.forward_act(ctx, x, BnAct::Identity)
    }

    fn forward_then(&self, ctx: &mut Ctx, x: &Var, act: BnAct) -> Option<Result<Var>> {
        Some(self.forward_act(ctx, x, act))
    }

    fn as_batch_norm(&self) -> Option<&BatchNorm2d> {
        Some(self)
    }
}

impl BatchNorm2d {
    /// The evaluation-mode tensors from the store, `(weight, bias, running_mean,
    /// running_var)`, and eps: what a convolution before it folds in.
    pub(crate) fn frozen(&self, ctx: &Ctx) -> Result<([Tensor; 4], f32)> {
        let store = ctx.store();
        let get = |name: &str| store.get(name).cloned();
        let tensors = [
            get(&self.weight)?,
            get(&self.bias)?,
            get(&self.running_mean)?,
            get(&self.running_var)?,
        ];
        Ok((tensors, self.cfg.eps))
    }
}

impl BatchNorm2d {
    /// [`Module::forward`] followed by `act`, fused into batch norm's passes (what a
    /// [`crate::nn::Sequential`] does with a batch norm followed by a ReLU or ReLU6).
    pub fn forward_act(&self, ctx: &mut Ctx, x: &Var, act: BnAct) -> Result<Var> {
        self.forward_act_from(ctx, x, None, act)
    }

    /// [`Self::forward_act`], with the batch statistics in training merged from
    /// `moments` of `x` when given (see [`crate::autograd::Tape::conv2d_with_moments`]),
    /// and over every rank's batch when the context says so ([`Ctx::with_sync_bn`]).
    pub(crate) fn forward_act_from(
        &self,
        ctx: &mut Ctx,
        x: &Var,
        moments: Option<&ChannelMoments>,
        act: BnAct,
    ) -> Result<Var> {
        let (w, b) = (ctx.param(&self.weight)?, ctx.param(&self.bias)?);
        let store = ctx.store();
        let (mean, var) = (
            store.get(&self.running_mean)?.clone(),
            store.get(&self.running_var)?.clone(),
        );
        let running = RunningStats {
            mean: &mean,
            var: &var,
        };
        if !ctx.is_training() {
            let affine = (Some(&w), Some(&b));
            return ctx
                .tape
                .batch_norm_act_eval(x, affine, running, self.cfg.eps, act);
        }
        let stats = BatchStats {
            moments,
            sync: ctx.sync_bn(),
        };
        let (y, new_mean, new_var) = ctx.tape.batch_norm_act_train_from(
            x,
            stats,
            (Some(&w), Some(&b)),
            running,
            (self.cfg.momentum, self.cfg.eps),
            act,
        )?;
        let count = ctx
            .store()
            .get(&self.num_batches_tracked)?
            .add_scalar(1.0)?;
        ctx.set(&self.running_mean, new_mean)?;
        ctx.set(&self.running_var, new_var)?;
        ctx.set(&self.num_batches_tracked, count)?;
        Ok(y)
    }
}
