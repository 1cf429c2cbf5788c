//! The tape's ops for the model zoo, each forward against an f64 reference and each
//! backward rule against central finite differences of that reference: for a random
//! linear functional L = Σ r · op(inputs), the tape's gradient of every input must match
//! (L(x + h) - L(x - h)) / 2h computed in f64.

use liandan::autograd::{Act, RunningStats, Tape, Var};
use liandan::ops::norm::BnAct;
use liandan::ops::pool::Pool2d;
use liandan::{Rng, Tensor};

use crate::common::*;
use crate::pool::{adaptive_problem, fixed_problem, ref_avg, ref_max};

/// One input: its shape and the range its values are drawn from.
type Input = (Vec<usize>, f64, f64);

/// Checks `record`'s output against `reference` and its gradients against finite
/// differences of `reference`.
fn check(
    what: &str,
    inputs: &[Input],
    record: impl Fn(&Tape, &[Var]) -> Var,
    reference: impl Fn(&[Vec<f64>]) -> Vec<f64>,
) {
    let mut rng = Rng::new(what.len() as u64 * 7919);
    let values: Vec<Vec<f64>> = inputs
        .iter()
        .map(|(shape, lo, hi)| {
            let n = shape.iter().product();
            random_values(&mut rng, n, *lo, *hi)
                .iter()
                .map(|&v| v as f64)
                .collect()
        })
        .collect();
    let tape = Tape::new();
    let vars: Vec<Var> = inputs
        .iter()
        .zip(&values)
        .map(|((shape, _, _), v)| {
            let f: Vec<f32> = v.iter().map(|&x| x as f32).collect();
            tape.input(Tensor::from_slice(device(), &f, shape).unwrap())
        })
        .collect();
    let out = record(&tape, &vars);
    let want = reference(&values);
    assert_close(
        &format!("{what} forward"),
        &out.value().to_vec().unwrap(),
        &want,
        1e-5,
    );

    // L = Σ r · out, on the tape as a [1, n] · [1, n]ᵀ product.
    let n = want.len();
    let r: Vec<f64> = random_values(&mut rng, n, -1.0, 1.0)
        .iter()
        .map(|&v| v as f64)
        .collect();
    let r32: Vec<f32> = r.iter().map(|&v| v as f32).collect();
    let flat = tape.reshape(&out, &[1, n]).unwrap();
    let weights = tape.constant(Tensor::from_slice(device(), &r32, &[1, n]).unwrap());
    let loss = tape.linear(&flat, &weights, None).unwrap();
    let loss = tape.reshape(&loss, &[1]).unwrap();
    let grads = tape.backward(&loss).unwrap();

    let functional =
        |vals: &[Vec<f64>]| -> f64 { reference(vals).iter().zip(&r).map(|(y, w)| y * w).sum() };
    let h = 1e-6;
    for (k, var) in vars.iter().enumerate() {
        let got = grads
            .get(var)
            .map(|g| g.to_vec().unwrap())
            .unwrap_or_else(|| vec![0.0; values[k].len()]);
        let mut fd = Vec::with_capacity(values[k].len());
        for j in 0..values[k].len() {
            let mut plus = values.to_vec();
            let mut minus = values.to_vec();
            plus[k][j] += h;
            minus[k][j] -= h;
            fd.push((functional(&plus) - functional(&minus)) / (2.0 * h));
        }
        assert_close(&format!("{what} gradient of input {k}"), &got, &fd, 1e-4);
    }
}

/// Element `i` of an array of `shape` broadcast to `out` (right-aligned, size-1 dims
/// repeat).
fn broadcast_at(v: &[f64], shape: &[usize], out: &[usize], i: usize) -> f64 {
    let idx = unravel(i, out);
    let lead = out.len() - shape.len();
    let mut flat = 0;
    for d in 0..shape.len() {
        let coord = if shape[d] == 1 { 0 } else { idx[lead + d] };
        flat = flat * shape[d] + coord;
    }
    v[flat]
}

