//! Batch, layer and group norm, forward and backward, against f64 references. The
//! reference backward is itself checked against central differences of the reference
//! forward, so the GPU gradients are tied to the forward's definition.

use liandan::autograd::Tape;
use liandan::nn::{
    self, Activation, BatchNorm2d, BatchNorm2dConfig, Conv2d, Conv2dConfig, Ctx, Module, Scope,
    Sequential,
};
use liandan::ops::conv::{Conv2dParams, conv2d, conv2d_batch_norm_eval, conv2d_with_moments};
use liandan::ops::norm::FrozenBatchNorm;
use liandan::ops::norm::{
    BnAct, batch_norm_act_backward, batch_norm_act_eval, batch_norm_act_eval_backward,
    batch_norm_act_train, batch_norm_act_train_from, batch_norm_backward, batch_norm_eval,
    batch_norm_eval_backward, batch_norm_train, group_norm, group_norm_backward, layer_norm,
    layer_norm_backward,
};
use liandan::{Result, Rng, Tensor};

use crate::common::*;
use crate::errors::Kind;

const EPS: f32 = 1e-5;
const MOMENTUM: f32 = 0.1;
/// GPU against reference, relative to the magnitude each value's rounding error scales with.
const RTOL: f64 = 1e-4;

/// Which statistic (`group[i]`) and which weight and bias (`affine[i]`) element i uses;
/// the three norms differ only in these maps.
struct Layout {
    group: Vec<usize>,
    groups: usize,
    affine: Vec<usize>,
    params: usize,
}

/// `(N, C, S)` of an `[N, C, ...]` shape.
fn channels(shape: &[usize]) -> (usize, usize, usize) {
    (shape[0], shape[1], shape[2..].iter().product())
}

fn batch_norm_layout(shape: &[usize]) -> Layout {
    let (n, c, s) = channels(shape);
    let channel: Vec<usize> = (0..n * c * s).map(|i| i / s % c).collect();
    Layout {
        group: channel.clone(),
        groups: c,
        affine: channel,
        params: c,
    }
}

fn layer_norm_layout(shape: &[usize], normalized_ndim: usize) -> Layout {
    let numel: usize = shape.iter().product();
    let d: usize = shape[shape.len() - normalized_ndim..].iter().product();
    Layout {
        group: (0..numel).map(|i| i / d).collect(),
        groups: numel / d,
        affine: (0..numel).map(|i| i % d).collect(),
        params: d,
    }
}

fn group_norm_layout(shape: &[usize], num_groups: usize) -> Layout {
    let (n, c, s) = channels(shape);
    let len = c / num_groups * s;
    Layout {
        group: (0..n * c * s).map(|i| i / len).collect(),
        groups: n * num_groups,
        affine: (0..n * c * s).map(|i| i / s % c).collect(),
        params: c,
    }
}

/// Per-group mean, biased variance and element count.
fn moments(x: &[f64], at: &Layout) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut count = vec![0.0; at.groups];
    let mut mean = vec![0.0; at.groups];
    for (i, &v) in x.iter().enumerate() {
        count[at.group[i]] += 1.0;
        mean[at.group[i]] += v;
    }
    mean.iter_mut().zip(&count).for_each(|(m, n)| *m /= n);
    let mut var = vec![0.0; at.groups];
    for (i, &v) in x.iter().enumerate() {
        var[at.group[i]] += (v - mean[at.group[i]]).powi(2);
    }
    var.iter_mut().zip(&count).for_each(|(v, n)| *v /= n);
    (mean, var, count)
}

/// `(x - mean) · invstd · w + b` with the given per-group statistics.
fn normalize(
    x: &[f64],
    at: &Layout,
    mean: &[f64],
    invstd: &[f64],
    w: Option<&[f64]>,
    b: Option<&[f64]>,
) -> Vec<f64> {
    (0..x.len())
        .map(|i| {
            let (g, a) = (at.group[i], at.affine[i]);
            let w = w.map_or(1.0, |w| w[a]);
            let b = b.map_or(0.0, |b| b[a]);
            (x[i] - mean[g]) * invstd[g] * w + b
        })
        .collect()
}

/// The training-mode forward: `(y, mean, invstd, biased var)`.
fn forward(
    x: &[f64],
    at: &Layout,
    w: Option<&[f64]>,
    b: Option<&[f64]>,
) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let (mean, var, _) = moments(x, at);
    let invstd: Vec<f64> = var.iter().map(|v| 1.0 / (v + EPS as f64).sqrt()).collect();
    (normalize(x, at, &mean, &invstd, w, b), mean, invstd, var)
}

/// The training-mode backward through the statistics: `(dx, dweight, dbias)`.
fn backward(
    dy: &[f64],
    x: &[f64],
    at: &Layout,
    w: Option<&[f64]>,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (_, mean, invstd, _) = forward(x, at, None, None);
    let (_, _, count) = moments(x, at);
    let xhat: Vec<f64> = (0..x.len())
        .map(|i| (x[i] - mean[at.group[i]]) * invstd[at.group[i]])
        .collect();
    let g: Vec<f64> = (0..x.len())
        .map(|i| dy[i] * w.map_or(1.0, |w| w[at.affine[i]]))
        .collect();
    let (mut sum_g, mut sum_g_xhat) = (vec![0.0; at.groups], vec![0.0; at.groups]);
    let (mut dw, mut db) = (vec![0.0; at.params], vec![0.0; at.params]);
    for i in 0..x.len() {
        sum_g[at.group[i]] += g[i];
        sum_g_xhat[at.group[i]] += g[i] * xhat[i];
        dw[at.affine[i]] += dy[i] * xhat[i];
        db[at.affine[i]] += dy[i];
    }
    let dx = (0..x.len())
        .map(|i| {
            let k = at.group[i];
            invstd[k] * (g[i] - (sum_g[k] + xhat[i] * sum_g_xhat[k]) / count[k])
        })
        .collect();
    (dx, dw, db)
}

/// Rounding-error magnitudes of the forward: x - mean cancels, so the error of y grows
/// with (|x| + |mean|) · invstd rather than with |y|.
fn forward_scale(
    x: &[f64],
    at: &Layout,
    mean: &[f64],
    invstd: &[f64],
    w: Option<&[f64]>,
    b: Option<&[f64]>,
) -> Vec<f64> {
    (0..x.len())
        .map(|i| {
            let (g, a) = (at.group[i], at.affine[i]);
            let w = w.map_or(1.0, |w| w[a].abs());
            (x[i].abs() + mean[g].abs()) * invstd[g] * w + b.map_or(0.0, |b| b[a].abs())
        })
        .collect()
}

/// Rounding-error magnitudes of `(dx, dweight, dbias)`: the same sums as [`backward`] over
/// absolute values, with |xhat| widened as in [`forward_scale`].
fn backward_scale(
    dy: &[f64],
    x: &[f64],
    at: &Layout,
    w: Option<&[f64]>,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (_, mean, invstd, _) = forward(x, at, None, None);
    let (_, _, count) = moments(x, at);
    let xs: Vec<f64> = (0..x.len())
        .map(|i| (x[i].abs() + mean[at.group[i]].abs()) * invstd[at.group[i]])
        .collect();
    let g: Vec<f64> = (0..x.len())
        .map(|i| (dy[i] * w.map_or(1.0, |w| w[at.affine[i]])).abs())
        .collect();
    let (mut sum_g, mut sum_g_xs) = (vec![0.0; at.groups], vec![0.0; at.groups]);
    let (mut dw, mut db) = (vec![0.0; at.params], vec![0.0; at.params]);
    for i in 0..x.len() {
        sum_g[at.group[i]] += g[i];
        sum_g_xs[at.group[i]] += g[i] * xs[i];
        dw[at.affine[i]] += dy[i].abs() * xs[i];
        db[at.affine[i]] += dy[i].abs();
    }
    let dx = (0..x.len())
        .map(|i| {
            let k = at.group[i];
            invstd[k] * (g[i] + (sum_g[k] + xs[i] * sum_g_xs[k]) / count[k])
        })
        .collect();
    (dx, dw, db)
}

