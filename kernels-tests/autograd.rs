//! The tape: gradients of a small composite graph (conv → batch norm → ReLU6 → residual
//! add → global average pool → linear → cross-entropy) against central finite differences
//! of a plain f64 CPU forward; a value used twice accumulates; the dump lists every op.

use liandan::autograd::{RunningStats, Tape};
use liandan::ops::conv::Conv2dParams;
use liandan::{Error, Rng, Tensor};

use crate::common::*;

pub(crate) const N: usize = 2;
pub(crate) const C: usize = 3;
pub(crate) const H: usize = 5;
pub(crate) const W: usize = 4;
pub(crate) const CLASSES: usize = 4;
pub(crate) const TARGETS: [usize; N] = [1, 3];
pub(crate) const SMOOTHING: f64 = 0.1;
pub(crate) const EPS: f64 = 1e-5;

/// All inputs of the graph, flat, in f64.
#[derive(Clone)]
pub(crate) struct Values {
    pub(crate) x: Vec<f64>,      // [N, C, H, W]
    pub(crate) conv_w: Vec<f64>, // [C, C, 3, 3]
    pub(crate) conv_b: Vec<f64>, // [C]
    pub(crate) bn_w: Vec<f64>,   // [C]
    pub(crate) bn_b: Vec<f64>,   // [C]
    pub(crate) fc_w: Vec<f64>,   // [CLASSES, C]
    pub(crate) fc_b: Vec<f64>,   // [CLASSES]
}

impl Values {
    pub(crate) fn fields(&mut self) -> [&mut Vec<f64>; 7] {
        [
            &mut self.x,
            &mut self.conv_w,
            &mut self.conv_b,
            &mut self.bn_w,
            &mut self.bn_b,
            &mut self.fc_w,
            &mut self.fc_b,
        ]
    }
}

/// The graph's loss, computed plainly in f64 (PyTorch semantics, batch norm in training
/// mode with biased batch variance).
pub(crate) fn loss(v: &Values) -> f64 {
    let at = |n: usize, c: usize, h: usize, w: usize| ((n * C + c) * H + h) * W + w;
    // conv 3×3, padding 1
    let mut y = vec![0.0; N * C * H * W];
    for n in 0..N {
        for co in 0..C {
            for h in 0..H {
                for w in 0..W {
                    let mut s = v.conv_b[co];
                    for ci in 0..C {
                        for ky in 0..3 {
                            for kx in 0..3 {
                                let (ih, iw) =
                                    (h as isize + ky as isize - 1, w as isize + kx as isize - 1);
                                if ih >= 0 && iw >= 0 && (ih as usize) < H && (iw as usize) < W {
                                    s += v.x[at(n, ci, ih as usize, iw as usize)]
                                        * v.conv_w[((co * C + ci) * 3 + ky) * 3 + kx];
                                }
                            }
                        }
                    }
                    y[at(n, co, h, w)] = s;
                }
            }
        }
    }
    // batch norm (training statistics) → relu6 → + x
    let count = (N * H * W) as f64;
    for c in 0..C {
        let idx: Vec<usize> = (0..N)
            .flat_map(|n| (0..H * W).map(move |k| (n * C + c) * H * W + k))
            .collect();
        let mean = idx.iter().map(|&i| y[i]).sum::<f64>() / count;
        let var = idx.iter().map(|&i| (y[i] - mean).powi(2)).sum::<f64>() / count;
        for &i in &idx {
            let bn = (y[i] - mean) / (var + EPS).sqrt() * v.bn_w[c] + v.bn_b[c];
            y[i] = bn.clamp(0.0, 6.0) + v.x[i];
        }
    }
    // global average pool → linear → cross-entropy with label smoothing
    let mut total = 0.0;
    for n in 0..N {
        let pooled: Vec<f64> = (0..C)
            .map(|c| (0..H * W).map(|k| y[(n * C + c) * H * W + k]).sum::<f64>() / (H * W) as f64)
            .collect();
        let logits: Vec<f64> = (0..CLASSES)
            .map(|k| v.fc_b[k] + (0..C).map(|c| v.fc_w[k * C + c] * pooled[c]).sum::<f64>())
            .collect();
        let m = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + logits.iter().map(|l| (l - m).exp()).sum::<f64>().ln();
        let nll = lse - logits[TARGETS[n]];
        let smooth = logits.iter().map(|l| lse - l).sum::<f64>() / CLASSES as f64;
        total += (1.0 - SMOOTHING) * nll + SMOOTHING * smooth;
    }
    total / N as f64
}

