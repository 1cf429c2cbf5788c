//! Max, average, adaptive and global pooling, forward and backward, against f64 references
//! written from PyTorch's definitions; the references' gradients against central finite
//! differences of their forward passes.

use liandan::ops::pool::{self, Pool2d, PoolIndices};
use liandan::{Error, Rng, Tensor};

use crate::common::*;

/// Random configurations each sweep checks (valid ones; invalid ones are counted apart).
const SWEEP: usize = 150;

/// How outputs map to input windows, for the references.
#[derive(Clone, Copy, Debug)]
enum Windows {
    Fixed(Pool2d),
    Adaptive,
}

/// One pooling problem: input shape, windows, and output spatial size.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Problem {
    shape: [usize; 4],
    windows: Windows,
    out: (usize, usize),
}

impl Problem {
    fn in_hw(&self, axis: usize) -> usize {
        self.shape[2 + axis]
    }

    fn out_hw(&self, axis: usize) -> usize {
        if axis == 0 { self.out.0 } else { self.out.1 }
    }

    pub(crate) fn out_shape(&self) -> [usize; 4] {
        [self.shape[0], self.shape[1], self.out.0, self.out.1]
    }

    fn planes(&self) -> usize {
        self.shape[0] * self.shape[1]
    }

    /// The positions output `o` reads along `axis`, in scan order; fixed windows include
    /// positions in the padding (outside 0..size).
    fn taps(&self, axis: usize, o: usize) -> Vec<i64> {
        let size = self.in_hw(axis) as i64;
        let out = self.out_hw(axis) as i64;
        let o = o as i64;
        match self.windows {
            Windows::Fixed(w) => {
                let pick = |p: (usize, usize)| (if axis == 0 { p.0 } else { p.1 }) as i64;
                let (k, s, p, d) = (
                    pick(w.kernel),
                    pick(w.stride),
                    pick(w.padding),
                    pick(w.dilation),
                );
                (0..k).map(|j| o * s - p + j * d).collect()
            }
            // PyTorch: start = floor(o * size / out), end = ceil((o + 1) * size / out).
            Windows::Adaptive => {
                let start = (o * size) / out;
                let end = ((o + 1) * size + out - 1) / out;
                (start..end).collect()
            }
        }
    }

    /// The in-bounds taps of output `o` along `axis` (found without listing a huge
    /// window's taps in the padding one by one).
    fn inside(&self, axis: usize, o: usize) -> Vec<usize> {
        let size = self.in_hw(axis) as i64;
        match self.windows {
            Windows::Fixed(w) => {
                let pick = |p: (usize, usize)| (if axis == 0 { p.0 } else { p.1 }) as i64;
                let (k, s, p, d) = (
                    pick(w.kernel),
                    pick(w.stride),
                    pick(w.padding),
                    pick(w.dilation),
                );
                let start = o as i64 * s - p;
                // Taps start + j·d for j in 0..k, kept where 0 <= tap < size.
                let first = if start < 0 { (-start + d - 1) / d } else { 0 };
                (first..k)
                    .map(|j| start + j * d)
                    .take_while(|&t| t < size)
                    .map(|t| t as usize)
                    .collect()
            }
            Windows::Adaptive => self.taps(axis, o).into_iter().map(|t| t as usize).collect(),
        }
    }

    /// One axis's factor of the average's divisor (PyTorch: a fixed window's end is
    /// clipped to size + padding to count padding, then to the input to count elements).
    fn divisor_part(&self, axis: usize, o: usize, include_pad: bool) -> f64 {
        match self.windows {
            Windows::Fixed(w) if include_pad => {
                let pick = |p: (usize, usize)| (if axis == 0 { p.0 } else { p.1 }) as i64;
                let (k, s, pad) = (pick(w.kernel), pick(w.stride), pick(w.padding));
                // Dilation is 1 here: the window is start..start + k.
                let start = o as i64 * s - pad;
                let end = (start + k).min(self.in_hw(axis) as i64 + pad);
                (end - start) as f64
            }
            _ => self.inside(axis, o).len() as f64,
        }
    }

    /// Calls `f(plane, output index, input index)` for every (output, in-bounds tap) pair,
    /// outputs in row-major order and taps in window order.
    fn for_each_tap(&self, mut f: impl FnMut(usize, usize, usize)) {
        let (h, w) = (self.shape[2], self.shape[3]);
        let (oh_n, ow_n) = self.out;
        for plane in 0..self.planes() {
            for oh in 0..oh_n {
                for ow in 0..ow_n {
                    let o = (plane * oh_n + oh) * ow_n + ow;
                    for ih in self.inside(0, oh) {
                        for iw in self.inside(1, ow) {
                            f(plane, o, plane * h * w + ih * w + iw);
                        }
                    }
                }
            }
        }
    }
}

