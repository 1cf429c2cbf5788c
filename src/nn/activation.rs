//! Activations as modules, for `Sequential` and for blocks that choose theirs.

use super::{Ctx, Module};
use crate::autograd::{Act, Var};
use crate::error::Result;
use crate::ops::norm::BnAct;

/// An activation function, PyTorch's definitions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// `x` where positive, `slope · x` elsewhere (DCGAN: 0.2).
    LeakyRelu(f32),
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// Hyperbolic tangent.
    Tanh,
    /// `relu6(x + 3) / 6` (MobileNetV3's squeeze-excitation gate).
    HardSigmoid,
    /// `x · relu6(x + 3) / 6` (MobileNetV3).
    HardSwish,
    /// `x · sigmoid(x)` (EfficientNet).
    Silu,
}

impl Module for Activation {
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let tape = ctx.tape;
        match *self {
            Activation::Relu => tape.relu(x),
            Activation::Relu6 => tape.relu6(x),
            Activation::LeakyRelu(slope) => tape.leaky_relu(x, slope),
            Activation::Sigmoid => tape.activation(x, Act::Sigmoid),
            Activation::Tanh => tape.activation(x, Act::Tanh),
            Activation::HardSigmoid => tape.activation(x, Act::HardSigmoid),
            Activation::HardSwish => tape.activation(x, Act::HardSwish),
            Activation::Silu => tape.activation(x, Act::Silu),
        }
    }

    fn fusable_activation(&self) -> Option<BnAct> {
        match self {
            Activation::Relu => Some(BnAct::Relu),
            Activation::Relu6 => Some(BnAct::Relu6),
            _ => None,
        }
    }
}
