//! Dropout: the GPU mask against its CPU mirror, the kept fraction and independence of
//! neighbours within statistical bounds, reproducibility per seed, and the backward.

use liandan::ops::dropout::{dropout, dropout_backward, dropout_mask_cpu};
use liandan::{Rng, Tensor};

use crate::common::*;
use crate::errors::{Kind, expect_err};

/// Elements for the statistical checks.
const N_STAT: usize = 100_000;

fn read(t: &Tensor) -> Vec<f32> {
    t.to_vec().unwrap()
}

/// The reference forward for a given 0/1 mask: `x · mask / (1 - p)`.
fn reference(xs: &[f64], mask: &[f32], p: f32) -> Vec<f64> {
    let keep = 1.0 - f64::from(p);
    xs.iter()
        .zip(mask)
        .map(|(x, &m)| x * f64::from(m) / keep)
        .collect()
}

/// The reference backward: `grad_y · mask / (1 - p)`.
fn reference_backward(dys: &[f64], mask: &[f32], p: f32) -> Vec<f64> {
    reference(dys, mask, p)
}

#[test]
fn forward_keeps_the_hashed_elements_scaled_and_zeroes_the_rest() {
    let mut rng = Rng::new(81);
    for (trial, p) in [0.1f32, 0.5, 0.9, 0.3, 0.75, 0.01].into_iter().enumerate() {
        let shape = random_shape(&mut rng, 1 + trial % 4, 50_000);
        let seed = rng.next_u64();
        let what = format!("dropout {shape:?} p {p} seed {seed}");
        let (x, xs) = random_tensor(&mut rng, &shape, -3.0, 3.0);
        let (y, mask) = dropout(&x, p, true, seed).unwrap();
        let mask = read(&mask.expect("training with p > 0 returns a mask"));
        assert_eq!(y.shape(), shape.as_slice(), "{what}");
        assert_eq!(
            mask,
            dropout_mask_cpu(xs.len(), p, seed).unwrap(),
            "{what}: mask"
        );
        let got = read(&y);
        // Exactly the f32 product x · (1 / (1 - p)) where kept, exactly 0 where dropped.
        let scale = 1.0 / (1.0 - p);
        for i in 0..got.len() {
            let want = if mask[i] == 1.0 {
                xs[i] as f32 * scale
            } else {
                0.0
            };
            assert!(
                got[i] == want,
                "{what}: element {i} is {}, expected {want}",
                got[i]
            );
        }
        assert_close(&what, &got, &reference(&xs, &mask, p), 1e-6);
    }
}

#[test]
fn kept_fraction_and_neighbour_pairs_are_within_statistical_bounds() {
    let x = Tensor::ones(device(), &[N_STAT]).unwrap();
    for (p, seed) in [(0.1f32, 1u64), (0.5, 2), (0.8, 3), (0.5, 1 << 40)] {
        let (_, mask) = dropout(&x, p, true, seed).unwrap();
        let kept: Vec<bool> = read(&mask.unwrap()).iter().map(|&m| m == 1.0).collect();
        let q = 1.0 - f64::from(p);
        // Each bound is 5 standard deviations of the estimate for independent draws.
        let bound = |prob: f64, count: usize| 5.0 * (prob * (1.0 - prob) / count as f64).sqrt();
        let fraction = kept.iter().filter(|&&k| k).count() as f64 / N_STAT as f64;
        assert!(
            (fraction - q).abs() <= bound(q, N_STAT),
            "p {p} seed {seed}: kept {fraction}, expected {q} ± {}",
            bound(q, N_STAT)
        );
        // Neighbours at distances 1 and 256 (one workgroup) are kept together as often as
        // independent draws would be.
        for lag in [1, 256] {
            let pairs = N_STAT - lag;
            let both = (0..pairs).filter(|&i| kept[i] && kept[i + lag]).count() as f64;
            assert!(
                (both / pairs as f64 - q * q).abs() <= bound(q * q, pairs),
                "p {p} seed {seed} lag {lag}: both kept {}, expected {}",
                both / pairs as f64,
                q * q
            );
        }
    }
}

