//! Cross-entropy with label smoothing against an f64 reference, whose gradient is itself
//! checked against central differences of the reference loss.

use liandan::ops::loss::{cross_entropy, cross_entropy_backward};
use liandan::{Rng, Tensor};

use crate::common::*;
use crate::errors::{Kind, expect_err};

/// Per row: `(log-softmax, rounding-error magnitude of -log p)`, the magnitude being the
/// sum of the sizes of the terms `log s` and `x - max`.
fn log_softmax_rows(logits: &[f64], c: usize) -> Vec<(Vec<f64>, Vec<f64>)> {
    logits
        .chunks(c)
        .map(|row| {
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let log_s = row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
            let logp = row.iter().map(|v| v - m - log_s).collect();
            let mag = row.iter().map(|v| (v - m).abs() + log_s).collect();
            (logp, mag)
        })
        .collect()
}

/// The mean loss over the batch and its rounding-error magnitude.
fn reference(logits: &[f64], targets: &[usize], c: usize, eps: f64) -> (f64, f64) {
    let n = targets.len() as f64;
    let (mut loss, mut mag) = (0.0, 0.0);
    for ((logp, m), &t) in log_softmax_rows(logits, c).iter().zip(targets) {
        let mean_logp = logp.iter().sum::<f64>() / c as f64;
        let mean_mag = m.iter().sum::<f64>() / c as f64;
        loss += -(1.0 - eps) * logp[t] - eps * mean_logp;
        mag += (1.0 - eps) * m[t] + eps * mean_mag;
    }
    (loss / n, mag / n)
}

/// The gradient `g · (softmax - (1 - ε)·onehot - ε / C) / N` and its per-element
/// magnitude (the same terms, added as absolute values).
fn reference_backward(
    logits: &[f64],
    targets: &[usize],
    c: usize,
    eps: f64,
    g: f64,
) -> (Vec<f64>, Vec<f64>) {
    let n = targets.len() as f64;
    let (mut grad, mut mag) = (Vec::new(), Vec::new());
    for ((logp, _), &t) in log_softmax_rows(logits, c).iter().zip(targets) {
        for (k, lp) in logp.iter().enumerate() {
            let onehot = if k == t { 1.0 - eps } else { 0.0 };
            grad.push(g * (lp.exp() - onehot - eps / c as f64) / n);
            mag.push(g.abs() * (lp.exp() + onehot + eps / c as f64) / n);
        }
    }
    (grad, mag)
}

fn random_targets(rng: &mut Rng, n: usize, c: usize) -> Vec<usize> {
    (0..n).map(|_| rng.below(c as u64) as usize).collect()
}

#[test]
fn cross_entropy_matches_reference_forward_and_backward() {
    let mut rng = Rng::new(101);
    for trial in 0..16 {
        let n = odd_size(&mut rng);
        let c = if trial % 5 == 0 {
            1000
        } else {
            odd_size(&mut rng)
        };
        let eps = [0.0f32, 0.1, 0.37, 1.0][trial % 4];
        let what = format!("cross_entropy [{n}, {c}] smoothing {eps}");
        let (x, xs) = random_tensor(&mut rng, &[n, c], -15.0, 15.0);
        let targets = random_targets(&mut rng, n, c);
        // Sums over 1000 classes (and the batch) round more than pointwise ops.
        let rtol = if c > 256 { 1e-4 } else { 1e-5 };

        let loss = cross_entropy(&x, &targets, eps).unwrap();
        assert_eq!(loss.shape(), &[1], "{what}");
        let (want, mag) = reference(&xs, &targets, c, f64::from(eps));
        assert_close_scaled(&what, &loss.to_vec().unwrap(), &[want], &[mag], rtol);

        let g = rng.uniform_in(-2.0, 2.0) as f32;
        let grad = cross_entropy_backward(&x, &targets, eps, g).unwrap();
        assert_eq!(grad.shape(), &[n, c], "{what}");
        let (want, mag) = reference_backward(&xs, &targets, c, f64::from(eps), f64::from(g));
        assert_close_scaled(
            &format!("{what} backward"),
            &grad.to_vec().unwrap(),
            &want,
            &mag,
            rtol,
        );
    }
}

