//! Unary and binary elementwise ops against f64 references.

use liandan::ops::elementwise::{BinaryOp, UnaryOp, binary, leaky_relu_grad, unary};
use liandan::{Error, Rng, Tensor};

use crate::common::*;

fn relu6(x: f64) -> f64 {
    x.clamp(0.0, 6.0)
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// PyTorch's definition of each op, and the input range it is tested on.
fn reference(op: UnaryOp) -> (fn(f64) -> f64, f64, f64) {
    match op {
        UnaryOp::Neg => (|x| -x, -8.0, 8.0),
        UnaryOp::Exp => (f64::exp, -6.0, 6.0),
        UnaryOp::Log => (f64::ln, 0.01, 20.0),
        UnaryOp::Sqrt => (f64::sqrt, 0.0, 20.0),
        UnaryOp::Relu => (|x| x.max(0.0), -8.0, 8.0),
        UnaryOp::Relu6 => (relu6, -8.0, 8.0),
        UnaryOp::Sigmoid => (sigmoid, -12.0, 12.0),
        UnaryOp::Tanh => (f64::tanh, -12.0, 12.0),
        UnaryOp::HardSigmoid => (|x| relu6(x + 3.0) / 6.0, -8.0, 8.0),
        UnaryOp::HardSwish => (|x| x * relu6(x + 3.0) / 6.0, -8.0, 8.0),
        UnaryOp::Silu => (|x| x * sigmoid(x), -12.0, 12.0),
    }
}

const UNARY_OPS: [UnaryOp; 11] = [
    UnaryOp::Neg,
    UnaryOp::Exp,
    UnaryOp::Log,
    UnaryOp::Sqrt,
    UnaryOp::Relu,
    UnaryOp::Relu6,
    UnaryOp::Sigmoid,
    UnaryOp::Tanh,
    UnaryOp::HardSigmoid,
    UnaryOp::HardSwish,
    UnaryOp::Silu,
];

#[test]
fn unary_ops_match_reference_on_random_shapes() {
    let mut rng = Rng::new(11);
    for op in UNARY_OPS {
        let (f, lo, hi) = reference(op);
        for trial in 0..4 {
            let ndim = 1 + rng.below(4) as usize;
            let shape = random_shape(&mut rng, ndim, 20_000);
            let (x, xs) = random_tensor(&mut rng, &shape, lo, hi);
            let got = unary(&x, op).unwrap().to_vec().unwrap();
            let want: Vec<f64> = xs.iter().map(|&v| f(v)).collect();
            assert_close(
                &format!("{op:?} {shape:?} trial {trial}"),
                &got,
                &want,
                1e-5,
            );
        }
    }
}

#[test]
fn activation_edges_follow_pytorch() {
    // The kinks of relu6/hardsigmoid/hardswish and saturation of sigmoid/tanh/silu.
    let xs = [-100.0f32, -3.0, -1e-3, 0.0, 1e-3, 3.0, 6.0, 6.5, 100.0];
    let x = Tensor::from_slice(device(), &xs, &[xs.len()]).unwrap();
    for op in UNARY_OPS {
        if matches!(op, UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Exp) {
            continue;
        }
        let (f, _, _) = reference(op);
        let got = unary(&x, op).unwrap().to_vec().unwrap();
        let want: Vec<f64> = xs.iter().map(|&v| f(v as f64)).collect();
        assert_close(&format!("{op:?} edges"), &got, &want, 1e-5);
    }
}

#[test]
fn affine_scale_and_add_scalar() {
    let mut rng = Rng::new(12);
    let (x, xs) = random_tensor(&mut rng, &[7, 33], -5.0, 5.0);
    let got = x.affine(-2.5, 0.75).unwrap().to_vec().unwrap();
    let want: Vec<f64> = xs.iter().map(|v| -2.5 * v + 0.75).collect();
    assert_close("affine", &got, &want, 1e-5);
    let got = x
        .scale(3.0)
        .unwrap()
        .add_scalar(1.0)
        .unwrap()
        .to_vec()
        .unwrap();
    let want: Vec<f64> = xs.iter().map(|v| 3.0 * v + 1.0).collect();
    assert_close("scale+add_scalar", &got, &want, 1e-5);
    assert!(matches!(
        x.affine(f32::NAN, 0.0),
        Err(Error::InvalidArgument(_))
    ));
}

/// Reference broadcasting: the value of operand `shape`/`data` at output index `idx`.
fn at(data: &[f64], shape: &[usize], idx: &[usize]) -> f64 {
    let lead = idx.len() - shape.len();
    let st = strides(shape);
    let flat: usize = (0..shape.len())
        .map(|d| {
            if shape[d] == 1 {
                0
            } else {
                idx[lead + d] * st[d]
            }
        })
        .sum();
    data[flat]
}

fn apply(op: BinaryOp, a: f64, b: f64) -> f64 {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::ReluGrad => {
            if b > 0.0 {
                a
            } else {
                0.0
            }
        }
        BinaryOp::Relu6Grad => {
            if b > 0.0 && b < 6.0 {
                a
            } else {
                0.0
            }
        }
        // The derivatives, differentiated by hand from the forward definitions above;
        // `activation_gradients_match_finite_differences` checks them numerically.
        BinaryOp::SigmoidGrad => a * sigmoid(b) * (1.0 - sigmoid(b)),
        BinaryOp::HardSigmoidGrad => {
            if b > -3.0 && b < 3.0 {
                a / 6.0
            } else {
                0.0
            }
        }
        BinaryOp::HardSwishGrad => {
            if b < -3.0 {
                0.0
            } else if b > 3.0 {
                a
            } else {
                a * (2.0 * b + 3.0) / 6.0
            }
        }
        BinaryOp::SiluGrad => a * sigmoid(b) * (1.0 + b * (1.0 - sigmoid(b))),
        BinaryOp::TanhGrad => a * (1.0 - b.tanh().powi(2)),
    }
}