fn read(t: &Tensor) -> Vec<f32> {
    t.to_vec().unwrap()
}

/// Random affine parameters of `shape`, or `None` half the time.
fn maybe_param(
    rng: &mut Rng,
    shape: &[usize],
    lo: f64,
    hi: f64,
) -> (Option<Tensor>, Option<Vec<f64>>) {
    if rng.below(2) == 0 {
        return (None, None);
    }
    let (t, v) = random_tensor(rng, shape, lo, hi);
    (Some(t), Some(v))
}

/// Checks a GPU backward against the reference, with `grad_y` the upstream gradient.
fn check_backward(
    what: &str,
    got: (Tensor, Tensor, Tensor),
    dys: &[f64],
    xs: &[f64],
    at: &Layout,
    ws: Option<&[f64]>,
    param_shape: &[usize],
) {
    let (want_dx, want_dw, want_db) = backward(dys, xs, at, ws);
    let (scale_dx, scale_dw, scale_db) = backward_scale(dys, xs, at, ws);
    let (dx, dw, db) = got;
    assert_eq!(dx.shape().iter().product::<usize>(), xs.len(), "{what}");
    assert_eq!(dw.shape(), param_shape, "{what}: dweight shape");
    assert_eq!(db.shape(), param_shape, "{what}: dbias shape");
    assert_close_scaled(&format!("{what} dx"), &read(&dx), &want_dx, &scale_dx, RTOL);
    assert_close_scaled(
        &format!("{what} dweight"),
        &read(&dw),
        &want_dw,
        &scale_dw,
        RTOL,
    );
    assert_close_scaled(
        &format!("{what} dbias"),
        &read(&db),
        &want_db,
        &scale_db,
        RTOL,
    );
}

/// `[N, C]`, `[N, C, L]` or `[N, C, H, W]` with N 1–4, C 1–9 and spatial dims 1–9.
fn random_nc_shape(rng: &mut Rng, ndim: usize) -> Vec<usize> {
    let mut shape = vec![1 + rng.below(4) as usize, 1 + rng.below(9) as usize];
    shape.extend((2..ndim).map(|_| 1 + rng.below(9) as usize));
    shape
}

#[test]
fn batch_norm_matches_reference_in_training_evaluation_and_backward() {
    let mut rng = Rng::new(71);
    for trial in 0..24 {
        let mut shape = random_nc_shape(&mut rng, [2, 3, 4][trial % 3]);
        if shape[0] * shape[2..].iter().product::<usize>() == 1 {
            shape[0] = 2; // training needs more than one value per channel
        }
        let c = shape[1];
        let what = format!("batch_norm {shape:?}");
        let (x, xs) = random_tensor(&mut rng, &shape, -3.0, 3.0);
        let (w, ws) = maybe_param(&mut rng, &[c], -2.0, 2.0);
        let (b, bs) = maybe_param(&mut rng, &[c], -1.0, 1.0);
        let (rm, rms) = random_tensor(&mut rng, &[c], -1.0, 1.0);
        let (rv, rvs) = random_tensor(&mut rng, &[c], 0.5, 2.0);
        let at = batch_norm_layout(&shape);
        let (ws, bs) = (ws.as_deref(), bs.as_deref());

        let out = batch_norm_train(&x, w.as_ref(), b.as_ref(), &rm, &rv, MOMENTUM, EPS).unwrap();
        let (want_y, mean, invstd, var) = forward(&xs, &at, ws, bs);
        assert_eq!(out.y.shape(), shape.as_slice());
        let scale = forward_scale(&xs, &at, &mean, &invstd, ws, bs);
        assert_close_scaled(&format!("{what} y"), &read(&out.y), &want_y, &scale, RTOL);
        assert_close(&format!("{what} mean"), &read(&out.save_mean), &mean, RTOL);
        let zeros = vec![0.0; c];
        assert_close_scaled(
            &format!("{what} invstd"),
            &read(&out.save_invstd),
            &invstd,
            &zeros,
            RTOL,
        );
        // The running variance takes the unbiased variance, n / (n - 1) times the biased.
        let n = (xs.len() / c) as f64;
        let m = MOMENTUM as f64;
        let want_rm: Vec<f64> = (0..c).map(|k| (1.0 - m) * rms[k] + m * mean[k]).collect();
        let want_rv: Vec<f64> = (0..c)
            .map(|k| (1.0 - m) * rvs[k] + m * var[k] * n / (n - 1.0))
            .collect();
        assert_close(
            &format!("{what} running_mean"),
            &read(&out.running_mean),
            &want_rm,
            RTOL,
        );
        assert_close(
            &format!("{what} running_var"),
            &read(&out.running_var),
            &want_rv,
            RTOL,
        );

        let y = batch_norm_eval(&x, w.as_ref(), b.as_ref(), &rm, &rv, EPS).unwrap();
        let inv_running: Vec<f64> = rvs.iter().map(|v| 1.0 / (v + EPS as f64).sqrt()).collect();
        let want = normalize(&xs, &at, &rms, &inv_running, ws, bs);
        let scale = forward_scale(&xs, &at, &rms, &inv_running, ws, bs);
        assert_close_scaled(&format!("{what} eval"), &read(&y), &want, &scale, RTOL);

        let (dy, dys) = random_tensor(&mut rng, &shape, -1.0, 1.0);
        let got =
            batch_norm_backward(&dy, &x, w.as_ref(), &out.save_mean, &out.save_invstd).unwrap();
        check_backward(&what, got, &dys, &xs, &at, ws, &[c]);
    }
}

/// The activation after batch norm, and its gradient read off its output, on the CPU.
fn activate(act: BnAct, v: f32) -> (f32, bool) {
    match act {
        BnAct::Identity => (v, true),
        BnAct::Relu => (if v.is_nan() { v } else { v.max(0.0) }, v > 0.0),
        BnAct::Relu6 => (
            if v.is_nan() { v } else { v.clamp(0.0, 6.0) },
            v > 0.0 && v < 6.0,
        ),
    }
}

