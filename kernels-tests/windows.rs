//! Tensors larger than one storage binding: elementwise ops, optimizer updates and matrix
//! products bind them in windows. Checked on a device whose bindings hold 64 KiB, against
//! f64 references and against the same work on the default device; and once at
//! lavapipe's real 128 MiB limit, with a linear layer whose weight passes it.

use std::collections::HashMap;

use liandan::nn::ParamStore;
use liandan::ops::matmul::{MatmulKernel, matmul_with};
use liandan::optim::{AdamW, AdamWConfig, Optimizer, Sgd, SgdConfig};
use liandan::{Error, Rng, Tensor};

use crate::common::*;

/// Floats in one binding of the small device.
const WINDOW: usize = (1 << 16) / 4;

fn small() -> &'static liandan::Device {
    small_binding_device()
}

/// `op(A)·op(B)` in f64, and Σ|a·b| per output.
fn reference(
    a: &[f64],
    b: &[f64],
    (m, n, k): (usize, usize, usize),
    (ta, tb): (bool, bool),
) -> (Vec<f64>, Vec<f64>) {
    let mut c = vec![0.0; m * n];
    let mut mag = vec![0.0; m * n];
    for i in 0..m {
        for p in 0..k {
            let av = if ta { a[p * m + i] } else { a[i * k + p] };
            for j in 0..n {
                let bv = if tb { b[j * k + p] } else { b[p * n + j] };
                c[i * n + j] += av * bv;
                mag[i * n + j] += (av * bv).abs();
            }
        }
    }
    (c, mag)
}

#[test]
fn elementwise_ops_and_fill_cover_every_window() {
    with_device(small(), || {
        let mut rng = Rng::new(3);
        let n = 3 * WINDOW + 123;
        let (a, av) = random_tensor(&mut rng, &[n], -2.0, 2.0);
        let (b, bv) = random_tensor(&mut rng, &[n], 0.5, 2.0);
        let relu = a.relu().unwrap().to_vec().unwrap();
        let want: Vec<f64> = av.iter().map(|v| v.max(0.0)).collect();
        assert_close("relu", &relu, &want, 0.0);
        let sum = a.add(&b).unwrap().to_vec().unwrap();
        let want: Vec<f64> = av.iter().zip(&bv).map(|(x, y)| x + y).collect();
        assert_close("add", &sum, &want, 1e-6);
        let quot = a.div(&b).unwrap().to_vec().unwrap();
        let want: Vec<f64> = av.iter().zip(&bv).map(|(x, y)| x / y).collect();
        assert_close("div", &quot, &want, 1e-6);
        let full = Tensor::full(small(), &[n], 2.5).unwrap().to_vec().unwrap();
        assert!(full.iter().all(|&v| v == 2.5));
    });
}

#[test]
fn products_split_along_whichever_dimension_their_big_operand_is_stored_by() {
    // (m, n, k, ta, tb): the big tensor, and so the split, in each case.
    let cases = [
        (5, 1500, 301, false, true),  // B [N, K] big: x · Wᵀ, split N
        (5, 301, 1500, false, false), // B [K, N] big: g · W, split K
        (1500, 301, 5, true, false),  // C big: gᵀ · x, split M
        (4001, 7, 50, false, false),  // A [M, K] big: split M
        (5, 6, 20003, true, false),   // Aᵀ and B both big along K
        (3, 1001, 71, false, true),   // K not a multiple of 4: packed pieces
    ];
    with_device(small(), || {
        let mut rng = Rng::new(5);
        for (m, n, k, ta, tb) in cases {
            let sa = if ta { [k, m] } else { [m, k] };
            let sb = if tb { [n, k] } else { [k, n] };
            let (a, av) = random_tensor(&mut rng, &sa, -1.0, 1.0);
            let (b, bv) = random_tensor(&mut rng, &sb, -1.0, 1.0);
            let (want, mag) = reference(&av, &bv, (m, n, k), (ta, tb));
            let what = format!(
                "{sa:?}{} · {sb:?}{}",
                if ta { "ᵀ" } else { "" },
                if tb { "ᵀ" } else { "" }
            );
            let c = matmul_with(&a, &b, ta, tb, MatmulKernel::Auto).unwrap();
            assert_eq!(c.shape(), &[m, n], "{what}");
            assert_close_scaled(&what, &c.to_vec().unwrap(), &want, &mag, 1e-5);
        }
    });
}

#[test]
fn products_too_big_two_ways_and_unsplit_ops_are_errors_not_crashes() {
    with_device(small(), || {
        // A big along M and B big along N: no single split serves both.
        let a = Tensor::zeros(small(), &[4100, 8]).unwrap();
        let b = Tensor::zeros(small(), &[4100, 8]).unwrap();
        let err = a.matmul_nt(&b).unwrap_err().to_string();
        assert!(
            err.contains("different dimensions") && err.contains("[4100, 8]"),
            "{err}"
        );
        // Softmax does not split rows into windows: a clear Err naming the limit.
        let x = Tensor::zeros(small(), &[2, WINDOW]).unwrap();
        match x.softmax() {
            Err(Error::TooLarge { limit, .. }) => assert_eq!(limit, 1 << 16),
            other => panic!("softmax past the binding: {other:?}"),
        }
    });
}

