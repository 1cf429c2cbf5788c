//! Convolutions against f64 references: forward, input gradient, weight gradient and bias
//! gradient of every form (standard, grouped, depthwise, pointwise, dilated, transposed)
//! on random configurations; the references' gradients against finite differences; and
//! the argument errors.

use liandan::ops::conv::*;
use liandan::{Error, Rng, Tensor};

use crate::common::*;

/// A convolution's sizes in the conv2d sense (weight [c_out, c_in/groups, kh, kw]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geo {
    pub(crate) n: usize,
    pub(crate) c_in: usize,
    pub(crate) h: usize,
    pub(crate) w: usize,
    pub(crate) c_out: usize,
    pub(crate) ho: usize,
    pub(crate) wo: usize,
    pub(crate) kh: usize,
    pub(crate) kw: usize,
    pub(crate) s: (usize, usize),
    pub(crate) p: (usize, usize),
    pub(crate) d: (usize, usize),
    pub(crate) g: usize,
}

impl Geo {
    pub(crate) fn input(&self) -> [usize; 4] {
        [self.n, self.c_in, self.h, self.w]
    }
    pub(crate) fn output(&self) -> [usize; 4] {
        [self.n, self.c_out, self.ho, self.wo]
    }
    pub(crate) fn weight(&self) -> [usize; 4] {
        [self.c_out, self.c_in / self.g, self.kh, self.kw]
    }
    pub(crate) fn params(&self) -> Conv2dParams {
        Conv2dParams {
            stride: self.s,
            padding: self.p,
            dilation: self.d,
            groups: self.g,
        }
    }