#[test]
fn arithmetic_with_broadcasting() {
    let out = [2, 3, 4];
    let bin = |f: fn(f64, f64) -> f64, sb: &'static [usize]| {
        move |v: &[Vec<f64>]| -> Vec<f64> {
            (0..24)
                .map(|i| f(v[0][i], broadcast_at(&v[1], sb, &out, i)))
                .collect()
        }
    };
    let a = (out.to_vec(), -2.0, 2.0);
    check(
        "sub",
        &[a.clone(), (vec![3, 1], -2.0, 2.0)],
        |t, v| t.sub(&v[0], &v[1]).unwrap(),
        bin(|x, y| x - y, &[3, 1]),
    );
    check(
        "div",
        &[a.clone(), (vec![1, 3, 4], 0.5, 2.0)],
        |t, v| t.div(&v[0], &v[1]).unwrap(),
        bin(|x, y| x / y, &[1, 3, 4]),
    );
    check(
        "scale",
        &[a],
        |t, v| t.scale(&v[0], 0.37).unwrap(),
        |v| v[0].iter().map(|x| 0.37 * x).collect(),
    );
}

#[test]
fn activations() {
    let x = [(vec![3, 5, 4], -3.0, 3.0)];
    check(
        "leaky_relu",
        &x,
        |t, v| t.leaky_relu(&v[0], 0.2).unwrap(),
        |v| {
            v[0].iter()
                .map(|&x| if x > 0.0 { x } else { 0.2 * x })
                .collect()
        },
    );
    check(
        "tanh",
        &x,
        |t, v| t.activation(&v[0], Act::Tanh).unwrap(),
        |v| v[0].iter().map(|x| x.tanh()).collect(),
    );
}

#[test]
fn softmax_and_log_softmax() {
    let rows = |log: bool| {
        move |v: &[Vec<f64>]| -> Vec<f64> {
            v[0].chunks(7)
                .flat_map(|row| {
                    let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let s: f64 = row.iter().map(|x| (x - m).exp()).sum();
                    row.iter()
                        .map(move |x| {
                            if log {
                                x - m - s.ln()
                            } else {
                                (x - m).exp() / s
                            }
                        })
                        .collect::<Vec<_>>()
                })
                .collect()
        }
    };
    let x = [(vec![3, 7], -3.0, 3.0)];
    check("softmax", &x, |t, v| t.softmax(&v[0]).unwrap(), rows(false));
    check(
        "log_softmax",
        &x,
        |t, v| t.log_softmax(&v[0]).unwrap(),
        rows(true),
    );
}

#[test]
fn pooling() {
    let shape = [1, 2, 5, 6];
    let x = [(shape.to_vec(), -3.0, 3.0)];
    let window = Pool2d::new((2, 3))
        .stride((1, 2))
        .padding((1, 1))
        .ceil_mode(true);
    let pb = fixed_problem(shape, window).unwrap();
    check(
        "max_pool2d",
        &x,
        |t, v| t.max_pool2d(&v[0], &window).unwrap(),
        |v| ref_max(&pb, &v[0]).0,
    );
    let window = Pool2d::new((3, 3)).stride((2, 2)).padding((1, 1));
    let pb = fixed_problem(shape, window).unwrap();
    check(
        "avg_pool2d",
        &x,
        |t, v| t.avg_pool2d(&v[0], &window, false).unwrap(),
        |v| ref_avg(&pb, &v[0], false),
    );
    let pb = adaptive_problem(shape, (2, 4));
    check(
        "adaptive_avg_pool2d",
        &x,
        |t, v| t.adaptive_avg_pool2d(&v[0], (2, 4)).unwrap(),
        |v| ref_avg(&pb, &v[0], false),
    );
    let pb = adaptive_problem(shape, (3, 2));
    check(
        "adaptive_max_pool2d",
        &x,
        |t, v| t.adaptive_max_pool2d(&v[0], (3, 2)).unwrap(),
        |v| ref_max(&pb, &v[0]).0,
    );
}