#[test]
fn activation_gradients_match_finite_differences() {
    let cases: [(BinaryOp, UnaryOp); 7] = [
        (BinaryOp::TanhGrad, UnaryOp::Tanh),
        (BinaryOp::ReluGrad, UnaryOp::Relu),
        (BinaryOp::Relu6Grad, UnaryOp::Relu6),
        (BinaryOp::SigmoidGrad, UnaryOp::Sigmoid),
        (BinaryOp::HardSigmoidGrad, UnaryOp::HardSigmoid),
        (BinaryOp::HardSwishGrad, UnaryOp::HardSwish),
        (BinaryOp::SiluGrad, UnaryOp::Silu),
    ];
    for (grad, act) in cases {
        let (f, _, _) = reference(act);
        // Points away from the kinks at -3, 0, 3 and 6.
        for x in [-7.3, -3.5, -2.2, -0.4, 0.3, 1.7, 2.9, 3.6, 5.1, 6.8] {
            let h = 1e-6;
            let fd = (f(x + h) - f(x - h)) / (2.0 * h);
            let want = apply(grad, 1.0, x);
            assert!(
                (fd - want).abs() < 1e-6,
                "{grad:?} at {x}: {want} vs finite difference {fd}"
            );
        }
    }
}

fn check_binary(rng: &mut Rng, op: BinaryOp, sa: &[usize], sb: &[usize], out: &[usize]) {
    let (a, av) = random_tensor(rng, sa, -4.0, 4.0);
    // Divisors kept away from zero so the quotient is well conditioned.
    let (b, bv) = if op == BinaryOp::Div {
        let n = sb.iter().product();
        let vals: Vec<f32> = (0..n)
            .map(|_| {
                let m = rng.uniform_in(0.5, 4.0);
                (if rng.below(2) == 0 { m } else { -m }) as f32
            })
            .collect();
        (
            Tensor::from_slice(device(), &vals, sb).unwrap(),
            vals.iter().map(|&v| v as f64).collect::<Vec<_>>(),
        )
    } else {
        // Activation inputs on both sides of relu6's kinks at 0 and 6.
        random_tensor(rng, sb, -8.0, 8.0)
    };
    let c = binary(&a, &b, op).unwrap();
    assert_eq!(c.shape(), out, "{op:?} {sa:?} {sb:?}");
    let got = c.to_vec().unwrap();
    let n: usize = out.iter().product();
    let want: Vec<f64> = (0..n)
        .map(|i| {
            let idx = unravel(i, out);
            apply(op, at(&av, sa, &idx), at(&bv, sb, &idx))
        })
        .collect();
    assert_close(&format!("{op:?} {sa:?} with {sb:?}"), &got, &want, 1e-5);
}

const BINARY_OPS: [BinaryOp; 11] = [
    BinaryOp::Add,
    BinaryOp::Sub,
    BinaryOp::Mul,
    BinaryOp::Div,
    BinaryOp::ReluGrad,
    BinaryOp::Relu6Grad,
    BinaryOp::SigmoidGrad,
    BinaryOp::HardSigmoidGrad,
    BinaryOp::HardSwishGrad,
    BinaryOp::SiluGrad,
    BinaryOp::TanhGrad,
];

