//! Stochastic gradient descent with momentum, Nesterov momentum and weight decay, as
//! PyTorch's `torch.optim.SGD`. Kernel: `shaders/optim_sgd.wgsl`.

use std::collections::{BTreeMap, HashMap};

use super::{Optimizer, WG, check_meta_keys, check_range, check_state_tensor, collect_updates};
use crate::error::{Result, arg_err, shape_err};
use crate::gpu::{Grid, Kernel, kernel};
use crate::nn::ParamStore;
use crate::ops::windows::for_each_window;
use crate::tensor::Tensor;

const SGD: Kernel = kernel!("optim_sgd.wgsl");

/// Prefix of the momentum buffers' state names.
const BUFFER_PREFIX: &str = "momentum_buffer.";

/// Bits of the kernel's `flags`.
const FIRST_STEP: u32 = 1;
const NESTEROV: u32 = 2;

/// SGD's hyperparameters, PyTorch's names and defaults (all zero, Nesterov off).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdConfig {
    /// Momentum factor; 0 keeps no buffer at all.
    pub momentum: f32,
    /// Dampening of the gradient's share of the momentum buffer.
    pub dampening: f32,
    /// Nesterov momentum (needs momentum > 0 and dampening 0, as in PyTorch).
    pub nesterov: bool,
    /// L2 penalty, added to the gradient (`g + wd·p`; coupled, unlike AdamW's).
    pub weight_decay: f32,
}

impl Default for SgdConfig {
    fn default() -> Self {
        Self {
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }
}

/// SGD with PyTorch's update rule:
/// `g = grad + wd·p`; with momentum, `buf = g` on a parameter's first step and
/// `buf = momentum·buf + (1 - dampening)·g` after; `g = nesterov ? g + momentum·buf : buf`;
/// `p = p - lr·g`.
#[derive(Clone, Debug)]
pub struct Sgd {
    config: SgdConfig,
    /// Parameter name → momentum buffer; absent until the parameter's first step.
    buffers: HashMap<String, Tensor>,
    /// Storage set aside by [`Sgd::reserve`] for buffers not yet written.
    reserved: HashMap<String, Tensor>,
}

impl Sgd {
    /// An optimizer with `config`; an `Err` for a negative or non-finite value, or for
    /// Nesterov without momentum or with dampening (PyTorch's rules).
    pub fn new(config: SgdConfig) -> Result<Sgd> {
        check_range("SGD", "momentum", config.momentum, 0.0, f32::MAX)?;
        check_range("SGD", "dampening", config.dampening, f32::MIN, f32::MAX)?;
        check_range("SGD", "weight_decay", config.weight_decay, 0.0, f32::MAX)?;
        if config.nesterov && (config.momentum <= 0.0 || config.dampening != 0.0) {
            return arg_err!(
                "SGD: Nesterov momentum needs momentum > 0 and dampening 0 (got momentum {}, \
                 dampening {})",
                config.momentum,
                config.dampening
            );
        }
        Ok(Sgd {
            config,
            buffers: HashMap::new(),
            reserved: HashMap::new(),
        })
    }

    /// The hyperparameters.
    pub fn config(&self) -> &SgdConfig {
        &self.config
    }
}

impl Optimizer for Sgd {
    /// Sets aside the momentum buffers' storage for every parameter of `store` that has
    /// none yet: the first training step then already holds all the memory later steps
    /// hold (the buffers exist during backward).
    fn reserve(&mut self, store: &ParamStore) -> Result<()> {
        if self.config.momentum == 0.0 {
            return Ok(());
        }
        for (name, param) in store.params() {
            if !self.buffers.contains_key(name) && !self.reserved.contains_key(name) {
                self.reserved
                    .insert(name.to_string(), param.uninit_like(param.shape())?);
            }
        }
        Ok(())
    }

