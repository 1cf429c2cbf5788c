//! Optimizers and learning-rate schedules.
//!
//! An [`Optimizer`] updates the parameters of a [`ParamStore`] from their gradients with
//! one fused GPU dispatch per parameter (parameter and state in, new parameter and new
//! state out): nothing is read back, so a training step stays one submission. The
//! learning rate is an argument of each step, computed by a [`Schedule`].
//! Kernels: `shaders/optim_sgd.wgsl`, `shaders/optim_adamw.wgsl`.

pub mod adamw;
pub mod schedule;
pub mod sgd;

pub use adamw::{AdamW, AdamWConfig};
pub use schedule::Schedule;
pub use sgd::{Sgd, SgdConfig};

use std::collections::{BTreeMap, HashMap};

use crate::error::{Result, arg_err, shape_err};
use crate::nn::ParamStore;
use crate::nn::params::ParamKind;
use crate::tensor::Tensor;

/// Invocations per workgroup of the optimizer kernels (`WG` in their WGSL).
const WG: u64 = 256;

/// Updates parameters from gradients, keeping per-parameter state (momentum, moments).
pub trait Optimizer {
    /// One update of every parameter of `store` that has an entry in `grads`, at learning
    /// rate `lr`; the store's tensors are replaced by the updated ones. A parameter without
    /// a gradient is skipped, as PyTorch skips one whose `grad` is `None`. A gradient for a
    /// name that is not a parameter, or of another shape than its parameter, is an `Err`,
    /// and then nothing is updated.
    fn step(
        &mut self,
        store: &mut ParamStore,
        grads: &HashMap<String, Tensor>,
        lr: f32,
    ) -> Result<()>;

    /// The state tensors, named `<kind>.<parameter name>` and sorted by name (what a
    /// checkpoint saves).
    fn state(&self) -> Vec<(String, Tensor)>;

    /// Sets aside, before the first step, the storage the state will need, so a steady
    /// training loop allocates nothing after its first step. Results do not change.
    fn reserve(&mut self, store: &ParamStore) -> Result<()> {
        let _ = store;
        Ok(())
    }

    /// The state that is not tensors, as text: the optimizer's kind (`kind`) and, for
    /// AdamW, each parameter's step count (`step.<parameter name>`).
    fn state_meta(&self) -> Vec<(String, String)>;

    /// Replaces the whole state with what [`Optimizer::state`] and
    /// [`Optimizer::state_meta`] gave, for the parameters of `store`. Everything is
    /// checked first, and on any `Err` the state is unchanged: a name this optimizer does
    /// not keep, state for a parameter `store` does not have (or for a buffer), a tensor
    /// whose shape is not its parameter's, another optimizer's kind, a value that does not
    /// parse, or tensors and text that disagree.
    fn load_state(
        &mut self,
        store: &ParamStore,
        tensors: &HashMap<String, Tensor>,
        meta: &BTreeMap<String, String>,
    ) -> Result<()>;
}

/// An `Err` unless `tensor`, state `key` of parameter `name`, fits a parameter of `store`:
/// one that exists, is trained, and has the tensor's shape.
pub(crate) fn check_state_tensor(
    who: &str,
    store: &ParamStore,
    key: &str,
    name: &str,
    tensor: &Tensor,
) -> Result<()> {
    match store.kind(name) {
        Ok(ParamKind::Parameter) => {}
        Ok(ParamKind::Buffer | ParamKind::Counter) => {
            return arg_err!("{who}: state {key:?} belongs to {name:?}, a buffer, not a parameter");
        }
        Err(_) => {
            return arg_err!("{who}: state {key:?} is for {name:?}, which the model does not have");
        }
    }
    let want = store.get(name)?.shape();
    if tensor.shape() != want {
        return shape_err!(
            "{who}: state {key:?} has shape {:?}, its parameter {name:?} has shape {want:?}",
            tensor.shape()
        );
    }
    Ok(())
}

/// One parameter to update: its name, value and gradient (cheap clones of the store's).
pub(crate) struct Update {
    pub(crate) name: String,
    pub(crate) param: Tensor,
    pub(crate) grad: Tensor,
}

/// Checks `lr` and every gradient against `store`, then lists the parameters that have a
/// gradient, in the store's order. Everything is checked before anything is updated, so a
/// bad gradient leaves the parameters and the optimizer state as they were.
pub(crate) fn collect_updates(
    who: &str,
    store: &ParamStore,
    grads: &HashMap<String, Tensor>,
    lr: f32,
) -> Result<Vec<Update>> {
    if !lr.is_finite() || lr < 0.0 {
        return arg_err!("{who}: learning rate {lr} must be finite and non-negative");
    }
    let mut unknown: Vec<&str> = Vec::new();
    for name in grads.keys() {
        match store.kind(name) {
            Ok(ParamKind::Parameter) => {}
            Ok(ParamKind::Buffer | ParamKind::Counter) => {
                return arg_err!(
                    "{who}: {name:?} is a buffer, not a trained parameter, but has a gradient"
                );
            }
            Err(_) => unknown.push(name),
        }
    }
    if !unknown.is_empty() {
        unknown.sort_unstable();
        return arg_err!("{who}: gradients for unknown parameters {unknown:?}");
    }
    let mut updates = Vec::with_capacity(grads.len());
    for (name, param) in store.params() {
        let Some(grad) = grads.get(name) else {
            continue;
        };
        if grad.shape() != param.shape() {
            return shape_err!(
                "{who}: parameter {name:?} has shape {:?}, its gradient {:?}",
                param.shape(),
                grad.shape()
            );
        }
        param.check_same_device(grad, who)?;
        updates.push(Update {
            name: name.to_string(),
            param: param.clone(),
            grad: grad.clone(),
        });
    }
    Ok(updates)
}

/// An `Err` unless `value` is finite and in `[lo, hi]` (a hyperparameter check).
pub(crate) fn check_range(who: &str, what: &str, value: f32, lo: f32, hi: f32) -> Result<()> {
    if !value.is_finite() || value < lo || value > hi {
        return arg_err!("{who}: {what} = {value} must be finite and within [{lo}, {hi}]");
    }
    Ok(())
}

/// An `Err` unless `meta` names this optimizer's `kind` (when it names one at all) and
/// every other key passes `known`.
pub(crate) fn check_meta_keys(
    who: &str,
    kind: &str,
    meta: &BTreeMap<String, String>,
    known: impl Fn(&str) -> bool,
) -> Result<()> {
    if let Some(found) = meta.get("kind")
        && found != kind
    {
        return arg_err!("{who}: the saved state belongs to a {found:?} optimizer, not {kind:?}");
    }
    let unknown: Vec<&str> = meta
        .keys()
        .map(String::as_str)
        .filter(|k| *k != "kind" && !known(k))
        .collect();
    if !unknown.is_empty() {
        return arg_err!("{who}: unknown state entries {unknown:?}");
    }
    Ok(())
}
