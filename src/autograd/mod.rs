//! The autograd tape: ops on tracked values ([`Var`]) are recorded on a [`Tape`] as a
//! closed enum ([`Op`]); [`Tape::backward`] walks the tape in reverse and applies each op's
//! backward rule, which sits beside its forward in the op family's file (`conv.rs`,
//! `norm.rs`, …). Creation order is a
//! topological order, so no graph sort is needed. A value used by several ops accumulates
//! its gradients. A tape made with [`Tape::no_grad`] records nothing (inference).
//!
//! The ops' forward and backward kernels live in `crate::ops`; this module only decides
//! which to call and keeps what the backward passes need.

mod activation;
mod arith;
mod conv;
mod loss;
mod norm;
mod pool;
mod profile;
mod regularize;
mod shape;

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

pub use activation::{Act, ActOp};
pub use arith::ArithOp;
pub use conv::ConvOp;
pub use loss::LossOp;
pub use norm::{BatchStats, NormOp, RunningStats};
pub use pool::PoolOp;
pub use profile::ProfileRow;
pub use regularize::{RegularizeOp, stochastic_depth_scale};
pub use shape::ShapeOp;

use crate::error::{Result, arg_err};
use crate::tensor::Tensor;

/// A value on a tape: the tensor, the tape it belongs to, and the number of the node that
/// made it.
#[derive(Clone, Debug)]
pub struct Var {
    tape: u64,
    id: Option<usize>, // None: not recorded (a no_grad tape)
    value: Tensor,
}

/// One recorded op, as [`Tape::records`] lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// What the op is, with its settings: `conv2d stride (2, 2) pad (3, 3) …`, `relu`,
    /// `param layer1.0.conv1.weight`, `input`.
    pub op: String,
    /// The parameter's name, for a parameter leaf.
    pub param: Option<String>,
    /// The numbers of the records it reads.
    pub inputs: Vec<usize>,
    /// Its output's shape.
    pub shape: Vec<usize>,
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

/// One recorded operation: a leaf, or an op of one of the families below, holding its
/// inputs (node numbers) and what its backward rule needs.
#[derive(Debug)]
pub enum Op {
    /// An input or a parameter (named); gradients stop here.
    Leaf {
        /// The parameter's name, `None` for an input.
        name: Option<String>,
    },
    /// Convolutions and the linear layer.
    Conv(ConvOp),
    /// Batch, layer and group norm.
    Norm(NormOp),
    /// Activations.
    Act(ActOp),
    /// Elementwise arithmetic.
    Arith(ArithOp),
    /// Pooling.
    Pool(PoolOp),
    /// Reshapes, joins, splits and channel shuffles.
    Shape(ShapeOp),
    /// Softmax, log-softmax and the losses.
    Loss(LossOp),
    /// Dropout.
    Regularize(RegularizeOp),
}

/// The values of the tape's nodes, by node number, as a backward rule reads them.
type Values<'a> = &'a dyn Fn(usize) -> &'a Tensor;

/// What every family's ops offer the tape: their inputs, a name, and the backward rule,
/// which sits in the family's file beside the methods that record the op.
trait Rule {
    /// The node numbers the op reads.
    fn inputs(&self) -> Vec<usize>;
    /// What the op is, for dumps and profiles.
    fn name(&self) -> String;
    /// The gradient for each input given the output's gradient `g`; `value(i)` is node
    /// i's value and `out` the op's own output.
    fn backward(&self, value: Values<'_>, out: &Tensor, g: &Tensor)
    -> Result<Vec<(usize, Tensor)>>;
    /// As `backward`, handed `g` itself: the tape keeps no gradient of an op's output, so
    /// a rule may write its result over `g`'s storage when nothing else holds it.
    fn backward_owned(
        &self,
        value: Values<'_>,
        out: &Tensor,
        g: Tensor,
    ) -> Result<Vec<(usize, Tensor)>> {
        self.backward(value, out, &g)
    }
}

impl Op {
    fn rule(&self) -> Option<&dyn Rule> {
        Some(match self {
            Op::Leaf { .. } => return None,
            Op::Conv(op) => op,
            Op::Norm(op) => op,
            Op::Act(op) => op,
            Op::Arith(op) => op,
            Op::Pool(op) => op,
            Op::Shape(op) => op,
            Op::Loss(op) => op,
            Op::Regularize(op) => op,
        })
    }