/// Batch norm with a fused activation against batch norm, then the activation: forward in
/// training and evaluation, and both backwards with dy masked where the activation
/// clamped. Planes of 1, odd and multiple-of-4 sizes, and planes longer than a workgroup
/// reads at once; a NaN stays NaN.
#[test]
fn batch_norm_with_a_fused_activation_matches_batch_norm_then_the_activation() {
    let mut rng = Rng::new(78);
    let shapes: [&[usize]; 6] = [
        &[5, 3],
        &[2, 4, 3, 3],
        &[3, 2, 4, 4],
        &[2, 3, 40, 40],
        &[1, 2, 7, 300],
        &[9, 70, 2, 2],
    ];
    for (i, shape) in shapes.iter().enumerate() {
        let act = [BnAct::Relu6, BnAct::Relu, BnAct::Identity][i % 3];
        let c = shape[1];
        let what = format!("batch_norm {act:?} {shape:?}");
        let mut xs = random_values(&mut rng, shape.iter().product(), -4.0, 4.0);
        xs[1] = f32::NAN;
        let x = Tensor::from_slice(device(), &xs, shape).unwrap();
        let (w, _) = random_tensor(&mut rng, &[c], 0.5, 3.0);
        let (b, _) = random_tensor(&mut rng, &[c], -1.0, 1.0);
        let (rm, _) = random_tensor(&mut rng, &[c], -1.0, 1.0);
        let (rv, _) = random_tensor(&mut rng, &[c], 0.5, 2.0);
        let (dy, _) = random_tensor(&mut rng, shape, -1.0, 1.0);
        let affine = (Some(&w), Some(&b));

        let fused = batch_norm_act_train(&x, affine, (&rm, &rv), (MOMENTUM, EPS), act).unwrap();
        let plain = batch_norm_train(&x, Some(&w), Some(&b), &rm, &rv, MOMENTUM, EPS).unwrap();
        let eval_fused = batch_norm_act_eval(&x, affine, (&rm, &rv), EPS, act).unwrap();
        let eval_plain = batch_norm_eval(&x, Some(&w), Some(&b), &rm, &rv, EPS).unwrap();
        for (kind, got, plain) in [
            ("train", &fused.y, &plain.y),
            ("eval", &eval_fused, &eval_plain),
        ] {
            let (got, plain, dys) = (read(got), read(plain), read(&dy));
            let want: Vec<f32> = plain.iter().map(|&v| activate(act, v).0).collect();
            assert!(got[1].is_nan(), "{what} {kind}: NaN in, {} out", got[1]);
            // In training the NaN spreads over its channel's statistics, as in PyTorch.
            for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                let same = (g.is_nan() && w.is_nan()) || (g - w).abs() <= 1e-6 * w.abs().max(1.0);
                assert!(same, "{what} {kind} y[{k}]: {g} vs {w}");
            }
            // Gradients: the fused backward against the plain one with dy masked where
            // the activation did not pass its input (the NaN element included).
            let masked: Vec<f32> = plain
                .iter()
                .zip(&dys)
                .map(|(&v, &d)| if activate(act, v).1 { d } else { 0.0 })
                .collect();
            let masked = Tensor::from_slice(device(), &masked, shape).unwrap();
            let y = if kind == "train" {
                &fused.y
            } else {
                &eval_fused
            };
            let (got, want) = if kind == "train" {
                let stats = (&fused.save_mean, &fused.save_invstd);
                let ss = &fused.scale_shift;
                (
                    batch_norm_act_backward(&dy, &x, Some(&w), stats, Some((act, ss))).unwrap(),
                    batch_norm_backward(&masked, &x, Some(&w), stats.0, stats.1).unwrap(),
                )
            } else {
                (
                    batch_norm_act_eval_backward(
                        &dy,
                        &x,
                        Some(&w),
                        (&rm, &rv),
                        EPS,
                        Some((act, y)),
                    )
                    .unwrap(),
                    batch_norm_eval_backward(&masked, &x, Some(&w), &rm, &rv, EPS).unwrap(),
                )
            };
            for (name, g, w) in [
                ("dx", got.0, want.0),
                ("dweight", got.1, want.1),
                ("dbias", got.2, want.2),
            ] {
                let (g, w) = (read(&g), read(&w));
                assert_eq!(g.len(), w.len());
                for (k, (a, b)) in g.iter().zip(&w).enumerate() {
                    let same =
                        (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-5 * b.abs().max(1.0);
                    assert!(same, "{what} {kind} {name}[{k}]: {a} vs {b}");
                }
            }
        }
    }
}

/// A convolution with an evaluation-mode batch norm and activation folded into its last
/// step against the three run apart: depthwise convolutions (the vec4-row and the direct
/// kernels, stride 1 and 2), pointwise ones over planes of 8k pixels (one product over the batch) and
/// over odd planes, and a standard 3×3 (both run apart inside).
#[test]
fn conv_with_a_folded_batch_norm_matches_conv_then_batch_norm() {
    let mut rng = Rng::new(79);
    // (x shape, c_out, kernel, stride, padding, groups)
    let cases: [([usize; 4], usize, usize, usize, usize, usize); 7] = [
        ([2, 6, 8, 8], 6, 3, 1, 1, 6),
        ([2, 4, 6, 16], 4, 3, 2, 1, 4),
        ([3, 4, 9, 7], 4, 3, 2, 1, 4),
        ([3, 5, 4, 4], 7, 1, 1, 0, 1),
        ([2, 9, 8, 6], 16, 1, 1, 0, 1),
        ([2, 5, 5, 5], 3, 1, 1, 0, 1),
        ([2, 3, 6, 6], 4, 3, 1, 1, 1),
    ];
    for (i, (shape, c_out, k, stride, pad, groups)) in cases.into_iter().enumerate() {
        let act = [BnAct::Relu6, BnAct::Relu, BnAct::Identity][i % 3];
        let what = format!("conv {shape:?} -> {c_out} k{k} s{stride} g{groups} {act:?}");
        let (x, _) = random_tensor(&mut rng, &shape, -2.0, 2.0);
        let (w, _) = random_tensor(&mut rng, &[c_out, shape[1] / groups, k, k], -1.0, 1.0);
        let (bw, _) = random_tensor(&mut rng, &[c_out], 0.5, 3.0);
        let (bb, _) = random_tensor(&mut rng, &[c_out], -1.0, 1.0);
        let (rm, _) = random_tensor(&mut rng, &[c_out], -1.0, 1.0);
        let (rv, _) = random_tensor(&mut rng, &[c_out], 0.5, 2.0);
        let p = Conv2dParams::square(stride, pad, 1, groups);
        let bn = FrozenBatchNorm {
            weight: Some(&bw),
            bias: Some(&bb),
            running_mean: &rm,
            running_var: &rv,
            eps: EPS,
        };
        let got = read(&conv2d_batch_norm_eval(&x, &w, &p, bn, act).unwrap());
        let y = conv2d(&x, &w, None, &p).unwrap();
        let affine = (Some(&bw), Some(&bb));
        let want = read(&batch_norm_act_eval(&y, affine, (&rm, &rv), EPS, act).unwrap());
        assert_eq!(got.len(), want.len(), "{what}");
        for (j, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-5 * w.abs().max(1.0),
                "{what} [{j}]: {g} vs {w}"
            );
        }
    }
    // The batch norm's tensors must fit the convolution's output channels.
    let x = Tensor::zeros(device(), &[1, 2, 4, 4]).unwrap();
    let w = Tensor::zeros(device(), &[3, 2, 1, 1]).unwrap();
    let two = Tensor::ones(device(), &[2]).unwrap();
    let bn = FrozenBatchNorm {
        weight: None,
        bias: None,
        running_mean: &two,
        running_var: &two,
        eps: EPS,
    };
    let err = conv2d_batch_norm_eval(&x, &w, &Conv2dParams::default(), bn, BnAct::Relu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("running_mean") && err.contains("[3]"), "{err}");
}

