//! Blocks the model zoo shares: torchvision's `Conv2dNormActivation` and squeeze-and-
//! excitation.

use super::{
    Activation, BatchNorm2d, BatchNorm2dConfig, Conv2d, Conv2dConfig, Ctx, Init, Module, Scope,
    Sequential,
};
use crate::autograd::Var;
use crate::error::Result;

/// torchvision's `Conv2dNormActivation`: a [`Sequential`] of the convolution at 0 (padded
/// to keep the size at stride 1, no bias), batch norm at 1 and the activation, if any, at
/// 2. `conv` gives the kernel, stride, groups, dilation and initializer.
pub fn conv_norm_act(
    scope: &mut Scope,
    c_in: usize,
    c_out: usize,
    conv: Conv2dConfig,
    norm: BatchNorm2dConfig,
    act: Option<Activation>,
) -> Result<Sequential> {
    let conv = conv.same_padding().bias(false);
    Sequential::build(scope, |layers| {
        layers.add(|s| Conv2d::new(s, c_in, c_out, conv))?;
        layers.add(|s| BatchNorm2d::new(s, c_out, norm))?;
        if let Some(act) = act {
            layers.add_plain(act);
        }
        Ok(())
    })
}

/// Squeeze-and-excitation (torchvision's `SqueezeExcitation`, timm's `SEModule`): global
/// average pool, 1×1 conv `fc1` to `squeeze` channels, an activation, 1×1 conv `fc2` back,
/// a gate, and the input scaled per channel by the gate.
pub struct SqueezeExcite {
    fc1: Conv2d,
    fc2: Conv2d,
    act: Activation,
    gate: Activation,
}

impl SqueezeExcite {
    /// Registers `fc1.{weight,bias}` and `fc2.{weight,bias}` in `scope`, the weights from
    /// `init`.
    pub fn new(
        scope: &mut Scope,
        channels: usize,
        squeeze: usize,
        (act, gate): (Activation, Activation),
        init: Init,
    ) -> Result<Self> {
        let cfg = Conv2dConfig::new(1).init(init);
        Ok(Self {
            fc1: Conv2d::new(&mut scope.pp("fc1"), channels, squeeze, cfg)?,
            fc2: Conv2d::new(&mut scope.pp("fc2"), squeeze, channels, cfg)?,
            act,
            gate,
        })
    }
}

impl Module for SqueezeExcite {
    /// `x · gate(fc2(act(fc1(mean over H×W of x))))`.
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let s = ctx.tape.global_avg_pool(x)?;
        let s = self.fc1.forward(ctx, &s)?;
        let s = self.act.forward(ctx, &s)?;
        let s = self.fc2.forward(ctx, &s)?;
        let s = self.gate.forward(ctx, &s)?;
        ctx.tape.mul(x, &s)
    }
}

/// Parallel branches on one input, their outputs concatenated along the channels: the
/// shape of every Inception module.
pub struct Concat(pub Vec<Box<dyn Module>>);

impl Module for Concat {
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let outs = self
            .0
            .iter()
            .map(|branch| branch.forward(ctx, x))
            .collect::<Result<Vec<_>>>()?;
        ctx.tape.concat(&outs.iter().collect::<Vec<_>>(), 1)
    }
}
