//! AdamW (Adam with decoupled weight decay), as PyTorch's `torch.optim.AdamW`.
//! Kernel: `shaders/optim_adamw.wgsl`.

use std::collections::{BTreeMap, HashMap};

use super::{Optimizer, WG, check_meta_keys, check_range, check_state_tensor, collect_updates};
use crate::error::{Error, Result, arg_err, shape_err};
use crate::gpu::{Grid, Kernel, kernel};
use crate::nn::ParamStore;
use crate::ops::windows::for_each_window;
use crate::tensor::Tensor;

const ADAMW: Kernel = kernel!("optim_adamw.wgsl");

/// Prefixes of the state names and of the step counts in the meta.
const EXP_AVG: &str = "exp_avg.";
const EXP_AVG_SQ: &str = "exp_avg_sq.";
const STEP: &str = "step.";

/// Bit of the kernel's `flags`: the parameter's first step (moments start at zero).
const FIRST_STEP: u32 = 1;

/// AdamW's hyperparameters, PyTorch's names and defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWConfig {
    /// Decay of the first moment (default 0.9).
    pub beta1: f32,
    /// Decay of the second moment (default 0.999).
    pub beta2: f32,
    /// Added to the denominator (default 1e-8).
    pub eps: f32,
    /// Decoupled weight decay: `p = p·(1 - lr·wd)` before the update (default 1e-2).
    pub weight_decay: f32,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 1e-2,
        }
    }
}

/// The moments of one parameter.
#[derive(Clone, Debug)]
struct Moments {
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
}

/// AdamW with PyTorch's update rule, per parameter with its own step count t:
/// `p = p·(1 - lr·wd)`; `m = β1·m + (1 - β1)·g`; `v = β2·v + (1 - β2)·g²`;
/// `p = p - lr·m̂ / (√v̂ + eps)` with `m̂ = m / (1 - β1^t)`, `v̂ = v / (1 - β2^t)`.
#[derive(Clone, Debug)]
pub struct AdamW {
    config: AdamWConfig,
    /// Parameter name → moments; absent until the parameter's first step.
    moments: HashMap<String, Moments>,
    /// Parameter name → steps taken (PyTorch's per-parameter `state["step"]`).
    steps: HashMap<String, u64>,
}

impl AdamW {
    /// An optimizer with `config`; an `Err` for betas outside [0, 1), a negative eps or
    /// weight decay, or a non-finite value.
    pub fn new(config: AdamWConfig) -> Result<AdamW> {
        let below_one = 1.0 - f32::EPSILON / 2.0;
        check_range("AdamW", "beta1", config.beta1, 0.0, below_one)?;
        check_range("AdamW", "beta2", config.beta2, 0.0, below_one)?;
        check_range("AdamW", "eps", config.eps, 0.0, f32::MAX)?;
        check_range("AdamW", "weight_decay", config.weight_decay, 0.0, f32::MAX)?;
        Ok(AdamW {
            config,
            moments: HashMap::new(),
            steps: HashMap::new(),
        })
    }

    /// The hyperparameters.
    pub fn config(&self) -> &AdamWConfig {
        &self.config
    }

    /// Steps taken so far by parameter `name` (0 before its first).
    pub fn step_count(&self, name: &str) -> u64 {
        self.steps.get(name).copied().unwrap_or(0)
    }

    /// The steps already taken by `name` with `shape`, or an `Err` when moments and step
    /// count disagree (one loaded without the other) or the moments have another shape.
    fn previous_steps(&self, name: &str, shape: &[usize]) -> Result<u64> {
        match (self.moments.get(name), self.steps.get(name)) {
            (None, None) => Ok(0),
            (Some(m), Some(&t)) if t > 0 => {
                if m.exp_avg.shape() != shape || m.exp_avg_sq.shape() != shape {
                    return shape_err!(
                        "AdamW: moments of {name:?} have shapes {:?} and {:?}, the parameter \
                         {shape:?}",
                        m.exp_avg.shape(),
                        m.exp_avg_sq.shape()
                    );
                }
                Ok(t)
            }
            (Some(_), _) => {
                arg_err!("AdamW: {name:?} has moments but no step count (load_state_meta)")
            }
            (None, Some(_)) => {
                arg_err!("AdamW: {name:?} has a step count but no moments (load_state)")
            }
        }
    }
}

