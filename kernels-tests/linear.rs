//! The linear layer, forward and backward, against f64 references; the reference backward
//! is checked against central differences of the reference forward.

use liandan::ops::linear::{linear, linear_backward};
use liandan::{Rng, Tensor};

use crate::common::*;
use crate::errors::{Kind, expect_err};

/// Each result of the reference with its rounding-error magnitude (the same sum over
/// absolute values).
struct Checked {
    values: Vec<f64>,
    scale: Vec<f64>,
}

/// `y = x · Wᵀ + b` for `x` as `[m, k]` and `w` as `[o, k]`.
fn reference(x: &[f64], w: &[f64], b: Option<&[f64]>, (m, k, o): (usize, usize, usize)) -> Checked {
    let (mut values, mut scale) = (vec![0.0; m * o], vec![0.0; m * o]);
    for i in 0..m {
        for j in 0..o {
            let bias = b.map_or(0.0, |b| b[j]);
            values[i * o + j] = bias;
            scale[i * o + j] = bias.abs();
            for p in 0..k {
                values[i * o + j] += x[i * k + p] * w[j * k + p];
                scale[i * o + j] += (x[i * k + p] * w[j * k + p]).abs();
            }
        }
    }
    Checked { values, scale }
}

/// `(dx = g · W, dW = gᵀ · x, db = Σ g)` for `g` as `[m, o]`.
fn reference_backward(
    x: &[f64],
    w: &[f64],
    g: &[f64],
    (m, k, o): (usize, usize, usize),
) -> (Checked, Checked, Checked) {
    let zeros = |n| Checked {
        values: vec![0.0; n],
        scale: vec![0.0; n],
    };
    let (mut dx, mut dw, mut db) = (zeros(m * k), zeros(o * k), zeros(o));
    let add = |c: &mut Checked, at: usize, v: f64| {
        c.values[at] += v;
        c.scale[at] += v.abs();
    };
    for i in 0..m {
        for j in 0..o {
            let gv = g[i * o + j];
            add(&mut db, j, gv);
            for p in 0..k {
                add(&mut dx, i * k + p, gv * w[j * k + p]);
                add(&mut dw, j * k + p, gv * x[i * k + p]);
            }
        }
    }
    (dx, dw, db)
}

fn check(what: &str, got: &Tensor, want: &Checked, rtol: f64) {
    assert_close_scaled(
        what,
        &got.to_vec().unwrap(),
        &want.values,
        &want.scale,
        rtol,
    );
}

#[test]
fn linear_matches_reference_forward_and_backward() {
    let mut rng = Rng::new(111);
    for trial in 0..16 {
        let lead = random_shape(&mut rng, trial % 3, 200);
        let (k, o) = (odd_size(&mut rng), odd_size(&mut rng));
        let m: usize = lead.iter().product();
        let mut x_shape = lead.clone();
        x_shape.push(k);
        let has_bias = trial % 2 == 0;
        let what = format!("linear x {x_shape:?} weight [{o}, {k}] bias {has_bias}");
        let (x, xs) = random_tensor(&mut rng, &x_shape, -1.0, 1.0);
        let (w, ws) = random_tensor(&mut rng, &[o, k], -1.0, 1.0);
        let (b, bs) = random_tensor(&mut rng, &[o], -1.0, 1.0);
        let bias = has_bias.then_some((&b, bs.as_slice()));

        let y = linear(&x, &w, bias.map(|(b, _)| b)).unwrap();
        let mut y_shape = lead.clone();
        y_shape.push(o);
        assert_eq!(y.shape(), y_shape.as_slice(), "{what}");
        let want = reference(&xs, &ws, bias.map(|(_, v)| v), (m, k, o));
        check(&what, &y, &want, 1e-5);

        let (g, gs) = random_tensor(&mut rng, &y_shape, -1.0, 1.0);
        let (dx, dw, db) = linear_backward(&x, &w, &g).unwrap();
        assert_eq!(dx.shape(), x_shape.as_slice(), "{what}");
        assert_eq!((dw.shape(), db.shape()), (&[o, k][..], &[o][..]), "{what}");
        let (want_dx, want_dw, want_db) = reference_backward(&xs, &ws, &gs, (m, k, o));
        // dweight and dbias sum over the m flattened rows, up to 200 long.
        let rtol_rows = if m > 64 { 1e-4 } else { 1e-5 };
        check(&format!("{what} dx"), &dx, &want_dx, 1e-5);
        check(&format!("{what} dweight"), &dw, &want_dw, rtol_rows);
        check(&format!("{what} dbias"), &db, &want_db, rtol_rows);
    }
}