/// PyTorch's output size along one axis, or None where it is below 1.
fn output_size(size: usize, k: usize, s: usize, p: usize, d: usize, ceil: bool) -> Option<usize> {
    let span = (size + 2 * p) as f64 - (d * (k - 1)) as f64 - 1.0;
    let steps = span / s as f64;
    let mut out = if ceil { steps.ceil() } else { steps.floor() } as i64 + 1;
    if ceil && (out - 1) * s as i64 >= (size + p) as i64 {
        out -= 1;
    }
    (out >= 1).then_some(out as usize)
}

/// The problem a fixed window makes of `shape`, or None when PyTorch's rules leave no
/// output. `Some` problems may still have windows entirely in the padding.
pub(crate) fn fixed_problem(shape: [usize; 4], w: Pool2d) -> Option<Problem> {
    let oh = output_size(
        shape[2],
        w.kernel.0,
        w.stride.0,
        w.padding.0,
        w.dilation.0,
        w.ceil_mode,
    )?;
    let ow = output_size(
        shape[3],
        w.kernel.1,
        w.stride.1,
        w.padding.1,
        w.dilation.1,
        w.ceil_mode,
    )?;
    Some(Problem {
        shape,
        windows: Windows::Fixed(w),
        out: (oh, ow),
    })
}

pub(crate) fn adaptive_problem(shape: [usize; 4], out: (usize, usize)) -> Problem {
    Problem {
        shape,
        windows: Windows::Adaptive,
        out,
    }
}

/// Whether some output window holds no input element (then the op must refuse).
pub(crate) fn has_empty_window(pb: &Problem) -> bool {
    (0..2).any(|axis| (0..pb.out_hw(axis)).any(|o| pb.inside(axis, o).is_empty()))
}

/// Reference max pooling: maxima and argmax indices (h * W + w within the plane). The
/// first maximum in window order wins.
pub(crate) fn ref_max(pb: &Problem, xs: &[f64]) -> (Vec<f64>, Vec<u32>) {
    let n = pb.out_shape().iter().product();
    let mut best = vec![f64::NEG_INFINITY; n];
    let mut at: Vec<Option<usize>> = vec![None; n];
    let plane_len = pb.shape[2] * pb.shape[3];
    pb.for_each_tap(|_, o, i| {
        if at[o].is_none() || xs[i] > best[o] {
            best[o] = xs[i];
            at[o] = Some(i % plane_len);
        }
    });
    (best, at.into_iter().map(|a| a.unwrap() as u32).collect())
}

/// Reference gradient of max pooling: each output's gradient to its argmax.
pub(crate) fn ref_max_backward(pb: &Problem, indices: &[u32], grad: &[f64]) -> Vec<f64> {
    let plane_len = pb.shape[2] * pb.shape[3];
    let out_len = pb.out.0 * pb.out.1;
    let mut gx = vec![0.0; pb.shape.iter().product()];
    for (o, (&g, &at)) in grad.iter().zip(indices).enumerate() {
        gx[(o / out_len) * plane_len + at as usize] += g;
    }
    gx
}

/// The averages' divisors, one per output.
fn ref_divisors(pb: &Problem, include_pad: bool) -> Vec<f64> {
    let mut div = Vec::new();
    for _ in 0..pb.planes() {
        for oh in 0..pb.out.0 {
            for ow in 0..pb.out.1 {
                div.push(pb.divisor_part(0, oh, include_pad) * pb.divisor_part(1, ow, include_pad));
            }
        }
    }
    div
}

/// Reference average pooling (fixed or adaptive windows).
pub(crate) fn ref_avg(pb: &Problem, xs: &[f64], include_pad: bool) -> Vec<f64> {
    let mut sum = vec![0.0; pb.out_shape().iter().product()];
    pb.for_each_tap(|_, o, i| sum[o] += xs[i]);
    let div = ref_divisors(pb, include_pad);
    sum.iter().zip(&div).map(|(s, d)| s / d).collect()
}

/// Reference gradient of average pooling: each output's gradient / divisor to its taps.
pub(crate) fn ref_avg_backward(pb: &Problem, grad: &[f64], include_pad: bool) -> Vec<f64> {
    let div = ref_divisors(pb, include_pad);
    let mut gx = vec![0.0; pb.shape.iter().product()];
    pb.for_each_tap(|_, o, i| gx[i] += grad[o] / div[o]);
    gx
}

