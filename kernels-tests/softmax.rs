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
