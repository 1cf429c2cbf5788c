//! Seeded fuzzing of the convolution and pooling entry points: 2,400 random argument
//! sets, mostly invalid, with sizes and parameters from 0 to `usize::MAX`. None may panic;
//! each the rules below reject must come back as a clear `Err` (a shape or argument
//! error); each they accept must run and agree with the f64 references; and one whose
//! output could not be held by any tensor must be an `Err` too (`TooLarge` included).
//!
//! The rules are written here from PyTorch's definitions and liandan's documented limits
//! (sizes and parameters up to 2^24 for convolutions, 2^28 for pooling), in i128 so that
//! no size overflows, independently of the library's own checks.

use std::collections::HashMap;

use liandan::ops::conv::{
    Conv2dParams, ConvTranspose2dParams, conv_transpose2d, conv2d, conv2d_backward_input,
    conv2d_backward_weight,
};
use liandan::ops::pool::{self, Pool2d};
use liandan::{Error, Rng, Tensor};

use crate::common::*;
use crate::conv::{Geo, abs, to_tensor};
use crate::pool::{
    adaptive_problem, distinct_values, fixed_problem, has_empty_window, ref_avg, ref_max, upload,
};

const CONV_EXTENT: i128 = 1 << 24;
const POOL_EXTENT: i128 = 1 << 28;
/// The largest tensor (bytes) a storage binding holds on the test adapter; an output past
/// it must be refused.
fn binding_limit() -> i128 {
    device().limits().max_storage_buffer_binding_size as i128
}

/// What a call should do.
#[derive(Debug)]
enum Expect<T> {
    /// Run, and agree with the reference built from this.
    Valid(T),
    /// Refused (a shape or argument error), for the reason given.
    #[allow(dead_code)] // the reason shows in failure messages
    Invalid(&'static str),
    /// Valid by the rules, but its output is larger than a tensor can be: any clear error.
    Unrepresentable,
}

/// A size: mostly small (0 now and then), sometimes extreme.
fn size(rng: &mut Rng) -> usize {
    const EXTREMES: [usize; 6] = [
        1 << 20,
        1 << 25,
        1 << 31,
        1 << 40,
        usize::MAX / 2,
        usize::MAX,
    ];
    match rng.below(20) {
        0 => 0,
        1 => EXTREMES[rng.below(EXTREMES.len() as u64) as usize],
        _ => 1 + rng.below(5) as usize,
    }
}

/// A parameter pair: mostly small, sometimes 0 or extreme in one axis.
fn pair(rng: &mut Rng, small: u64, zero_ok: bool) -> (usize, usize) {
    let one = |rng: &mut Rng| match rng.below(12) {
        0 => size(rng).max(usize::from(!zero_ok)) * if rng.below(2) == 0 { 1 } else { 0 },
        1 => size(rng),
        _ => usize::from(!zero_ok) + rng.below(small) as usize,
    };
    (one(rng), one(rng))
}

/// A shape of rank 4 (now and then 3 or 5) with random sizes, kept small enough to
/// allocate: a huge size is replaced by 1 in the tensors, but kept in shape arguments.
fn shape(rng: &mut Rng) -> Vec<usize> {
    let rank = match rng.below(16) {
        0 => 3,
        1 => 5,
        _ => 4,
    };
    (0..rank).map(|_| size(rng)).collect()
}

/// A tensor of `shape` when its elements are few enough to make one (cached by shape, as
/// the fuzz meets the same small shapes over and over), random values.
fn tensor_of(
    cache: &mut HashMap<Vec<usize>, (Tensor, Vec<f64>)>,
    rng: &mut Rng,
    shape: &[usize],
) -> Option<(Tensor, Vec<f64>)> {
    let numel = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))?;
    if numel > 4096 {
        return None;
    }
    let entry = cache.entry(shape.to_vec()).or_insert_with(|| {
        let values: Vec<f64> = random_values(rng, numel, -1.0, 1.0)
            .iter()
            .map(|&v| v as f64)
            .collect();
        (to_tensor(&values, shape), values)
    });
    Some(entry.clone())
}

