//! Learning-rate schedules: pure functions of the base rate and the step number, with
//! PyTorch's formulas, so resuming from a checkpoint needs only the step count.

use std::f64::consts::PI;

use crate::error::{Result, arg_err};

/// A learning-rate schedule; [`Schedule::lr`] gives the rate of step `step` (counted from
/// 0, one per optimizer step).
#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    /// The base rate throughout.
    Constant,
    /// `base · gamma^⌊step / step_size⌋` (PyTorch's `StepLR`).
    Step {
        /// Steps between decays (> 0).
        step_size: usize,
        /// Factor per decay.
        gamma: f32,
    },
    /// `base · gamma^(milestones ≤ step)` (PyTorch's `MultiStepLR`).
    MultiStep {
        /// Steps at which the rate is multiplied by `gamma`.
        milestones: Vec<usize>,
        /// Factor per milestone.
        gamma: f32,
    },
    /// `min + (base - min)(1 + cos(π·t/T))/2` (PyTorch's `CosineAnnealingLR` closed form).
    /// Past `T` the rate stays at `min_lr`, where PyTorch's closed form would rise again.
    Cosine {
        /// T, the step at which the rate reaches `min_lr` (> 0).
        total_steps: usize,
        /// The final rate.
        min_lr: f32,
    },
    /// PyTorch's `OneCycleLR` (two phases, cosine annealing in both): from
    /// `max_lr / div_factor` up to `max_lr` at step `pct_start·T - 1`, then down to
    /// `max_lr / (div_factor · final_div_factor)` at step `T - 1`, where it stays.
    OneCycle {
        /// T, the length of the cycle (> 1).
        total_steps: usize,
        /// The peak rate; `None` peaks at the base rate.
        max_lr: Option<f32>,
        /// Share of the cycle spent rising (PyTorch's default 0.3).
        pct_start: f32,
        /// Initial rate = peak / div_factor (default 25).
        div_factor: f32,
        /// Final rate = initial rate / final_div_factor (default 1e4).
        final_div_factor: f32,
    },
    /// Linear warm-up over `steps` steps, then `inner` starting from its own step 0. Step
    /// `s < steps` has rate `base·(s + 1)/(steps + 1)`: it starts near zero (never at zero,
    /// which would waste a step) and rises by equal increments toward `inner`'s first rate
    /// (the base rate for every schedule but one-cycle).
    Warmup {
        /// Steps of warm-up.
        steps: usize,
        /// The schedule after the warm-up.
        inner: Box<Schedule>,
    },
}

impl Schedule {
    /// A schedule by name, for `total_steps` steps of training, with these defaults:
    /// - `constant`;
    /// - `step`: gamma 0.1 every `total_steps / 3` steps (at least 1);
    /// - `multistep`: gamma 0.1 at 50% and 75% of `total_steps` (the classic ResNet recipe);
    /// - `cosine`: from the base rate to 0 at `total_steps`;
    /// - `onecycle`: peak at the base rate, `pct_start` 0.3, `div_factor` 25,
    ///   `final_div_factor` 1e4 (PyTorch's defaults).
    ///
    /// Names are case-insensitive. An `Err` for another name or for `total_steps` 0 (or 1,
    /// for `onecycle`).
    pub fn parse(name: &str, total_steps: usize) -> Result<Schedule> {
        let schedule = match name.trim().to_ascii_lowercase().as_str() {
            "constant" => Schedule::Constant,
            "step" => Schedule::Step {
                step_size: (total_steps / 3).max(1),
                gamma: 0.1,
            },
            "multistep" => Schedule::MultiStep {
                // floor(3/4 of the steps), without forming 3·total_steps (it may not fit).
                milestones: vec![total_steps / 2, total_steps - total_steps.div_ceil(4)],
                gamma: 0.1,
            },
            "cosine" => Schedule::Cosine {
                total_steps,
                min_lr: 0.0,
            },
            "onecycle" => Schedule::OneCycle {
                total_steps,
                max_lr: None,
                pct_start: 0.3,
                div_factor: 25.0,
                final_div_factor: 1e4,
            },
            _ => {
                return arg_err!(
                    "unknown learning-rate schedule {name:?}; expected one of constant, step, \
                     multistep, cosine, onecycle"
                );
            }
        };
        if total_steps == 0 {
            return arg_err!("schedule {name:?}: total_steps must be positive");
        }
        schedule.validate()?;
        Ok(schedule)
    }