/// A convolution that writes its output's moments on the way (depthwise on vec4 rows at
/// stride 1 and 2, with planes whose rows the plan's rows per invocation would not
/// divide, rows of 70,000 columns (past the loop cap: in ranges), and a 5×5; pointwise over the batch's planes) against the convolution and a
/// batch norm run apart, and the statistics against the f64 moments of the output, also
/// for a mean 60 times the spread. Paths without moments (planes of 25 pixels, a standard
/// 3×3) give none and the plain output. With `expect_fused`, the fused paths must run
/// where the adapter has them (8-wide subgroups for the pointwise ones).
fn check_conv_moments(expect_fused: bool) {
    let mut rng = Rng::new(83);
    let subgroup8 = device().summary().subgroup_sizes == Some((8, 8));
    // (x shape, x range, c_out, kernel, stride, padding, groups, moments expected)
    type Case = (
        [usize; 4],
        (f64, f64),
        usize,
        usize,
        usize,
        usize,
        usize,
        bool,
    );
    let cases: [Case; 9] = [
        ([65, 64, 8, 8], (-2.0, 2.0), 64, 3, 1, 1, 64, true),
        ([1, 2, 3, 70_000], (-2.0, 2.0), 2, 3, 1, 1, 2, true),
        ([2, 4, 12, 16], (-2.0, 2.0), 4, 3, 2, 1, 4, true),
        ([2, 3, 5, 12], (-2.0, 2.0), 3, 5, 1, 2, 3, true),
        ([14, 120, 30, 4], (30.0, 31.0), 120, 3, 1, 1, 120, true),
        ([3, 6, 4, 4], (-2.0, 2.0), 10, 1, 1, 0, 1, subgroup8),
        ([2, 9, 8, 12], (30.0, 31.0), 16, 1, 1, 0, 1, subgroup8),
        ([2, 5, 5, 5], (-2.0, 2.0), 3, 1, 1, 0, 1, false),
        ([2, 3, 6, 6], (-2.0, 2.0), 4, 3, 1, 1, 1, false),
    ];
    for (shape, (lo, hi), c_out, k, stride, pad, groups, fused) in cases {
        let what = format!("conv {shape:?} in [{lo}, {hi}] -> {c_out} k{k} s{stride} g{groups}");
        let (x, _) = random_tensor(&mut rng, &shape, lo, hi);
        let w_lo = if lo > 0.0 { 0.0 } else { -1.0 };
        let (w, _) = random_tensor(&mut rng, &[c_out, shape[1] / groups, k, k], w_lo, 1.0);
        let p = Conv2dParams::square(stride, pad, 1, groups);
        let (y, moments) = conv2d_with_moments(&x, &w, &p).unwrap();
        let plain = read(&conv2d(&x, &w, None, &p).unwrap());
        let got = read(&y);
        assert_eq!(got.len(), plain.len(), "{what}");
        for (j, (g, want)) in got.iter().zip(&plain).enumerate() {
            assert!(
                (g - want).abs() <= 1e-6 * want.abs().max(1.0),
                "{what} y[{j}]: {g} vs {want}"
            );
        }
        if expect_fused {
            assert_eq!(moments.is_some(), fused, "{what}: moments written");
        }
        let Some(moments) = moments else { continue };
        let (bw, _) = random_tensor(&mut rng, &[c_out], 0.5, 2.0);
        let (bb, _) = random_tensor(&mut rng, &[c_out], -1.0, 1.0);
        let (rm, _) = random_tensor(&mut rng, &[c_out], -1.0, 1.0);
        let (rv, _) = random_tensor(&mut rng, &[c_out], 0.5, 2.0);
        let affine = (Some(&bw), Some(&bb));
        let run = (&rm, &rv);
        let hyper = (MOMENTUM, EPS);
        let from =
            batch_norm_act_train_from(&y, &moments, affine, run, hyper, BnAct::Relu6).unwrap();
        let apart = batch_norm_act_train(&y, affine, run, hyper, BnAct::Relu6).unwrap();
        let pairs = [
            ("y", &from.y, &apart.y),
            ("save_mean", &from.save_mean, &apart.save_mean),
            ("save_invstd", &from.save_invstd, &apart.save_invstd),
            ("running_mean", &from.running_mean, &apart.running_mean),
            ("running_var", &from.running_var, &apart.running_var),
        ];
        // The f64 moments of the output. A batch norm's output is as exact as its mean
        // relative to the spread: |mean| · invstd · weight ulps of the mean.
        let at = batch_norm_layout(y.shape());
        let y64: Vec<f64> = got.iter().map(|&v| f64::from(v)).collect();
        let (mean, var, _) = self::moments(&y64, &at);
        let bw64 = read(&bw);
        let plane = y.numel() / shape[0] / c_out;
        let conditioning = |j: usize| {
            let c = j / plane % c_out;
            let invstd = 1.0 / (var[c] + f64::from(EPS)).sqrt();
            (mean[c].abs() * invstd * f64::from(bw64[c])).max(1.0) as f32
        };
        for (name, a, b) in pairs {
            for (j, (g, want)) in read(a).iter().zip(&read(b)).enumerate() {
                let scale = if name == "y" { conditioning(j) } else { 1.0 };
                let tol = 2e-5 * want.abs().max(1.0) * scale;
                assert!((g - want).abs() <= tol, "{what} {name}[{j}]: {g} vs {want}");
            }
        }
        let means = read(&from.save_mean);
        let invstds = read(&from.save_invstd);
        for c in 0..c_out {
            let (m, v) = (mean[c], var[c]);
            let m_err = (f64::from(means[c]) - m).abs();
            assert!(
                m_err <= 1e-5 * m.abs().max(1.0),
                "{what} mean[{c}]: {} vs {m}",
                means[c]
            );
            let invstd = 1.0 / (v + f64::from(EPS)).sqrt();
            let i_err = (f64::from(invstds[c]) - invstd).abs();
            assert!(
                i_err <= RTOL * invstd,
                "{what} invstd[{c}]: {} vs {invstd}",
                invstds[c]
            );
        }
    }
    // Moments belong to the tensor they were written with.
    let x = Tensor::ones(device(), &[2, 4, 4, 8]).unwrap();
    let w = Tensor::ones(device(), &[4, 1, 3, 3]).unwrap();
    let (y, moments) = conv2d_with_moments(&x, &w, &Conv2dParams::square(1, 1, 1, 4)).unwrap();
    if let Some(moments) = moments {
        let other = y.add_scalar(0.0).unwrap();
        let stats = Tensor::ones(device(), &[4]).unwrap();
        let err = batch_norm_act_train_from(
            &other,
            &moments,
            (None, None),
            (&stats, &stats),
            (MOMENTUM, EPS),
            BnAct::Identity,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("moments") && err.contains("[2, 4, 4, 8]"),
            "{err}"
        );
    }
}

#[test]
fn conv_moments_give_batch_norm_the_statistics_of_its_output() {
    check_conv_moments(true);
}

/// Planes longer than a lane may walk at the tight budget (160,000 floats, in vec4s; and
/// 123,201, an odd count, in floats): batch norm walks them in position ranges, training
/// and evaluation, forward and backward, against the reference.
#[test]
fn batch_norm_over_long_planes() {
    let mut rng = Rng::new(80);
    for shape in [[2usize, 2, 400, 400], [2, 1, 351, 351]] {
        let c = shape[1];
        let what = format!("batch_norm {shape:?}");
        let (x, xs) = random_tensor(&mut rng, &shape, -3.0, 3.0);
        let (w, ws) = random_tensor(&mut rng, &[c], 0.5, 2.0);
        let (b, bs) = random_tensor(&mut rng, &[c], -1.0, 1.0);
        let (rm, rms) = random_tensor(&mut rng, &[c], -1.0, 1.0);
        let (rv, rvs) = random_tensor(&mut rng, &[c], 0.5, 2.0);
        let at = batch_norm_layout(&shape);
        let (ws, bs) = (Some(ws.as_slice()), Some(bs.as_slice()));
        let out = batch_norm_train(&x, Some(&w), Some(&b), &rm, &rv, MOMENTUM, EPS).unwrap();
        let (want_y, mean, invstd, _) = forward(&xs, &at, ws, bs);
        let scale = forward_scale(&xs, &at, &mean, &invstd, ws, bs);
        assert_close_scaled(&format!("{what} y"), &read(&out.y), &want_y, &scale, RTOL);
        let y = batch_norm_eval(&x, Some(&w), Some(&b), &rm, &rv, EPS).unwrap();
        let inv_running: Vec<f64> = rvs.iter().map(|v| 1.0 / (v + EPS as f64).sqrt()).collect();
        let want = normalize(&xs, &at, &rms, &inv_running, ws, bs);
        let scale = forward_scale(&xs, &at, &rms, &inv_running, ws, bs);
        assert_close_scaled(&format!("{what} eval"), &read(&y), &want, &scale, RTOL);
        let (dy, dys) = random_tensor(&mut rng, &shape, -1.0, 1.0);
        let got = batch_norm_backward(&dy, &x, Some(&w), &out.save_mean, &out.save_invstd).unwrap();
        check_backward(&what, got, &dys, &xs, &at, ws, &[c]);
    }
}

