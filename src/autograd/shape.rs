//! Reshapes, joins, splits and channel shuffles on the tape.

use super::{Op, Rule, Tape, Values, Var};
use crate::error::{Result, arg_err};
use crate::ops::channels::{
    channel_shuffle, channel_shuffle_backward, chunk, concat, concat_backward, narrow_backward,
    split,
};
use crate::tensor::Tensor;

/// A shape op on inputs given as node numbers.
#[derive(Debug)]
#[allow(missing_docs)] // node numbers and the op's parameters, as named
pub enum ShapeOp {
    /// The same data under another shape.
    Reshape { x: usize },
    /// The inputs joined along `axis`; `sizes` are their lengths along it.
    Concat {
        xs: Vec<usize>,
        axis: usize,
        sizes: Vec<usize>,
    },
    /// One piece of a split: the indices `start..` along `axis` of `x`.
    Narrow { x: usize, axis: usize, start: usize },
    /// ShuffleNet's channel shuffle with `groups` groups.
    ChannelShuffle { x: usize, groups: usize },
}

impl Tape {
    /// The same data under `shape`.
    pub fn reshape(&self, x: &Var, shape: &[usize]) -> Result<Var> {
        let op = |x| Op::Shape(ShapeOp::Reshape { x });
        self.unary(x, "reshape input", |x| x.reshape(shape), op)
    }

    /// `x` with its dims from `start_dim` on merged into one (PyTorch's `flatten`; 1 makes
    /// `[N, C, H, W]` into `[N, C·H·W]`).
    pub fn flatten(&self, x: &Var, start_dim: usize) -> Result<Var> {
        let shape = x.shape();
        if start_dim >= shape.len() {
            return arg_err!("flatten: start_dim {start_dim} is out of range for shape {shape:?}");
        }
        let mut flat = shape[..start_dim].to_vec();
        flat.push(shape[start_dim..].iter().product());
        self.reshape(x, &flat)
    }

    /// `xs` joined along `axis` (PyTorch's `torch.cat`).
    pub fn concat(&self, xs: &[&Var], axis: usize) -> Result<Var> {
        let inputs: Vec<(&Var, &str)> = xs.iter().map(|x| (*x, "concat input")).collect();
        self.check_own(&inputs)?;
        let values: Vec<&Tensor> = xs.iter().map(|x| &x.value).collect();
        let y = concat(&values, axis)?;
        let sizes = xs.iter().map(|x| x.shape()[axis]).collect();
        self.record(&inputs, y, |ids| {
            Op::Shape(ShapeOp::Concat {
                xs: ids.to_vec(),
                axis,
                sizes,
            })
        })
    }

    /// `x` split along `axis` into pieces of `sizes` (PyTorch's `torch.split`). Each
    /// piece is its own value; the ones left unused get no gradient (zeros there).
    pub fn split(&self, x: &Var, sizes: &[usize], axis: usize) -> Result<Vec<Var>> {
        self.check_own(&[(x, "split input")])?;
        let pieces = split(&x.value, sizes, axis)?;
        self.pieces(x, pieces, axis)
    }

    /// `x` cut into `chunks` pieces along `axis` (PyTorch's `torch.chunk`).
    pub fn chunk(&self, x: &Var, chunks: usize, axis: usize) -> Result<Vec<Var>> {
        self.check_own(&[(x, "chunk input")])?;
        let pieces = chunk(&x.value, chunks, axis)?;
        self.pieces(x, pieces, axis)
    }

    /// Records each of `x`'s consecutive `pieces` along `axis` as its own node.
    fn pieces(&self, x: &Var, pieces: Vec<Tensor>, axis: usize) -> Result<Vec<Var>> {
        let mut start = 0;
        let mut out = Vec::with_capacity(pieces.len());
        for piece in pieces {
            let len = piece.shape()[axis];
            out.push(self.record(&[(x, "split input")], piece, |ids| {
                Op::Shape(ShapeOp::Narrow {
                    x: ids[0],
                    axis,
                    start,
                })
            })?);
            start += len;
        }
        Ok(out)
    }

    /// ShuffleNet's channel shuffle of `[N, C, ...]` with `groups` groups.
    pub fn channel_shuffle(&self, x: &Var, groups: usize) -> Result<Var> {
        let op = |x| Op::Shape(ShapeOp::ChannelShuffle { x, groups });
        self.unary(
            x,
            "channel_shuffle input",
            |x| channel_shuffle(x, groups),
            op,
        )
    }
}

impl Rule for ShapeOp {
    fn inputs(&self) -> Vec<usize> {
        match self {
            ShapeOp::Reshape { x }
            | ShapeOp::Narrow { x, .. }
            | ShapeOp::ChannelShuffle { x, .. } => vec![*x],
            ShapeOp::Concat { xs, .. } => xs.clone(),
        }
    }

    fn name(&self) -> String {
        match self {
            ShapeOp::Reshape { .. } => "reshape".into(),
            ShapeOp::Concat { axis, .. } => format!("concat axis {axis}"),
            ShapeOp::Narrow { axis, start, .. } => format!("split axis {axis} from {start}"),
            ShapeOp::ChannelShuffle { groups, .. } => format!("channel_shuffle {groups}"),
        }
    }

    fn backward(
        &self,
        value: Values<'_>,
        _out: &Tensor,
        g: &Tensor,
    ) -> Result<Vec<(usize, Tensor)>> {
        Ok(match self {
            ShapeOp::Reshape { x } => vec![(*x, g.reshape(value(*x).shape())?)],
            ShapeOp::Concat { xs, axis, sizes } => xs
                .iter()
                .copied()
                .zip(concat_backward(g, sizes, *axis)?)
                .collect(),
            ShapeOp::Narrow { x, axis, start } => {
                vec![(*x, narrow_backward(g, value(*x).shape(), *axis, *start)?)]
            }
            ShapeOp::ChannelShuffle { x, groups } => {
                vec![(*x, channel_shuffle_backward(g, *groups)?)]
            }
        })
    }
}
