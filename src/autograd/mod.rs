//! The autograd tape: ops on tracked values ([`Var`]) are recorded on a [`Tape`] as a
//! closed enum ([`Op`]); [`Tape::backward`] walks the tape in reverse and applies each op's
//! backward rule, which sits right beside it in [`Tape::backward_op`]. Creation order is a
//! topological order, so no graph sort is needed. A value used by several ops accumulates
//! its gradients. A tape made with [`Tape::no_grad`] records nothing (inference).
//!
//! The ops' forward and backward kernels live in `crate::ops`; this module only decides
//! which to call and keeps what the backward passes need.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Result, arg_err};
use crate::ops::conv::{
    Conv2dParams, ConvTranspose2dParams, conv_backward_bias, conv_transpose2d,
    conv_transpose2d_backward_input, conv_transpose2d_backward_weight, conv2d,
    conv2d_backward_input, conv2d_backward_weight,
};
use crate::ops::dropout::{dropout, dropout_backward};
use crate::ops::elementwise::{BinaryOp, binary};
use crate::ops::linear::{linear, linear_backward};
use crate::ops::loss::{cross_entropy, cross_entropy_backward};
use crate::ops::norm::{batch_norm_backward, batch_norm_train};
use crate::ops::pool::global_avg_pool2d_backward;
use crate::tensor::Tensor;

/// A value on a tape: the tensor, the tape it belongs to, and the number of the node that
/// made it.
#[derive(Clone, Debug)]
pub struct Var {
    tape: u64,
    id: Option<usize>, // None: not recorded (a no_grad tape)
    value: Tensor,
}

/// Numbers tapes, so a value from one tape is never mistaken for a node of another.
static NEXT_TAPE: AtomicU64 = AtomicU64::new(1);

impl Var {
    /// The tensor this value holds.
    pub fn value(&self) -> &Tensor {
        &self.value
    }

    /// Its shape.
    pub fn shape(&self) -> &[usize] {
        self.value.shape()
    }
}

/// One recorded operation: its inputs (node numbers, as `x`, `w`, `a`...) and what its
/// backward rule needs.
#[derive(Debug)]
#[allow(missing_docs)] // the fields are node numbers and the saved values named above
pub enum Op {
    /// An input or a parameter (named); gradients stop here.
    Leaf { name: Option<String> },
    /// `conv2d(x, w) + b`.
    Conv2d {
        x: usize,
        w: usize,
        b: Option<usize>,
        p: Conv2dParams,
    },
    /// Batch norm in training mode, with the batch statistics the backward needs.
    BatchNorm {
        x: usize,
        weight: usize,
        bias: usize,
        save_mean: Tensor,
        save_invstd: Tensor,
    },
    /// `max(x, 0)`.
    Relu { x: usize },
    /// `conv_transpose2d(x, w) + b`.
    ConvTranspose2d {
        x: usize,
        w: usize,
        b: Option<usize>,
        p: ConvTranspose2dParams,
    },
    /// `min(max(x, 0), 6)`.
    Relu6 { x: usize },
    /// An activation whose gradient is a binary kernel of (gradient, input): sigmoid,
    /// hard-sigmoid, hard-swish, SiLU (and ReLU above has its own variant for clarity).
    Activation { x: usize, kind: Act },
    /// `a + b` with broadcasting.
    Add { a: usize, b: usize },
    /// `a · b` with broadcasting (squeeze-excitation gates).
    Mul { a: usize, b: usize },
    /// Mean over H×W: `[N, C, H, W]` → `[N, C, 1, 1]`.
    GlobalAvgPool { x: usize },
    /// A new shape for the same data.
    Reshape { x: usize },
    /// Dropout with its kept-element mask (`None`: identity).
    Dropout {
        x: usize,
        mask: Option<Tensor>,
        p: f32,
    },
    /// `x · Wᵀ + b`.
    Linear {
        x: usize,
        w: usize,
        b: Option<usize>,
    },
    /// Mean cross-entropy with label smoothing.
    CrossEntropy {
        logits: usize,
        targets: Vec<usize>,
        smoothing: f32,
    },
}