    /// The node numbers this op reads.
    fn inputs(&self) -> Vec<usize> {
        self.rule().map_or_else(Vec::new, |r| r.inputs())
    }

    fn name(&self) -> String {
        match self {
            Op::Leaf { name: Some(n) } => format!("param {n}"),
            Op::Leaf { name: None } => "input".into(),
            op => op.rule().map(|r| r.name()).unwrap_or_default(),
        }
    }

    fn backward(&self, value: Values<'_>, out: &Tensor, g: Tensor) -> Result<Vec<(usize, Tensor)>> {
        match self.rule() {
            Some(rule) => rule.backward_owned(value, out, g),
            None => Ok(Vec::new()),
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
    /// Per-kind times, on a [`Tape::profiled`] tape.
    profile: RefCell<Option<profile::Profile>>,
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
    /// The gradient of `v`, a leaf of the tape (an input, constant or parameter), if the
    /// loss depends on it. `None` as well for a value of another tape, and for an op's
    /// output: as PyTorch keeps no `.grad` of non-leaf tensors, the tape hands those
    /// gradients to the backward rules, which may reuse their memory.
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
            profile: RefCell::new(None),
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
        if let Some(profile) = self.profile.borrow_mut().as_mut() {
            match &op {
                Op::Leaf { .. } => profile.restart(),
                // A failed wait surfaces at the next read-back; the profile goes on.
                _ => drop(profile.forward(value.device(), profile::kind(&op, &nodes))),
            }
        }
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

    /// A value computed outside the tape: no gradient flows through it.
    pub fn constant(&self, value: Tensor) -> Var {
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

    // The recorded ops live in the family files (conv.rs, norm.rs, ...), each beside its
    // backward rule. Each checks its inputs belong to this tape, computes its value with
    // `crate::ops`, and records what the rule needs through `record`.

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

    /// An op of one input: checks it, computes `f(x)`, records `op(x's node)`.
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
        let mut profile = self.profile.borrow_mut();
        for id in (0..=root).rev() {
            let Some(g) = grads[id].take() else { continue };
            let start = std::time::Instant::now();
            let value = |i: usize| &nodes[i].value;
            // Leaves keep their gradients (what `Gradients` returns); an op's output's
            // gradient goes to its rule, which may reuse its storage.
            if matches!(nodes[id].op, Op::Leaf { .. }) {
                grads[id] = Some(g);
                continue;
            }
            let device = g.device().clone();
            let rule = nodes[id].op.backward(&value, &nodes[id].value, g)?;
            if let Some(profile) = profile.as_mut() {
                device.synchronize()?;
                let kind = profile::kind(&nodes[id].op, &nodes);
                profile.backward(kind, start.elapsed().as_secs_f64());
            }
            for (input, grad) in rule {
                grads[input] = Some(match grads[input].take() {
                    Some(sum) => sum.add(&grad)?, // used by several ops: accumulate
                    None => grad,
                });
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

    /// One line per recorded op: number, op, inputs and output shape — the model's graph.
    pub fn dump(&self) -> String {
        let mut text = String::new();
        for (i, r) in self.records().iter().enumerate() {
            let _ = writeln!(text, "#{i:<4} {} {:?} -> {:?}", r.op, r.inputs, r.shape);
        }
        text
    }

    /// Every recorded op in order (its number is its index): what tools such as
    /// `model_summary` build their tables from.
    pub fn records(&self) -> Vec<Record> {
        self.nodes
            .borrow()
            .iter()
            .map(|node| Record {
                op: node.op.name(),
                param: match &node.op {
                    Op::Leaf { name } => name.clone(),
                    _ => None,
                },
                inputs: node.op.inputs(),
                shape: node.value.shape().to_vec(),
            })
            .collect()
    }

    /// The value record `index` of [`Tape::records`] made (an intermediate feature map,
    /// for instance); `None` past the end.
    pub fn value(&self, index: usize) -> Option<Tensor> {
        self.nodes
            .borrow()
            .get(index)
            .map(|node| node.value.clone())
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

/// `g` summed over the dimensions a broadcast expanded, so it has `shape` again.
pub(crate) fn sum_to_shape(g: &Tensor, shape: &[usize]) -> Result<Tensor> {
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