/// Checks an outcome against the expectation; `check_valid` compares a valid result.
fn judge<T, G: std::fmt::Debug>(
    what: &str,
    expect: &Expect<G>,
    got: liandan::Result<T>,
    check_valid: impl FnOnce(&G, T),
) {
    match (expect, got) {
        (Expect::Valid(g), Ok(value)) => check_valid(g, value),
        (Expect::Invalid(_), Err(Error::Shape(_) | Error::InvalidArgument(_))) => {}
        (
            Expect::Unrepresentable,
            Err(Error::Shape(_) | Error::InvalidArgument(_) | Error::TooLarge { .. }),
        ) => {}
        (expect, Ok(_)) => panic!("{what}: expected {expect:?}, got Ok"),
        (expect, Err(e)) => panic!("{what}: expected {expect:?}, got {e:?}"),
    }
}

/// The convolution rules (PyTorch's, with liandan's limits): the geometry, or why not.
fn conv_rules(x: &[usize], w: &[usize], p: &Conv2dParams) -> Expect<Geo> {
    let (&[n, c_in, h, wd], &[c_out, cin_g, kh, kw]) = (x, w) else {
        return Expect::Invalid("not 4-D");
    };
    let (s, d, pad, g) = (p.stride, p.dilation, p.padding, p.groups);
    if [s.0, s.1, d.0, d.1, g].contains(&0) {
        return Expect::Invalid("a zero stride, dilation or groups");
    }
    let all = [
        s.0, s.1, d.0, d.1, pad.0, pad.1, g, n, c_in, h, wd, c_out, cin_g, kh, kw,
    ];
    if all.iter().any(|&v| v as i128 > CONV_EXTENT) {
        return Expect::Invalid("past the size limit");
    }
    if [c_in, h, wd, c_out, cin_g, kh, kw].contains(&0) {
        return Expect::Invalid("an empty size");
    }
    if c_in % g != 0 || c_out % g != 0 || cin_g != c_in / g {
        return Expect::Invalid("groups do not fit");
    }
    let out = |size: usize, k: usize, s: usize, p: usize, d: usize| -> Option<i128> {
        let span = d as i128 * (k as i128 - 1) + 1;
        let padded = size as i128 + 2 * p as i128;
        (span <= padded).then(|| (padded - span) / s as i128 + 1)
    };
    let (Some(ho), Some(wo)) = (out(h, kh, s.0, pad.0, d.0), out(wd, kw, s.1, pad.1, d.1)) else {
        return Expect::Invalid("kernel larger than the padded input");
    };
    if 4 * n as i128 * c_out as i128 * ho * wo > binding_limit() {
        return Expect::Unrepresentable;
    }
    Expect::Valid(Geo {
        n,
        c_in,
        h,
        w: wd,
        c_out,
        ho: ho as usize,
        wo: wo as usize,
        kh,
        kw,
        s,
        p: pad,
        d,
        g,
    })
}

fn random_conv_params(rng: &mut Rng) -> Conv2dParams {
    Conv2dParams {
        stride: pair(rng, 3, false),
        padding: pair(rng, 3, true),
        dilation: pair(rng, 2, false),
        groups: match rng.below(8) {
            0 => size(rng),
            1..=3 => 1 + rng.below(4) as usize,
            _ => 1,
        },
    }
}

fn close(what: &str, got: &Tensor, want: &[f64], mag: &[f64]) {
    let scale: Vec<f64> = mag.iter().map(|m| m + 1.0).collect();
    assert_close_scaled(what, &got.to_vec().unwrap(), want, &scale, 1e-4);
}