#[test]
fn layer_norm_matches_reference_forward_and_backward() {
    let mut rng = Rng::new(72);
    for trial in 0..24 {
        let ndim = 1 + trial % 4;
        let shape: Vec<usize> = (0..ndim).map(|_| 1 + rng.below(9) as usize).collect();
        let k = 1 + rng.below(ndim as u64) as usize;
        let normalized = shape[ndim - k..].to_vec();
        let what = format!("layer_norm {shape:?} over {k} dims");
        let (x, xs) = random_tensor(&mut rng, &shape, -3.0, 3.0);
        let (w, ws) = maybe_param(&mut rng, &normalized, -2.0, 2.0);
        let (b, bs) = maybe_param(&mut rng, &normalized, -1.0, 1.0);
        let at = layer_norm_layout(&shape, k);
        let (ws, bs) = (ws.as_deref(), bs.as_deref());

        let (y, mean, invstd) = layer_norm(&x, k, w.as_ref(), b.as_ref(), EPS).unwrap();
        let (want_y, want_mean, want_invstd, _) = forward(&xs, &at, ws, bs);
        let mut stats_shape = shape[..ndim - k].to_vec();
        stats_shape.resize(ndim, 1);
        assert_eq!(mean.shape(), stats_shape.as_slice(), "{what}");
        assert_eq!(invstd.shape(), stats_shape.as_slice(), "{what}");
        let scale = forward_scale(&xs, &at, &want_mean, &want_invstd, ws, bs);
        assert_close_scaled(&format!("{what} y"), &read(&y), &want_y, &scale, RTOL);
        assert_close(&format!("{what} mean"), &read(&mean), &want_mean, RTOL);
        let zeros = vec![0.0; at.groups];
        let got = read(&invstd);
        assert_close_scaled(&format!("{what} invstd"), &got, &want_invstd, &zeros, RTOL);

        let (dy, dys) = random_tensor(&mut rng, &shape, -1.0, 1.0);
        let got = layer_norm_backward(&dy, &x, k, w.as_ref(), &mean, &invstd).unwrap();
        check_backward(&what, got, &dys, &xs, &at, ws, &normalized);
    }
}

#[test]
fn group_norm_matches_reference_forward_and_backward() {
    let mut rng = Rng::new(73);
    for trial in 0..24 {
        let shape = random_nc_shape(&mut rng, [2, 3, 4][trial % 3]);
        let c = shape[1];
        let divisors: Vec<usize> = (1..=c).filter(|&g| c.is_multiple_of(g)).collect();
        let g = divisors[rng.below(divisors.len() as u64) as usize];
        let what = format!("group_norm {shape:?} in {g} groups");
        let (x, xs) = random_tensor(&mut rng, &shape, -3.0, 3.0);
        let (w, ws) = maybe_param(&mut rng, &[c], -2.0, 2.0);
        let (b, bs) = maybe_param(&mut rng, &[c], -1.0, 1.0);
        let at = group_norm_layout(&shape, g);
        let (ws, bs) = (ws.as_deref(), bs.as_deref());

        let (y, mean, invstd) = group_norm(&x, g, w.as_ref(), b.as_ref(), EPS).unwrap();
        let (want_y, want_mean, want_invstd, _) = forward(&xs, &at, ws, bs);
        assert_eq!(mean.shape(), &[shape[0], g], "{what}");
        assert_eq!(invstd.shape(), &[shape[0], g], "{what}");
        let scale = forward_scale(&xs, &at, &want_mean, &want_invstd, ws, bs);
        assert_close_scaled(&format!("{what} y"), &read(&y), &want_y, &scale, RTOL);
        assert_close(&format!("{what} mean"), &read(&mean), &want_mean, RTOL);
        let zeros = vec![0.0; at.groups];
        let got = read(&invstd);
        assert_close_scaled(&format!("{what} invstd"), &got, &want_invstd, &zeros, RTOL);

        let (dy, dys) = random_tensor(&mut rng, &shape, -1.0, 1.0);
        let got = group_norm_backward(&dy, &x, g, w.as_ref(), &mean, &invstd).unwrap();
        check_backward(&what, got, &dys, &xs, &at, ws, &[c]);
    }
}

/// Checks the reference backward against central differences of the reference forward
/// for the loss L = Σ y · r, r random: dL/dy = r.
fn check_gradients_numerically(what: &str, at: &Layout, numel: usize, rng: &mut Rng) {
    let uniform = |rng: &mut Rng, n: usize, lo: f64, hi: f64| -> Vec<f64> {
        (0..n).map(|_| rng.uniform_in(lo, hi)).collect()
    };
    let x = uniform(rng, numel, -2.0, 2.0);
    let w = uniform(rng, at.params, 0.5, 1.5);
    let b = uniform(rng, at.params, -1.0, 1.0);
    let r = uniform(rng, numel, -1.0, 1.0);
    let loss = |x: &[f64], w: &[f64], b: &[f64]| -> f64 {
        let (y, ..) = forward(x, at, Some(w), Some(b));
        y.iter().zip(&r).map(|(y, r)| y * r).sum()
    };
    let (dx, dw, db) = backward(&r, &x, at, Some(&w));
    let h = 1e-6;
    let central = |v: &[f64], i: usize, f: &dyn Fn(&[f64]) -> f64| -> f64 {
        let (mut plus, mut minus) = (v.to_vec(), v.to_vec());
        plus[i] += h;
        minus[i] -= h;
        (f(&plus) - f(&minus)) / (2.0 * h)
    };
    let close = |name: &str, i: usize, analytic: f64, numeric: f64| {
        assert!(
            (analytic - numeric).abs() <= 1e-6 * analytic.abs().max(1.0),
            "{what}: d{name}[{i}] is {analytic}, central difference {numeric}"
        );
    };
    for (i, &analytic) in dx.iter().enumerate() {
        close("x", i, analytic, central(&x, i, &|x| loss(x, &w, &b)));
    }
    for i in 0..at.params {
        close("weight", i, dw[i], central(&w, i, &|w| loss(&x, w, &b)));
        close("bias", i, db[i], central(&b, i, &|b| loss(&x, &w, b)));
    }
}

#[test]
fn reference_gradients_match_finite_differences() {
    let mut rng = Rng::new(74);
    for shape in [vec![4, 3], vec![2, 3, 2, 3]] {
        let at = batch_norm_layout(&shape);
        let what = format!("batch_norm {shape:?}");
        check_gradients_numerically(&what, &at, shape.iter().product(), &mut rng);
    }
    for (shape, k) in [(vec![3, 5], 1), (vec![2, 3, 2, 2], 2)] {
        let at = layer_norm_layout(&shape, k);
        let what = format!("layer_norm {shape:?} over {k}");
        check_gradients_numerically(&what, &at, shape.iter().product(), &mut rng);
    }
    for (shape, g) in [(vec![2, 4, 3], 2), (vec![2, 6, 2, 2], 3)] {
        let at = group_norm_layout(&shape, g);
        let what = format!("group_norm {shape:?} in {g}");
        check_gradients_numerically(&what, &at, shape.iter().product(), &mut rng);
    }
}