    /// Calls `f(output index, input index, weight index)` for every multiply-add of the
    /// convolution, straight from PyTorch's definition.
    fn for_each_mac(&self, mut f: impl FnMut(usize, usize, usize)) {
        let (cin_g, cout_g) = (self.c_in / self.g, self.c_out / self.g);
        for n in 0..self.n {
            for co in 0..self.c_out {
                let grp = co / cout_g;
                for oh in 0..self.ho {
                    for ow in 0..self.wo {
                        let out = ((n * self.c_out + co) * self.ho + oh) * self.wo + ow;
                        for cl in 0..cin_g {
                            let ci = grp * cin_g + cl;
                            for ky in 0..self.kh {
                                let ih =
                                    (oh * self.s.0 + ky * self.d.0) as isize - self.p.0 as isize;
                                if ih < 0 || ih >= self.h as isize {
                                    continue;
                                }
                                for kx in 0..self.kw {
                                    let iw = (ow * self.s.1 + kx * self.d.1) as isize
                                        - self.p.1 as isize;
                                    if iw < 0 || iw >= self.w as isize {
                                        continue;
                                    }
                                    let inp = ((n * self.c_in + ci) * self.h + ih as usize)
                                        * self.w
                                        + iw as usize;
                                    let tap = ((co * cin_g + cl) * self.kh + ky) * self.kw + kx;
                                    f(out, inp, tap);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Output `o` of the forward alone, and its rounding-error magnitude (Σ|terms| + 1).
    fn output_at(&self, x: &[f64], wt: &[f64], o: usize) -> (f64, f64) {
        let (cin_g, cout_g) = (self.c_in / self.g, self.c_out / self.g);
        let ow = o % self.wo;
        let oh = o / self.wo % self.ho;
        let co = o / (self.wo * self.ho) % self.c_out;
        let n = o / (self.wo * self.ho * self.c_out);
        let (mut sum, mut mag) = (0.0, 1.0);
        for cl in 0..cin_g {
            let ci = co / cout_g * cin_g + cl;
            for ky in 0..self.kh {
                for kx in 0..self.kw {
                    let ih = (oh * self.s.0 + ky * self.d.0) as isize - self.p.0 as isize;
                    let iw = (ow * self.s.1 + kx * self.d.1) as isize - self.p.1 as isize;
                    if ih < 0 || iw < 0 || ih >= self.h as isize || iw >= self.w as isize {
                        continue;
                    }
                    let i = ((n * self.c_in + ci) * self.h + ih as usize) * self.w + iw as usize;
                    let t = ((co * cin_g + cl) * self.kh + ky) * self.kw + kx;
                    sum += x[i] * wt[t];
                    mag += (x[i] * wt[t]).abs();
                }
            }
        }
        (sum, mag)
    }

    pub(crate) fn forward(&self, x: &[f64], wt: &[f64]) -> Vec<f64> {
        let mut y = vec![0.0; self.output().iter().product()];
        self.for_each_mac(|o, i, t| y[o] += x[i] * wt[t]);
        y
    }
    pub(crate) fn input_grad(&self, dy: &[f64], wt: &[f64]) -> Vec<f64> {
        let mut dx = vec![0.0; self.input().iter().product()];
        self.for_each_mac(|o, i, t| dx[i] += dy[o] * wt[t]);
        dx
    }
    pub(crate) fn weight_grad(&self, x: &[f64], dy: &[f64]) -> Vec<f64> {
        let mut dw = vec![0.0; self.weight().iter().product()];
        self.for_each_mac(|o, i, t| dw[t] += dy[o] * x[i]);
        dw
    }
}

pub(crate) fn abs(v: &[f64]) -> Vec<f64> {
    v.iter().map(|x| x.abs()).collect()
}

/// The kinds of convolution the sweeps draw.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Form {
    Standard,
    Grouped,
    Depthwise,
    Pointwise,
    Dilated,
    Transposed,
}

/// A random valid configuration of `form` (for Transposed: the convolution it transposes,
/// plus the output padding used).
fn random_geo(rng: &mut Rng, form: Form) -> (Geo, (usize, usize)) {
    let pick = |rng: &mut Rng, v: &[usize]| v[rng.below(v.len() as u64) as usize];
    loop {
        let n = 1 + rng.below(3) as usize;
        let (mut c_in, mut c_out, mut g) =
            (pick(rng, &[1, 2, 3, 5, 8]), pick(rng, &[1, 2, 3, 4, 7]), 1);
        let mut k = (pick(rng, &[1, 2, 3, 5, 7]), pick(rng, &[1, 2, 3, 5]));
        let mut s = (1 + rng.below(3) as usize, 1 + rng.below(3) as usize);
        let mut p = (rng.below(4) as usize, rng.below(4) as usize);
        let mut d = (1, 1);
        match form {
            Form::Standard => {}
            Form::Grouped => {
                g = pick(rng, &[2, 4]);
                c_in = g * (1 + rng.below(3) as usize);
                c_out = g * (1 + rng.below(3) as usize);
            }
            Form::Depthwise => {
                c_in = pick(rng, &[1, 2, 3, 5, 8]);
                g = c_in;
                c_out = c_in * pick(rng, &[1, 1, 2]);
                // The direct kernels compile one pipeline per kernel shape and multiplier
                // (a second or so each on lavapipe), so the sweep draws from a few shapes,
                // square and not; dilation sends some to the generic depthwise kernels.
                k = [(1, 1), (3, 3), (5, 5), (2, 3), (7, 1)][rng.below(5) as usize];
                if rng.below(4) == 0 {
                    d = (2, 1 + rng.below(2) as usize);
                }
            }
            Form::Pointwise => {
                k = (1, 1);
                p = (0, 0);
                if rng.below(3) != 0 {
                    s = (1, 1);
                }
            }
            Form::Dilated => {
                d = (2 + rng.below(2) as usize, 1 + rng.below(3) as usize);
                k.0 = k.0.max(2);
            }
            Form::Transposed => {
                g = pick(rng, &[1, 1, 2]);
                c_in *= g;
                c_out *= g;
                d = (1 + rng.below(2) as usize, 1 + rng.below(2) as usize);
            }
        }
        let h = 1 + rng.below(17) as usize;
        let w = 1 + rng.below(17) as usize;
        let span = (d.0 * (k.0 - 1) + 1, d.1 * (k.1 - 1) + 1);
        if span.0 > h + 2 * p.0 || span.1 > w + 2 * p.1 {
            continue;
        }
        let ho = (h + 2 * p.0 - span.0) / s.0 + 1;
        let wo = (w + 2 * p.1 - span.1) / s.1 + 1;
        let geo = Geo {
            n,
            c_in,
            h,
            w,
            c_out,
            ho,
            wo,
            kh: k.0,
            kw: k.1,
            s,
            p,
            d,
            g,
        };
        if form != Form::Transposed {
            return (geo, (0, 0));
        }
        // A transposed conv's output size is (ho - 1)·s - 2p + d(k - 1) + op + 1; choose op
        // so that it is the h above (op = leftover rows the strided conv skipped).
        let op = ((h + 2 * p.0 - span.0) % s.0, (w + 2 * p.1 - span.1) % s.1);
        if (op.0 >= s.0 && op.0 >= d.0) || (op.1 >= s.1 && op.1 >= d.1) {
            continue;
        }
        return (geo, op);
    }
}

pub(crate) fn to_tensor(v: &[f64], shape: &[usize]) -> Tensor {
    let f: Vec<f32> = v.iter().map(|&x| x as f32).collect();
    Tensor::from_slice(device(), &f, shape).unwrap()
}

fn values(rng: &mut Rng, shape: &[usize]) -> Vec<f64> {
    random_values(rng, shape.iter().product(), -1.0, 1.0)
        .iter()
        .map(|&v| v as f64)
        .collect()
}

/// Runs one configuration of `form` through every GPU entry point and compares each to
/// the reference.
fn check(rng: &mut Rng, form: Form) {
    let (geo, op) = random_geo(rng, form);
    check_geo(rng, form, geo, op);
}

/// Runs `geo` (for Transposed: with output padding `op`) through every GPU entry point
/// and compares each to the reference.
fn check_geo(rng: &mut Rng, form: Form, geo: Geo, op: (usize, usize)) {
    let (xv, wv) = (values(rng, &geo.input()), values(rng, &geo.weight()));
    let dyv = values(rng, &geo.output());
    let what = |part: &str| format!("{form:?} {part} {geo:?} op {op:?}");
    let rtol = 1e-4;
    if form == Form::Transposed {
        // Transposed: input has the conv's output shape, output the conv's input shape.
        let p = ConvTranspose2dParams {
            stride: geo.s,
            padding: geo.p,
            output_padding: op,
            dilation: geo.d,
            groups: geo.g,
        };
        let bias = values(rng, &[geo.c_in]);
        let (x, w, b) = (
            to_tensor(&dyv, &geo.output()),
            to_tensor(&wv, &geo.weight()),
            to_tensor(&bias, &[geo.c_in]),
        );
        let y = conv_transpose2d(&x, &w, Some(&b), &p).unwrap();
        assert_eq!(y.shape(), &geo.input(), "{}", what("output shape"));
        let mut want = geo.input_grad(&dyv, &wv);
        let plane = geo.h * geo.w;
        for (i, v) in want.iter_mut().enumerate() {
            *v += bias[(i / plane) % geo.c_in];
        }
        let mag = geo.input_grad(&abs(&dyv), &abs(&wv));
        assert_close_scaled(&what("forward"), &y.to_vec().unwrap(), &want, &mag, rtol);
        // Gradients, with the transposed conv's output gradient of the conv-input shape.
        let gv = values(rng, &geo.input());
        let gy = to_tensor(&gv, &geo.input());
        let dx = conv_transpose2d_backward_input(&gy, &w, &geo.output(), &p).unwrap();
        let want = geo.forward(&gv, &wv);
        assert_close_scaled(
            &what("input grad"),
            &dx.to_vec().unwrap(),
            &want,
            &geo.forward(&abs(&gv), &abs(&wv)),
            rtol,
        );
        let dw = conv_transpose2d_backward_weight(&x, &gy, &geo.weight(), &p).unwrap();
        let want = geo.weight_grad(&gv, &dyv);
        assert_close_scaled(
            &what("weight grad"),
            &dw.to_vec().unwrap(),
            &want,
            &geo.weight_grad(&abs(&gv), &abs(&dyv)),
            rtol,
        );
        return;
    }
    let p = geo.params();
    let bias = values(rng, &[geo.c_out]);
    let (x, w, b) = (
        to_tensor(&xv, &geo.input()),
        to_tensor(&wv, &geo.weight()),
        to_tensor(&bias, &[geo.c_out]),
    );
    let y = conv2d(&x, &w, Some(&b), &p).unwrap();
    assert_eq!(y.shape(), &geo.output(), "{}", what("output shape"));
    let mut want = geo.forward(&xv, &wv);
    let plane = geo.ho * geo.wo;
    for (i, v) in want.iter_mut().enumerate() {
        *v += bias[(i / plane) % geo.c_out];
    }
    let mut mag = geo.forward(&abs(&xv), &abs(&wv));
    mag.iter_mut().for_each(|m| *m += 1.0);
    assert_close_scaled(&what("forward"), &y.to_vec().unwrap(), &want, &mag, rtol);

    let dy = to_tensor(&dyv, &geo.output());
    let dx = conv2d_backward_input(&dy, &w, &geo.input(), &p).unwrap();
    let want = geo.input_grad(&dyv, &wv);
    assert_close_scaled(
        &what("input grad"),
        &dx.to_vec().unwrap(),
        &want,
        &geo.input_grad(&abs(&dyv), &abs(&wv)),
        rtol,
    );
    let dw = conv2d_backward_weight(&x, &dy, &geo.weight(), &p).unwrap();
    let want = geo.weight_grad(&xv, &dyv);
    assert_close_scaled(
        &what("weight grad"),
        &dw.to_vec().unwrap(),
        &want,
        &geo.weight_grad(&abs(&xv), &abs(&dyv)),
        rtol,
    );
    let db = conv_backward_bias(&dy).unwrap();
    let mut want = vec![0.0; geo.c_out];
    let mut mag = vec![0.0; geo.c_out];
    for (i, v) in dyv.iter().enumerate() {
        want[(i / plane) % geo.c_out] += v;
        mag[(i / plane) % geo.c_out] += v.abs();
    }
    assert_close_scaled(&what("bias grad"), &db.to_vec().unwrap(), &want, &mag, rtol);
}

fn sweep(form: Form, seed: u64) {
    let mut rng = Rng::new(seed);
    for _ in 0..200 {
        check(&mut rng, form);
    }
}

#[test]
fn standard_conv_sweep() {
    sweep(Form::Standard, 51);
}
#[test]
fn grouped_conv_sweep() {
    sweep(Form::Grouped, 52);
}
#[test]
fn depthwise_conv_sweep() {
    sweep(Form::Depthwise, 53);
}
#[test]
fn pointwise_conv_sweep() {
    sweep(Form::Pointwise, 54);
}
/// Pointwise convolutions as the 8-wide subgroup kernels read them in place from NCHW:
/// planes of a multiple of 8 pixels (the batch's planes as one product's columns, and
/// as one product's K for the weight gradient), of a multiple of 4 only (per sample),
/// and odd planes (packed), with input channels not a multiple of 4. At the tight budget
/// the last two split K: 200 input channels (the in-place product per sample, in
/// slices), and 4 samples of 256 pixels (the weight gradient's K over planes, in slices).
#[test]
fn pointwise_convs_over_whole_planes() {
    let mut rng = Rng::new(58);
    for (n, c_in, c_out, h, w) in [
        (3, 5, 7, 4, 4),
        (2, 6, 9, 8, 2),
        (5, 3, 16, 4, 6),
        (2, 7, 3, 3, 4),
        (2, 5, 4, 5, 5),
        (1, 33, 10, 16, 16),
        (2, 200, 9, 4, 4),
        (4, 6, 5, 16, 16),
    ] {
        let geo = Geo {
            n,
            c_in,
            h,
            w,
            c_out,
            ho: h,
            wo: w,
            kh: 1,
            kw: 1,
            s: (1, 1),
            p: (0, 0),
            d: (1, 1),
            g: 1,
        };
        check_geo(&mut rng, Form::Pointwise, geo, (0, 0));
    }
}
/// A depthwise convolution (one channel per group) of `n × c × h × w`, kernel `k`, stride
/// `s` and padding `p`, each (height, width).
fn depthwise_geo(
    n: usize,
    c: usize,
    (h, w): (usize, usize),
    k: (usize, usize),
    s: (usize, usize),
    p: (usize, usize),
) -> Geo {
    Geo {
        n,
        c_in: c,
        h,
        w,
        c_out: c,
        ho: (h + 2 * p.0 - k.0) / s.0 + 1,
        wo: (w + 2 * p.1 - k.1) / s.1 + 1,
        kh: k.0,
        kw: k.1,
        s,
        p,
        d: (1, 1),
        g: c,
    }
}

/// Strided depthwise convolutions, whose input gradient spreads dy out to stride 1 and
/// slides the flipped kernel over it: strides 2 and 3, on each axis alone, and sizes
/// that leave input rows and columns past the last window (they get no gradient).
#[test]
fn strided_depthwise_input_gradients() {
    let mut rng = Rng::new(59);
    for (n, c, (h, w), k, s, p) in [
        (2, 6, (9, 8), (3, 3), (2, 2), (1, 1)),
        (1, 4, (10, 11), (5, 5), (3, 3), (2, 2)),
        (2, 3, (7, 9), (3, 3), (2, 1), (0, 1)),
        (3, 2, (8, 6), (3, 5), (1, 2), (2, 0)),
    ] {
        let geo = depthwise_geo(n, c, (h, w), k, s, p);
        check_geo(&mut rng, Form::Depthwise, geo, (0, 0));
    }
}

/// Depthwise convolutions on planes a multiple of 4 wide, which run on rows of vec4s:
/// column strides 1 and 2 (whose input gradient gathers from dy in pairs of chunks, an
/// odd count included), row strides 1 to 3, kernels from 1×1 to 7×7 and 5×1, padding
/// from 0 to the strips' edge (4 columns), long rows of few chunks and short ones of
/// one; and input gradients whose dy is not whole chunks wide (spread out to them).
#[test]
fn depthwise_rows_of_vec4s() {
    let mut rng = Rng::new(60);
    for (n, c, (h, w), k, s, p) in [
        (2, 3, (8, 8), (3, 3), (1, 1), (1, 1)),
        (2, 3, (8, 16), (3, 3), (2, 2), (1, 1)),
        (1, 3, (5, 8), (3, 3), (1, 2), (1, 1)),
        (1, 4, (12, 16), (5, 5), (1, 1), (2, 2)),
        (1, 2, (10, 16), (5, 5), (2, 2), (2, 2)),
        (1, 2, (9, 12), (7, 7), (1, 1), (3, 3)),
        (1, 2, (9, 16), (7, 7), (2, 2), (3, 3)),
        (2, 3, (7, 8), (3, 1), (3, 1), (0, 0)),
        (1, 2, (6, 8), (2, 3), (1, 1), (0, 1)),
        (1, 5, (4, 4), (1, 1), (1, 1), (0, 0)),
        (1, 2, (6, 8), (1, 5), (1, 1), (0, 4)),
        (1, 2, (3, 4), (3, 3), (1, 1), (1, 1)),
        (1, 2, (6, 12), (3, 7), (1, 2), (1, 1)), // 3 dx chunks: the last pair half
        (2, 2, (7, 16), (3, 3), (3, 2), (1, 1)),
        (1, 3, (4, 8), (1, 1), (2, 2), (0, 0)),
        (1, 2, (6, 16), (3, 4), (2, 2), (1, 1)),
        (1, 2, (6, 8), (3, 3), (1, 1), (0, 0)), // dy 6 wide: spread to 8
        (1, 2, (5, 12), (3, 3), (2, 1), (0, 0)), // dy 10 wide: spread to 12
    ] {
        let geo = depthwise_geo(n, c, (h, w), k, s, p);
        check_geo(&mut rng, Form::Depthwise, geo, (0, 0));
    }
}

#[test]
fn dilated_conv_sweep() {
    sweep(Form::Dilated, 55);
}
#[test]
fn transposed_conv_sweep() {
    sweep(Form::Transposed, 56);
}

/// The references' gradients equal central finite differences of the reference forward
/// (for the loss L = Σ y·r), so the GPU gradients above are checked against true ones.
#[test]
fn reference_gradients_match_finite_differences() {
    let mut rng = Rng::new(57);
    for form in [
        Form::Standard,
        Form::Grouped,
        Form::Depthwise,
        Form::Dilated,
        Form::Transposed,
    ] {
        for _ in 0..4 {
            let (geo, _) = random_geo(&mut rng, form);
            let (xv, wv, r) = (
                values(&mut rng, &geo.input()),
                values(&mut rng, &geo.weight()),
                values(&mut rng, &geo.output()),
            );
            let loss = |x: &[f64], w: &[f64]| -> f64 {
                geo.forward(x, w).iter().zip(&r).map(|(a, b)| a * b).sum()
            };
            let (gx, gw) = (geo.input_grad(&r, &wv), geo.weight_grad(&xv, &r));
            let h = 1e-3;
            for i in 0..xv.len() {
                let (mut up, mut down) = (xv.clone(), xv.clone());
                up[i] += h;
                down[i] -= h;
                let fd = (loss(&up, &wv) - loss(&down, &wv)) / (2.0 * h);
                assert!(
                    (fd - gx[i]).abs() < 1e-6 * (1.0 + fd.abs()),
                    "{form:?} dx[{i}]: fd {fd} vs {}",
                    gx[i]
                );
            }
            for i in 0..wv.len() {
                let (mut up, mut down) = (wv.clone(), wv.clone());
                up[i] += h;
                down[i] -= h;
                let fd = (loss(&xv, &up) - loss(&xv, &down)) / (2.0 * h);
                assert!(
                    (fd - gw[i]).abs() < 1e-6 * (1.0 + fd.abs()),
                    "{form:?} dw[{i}]: fd {fd} vs {}",
                    gw[i]
                );
            }
        }
    }
}

#[test]
fn bigger_batches_cross_the_scratch_chunks() {
    // The GEMM path works through the batch in chunks of at most 32 MiB of im2col scratch.
    let mut rng = Rng::new(58);
    // 9 samples of 128 channels × 9 taps × 32×32 pixels: two chunks for the explicit
    // forward (24 output channels) and the weight gradient.
    let geo = Geo {
        n: 9,
        c_in: 128,
        h: 32,
        w: 32,
        c_out: 24,
        ho: 32,
        wo: 32,
        kh: 3,
        kw: 3,
        s: (1, 1),
        p: (1, 1),
        d: (1, 1),
        g: 1,
    };
    check_geo(&mut rng, Form::Standard, geo, (0, 0));
    // Stride 2, 1024 channels: the col2im input gradient and the weight gradient chunk.
    let geo = Geo {
        n: 16,
        c_in: 1024,
        h: 16,
        w: 16,
        c_out: 4,
        ho: 8,
        wo: 8,
        kh: 3,
        kw: 3,
        s: (2, 2),
        p: (1, 1),
        d: (1, 1),
        g: 1,
    };
    check_geo(&mut rng, Form::Standard, geo, (0, 0));
}

#[test]
fn depthwise_multipliers_past_the_register_budget_split_into_blocks() {
    // 3×3 with multiplier 8 and 7×7 with multiplier 2 have more weights per group than the
    // direct kernel holds, so each output channel becomes its own block.
    let mut rng = Rng::new(59);
    for (c, mult, k, s) in [(3, 8, 3, 1), (2, 2, 7, 1), (3, 8, 3, 2), (5, 3, 3, 1)] {
        let (h, w) = (9, 11);
        let p = k / 2;
        let (ho, wo) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
        let geo = Geo {
            n: 2,
            c_in: c,
            h,
            w,
            c_out: c * mult,
            ho,
            wo,
            kh: k,
            kw: k,
            s: (s, s),
            p: (p, p),
            d: (1, 1),
            g: c,
        };
        check_geo(&mut rng, Form::Depthwise, geo, (0, 0));
    }
}

#[test]
fn transposed_output_padding_below_dilation() {
    // PyTorch allows output_padding ≥ stride when it is below the dilation.
    let mut rng = Rng::new(60);
    let geo = Geo {
        n: 2,
        c_in: 3,
        h: 8,
        w: 9,
        c_out: 4,
        ho: 3,
        wo: 4,
        kh: 3,
        kw: 3,
        s: (1, 1),
        p: (0, 0),
        d: (2, 2),
        g: 1,
    };
    check_geo(&mut rng, Form::Transposed, geo, (1, 1));
}

#[test]
fn bad_arguments_are_errors_naming_the_values() {
    let d = device();
    let t = |shape: &[usize]| Tensor::zeros(d, shape).unwrap();
    let p = Conv2dParams::default();
    let cases: Vec<(Result<Tensor, Error>, &str)> = vec![
        (
            conv2d(&t(&[1, 3, 8, 8]), &t(&[4, 2, 3, 3]), None, &p),
            "[4, 2, 3, 3]",
        ),
        (
            conv2d(&t(&[3, 8, 8]), &t(&[4, 3, 3, 3]), None, &p),
            "[3, 8, 8]",
        ),
        (
            conv2d(
                &t(&[1, 3, 0, 8]),
                &t(&[4, 3, 1, 1]),
                None,
                &Conv2dParams::square(1, 1, 1, 1),
            ),
            "non-zero",
        ),
        (
            conv2d(
                &t(&[1, 3, 8, 8]),
                &t(&[4, 3, 3, 3]),
                None,
                &Conv2dParams::square(1, 0, 1, 2),
            ),
            "groups 2",
        ),
        (
            conv2d(&t(&[1, 3, 2, 2]), &t(&[4, 3, 5, 5]), None, &p),
            "kernel 5",
        ),
        (
            conv2d(
                &t(&[1, 3, 8, 8]),
                &t(&[4, 3, 3, 3]),
                None,
                &Conv2dParams::square(0, 0, 1, 1),
            ),
            "stride",
        ),
        (
            conv2d(&t(&[1, 3, 8, 8]), &t(&[4, 3, 3, 3]), Some(&t(&[5])), &p),
            "bias",
        ),
        (
            conv2d_backward_input(&t(&[1, 4, 5, 5]), &t(&[4, 3, 3, 3]), &[1, 3, 8, 8], &p),
            "grad_out",
        ),
        (
            conv2d_backward_weight(&t(&[1, 3, 8, 8]), &t(&[1, 4, 6, 7]), &[4, 3, 3, 3], &p),
            "[1, 4, 6, 7]",
        ),
        (
            conv_transpose2d(
                &t(&[1, 4, 5, 5]),
                &t(&[4, 2, 3, 3]),
                None,
                &ConvTranspose2dParams {
                    output_padding: (1, 0),
                    ..Default::default()
                },
            ),
            "output_padding",
        ),
        (
            conv_transpose2d(
                &t(&[1, 4, 5, 5]),
                &t(&[3, 2, 3, 3]),
                None,
                &ConvTranspose2dParams::default(),
            ),
            "[3, 2, 3, 3]",
        ),
        // Each op names its own parameters and weight layout.
        (
            conv_transpose2d(
                &t(&[1, 4, 5, 5]),
                &t(&[4, 2, 3, 3]),
                None,
                &ConvTranspose2dParams {
                    stride: (0, 1),
                    ..Default::default()
                },
            ),
            "ConvTranspose2dParams { stride: (0, 1)",
        ),
        (
            conv2d(&t(&[1, 3, 8, 8]), &t(&[3, 3, 3]), None, &p),
            "[C_out, C_in/groups, kH, kW]",
        ),
        (
            conv_transpose2d(&t(&[1, 4, 5, 5]), &t(&[4, 2, 3]), None, &Default::default()),
            "[C_in, C_out/groups, kH, kW]",
        ),
    ];
    for (i, (result, needle)) in cases.into_iter().enumerate() {
        match result {
            Err(Error::Shape(msg)) | Err(Error::InvalidArgument(msg)) => {
                assert!(
                    msg.contains(needle),
                    "case {i}: {msg:?} does not name {needle:?}"
                )
            }
            other => panic!("case {i}: expected an error naming {needle:?}, got {other:?}"),
        }
    }
}

/// The tests above again on a device with the smallest loop budget, where every op takes
/// its split paths (segments, split-K, column ranges) on these small shapes.
mod at_the_tight_loop_budget {
    use crate::common::{tight_budget_device, with_device};

    #[test]
    fn standard_conv_sweep() {
        with_device(tight_budget_device(), super::standard_conv_sweep);
    }

    #[test]
    fn grouped_conv_sweep() {
        with_device(tight_budget_device(), super::grouped_conv_sweep);
    }

    #[test]
    fn depthwise_conv_sweep() {
        with_device(tight_budget_device(), super::depthwise_conv_sweep);
    }

    #[test]
    fn pointwise_conv_sweep() {
        with_device(tight_budget_device(), super::pointwise_conv_sweep);
    }

    #[test]
    fn pointwise_convs_over_whole_planes() {
        with_device(
            tight_budget_device(),
            super::pointwise_convs_over_whole_planes,
        );
    }

    #[test]
    fn strided_depthwise_input_gradients() {
        with_device(
            tight_budget_device(),
            super::strided_depthwise_input_gradients,
        );
    }

    #[test]
    fn depthwise_rows_of_vec4s() {
        with_device(tight_budget_device(), super::depthwise_rows_of_vec4s);
    }

    #[test]
    fn dilated_conv_sweep() {
        with_device(tight_budget_device(), super::dilated_conv_sweep);
    }

    #[test]
    fn transposed_conv_sweep() {
        with_device(tight_budget_device(), super::transposed_conv_sweep);
    }

    #[test]
    fn bigger_batches_cross_the_scratch_chunks() {
        with_device(
            tight_budget_device(),
            super::bigger_batches_cross_the_scratch_chunks,
        );
    }

    #[test]
    fn depthwise_multipliers_past_the_register_budget_split_into_blocks() {
        with_device(
            tight_budget_device(),
            super::depthwise_multipliers_past_the_register_budget_split_into_blocks,
        );
    }

    #[test]
    fn transposed_output_padding_below_dilation() {
        with_device(
            tight_budget_device(),
            super::transposed_output_padding_below_dilation,
        );
    }
}

/// Convolutions whose loops once ran past lavapipe's loop cap (65,535 iterations per
/// invocation, after which it silently stops) or whose one sample's im2col passed a
/// storage binding: every primitive against the reference.
mod past_the_loop_cap {
    use super::*;

    /// A k×k convolution of `input` padded to keep its size at stride 1 (stride and
    /// dilation as given).
    fn geo_same(input: [usize; 4], c_out: usize, g: usize, k: usize, s: usize, d: usize) -> Geo {
        let [n, c_in, h, w] = input;
        let pad = d * (k - 1) / 2;
        let span = d * (k - 1) + 1;
        Geo {
            n,
            c_in,
            h,
            w,
            c_out,
            ho: (h + 2 * pad - span) / s + 1,
            wo: (w + 2 * pad - span) / s + 1,
            kh: k,
            kw: k,
            s: (s, s),
            p: (pad, pad),
            d: (d, d),
            g,
        }
    }

    fn geo3x3(input: [usize; 4], c_out: usize, g: usize, s: usize, d: usize) -> Geo {
        geo_same(input, c_out, g, 3, s, d)
    }

    #[test]
    fn weight_gradient_over_512x512_pixels_per_sample() {
        // The weight gradient sums over 262,144 pixels per sample.
        let mut rng = Rng::new(61);
        check_geo(
            &mut rng,
            Form::Standard,
            geo3x3([4, 3, 512, 512], 2, 1, 1, 1),
            (0, 0),
        );
    }

    #[test]
    fn depthwise_rows_of_1872_and_70000_columns() {
        let mut rng = Rng::new(62);
        // 7×7: once unwritten from column ~1443 of the input gradient (rows of 1872, as
        // in [1, 4, 560, 1872]; fewer of them keep the reference quick).
        let big = [1, 4, 12, 1872];
        check_geo(
            &mut rng,
            Form::Depthwise,
            geo_same(big, 4, 4, 7, 1, 1),
            (0, 0),
        );
        check_geo(&mut rng, Form::Depthwise, geo3x3(big, 4, 4, 1, 1), (0, 0));
        check_geo(
            &mut rng,
            Form::Depthwise,
            geo3x3([1, 2, 3, 70_000], 2, 2, 1, 1),
            (0, 0),
        );
        // Stride 2: the input gradient gathers pairs of chunks from dy, rows cut in ranges.
        check_geo(
            &mut rng,
            Form::Depthwise,
            geo_same([1, 2, 4, 70_000], 2, 2, 3, 2, 1),
            (0, 0),
        );
        // Dilated: the generic depthwise kernels.
        check_geo(
            &mut rng,
            Form::Depthwise,
            geo3x3([1, 2, 5, 70_000], 2, 2, 1, 2),
            (0, 0),
        );
    }

    #[test]
    fn taps_of_270000_per_output() {
        // 30,000 input channels × 3×3: each output sums 270,000 products; the implicit
        // kernel (8 outputs per group) and im2col + GEMM (17) both split along K.
        let mut rng = Rng::new(63);
        for c_out in [8, 17] {
            check_geo(
                &mut rng,
                Form::Standard,
                geo3x3([1, 30_000, 3, 3], c_out, 1, 1, 1),
                (0, 0),
            );
        }
    }

    #[test]
    fn one_sample_larger_than_the_im2col_scratch() {
        // One sample's im2col is 150 MB here (more than a storage binding): it runs in
        // pixel ranges. Only sampled outputs are checked (the full reference is slow).
        let mut rng = Rng::new(64);
        let geo = geo3x3([1, 64, 256, 256], 32, 1, 1, 1);
        let (xv, wv) = (
            values(&mut rng, &geo.input()),
            values(&mut rng, &geo.weight()),
        );
        let y = conv2d(
            &to_tensor(&xv, &geo.input()),
            &to_tensor(&wv, &geo.weight()),
            None,
            &geo.params(),
        )
        .unwrap()
        .to_vec()
        .unwrap();
        let picks: Vec<usize> = (0..3000)
            .map(|_| rng.below(y.len() as u64) as usize)
            .collect();
        let got: Vec<f32> = picks.iter().map(|&o| y[o]).collect();
        let (want, mag): (Vec<f64>, Vec<f64>) =
            picks.iter().map(|&o| geo.output_at(&xv, &wv, o)).unzip();
        assert_close_scaled("forward of a 150 MB im2col", &got, &want, &mag, 1e-4);
        // Every primitive, on samples large enough to take several pixel ranges (strided:
        // GEMM + col2im, which then adds the ranges' contributions).
        check_geo(
            &mut rng,
            Form::Standard,
            geo3x3([1, 4, 512, 512], 17, 1, 1, 1),
            (0, 0),
        );
        check_geo(
            &mut rng,
            Form::Standard,
            geo3x3([1, 4, 1100, 1100], 17, 1, 2, 1),
            (0, 0),
        );
    }

    /// At a loop budget of the whole cap, the split kernels loop right up to it: a loop
    /// cost counted short of what the driver counts would leave outputs wrong here.
    #[test]
    fn splits_at_the_cap_are_counted_right() {
        with_device(cap_budget_device(), || {
            let mut rng = Rng::new(65);
            for geo in [
                geo3x3([1, 1, 3, 3000], 1, 1, 1, 1),  // direct kernels
                geo3x3([1, 1, 5, 5000], 1, 1, 1, 2),  // generic depthwise
                geo3x3([1, 1, 512, 512], 1, 1, 1, 1), // long tap-major im2col rows
            ] {
                let form = if geo.c_in == 1 && geo.d.0 == 1 && geo.h == 512 {
                    Form::Standard
                } else {
                    Form::Depthwise
                };
                check_geo(&mut rng, form, geo, (0, 0));
            }
            // Depthwise on vec4 rows: a 4224-wide row is 1,056 chunks, counted as about
            // 76,000 iterations at stride 1 (every loop in full), so it runs in two column
            // ranges; the stride-2 gather's 8448-wide rows likewise.
            for geo in [
                geo3x3([1, 2, 3, 4224], 2, 2, 1, 1),
                geo3x3([1, 2, 4, 8448], 2, 2, 2, 1),
            ] {
                check_geo(&mut rng, Form::Depthwise, geo, (0, 0));
            }
            for c_out in [8, 17] {
                check_geo(
                    &mut rng,
                    Form::Standard,
                    geo3x3([1, 30_000, 3, 3], c_out, 1, 1, 1),
                    (0, 0),
                );
            }
        });
    }
}

/// Paths only a tight loop budget sends small shapes down: im2col rows and products split
/// along K, col2im taps gathered in several launches, weight gradients in segments.
#[test]
fn split_paths_at_the_tight_loop_budget() {
    with_device(tight_budget_device(), || {
        let mut rng = Rng::new(66);
        let geo = |input: [usize; 4], c_out, k: usize, s: usize, d: usize, g| {
            let [n, c_in, h, w] = input;
            let span = d * (k - 1) + 1;
            Geo {
                n,
                c_in,
                h,
                w,
                c_out,
                ho: (h - span) / s + 1,
                wo: (w - span) / s + 1,
                kh: k,
                kw: k,
                s: (s, s),
                p: (0, 0),
                d: (d, d),
                g,
            }
        };
        for (form, g) in [
            (Form::Standard, geo([1, 112, 5, 5], 32, 3, 1, 1, 1)), // im2col rows, split-K
            (Form::Standard, geo([1, 112, 5, 5], 8, 3, 1, 1, 1)),  // implicit, split-K
            (Form::Standard, geo([2, 2, 36, 36], 3, 3, 1, 1, 1)),  // long weight-grad rows
            (Form::Standard, geo([1, 2, 40, 40], 3, 17, 2, 1, 1)), // col2im taps in parts
            (Form::Depthwise, geo([2, 3, 100, 100], 3, 3, 1, 2, 3)), // weight grad segments
            (Form::Depthwise, geo([1, 2, 9, 60], 2, 3, 1, 1, 2)),  // direct: column ranges
        ] {
            check_geo(&mut rng, form, g, (0, 0));
        }
    });
}