#[test]
fn binary_ops_broadcast_the_cnn_cases() {
    let mut rng = Rng::new(13);
    for op in BINARY_OPS {
        for _ in 0..3 {
            let (n, c, h, w) = (
                odd_size(&mut rng).min(7),
                odd_size(&mut rng),
                odd_size(&mut rng),
                odd_size(&mut rng),
            );
            let full = [n, c, h, w];
            check_binary(&mut rng, op, &full, &full, &full); // same shape
            check_binary(&mut rng, op, &full, &[1], &full); // scalar
            check_binary(&mut rng, op, &full, &[], &full); // zero-dim scalar
            check_binary(&mut rng, op, &[1], &full, &full); // scalar on the left
            check_binary(&mut rng, op, &full, &[1, c, 1, 1], &full); // per channel
            check_binary(&mut rng, op, &full, &[c, 1, 1], &full); // per channel, 3-D
            check_binary(&mut rng, op, &full, &[n, c, 1, 1], &full); // SE-style gate
            check_binary(&mut rng, op, &[n, c, 1, 1], &full, &full);
            check_binary(&mut rng, op, &full, &[w], &full); // last axis (NumPy rule)
            check_binary(&mut rng, op, &[1], &[], &[1]); // one element each
            check_binary(&mut rng, op, &[1, 1, 1], &[1], &[1, 1, 1]);
        }
    }
}

#[test]
fn binary_ops_broadcast_random_shapes() {
    let mut rng = Rng::new(14);
    for trial in 0..60 {
        let op = BINARY_OPS[trial % BINARY_OPS.len()];
        let ndim = 1 + rng.below(5) as usize;
        let out = random_shape(&mut rng, ndim, 30_000);
        // Each operand keeps a random subset of dims (others become 1) and may drop
        // leading dims.
        let make = |rng: &mut Rng| -> Vec<usize> {
            let drop = rng.below(ndim as u64 + 1) as usize;
            out[drop..]
                .iter()
                .map(|&d| if rng.below(3) == 0 { 1 } else { d })
                .collect()
        };
        let (sa, sb) = (make(&mut rng), make(&mut rng));
        let expect: Vec<usize> = {
            // The broadcast of sa and sb, computed the slow way.
            let n = sa.len().max(sb.len());
            (0..n)
                .map(|i| {
                    let da = if i + sa.len() >= n {
                        sa[i + sa.len() - n]
                    } else {
                        1
                    };
                    let db = if i + sb.len() >= n {
                        sb[i + sb.len() - n]
                    } else {
                        1
                    };
                    da.max(db)
                })
                .collect()
        };
        check_binary(&mut rng, op, &sa, &sb, &expect);
    }
}

#[test]
fn large_broadcasts_take_the_run_per_invocation_path() {
    // Past 32,768 outputs a CPU adapter walks 16 outputs per invocation; the random
    // sweeps above mostly stay below that.
    let mut rng = Rng::new(16);
    check_binary(
        &mut rng,
        BinaryOp::Add,
        &[2, 64, 33, 17],
        &[1, 64, 1, 1],
        &[2, 64, 33, 17],
    );
    check_binary(
        &mut rng,
        BinaryOp::Mul,
        &[3, 7, 65, 33],
        &[3, 7, 1, 1],
        &[3, 7, 65, 33],
    );
    check_binary(&mut rng, BinaryOp::Div, &[40_001], &[40_001], &[40_001]);
}

#[test]
fn binary_ops_index_up_to_eight_unmergeable_dims() {
    // Alternating broadcast dims cannot merge, so all 8 dims reach the kernel (both vec4
    // halves of the shape and stride uniforms).
    let mut rng = Rng::new(15);
    let out = [2, 3, 2, 3, 2, 3, 2, 3];
    let sa = [2, 1, 2, 1, 2, 1, 2, 1];
    let sb = [1, 3, 1, 3, 1, 3, 1, 3];
    check_binary(&mut rng, BinaryOp::Sub, &sa, &sb, &out);
    check_binary(&mut rng, BinaryOp::Mul, &out, &sb, &out);
    // Nine unmergeable dims are more than the kernels index: a clear error.
    let a = Tensor::zeros(device(), &[2, 1, 2, 1, 2, 1, 2, 1, 2]).unwrap();
    let b = Tensor::zeros(device(), &[1, 2, 1, 2, 1, 2, 1, 2, 1]).unwrap();
    match a.add(&b) {
        Err(Error::Shape(msg)) => assert!(msg.contains("9 dimensions"), "{msg}"),
        other => panic!("expected a shape error, got {other:?}"),
    }
}