#[test]
fn running_statistics_use_momentum_and_unbiased_variance() {
    // One channel holding 1 and 3: mean 2, biased variance 1, unbiased 2.
    let dev = device();
    let x = Tensor::from_vec(dev, vec![1.0, 3.0], &[2, 1]).unwrap();
    let rm = Tensor::zeros(dev, &[1]).unwrap();
    let rv = Tensor::ones(dev, &[1]).unwrap();
    let out = batch_norm_train(&x, None, None, &rm, &rv, 0.1, 0.0).unwrap();
    assert_close("running_mean", &read(&out.running_mean), &[0.2], 1e-6);
    assert_close("running_var", &read(&out.running_var), &[0.9 + 0.2], 1e-6);
    assert_close("save_invstd", &read(&out.save_invstd), &[1.0], 1e-6);
    assert_close("y", &read(&out.y), &[-1.0, 1.0], 1e-6);
}

#[test]
fn long_reductions_and_a_large_mean_stay_accurate() {
    // Channels and rows far longer than a workgroup; values at 1000 ± 1, where a one-pass
    // variance (E[x²] - E[x]²) loses every digit in f32 and the two-pass one keeps them.
    let mut rng = Rng::new(75);
    let shape = [4, 3, 33, 65];
    let values: Vec<f32> = random_values(&mut rng, shape.iter().product(), 999.0, 1001.0);
    let xs: Vec<f64> = values.iter().map(|&v| v as f64).collect();
    let x = Tensor::from_slice(device(), &values, &shape).unwrap();
    let rm = Tensor::zeros(device(), &[3]).unwrap();
    let rv = Tensor::ones(device(), &[3]).unwrap();
    let out = batch_norm_train(&x, None, None, &rm, &rv, MOMENTUM, EPS).unwrap();
    let (_, mean, invstd, _) = forward(&xs, &batch_norm_layout(&shape), None, None);
    assert_close("batch_norm mean", &read(&out.save_mean), &mean, 1e-6);
    let zeros = vec![0.0; invstd.len()];
    let got = read(&out.save_invstd);
    assert_close_scaled("batch_norm invstd", &got, &invstd, &zeros, RTOL);

    let (_, got_mean, got_invstd) = layer_norm(&x, 3, None, None, EPS).unwrap();
    let (_, mean, invstd, _) = forward(&xs, &layer_norm_layout(&shape, 3), None, None);
    assert_close("layer_norm mean", &read(&got_mean), &mean, 1e-6);
    let zeros = vec![0.0; invstd.len()];
    let got = read(&got_invstd);
    assert_close_scaled("layer_norm invstd", &got, &invstd, &zeros, RTOL);
}

#[test]
fn bad_arguments_are_errors_naming_the_values() {
    let dev = device();
    let t = |shape: &[usize]| Tensor::zeros(dev, shape).unwrap();
    let (x, c3, c4) = (t(&[2, 3, 4, 5]), t(&[3]), t(&[4]));
    let (one, dy_bad) = (t(&[1, 3, 1, 1]), t(&[2, 3, 4, 4]));
    let scalar = Tensor::from_vec(dev, vec![1.0], &[]).unwrap();
    let nan = f32::NAN;
    let inf = f32::INFINITY;
    let bn = |x: &Tensor, w: Option<&Tensor>, b: Option<&Tensor>, rm, rv, m, e| {
        batch_norm_train(x, w, b, rm, rv, m, e).map(|_| ())
    };
    let cases: Vec<(&str, Result<()>, bool, &[&str])> = vec![
        (
            "bn 1-D input",
            bn(&c4, None, None, &c3, &c3, 0.1, EPS),
            false,
            &["at least 2 dims", "[4]"],
        ),
        (
            "bn weight",
            bn(&x, Some(&c4), None, &c3, &c3, 0.1, EPS),
            true,
            &["weight", "[4]", "[3]"],
        ),
        (
            "bn bias",
            bn(&x, None, Some(&c4), &c3, &c3, 0.1, EPS),
            true,
            &["bias", "[4]"],
        ),
        (
            "bn running_mean",
            bn(&x, None, None, &c4, &c3, 0.1, EPS),
            true,
            &["running_mean", "[4]"],
        ),
        (
            "bn running_var",
            bn(&x, None, None, &c3, &c4, 0.1, EPS),
            true,
            &["running_var", "[4]"],
        ),
        (
            "bn one value per channel",
            bn(&one, None, None, &c3, &c3, 0.1, EPS),
            false,
            &["more than 1 value per channel", "[1, 3, 1, 1]"],
        ),
        (
            "bn one value per channel 2-D",
            bn(&t(&[1, 3]), None, None, &c3, &c3, 0.1, EPS),
            false,
            &["more than 1 value per channel", "[1, 3]"],
        ),
        (
            "bn eps",
            bn(&x, None, None, &c3, &c3, 0.1, nan),
            false,
            &["eps", "NaN"],
        ),
        (
            "bn momentum",
            bn(&x, None, None, &c3, &c3, inf, EPS),
            false,
            &["momentum", "inf"],
        ),
        (
            "bn eval scalar",
            batch_norm_eval(&scalar, None, None, &c3, &c3, EPS).map(|_| ()),
            false,
            &["at least 2 dims", "[]"],
        ),
        (
            "bn eval running_var",
            batch_norm_eval(&x, None, None, &c3, &c4, EPS).map(|_| ()),
            true,
            &["running_var"],
        ),
        (
            "bn eval eps",
            batch_norm_eval(&x, None, None, &c3, &c3, -inf).map(|_| ()),
            false,
            &["eps", "-inf"],
        ),
        (
            "bn backward grad_y",
            batch_norm_backward(&dy_bad, &x, None, &c3, &c3).map(|_| ()),
            true,
            &["grad_y", "[2, 3, 4, 4]", "[2, 3, 4, 5]"],
        ),
        (
            "bn backward save_invstd",
            batch_norm_backward(&x, &x, None, &c3, &c4).map(|_| ()),
            true,
            &["save_invstd", "[4]"],
        ),
        (
            "ln no dims",
            layer_norm(&x, 0, None, None, EPS).map(|_| ()),
            false,
            &["normalized_ndim 0", "[2, 3, 4, 5]"],
        ),
        (
            "ln too many dims",
            layer_norm(&x, 5, None, None, EPS).map(|_| ()),
            false,
            &["normalized_ndim 5", "4 dims"],
        ),
        (
            "ln weight",
            layer_norm(&x, 2, Some(&t(&[4, 4])), None, EPS).map(|_| ()),
            true,
            &["weight", "[4, 4]", "[4, 5]"],
        ),
        (
            "ln eps",
            layer_norm(&x, 1, None, None, inf).map(|_| ()),
            false,
            &["eps", "inf"],
        ),
        (
            "ln nothing to normalize",
            layer_norm(&t(&[2, 0]), 1, None, None, EPS).map(|_| ()),
            false,
            &["[0]", "no elements"],
        ),
        (
            "ln backward mean",
            layer_norm_backward(&x, &x, 2, None, &t(&[2, 3]), &t(&[2, 3, 1, 1])).map(|_| ()),
            true,
            &["mean", "[2, 3]", "[2, 3, 1, 1]"],
        ),
        (
            "gn zero groups",
            group_norm(&x, 0, None, None, EPS).map(|_| ()),
            false,
            &["num_groups 0", "3 channels"],
        ),
        (
            "gn groups not dividing",
            group_norm(&x, 2, None, None, EPS).map(|_| ()),
            false,
            &["num_groups 2", "3 channels", "[2, 3, 4, 5]"],
        ),
        (
            "gn 1-D input",
            group_norm(&c4, 1, None, None, EPS).map(|_| ()),
            false,
            &["at least 2 dims", "[4]"],
        ),
        (
            "gn bias",
            group_norm(&x, 3, None, Some(&c4), EPS).map(|_| ()),
            true,
            &["bias", "[4]", "[3]"],
        ),
        (
            "gn eps",
            group_norm(&x, 3, None, None, nan).map(|_| ()),
            false,
            &["eps", "NaN"],
        ),
        (
            "gn backward invstd",
            group_norm_backward(&x, &x, 3, None, &t(&[2, 3]), &t(&[2, 1])).map(|_| ()),
            true,
            &["invstd", "[2, 1]", "[2, 3]"],
        ),
        (
            "gn backward groups",
            group_norm_backward(&x, &x, 4, None, &t(&[2, 4]), &t(&[2, 4])).map(|_| ()),
            false,
            &["num_groups 4"],
        ),
    ];
    for (what, result, shape, needles) in cases {
        let kind = if shape { Kind::Shape } else { Kind::Arg };
        crate::errors::expect_err(what, result, kind, needles);
    }
}