/// The same steps of `make()`'s optimizer on both devices: the windows must not change
/// a single bit of the per-element updates.
fn optimizer_steps_match(make: impl Fn() -> Box<dyn Optimizer>) {
    let shape = [3, WINDOW + 700];
    let mut rng = Rng::new(8);
    let n = shape.iter().product();
    let init = random_values(&mut rng, n, -1.0, 1.0);
    let grads: Vec<Vec<f32>> = (0..3)
        .map(|_| random_values(&mut rng, n, -1.0, 1.0))
        .collect();
    let run = |device: &liandan::Device| -> Vec<f32> {
        let mut store = ParamStore::new();
        store
            .insert_param("w", Tensor::from_slice(device, &init, &shape).unwrap())
            .unwrap();
        let mut opt = make();
        for g in &grads {
            let g = HashMap::from([(
                "w".to_string(),
                Tensor::from_slice(device, g, &shape).unwrap(),
            )]);
            opt.step(&mut store, &g, 0.1).unwrap();
        }
        store.get("w").unwrap().to_vec().unwrap()
    };
    assert_eq!(run(small()), run(device()));
}

#[test]
fn optimizer_updates_are_the_same_in_windows() {
    optimizer_steps_match(|| {
        Box::new(
            Sgd::new(SgdConfig {
                momentum: 0.9,
                weight_decay: 1e-3,
                ..SgdConfig::default()
            })
            .unwrap(),
        )
    });
    optimizer_steps_match(|| Box::new(AdamW::new(AdamWConfig::default()).unwrap()));
}

/// At lavapipe's (and WebGPU's default) 128 MiB: a linear layer whose weight is larger,
/// forward and backward, against f64 on sampled outputs (every output of the forward).
#[test]
fn a_linear_layer_whose_weight_passes_the_devices_binding_limit() {
    let limit = device().limits().max_storage_buffer_binding_size as usize;
    let k = 4100;
    let out = (limit / 4 / k) + 100;
    assert!(out * k * 4 > limit);
    let mut rng = Rng::new(12);
    let m = 2;
    let (x, xv) = random_tensor(&mut rng, &[m, k], -1.0, 1.0);
    let w_values = random_values(&mut rng, out * k, -1.0, 1.0);
    let w = Tensor::from_slice(device(), &w_values, &[out, k]).unwrap();
    let wv = |o: usize, i: usize| w_values[o * k + i] as f64;
    let y = liandan::ops::linear::linear(&x, &w, None)
        .unwrap()
        .to_vec()
        .unwrap();
    let (g, gv) = random_tensor(&mut rng, &[m, out], -1.0, 1.0);
    let (dx, dw, _) = liandan::ops::linear::linear_backward(&x, &w, &g).unwrap();
    for r in 0..m {
        for o in 0..out {
            let want: f64 = (0..k).map(|i| xv[r * k + i] * wv(o, i)).sum();
            let mag: f64 = (0..k).map(|i| (xv[r * k + i] * wv(o, i)).abs()).sum();
            let got = y[r * out + o] as f64;
            assert!(
                (got - want).abs() <= 1e-5 * mag,
                "y[{r}, {o}] = {got}, want {want}"
            );
        }
    }
    let dx = dx.to_vec().unwrap();
    for r in 0..m {
        for i in (0..k).step_by(37) {
            let want: f64 = (0..out).map(|o| gv[r * out + o] * wv(o, i)).sum();
            let mag: f64 = (0..out).map(|o| (gv[r * out + o] * wv(o, i)).abs()).sum();
            let got = dx[r * k + i] as f64;
            assert!(
                (got - want).abs() <= 1e-5 * mag,
                "dx[{r}, {i}] = {got}, want {want}"
            );
        }
    }
    let dw = dw.to_vec().unwrap();
    for o in (0..out).step_by(97).chain([out - 1]) {
        for i in (0..k).step_by(89).chain([k - 1]) {
            let want: f64 = (0..m).map(|r| gv[r * out + o] * xv[r * k + i]).sum();
            let got = dw[o * k + i] as f64;
            assert!(
                (got - want).abs() <= 1e-5 * want.abs().max(1.0),
                "dw[{o}, {i}] = {got}, want {want}"
            );
        }
    }
}

/// A convolution's weight gradient sums per-sample partials; those of a whole batch would
/// pass the binding here, so the batch is taken in fewer samples at a time. Same values
/// as on the default device (itself checked against f64 in conv.rs), to rounding.
#[test]
fn conv_weight_gradients_bound_their_per_sample_partials() {
    use liandan::ops::conv::{Conv2dParams, conv2d, conv2d_backward_weight};
    let p = Conv2dParams {
        padding: (1, 1),
        ..Conv2dParams::default()
    };
    let mut rng = Rng::new(21);
    // 4 samples × a 64×8×3×3 partial = 18,432 floats, past the 16,384 of a window.
    let x = random_values(&mut rng, 4 * 8 * 6 * 6, -1.0, 1.0);
    let w = random_values(&mut rng, 64 * 8 * 3 * 3, -1.0, 1.0);
    let run = |d: &'static liandan::Device| {
        let x = Tensor::from_slice(d, &x, &[4, 8, 6, 6]).unwrap();
        let w = Tensor::from_slice(d, &w, &[64, 8, 3, 3]).unwrap();
        let y = conv2d(&x, &w, None, &p).unwrap();
        let dw = conv2d_backward_weight(&x, &y, &[64, 8, 3, 3], &p).unwrap();
        dw.to_vec().unwrap()
    };
    let (small_dw, dw) = (run(small()), run(device()));
    for (i, (a, b)) in small_dw.iter().zip(&dw).enumerate() {
        assert!(
            (a - b).abs() <= 1e-4 * b.abs().max(1.0),
            "dw[{i}]: {a} vs {b}"
        );
    }
}