/// Input values that are all different (so argmaxes are stable under small changes),
/// multiples of 1/4 in shuffled order, half of them negative.
pub(crate) fn distinct_values(rng: &mut Rng, n: usize) -> Vec<f64> {
    let mut v: Vec<f64> = (0..n).map(|i| (i as f64 - n as f64 / 2.0) * 0.25).collect();
    for i in (1..n).rev() {
        v.swap(i, rng.below(i as u64 + 1) as usize);
    }
    v
}

pub(crate) fn upload(values: &[f64], shape: &[usize]) -> Tensor {
    let v: Vec<f32> = values.iter().map(|&x| x as f32).collect();
    Tensor::from_slice(device(), &v, shape).unwrap()
}

/// A random input shape within the sweep's bounds: batch 1-2, channels 1-5, 1-17 spatial.
fn random_shape4(rng: &mut Rng) -> [usize; 4] {
    [
        1 + rng.below(2) as usize,
        1 + rng.below(5) as usize,
        1 + rng.below(17) as usize,
        1 + rng.below(17) as usize,
    ]
}

/// A random window: kernel 1-4, stride 1-3, padding up to half the kernel, dilation up to
/// `max_dilation`, either rounding.
fn random_window(rng: &mut Rng, max_dilation: u64) -> Pool2d {
    let mut pair = |n: u64| (1 + rng.below(n) as usize, 1 + rng.below(n) as usize);
    let kernel = pair(4);
    let stride = pair(3);
    let dilation = pair(max_dilation);
    let padding = (
        rng.below(kernel.0 as u64 / 2 + 1) as usize,
        rng.below(kernel.1 as u64 / 2 + 1) as usize,
    );
    Pool2d::new(kernel)
        .stride(stride)
        .padding(padding)
        .dilation(dilation)
        .ceil_mode(rng.below(2) == 0)
}

/// Runs a max pooling on the GPU and checks values, indices and the backward pass.
fn check_max(rng: &mut Rng, pb: &Problem, forward: impl Fn(&Tensor) -> (Tensor, PoolIndices)) {
    let xs = distinct_values(rng, pb.shape.iter().product());
    let x = upload(&xs, &pb.shape);
    let (y, indices) = forward(&x);
    assert_eq!(y.shape(), pb.out_shape(), "{pb:?}");
    assert_eq!(indices.shape(), pb.out_shape(), "{pb:?}");
    let (want, want_at) = ref_max(pb, &xs);
    assert_close(&format!("max {pb:?}"), &y.to_vec().unwrap(), &want, 1e-5);
    assert_eq!(indices.to_vec().unwrap(), want_at, "indices of {pb:?}");

    let (g, grad) = random_tensor(rng, &pb.out_shape(), -1.0, 1.0);
    let gx = pool::max_pool2d_backward(&g, &indices, &pb.shape).unwrap();
    let want = ref_max_backward(pb, &want_at, &grad);
    assert_close(
        &format!("max backward {pb:?}"),
        &gx.to_vec().unwrap(),
        &want,
        1e-5,
    );
}

/// Runs an average pooling and its backward on the GPU and checks both.
fn check_avg(
    rng: &mut Rng,
    pb: &Problem,
    include_pad: bool,
    forward: impl Fn(&Tensor) -> Tensor,
    backward: impl Fn(&Tensor) -> Tensor,
) {
    let (x, xs) = random_tensor(rng, &pb.shape, -1.0, 1.0);
    let y = forward(&x);
    assert_eq!(y.shape(), pb.out_shape(), "{pb:?}");
    let want = ref_avg(pb, &xs, include_pad);
    let what = format!("avg {pb:?} include_pad {include_pad}");
    assert_close(&what, &y.to_vec().unwrap(), &want, 1e-5);

    let (g, grad) = random_tensor(rng, &pb.out_shape(), -1.0, 1.0);
    let gx = backward(&g);
    assert_eq!(gx.shape(), pb.shape, "{pb:?}");
    let want = ref_avg_backward(pb, &grad, include_pad);
    assert_close(
        &format!("{what} backward"),
        &gx.to_vec().unwrap(),
        &want,
        1e-5,
    );
}