/// Channels picked from `x` (`[n, c_in, s]`): output channel `j` of `c_out` is input
/// channel `from(j)`.
fn pick_channels(
    x: &[f64],
    (n, c_in, c_out, s): (usize, usize, usize, usize),
    from: impl Fn(usize) -> usize,
) -> Vec<f64> {
    let mut out = Vec::with_capacity(n * c_out * s);
    for b in 0..n {
        for j in 0..c_out {
            let start = (b * c_in + from(j)) * s;
            out.extend_from_slice(&x[start..start + s]);
        }
    }
    out
}

#[test]
fn joins_splits_and_shuffles() {
    // concat of [2, 1, 3], [2, 2, 3], [2, 3, 3] along axis 1.
    let parts = [
        (vec![2, 1, 3], -1.0, 1.0),
        (vec![2, 2, 3], -1.0, 1.0),
        (vec![2, 3, 3], -1.0, 1.0),
    ];
    check(
        "concat",
        &parts,
        |t, v| t.concat(&[&v[0], &v[1], &v[2]], 1).unwrap(),
        |v| {
            let mut out = Vec::new();
            for b in 0..2 {
                for (p, c) in [1, 2, 3].into_iter().enumerate() {
                    out.extend_from_slice(&v[p][b * c * 3..(b + 1) * c * 3]);
                }
            }
            out
        },
    );
    // split [2, 6, 3] into channels [2, 1, 3] and join pieces 2 and 0 (piece 1 unused:
    // its part of the gradient is zero).
    check(
        "split",
        &[(vec![2, 6, 3], -1.0, 1.0)],
        |t, v| {
            let p = t.split(&v[0], &[2, 1, 3], 1).unwrap();
            t.concat(&[&p[2], &p[0]], 1).unwrap()
        },
        |v| pick_channels(&v[0], (2, 6, 5, 3), |j| [3, 4, 5, 0, 1][j]),
    );
    check(
        "chunk",
        &[(vec![2, 6, 3], -1.0, 1.0)],
        |t, v| {
            let p = t.chunk(&v[0], 3, 1).unwrap();
            t.concat(&[&p[1], &p[1], &p[2]], 1).unwrap()
        },
        |v| pick_channels(&v[0], (2, 6, 6, 3), |j| [2, 3, 2, 3, 4, 5][j]),
    );
    check(
        "channel_shuffle",
        &[(vec![2, 6, 2, 2], -1.0, 1.0)],
        |t, v| t.channel_shuffle(&v[0], 3).unwrap(),
        // Output channel j·3 + k is input channel k·2 + j.
        |v| pick_channels(&v[0], (2, 6, 6, 4), |o| (o % 3) * 2 + o / 3),
    );
    check(
        "flatten",
        &[(vec![2, 3, 2, 2], -1.0, 1.0)],
        |t, v| t.flatten(&v[0], 1).unwrap(),
        |v| v[0].clone(),
    );
}

/// `(x - mean) / sqrt(var + eps) · w + b` over groups of `len` consecutive elements
/// (`stats` true: the group's own mean and biased variance), with the affine parameter
/// of element `i` at `affine(i)`.
fn normalize(
    x: &[f64],
    len: usize,
    stats: impl Fn(usize) -> (f64, f64),
    (w, b): (&[f64], &[f64]),
    affine: impl Fn(usize) -> usize,
) -> Vec<f64> {
    (0..x.len())
        .map(|i| {
            let (mean, var) = stats(i / len);
            (x[i] - mean) / (var + 1e-5).sqrt() * w[affine(i)] + b[affine(i)]
        })
        .collect()
}

fn moments(v: &[f64]) -> (f64, f64) {
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    (
        mean,
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64,
    )
}