#[test]
fn reference_gradients_match_finite_differences() {
    let mut rng = Rng::new(112);
    let (m, k, o) = (3, 4, 5);
    let uniform = |rng: &mut Rng, n: usize| -> Vec<f64> {
        (0..n).map(|_| rng.uniform_in(-1.0, 1.0)).collect()
    };
    let (x, w, b, r) = (
        uniform(&mut rng, m * k),
        uniform(&mut rng, o * k),
        uniform(&mut rng, o),
        uniform(&mut rng, m * o),
    );
    // L = Σ y · r, so dL/dy = r.
    let loss = |x: &[f64], w: &[f64], b: &[f64]| -> f64 {
        let y = reference(x, w, Some(b), (m, k, o)).values;
        y.iter().zip(&r).map(|(y, r)| y * r).sum()
    };
    let (dx, dw, db) = reference_backward(&x, &w, &r, (m, k, o));
    let h = 1e-6;
    let central = |v: &[f64], i: usize, f: &dyn Fn(&[f64]) -> f64| -> f64 {
        let (mut plus, mut minus) = (v.to_vec(), v.to_vec());
        plus[i] += h;
        minus[i] -= h;
        (f(&plus) - f(&minus)) / (2.0 * h)
    };
    let close = |name: &str, i: usize, analytic: f64, numeric: f64| {
        assert!(
            (analytic - numeric).abs() <= 1e-7 * analytic.abs().max(1.0),
            "d{name}[{i}] is {analytic}, central difference {numeric}"
        );
    };
    for i in 0..m * k {
        close("x", i, dx.values[i], central(&x, i, &|x| loss(x, &w, &b)));
    }
    for i in 0..o * k {
        close(
            "weight",
            i,
            dw.values[i],
            central(&w, i, &|w| loss(&x, w, &b)),
        );
    }
    for i in 0..o {
        close(
            "bias",
            i,
            db.values[i],
            central(&b, i, &|b| loss(&x, &w, b)),
        );
    }
}

#[test]
fn an_empty_batch_gives_empty_outputs_and_zero_parameter_gradients() {
    let dev = device();
    let x = Tensor::zeros(dev, &[0, 5]).unwrap();
    let w = Tensor::ones(dev, &[3, 5]).unwrap();
    let b = Tensor::ones(dev, &[3]).unwrap();
    let y = linear(&x, &w, Some(&b)).unwrap();
    assert_eq!(y.shape(), &[0, 3]);
    let (dx, dw, db) = linear_backward(&x, &w, &y).unwrap();
    assert_eq!(dx.shape(), &[0, 5]);
    assert_eq!(dw.to_vec().unwrap(), vec![0.0; 15]);
    assert_eq!(db.to_vec().unwrap(), vec![0.0; 3]);
}

#[test]
fn bad_arguments_are_errors_naming_the_values() {
    let dev = device();
    let t = |shape: &[usize]| Tensor::zeros(dev, shape).unwrap();
    let (x, w) = (t(&[2, 3, 4]), t(&[5, 4]));
    let scalar = Tensor::from_vec(dev, vec![1.0], &[]).unwrap();
    let cases: Vec<(&str, liandan::Result<()>, Kind, &[&str])> = vec![
        (
            "in features",
            linear(&x, &t(&[5, 3]), None).map(|_| ()),
            Kind::Shape,
            &["weight", "[5, 3]", "[2, 3, 4]", "[out, 4]"],
        ),
        (
            "1-D weight",
            linear(&x, &t(&[4]), None).map(|_| ()),
            Kind::Shape,
            &["weight", "[4]"],
        ),
        (
            "bias",
            linear(&x, &w, Some(&t(&[4]))).map(|_| ()),
            Kind::Shape,
            &["bias", "[4]", "[5]"],
        ),
        (
            "scalar x",
            linear(&scalar, &w, None).map(|_| ()),
            Kind::Shape,
            &["at least 1 dim", "[]"],
        ),
        (
            "backward grad_y",
            linear_backward(&x, &w, &t(&[2, 3, 4])).map(|_| ()),
            Kind::Shape,
            &["grad_y", "[2, 3, 4]", "[2, 3, 5]"],
        ),
        (
            "backward weight",
            linear_backward(&x, &t(&[5, 5]), &t(&[2, 3, 5])).map(|_| ()),
            Kind::Shape,
            &["weight", "[5, 5]"],
        ),
    ];
    for (what, result, kind, needles) in cases {
        expect_err(what, result, kind, needles);
    }
}