#[test]
fn max_pool2d_matches_reference_over_random_windows() {
    let mut rng = Rng::new(91);
    let (mut valid, mut refused) = (0, 0);
    while valid < SWEEP {
        let shape = random_shape4(&mut rng);
        let window = random_window(&mut rng, 2);
        let x = Tensor::zeros(device(), &shape).unwrap();
        match fixed_problem(shape, window) {
            Some(pb) if !has_empty_window(&pb) => {
                check_max(&mut rng, &pb, |x| pool::max_pool2d(x, &window).unwrap());
                valid += 1;
            }
            _ => {
                let got = pool::max_pool2d(&x, &window);
                assert!(got.is_err(), "{shape:?} {window:?} should be refused");
                refused += 1;
            }
        }
    }
    assert!(
        refused > 0,
        "the sweep never tried a window that leaves no output"
    );
}

#[test]
fn avg_pool2d_matches_reference_over_random_windows() {
    let mut rng = Rng::new(92);
    let (mut valid, mut refused) = (0, 0);
    while valid < SWEEP {
        let shape = random_shape4(&mut rng);
        let window = random_window(&mut rng, 1);
        let include_pad = rng.below(2) == 0;
        let x = Tensor::zeros(device(), &shape).unwrap();
        match fixed_problem(shape, window) {
            Some(pb) => {
                check_avg(
                    &mut rng,
                    &pb,
                    include_pad,
                    |x| pool::avg_pool2d(x, &window, include_pad).unwrap(),
                    |g| pool::avg_pool2d_backward(g, &shape, &window, include_pad).unwrap(),
                );
                valid += 1;
            }
            None => {
                assert!(pool::avg_pool2d(&x, &window, include_pad).is_err());
                refused += 1;
            }
        }
    }
    assert!(
        refused > 0,
        "the sweep never tried a window that leaves no output"
    );
}

/// A random adaptive output size: 1-17 per axis, so sometimes larger than the input.
fn random_out(rng: &mut Rng) -> (usize, usize) {
    (1 + rng.below(17) as usize, 1 + rng.below(17) as usize)
}

#[test]
fn adaptive_avg_pool2d_matches_reference() {
    let mut rng = Rng::new(93);
    for _ in 0..SWEEP {
        let shape = random_shape4(&mut rng);
        let out = random_out(&mut rng);
        check_avg(
            &mut rng,
            &adaptive_problem(shape, out),
            false,
            |x| pool::adaptive_avg_pool2d(x, out).unwrap(),
            |g| pool::adaptive_avg_pool2d_backward(g, &shape).unwrap(),
        );
    }
}

#[test]
fn adaptive_max_pool2d_matches_reference() {
    let mut rng = Rng::new(94);
    for _ in 0..SWEEP {
        let shape = random_shape4(&mut rng);
        let out = random_out(&mut rng);
        let pb = adaptive_problem(shape, out);
        check_max(&mut rng, &pb, |x| {
            pool::adaptive_max_pool2d(x, out).unwrap()
        });
        // The adaptive entry point of the backward pass gives the same gradient.
        let x = upload(&distinct_values(&mut rng, shape.iter().product()), &shape);
        let (_, indices) = pool::adaptive_max_pool2d(&x, out).unwrap();
        let g = Tensor::ones(device(), &pb.out_shape()).unwrap();
        let a = pool::adaptive_max_pool2d_backward(&g, &indices, &shape).unwrap();
        let b = pool::max_pool2d_backward(&g, &indices, &shape).unwrap();
        assert_eq!(a.to_vec().unwrap(), b.to_vec().unwrap());
    }
}

#[test]
fn global_avg_pool2d_backward_spreads_the_gradient_evenly() {
    let mut rng = Rng::new(95);
    for _ in 0..20 {
        let shape = random_shape4(&mut rng);
        let pb = adaptive_problem(shape, (1, 1));
        let (g, grad) = random_tensor(&mut rng, &pb.out_shape(), -1.0, 1.0);
        let gx = pool::global_avg_pool2d_backward(&g, &shape).unwrap();
        let want = ref_avg_backward(&pb, &grad, false);
        assert_close(
            "global_avg_pool2d_backward",
            &gx.to_vec().unwrap(),
            &want,
            1e-5,
        );
        // ... which is the gradient of the existing forward pass.
        let (x, xs) = random_tensor(&mut rng, &shape, -1.0, 1.0);
        let y = x.global_avg_pool2d().unwrap();
        assert_close(
            "global_avg_pool2d",
            &y.to_vec().unwrap(),
            &ref_avg(&pb, &xs, false),
            1e-5,
        );
    }
}

