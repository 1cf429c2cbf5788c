//! Dropout on the tape.

use super::{Op, Rule, Tape, Values, Var};
use crate::error::Result;
use crate::ops::dropout::{dropout, dropout_backward};
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

impl Rule for RegularizeOp {
    fn inputs(&self) -> Vec<usize> {
        let RegularizeOp::Dropout { x, .. } = self;
        vec![*x]
    }

    fn name(&self) -> String {
        let RegularizeOp::Dropout { p, .. } = self;
        format!("dropout p={p}")
    }

    fn backward(
        &self,
        _value: Values<'_>,
        _out: &Tensor,
        g: &Tensor,
    ) -> Result<Vec<(usize, Tensor)>> {
        let RegularizeOp::Dropout { x, mask, p } = self;
        Ok(vec![(
            *x,
            match mask {
                Some(mask) => dropout_backward(g, mask, *p)?,
                None => g.clone(),
            },
        )])
    }
}