pub(crate) fn tensor(v: &[f64], shape: &[usize]) -> Tensor {
    let f: Vec<f32> = v.iter().map(|&x| x as f32).collect();
    Tensor::from_slice(device(), &f, shape).unwrap()
}

#[test]
fn composite_graph_gradients_match_finite_differences() {
    let mut rng = Rng::new(61);
    let mut r = |n: usize, lo: f64, hi: f64| -> Vec<f64> {
        random_values(&mut rng, n, lo, hi)
            .iter()
            .map(|&x| x as f64)
            .collect()
    };
    let v = Values {
        x: r(N * C * H * W, -1.0, 1.0),
        conv_w: r(C * C * 9, -0.5, 0.5),
        conv_b: r(C, -0.5, 0.5),
        bn_w: r(C, 0.5, 1.5),
        bn_b: r(C, 0.5, 1.5), // keeps most ReLU6 inputs away from the kinks
        fc_w: r(CLASSES * C, -1.0, 1.0),
        fc_b: r(CLASSES, -0.5, 0.5),
    };
    let tape = Tape::new();
    let x = tape.input(tensor(&v.x, &[N, C, H, W]));
    let conv_w = tape.param("conv.weight", tensor(&v.conv_w, &[C, C, 3, 3]));
    let conv_b = tape.param("conv.bias", tensor(&v.conv_b, &[C]));
    let bn_w = tape.param("bn.weight", tensor(&v.bn_w, &[C]));
    let bn_b = tape.param("bn.bias", tensor(&v.bn_b, &[C]));
    let fc_w = tape.param("fc.weight", tensor(&v.fc_w, &[CLASSES, C]));
    let fc_b = tape.param("fc.bias", tensor(&v.fc_b, &[CLASSES]));
    let (zeros, ones) = (
        Tensor::zeros(device(), &[C]).unwrap(),
        Tensor::ones(device(), &[C]).unwrap(),
    );

    let y = tape
        .conv2d(
            &x,
            &conv_w,
            Some(&conv_b),
            &Conv2dParams::square(1, 1, 1, 1),
        )
        .unwrap();
    let running = RunningStats {
        mean: &zeros,
        var: &ones,
    };
    let (y, _, _) = tape
        .batch_norm_train(&y, Some(&bn_w), Some(&bn_b), running, 0.1, EPS as f32)
        .unwrap();
    let y = tape.relu6(&y).unwrap();
    let y = tape.add(&y, &x).unwrap(); // x is used twice: its gradient must accumulate
    let y = tape.global_avg_pool(&y).unwrap();
    let y = tape.reshape(&y, &[N, C]).unwrap();
    let logits = tape.linear(&y, &fc_w, Some(&fc_b)).unwrap();
    let l = tape
        .cross_entropy(&logits, &TARGETS, SMOOTHING as f32)
        .unwrap();
    assert!(
        (l.value().to_scalar().unwrap() as f64 - loss(&v)).abs() < 1e-5,
        "forward loss"
    );

    let grads = tape.backward(&l).unwrap();
    let named = grads.by_name().unwrap();
    let gpu: Vec<Vec<f32>> = vec![
        grads.get(&x).unwrap().to_vec().unwrap(),
        named["conv.weight"].to_vec().unwrap(),
        named["conv.bias"].to_vec().unwrap(),
        named["bn.weight"].to_vec().unwrap(),
        named["bn.bias"].to_vec().unwrap(),
        named["fc.weight"].to_vec().unwrap(),
        named["fc.bias"].to_vec().unwrap(),
    ];
    let names = [
        "x",
        "conv.weight",
        "conv.bias",
        "bn.weight",
        "bn.bias",
        "fc.weight",
        "fc.bias",
    ];
    let h = 1e-5;
    for (f, (got, name)) in gpu.iter().zip(names).enumerate() {
        let len = v.clone().fields()[f].len();
        assert_eq!(got.len(), len, "{name}");
        for (i, &tape_grad) in got.iter().enumerate() {
            let (mut up, mut down) = (v.clone(), v.clone());
            up.fields()[f][i] += h;
            down.fields()[f][i] -= h;
            let fd = (loss(&up) - loss(&down)) / (2.0 * h);
            let diff = (tape_grad as f64 - fd).abs();
            assert!(
                diff <= 2e-4 + 2e-3 * fd.abs(),
                "{name}[{i}]: tape {tape_grad} vs finite difference {fd}"
            );
        }
    }
    // The conv bias feeds batch norm, which removes any per-channel constant.
    assert!(
        gpu[2].iter().all(|g| g.abs() < 1e-4),
        "conv bias gradient {:?}",
        gpu[2]
    );

    let dump = tape.dump();
    for op in [
        "conv2d",
        "batch_norm",
        "relu6",
        "add",
        "global_avg_pool",
        "linear",
        "cross_entropy",
    ] {
        assert!(dump.contains(op), "dump lacks {op}:\n{dump}");
    }
}