#[test]
fn normalizations() {
    // layer norm of [3, 2, 4] over the last 2 dims, weight and bias of [2, 4].
    check(
        "layer_norm",
        &[
            (vec![3, 2, 4], -2.0, 2.0),
            (vec![2, 4], 0.5, 1.5),
            (vec![2, 4], -1.0, 1.0),
        ],
        |t, v| {
            t.layer_norm(&v[0], 2, Some(&v[1]), Some(&v[2]), 1e-5)
                .unwrap()
        },
        |v| {
            let stats = |g: usize| moments(&v[0][g * 8..(g + 1) * 8]);
            normalize(&v[0], 8, stats, (&v[1], &v[2]), |i| i % 8)
        },
    );
    // group norm of [2, 6, 2, 1] in 3 groups, per-channel weight and bias.
    check(
        "group_norm",
        &[
            (vec![2, 6, 2, 1], -2.0, 2.0),
            (vec![6], 0.5, 1.5),
            (vec![6], -1.0, 1.0),
        ],
        |t, v| {
            t.group_norm(&v[0], 3, Some(&v[1]), Some(&v[2]), 1e-5)
                .unwrap()
        },
        |v| {
            let stats = |g: usize| moments(&v[0][g * 4..(g + 1) * 4]);
            normalize(&v[0], 4, stats, (&v[1], &v[2]), |i| i / 2 % 6)
        },
    );
    // batch norm in evaluation: running statistics (constants here), per-channel affine.
    let mean = [0.3f32, -0.2, 0.1];
    let var = [0.8f32, 1.3, 0.5];
    check(
        "batch_norm_eval",
        &[
            (vec![2, 3, 2, 2], -2.0, 2.0),
            (vec![3], 0.5, 1.5),
            (vec![3], -1.0, 1.0),
        ],
        |t, v| {
            let m = Tensor::from_slice(device(), &mean, &[3]).unwrap();
            let s = Tensor::from_slice(device(), &var, &[3]).unwrap();
            let running = RunningStats { mean: &m, var: &s };
            t.batch_norm_eval(&v[0], Some(&v[1]), Some(&v[2]), running, 1e-5)
                .unwrap()
        },
        |v| {
            let stats = |i: usize| (f64::from(mean[i % 3]), f64::from(var[i % 3]));
            normalize(&v[0], 4, stats, (&v[1], &v[2]), |i| i / 4 % 3)
        },
    );
    // batch norm in training with a fused ReLU6 (batch statistics: the gradient flows
    // through them and the activation), and in evaluation with a fused ReLU. The inputs
    // spread wide enough that both clamp some values.
    let clamp6 = |v: f64| v.clamp(0.0, 6.0);
    check(
        "batch_norm_act_train relu6",
        &[
            (vec![2, 3, 2, 2], -2.0, 2.0),
            (vec![3], 2.0, 4.0),
            (vec![3], -1.0, 3.0),
        ],
        |t, v| {
            let m = Tensor::zeros(device(), &[3]).unwrap();
            let s = Tensor::ones(device(), &[3]).unwrap();
            let running = RunningStats { mean: &m, var: &s };
            let affine = (Some(&v[1]), Some(&v[2]));
            t.batch_norm_act_train(&v[0], affine, running, (0.1, 1e-5), BnAct::Relu6)
                .unwrap()
                .0
        },
        |v| {
            let channel = |c: usize| -> Vec<f64> {
                (0..v[0].len())
                    .filter(|i| i / 4 % 3 == c)
                    .map(|i| v[0][i])
                    .collect()
            };
            let stats = |i: usize| moments(&channel(i % 3));
            let y = normalize(&v[0], 4, stats, (&v[1], &v[2]), |i| i / 4 % 3);
            y.into_iter().map(clamp6).collect()
        },
    );
    check(
        "batch_norm_act_eval relu",
        &[
            (vec![2, 3, 2, 2], -2.0, 2.0),
            (vec![3], 0.5, 1.5),
            (vec![3], -1.0, 1.0),
        ],
        |t, v| {
            let m = Tensor::from_slice(device(), &mean, &[3]).unwrap();
            let s = Tensor::from_slice(device(), &var, &[3]).unwrap();
            let running = RunningStats { mean: &m, var: &s };
            let affine = (Some(&v[1]), Some(&v[2]));
            t.batch_norm_act_eval(&v[0], affine, running, 1e-5, BnAct::Relu)
                .unwrap()
        },
        |v| {
            let stats = |i: usize| (f64::from(mean[i % 3]), f64::from(var[i % 3]));
            let y = normalize(&v[0], 4, stats, (&v[1], &v[2]), |i| i / 4 % 3);
            y.into_iter().map(|v| v.max(0.0)).collect()
        },
    );
}