#[test]
fn conv2d_and_its_gradients_refuse_bad_arguments_and_match_on_good_ones() {
    let mut rng = Rng::new(0xF022);
    let mut cache = HashMap::new();
    let mut counts = [0usize; 3];
    for case in 0..1000 {
        let (xs, ws, p) = match case % 10 {
            // Half the cases: any sizes, ranks and parameters.
            0..=4 => (
                shape(&mut rng),
                shape(&mut rng),
                random_conv_params(&mut rng),
            ),
            // The rest plausible (small sizes, channels fitting the groups), one in five of
            // them with a large padding or stride (huge or one-pixel outputs).
            k => {
                let (xs, ws, mut p) = plausible_conv(&mut rng);
                if k == 9 {
                    let huge = 1usize << (22 + rng.below(3));
                    if rng.below(2) == 0 {
                        p.padding.0 = huge;
                    } else {
                        p.stride.1 = huge;
                    }
                }
                (xs, ws, p)
            }
        };
        let expect = conv_rules(&xs, &ws, &p);
        counts[match expect {
            Expect::Valid(_) => 0,
            Expect::Invalid(_) => 1,
            Expect::Unrepresentable => 2,
        }] += 1;
        let what = format!("case {case}: conv2d x {xs:?} w {ws:?} {p:?} ({expect:?})");
        // The backward entry points take the other side's shape as plain numbers, so
        // they see the extreme sizes themselves.
        if let Some((w, wv)) = tensor_of(&mut cache, &mut rng, &ws) {
            let dy_shape = match &expect {
                Expect::Valid(g) => g.output().to_vec(),
                _ => vec![1, ws[0].min(8), 2, 2],
            };
            if let Some((dy, dyv)) = tensor_of(&mut cache, &mut rng, &dy_shape) {
                let got = conv2d_backward_input(&dy, &w, &xs, &p);
                judge(&what, &expect, got, |g, dx| {
                    close(
                        &format!("{what} dx"),
                        &dx,
                        &g.input_grad(&dyv, &wv),
                        &g.input_grad(&abs(&dyv), &abs(&wv)),
                    );
                });
            }
            if let Some((x, xv)) = tensor_of(&mut cache, &mut rng, &xs) {
                let got = conv2d(&x, &w, None, &p);
                judge(&what, &expect, got, |g, y| {
                    close(
                        &format!("{what} y"),
                        &y,
                        &g.forward(&xv, &wv),
                        &g.forward(&abs(&xv), &abs(&wv)),
                    );
                });
            }
        }
        if let (Some((x, xv)), Expect::Valid(g)) = (tensor_of(&mut cache, &mut rng, &xs), &expect)
            && let Some((dy, dyv)) = tensor_of(&mut cache, &mut rng, &g.output())
        {
            let dw = conv2d_backward_weight(&x, &dy, &ws, &p).unwrap();
            close(
                &format!("{what} dw"),
                &dw,
                &g.weight_grad(&xv, &dyv),
                &g.weight_grad(&abs(&xv), &abs(&dyv)),
            );
        }
    }
    assert!(
        counts[0] >= 200 && counts[1] >= 400 && counts[2] >= 15,
        "valid/invalid/too large: {counts:?}"
    );
}

/// Small sizes with channels fitting the groups: a convolution likely (not sure) valid.
fn plausible_conv(rng: &mut Rng) -> (Vec<usize>, Vec<usize>, Conv2dParams) {
    let mut small = |n: u64| 1 + rng.below(n) as usize;
    let groups = [1, 1, 2, 3][small(4) - 1];
    let (cin_g, cout_g) = (small(3), small(3));
    let xs = vec![small(2), cin_g * groups, small(6), small(6)];
    let ws = vec![cout_g * groups, cin_g, small(3), small(3)];
    let p = Conv2dParams {
        stride: (small(2), small(2)),
        padding: (small(2) - 1, small(2) - 1),
        dilation: (small(2), small(2)),
        groups,
    };
    (xs, ws, p)
}

/// The transposed convolution's rules: the geometry of the convolution it transposes,
/// and its output padding.
fn transpose_rules(
    x: &[usize],
    w: &[usize],
    p: &ConvTranspose2dParams,
) -> Expect<(Geo, (usize, usize))> {
    let (&[n, cin_t, hi, wi], &[wc_in, cout_g, kh, kw]) = (x, w) else {
        return Expect::Invalid("not 4-D");
    };
    let (s, d, pad, op, g) = (p.stride, p.dilation, p.padding, p.output_padding, p.groups);
    if [s.0, s.1, d.0, d.1, g].contains(&0) {
        return Expect::Invalid("a zero stride, dilation or groups");
    }
    let all = [
        s.0, s.1, d.0, d.1, pad.0, pad.1, op.0, op.1, g, n, cin_t, hi, wi, wc_in, cout_g, kh, kw,
    ];
    if all.iter().any(|&v| v as i128 > CONV_EXTENT) {
        return Expect::Invalid("past the size limit");
    }
    if [cin_t, hi, wi, cout_g, kh, kw].contains(&0) || wc_in != cin_t || cin_t % g != 0 {
        return Expect::Invalid("shapes do not fit");
    }
    if (op.0 >= s.0 && op.0 >= d.0) || (op.1 >= s.1 && op.1 >= d.1) {
        return Expect::Invalid("output padding too large");
    }
    let full = |i: usize, k: usize, s: usize, d: usize, extra: usize, pad: usize| -> Option<i128> {
        let full = (i as i128 - 1) * s as i128 + d as i128 * (k as i128 - 1) + extra as i128 + 1;
        (full > 2 * pad as i128).then(|| full - 2 * pad as i128)
    };
    let (Some(h), Some(wd)) = (
        full(hi, kh, s.0, d.0, op.0, pad.0),
        full(wi, kw, s.1, d.1, op.1, pad.1),
    ) else {
        return Expect::Invalid("padding removes the whole output");
    };
    let c_out = cout_g * g;
    if 4 * n as i128 * c_out as i128 * h * wd > binding_limit() {
        return Expect::Unrepresentable;
    }
    let geo = Geo {
        n,
        c_in: c_out,
        h: h as usize,
        w: wd as usize,
        c_out: cin_t,
        ho: hi,
        wo: wi,
        kh,
        kw,
        s,
        p: pad,
        d,
        g,
    };
    Expect::Valid((geo, op))
}