#[test]
fn large_logits_stay_finite() {
    // Without the shift by the row maximum exp(90) would overflow f32.
    let mut rng = Rng::new(102);
    let (n, c) = (5, 33);
    let (x, xs) = random_tensor(&mut rng, &[n, c], 60.0, 90.0);
    let targets = random_targets(&mut rng, n, c);
    let (want, mag) = reference(&xs, &targets, c, 0.1);
    let got = cross_entropy(&x, &targets, 0.1).unwrap().to_vec().unwrap();
    assert_close_scaled("large logits", &got, &[want], &[mag], 1e-5);
    let (want, mag) = reference_backward(&xs, &targets, c, 0.1, 1.0);
    let got = cross_entropy_backward(&x, &targets, 0.1, 1.0)
        .unwrap()
        .to_vec()
        .unwrap();
    assert_close_scaled("large logits backward", &got, &want, &mag, 1e-5);
}

#[test]
fn reference_gradient_matches_finite_differences() {
    let mut rng = Rng::new(103);
    for (n, c, eps) in [(3, 5, 0.0), (4, 7, 0.2), (2, 3, 1.0)] {
        let logits: Vec<f64> = (0..n * c).map(|_| rng.uniform_in(-3.0, 3.0)).collect();
        let targets = random_targets(&mut rng, n, c);
        let g = 1.7;
        let loss = |x: &[f64]| g * reference(x, &targets, c, eps).0;
        let (grad, _) = reference_backward(&logits, &targets, c, eps, g);
        let h = 1e-6;
        for i in 0..n * c {
            let (mut plus, mut minus) = (logits.clone(), logits.clone());
            plus[i] += h;
            minus[i] -= h;
            let numeric = (loss(&plus) - loss(&minus)) / (2.0 * h);
            assert!(
                (grad[i] - numeric).abs() <= 1e-7 * grad[i].abs().max(1.0),
                "[{n}, {c}] smoothing {eps}: d logits[{i}] is {}, central difference {numeric}",
                grad[i]
            );
        }
    }
}

#[test]
fn an_empty_batch_gives_nan_and_an_empty_gradient() {
    let x = Tensor::zeros(device(), &[0, 4]).unwrap();
    assert!(
        cross_entropy(&x, &[], 0.0)
            .unwrap()
            .to_scalar()
            .unwrap()
            .is_nan()
    );
    let grad = cross_entropy_backward(&x, &[], 0.0, 1.0).unwrap();
    assert_eq!(grad.shape(), &[0, 4]);
}

#[test]
fn bad_arguments_are_errors_naming_the_values() {
    let dev = device();
    let x = Tensor::zeros(dev, &[3, 5]).unwrap();
    let flat = Tensor::zeros(dev, &[5]).unwrap();
    let ok = [0usize, 4, 2];
    let forward = |t: &[usize], eps: f32| cross_entropy(&x, t, eps).map(|_| ());
    let cases: Vec<(&str, liandan::Result<()>, Kind, &[&str])> = vec![
        (
            "target out of range",
            forward(&[0, 1, 5], 0.0),
            Kind::Arg,
            &["target 2", "class 5", "C = 5"],
        ),
        (
            "too few targets",
            forward(&[0, 1], 0.0),
            Kind::Shape,
            &["2 targets", "[3, 5]", "3 rows"],
        ),
        (
            "negative smoothing",
            forward(&ok, -0.1),
            Kind::Arg,
            &["label_smoothing", "-0.1"],
        ),
        (
            "smoothing above 1",
            forward(&ok, 1.5),
            Kind::Arg,
            &["label_smoothing", "1.5"],
        ),
        (
            "NaN smoothing",
            forward(&ok, f32::NAN),
            Kind::Arg,
            &["label_smoothing", "NaN"],
        ),
        (
            "1-D logits",
            cross_entropy(&flat, &[1], 0.0).map(|_| ()),
            Kind::Shape,
            &["[N, C]", "[5]"],
        ),
        (
            "backward target",
            cross_entropy_backward(&x, &[7, 0, 0], 0.0, 1.0).map(|_| ()),
            Kind::Arg,
            &["target 0", "class 7", "C = 5"],
        ),
        (
            "backward grad_loss",
            cross_entropy_backward(&x, &ok, 0.0, f32::INFINITY).map(|_| ()),
            Kind::Arg,
            &["grad_loss", "inf"],
        ),
        (
            "backward smoothing",
            cross_entropy_backward(&x, &ok, 2.0, 1.0).map(|_| ()),
            Kind::Arg,
            &["label_smoothing", "2"],
        ),
    ];
    for (what, result, kind, needles) in cases {
        expect_err(what, result, kind, needles);
    }
}

