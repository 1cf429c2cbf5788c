//! Elementwise arithmetic on the tape, with NumPy broadcasting.

use super::{Op, Rule, Tape, Values, Var, sum_to_shape};
use crate::error::{Result, arg_err};
use crate::tensor::Tensor;

/// An arithmetic op of operands `a`, `b` (or `x`), as node numbers.
#[derive(Debug)]
#[allow(missing_docs)] // node numbers and the scale, as named
pub enum ArithOp {
    /// `a + b`.
    Add { a: usize, b: usize },
    /// `a - b`.
    Sub { a: usize, b: usize },
    /// `a · b`.
    Mul { a: usize, b: usize },
    /// `a / b`.
    Div { a: usize, b: usize },
    /// `s · x` for a constant `s` (Inception-ResNet's scaled residuals).
    Scale { x: usize, s: f32 },
}

impl Tape {
    fn binary_op(
        &self,
        (a, b): (&Var, &Var),
        what: &str,
        f: impl FnOnce(&Tensor, &Tensor) -> Result<Tensor>,
        op: impl FnOnce(usize, usize) -> ArithOp,
    ) -> Result<Var> {
        let inputs = [(a, what), (b, what)];
        self.check_own(&inputs)?;
        let y = f(&a.value, &b.value)?;
        self.record(&inputs, y, |ids| Op::Arith(op(ids[0], ids[1])))
    }

    /// `a + b` with broadcasting.
    pub fn add(&self, a: &Var, b: &Var) -> Result<Var> {
        self.binary_op((a, b), "add operand", Tensor::add, |a, b| ArithOp::Add {
            a,
            b,
        })
    }

    /// `a - b` with broadcasting.
    pub fn sub(&self, a: &Var, b: &Var) -> Result<Var> {
        self.binary_op((a, b), "sub operand", Tensor::sub, |a, b| ArithOp::Sub {
            a,
            b,
        })
    }

    /// `a · b` with broadcasting.
    pub fn mul(&self, a: &Var, b: &Var) -> Result<Var> {
        self.binary_op((a, b), "mul operand", Tensor::mul, |a, b| ArithOp::Mul {
            a,
            b,
        })
    }

    /// `a / b` with broadcasting.
    pub fn div(&self, a: &Var, b: &Var) -> Result<Var> {
        self.binary_op((a, b), "div operand", Tensor::div, |a, b| ArithOp::Div {
            a,
            b,
        })
    }

    /// `s · x` for a finite constant `s`.
    pub fn scale(&self, x: &Var, s: f32) -> Result<Var> {
        if !s.is_finite() {
            return arg_err!("scale: the factor {s} must be finite");
        }
        self.unary(
            x,
            "scale input",
            |x| x.scale(s),
            |x| Op::Arith(ArithOp::Scale { x, s }),
        )
    }
}

impl Rule for ArithOp {
    fn inputs(&self) -> Vec<usize> {
        match self {
            ArithOp::Add { a, b }
            | ArithOp::Sub { a, b }
            | ArithOp::Mul { a, b }
            | ArithOp::Div { a, b } => vec![*a, *b],
            ArithOp::Scale { x, .. } => vec![*x],
        }
    }

    fn name(&self) -> String {
        match self {
            ArithOp::Add { .. } => "add".into(),
            ArithOp::Sub { .. } => "sub".into(),
            ArithOp::Mul { .. } => "mul".into(),
            ArithOp::Div { .. } => "div".into(),
            ArithOp::Scale { s, .. } => format!("scale {s}"),
        }
    }

    fn backward(
        &self,
        value: Values<'_>,
        _out: &Tensor,
        g: &Tensor,
    ) -> Result<Vec<(usize, Tensor)>> {
        // Each operand's gradient summed back over the dims its broadcast expanded.
        let to = |i: usize, grad: Tensor| -> Result<(usize, Tensor)> {
            Ok((i, sum_to_shape(&grad, value(i).shape())?))
        };
        Ok(match self {
            ArithOp::Add { a, b } => vec![to(*a, g.clone())?, to(*b, g.clone())?],
            ArithOp::Sub { a, b } => vec![to(*a, g.clone())?, to(*b, g.neg()?)?],
            ArithOp::Mul { a, b } => {
                vec![to(*a, g.mul(value(*b))?)?, to(*b, g.mul(value(*a))?)?]
            }
            ArithOp::Div { a, b } => {
                // d(a/b)/da = 1/b; d(a/b)/db = -a/b².
                let (av, bv) = (value(*a), value(*b));
                let da = g.div(bv)?;
                let db = da.mul(av)?.div(bv)?.neg()?;
                vec![to(*a, da)?, to(*b, db)?]
            }
            ArithOp::Scale { x, s } => vec![(*x, g.scale(*s)?)],
        })
    }
}
