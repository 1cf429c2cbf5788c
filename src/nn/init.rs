//! Initializers, as `torch.nn.init` defines them: what torchvision's models use for their
//! weights, and what a PyTorch layer does by default.

use crate::error::{Result, arg_err};
use crate::rng::Rng;

/// Which fan a Kaiming initializer scales by (PyTorch's `mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fan {
    /// Inputs per output: `shape[1] · receptive field` — keeps the forward's variance.
    In,
    /// Outputs per input: `shape[0] · receptive field` — keeps the backward's variance.
    Out,
}

/// How a tensor's first values are drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// All zeros.
    Zeros,
    /// All ones.
    Ones,
    /// Every element `value`.
    Constant(f32),
    /// Normal(mean, std) (`nn.init.normal_`).
    Normal {
        /// The mean.
        mean: f64,
        /// The standard deviation.
        std: f64,
    },
    /// Normal(mean, std) redrawn until within `[lo, hi]` (`nn.init.trunc_normal_`; its
    /// bounds are absolute, -2 and 2 by default, not in standard deviations).
    TruncatedNormal {
        /// The mean.
        mean: f64,
        /// The standard deviation.
        std: f64,
        /// Lowest value kept.
        lo: f64,
        /// Highest value kept.
        hi: f64,
    },
    /// Uniform on `[lo, hi)` (`nn.init.uniform_`).
    Uniform {
        /// Lowest value.
        lo: f64,
        /// Highest value.
        hi: f64,
    },
    /// Normal(0, gain / √fan) with ReLU's gain √2 (`nn.init.kaiming_normal_(mode=..,
    /// nonlinearity="relu")`), what torchvision's CNNs use for their convolutions.
    KaimingNormal(Fan),
    /// PyTorch's default for `nn.Conv2d` and `nn.Linear` weights:
    /// `kaiming_uniform_(a=√5)`, that is Uniform(±1/√fan_in).
    TorchDefault,
}

impl Init {
    /// The default bias of `nn.Conv2d` and `nn.Linear` for a weight of `weight_shape`:
    /// Uniform(±1/√fan_in), fan_in being the weight's.
    pub fn torch_default_bias(weight_shape: &[usize]) -> Init {
        let bound = 1.0 / (fans(weight_shape).0 as f64).max(1.0).sqrt();
        Init::Uniform {
            lo: -bound,
            hi: bound,
        }
    }

    /// `n` values for a tensor of `shape` (which sets the fans) from `rng`.
    pub fn values(&self, shape: &[usize], n: usize, rng: &mut Rng) -> Result<Vec<f32>> {
        let (fan_in, fan_out) = fans(shape);
        let fill = |v: f32| Ok(vec![v; n]);
        let normal = |rng: &mut Rng, mean: f64, std: f64| rng.normals(n, mean, std);
        let uniform = |rng: &mut Rng, lo: f64, hi: f64| -> Vec<f32> {
            (0..n).map(|_| rng.uniform_in(lo, hi) as f32).collect()
        };
        match *self {
            Init::Zeros => fill(0.0),
            Init::Ones => fill(1.0),
            Init::Constant(v) => fill(v),
            Init::Normal { mean, std } => Ok(normal(rng, mean, std)),
            Init::TruncatedNormal { mean, std, lo, hi } => {
                // Redraws need a reachable interval: one within a few deviations (NaN
                // bounds fail the comparisons and are refused too).
                let reachable = lo < hi && hi >= mean - 6.0 * std && lo <= mean + 6.0 * std;
                if !reachable {
                    return arg_err!(
                        "init: truncated normal(mean {mean}, std {std}) rarely lands in \
                         [{lo}, {hi}]"
                    );
                }
                Ok((0..n)
                    .map(|_| {
                        loop {
                            let v = mean + std * rng.normal();
                            if (lo..=hi).contains(&v) {
                                break v as f32;
                            }
                        }
                    })
                    .collect())
            }
            Init::Uniform { lo, hi } => Ok(uniform(rng, lo, hi)),
            Init::KaimingNormal(fan) => {
                let fan = match fan {
                    Fan::In => fan_in,
                    Fan::Out => fan_out,
                };
                let std = (2.0 / (fan as f64).max(1.0)).sqrt();
                Ok(normal(rng, 0.0, std))
            }
            Init::TorchDefault => {
                let bound = 1.0 / (fan_in as f64).max(1.0).sqrt();
                Ok(uniform(rng, -bound, bound))
            }
        }
    }
}

/// `(fan_in, fan_out)` of a tensor of `shape`, as PyTorch computes them: dimension 1 and
/// dimension 0 times the product of the rest (the receptive field). A 1-D tensor has both
/// equal to its length.
pub fn fans(shape: &[usize]) -> (usize, usize) {
    match shape {
        [] => (1, 1),
        [n] => (*n, *n),
        [out, inp, rest @ ..] => {
            let field: usize = rest.iter().product();
            (inp.saturating_mul(field), out.saturating_mul(field))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fans_follow_pytorch() {
        assert_eq!(fans(&[64, 3, 7, 7]), (147, 3136));
        assert_eq!(fans(&[1000, 2048]), (2048, 1000));
        assert_eq!(fans(&[10]), (10, 10));
    }

    #[test]
    fn draws_have_the_spread_their_definition_gives() {
        let mut rng = Rng::new(3);
        let n = 200_000;
        let stats = |v: &[f32]| {
            let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
            let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / v.len() as f64;
            (mean, var.sqrt())
        };
        // Kaiming normal, fan_out of [32, 16, 3, 3] = 288: std √(2/288).
        let v = Init::KaimingNormal(Fan::Out)
            .values(&[32, 16, 3, 3], n, &mut rng)
            .unwrap();
        let (mean, std) = stats(&v);
        assert!(mean.abs() < 0.002 && (std - (2.0f64 / 288.0).sqrt()).abs() < 0.002);
        // PyTorch's default: Uniform(±1/√fan_in), fan_in 144: std = bound/√3.
        let v = Init::TorchDefault
            .values(&[32, 16, 3, 3], n, &mut rng)
            .unwrap();
        let bound = 1.0 / 12.0;
        assert!(v.iter().all(|&x| (x as f64).abs() <= bound));
        assert!((stats(&v).1 - bound / 3f64.sqrt()).abs() < 0.001);
        // Truncated normal stays within its bounds.
        let init = Init::TruncatedNormal {
            mean: 0.0,
            std: 1.0,
            lo: -0.5,
            hi: 0.5,
        };
        assert!(
            init.values(&[n], n, &mut rng)
                .unwrap()
                .iter()
                .all(|&x| (-0.5..=0.5).contains(&x))
        );
        assert_eq!(
            Init::Constant(2.5).values(&[3], 3, &mut rng).unwrap(),
            [2.5; 3]
        );
    }
}