#[test]
fn a_parameter_used_twice_sums_its_gradients() {
    // loss = cross_entropy(W·(W·x)): W appears in two ops.
    let tape = Tape::new();
    let w = tape.param(
        "w",
        Tensor::from_slice(device(), &[1.0, 2.0, -1.0, 0.5], &[2, 2]).unwrap(),
    );
    let x = tape.input(Tensor::from_slice(device(), &[0.3, -0.7], &[1, 2]).unwrap());
    let h = tape.linear(&x, &w, None).unwrap();
    let y = tape.linear(&h, &w, None).unwrap();
    let l = tape.cross_entropy(&y, &[0], 0.0).unwrap();
    let g = tape.backward(&l).unwrap().by_name().unwrap()["w"]
        .to_vec()
        .unwrap();
    // f64 reference: finite differences of the same computation.
    let f = |w: [f64; 4]| {
        let (x0, x1) = (0.3, -0.7);
        let h = [w[0] * x0 + w[1] * x1, w[2] * x0 + w[3] * x1];
        let y = [w[0] * h[0] + w[1] * h[1], w[2] * h[0] + w[3] * h[1]];
        let m = y[0].max(y[1]);
        m + ((y[0] - m).exp() + (y[1] - m).exp()).ln() - y[0]
    };
    let w0 = [1.0, 2.0, -1.0, 0.5];
    for i in 0..4 {
        let (mut up, mut down) = (w0, w0);
        up[i] += 1e-6;
        down[i] -= 1e-6;
        let fd = (f(up) - f(down)) / 2e-6;
        assert!(
            (g[i] as f64 - fd).abs() < 1e-4 * (1.0 + fd.abs()),
            "w[{i}]: {} vs {fd}",
            g[i]
        );
    }
}

#[test]
fn no_grad_records_nothing_and_backward_needs_a_recorded_scalar() {
    let tape = Tape::no_grad();
    let x = tape.input(Tensor::ones(device(), &[2, 3]).unwrap());
    let y = tape.relu(&x).unwrap();
    assert!(tape.is_empty());
    assert_eq!(y.value().to_vec().unwrap(), vec![1.0; 6]);
    assert!(matches!(tape.backward(&y), Err(Error::InvalidArgument(_))));
    let tape = Tape::new();
    let x = tape.input(Tensor::ones(device(), &[2, 3]).unwrap());
    let y = tape.relu(&x).unwrap();
    match tape.backward(&y) {
        Err(Error::InvalidArgument(msg)) => assert!(msg.contains("[2, 3]"), "{msg}"),
        other => panic!(
            "expected an error for a non-scalar loss, got {:?}",
            other.map(|_| ())
        ),
    }
}