/// The smooth activations the tape records through [`Op::Activation`].
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
}

impl Act {
    fn forward(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Act::Sigmoid => x.sigmoid(),
            Act::HardSigmoid => x.hardsigmoid(),
            Act::HardSwish => x.hardswish(),
            Act::Silu => x.silu(),
        }
    }

    fn gradient(self) -> BinaryOp {
        match self {
            Act::Sigmoid => BinaryOp::SigmoidGrad,
            Act::HardSigmoid => BinaryOp::HardSigmoidGrad,
            Act::HardSwish => BinaryOp::HardSwishGrad,
            Act::Silu => BinaryOp::SiluGrad,
        }
    }
}

impl Op {
    /// The node numbers this op reads.
    fn inputs(&self) -> Vec<usize> {
        match self {
            Op::Leaf { .. } => vec![],
            Op::Conv2d { x, w, b, .. }
            | Op::ConvTranspose2d { x, w, b, .. }
            | Op::Linear { x, w, b } => [Some(*x), Some(*w), *b].into_iter().flatten().collect(),
            Op::BatchNorm {
                x, weight, bias, ..
            } => vec![*x, *weight, *bias],
            Op::Add { a, b } | Op::Mul { a, b } => vec![*a, *b],
            Op::Relu { x }
            | Op::Relu6 { x }
            | Op::Activation { x, .. }
            | Op::GlobalAvgPool { x }
            | Op::Reshape { x }
            | Op::Dropout { x, .. } => vec![*x],
            Op::CrossEntropy { logits, .. } => vec![*logits],
        }
    }

    fn name(&self) -> String {
        match self {
            Op::Leaf { name: Some(n) } => format!("param {n}"),
            Op::Leaf { name: None } => "input".into(),
            Op::Conv2d { p, .. } => format!(
                "conv2d stride {:?} pad {:?} dil {:?} groups {}",
                p.stride, p.padding, p.dilation, p.groups
            ),
            Op::ConvTranspose2d { p, .. } => format!(
                "conv_transpose2d stride {:?} pad {:?} out_pad {:?} groups {}",
                p.stride, p.padding, p.output_padding, p.groups
            ),
            Op::BatchNorm { .. } => "batch_norm".into(),
            Op::Activation { kind, .. } => format!("{kind:?}").to_lowercase(),
            Op::Mul { .. } => "mul".into(),
            Op::Relu { .. } => "relu".into(),
            Op::Relu6 { .. } => "relu6".into(),
            Op::Add { .. } => "add".into(),
            Op::GlobalAvgPool { .. } => "global_avg_pool".into(),
            Op::Reshape { .. } => "reshape".into(),
            Op::Dropout { p, .. } => format!("dropout p={p}"),
            Op::Linear { .. } => "linear".into(),
            Op::CrossEntropy { smoothing, .. } => format!("cross_entropy smoothing={smoothing}"),
        }
    }
}

struct Node {
    op: Op,
    value: Tensor,
}

/// The record of one forward pass. Not shared between threads: make one per step.
pub struct Tape {
    /// This tape's number; every [`Var`] it makes carries it.
    id: u64,
    nodes: RefCell<Vec<Node>>,
    recording: bool,
}

impl Default for Tape {
    fn default() -> Self {
        Self::new()
    }
}

/// Gradients by node, from [`Tape::backward`].
pub struct Gradients {
    tape: u64,
    by_node: Vec<Option<Tensor>>,
    names: Vec<(String, usize)>,
}

impl Gradients {
    /// The gradient of `v`, if the loss depends on it (`None` as well for a value of
    /// another tape).
    pub fn get(&self, v: &Var) -> Option<&Tensor> {
        if v.tape != self.tape {
            return None;
        }
        v.id.and_then(|i| self.by_node.get(i)?.as_ref())
    }

    /// The gradients of the named leaves (parameters), by name: what an optimizer takes.
    /// A name put on the tape twice (a layer applied twice) gets the sum of both.
    pub fn by_name(&self) -> Result<HashMap<String, Tensor>> {
        let mut out: HashMap<String, Tensor> = HashMap::new();
        for (name, id) in &self.names {
            if let Some(g) = &self.by_node[*id] {
                let total = match out.remove(name) {
                    Some(sum) => sum.add(g)?,
                    None => g.clone(),
                };
                out.insert(name.clone(), total);
            }
        }
        Ok(out)
    }
}

