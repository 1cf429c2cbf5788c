//! Activations on the tape.

use super::{Op, Rule, Tape, Values, Var};
use crate::error::Result;
use crate::ops::elementwise::{BinaryOp, binary, leaky_relu_grad};
use crate::tensor::Tensor;

/// The smooth activations, whose gradient is a binary kernel of (gradient, input).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// `relu6(x + 3) / 6`.
    HardSigmoid,
    /// `x · relu6(x + 3) / 6`.
    HardSwish,
    /// `x · sigmoid(x)`.
    Silu,
    /// Hyperbolic tangent.
    Tanh,
}

impl Act {
    fn forward(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Act::Sigmoid => x.sigmoid(),
            Act::HardSigmoid => x.hardsigmoid(),
            Act::HardSwish => x.hardswish(),
            Act::Silu => x.silu(),
            Act::Tanh => x.tanh(),
        }
    }

    fn gradient(self) -> BinaryOp {
        match self {
            Act::Sigmoid => BinaryOp::SigmoidGrad,
            Act::HardSigmoid => BinaryOp::HardSigmoidGrad,
            Act::HardSwish => BinaryOp::HardSwishGrad,
            Act::Silu => BinaryOp::SiluGrad,
            Act::Tanh => BinaryOp::TanhGrad,
        }
    }
}

/// An activation of input `x` (a node number).
#[derive(Debug)]
#[allow(missing_docs)] // the input's node number and the activation's parameter
pub enum ActOp {
    /// `max(x, 0)`.
    Relu { x: usize },
    /// `min(max(x, 0), 6)`.
    Relu6 { x: usize },
    /// `x` where positive, `slope · x` elsewhere.
    LeakyRelu { x: usize, slope: f32 },
    /// A smooth activation.
    Smooth { x: usize, kind: Act },
}

impl Tape {
    /// `max(x, 0)`.
    pub fn relu(&self, x: &Var) -> Result<Var> {
        self.unary(
            x,
            "relu input",
            |x| x.relu(),
            |x| Op::Act(ActOp::Relu { x }),
        )
    }

    /// `min(max(x, 0), 6)`.
    pub fn relu6(&self, x: &Var) -> Result<Var> {
        self.unary(
            x,
            "relu6 input",
            |x| x.relu6(),
            |x| Op::Act(ActOp::Relu6 { x }),
        )
    }

    /// `x` where positive, `negative_slope · x` elsewhere.
    pub fn leaky_relu(&self, x: &Var, negative_slope: f32) -> Result<Var> {
        let op = move |x| {
            Op::Act(ActOp::LeakyRelu {
                x,
                slope: negative_slope,
            })
        };
        self.unary(x, "leaky_relu input", |x| x.leaky_relu(negative_slope), op)
    }

    /// A smooth activation (sigmoid, hard-sigmoid, hard-swish, SiLU, tanh).
    pub fn activation(&self, x: &Var, kind: Act) -> Result<Var> {
        let op = move |x| Op::Act(ActOp::Smooth { x, kind });
        self.unary(x, "activation input", |x| kind.forward(x), op)
    }
}

impl Rule for ActOp {
    fn inputs(&self) -> Vec<usize> {
        let (ActOp::Relu { x }
        | ActOp::Relu6 { x }
        | ActOp::LeakyRelu { x, .. }
        | ActOp::Smooth { x, .. }) = self;
        vec![*x]
    }

    fn name(&self) -> String {
        match self {
            ActOp::Relu { .. } => "relu".into(),
            ActOp::Relu6 { .. } => "relu6".into(),
            ActOp::LeakyRelu { slope, .. } => format!("leaky_relu {slope}"),
            ActOp::Smooth { kind, .. } => format!("{kind:?}").to_lowercase(),
        }
    }

    fn backward(
        &self,
        value: Values<'_>,
        _out: &Tensor,
        g: &Tensor,
    ) -> Result<Vec<(usize, Tensor)>> {
        Ok(match self {
            ActOp::Relu { x } => vec![(*x, binary(g, value(*x), BinaryOp::ReluGrad)?)],
            ActOp::Relu6 { x } => vec![(*x, binary(g, value(*x), BinaryOp::Relu6Grad)?)],
            ActOp::LeakyRelu { x, slope } => vec![(*x, leaky_relu_grad(g, value(*x), *slope)?)],
            ActOp::Smooth { x, kind } => vec![(*x, binary(g, value(*x), kind.gradient())?)],
        })
    }
}