#[test]
fn mismatched_shapes_are_errors_naming_both() {
    let a = Tensor::zeros(device(), &[2, 3, 4]).unwrap();
    let b = Tensor::zeros(device(), &[2, 5, 4]).unwrap();
    match a.add(&b) {
        Err(Error::Shape(msg)) => assert!(
            msg.contains("[2, 3, 4]") && msg.contains("[2, 5, 4]"),
            "{msg}"
        ),
        other => panic!("expected a shape error, got {other:?}"),
    }
    let c = Tensor::zeros(device(), &[3]).unwrap();
    assert!(
        matches!(a.mul(&c), Err(Error::Shape(_))),
        "[3] does not broadcast to the last axis 4"
    );
}

#[test]
fn nan_and_infinities_follow_pytorch() {
    // What PyTorch 2.15 returns for [NaN, inf, -inf]: NaN stays NaN through every
    // activation (max and clamp in WGSL may drop it), and -inf · 0 in hardswish and silu
    // is NaN, as there.
    let x = Tensor::from_slice(
        device(),
        &[f32::NAN, f32::INFINITY, f32::NEG_INFINITY],
        &[3],
    )
    .unwrap();
    let (nan, inf) = (f32::NAN, f32::INFINITY);
    for (op, want) in [
        (UnaryOp::Relu, [nan, inf, 0.0]),
        (UnaryOp::Relu6, [nan, 6.0, 0.0]),
        (UnaryOp::Sigmoid, [nan, 1.0, 0.0]),
        (UnaryOp::Tanh, [nan, 1.0, -1.0]),
        (UnaryOp::HardSigmoid, [nan, 1.0, 0.0]),
        (UnaryOp::HardSwish, [nan, inf, nan]),
        (UnaryOp::Silu, [nan, inf, nan]),
        (UnaryOp::Neg, [nan, -inf, inf]),
        (UnaryOp::Exp, [nan, inf, 0.0]),
    ] {
        let got = unary(&x, op).unwrap().to_vec().unwrap();
        let same = got
            .iter()
            .zip(want)
            .all(|(g, w)| g.is_nan() && w.is_nan() || *g == w);
        assert!(same, "{op:?}: {got:?}, PyTorch gives {want:?}");
    }
}

#[test]
fn leaky_relu_and_its_gradient_match_reference() {
    // PyTorch: x where x > 0, slope · x elsewhere; the gradient takes the slope at 0.
    let mut rng = Rng::new(15);
    for slope in [0.2f32, 0.01, 1.5, 0.0] {
        let shape = random_shape(&mut rng, 3, 20_000);
        let (x, xs) = random_tensor(&mut rng, &shape, -4.0, 4.0);
        let slope64 = f64::from(slope);
        let leaky = |v: f64| if v > 0.0 { v } else { slope64 * v };
        let got = x.leaky_relu(slope).unwrap().to_vec().unwrap();
        let want: Vec<f64> = xs.iter().map(|&v| leaky(v)).collect();
        assert_close(&format!("leaky_relu {slope}"), &got, &want, 1e-6);
        let (g, gs) = random_tensor(&mut rng, &shape, -1.0, 1.0);
        let got = leaky_relu_grad(&g, &x, slope).unwrap().to_vec().unwrap();
        let want: Vec<f64> = gs
            .iter()
            .zip(&xs)
            .map(|(g, &v)| if v > 0.0 { *g } else { g * slope64 })
            .collect();
        assert_close(&format!("leaky_relu_grad {slope}"), &got, &want, 1e-6);
        // The gradient against finite differences, away from the kink.
        for v in [-2.5, -0.3, 0.4, 3.1] {
            let h = 1e-6;
            let fd = (leaky(v + h) - leaky(v - h)) / (2.0 * h);
            let at = Tensor::from_vec(device(), vec![v as f32], &[1]).unwrap();
            let one = Tensor::ones(device(), &[1]).unwrap();
            let grad = leaky_relu_grad(&one, &at, slope)
                .unwrap()
                .to_scalar()
                .unwrap();
            assert!((f64::from(grad) - fd).abs() < 1e-6, "{slope} at {v}");
        }
    }
    let x = Tensor::from_vec(device(), vec![f32::NAN, -1.0], &[2]).unwrap();
    let y = x.leaky_relu(0.1).unwrap().to_vec().unwrap();
    assert!(y[0].is_nan() && y[1] == -0.1);
    assert!(matches!(
        x.leaky_relu(f32::NAN),
        Err(Error::InvalidArgument(_))
    ));
    assert!(leaky_relu_grad(&x, &x, f32::INFINITY).is_err());
}