#[test]
fn empty_batches_give_empty_results() {
    let dev = device();
    let c3 = Tensor::ones(dev, &[3]).unwrap();
    let x = Tensor::zeros(dev, &[0, 3, 2]).unwrap();
    let y = batch_norm_eval(&x, None, None, &c3, &c3, EPS).unwrap();
    assert_eq!(y.shape(), &[0, 3, 2]);
    let (dx, dw, db) = batch_norm_backward(&x, &x, Some(&c3), &c3, &c3).unwrap();
    assert_eq!(dx.shape(), &[0, 3, 2]);
    // Sums over no elements are zero.
    assert_eq!((read(&dw), read(&db)), (vec![0.0; 3], vec![0.0; 3]));
    let (y, mean, _) = layer_norm(&x, 2, None, None, EPS).unwrap();
    assert_eq!((y.shape(), mean.shape()), (&[0, 3, 2][..], &[0, 1, 1][..]));
    let (y, mean, invstd) = group_norm(&x, 3, None, None, EPS).unwrap();
    assert_eq!(y.shape(), &[0, 3, 2]);
    let (dx, dw, _) = group_norm_backward(&x, &x, 3, None, &mean, &invstd).unwrap();
    assert_eq!((dx.shape(), read(&dw)), (&[0, 3, 2][..], vec![0.0; 3]));
}

/// The tests above again on a device with the smallest loop budget, where every op takes
/// its split paths (segments, split-K, column ranges) on these small shapes.
mod at_the_tight_loop_budget {
    use crate::common::{tight_budget_device, with_device};

    #[test]
    fn batch_norm_matches_reference_in_training_evaluation_and_backward() {
        with_device(
            tight_budget_device(),
            super::batch_norm_matches_reference_in_training_evaluation_and_backward,
        );
    }

    #[test]
    fn layer_norm_matches_reference_forward_and_backward() {
        with_device(
            tight_budget_device(),
            super::layer_norm_matches_reference_forward_and_backward,
        );
    }

    #[test]
    fn group_norm_matches_reference_forward_and_backward() {
        with_device(
            tight_budget_device(),
            super::group_norm_matches_reference_forward_and_backward,
        );
    }

    #[test]
    fn batch_norm_over_long_planes() {
        with_device(tight_budget_device(), super::batch_norm_over_long_planes);
    }

    #[test]
    fn conv_moments_give_batch_norm_the_statistics_of_its_output() {
        with_device(tight_budget_device(), || super::check_conv_moments(false));
    }

    #[test]
    fn running_statistics_use_momentum_and_unbiased_variance() {
        with_device(
            tight_budget_device(),
            super::running_statistics_use_momentum_and_unbiased_variance,
        );
    }

    #[test]
    fn long_reductions_and_a_large_mean_stay_accurate() {
        with_device(
            tight_budget_device(),
            super::long_reductions_and_a_large_mean_stay_accurate,
        );
    }
}

/// Statistics over more values than lavapipe's loop cap lets one invocation loop over
/// (65,535 iterations, which once gave batch norm a mean of 0.094 for a constant 3.0
/// over 4M values per channel): reductions in segments.
mod past_the_loop_cap {
    use super::*;

    #[test]
    fn batch_norm_over_4m_values_per_channel() {
        let d = device();
        let shape = [4, 1, 1024, 1024];
        let x = Tensor::full(d, &shape, 3.0).unwrap();
        let rm = Tensor::zeros(d, &[1]).unwrap();
        let rv = Tensor::ones(d, &[1]).unwrap();
        let out = batch_norm_train(&x, None, None, &rm, &rv, MOMENTUM, EPS).unwrap();
        assert_eq!(read(&out.save_mean), [3.0]);
        assert_eq!(read(&out.running_mean), [0.3]);
        assert_close(
            "invstd",
            &read(&out.save_invstd),
            &[1.0 / 1e-5f64.sqrt()],
            1e-5,
        );

        // Random data, two channels of 2M: forward and backward against the reference.
        let mut rng = Rng::new(76);
        let shape = [2, 2, 1024, 1024];
        let (x, xs) = random_tensor(&mut rng, &shape, -3.0, 3.0);
        let (w, ws) = random_tensor(&mut rng, &[2], 0.5, 2.0);
        let rm = Tensor::zeros(d, &[2]).unwrap();
        let rv = Tensor::ones(d, &[2]).unwrap();
        let at = batch_norm_layout(&shape);
        let out = batch_norm_train(&x, Some(&w), None, &rm, &rv, MOMENTUM, EPS).unwrap();
        let (want_y, mean, invstd, _) = forward(&xs, &at, Some(&ws), None);
        let scale = forward_scale(&xs, &at, &mean, &invstd, Some(&ws), None);
        assert_close_scaled("batch_norm 2M y", &read(&out.y), &want_y, &scale, RTOL);
        let (dy, dys) = random_tensor(&mut rng, &shape, -1.0, 1.0);
        let got = batch_norm_backward(&dy, &x, Some(&w), &out.save_mean, &out.save_invstd);
        check_backward(
            "batch_norm 2M",
            got.unwrap(),
            &dys,
            &xs,
            &at,
            Some(&ws),
            &[2],
        );
    }

    #[test]
    fn layer_and_group_norm_over_rows_of_2_to_the_22() {
        let mut rng = Rng::new(77);
        let shape = [1, 4, 1024, 1024];
        let (x, xs) = random_tensor(&mut rng, &shape, -3.0, 3.0);
        let (dy, dys) = random_tensor(&mut rng, &shape, -1.0, 1.0);

        let (y, mean, invstd) = layer_norm(&x, 3, None, None, EPS).unwrap();
        let at = layer_norm_layout(&shape, 3);
        let (want_y, want_mean, want_invstd, _) = forward(&xs, &at, None, None);
        let scale = forward_scale(&xs, &at, &want_mean, &want_invstd, None, None);
        assert_close_scaled("layer_norm 2^22 y", &read(&y), &want_y, &scale, RTOL);
        let got = layer_norm_backward(&dy, &x, 3, None, &mean, &invstd).unwrap();
        check_backward("layer_norm 2^22", got, &dys, &xs, &at, None, &shape[1..]);

        let (y, mean, invstd) = group_norm(&x, 1, None, None, EPS).unwrap();
        let at = group_norm_layout(&shape, 1);
        let (want_y, want_mean, want_invstd, _) = forward(&xs, &at, None, None);
        let scale = forward_scale(&xs, &at, &want_mean, &want_invstd, None, None);
        assert_close_scaled("group_norm 2^22 y", &read(&y), &want_y, &scale, RTOL);
        let got = group_norm_backward(&dy, &x, 1, None, &mean, &invstd).unwrap();
        check_backward("group_norm 2^22", got, &dys, &xs, &at, None, &[4]);
    }
}

