//! [`Sequential`]: children run in order, numbered as `torch.nn.Sequential` numbers them.

use super::{Ctx, Module, Scope};
use crate::autograd::Var;
use crate::error::Result;
use crate::ops::norm::BnAct;

/// Modules applied one after another. Child `i` is built in scope `i`, and a child with
/// no tensors (an activation, a pooling) takes an index all the same, as in PyTorch, so
/// the tensors of the child after it are named as torchvision names them.
#[derive(Default)]
pub struct Sequential {
    children: Vec<Box<dyn Module>>,
}

/// The children of a [`Sequential`] being built, in its scope.
pub struct Layers<'s, 'a> {
    scope: &'s mut Scope<'a>,
    children: Vec<Box<dyn Module>>,
}

impl Layers<'_, '_> {
    /// Adds the child that `build` makes in the next index's scope.
    pub fn add<M: Module + 'static>(
        &mut self,
        build: impl FnOnce(&mut Scope) -> Result<M>,
    ) -> Result<&mut Self> {
        let child = build(&mut self.scope.pp(self.children.len()))?;
        self.children.push(Box::new(child));
        Ok(self)
    }

    /// Adds the child that `build` makes in the scope `name` instead of the next index
    /// (PyTorch's `Sequential(OrderedDict(...))`, as DenseNet names its children).
    pub fn add_named<M: Module + 'static>(
        &mut self,
        name: &str,
        build: impl FnOnce(&mut Scope) -> Result<M>,
    ) -> Result<&mut Self> {
        let child = build(&mut self.scope.pp(name))?;
        self.children.push(Box::new(child));
        Ok(self)
    }

    /// Adds a child without tensors; it takes the next index.
    pub fn add_plain<M: Module + 'static>(&mut self, child: M) -> &mut Self {
        self.children.push(Box::new(child));
        self
    }

    /// The index the next child will take.
    pub fn next_index(&self) -> usize {
        self.children.len()
    }
}

impl Sequential {
    /// The sequence `build` adds children to, in `scope`.
    pub fn build(scope: &mut Scope, build: impl FnOnce(&mut Layers) -> Result<()>) -> Result<Self> {
        let mut layers = Layers {
            scope,
            children: Vec::new(),
        };
        build(&mut layers)?;
        Ok(Self {
            children: layers.children,
        })
    }

    /// A sequence of ready-made children (none of them holding tensors, or all built in
    /// their scopes already).
    pub fn from_children(children: Vec<Box<dyn Module>>) -> Self {
        Self { children }
    }

    /// Number of children.
    pub fn len(&self) -> usize {
        self.children.len()
    }

    /// Whether there are no children (then the sequence is the identity).
    pub fn is_empty(&self) -> bool {
        self.children.is_empty()
    }
}

impl Module for Sequential {
    /// Each child in turn; a child followed by an activation it can fuse (batch norm
    /// then ReLU or ReLU6) runs with it as one op, and a convolution followed by a batch
    /// norm (and such an activation) fused as [`Module::forward_then_batch_norm`] says.
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let mut y = x.clone();
        let mut i = 0;
        while i < self.children.len() {
            let child = &self.children[i];
            let next = self.children.get(i + 1);
            if let Some(bn) = next.and_then(|n| n.as_batch_norm()) {
                let after = self
                    .children
                    .get(i + 2)
                    .and_then(|n| n.fusable_activation());
                let act = after.unwrap_or(BnAct::Identity);
                if let Some(fused) = child.forward_then_batch_norm(ctx, &y, bn, act) {
                    y = fused?;
                    i += if after.is_some() { 3 } else { 2 };
                    continue;
                }
            }
            if let Some(act) = next.and_then(|n| n.fusable_activation())
                && let Some(fused) = child.forward_then(ctx, &y, act)
            {
                y = fused?;
                i += 2;
                continue;
            }
            y = child.forward(ctx, &y)?;
            i += 1;
        }
        Ok(y)
    }
}
