//! The fully connected layer, dropout, stochastic depth and flatten.

use super::{Ctx, Init, Module, Scope};
use crate::autograd::Var;
use crate::error::{Result, arg_err};

/// A linear layer's settings besides its sizes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinearConfig {
    /// Whether the layer adds a bias.
    pub bias: bool,
    /// The weight's initializer (PyTorch's default unless the model sets another).
    pub init: Init,
    /// The bias's initializer; `None` is PyTorch's default for the weight's fan-in.
    pub bias_init: Option<Init>,
}

impl Default for LinearConfig {
    fn default() -> Self {
        Self {
            bias: true,
            init: Init::TorchDefault,
            bias_init: None,
        }
    }
}

impl LinearConfig {
    /// Weight from `init`, bias zeros: what torchvision's classifiers set (e.g.
    /// `Init::Normal { mean: 0, std: 0.01 }` for VGG and MobileNetV2).
    pub fn init_zero_bias(init: Init) -> Self {
        Self {
            bias: true,
            init,
            bias_init: Some(Init::Zeros),
        }
    }
}

/// `x · Wᵀ + b` (`nn.Linear`): `weight` `[out, in]`, `bias` `[out]`.
pub struct Linear {
    weight: String,
    bias: Option<String>,
}

impl Linear {
    /// Registers `weight` (and `bias`) in `scope`.
    pub fn new(
        scope: &mut Scope,
        inputs: usize,
        outputs: usize,
        cfg: LinearConfig,
    ) -> Result<Self> {
        if inputs == 0 || outputs == 0 {
            return arg_err!(
                "Linear {:?}: sizes ({inputs}, {outputs}) must be positive",
                scope.path()
            );
        }
        let shape = [outputs, inputs];
        let weight = scope.param("weight", &shape, cfg.init)?;
        let bias_init = cfg
            .bias_init
            .unwrap_or_else(|| Init::torch_default_bias(&shape));
        let bias = cfg
            .bias
            .then(|| scope.param("bias", &[outputs], bias_init))
            .transpose()?;
        Ok(Self { weight, bias })
    }
}

impl Module for Linear {
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let w = ctx.param(&self.weight)?;
        let b = self.bias.as_deref().map(|b| ctx.param(b)).transpose()?;
        ctx.tape.linear(x, &w, b.as_ref())
    }
}

/// Dropout with probability `p` in training, identity in evaluation (`nn.Dropout`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    /// Probability of zeroing an element.
    pub p: f32,
}

impl Module for Dropout {
    /// Applies dropout with a fresh seed from the context.
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let seed = ctx.next_seed();
        ctx.tape.dropout(x, self.p, ctx.is_training(), seed)
    }
}

/// Stochastic depth on a residual branch (torchvision's `StochasticDepth(p, "row")`):
/// each sample's branch dropped with probability `p` in training, the kept ones scaled
/// by 1 / (1 - p); the identity in evaluation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StochasticDepth {
    /// Probability of dropping a sample's branch.
    pub p: f32,
}

impl Module for StochasticDepth {
    /// Draws the samples to drop from a fresh seed of the context.
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let seed = ctx.next_seed();
        ctx.tape
            .stochastic_depth(x, self.p, ctx.is_training(), seed)
    }
}

/// Merges the dims from `start_dim` on into one (`nn.Flatten`, whose default is 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flatten {
    /// The first dim merged.
    pub start_dim: usize,
}

impl Default for Flatten {
    fn default() -> Self {
        Self { start_dim: 1 }
    }
}

impl Module for Flatten {
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        ctx.tape.flatten(x, self.start_dim)
    }
}