#[test]
fn conv_transpose2d_refuses_bad_arguments_and_matches_on_good_ones() {
    let mut rng = Rng::new(0xF023);
    let mut cache = HashMap::new();
    let mut valid = 0;
    for case in 0..700 {
        let c = random_conv_params(&mut rng);
        let p = ConvTranspose2dParams {
            stride: c.stride,
            padding: c.padding,
            output_padding: pair(&mut rng, 2, true),
            dilation: c.dilation,
            groups: c.groups,
        };
        let (xs, ws, p) = if case % 2 == 0 {
            (shape(&mut rng), shape(&mut rng), p)
        } else {
            // Plausible: the transpose of a small convolution, whose weight [C_out,
            // C_in/groups, kH, kW] reads as a transposed one's [C_in, C_out/groups, ..].
            let (conv_x, ws, c) = plausible_conv(&mut rng);
            let xs = vec![conv_x[0], ws[0], conv_x[2], conv_x[3]];
            let p = ConvTranspose2dParams {
                stride: c.stride,
                padding: c.padding,
                output_padding: (rng.below(2) as usize, rng.below(2) as usize),
                dilation: c.dilation,
                groups: c.groups,
            };
            (xs, ws, p)
        };
        let expect = transpose_rules(&xs, &ws, &p);
        valid += usize::from(matches!(expect, Expect::Valid(_)));
        let what = format!("case {case}: conv_transpose2d x {xs:?} w {ws:?} {p:?} ({expect:?})");
        let (Some((x, xv)), Some((w, wv))) = (
            tensor_of(&mut cache, &mut rng, &xs),
            tensor_of(&mut cache, &mut rng, &ws),
        ) else {
            continue;
        };
        judge(
            &what,
            &expect,
            conv_transpose2d(&x, &w, None, &p),
            |(g, _), y| {
                // The transposed forward is the convolution's input gradient.
                close(
                    &what,
                    &y,
                    &g.input_grad(&xv, &wv),
                    &g.input_grad(&abs(&xv), &abs(&wv)),
                );
            },
        );
    }
    assert!(valid >= 150, "only {valid} valid cases");
}

/// The pooling rules: PyTorch's, with liandan's limit of 2^28 and its refusal of windows
/// that hold only padding. `avg` pooling also needs dilation 1.
fn pool_rules(x: &[usize], w: &Pool2d, avg: bool) -> Expect<crate::pool::Problem> {
    let &[n, c, h, wd] = x else {
        return Expect::Invalid("not 4-D");
    };
    let (k, s, p, d) = (w.kernel, w.stride, w.padding, w.dilation);
    if [k.0, k.1, s.0, s.1, d.0, d.1].contains(&0) {
        return Expect::Invalid("a zero kernel, stride or dilation");
    }
    if p.0 > k.0 / 2 || p.1 > k.1 / 2 {
        return Expect::Invalid("padding over half the kernel");
    }
    let all = [k.0, k.1, s.0, s.1, p.0, p.1, d.0, d.1, h, wd];
    if all.iter().any(|&v| v as i128 > POOL_EXTENT) || [c, h, wd].contains(&0) {
        return Expect::Invalid("an empty size or past the size limit");
    }
    if avg && d != (1, 1) {
        return Expect::Invalid("dilated average pooling");
    }
    let out = |size: usize, k: usize, s: usize, p: usize, d: usize| -> i128 {
        let span = size as i128 + 2 * p as i128 - d as i128 * (k as i128 - 1) - 1;
        let round = if w.ceil_mode { s as i128 - 1 } else { 0 };
        let mut out = (span + round).div_euclid(s as i128) + 1;
        if w.ceil_mode && (out - 1) * s as i128 >= size as i128 + p as i128 {
            out -= 1;
        }
        out
    };
    let (oh, ow) = (out(h, k.0, s.0, p.0, d.0), out(wd, k.1, s.1, p.1, d.1));
    if oh < 1 || ow < 1 {
        return Expect::Invalid("no output");
    }
    if 4 * n as i128 * c as i128 * oh * ow > binding_limit() {
        return Expect::Unrepresentable;
    }
    let pb = fixed_problem([n, c, h, wd], *w).expect("the rules agree on the output size");
    if has_empty_window(&pb) {
        return Expect::Invalid("a window of padding only");
    }
    Expect::Valid(pb)
}