impl Optimizer for AdamW {
    fn step(
        &mut self,
        store: &mut ParamStore,
        grads: &HashMap<String, Tensor>,
        lr: f32,
    ) -> Result<()> {
        let updates = collect_updates("AdamW", store, grads, lr)?;
        let mut previous = Vec::with_capacity(updates.len());
        for u in &updates {
            previous.push(self.previous_steps(&u.name, u.param.shape())?);
        }
        let c = self.config;
        for (u, t) in updates.into_iter().zip(previous) {
            let t = t + 1;
            // The per-step scalars in f64, as PyTorch computes them (Python floats).
            let lr64 = f64::from(lr);
            let bias1 = 1.0 - f64::from(c.beta1).powf(t as f64);
            let bias2 = 1.0 - f64::from(c.beta2).powf(t as f64);
            let decay = (1.0 - lr64 * f64::from(c.weight_decay)) as f32;
            let step_size = (lr64 / bias1) as f32;
            let bias2_sqrt = bias2.sqrt() as f32;
            let flags = if t == 1 { FIRST_STEP } else { 0 };
            let mut params = [
                0, // the window's element count, set per window
                flags,
                decay.to_bits(),
                c.beta1.to_bits(),
                c.beta2.to_bits(),
                c.eps.to_bits(),
                step_size.to_bits(),
                bias2_sqrt.to_bits(),
            ];
            let new_param = u.param.uninit_like(u.param.shape())?;
            let new_m = u.param.uninit_like(u.param.shape())?;
            let new_v = u.param.uninit_like(u.param.shape())?;
            // On the first step the kernel reads no moments; the gradient fills their
            // slots so the bindings are valid.
            let old = self.moments.get(&u.name);
            let tensors = [
                &u.param,
                &u.grad,
                old.map_or(&u.grad, |m| &m.exp_avg),
                old.map_or(&u.grad, |m| &m.exp_avg_sq),
                &new_param,
                &new_m,
                &new_v,
            ];
            for_each_window(&tensors, |w| {
                let buffers: Vec<_> = w.iter().map(Tensor::buffer).collect();
                params[0] = w[0].numel() as u32;
                let grid = Grid::for_items(w[0].numel() as u64, WG).trips(0);
                u.param
                    .device()
                    .dispatch(&ADAMW, "main", &[], &buffers, &params, grid)
            })?;
            self.moments.insert(
                u.name.clone(),
                Moments {
                    exp_avg: new_m,
                    exp_avg_sq: new_v,
                },
            );
            self.steps.insert(u.name.clone(), t);
            store.set(&u.name, new_param)?;
        }
        Ok(())
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        let mut state = Vec::with_capacity(2 * self.moments.len());
        for (name, m) in &self.moments {
            state.push((format!("{EXP_AVG}{name}"), m.exp_avg.clone()));
            state.push((format!("{EXP_AVG_SQ}{name}"), m.exp_avg_sq.clone()));
        }
        state.sort_by(|a, b| a.0.cmp(&b.0));
        state
    }

    fn state_meta(&self) -> Vec<(String, String)> {
        let mut meta = vec![("kind".to_string(), "adamw".to_string())];
        let mut steps: Vec<_> = self.steps.iter().collect();
        steps.sort();
        meta.extend(
            steps
                .into_iter()
                .map(|(name, t)| (format!("{STEP}{name}"), t.to_string())),
        );
        meta
    }

    fn load_state(
        &mut self,
        store: &ParamStore,
        tensors: &HashMap<String, Tensor>,
        meta: &BTreeMap<String, String>,
    ) -> Result<()> {
        check_meta_keys("AdamW", "adamw", meta, |k| k.starts_with(STEP))?;
        let mut steps = HashMap::new();
        for (key, value) in meta {
            let Some(name) = key.strip_prefix(STEP) else {
                continue;
            };
            let t: u64 = value.parse().ok().filter(|&t| t > 0).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "AdamW: step count {key:?} = {value:?} is not a positive whole number"
                ))
            })?;
            steps.insert(name.to_string(), t);
        }
        let mut avg = HashMap::new();
        let mut avg_sq = HashMap::new();
        let mut unknown = Vec::new();
        for (key, tensor) in tensors {
            // "exp_avg_sq." also starts with "exp_avg" but not with "exp_avg.".
            let (name, into) = if let Some(name) = key.strip_prefix(EXP_AVG_SQ) {
                (name, &mut avg_sq)
            } else if let Some(name) = key.strip_prefix(EXP_AVG) {
                (name, &mut avg)
            } else {
                unknown.push(key.as_str());
                continue;
            };
            check_state_tensor("AdamW", store, key, name, tensor)?;
            into.insert(name, tensor);
        }
        if !unknown.is_empty() {
            unknown.sort_unstable();
            return arg_err!(
                "AdamW: unknown state tensors {unknown:?} (AdamW keeps \"{EXP_AVG}<parameter>\" \
                 and \"{EXP_AVG_SQ}<parameter>\")"
            );
        }
        // Every parameter with moments has both, and a step count; every step count has
        // moments.
        let mut unpaired: Vec<&str> = avg
            .keys()
            .filter(|n| !avg_sq.contains_key(*n) || !steps.contains_key(**n))
            .chain(avg_sq.keys().filter(|n| !avg.contains_key(*n)))
            .copied()
            .chain(
                steps
                    .keys()
                    .map(String::as_str)
                    .filter(|n| !avg.contains_key(n)),
            )
            .collect();
        if !unpaired.is_empty() {
            unpaired.sort_unstable();
            unpaired.dedup();
            return arg_err!(
                "AdamW: parameters {unpaired:?} lack one of their two moments or their step count"
            );
        }
        self.moments = avg
            .into_iter()
            .map(|(name, m)| {
                let moments = Moments {
                    exp_avg: m.clone(),
                    exp_avg_sq: avg_sq[name].clone(),
                };
                (name.to_string(), moments)
            })
            .collect();
        self.steps = steps;
        Ok(())
    }
}