/// The tape hands batch norm its output's gradient, and training's backward writes dx
/// over it when nothing else holds it. Two batch norms summed share one gradient: the
/// first one back must leave it alone (the second still reads it), so each input's
/// gradient equals the one from a tape with that batch norm alone.
#[test]
fn batch_norm_writes_over_its_gradient_only_when_no_one_shares_it() {
    use liandan::autograd::{RunningStats, Tape, Var};
    let mut rng = Rng::new(83);
    let shape = [3, 4, 2, 4];
    let n: usize = shape.iter().product();
    let (x1, _) = random_tensor(&mut rng, &shape, -2.0, 3.0);
    let (x2, _) = random_tensor(&mut rng, &shape, -2.0, 3.0);
    let (r, _) = random_tensor(&mut rng, &shape, -1.0, 1.0);
    let ones = Tensor::ones(device(), &[1, n]).unwrap();
    let (mean, var) = (
        Tensor::zeros(device(), &[4]).unwrap(),
        Tensor::ones(device(), &[4]).unwrap(),
    );
    // Σ (the batch norms of `inputs`, summed) ⊙ r; the inputs' gradients.
    let grads = |inputs: &[(&Tensor, BnAct)]| -> Vec<Vec<f32>> {
        let tape = Tape::new();
        let vars: Vec<Var> = inputs
            .iter()
            .map(|(x, _)| tape.input((*x).clone()))
            .collect();
        let mut total: Option<Var> = None;
        for (v, (_, act)) in vars.iter().zip(inputs) {
            let running = RunningStats {
                mean: &mean,
                var: &var,
            };
            let (y, _, _) = tape
                .batch_norm_act_train(v, (None, None), running, (0.1, 1e-5), *act)
                .unwrap();
            total = Some(match total {
                Some(t) => tape.add(&t, &y).unwrap(),
                None => y,
            });
        }
        let weighted = tape
            .mul(&total.unwrap(), &tape.constant(r.clone()))
            .unwrap();
        let flat = tape.reshape(&weighted, &[1, n]).unwrap();
        let loss = tape
            .linear(&flat, &tape.constant(ones.clone()), None)
            .unwrap();
        let loss = tape.reshape(&loss, &[1]).unwrap();
        let g = tape.backward(&loss).unwrap();
        vars.iter()
            .map(|v| g.get(v).unwrap().to_vec().unwrap())
            .collect()
    };
    let both = grads(&[(&x1, BnAct::Relu6), (&x2, BnAct::Identity)]);
    let first = grads(&[(&x1, BnAct::Relu6)]);
    let second = grads(&[(&x2, BnAct::Identity)]);
    assert_eq!(both[0], first[0], "the first batch norm's input gradient");
    assert_eq!(both[1], second[0], "the second batch norm's input gradient");
    // And the gradients are the ones the backward computes apart.
    let tape_free = batch_norm_act_train(
        &x2,
        (None, None),
        (&mean, &var),
        (0.1, 1e-5),
        BnAct::Identity,
    )
    .unwrap();
    let (dx, _, _) = batch_norm_act_backward(
        &r,
        &x2,
        None,
        (&tape_free.save_mean, &tape_free.save_invstd),
        None,
    )
    .unwrap();
    assert_eq!(second[0], dx.to_vec().unwrap());
}

/// The layers of the test below: a pointwise convolution, batch norm, ReLU6, a depthwise
/// 3×3 and batch norm, as MobileNetV2 stacks them (scopes 0, 1, 3, 4).
struct ConvBnLayers {
    pointwise: Conv2d,
    bn1: BatchNorm2d,
    depthwise: Conv2d,
    bn2: BatchNorm2d,
}

/// Tensors' values by name.
type Named = Vec<(String, Vec<f32>)>;

/// One training pass of [`ConvBnLayers`] on `x`, as a `Sequential` (`fused`: each batch
/// norm merges the moments its convolution wrote) or layer by layer (each batch norm
/// walks its input): the loss, the gradients by name, and the store after (running
/// statistics).
fn conv_bn_pass(fused: bool, x: &Tensor) -> (f32, Named, Named) {
    let build = |s: &mut Scope| -> Result<ConvBnLayers> {
        let cfg = BatchNorm2dConfig::default();
        Ok(ConvBnLayers {
            pointwise: Conv2d::new(&mut s.pp(0), 6, 12, Conv2dConfig::new(1).bias(false))?,
            bn1: BatchNorm2d::new(&mut s.pp(1), 12, cfg)?,
            depthwise: Conv2d::new(
                &mut s.pp(3),
                12,
                12,
                Conv2dConfig::new(3).padding(1).groups(12).bias(false),
            )?,
            bn2: BatchNorm2d::new(&mut s.pp(4), 12, cfg)?,
        })
    };
    let (layers, mut store) = nn::build(device(), 21, build).unwrap();
    let tape = Tape::new();
    let mut ctx = Ctx::train(&tape, &mut store, 0);
    let input = tape.input(x.clone());
    let y = if fused {
        let seq = Sequential::from_children(vec![
            Box::new(layers.pointwise),
            Box::new(layers.bn1),
            Box::new(Activation::Relu6),
            Box::new(layers.depthwise),
            Box::new(layers.bn2),
        ]);
        seq.forward(&mut ctx, &input).unwrap()
    } else {
        let y = layers.pointwise.forward(&mut ctx, &input).unwrap();
        let y = layers.bn1.forward_act(&mut ctx, &y, BnAct::Relu6).unwrap();
        let y = layers.depthwise.forward(&mut ctx, &y).unwrap();
        layers.bn2.forward(&mut ctx, &y).unwrap()
    };
    let n = x.shape()[0];
    let pooled = tape.global_avg_pool(&y).unwrap();
    let logits = tape.reshape(&pooled, &[n, 12]).unwrap();
    let targets: Vec<usize> = (0..n).map(|i| i * 5 % 12).collect();
    let loss = tape.cross_entropy(&logits, &targets, 0.0).unwrap();
    let grads = tape.backward(&loss).unwrap().by_name().unwrap();
    let mut grads: Named = grads.into_iter().map(|(k, t)| (k, read(&t))).collect();
    grads.sort_by(|a, b| a.0.cmp(&b.0));
    let stored = store
        .iter_all()
        .map(|(name, t, _)| (name.to_string(), read(t)))
        .collect();
    (read(loss.value())[0], grads, stored)
}

/// A convolution followed by batch norm in a `Sequential` trains as the two run apart:
/// the loss, every gradient and the running statistics agree up to float rounding
/// whether batch norm merges the convolution's moments (where its path writes them, as
/// on lavapipe) or walks its input.
#[test]
fn a_convolution_then_batch_norm_trains_as_the_two_run_apart() {
    let mut rng = Rng::new(84);
    let (x, _) = random_tensor(&mut rng, &[4, 6, 8, 8], -2.0, 2.0);
    let (loss_f, grads_f, store_f) = conv_bn_pass(true, &x);
    let (loss_a, grads_a, store_a) = conv_bn_pass(false, &x);
    assert!(
        (loss_f - loss_a).abs() <= 1e-5 * loss_a.abs().max(1.0),
        "{loss_f} vs {loss_a}"
    );
    let names = |v: &Named| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&grads_f), names(&grads_a));
    assert_eq!(grads_f.len(), 6, "{:?}", names(&grads_f));
    assert_eq!(names(&store_f), names(&store_a));
    for ((name, f), (_, a)) in grads_f
        .iter()
        .zip(&grads_a)
        .chain(store_f.iter().zip(&store_a))
    {
        let scale = a.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
        for (j, (g, want)) in f.iter().zip(a).enumerate() {
            assert!(
                (g - want).abs() <= 1e-4 * scale,
                "{name}[{j}]: {g} vs {want}"
            );
        }
    }
}