#[test]
fn a_seed_redraws_its_mask_and_other_seeds_draw_others() {
    let x = Tensor::ones(device(), &[N_STAT]).unwrap();
    let p = 0.5f32;
    let mask = |seed: u64| read(&dropout(&x, p, true, seed).unwrap().1.unwrap());
    let base = mask(7);
    assert_eq!(base, mask(7), "the same seed must give the same mask");
    // Seeds differing in the low half, the high half, or one bit of either.
    for other in [8, 7 | 1 << 32, 7 ^ 1 << 63, 7 ^ 1 << 20] {
        let got = mask(other);
        let agree = base.iter().zip(&got).filter(|(a, b)| a == b).count() as f64;
        let fraction = agree / N_STAT as f64;
        // Independent masks agree where both keep or both drop: p² + (1 - p)² = 1/2.
        let bound = 5.0 * (0.25 / N_STAT as f64).sqrt();
        assert!(
            (fraction - 0.5).abs() <= bound,
            "seeds 7 and {other}: masks agree on {fraction} of elements, expected 0.5 ± {bound}"
        );
    }
}

#[test]
fn backward_scales_the_kept_gradients() {
    let mut rng = Rng::new(82);
    for p in [0.2f32, 0.6] {
        let shape = [3, 5, 33];
        let (x, _) = random_tensor(&mut rng, &shape, -1.0, 1.0);
        let (dy, dys) = random_tensor(&mut rng, &shape, -1.0, 1.0);
        let mask_t = dropout(&x, p, true, 9).unwrap().1.unwrap();
        let mask = read(&mask_t);
        let got = read(&dropout_backward(&dy, &mask_t, p).unwrap());
        let what = format!("dropout_backward p {p}");
        assert_close(&what, &got, &reference_backward(&dys, &mask, p), 1e-6);
    }
}

#[test]
fn reference_gradient_matches_finite_differences() {
    // With the mask fixed, L = Σ dropout(x) · r; dL/dx is the backward of r.
    let mut rng = Rng::new(83);
    let (p, n) = (0.4f32, 40);
    let mask = dropout_mask_cpu(n, p, 5).unwrap();
    let x: Vec<f64> = (0..n).map(|_| rng.uniform_in(-2.0, 2.0)).collect();
    let r: Vec<f64> = (0..n).map(|_| rng.uniform_in(-1.0, 1.0)).collect();
    let loss = |x: &[f64]| -> f64 {
        let y = reference(x, &mask, p);
        y.iter().zip(&r).map(|(y, r)| y * r).sum()
    };
    let dx = reference_backward(&r, &mask, p);
    let h = 1e-6;
    for i in 0..n {
        let (mut plus, mut minus) = (x.clone(), x.clone());
        plus[i] += h;
        minus[i] -= h;
        let numeric = (loss(&plus) - loss(&minus)) / (2.0 * h);
        assert!(
            (dx[i] - numeric).abs() <= 1e-6 * dx[i].abs().max(1.0),
            "dx[{i}] is {}, central difference {numeric}",
            dx[i]
        );
    }
}