    /// An `Err` naming the first parameter out of range (a zero period, a non-finite or
    /// non-positive factor, `pct_start` outside (0, 1), ...).
    pub fn validate(&self) -> Result<()> {
        let positive = |what: &str, v: f32| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                arg_err!("schedule: {what} = {v} must be finite and positive")
            }
        };
        match self {
            Schedule::Constant => Ok(()),
            Schedule::Step { step_size, gamma } => {
                if *step_size == 0 {
                    return arg_err!("schedule step: step_size must be positive");
                }
                positive("gamma", *gamma)
            }
            Schedule::MultiStep { gamma, .. } => positive("gamma", *gamma),
            Schedule::Cosine {
                total_steps,
                min_lr,
            } => {
                if *total_steps == 0 {
                    return arg_err!("schedule cosine: total_steps must be positive");
                }
                if !min_lr.is_finite() || *min_lr < 0.0 {
                    return arg_err!("schedule cosine: min_lr = {min_lr} must be finite and >= 0");
                }
                Ok(())
            }
            Schedule::OneCycle {
                total_steps,
                max_lr,
                pct_start,
                div_factor,
                final_div_factor,
            } => {
                if *total_steps < 2 {
                    return arg_err!("schedule onecycle: total_steps = {total_steps} must be >= 2");
                }
                if !(*pct_start > 0.0 && *pct_start < 1.0) {
                    return arg_err!(
                        "schedule onecycle: pct_start = {pct_start} must be in (0, 1)"
                    );
                }
                if let Some(max_lr) = max_lr {
                    positive("max_lr", *max_lr)?;
                }
                positive("div_factor", *div_factor)?;
                positive("final_div_factor", *final_div_factor)
            }
            Schedule::Warmup { inner, .. } => inner.validate(),
        }
    }

    /// The learning rate of step `step` (from 0) for base rate `base_lr`. Pure: the same
    /// arguments always give the same rate, so a resumed run needs only its step count.
    pub fn lr(&self, base_lr: f32, step: usize) -> f32 {
        self.lr64(f64::from(base_lr), step) as f32
    }

    fn lr64(&self, base: f64, step: usize) -> f64 {
        match self {
            Schedule::Constant => base,
            Schedule::Step { step_size, gamma } => {
                base * f64::from(*gamma).powf((step / (*step_size).max(1)) as f64)
            }
            Schedule::MultiStep { milestones, gamma } => {
                let passed = milestones.iter().filter(|&&m| m <= step).count();
                base * f64::from(*gamma).powf(passed as f64)
            }
            Schedule::Cosine {
                total_steps,
                min_lr,
            } => {
                let t = step.min(*total_steps) as f64;
                let total = (*total_steps).max(1) as f64;
                let min = f64::from(*min_lr);
                min + (base - min) * (1.0 + (PI * t / total).cos()) / 2.0
            }
            Schedule::OneCycle {
                total_steps,
                max_lr,
                pct_start,
                div_factor,
                final_div_factor,
            } => {
                let peak = max_lr.map_or(base, f64::from);
                let initial = peak / f64::from(*div_factor);
                let last = initial / f64::from(*final_div_factor);
                // PyTorch's phase ends (as floats): the rise ends at pct_start·T - 1, the
                // fall at T - 1; past that the rate stays at the final value.
                let rise_end = f64::from(*pct_start) * *total_steps as f64 - 1.0;
                let fall_end = *total_steps as f64 - 1.0;
                let s = (step as f64).min(fall_end);
                if s <= rise_end {
                    cosine_anneal(initial, peak, phase_pct(s, 0.0, rise_end))
                } else {
                    cosine_anneal(peak, last, phase_pct(s, rise_end, fall_end))
                }
            }
            Schedule::Warmup { steps, inner } => {
                if step < *steps {
                    base * (step + 1) as f64 / (*steps + 1) as f64
                } else {
                    inner.lr64(base, step - steps)
                }
            }
        }
    }
}

/// How far `s` is through a phase from `start` to `end`; a phase of no length counts as
/// done (PyTorch would divide by zero there).
fn phase_pct(s: f64, start: f64, end: f64) -> f64 {
    if end > start {
        ((s - start) / (end - start)).clamp(0.0, 1.0)
    } else {
        1.0
    }
}

/// PyTorch's `_annealing_cos`: from `start` at pct 0 to `end` at pct 1 along a half cosine.
fn cosine_anneal(start: f64, end: f64, pct: f64) -> f64 {
    end + (start - end) / 2.0 * ((PI * pct).cos() + 1.0)
}