#[test]
fn bad_arguments_are_errors() {
    use crate::errors::{Kind, expect_err};
    let tape = Tape::new();
    let x = tape.input(Tensor::zeros(device(), &[2, 3]).unwrap());
    let y = tape.input(Tensor::zeros(device(), &[4, 3]).unwrap());
    expect_err(
        "scale by NaN",
        tape.scale(&x, f32::NAN),
        Kind::Arg,
        &["NaN"],
    );
    expect_err(
        "flatten from 2",
        tape.flatten(&x, 2),
        Kind::Arg,
        &["start_dim 2"],
    );
    expect_err("sub", tape.sub(&x, &y), Kind::Shape, &["[2, 3]", "[4, 3]"]);
    expect_err(
        "concat",
        tape.concat(&[&x, &y], 1),
        Kind::Shape,
        &["[4, 3]"],
    );
    expect_err(
        "split",
        tape.split(&x, &[1, 1], 1),
        Kind::Shape,
        &["[1, 1]"],
    );
    expect_err(
        "shuffle",
        tape.channel_shuffle(&x, 2),
        Kind::Arg,
        &["groups 2"],
    );
    let w = Pool2d::new((3, 3));
    expect_err(
        "max_pool2d of 2-D",
        tape.max_pool2d(&x, &w),
        Kind::Arg,
        &["[2, 3]"],
    );
    expect_err(
        "layer_norm",
        tape.layer_norm(&x, 3, None, None, 1e-5),
        Kind::Arg,
        &["3"],
    );
    assert!(tape.leaky_relu(&x, f32::INFINITY).is_err());
}

/// Stochastic depth: each sample kept and scaled by 1/(1 - p), or dropped whole, as the
/// seed decides (the reference draws the same per-sample scales); the identity outside
/// training; and the gradient through the kept samples only.
#[test]
fn stochastic_depth_drops_whole_samples() {
    use liandan::autograd::stochastic_depth_scale;
    let shape = vec![16, 3, 2, 2];
    let (p, seed) = (0.4, 77);
    let (scale, _) = stochastic_depth_scale(&shape, p, seed);
    let kept = scale.iter().filter(|&&s| s != 0.0).count();
    assert!(0 < kept && kept < 16, "16 samples at p = 0.4 kept {kept}");
    assert!(
        scale
            .iter()
            .all(|&s| s == 0.0 || (s - 1.0 / 0.6).abs() < 1e-6)
    );
    let per_sample: usize = shape[1..].iter().product();
    check(
        "stochastic_depth",
        &[(shape.clone(), -1.0, 1.0)],
        |t, v| t.stochastic_depth(&v[0], p, true, seed).unwrap(),
        |v| {
            v[0].iter()
                .enumerate()
                .map(|(i, x)| x * scale[i / per_sample] as f64)
                .collect()
        },
    );
    check(
        "stochastic_depth in evaluation",
        &[(shape, -1.0, 1.0)],
        |t, v| t.stochastic_depth(&v[0], p, false, seed).unwrap(),
        |v| v[0].clone(),
    );
    let tape = Tape::new();
    let x = tape.input(Tensor::zeros(device(), &[2, 3]).unwrap());
    let err = tape
        .stochastic_depth(&x, 1.5, true, 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("1.5"), "{err}");
}

