//! Softmax and log-softmax over the last axis against f64 references.

use liandan::Rng;

use crate::common::*;

fn reference(xs: &[f64], len: usize, log: bool) -> Vec<f64> {
    let mut out = Vec::with_capacity(xs.len());
    for row in xs.chunks(len) {
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let total: f64 = row.iter().map(|v| (v - m).exp()).sum();
        out.extend(row.iter().map(|v| {
            if log {
                v - m - total.ln()
            } else {
                (v - m).exp() / total
            }
        }));
    }
    out
}

#[test]
fn softmax_and_log_softmax_match_reference() {
    let mut rng = Rng::new(31);
    for trial in 0..24 {
        let ndim = 1 + rng.below(3) as usize;
        let mut shape = random_shape(&mut rng, ndim, 20_000);
        if trial % 6 == 0 {
            *shape.last_mut().unwrap() = 1000; // ImageNet logits
        }
        let len = *shape.last().unwrap();
        // Probabilities down to e^-30, compared relative to themselves.
        let (x, xs) = random_tensor(&mut rng, &shape, -15.0, 15.0);
        let got = x.softmax().unwrap().to_vec().unwrap();
        let want = reference(&xs, len, false);
        let zeros = vec![0.0; want.len()];
        assert_close_scaled(&format!("softmax {shape:?}"), &got, &want, &zeros, 1e-5);
        let got = x.log_softmax().unwrap().to_vec().unwrap();
        assert_close(
            &format!("log_softmax {shape:?}"),
            &got,
            &reference(&xs, len, true),
            1e-5,
        );
    }
}

#[test]
fn large_logits_stay_finite() {
    // Without the max subtraction exp(90) would overflow f32.
    let mut rng = Rng::new(32);
    let (x, xs) = random_tensor(&mut rng, &[5, 33], 60.0, 90.0);
    let got = x.log_softmax().unwrap().to_vec().unwrap();
    assert_close("log_softmax large", &got, &reference(&xs, 33, true), 1e-5);
    let p = x.softmax().unwrap().to_vec().unwrap();
    for row in p.chunks(33) {
        let total: f32 = row.iter().sum();
        assert!((total - 1.0).abs() < 1e-5, "row sums to {total}");
    }
}

/// The tests above again on a device with the smallest loop budget, where every op takes
/// its split paths (segments, split-K, column ranges) on these small shapes.
mod at_the_tight_loop_budget {
    use crate::common::{tight_budget_device, with_device};

    #[test]
    fn softmax_and_log_softmax_match_reference() {
        with_device(
            tight_budget_device(),
            super::softmax_and_log_softmax_match_reference,
        );
    }

    #[test]
    fn large_logits_stay_finite() {
        with_device(tight_budget_device(), super::large_logits_stay_finite);
    }
}

/// Rows past lavapipe's loop cap (65,535 iterations per invocation, which once broke
/// softmax from rows of 2^21): their maximum and sum are reductions in segments.
#[test]
fn rows_past_the_loop_cap_match_reference() {
    let mut rng = Rng::new(33);
    let len = 1 << 21;
    let (x, xs) = random_tensor(&mut rng, &[2, len], -15.0, 15.0);
    let zeros = vec![0.0; xs.len()];
    let got = x.softmax().unwrap().to_vec().unwrap();
    assert_close_scaled(
        "softmax 2^21",
        &got,
        &reference(&xs, len, false),
        &zeros,
        1e-4,
    );
    let got = x.log_softmax().unwrap().to_vec().unwrap();
    assert_close("log_softmax 2^21", &got, &reference(&xs, len, true), 1e-4);
}

#[test]
fn nan_and_infinities_follow_pytorch() {
    let d = device();
    // A NaN makes its whole row NaN; -inf gets probability 0.
    let x = liandan::Tensor::from_vec(
        d,
        vec![1.0, f32::NAN, 2.0, 0.0, f32::NEG_INFINITY, 0.0],
        &[2, 3],
    )
    .unwrap();
    let p = x.softmax().unwrap().to_vec().unwrap();
    assert!(p[..3].iter().all(|v| v.is_nan()), "{p:?}");
    assert_eq!(&p[3..], &[0.5, 0.0, 0.5]);
    let lp = x.log_softmax().unwrap().to_vec().unwrap();
    assert_eq!(lp[4], f32::NEG_INFINITY);
}