/// Checks a reference gradient against central differences of the reference forward:
/// for L(x) = sum(grad · f(x)), dL/dx_i ≈ (L(x + h e_i) - L(x - h e_i)) / 2h. Pooling is
/// piecewise linear, so the difference is exact up to rounding when h stays within a
/// piece (the max tests' inputs are 1/4 apart, far more than h).
fn check_finite_differences(
    what: &str,
    xs: &[f64],
    grad: &[f64],
    forward: impl Fn(&[f64]) -> Vec<f64>,
    gradient: &[f64],
) {
    let h = 1e-3;
    let loss = |x: &[f64]| -> f64 { forward(x).iter().zip(grad).map(|(y, g)| y * g).sum() };
    let mut x = xs.to_vec();
    for i in 0..xs.len() {
        x[i] = xs[i] + h;
        let up = loss(&x);
        x[i] = xs[i] - h;
        let down = loss(&x);
        x[i] = xs[i];
        let fd = (up - down) / (2.0 * h);
        assert!(
            (fd - gradient[i]).abs() <= 1e-9 * gradient[i].abs().max(1.0),
            "{what}: d/dx[{i}] is {fd} by differences, {} by the reference",
            gradient[i]
        );
    }
}

/// A small problem for the finite-difference checks (they cost a forward per element).
fn small_shape(rng: &mut Rng) -> [usize; 4] {
    [
        1,
        1 + rng.below(2) as usize,
        1 + rng.below(7) as usize,
        1 + rng.below(7) as usize,
    ]
}

fn random_grad(rng: &mut Rng, pb: &Problem) -> Vec<f64> {
    let n = pb.out_shape().iter().product();
    (0..n).map(|_| rng.uniform_in(-1.0, 1.0)).collect()
}

#[test]
fn reference_gradients_match_finite_differences() {
    let mut rng = Rng::new(96);
    let mut checked = [0; 4];
    while checked.iter().any(|&c| c < 25) {
        let shape = small_shape(&mut rng);
        let n = shape.iter().product();
        let xs = distinct_values(&mut rng, n);
        let family = checked.iter().position(|&c| c < 25).unwrap();
        let (pb, include_pad) = match family {
            0 | 1 => {
                let window = random_window(&mut rng, if family == 0 { 2 } else { 1 });
                match fixed_problem(shape, window) {
                    Some(pb) if !has_empty_window(&pb) => (pb, rng.below(2) == 0),
                    _ => continue,
                }
            }
            _ => (adaptive_problem(shape, random_out(&mut rng)), false),
        };
        let grad = random_grad(&mut rng, &pb);
        let what = format!("{pb:?}");
        if family % 2 == 0 {
            let (_, at) = ref_max(&pb, &xs);
            let gradient = ref_max_backward(&pb, &at, &grad);
            check_finite_differences(&what, &xs, &grad, |x| ref_max(&pb, x).0, &gradient);
        } else {
            let gradient = ref_avg_backward(&pb, &grad, include_pad);
            let forward = |x: &[f64]| ref_avg(&pb, x, include_pad);
            check_finite_differences(&what, &xs, &grad, forward, &gradient);
        }
        checked[family] += 1;
    }
}

#[test]
fn known_values_follow_pytorch() {
    // 2x2 max pooling of 0..16 as a 4x4 plane.
    let x = Tensor::arange(device(), 0.0, 16.0, 1.0)
        .unwrap()
        .reshape(&[1, 1, 4, 4])
        .unwrap();
    let (y, at) = pool::max_pool2d(&x, &Pool2d::new((2, 2))).unwrap();
    assert_eq!(y.to_vec().unwrap(), vec![5.0, 7.0, 13.0, 15.0]);
    assert_eq!(at.to_vec().unwrap(), vec![5, 7, 13, 15]);
    assert_eq!(at.input_shape(), [1, 1, 4, 4]);

    // avg_pool2d(ones(1, 1, 6, 6), 3, stride 2, padding 1, ceil_mode, count_include_pad):
    // the last window, 5..8, is clipped to 5..7 (the padding counts, positions past it do
    // not), so its divisor is 2 per axis.
    let ones = Tensor::ones(device(), &[1, 1, 6, 6]).unwrap();
    let window = Pool2d::new((3, 3))
        .stride((2, 2))
        .padding((1, 1))
        .ceil_mode(true);
    assert_eq!(window.output_size((6, 6)).unwrap(), (4, 4));
    let y = pool::avg_pool2d(&ones, &window, true)
        .unwrap()
        .to_vec()
        .unwrap();
    let row = [2.0 / 3.0, 1.0, 1.0, 0.5];
    let want: Vec<f64> = row
        .iter()
        .flat_map(|a| row.iter().map(move |b| a * b))
        .collect();
    assert_close("avg include_pad", &y, &want, 1e-6);
    let y = pool::avg_pool2d(&ones, &window, false)
        .unwrap()
        .to_vec()
        .unwrap();
    assert_close("avg exclude pad", &y, &[1.0; 16], 1e-6);
}