#[test]
fn a_value_from_another_tape_is_refused() {
    // Tapes number their values; a value from tape A on tape B would otherwise name one of
    // B's nodes, and its gradient would go to the wrong one.
    let (a, b) = (Tape::new(), Tape::new());
    let xa = a.input(Tensor::ones(device(), &[2, 3]).unwrap());
    let xb = b.input(Tensor::ones(device(), &[2, 3]).unwrap());
    for result in [b.relu(&xa), b.add(&xb, &xa), b.reshape(&xa, &[6])] {
        match result {
            Err(Error::InvalidArgument(msg)) => assert!(msg.contains("another tape"), "{msg}"),
            other => panic!("expected an error, got {:?}", other.map(|_| ())),
        }
    }
    // Also on a no_grad tape, and for the loss handed to backward.
    assert!(Tape::no_grad().relu(&xa).is_err());
    let loss = a.reshape(&a.relu(&xa).unwrap(), &[6]).unwrap();
    let loss = a
        .linear(
            &loss,
            &a.input(Tensor::ones(device(), &[1, 6]).unwrap()),
            None,
        )
        .unwrap();
    let loss = a.reshape(&loss, &[1]).unwrap();
    assert!(b.backward(&loss).is_err());
    // Gradients of one tape know nothing of another's values.
    let grads = a.backward(&loss).unwrap();
    assert!(grads.get(&xa).is_some());
    assert!(grads.get(&xb).is_none());
}

/// A second graph for the remaining recorded ops: transposed conv → squeeze-excitation
/// (1×1 convs, ReLU, hard-sigmoid gate, per-channel mul) → hard-swish → SiLU → pool →
/// linear → cross-entropy, against finite differences of an f64 CPU forward.
mod second_graph {
    use liandan::Rng;
    use liandan::autograd::{Act, Tape};
    use liandan::ops::conv::{Conv2dParams, ConvTranspose2dParams};

    use super::tensor;
    use crate::common::*;

    const N: usize = 2;
    const CI: usize = 3; // input channels
    const HI: usize = 3; // input side
    const CO: usize = 4; // transposed-conv output channels
    const HO: usize = 6; // (3 - 1)·2 - 2·1 + 3 + 1
    const SQ: usize = 2; // squeeze channels
    const K: usize = 3; // classes
    const TARGETS: [usize; N] = [0, 2];

