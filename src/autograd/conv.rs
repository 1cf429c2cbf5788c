//! Convolutions and the linear layer on the tape.

use super::{Op, Rule, Tape, Values, Var};
use crate::error::Result;
use crate::ops::conv::{
    Conv2dParams, ConvTranspose2dParams, conv_backward_bias, conv_transpose2d,
    conv_transpose2d_backward_input, conv_transpose2d_backward_weight, conv2d,
    conv2d_backward_input, conv2d_backward_weight, conv2d_with_moments,
};
use crate::ops::linear::{linear, linear_backward};
use crate::ops::norm::ChannelMoments;
use crate::tensor::Tensor;

/// A convolution or linear op: input `x`, weight `w`, optional bias `b` (node numbers).
#[derive(Debug)]
#[allow(missing_docs)] // node numbers and the op's parameters, as named
pub enum ConvOp {
    /// `conv2d(x, w) + b`.
    Conv2d {
        x: usize,
        w: usize,
        b: Option<usize>,
        p: Conv2dParams,
    },
    /// `conv_transpose2d(x, w) + b`.
    ConvTranspose2d {
        x: usize,
        w: usize,
        b: Option<usize>,
        p: ConvTranspose2dParams,
    },
    /// `x · Wᵀ + b`.
    Linear {
        x: usize,
        w: usize,
        b: Option<usize>,
    },
}

/// The inputs of an op with an optional bias: the two given, then the bias if any.
fn with_bias<'a>(
    inputs: [(&'a Var, &'a str); 2],
    bias: Option<&'a Var>,
    what: &'a str,
) -> Vec<(&'a Var, &'a str)> {
    inputs.into_iter().chain(bias.map(|b| (b, what))).collect()
}

impl Tape {
    /// `conv2d(x, w) + b`.
    pub fn conv2d(&self, x: &Var, w: &Var, b: Option<&Var>, p: &Conv2dParams) -> Result<Var> {
        let inputs = with_bias(
            [(x, "conv2d input"), (w, "conv2d weight")],
            b,
            "conv2d bias",
        );
        self.check_own(&inputs)?;
        let y = conv2d(&x.value, &w.value, b.map(|b| &b.value), p)?;
        self.record(&inputs, y, |ids| {
            Op::Conv(ConvOp::Conv2d {
                x: ids[0],
                w: ids[1],
                b: ids.get(2).copied(),
                p: *p,
            })
        })
    }

    /// `conv2d(x, w)`, and the moments of each output channel where the convolution's
    /// path computes them on the way (see [`conv2d_with_moments`]): for a training batch
    /// norm after it ([`Tape::batch_norm_act_train_from`]).
    pub fn conv2d_with_moments(
        &self,
        x: &Var,
        w: &Var,
        p: &Conv2dParams,
    ) -> Result<(Var, Option<ChannelMoments>)> {
        let inputs = [(x, "conv2d input"), (w, "conv2d weight")];
        self.check_own(&inputs)?;
        let (y, moments) = conv2d_with_moments(&x.value, &w.value, p)?;
        let y = self.record(&inputs, y, |ids| {
            Op::Conv(ConvOp::Conv2d {
                x: ids[0],
                w: ids[1],
                b: None,
                p: *p,
            })
        })?;
        Ok((y, moments))
    }

    /// `conv_transpose2d(x, w) + b`.
    pub fn conv_transpose2d(
        &self,
        x: &Var,
        w: &Var,
        b: Option<&Var>,
        p: &ConvTranspose2dParams,
    ) -> Result<Var> {
        let what = ["conv_transpose2d input", "conv_transpose2d weight"];
        let inputs = with_bias([(x, what[0]), (w, what[1])], b, "conv_transpose2d bias");
        self.check_own(&inputs)?;
        let y = conv_transpose2d(&x.value, &w.value, b.map(|b| &b.value), p)?;
        self.record(&inputs, y, |ids| {
            Op::Conv(ConvOp::ConvTranspose2d {
                x: ids[0],
                w: ids[1],
                b: ids.get(2).copied(),
                p: *p,
            })
        })
    }

    /// `x · Wᵀ + b`.
    pub fn linear(&self, x: &Var, w: &Var, b: Option<&Var>) -> Result<Var> {
        let inputs = with_bias(
            [(x, "linear input"), (w, "linear weight")],
            b,
            "linear bias",
        );
        self.check_own(&inputs)?;
        let y = linear(&x.value, &w.value, b.map(|b| &b.value))?;
        self.record(&inputs, y, |ids| {
            Op::Conv(ConvOp::Linear {
                x: ids[0],
                w: ids[1],
                b: ids.get(2).copied(),
            })
        })
    }
}

impl Rule for ConvOp {
    fn inputs(&self) -> Vec<usize> {
        let (ConvOp::Conv2d { x, w, b, .. }
        | ConvOp::ConvTranspose2d { x, w, b, .. }
        | ConvOp::Linear { x, w, b }) = self;
        [Some(*x), Some(*w), *b].into_iter().flatten().collect()
    }

    fn name(&self) -> String {
        match self {
            ConvOp::Conv2d { p, .. } => format!(
                "conv2d stride {:?} pad {:?} dil {:?} groups {}",
                p.stride, p.padding, p.dilation, p.groups
            ),
            ConvOp::ConvTranspose2d { p, .. } => format!(
                "conv_transpose2d stride {:?} pad {:?} out_pad {:?} groups {}",
                p.stride, p.padding, p.output_padding, p.groups
            ),
            ConvOp::Linear { .. } => "linear".into(),
        }
    }

    fn backward(
        &self,
        value: Values<'_>,
        _out: &Tensor,
        g: &Tensor,
    ) -> Result<Vec<(usize, Tensor)>> {
        let (mut grads, b) = match self {
            ConvOp::Conv2d { x, w, b, p } => {
                let (xv, wv) = (value(*x), value(*w));
                let dx = conv2d_backward_input(g, wv, xv.shape(), p)?;
                let dw = conv2d_backward_weight(xv, g, wv.shape(), p)?;
                (
                    vec![(*x, dx), (*w, dw)],
                    b.map(|b| (b, conv_backward_bias(g))),
                )
            }
            ConvOp::ConvTranspose2d { x, w, b, p } => {
                let (xv, wv) = (value(*x), value(*w));
                let dx = conv_transpose2d_backward_input(g, wv, xv.shape(), p)?;
                let dw = conv_transpose2d_backward_weight(xv, g, wv.shape(), p)?;
                (
                    vec![(*x, dx), (*w, dw)],
                    b.map(|b| (b, conv_backward_bias(g))),
                )
            }
            ConvOp::Linear { x, w, b } => {
                let (dx, dw, db) = linear_backward(value(*x), value(*w), g)?;
                (vec![(*x, dx), (*w, dw)], b.map(|b| (b, Ok(db))))
            }
        };
        if let Some((b, db)) = b {
            grads.push((b, db?));
        }
        Ok(grads)
    }
}