#[test]
fn max_pool_ties_nan_and_infinity_follow_pytorch() {
    // Ties: the first in window order wins; padding never wins, even over -inf.
    let window = Pool2d::new((3, 3)).stride((1, 1)).padding((1, 1));
    let x = Tensor::full(device(), &[1, 1, 3, 3], f32::NEG_INFINITY).unwrap();
    let (y, at) = pool::max_pool2d(&x, &window).unwrap();
    assert!(y.to_vec().unwrap().iter().all(|&v| v == f32::NEG_INFINITY));
    assert_eq!(at.to_vec().unwrap(), vec![0, 0, 1, 0, 0, 1, 3, 3, 4]);
    let x = Tensor::full(device(), &[1, 1, 3, 3], -2.0).unwrap();
    let (_, at) = pool::max_pool2d(&x, &window).unwrap();
    assert_eq!(at.to_vec().unwrap(), vec![0, 0, 1, 0, 0, 1, 3, 3, 4]);

    // NaN propagates, and the last NaN in the window is the index (PyTorch's `val > max ||
    // isnan(val)`).
    let values = [1.0, f32::NAN, 3.0, f32::NAN, 9.0, 2.0];
    let x = Tensor::from_slice(device(), &values, &[1, 1, 1, 6]).unwrap();
    let (y, at) = pool::max_pool2d(&x, &Pool2d::new((1, 6))).unwrap();
    assert!(y.to_vec().unwrap()[0].is_nan());
    assert_eq!(at.to_vec().unwrap(), vec![3]);
}

#[test]
fn backward_passes_are_deterministic() {
    // Overlapping windows: several outputs feed each input element.
    let mut rng = Rng::new(97);
    let shape = [2, 3, 17, 13];
    let (x, _) = random_tensor(&mut rng, &shape, -1.0, 1.0);
    let window = Pool2d::new((4, 3)).stride((1, 2)).padding((2, 1));
    let (y, at) = pool::max_pool2d(&x, &window).unwrap();
    let (g, _) = random_tensor(&mut rng, y.shape(), -1.0, 1.0);
    let bits =
        |t: Tensor| -> Vec<u32> { t.to_vec().unwrap().iter().map(|v| v.to_bits()).collect() };
    let first = bits(pool::max_pool2d_backward(&g, &at, &shape).unwrap());
    for _ in 0..3 {
        assert_eq!(
            bits(pool::max_pool2d_backward(&g, &at, &shape).unwrap()),
            first
        );
    }
    let first = bits(pool::avg_pool2d_backward(&g, &shape, &window, true).unwrap());
    assert_eq!(
        bits(pool::avg_pool2d_backward(&g, &shape, &window, true).unwrap()),
        first
    );
}

#[test]
fn an_empty_batch_gives_empty_results() {
    let x = Tensor::zeros(device(), &[0, 2, 5, 5]).unwrap();
    let (y, at) = pool::max_pool2d(&x, &Pool2d::new((2, 2))).unwrap();
    assert_eq!(y.shape(), &[0, 2, 2, 2]);
    let gx = pool::max_pool2d_backward(&y, &at, &[0, 2, 5, 5]).unwrap();
    assert_eq!(gx.shape(), &[0, 2, 5, 5]);
    assert!(gx.to_vec().unwrap().is_empty());
    let y = pool::adaptive_avg_pool2d(&x, (3, 3)).unwrap();
    assert_eq!(y.shape(), &[0, 2, 3, 3]);
}