/// The tests above again on a device with the smallest loop budget, where every op takes
/// its split paths (segments, split-K, column ranges) on these small shapes.
mod at_the_tight_loop_budget {
    use crate::common::{tight_budget_device, with_device};

    #[test]
    fn cross_entropy_matches_reference_forward_and_backward() {
        with_device(
            tight_budget_device(),
            super::cross_entropy_matches_reference_forward_and_backward,
        );
    }

    #[test]
    fn large_logits_stay_finite() {
        with_device(tight_budget_device(), super::large_logits_stay_finite);
    }
}

/// Rows past lavapipe's loop cap (65,535 iterations per invocation, which once broke
/// cross-entropy with C = 2^21): the row statistics are reductions in segments.
#[test]
fn classes_past_the_loop_cap_match_reference() {
    let mut rng = Rng::new(103);
    let (n, c) = (2, 1 << 21);
    let (x, xs) = random_tensor(&mut rng, &[n, c], -15.0, 15.0);
    let targets = vec![5, c - 1];
    for eps in [0.0, 0.1] {
        let (want, mag) = reference(&xs, &targets, c, eps);
        let got = cross_entropy(&x, &targets, eps as f32)
            .unwrap()
            .to_vec()
            .unwrap();
        assert_close_scaled(&format!("C = 2^21, eps {eps}"), &got, &[want], &[mag], 1e-4);
        let (want, mag) = reference_backward(&xs, &targets, c, eps, 1.0);
        let got = cross_entropy_backward(&x, &targets, eps as f32, 1.0)
            .unwrap()
            .to_vec()
            .unwrap();
        assert_close_scaled(
            &format!("C = 2^21 backward, eps {eps}"),
            &got,
            &want,
            &mag,
            1e-4,
        );
    }
}

#[test]
fn infinite_logits_follow_pytorch() {
    let d = device();
    let x = Tensor::from_vec(d, vec![0.0, f32::NEG_INFINITY, 1.0], &[1, 3]).unwrap();
    // PyTorch: cross_entropy([[0, -inf, 1]], [0]) = 1.3133 (log(1 + e)), finite: the -inf
    // class only drops out of the softmax.
    let loss = cross_entropy(&x, &[0], 0.0).unwrap().to_scalar().unwrap();
    assert!((loss - 1.313_261_7).abs() < 1e-6, "{loss}");
    let grad = cross_entropy_backward(&x, &[0], 0.0, 1.0)
        .unwrap()
        .to_vec()
        .unwrap();
    let e = std::f32::consts::E;
    let want = [1.0 / (1.0 + e) - 1.0, 0.0, e / (1.0 + e)];
    for (g, w) in grad.iter().zip(want) {
        assert!((g - w).abs() < 1e-6, "{grad:?} vs {want:?}");
    }
    // The target's logit at -inf, or any -inf under smoothing: infinite loss.
    assert_eq!(
        cross_entropy(&x, &[1], 0.0).unwrap().to_scalar().unwrap(),
        f32::INFINITY
    );
    assert_eq!(
        cross_entropy(&x, &[0], 0.1).unwrap().to_scalar().unwrap(),
        f32::INFINITY
    );
    // A NaN logit makes the loss NaN.
    let x = Tensor::from_vec(d, vec![0.0, f32::NAN, 1.0], &[1, 3]).unwrap();
    assert!(
        cross_entropy(&x, &[0], 0.0)
            .unwrap()
            .to_scalar()
            .unwrap()
            .is_nan()
    );
}