#[test]
fn evaluation_and_p_zero_are_the_identity_and_p_one_drops_everything() {
    let mut rng = Rng::new(84);
    let (x, _) = random_tensor(&mut rng, &[4, 7], -1.0, 1.0);
    let want = read(&x);
    for (p, training) in [(0.5, false), (0.0, true), (1.0, false)] {
        let (y, mask) = dropout(&x, p, training, 1).unwrap();
        assert!(
            mask.is_none(),
            "p {p} training {training}: no mask expected"
        );
        assert_eq!(
            read(&y),
            want,
            "p {p} training {training}: identity expected"
        );
    }
    let (y, mask) = dropout(&x, 1.0, true, 1).unwrap();
    let mask = mask.unwrap();
    assert_eq!(read(&y), vec![0.0; 28]);
    assert_eq!(read(&mask), vec![0.0; 28]);
    let dx = dropout_backward(&x, &mask, 1.0).unwrap();
    assert_eq!(
        read(&dx),
        vec![0.0; 28],
        "p = 1 backward gives zeros, not NaN"
    );
    // An empty tensor gives empty results.
    let empty = Tensor::zeros(device(), &[0, 3]).unwrap();
    let (y, mask) = dropout(&empty, 0.5, true, 1).unwrap();
    assert_eq!(
        (y.shape(), mask.unwrap().shape()),
        (&[0, 3][..], &[0, 3][..])
    );
}

#[test]
fn bad_arguments_are_errors_naming_the_values() {
    let dev = device();
    let x = Tensor::zeros(dev, &[2, 3]).unwrap();
    let other = Tensor::zeros(dev, &[3, 2]).unwrap();
    let drop = |p: f32| dropout(&x, p, true, 0).map(|_| ());
    let cases: Vec<(&str, liandan::Result<()>, Kind, &[&str])> = vec![
        (
            "negative p",
            drop(-0.1),
            Kind::Arg,
            &["p", "[0, 1]", "-0.1"],
        ),
        ("p above 1", drop(1.5), Kind::Arg, &["p", "1.5"]),
        ("NaN p", drop(f32::NAN), Kind::Arg, &["p", "NaN"]),
        ("infinite p", drop(f32::INFINITY), Kind::Arg, &["p", "inf"]),
        (
            "bad p in evaluation",
            dropout(&x, 2.0, false, 0).map(|_| ()),
            Kind::Arg,
            &["p", "2"],
        ),
        (
            "backward shapes",
            dropout_backward(&x, &other, 0.5).map(|_| ()),
            Kind::Shape,
            &["grad_y", "[2, 3]", "mask", "[3, 2]"],
        ),
        (
            "backward p",
            dropout_backward(&x, &x, -1.0).map(|_| ()),
            Kind::Arg,
            &["p", "-1"],
        ),
        (
            "cpu mask p",
            dropout_mask_cpu(4, 1.01, 0).map(|_| ()),
            Kind::Arg,
            &["p", "1.01"],
        ),
    ];
    for (what, result, kind, needles) in cases {
        expect_err(what, result, kind, needles);
    }
}

#[test]
fn infinities_are_multiplied_by_the_mask_both_ways() {
    // PyTorch: y = x · mask / (1 - p), so a dropped infinity is NaN (not 0), a kept one
    // stays infinite; the backward multiplies the gradient by the same mask.
    let n = 64;
    let (p, seed) = (0.5, 7);
    let x = Tensor::full(device(), &[n], f32::INFINITY).unwrap();
    let (y, mask) = dropout(&x, p, true, seed).unwrap();
    let (y, mask) = (read(&y), mask.unwrap());
    let kept = dropout_mask_cpu(n, p, seed).unwrap();
    assert!(kept.contains(&0.0) && kept.contains(&1.0));
    for i in 0..n {
        if kept[i] == 1.0 {
            assert_eq!(y[i], f32::INFINITY, "kept element {i}");
        } else {
            assert!(y[i].is_nan(), "dropped element {i} is {}", y[i]);
        }
    }
    let g = Tensor::full(device(), &[n], 1.0).unwrap();
    let dx = read(&dropout_backward(&g, &mask, p).unwrap());
    let want: Vec<f32> = kept.iter().map(|k| k * 2.0).collect();
    assert_eq!(dx, want);
    let g = Tensor::full(device(), &[n], f32::NAN).unwrap();
    assert!(
        read(&dropout_backward(&g, &mask, p).unwrap())
            .iter()
            .all(|v| v.is_nan())
    );
}