#[test]
fn pooling_refuses_bad_arguments_and_matches_on_good_ones() {
    let mut rng = Rng::new(0xF024);
    let mut cache = HashMap::new();
    let mut valid = 0;
    for case in 0..700 {
        let xs = shape(&mut rng);
        let kernel = pair(&mut rng, 4, false);
        let window = Pool2d::new(kernel)
            .stride(pair(&mut rng, 3, false))
            .padding(if rng.below(3) == 0 {
                pair(&mut rng, 3, true)
            } else {
                (kernel.0 / 2, kernel.1 / 2)
            })
            .dilation(if rng.below(4) == 0 {
                pair(&mut rng, 2, false)
            } else {
                (1, 1)
            })
            .ceil_mode(rng.below(2) == 0);
        let Some((x, _)) = tensor_of(&mut cache, &mut rng, &xs) else {
            continue;
        };
        let xv = distinct_values(&mut rng, x.numel());
        let x = upload(&xv, x.shape());
        let expect = pool_rules(&xs, &window, false);
        valid += usize::from(matches!(expect, Expect::Valid(_)));
        let what = format!("case {case}: max_pool2d x {xs:?} {window:?} ({expect:?})");
        judge(
            &what,
            &expect,
            pool::max_pool2d(&x, &window),
            |pb, (y, _)| {
                assert_close(&what, &y.to_vec().unwrap(), &ref_max(pb, &xv).0, 1e-6);
            },
        );
        let expect = pool_rules(&xs, &window, true);
        let include_pad = case % 2 == 0;
        let what = format!("case {case}: avg_pool2d x {xs:?} {window:?} ({expect:?})");
        judge(
            &what,
            &expect,
            pool::avg_pool2d(&x, &window, include_pad),
            |pb, y| {
                assert_close(
                    &what,
                    &y.to_vec().unwrap(),
                    &ref_avg(pb, &xv, include_pad),
                    1e-5,
                );
            },
        );
        // Adaptive: any positive output size whose bins stay within i32 arithmetic.
        let out = pair(&mut rng, 6, false);
        let fits = |size: usize, o: usize| (size as i128 + 1) * (o as i128 + 1) <= i32::MAX as i128;
        let expect = match &xs[..] {
            &[n, c, h, wd] if c > 0 && h > 0 && wd > 0 && out.0 > 0 && out.1 > 0 => {
                if !fits(h, out.0) || !fits(wd, out.1) {
                    Expect::Invalid("bins past i32")
                } else if 4 * (n * c) as i128 * out.0 as i128 * out.1 as i128 > binding_limit() {
                    Expect::Unrepresentable
                } else {
                    Expect::Valid(adaptive_problem([n, c, h, wd], out))
                }
            }
            _ => Expect::Invalid("bad input or output size"),
        };
        let what = format!("case {case}: adaptive pools x {xs:?} to {out:?} ({expect:?})");
        judge(
            &what,
            &expect,
            pool::adaptive_avg_pool2d(&x, out),
            |pb, y| {
                assert_close(&what, &y.to_vec().unwrap(), &ref_avg(pb, &xv, false), 1e-5);
            },
        );
        judge(
            &what,
            &expect,
            pool::adaptive_max_pool2d(&x, out),
            |pb, (y, _)| {
                assert_close(&what, &y.to_vec().unwrap(), &ref_max(pb, &xv).0, 1e-6);
            },
        );
    }
    assert!(valid >= 60, "only {valid} valid max pools");
}