/// Binary cross-entropy with logits against PyTorch's formulation in f64, at logits from
/// -30 to 30 (finite everywhere), its gradient by finite differences; NaN for no
/// elements; mismatched shapes an error naming both.
#[test]
fn bce_with_logits() {
    let shape = vec![3, 5];
    let targets: Vec<f32> = (0..15).map(|i| [0.0, 1.0, 0.25][i % 3]).collect();
    let t = Tensor::from_slice(device(), &targets, &shape).unwrap();
    let reference = |x: &[f64]| {
        let n = x.len() as f64;
        let sum: f64 = x
            .iter()
            .zip(&targets)
            .map(|(&x, &t)| x.max(0.0) - x * t as f64 + (1.0 + (-x.abs()).exp()).ln())
            .sum();
        vec![sum / n]
    };
    check(
        "bce_with_logits",
        &[(shape.clone(), -4.0, 4.0)],
        |tape, v| tape.bce_with_logits(&v[0], &t).unwrap(),
        |v| reference(&v[0]),
    );
    let big: Vec<f32> = (0..15).map(|i| -30.0 + 4.0 * i as f32).collect();
    let x = Tensor::from_slice(device(), &big, &shape).unwrap();
    let got = liandan::ops::loss::bce_with_logits(&x, &t)
        .unwrap()
        .to_vec()
        .unwrap();
    let want = reference(&big.iter().map(|&v| v as f64).collect::<Vec<_>>());
    assert_close("bce_with_logits at large logits", &got, &want, 1e-5);
    let empty = Tensor::zeros(device(), &[0]).unwrap();
    let nan = liandan::ops::loss::bce_with_logits(&empty, &empty).unwrap();
    assert!(nan.to_vec().unwrap()[0].is_nan());
    let other = Tensor::zeros(device(), &[5, 3]).unwrap();
    let err = liandan::ops::loss::bce_with_logits(&x, &other)
        .unwrap_err()
        .to_string();
    assert!(err.contains("[3, 5]") && err.contains("[5, 3]"), "{err}");
}

/// Cross-entropy per pixel over the channels, with ignored pixels, against f64 and by
/// finite differences; every pixel ignored gives NaN; bad targets and shapes are errors.
#[test]
fn pixel_cross_entropy_with_ignored_pixels() {
    use liandan::ops::loss::pixel_cross_entropy;
    let (n, c, h, w) = (2, 4, 3, 5);
    let ignore = 255;
    let targets: Vec<usize> = (0..n * h * w)
        .map(|i| if i % 7 == 3 { ignore } else { (i * 5) % c })
        .collect();
    let counted = targets.iter().filter(|&&t| t != ignore).count() as f64;
    let reference = |x: &[f64]| {
        let mut sum = 0.0;
        for b in 0..n {
            for q in 0..h * w {
                let t = targets[b * h * w + q];
                if t == ignore {
                    continue;
                }
                let at = |k: usize| x[(b * c + k) * h * w + q];
                let m = (0..c).map(at).fold(f64::MIN, f64::max);
                let s: f64 = (0..c).map(|k| (at(k) - m).exp()).sum();
                sum += s.ln() + m - at(t);
            }
        }
        vec![sum / counted]
    };
    check(
        "pixel_cross_entropy",
        &[(vec![n, c, h, w], -3.0, 3.0)],
        |tape, v| {
            tape.pixel_cross_entropy(&v[0], &targets, Some(ignore))
                .unwrap()
        },
        |v| reference(&v[0]),
    );
    let x = Tensor::zeros(device(), &[n, c, h, w]).unwrap();
    let all_ignored = vec![ignore; n * h * w];
    let nan = pixel_cross_entropy(&x, &all_ignored, Some(ignore)).unwrap();
    assert!(nan.to_vec().unwrap()[0].is_nan());
    let mut bad = targets.clone();
    bad[4] = c;
    let err = pixel_cross_entropy(&x, &bad, Some(ignore))
        .unwrap_err()
        .to_string();
    assert!(err.contains("pixel 4") && err.contains("class 4"), "{err}");
    let err = pixel_cross_entropy(&x, &targets[1..], None)
        .unwrap_err()
        .to_string();
    assert!(err.contains(&format!("{}", n * h * w - 1)), "{err}");
    let flat = Tensor::zeros(device(), &[n, c]).unwrap();
    assert!(pixel_cross_entropy(&flat, &[0, 1], None).is_err());
}