    fn step(
        &mut self,
        store: &mut ParamStore,
        grads: &HashMap<String, Tensor>,
        lr: f32,
    ) -> Result<()> {
        let updates = collect_updates("SGD", store, grads, lr)?;
        // A loaded buffer of the wrong shape is caught before anything changes.
        for u in &updates {
            if let Some(buf) = self.buffers.get(&u.name)
                && buf.shape() != u.param.shape()
            {
                return shape_err!(
                    "SGD: momentum buffer of {:?} has shape {:?}, the parameter {:?}",
                    u.name,
                    buf.shape(),
                    u.param.shape()
                );
            }
        }
        let c = &self.config;
        for u in updates {
            let device = u.param.device();
            let new_param = u.param.uninit_like(u.param.shape())?;
            let mut params = vec![
                0, // the window's element count, set per window
                0,
                lr.to_bits(),
                c.weight_decay.to_bits(),
                c.momentum.to_bits(),
                c.dampening.to_bits(),
            ];
            if c.momentum == 0.0 {
                for_each_window(&[&u.param, &u.grad, &new_param], |w| {
                    params[0] = w[0].numel() as u32;
                    let grid = Grid::for_items(w[0].numel() as u64, WG).trips(0);
                    let buffers = [w[0].buffer(), w[1].buffer(), w[2].buffer()];
                    device.dispatch(&SGD, "plain", &[], &buffers, &params, grid)
                })?;
            } else {
                let new_buf = u.param.uninit_like(u.param.shape())?;
                // No buffer yet: the kernel copies g and reads nothing from the old-buffer
                // slot. A placeholder of the buffer's size fills it anyway, so the first
                // step holds as many buffers as every later one (which holds the old buffer
                // while writing the new): a steady training loop then allocates nothing
                // after its first step.
                let placeholder;
                let old_buf = match self.buffers.get(&u.name) {
                    Some(b) => b,
                    None => {
                        placeholder = match self.reserved.remove(&u.name) {
                            Some(t) if t.shape() == u.param.shape() => t,
                            _ => u.param.uninit_like(u.param.shape())?,
                        };
                        &placeholder
                    }
                };
                params[1] = if self.buffers.contains_key(&u.name) {
                    0
                } else {
                    FIRST_STEP
                } | if c.nesterov { NESTEROV } else { 0 };
                let tensors = [&u.param, &u.grad, &new_param, old_buf, &new_buf];
                for_each_window(&tensors, |w| {
                    params[0] = w[0].numel() as u32;
                    let grid = Grid::for_items(w[0].numel() as u64, WG).trips(0);
                    let buffers: Vec<_> = w.iter().map(Tensor::buffer).collect();
                    device.dispatch(&SGD, "momentum", &[], &buffers, &params, grid)
                })?;
                self.buffers.insert(u.name.clone(), new_buf);
            }
            store.set(&u.name, new_param)?;
        }
        Ok(())
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        let mut state: Vec<(String, Tensor)> = self
            .buffers
            .iter()
            .map(|(name, t)| (format!("{BUFFER_PREFIX}{name}"), t.clone()))
            .collect();
        state.sort_by(|a, b| a.0.cmp(&b.0));
        state
    }

    fn state_meta(&self) -> Vec<(String, String)> {
        vec![("kind".to_string(), "sgd".to_string())]
    }

    fn load_state(
        &mut self,
        store: &ParamStore,
        tensors: &HashMap<String, Tensor>,
        meta: &BTreeMap<String, String>,
    ) -> Result<()> {
        // Whether a parameter has had its first step is the presence of its buffer; the
        // text holds only the kind.
        check_meta_keys("SGD", "sgd", meta, |_| false)?;
        let mut buffers = HashMap::new();
        let mut unknown = Vec::new();
        for (key, tensor) in tensors {
            match key.strip_prefix(BUFFER_PREFIX) {
                Some(name) if !name.is_empty() => {
                    check_state_tensor("SGD", store, key, name, tensor)?;
                    buffers.insert(name.to_string(), tensor.clone());
                }
                _ => unknown.push(key.as_str()),
            }
        }
        if !unknown.is_empty() {
            unknown.sort_unstable();
            return arg_err!(
                "SGD: unknown state tensors {unknown:?} (SGD keeps only \
                 \"{BUFFER_PREFIX}<parameter>\")"
            );
        }
        if self.config.momentum == 0.0 && !buffers.is_empty() {
            return arg_err!("SGD: momentum buffers given to an optimizer without momentum");
        }
        self.buffers = buffers;
        self.reserved.clear();
        Ok(())
    }
}
