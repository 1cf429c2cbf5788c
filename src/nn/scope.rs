//! Building a model: a [`Scope`] is the place in the model's tree a module is built at.
//!
//! It carries the [`ParamStore`] the tensors go into, the device, the random stream that
//! initializes them, and the dotted path so far (`features.3.conv.1`). A module takes a
//! scope, registers its tensors under their leaf names (`scope.param("weight", ..)`), and
//! hands its children sub-scopes (`scope.pp("conv1")`, `scope.pp(3)`): every name comes
//! from the structure, as PyTorch's `state_dict` keys do, and none is typed in full.

use std::fmt::Display;

use super::init::Init;
use super::params::{ParamKind, ParamStore};
use crate::error::{Result, arg_err};
use crate::gpu::Device;
use crate::rng::Rng;
use crate::tensor::{Tensor, checked_count};

/// Where a scope's tensors go.
enum Target<'a> {
    /// Made on a device and put in a store.
    Store {
        store: &'a mut ParamStore,
        device: &'a Device,
        rng: &'a mut Rng,
    },
    /// Only listed: names, shapes and kinds, nothing allocated (see [`specs`]).
    Specs(&'a mut Vec<TensorSpec>),
}

/// A tensor a model registers: its name, shape and kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    /// The dotted name.
    pub name: String,
    /// The shape.
    pub shape: Vec<usize>,
    /// Parameter, buffer or counter.
    pub kind: ParamKind,
}

/// A place in a model under construction. Sub-scopes borrow their parent, so a module
/// builds its children one after another.
pub struct Scope<'a> {
    target: Target<'a>,
    path: String,
}

impl<'a> Scope<'a> {
    /// The root of a model whose tensors go into `store` on `device`, initialized from
    /// `rng`.
    pub fn new(store: &'a mut ParamStore, device: &'a Device, rng: &'a mut Rng) -> Scope<'a> {
        Scope {
            target: Target::Store { store, device, rng },
            path: String::new(),
        }
    }

    /// The child scope `name` (a field name like `conv1`, or a `Sequential` index).
    pub fn pp(&mut self, name: impl Display) -> Scope<'_> {
        let path = if self.path.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.path)
        };
        let target = match &mut self.target {
            Target::Store { store, device, rng } => Target::Store { store, device, rng },
            Target::Specs(specs) => Target::Specs(specs),
        };
        Scope { target, path }
    }

    /// The dotted path of this scope (empty at the root).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The full name of the tensor `leaf` of this scope.
    pub fn name(&self, leaf: &str) -> String {
        if self.path.is_empty() {
            leaf.to_string()
        } else {
            format!("{}.{leaf}", self.path)
        }
    }

    /// Registers the trained parameter `leaf` of `shape`, initialized by `init`; returns
    /// its full name. The size is checked against the device before anything is drawn.
    pub fn param(&mut self, leaf: &str, shape: &[usize], init: Init) -> Result<String> {
        self.register(leaf, shape, init, ParamKind::Parameter)
    }

    /// Registers the buffer `leaf` (saved, not trained: running statistics).
    pub fn buffer(&mut self, leaf: &str, shape: &[usize], init: Init) -> Result<String> {
        self.register(leaf, shape, init, ParamKind::Buffer)
    }

    /// Registers the counter `leaf`, a scalar buffer holding a whole number (batch norm's
    /// `num_batches_tracked`), saved as an integer.
    pub fn counter(&mut self, leaf: &str) -> Result<String> {
        self.register(leaf, &[], Init::Zeros, ParamKind::Counter)
    }

    fn register(
        &mut self,
        leaf: &str,
        shape: &[usize],
        init: Init,
        kind: ParamKind,
    ) -> Result<String> {
        let name = self.name(leaf);
        match &mut self.target {
            Target::Store { store, device, rng } => {
                let n = checked_count(device, shape)?;
                let values = init.values(shape, n, rng)?;
                let tensor = Tensor::from_vec(device, values, shape)?;
                store.insert(name.clone(), tensor, kind)?;
            }
            Target::Specs(specs) => {
                if specs.iter().any(|s| s.name == name) {
                    return arg_err!("the name {name:?} is already registered");
                }
                specs.push(TensorSpec {
                    name: name.clone(),
                    shape: shape.to_vec(),
                    kind,
                });
            }
        }
        Ok(name)
    }
}

/// What `build` would register, without making a tensor: every name, shape and kind, in
/// registration order. Fast and free of any device (counting parameters, comparing a
/// model's names with a `state_dict`'s).
pub fn specs<M>(build: impl FnOnce(&mut Scope) -> Result<M>) -> Result<(M, Vec<TensorSpec>)> {
    let mut specs = Vec::new();
    let model = build(&mut Scope {
        target: Target::Specs(&mut specs),
        path: String::new(),
    })?;
    Ok((model, specs))
}

/// Builds a model with `build` in a fresh store on `device`, its tensors initialized from
/// `seed`: `let (model, store) = nn::build(&device, 0, |s| MobileNetV2::new(s, config))?`.
pub fn build<M>(
    device: &Device,
    seed: u64,
    build: impl FnOnce(&mut Scope) -> Result<M>,
) -> Result<(M, ParamStore)> {
    let mut store = ParamStore::new();
    let mut rng = Rng::new(seed);
    let model = build(&mut Scope::new(&mut store, device, &mut rng))?;
    Ok((model, store))
}