impl Tape {
    /// A tape that records every op.
    pub fn new() -> Self {
        Self::with_recording(true)
    }

    /// A tape that records nothing: ops just compute (evaluation, inference).
    pub fn no_grad() -> Self {
        Self::with_recording(false)
    }

    fn with_recording(recording: bool) -> Self {
        Self {
            id: NEXT_TAPE.fetch_add(1, Ordering::Relaxed),
            nodes: RefCell::new(Vec::new()),
            recording,
        }
    }

    /// Whether ops are recorded.
    pub fn is_recording(&self) -> bool {
        self.recording
    }

    fn push(&self, op: Op, value: Tensor) -> Var {
        if !self.recording {
            return self.untracked(value);
        }
        let mut nodes = self.nodes.borrow_mut();
        nodes.push(Node {
            op,
            value: value.clone(),
        });
        Var {
            tape: self.id,
            id: Some(nodes.len() - 1),
            value,
        }
    }

    /// A value of this tape that no node records (every value of a no_grad tape).
    fn untracked(&self, value: Tensor) -> Var {
        Var {
            tape: self.id,
            id: None,
            value,
        }
    }

    /// The node of `v`, which must come from this tape.
    fn id(&self, v: &Var, what: &str) -> Result<usize> {
        if v.tape != self.id {
            return arg_err!(
                "autograd: {what} of shape {:?} was made on another tape; values cannot move \
                 between tapes (make one tape per forward pass and use its values)",
                v.shape()
            );
        }
        match v.id {
            Some(id) if id < self.nodes.borrow().len() => Ok(id),
            _ => arg_err!(
                "autograd: {what} of shape {:?} is not recorded (it was made on a no_grad tape)",
                v.shape()
            ),
        }
    }

    /// An `Err` unless every value comes from this tape (checked even when not
    /// recording, so the same code fails the same way in evaluation).
    fn check_own(&self, values: &[(&Var, &str)]) -> Result<()> {
        for (v, what) in values {
            if v.tape != self.id {
                return arg_err!(
                    "autograd: {what} of shape {:?} was made on another tape; values cannot \
                     move between tapes",
                    v.shape()
                );
            }
        }
        Ok(())
    }

    /// An input value: gradients flow to it but nothing is trained.
    pub fn input(&self, value: Tensor) -> Var {
        self.push(Op::Leaf { name: None }, value)
    }

    /// A parameter: its gradient is reported under `name` by [`Gradients::by_name`].
    pub fn param(&self, name: &str, value: Tensor) -> Var {
        self.push(
            Op::Leaf {
                name: Some(name.to_string()),
            },
            value,
        )
    }

    /// Records the op that made `y` from `inputs` (each with what it is, for errors):
    /// every input must come from this tape, and `op` gets their node numbers in order.
    /// A no_grad tape records nothing and returns an untracked value.
    fn record(
        &self,
        inputs: &[(&Var, &str)],
        y: Tensor,
        op: impl FnOnce(&[usize]) -> Op,
    ) -> Result<Var> {
        self.check_own(inputs)?;
        if !self.recording {
            return Ok(self.untracked(y));
        }
        let ids = inputs
            .iter()
            .map(|(v, what)| self.id(v, what))
            .collect::<Result<Vec<_>>>()?;
        Ok(self.push(op(&ids), y))
    }

    // The recorded ops. Each checks its inputs belong to this tape, computes its value
    // with `crate::ops` and records what its backward rule (in `backward_op`) needs.