#[test]
fn bad_arguments_are_errors_naming_the_values() {
    let d = device();
    let x = Tensor::zeros(d, &[1, 2, 4, 4]).unwrap();
    let k2 = Pool2d::new((2, 2));
    let (y, at) = pool::max_pool2d(&x, &k2).unwrap();
    let ok = |r: liandan::Result<Tensor>| r.map(|_| ());
    let ok_max = |r: liandan::Result<(Tensor, PoolIndices)>| r.map(|_| ());
    let huge = (1usize << 28) + 1;
    let cases: Vec<(&str, liandan::Result<()>, &str)> = vec![
        (
            "3-D input",
            ok_max(pool::max_pool2d(
                &Tensor::zeros(d, &[2, 4, 4]).unwrap(),
                &k2,
            )),
            "expected an [N, C, H, W] input, got shape [2, 4, 4]",
        ),
        (
            "no channels",
            ok(pool::avg_pool2d(
                &Tensor::zeros(d, &[1, 0, 4, 4]).unwrap(),
                &k2,
                true,
            )),
            "shape [1, 0, 4, 4] has an empty channel or spatial dimension",
        ),
        (
            "zero kernel",
            ok_max(pool::max_pool2d(&x, &Pool2d::new((0, 2)))),
            "kernel (0, 2) must be positive",
        ),
        (
            "zero stride",
            ok(pool::avg_pool2d(&x, &k2.stride((1, 0)), false)),
            "stride (1, 0) must be positive",
        ),
        (
            "zero dilation",
            ok_max(pool::max_pool2d(&x, &k2.dilation((0, 1)))),
            "dilation (0, 1) must be positive",
        ),
        (
            "padding over half the kernel",
            ok_max(pool::max_pool2d(&x, &Pool2d::new((3, 3)).padding((2, 0)))),
            "padding (2, 0) must be at most half the kernel (3, 3)",
        ),
        (
            "no output",
            ok_max(pool::max_pool2d(&x, &Pool2d::new((5, 2)))),
            "output height would be 0: input height 4 with kernel 5",
        ),
        (
            "huge stride",
            ok_max(pool::max_pool2d(&x, &k2.stride((huge, 1)))),
            "stride (268435457, 1) is larger than 268435456",
        ),
        (
            "window in the padding only",
            ok_max(pool::max_pool2d(
                &Tensor::zeros(d, &[1, 1, 1, 5]).unwrap(),
                &k2.padding((1, 1)).dilation((2, 2)),
            )),
            "output row 0 covers only padding",
        ),
        (
            "dilated average",
            ok(pool::avg_pool2d(&x, &k2.dilation((2, 1)), true)),
            "dilation (2, 1) is not supported",
        ),
        (
            "adaptive to zero",
            ok(pool::adaptive_avg_pool2d(&x, (0, 3))),
            "output size (0, 3) must be positive",
        ),
        (
            "adaptive max to zero",
            ok_max(pool::adaptive_max_pool2d(&x, (2, 0))),
            "output size (2, 0) must be positive",
        ),
        (
            "adaptive too large",
            ok(pool::adaptive_avg_pool2d(&x, (1 << 31, 1))),
            "is too large",
        ),
        (
            "max backward grad shape",
            ok(pool::max_pool2d_backward(&x, &at, &[1, 2, 4, 4])),
            "grad_out has shape [1, 2, 4, 4], but the forward output of input [1, 2, 4, 4] \
             has shape [1, 2, 2, 2]",
        ),
        (
            "max backward input shape",
            ok(pool::max_pool2d_backward(&y, &at, &[1, 2, 5, 5])),
            "input_shape [1, 2, 5, 5] is not the shape [1, 2, 4, 4]",
        ),
        (
            "avg backward grad shape",
            ok(pool::avg_pool2d_backward(&x, &[1, 2, 4, 4], &k2, true)),
            "grad_out has shape [1, 2, 4, 4]",
        ),
        (
            "avg backward 2-D input shape",
            ok(pool::avg_pool2d_backward(&y, &[4, 4], &k2, true)),
            "expected an [N, C, H, W] input, got shape [4, 4]",
        ),
        (
            "adaptive backward channels",
            ok(pool::adaptive_avg_pool2d_backward(&y, &[1, 3, 4, 4])),
            "grad_out has shape [1, 2, 2, 2], but the forward output of input [1, 3, 4, 4] \
             has shape [1, 3, 2, 2]",
        ),
        (
            "global backward grad shape",
            ok(pool::global_avg_pool2d_backward(&y, &[1, 2, 4, 4])),
            "grad_out has shape [1, 2, 2, 2], but the forward output of input [1, 2, 4, 4] \
             has shape [1, 2, 1, 1]",
        ),
    ];
    for (name, result, needle) in cases {
        match result {
            Err(e @ (Error::InvalidArgument(_) | Error::Shape(_))) => {
                assert!(e.to_string().contains(needle), "{name}: {e}")
            }
            other => panic!("{name}: expected an error containing {needle:?}, got {other:?}"),
        }
    }
}

