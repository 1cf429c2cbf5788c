//! The parameter store: every named tensor of a model, in the order it was registered.
//!
//! Names follow PyTorch's dotted paths (`layer1.0.conv1.weight`), so a checkpoint's names
//! read like a `state_dict`'s. Trained tensors are *parameters*; tensors a module updates
//! itself but no optimizer touches (batch norm's running statistics) are *buffers*.

use std::collections::HashMap;

use crate::error::{Error, Result, arg_err, shape_err};
use crate::tensor::Tensor;

/// Whether a stored tensor is trained or only carried along.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// Trained: optimizers update it from its gradient.
    Parameter,
    /// Not trained (e.g. batch norm's `running_mean`), but saved in checkpoints.
    Buffer,
    /// A buffer holding a whole number (batch norm's `num_batches_tracked`): kept as an f32
    /// scalar on the device (exact to 2^24), saved as an I64 scalar as PyTorch saves it.
    Counter,
}

/// One stored tensor.
#[derive(Clone, Debug)]
struct Entry {
    name: String,
    tensor: Tensor,
    kind: ParamKind,
}

/// An ordered map from name to tensor, each a [`ParamKind::Parameter`] or a
/// [`ParamKind::Buffer`]. Iteration follows insertion order, so a model's parameters come
/// out in the order its layers registered them (as PyTorch's `named_parameters`).
#[derive(Clone, Debug, Default)]
pub struct ParamStore {
    entries: Vec<Entry>,
    /// Name → position in `entries`.
    index: HashMap<String, usize>,
}

impl ParamStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a trained parameter; an `Err` if `name` is already taken.
    pub fn insert_param(&mut self, name: impl Into<String>, tensor: Tensor) -> Result<()> {
        self.insert(name.into(), tensor, ParamKind::Parameter)
    }

    /// Registers a buffer (saved, not trained); an `Err` if `name` is already taken.
    pub fn insert_buffer(&mut self, name: impl Into<String>, tensor: Tensor) -> Result<()> {
        self.insert(name.into(), tensor, ParamKind::Buffer)
    }

    /// Registers `tensor` as `name` of `kind`; an `Err` if the name is empty or taken.
    pub fn insert(&mut self, name: String, tensor: Tensor, kind: ParamKind) -> Result<()> {
        if name.is_empty() {
            return arg_err!(
                "parameter store: a tensor of shape {:?} has an empty name",
                tensor.shape()
            );
        }
        if self.index.contains_key(&name) {
            return arg_err!("parameter store: the name {name:?} is already registered");
        }
        self.index.insert(name.clone(), self.entries.len());
        self.entries.push(Entry { name, tensor, kind });
        Ok(())
    }

    fn entry(&self, name: &str) -> Result<&Entry> {
        self.index
            .get(name)
            .map(|&i| &self.entries[i])
            .ok_or_else(|| {
                Error::InvalidArgument(format!("parameter store has no tensor named {name:?}"))
            })
    }

    /// The tensor called `name`; an `Err` naming it when there is none.
    pub fn get(&self, name: &str) -> Result<&Tensor> {
        Ok(&self.entry(name)?.tensor)
    }

    /// Whether `name` is a parameter or a buffer; an `Err` when there is no such tensor.
    pub fn kind(&self, name: &str) -> Result<ParamKind> {
        Ok(self.entry(name)?.kind)
    }

    /// Whether a tensor called `name` is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// Replaces the tensor called `name` with one of the same shape (an optimizer step, a
    /// running-statistics update, a checkpoint load). An `Err` if there is no such tensor
    /// or the shapes differ.
    pub fn set(&mut self, name: &str, tensor: Tensor) -> Result<()> {
        let Some(&i) = self.index.get(name) else {
            return arg_err!("parameter store: cannot set {name:?}, no tensor has that name");
        };
        let entry = &mut self.entries[i];
        if entry.tensor.shape() != tensor.shape() {
            return shape_err!(
                "parameter store: {name:?} has shape {:?}, the new tensor has shape {:?}",
                entry.tensor.shape(),
                tensor.shape()
            );
        }
        entry.tensor = tensor;
        Ok(())
    }

    /// The parameters (not the buffers), in insertion order.
    pub fn params(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.of_kind(ParamKind::Parameter)
    }

    /// The buffers (counters included; not the parameters), in insertion order.
    pub fn buffers(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.entries
            .iter()
            .filter(|e| e.kind != ParamKind::Parameter)
            .map(|e| (e.name.as_str(), &e.tensor))
    }

    fn of_kind(&self, kind: ParamKind) -> impl Iterator<Item = (&str, &Tensor)> {
        self.entries
            .iter()
            .filter(move |e| e.kind == kind)
            .map(|e| (e.name.as_str(), &e.tensor))
    }

    /// Every tensor with its kind, in insertion order.
    pub fn iter_all(&self) -> impl Iterator<Item = (&str, &Tensor, ParamKind)> {
        self.entries
            .iter()
            .map(|e| (e.name.as_str(), &e.tensor, e.kind))
    }

    /// Elements in all parameters together, buffers excluded (PyTorch's
    /// `sum(p.numel() for p in model.parameters())`).
    pub fn num_parameters(&self) -> usize {
        self.params().map(|(_, t)| t.numel()).sum()
    }

    /// Number of tensors, parameters and buffers together.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the store holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