    /// `conv2d(x, w) + b`.
    pub fn conv2d(&self, x: &Var, w: &Var, b: Option<&Var>, p: &Conv2dParams) -> Result<Var> {
        let inputs = with_bias(
            [(x, "conv2d input"), (w, "conv2d weight")],
            b,
            "conv2d bias",
        );
        self.check_own(&inputs)?;
        let y = conv2d(&x.value, &w.value, b.map(|b| &b.value), p)?;
        self.record(&inputs, y, |ids| Op::Conv2d {
            x: ids[0],
            w: ids[1],
            b: ids.get(2).copied(),
            p: *p,
        })
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
        self.record(&inputs, y, |ids| Op::ConvTranspose2d {
            x: ids[0],
            w: ids[1],
            b: ids.get(2).copied(),
            p: *p,
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
        self.record(&inputs, y, |ids| Op::Linear {
            x: ids[0],
            w: ids[1],
            b: ids.get(2).copied(),
        })
    }

    /// Batch norm in training mode with affine `weight` and `bias`; returns the output and
    /// the new running mean and variance (momentum 0.1 semantics are the caller's choice).
    #[allow(clippy::too_many_arguments)]
    pub fn batch_norm_train(
        &self,
        x: &Var,
        weight: &Var,
        bias: &Var,
        running_mean: &Tensor,
        running_var: &Tensor,
        momentum: f32,
        eps: f32,
    ) -> Result<(Var, Tensor, Tensor)> {
        let inputs = [
            (x, "batch_norm input"),
            (weight, "batch_norm weight"),
            (bias, "batch_norm bias"),
        ];
        self.check_own(&inputs)?;
        let r = batch_norm_train(
            &x.value,
            Some(&weight.value),
            Some(&bias.value),
            running_mean,
            running_var,
            momentum,
            eps,
        )?;
        let (save_mean, save_invstd) = (r.save_mean, r.save_invstd);
        let y = self.record(&inputs, r.y, |ids| Op::BatchNorm {
            x: ids[0],
            weight: ids[1],
            bias: ids[2],
            save_mean,
            save_invstd,
        })?;
        Ok((y, r.running_mean, r.running_var))
    }

    /// A value computed outside the tape (e.g. eval-mode batch norm): no gradient flows
    /// through it.
    pub fn constant(&self, value: Tensor) -> Var {
        self.push(Op::Leaf { name: None }, value)
    }

    /// `max(x, 0)`.
    pub fn relu(&self, x: &Var) -> Result<Var> {
        self.unary(x, "relu input", |x| x.relu(), |x| Op::Relu { x })
    }

    /// `min(max(x, 0), 6)`.
    pub fn relu6(&self, x: &Var) -> Result<Var> {
        self.unary(x, "relu6 input", |x| x.relu6(), |x| Op::Relu6 { x })
    }

    /// A smooth activation (sigmoid, hard-sigmoid, hard-swish, SiLU).
    pub fn activation(&self, x: &Var, kind: Act) -> Result<Var> {
        let op = move |x| Op::Activation { x, kind };
        self.unary(x, "activation input", |x| kind.forward(x), op)
    }

    /// Mean over H×W: `[N, C, H, W]` → `[N, C, 1, 1]`.
    pub fn global_avg_pool(&self, x: &Var) -> Result<Var> {
        let f = |x: &Tensor| x.global_avg_pool2d();
        self.unary(x, "global_avg_pool input", f, |x| Op::GlobalAvgPool { x })
    }

    /// The same data under `shape`.
    pub fn reshape(&self, x: &Var, shape: &[usize]) -> Result<Var> {
        self.unary(
            x,
            "reshape input",
            |x| x.reshape(shape),
            |x| Op::Reshape { x },
        )
    }

    /// Dropout with probability `p` (identity unless `training`), seeded.
    pub fn dropout(&self, x: &Var, p: f32, training: bool, seed: u64) -> Result<Var> {
        self.check_own(&[(x, "dropout input")])?;
        let (y, mask) = dropout(&x.value, p, training, seed)?;
        self.record(&[(x, "dropout input")], y, |ids| Op::Dropout {
            x: ids[0],
            mask,
            p,
        })
    }

    /// An op of one input: checks, computes `f(x)`, records `op(x's node)`.
    fn unary(
        &self,
        x: &Var,
        what: &str,
        f: impl FnOnce(&Tensor) -> Result<Tensor>,
        op: impl FnOnce(usize) -> Op,
    ) -> Result<Var> {
        self.check_own(&[(x, what)])?;
        let y = f(&x.value)?;
        self.record(&[(x, what)], y, |ids| op(ids[0]))
    }

    /// `a + b` with broadcasting.
    pub fn add(&self, a: &Var, b: &Var) -> Result<Var> {
        let inputs = [(a, "add operand"), (b, "add operand")];
        self.check_own(&inputs)?;
        let y = a.value.add(&b.value)?;
        self.record(&inputs, y, |ids| Op::Add {
            a: ids[0],
            b: ids[1],
        })
    }

    /// `a · b` with broadcasting.
    pub fn mul(&self, a: &Var, b: &Var) -> Result<Var> {
        let inputs = [(a, "mul operand"), (b, "mul operand")];
        self.check_own(&inputs)?;
        let y = a.value.mul(&b.value)?;
        self.record(&inputs, y, |ids| Op::Mul {
            a: ids[0],
            b: ids[1],
        })
    }

    /// Mean cross-entropy of `logits [N, C]` against class indices, with label smoothing.
    pub fn cross_entropy(&self, logits: &Var, targets: &[usize], smoothing: f32) -> Result<Var> {
        let inputs = [(logits, "cross_entropy logits")];
        self.check_own(&inputs)?;
        let y = cross_entropy(&logits.value, targets, smoothing)?;
        self.record(&inputs, y, |ids| Op::CrossEntropy {
            logits: ids[0],
            targets: targets.to_vec(),
            smoothing,
        })
    }

    /// Gradients of the one-element `loss` with respect to every recorded value it
    /// depends on.
    pub fn backward(&self, loss: &Var) -> Result<Gradients> {
        let root = self.id(loss, "loss")?;
        if loss.value.numel() != 1 {
            return arg_err!(
                "autograd: backward needs a one-element loss, got shape {:?}",
                loss.shape()
            );
        }
        let nodes = self.nodes.borrow();
        let mut grads: Vec<Option<Tensor>> = vec![None; nodes.len()];
        grads[root] = Some(Tensor::ones(loss.value.device(), loss.shape())?);
        let profile = std::env::var_os("LIANDAN_PROFILE").is_some();
        let mut times: HashMap<String, f64> = HashMap::new();
        for id in (0..=root).rev() {
            let Some(g) = grads[id].take() else { continue };
            let start = std::time::Instant::now();
            let rule = self.backward_op(&nodes, &nodes[id].op, &g)?;
            if profile {
                g.device().synchronize()?;
                *times.entry(nodes[id].op.name()).or_default() += start.elapsed().as_secs_f64();
            }
            for (input, grad) in rule {
                grads[input] = Some(match grads[input].take() {
                    Some(sum) => sum.add(&grad)?, // used by several ops: accumulate
                    None => grad,
                });
            }
            grads[id] = Some(g);
        }
        if profile {
            let mut rows: Vec<_> = times.into_iter().collect();
            rows.sort_by(|a, b| b.1.total_cmp(&a.1));
            for (name, t) in rows.iter().take(15) {
                eprintln!("backward {t:8.3} s  {name}");
            }
        }
        let names = nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| match &n.op {
                Op::Leaf { name: Some(name) } => Some((name.clone(), i)),
                _ => None,
            })
            .collect();
        Ok(Gradients {
            tape: self.id,
            by_node: grads,
            names,
        })
    }

    /// The backward rule of `op`: the gradient for each input, given the output's `g`.
    fn backward_op(&self, nodes: &[Node], op: &Op, g: &Tensor) -> Result<Vec<(usize, Tensor)>> {
        let value = |i: usize| &nodes[i].value;
        Ok(match op {
            Op::Leaf { .. } => vec![],
            Op::Conv2d { x, w, b, p } => {
                let mut out = vec![
                    (
                        *x,
                        conv2d_backward_input(g, value(*w), value(*x).shape(), p)?,
                    ),
                    (
                        *w,
                        conv2d_backward_weight(value(*x), g, value(*w).shape(), p)?,
                    ),
                ];
                if let Some(b) = b {
                    out.push((*b, conv_backward_bias(g)?));
                }
                out
            }
            Op::ConvTranspose2d { x, w, b, p } => {
                let mut out = vec![
                    (
                        *x,
                        conv_transpose2d_backward_input(g, value(*w), value(*x).shape(), p)?,
                    ),
                    (
                        *w,
                        conv_transpose2d_backward_weight(value(*x), g, value(*w).shape(), p)?,
                    ),
                ];
                if let Some(b) = b {
                    out.push((*b, conv_backward_bias(g)?));
                }
                out
            }
            Op::BatchNorm {
                x,
                weight,
                bias,
                save_mean,
                save_invstd,
            } => {
                let (dx, dw, db) = batch_norm_backward(
                    g,
                    value(*x),
                    Some(value(*weight)),
                    save_mean,
                    save_invstd,
                )?;
                vec![(*x, dx), (*weight, dw), (*bias, db)]
            }
            Op::Relu { x } => vec![(*x, binary(g, value(*x), BinaryOp::ReluGrad)?)],
            Op::Relu6 { x } => vec![(*x, binary(g, value(*x), BinaryOp::Relu6Grad)?)],
            Op::Activation { x, kind } => vec![(*x, binary(g, value(*x), kind.gradient())?)],
            Op::Mul { a, b } => vec![
                (*a, sum_to_shape(&g.mul(value(*b))?, value(*a).shape())?),
                (*b, sum_to_shape(&g.mul(value(*a))?, value(*b).shape())?),
            ],
            Op::Add { a, b } => vec![
                (*a, sum_to_shape(g, value(*a).shape())?),
                (*b, sum_to_shape(g, value(*b).shape())?),
            ],
            Op::GlobalAvgPool { x } => {
                vec![(*x, global_avg_pool2d_backward(g, value(*x).shape())?)]
            }
            Op::Reshape { x } => vec![(*x, g.reshape(value(*x).shape())?)],
            Op::Dropout { x, mask, p } => match mask {
                Some(mask) => vec![(*x, dropout_backward(g, mask, *p)?)],
                None => vec![(*x, g.clone())],
            },
            Op::Linear { x, w, b } => {
                let (dx, dw, db) = linear_backward(value(*x), value(*w), g)?;
                let mut out = vec![(*x, dx), (*w, dw)];
                if let Some(b) = b {
                    out.push((*b, db));
                }
                out
            }
            Op::CrossEntropy {
                logits,
                targets,
                smoothing,
            } => {
                // The rule for a unit incoming gradient, scaled by the actual one (a
                // one-element tensor that stays on the device).
                let unit = cross_entropy_backward(value(*logits), targets, *smoothing, 1.0)?;
                vec![(*logits, unit.mul(g)?)]
            }
        })
    }

    /// One line per recorded op: number, op, inputs and output shape — the model's graph.
    pub fn dump(&self) -> String {
        let mut text = String::new();
        for (i, node) in self.nodes.borrow().iter().enumerate() {
            let inputs = node.op.inputs();
            let _ = writeln!(
                text,
                "#{i:<4} {} {inputs:?} -> {:?}",
                node.op.name(),
                node.value.shape()
            );
        }
        text
    }

    /// How many ops are recorded.
    pub fn len(&self) -> usize {
        self.nodes.borrow().len()
    }

    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The inputs of an op with an optional bias: the two given, then the bias if any.
fn with_bias<'a>(
    inputs: [(&'a Var, &'a str); 2],
    bias: Option<&'a Var>,
    what: &'a str,
) -> Vec<(&'a Var, &'a str)> {
    inputs.into_iter().chain(bias.map(|b| (b, what))).collect()
}

/// `g` summed over the dimensions a broadcast expanded, so it has `shape` again.
fn sum_to_shape(g: &Tensor, shape: &[usize]) -> Result<Tensor> {
    if g.shape() == shape {
        return Ok(g.clone());
    }
    let lead = g.ndim() - shape.len();
    let axes: Vec<usize> = (0..g.ndim())
        .filter(|&d| d < lead || (shape[d - lead] == 1 && g.shape()[d] != 1))
        .collect();
    if axes.is_empty() {
        return g.reshape(shape);
    }
    g.sum(&axes, true)?.reshape(shape)
}