/// The tests above again on a device with the smallest loop budget, where every op takes
/// its split paths (segments, split-K, column ranges) on these small shapes.
mod at_the_tight_loop_budget {
    use crate::common::{tight_budget_device, with_device};

    #[test]
    fn max_pool2d_matches_reference_over_random_windows() {
        with_device(
            tight_budget_device(),
            super::max_pool2d_matches_reference_over_random_windows,
        );
    }

    #[test]
    fn avg_pool2d_matches_reference_over_random_windows() {
        with_device(
            tight_budget_device(),
            super::avg_pool2d_matches_reference_over_random_windows,
        );
    }

    #[test]
    fn adaptive_avg_pool2d_matches_reference() {
        with_device(
            tight_budget_device(),
            super::adaptive_avg_pool2d_matches_reference,
        );
    }

    #[test]
    fn adaptive_max_pool2d_matches_reference() {
        with_device(
            tight_budget_device(),
            super::adaptive_max_pool2d_matches_reference,
        );
    }

    #[test]
    fn global_avg_pool2d_backward_spreads_the_gradient_evenly() {
        with_device(
            tight_budget_device(),
            super::global_avg_pool2d_backward_spreads_the_gradient_evenly,
        );
    }

    #[test]
    fn known_values_follow_pytorch() {
        with_device(tight_budget_device(), super::known_values_follow_pytorch);
    }

    #[test]
    fn max_pool_ties_nan_and_infinity_follow_pytorch() {
        with_device(
            tight_budget_device(),
            super::max_pool_ties_nan_and_infinity_follow_pytorch,
        );
    }
}

/// Windows (or sets of covering outputs) longer than the loop budget lets one invocation
/// walk: each element's walk in segments, combined afterwards.
mod long_windows {
    use super::*;

    /// A 90,000-tap window: once past lavapipe's loop cap (65,535 iterations per
    /// invocation, after which it silently stops). At the budget of the whole cap the
    /// first segment loops right up to it, so a walk that costs more than its declared
    /// count would come up short there; at the tight budget the partial maxima need two
    /// rounds of combining.
    fn one_window_of_300x300() {
        let mut rng = Rng::new(97);
        let shape = [1, 2, 300, 300];
        let pb = adaptive_problem(shape, (1, 1));
        check_max(&mut rng, &pb, |x| {
            pool::adaptive_max_pool2d(x, (1, 1)).unwrap()
        });
        check_avg(
            &mut rng,
            &pb,
            false,
            |x| pool::adaptive_avg_pool2d(x, (1, 1)).unwrap(),
            |g| pool::adaptive_avg_pool2d_backward(g, &shape).unwrap(),
        );
        let window = Pool2d::new((300, 300));
        let pb = fixed_problem(shape, window).unwrap();
        check_max(&mut rng, &pb, |x| pool::max_pool2d(x, &window).unwrap());
    }

    #[test]
    fn past_the_loop_cap() {
        one_window_of_300x300();
    }

    #[test]
    fn at_the_cap_budget() {
        with_device(cap_budget_device(), one_window_of_300x300);
    }

    #[test]
    fn at_the_tight_budget() {
        with_device(tight_budget_device(), || {
            one_window_of_300x300();
            // Overlapping 20×20 windows: 400 taps forward, 400 covering outputs backward.
            let mut rng = Rng::new(98);
            let shape = [2, 3, 45, 47];
            for (window, include_pad) in [
                (Pool2d::new((20, 20)).stride((1, 1)), false),
                (
                    Pool2d::new((20, 18))
                        .stride((2, 1))
                        .padding((3, 9))
                        .ceil_mode(true),
                    true,
                ),
            ] {
                let pb = fixed_problem(shape, window).unwrap();
                check_max(&mut rng, &pb, |x| pool::max_pool2d(x, &window).unwrap());
                check_avg(
                    &mut rng,
                    &pb,
                    include_pad,
                    |x| pool::avg_pool2d(x, &window, include_pad).unwrap(),
                    |g| pool::avg_pool2d_backward(g, &shape, &window, include_pad).unwrap(),
                );
            }
            // Adaptive bins of 23 × 24 taps, and outputs covering inputs 2× over.
            for out in [(2, 2), (90, 94)] {
                let pb = adaptive_problem(shape, out);
                check_max(&mut rng, &pb, |x| {
                    pool::adaptive_max_pool2d(x, out).unwrap()
                });
            }
        });
    }
}