    fn sigmoid(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    /// Parameters flat: [x, wt, bt, fc1w, fc1b, fc2w, fc2b, lw, lb].
    fn loss(p: &[Vec<f64>]) -> f64 {
        let (x, wt, bt, f1w, f1b, f2w, f2b, lw, lb) = (
            &p[0], &p[1], &p[2], &p[3], &p[4], &p[5], &p[6], &p[7], &p[8],
        );
        // conv_transpose2d, stride 2, padding 1, output_padding 1, kernel 3
        let mut y = vec![0.0; N * CO * HO * HO];
        for n in 0..N {
            for co in 0..CO {
                for i in 0..HO * HO {
                    y[(n * CO + co) * HO * HO + i] = bt[co];
                }
            }
            for ci in 0..CI {
                for ih in 0..HI {
                    for iw in 0..HI {
                        for co in 0..CO {
                            for ky in 0..3 {
                                for kx in 0..3 {
                                    let (oh, ow) =
                                        ((ih * 2 + ky) as isize - 1, (iw * 2 + kx) as isize - 1);
                                    if oh >= 0
                                        && ow >= 0
                                        && (oh as usize) < HO
                                        && (ow as usize) < HO
                                    {
                                        y[((n * CO + co) * HO + oh as usize) * HO + ow as usize] +=
                                            x[((n * CI + ci) * HI + ih) * HI + iw]
                                                * wt[((ci * CO + co) * 3 + ky) * 3 + kx];
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        let mut total = 0.0;
        for n in 0..N {
            let plane = |c: usize| &y[(n * CO + c) * HO * HO..(n * CO + c + 1) * HO * HO];
            let mean: Vec<f64> = (0..CO)
                .map(|c| plane(c).iter().sum::<f64>() / (HO * HO) as f64)
                .collect();
            let s1: Vec<f64> = (0..SQ)
                .map(|j| {
                    (f1b[j] + (0..CO).map(|c| f1w[j * CO + c] * mean[c]).sum::<f64>()).max(0.0)
                })
                .collect();
            let gate: Vec<f64> = (0..CO)
                .map(|c| {
                    ((f2b[c] + (0..SQ).map(|j| f2w[c * SQ + j] * s1[j]).sum::<f64>() + 3.0)
                        .clamp(0.0, 6.0))
                        / 6.0
                })
                .collect();
            let pooled: Vec<f64> = (0..CO)
                .map(|c| {
                    plane(c)
                        .iter()
                        .map(|&v| {
                            let v = v * gate[c];
                            let hs = v * (v + 3.0).clamp(0.0, 6.0) / 6.0;
                            hs * sigmoid(hs)
                        })
                        .sum::<f64>()
                        / (HO * HO) as f64
                })
                .collect();
            let logits: Vec<f64> = (0..K)
                .map(|k| lb[k] + (0..CO).map(|c| lw[k * CO + c] * pooled[c]).sum::<f64>())
                .collect();
            let m = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = m + logits.iter().map(|l| (l - m).exp()).sum::<f64>().ln();
            total += lse - logits[TARGETS[n]];
        }
        total / N as f64
    }

    #[test]
    fn transposed_conv_squeeze_excite_and_smooth_activations_match_finite_differences() {
        let mut rng = Rng::new(62);
        let shapes: [Vec<usize>; 9] = [
            vec![N, CI, HI, HI],
            vec![CI, CO, 3, 3],
            vec![CO],
            vec![SQ, CO, 1, 1],
            vec![SQ],
            vec![CO, SQ, 1, 1],
            vec![CO],
            vec![K, CO],
            vec![K],
        ];
        let p: Vec<Vec<f64>> = shapes
            .iter()
            .map(|s| {
                random_values(&mut rng, s.iter().product(), -1.0, 1.0)
                    .iter()
                    .map(|&v| v as f64)
                    .collect()
            })
            .collect();
        let tape = Tape::new();
        let v: Vec<_> = p
            .iter()
            .zip(&shapes)
            .enumerate()
            .map(|(i, (vals, s))| tape.param(&format!("p{i}"), tensor(vals, s)))
            .collect();
        let tp = ConvTranspose2dParams {
            stride: (2, 2),
            padding: (1, 1),
            output_padding: (1, 1),
            ..Default::default()
        };
        let y = tape
            .conv_transpose2d(&v[0], &v[1], Some(&v[2]), &tp)
            .unwrap();
        let s = tape.global_avg_pool(&y).unwrap();
        let s = tape
            .conv2d(&s, &v[3], Some(&v[4]), &Conv2dParams::default())
            .unwrap();
        let s = tape.relu(&s).unwrap();
        let s = tape
            .conv2d(&s, &v[5], Some(&v[6]), &Conv2dParams::default())
            .unwrap();
        let s = tape.activation(&s, Act::HardSigmoid).unwrap();
        let y = tape.mul(&y, &s).unwrap();
        let y = tape.activation(&y, Act::HardSwish).unwrap();
        let y = tape.activation(&y, Act::Silu).unwrap();
        let y = tape.global_avg_pool(&y).unwrap();
        let y = tape.reshape(&y, &[N, CO]).unwrap();
        let logits = tape.linear(&y, &v[7], Some(&v[8])).unwrap();
        let l = tape.cross_entropy(&logits, &TARGETS, 0.0).unwrap();
        assert!(
            (l.value().to_scalar().unwrap() as f64 - loss(&p)).abs() < 1e-5,
            "forward loss"
        );
        let grads = tape.backward(&l).unwrap().by_name().unwrap();
        for (i, vals) in p.iter().enumerate() {
            let got = grads[&format!("p{i}")].to_vec().unwrap();
            for j in 0..vals.len() {
                let (mut up, mut down) = (p.clone(), p.clone());
                up[i][j] += 1e-5;
                down[i][j] -= 1e-5;
                let fd = (loss(&up) - loss(&down)) / 2e-5;
                let diff = (got[j] as f64 - fd).abs();
                assert!(
                    diff <= 2e-4 + 2e-3 * fd.abs(),
                    "p{i}[{j}]: tape {} vs finite difference {fd}",
                    got[j]
                );
            }
        }
    }
}

/// The tests above again on a device with the smallest loop budget, where every op takes
/// its split paths (segments, split-K, column ranges) on these small shapes.
mod at_the_tight_loop_budget {
    use crate::common::{tight_budget_device, with_device};

    #[test]
    fn composite_graph_gradients_match_finite_differences() {
        with_device(
            tight_budget_device(),
            super::composite_graph_gradients_match_finite_differences,
        );
    }
}
