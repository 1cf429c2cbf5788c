//! Convolution in all its forms — standard, grouped, depthwise, pointwise, dilated and
//! transposed — forward and backward, with PyTorch's semantics and weight layouts.
//!
//! Every form reduces to three primitives of one `Geometry` (a convolution's input
//! `[N, C_in, H, W]`, weight `[C_out, C_in/groups, kH, kW]`, output `[N, C_out, Ho, Wo]`):
//! - forward: output from input;
//! - input gradient: input-shaped result from an output-shaped tensor — which is exactly
//!   the forward of a transposed convolution;
//! - weight gradient: from input and output gradient.
//!
//! A transposed convolution is the same geometry read backwards: its input plays the
//! convolution's output, and its output the convolution's input. So `conv_transpose2d` is
//! the input-gradient primitive, its input gradient is the forward primitive, and no
//! kernel exists twice.
//!
//! Each primitive picks a path inside (invisible to the caller), every path one launch (or
//! a fixed few) for all groups and channels:
//! - `depthwise_rows4.rs`: depthwise with dilation 1 on planes a multiple of 4 wide —
//!   a window slid along rows read and written as vec4s;
//! - `direct.rs`: the other depthwise ones with dilation 1 — a window slid along each row
//!   with the weights in registers;
//! - `depthwise.rs`: the depthwise cases `direct` does not take (dilated; the input
//!   gradient of a strided one);
//! - `gemm.rs`: everything else — standard, pointwise 1×1, dilated, large groups — as
//!   im2col/col2im plus the matmul kernels, batched over (sample, group).

mod cases;
mod depthwise;
mod depthwise_rows4;
mod direct;
mod gemm;

pub use cases::ConvCase;

use crate::error::{Result, arg_err, shape_err};
use crate::ops::channels::concat;
use crate::ops::norm::{BnAct, ChannelMoments, FrozenBatchNorm, scale_shift};
use crate::tensor::Tensor;

/// Stride, padding, dilation and groups of a convolution, each (height, width).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dParams {
    /// Step between output positions.
    pub stride: (usize, usize),
    /// Zero padding on each side.
    pub padding: (usize, usize),
    /// Spacing between kernel taps.
    pub dilation: (usize, usize),
    /// Channel groups: input and output channels are split into this many independent
    /// convolutions (C_in for depthwise).
    pub groups: usize,
}

impl Default for Conv2dParams {
    fn default() -> Self {
        Self {
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
        }
    }
}

impl Conv2dParams {
    /// The same stride, padding and dilation in both directions.
    pub fn square(stride: usize, padding: usize, dilation: usize, groups: usize) -> Self {
        Self {
            stride: (stride, stride),
            padding: (padding, padding),
            dilation: (dilation, dilation),
            groups,
        }
    }
}

/// Parameters of a transposed convolution, each (height, width).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvTranspose2dParams {
    /// Step between input positions in the output.
    pub stride: (usize, usize),
    /// Implicit zero padding removed from each side of the output.
    pub padding: (usize, usize),
    /// Extra size added to one side of the output (to pick among the output sizes that a
    /// strided convolution maps to the same input size).
    pub output_padding: (usize, usize),
    /// Spacing between kernel taps.
    pub dilation: (usize, usize),
    /// Channel groups.
    pub groups: usize,
}

impl Default for ConvTranspose2dParams {
    fn default() -> Self {
        Self {
            stride: (1, 1),
            padding: (0, 0),
            output_padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
        }
    }
}

impl ConvTranspose2dParams {
    fn as_conv(&self) -> Conv2dParams {
        Conv2dParams {
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
            groups: self.groups,
        }
    }
}

/// A convolution's sizes: input `[n, c_in, h, w]`, weight `[c_out, c_in/groups, kh, kw]`,
/// output `[n, c_out, ho, wo]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub n: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub ho: usize,
    pub wo: usize,
    pub kh: usize,
    pub kw: usize,
    pub p: Conv2dParams,
}

impl Geometry {
    pub fn input_shape(&self) -> [usize; 4] {
        [self.n, self.c_in, self.h, self.w]
    }
    pub fn output_shape(&self) -> [usize; 4] {
        [self.n, self.c_out, self.ho, self.wo]
    }
    pub fn weight_shape(&self) -> [usize; 4] {
        [self.c_out, self.c_in / self.p.groups, self.kh, self.kw]
    }
    /// Input channels per group.
    pub fn cin_g(&self) -> usize {
        self.c_in / self.p.groups
    }
    /// Output channels per group.
    pub fn cout_g(&self) -> usize {
        self.c_out / self.p.groups
    }
    /// Length of one im2col row: the taps of one group's input channels.
    pub fn k_g(&self) -> usize {
        self.cin_g() * self.kh * self.kw
    }
    /// Whether the depthwise kernels apply.
    pub fn is_depthwise(&self) -> bool {
        self.p.groups == self.c_in && self.c_in > 1
    }
}

/// The four sizes of `shape`, which must be 4-D as `layout` (e.g. `[N, C, H, W]`) says.
fn dims4(op: &str, what: &str, layout: &str, shape: &[usize]) -> Result<[usize; 4]> {
    match shape {
        &[a, b, c, d] => Ok([a, b, c, d]),
        _ => shape_err!("{op}: {what} must be 4-D {layout}, got shape {shape:?}"),
    }
}

const INPUT_LAYOUT: &str = "[N, C, H, W]";

/// Output size of a convolution along one axis, or an error naming the values.
fn conv_out(
    op: &str,
    axis: &str,
    size: usize,
    k: usize,
    s: usize,
    p: usize,
    d: usize,
) -> Result<usize> {
    let span = d * (k - 1) + 1;
    if span > size + 2 * p {
        return arg_err!(
            "{op}: kernel {k} with dilation {d} spans {span} {axis}, more than the padded \
             input ({size} + 2·{p})"
        );
    }
    Ok((size + 2 * p - span) / s + 1)
}

/// Largest size, stride, padding or dilation accepted: far beyond any real tensor (which
/// one storage binding bounds anyway), and small enough that no size arithmetic overflows
/// and every value fits the kernels' 32-bit parameters.
const MAX_EXTENT: usize = 1 << 24;

/// Stride, dilation and groups of at least 1, and every value within [`MAX_EXTENT`];
/// errors show `shown`, the parameters as the caller gave them.
fn check_params(op: &str, p: &Conv2dParams, shown: &dyn std::fmt::Debug) -> Result<()> {
    let (s, d) = (p.stride, p.dilation);
    if s.0 == 0 || s.1 == 0 || d.0 == 0 || d.1 == 0 || p.groups == 0 {
        return arg_err!(
            "{op}: stride {s:?}, dilation {d:?} and groups {} must all be at least 1 ({shown:?})",
            p.groups
        );
    }
    let all = [s.0, s.1, d.0, d.1, p.padding.0, p.padding.1, p.groups];
    if all.iter().any(|&v| v > MAX_EXTENT) {
        return arg_err!("{op}: parameters {shown:?} pass the limit of {MAX_EXTENT}");
    }
    Ok(())
}

/// Input and weight sizes must be non-zero (an empty batch is fine) and within
/// [`MAX_EXTENT`].
fn check_sizes(op: &str, input: &[usize; 4], weight: &[usize; 4]) -> Result<()> {
    if input[1..].contains(&0) || weight.contains(&0) {
        return shape_err!(
            "{op}: input {input:?} and weight {weight:?} need non-zero channels and sizes"
        );
    }
    if input.iter().chain(weight).any(|&v| v > MAX_EXTENT) {
        return shape_err!(
            "{op}: input {input:?} or weight {weight:?} passes the limit of {MAX_EXTENT}"
        );
    }
    Ok(())
}

/// The geometry of `conv2d(input of input_shape, weight of weight_shape, p)`, validated.
pub(crate) fn conv_geometry(
    op: &str,
    input_shape: &[usize],
    weight_shape: &[usize],
    p: &Conv2dParams,
) -> Result<Geometry> {
    check_params(op, p, p)?;
    let [n, c_in, h, w] = dims4(op, "input", INPUT_LAYOUT, input_shape)?;
    let weight_layout = "[C_out, C_in/groups, kH, kW]";
    let [c_out, cin_g, kh, kw] = dims4(op, "weight", weight_layout, weight_shape)?;
    check_sizes(op, &[n, c_in, h, w], &[c_out, cin_g, kh, kw])?;
    let g = p.groups;
    if c_in % g != 0 || c_out % g != 0 {
        return arg_err!(
            "{op}: groups {g} must divide input channels {c_in} and output channels {c_out}"
        );
    }
    if cin_g != c_in / g {
        return shape_err!(
            "{op}: weight {weight_shape:?} expects {} input channels per group, but input \
             {input_shape:?} with groups {g} has {}",
            cin_g,
            c_in / g
        );
    }
    let ho = conv_out(op, "rows", h, kh, p.stride.0, p.padding.0, p.dilation.0)?;
    let wo = conv_out(op, "columns", w, kw, p.stride.1, p.padding.1, p.dilation.1)?;
    Ok(Geometry {
        n,
        c_in,
        h,
        w,
        c_out,
        ho,
        wo,
        kh,
        kw,
        p: *p,
    })
}

/// The geometry of `conv_transpose2d(input of input_shape, weight of weight_shape, p)`,
/// seen as the convolution it transposes: conv input = transposed output.
fn transpose_geometry(
    op: &str,
    input_shape: &[usize],
    weight_shape: &[usize],
    p: &ConvTranspose2dParams,
) -> Result<Geometry> {
    let cp = p.as_conv();
    check_params(op, &cp, p)?;
    let [n, cin_t, hi, wi] = dims4(op, "input", INPUT_LAYOUT, input_shape)?;
    let weight_layout = "[C_in, C_out/groups, kH, kW]";
    let [wc_in, cout_g, kh, kw] = dims4(op, "weight", weight_layout, weight_shape)?;
    check_sizes(op, &[n, cin_t, hi, wi], &[wc_in, cout_g, kh, kw])?;
    let op_max = p.output_padding.0.max(p.output_padding.1);
    if op_max > MAX_EXTENT {
        return arg_err!(
            "{op}: output_padding {:?} passes the limit of {MAX_EXTENT}",
            p.output_padding
        );
    }
    let g = p.groups;
    if wc_in != cin_t || cin_t % g != 0 {
        return shape_err!(
            "{op}: weight {weight_shape:?} must be [C_in, C_out/groups, kH, kW] with C_in = \
             {cin_t} from input {input_shape:?} divisible by groups {g}"
        );
    }
    if kh == 0 || kw == 0 || cout_g == 0 || hi == 0 || wi == 0 {
        return shape_err!(
            "{op}: input {input_shape:?} or weight {weight_shape:?} has a zero size"
        );
    }
    let (op_h, op_w) = p.output_padding;
    let (s, d) = (p.stride, p.dilation);
    if (op_h >= s.0 && op_h >= d.0) || (op_w >= s.1 && op_w >= d.1) {
        return arg_err!(
            "{op}: output_padding {:?} must be smaller than either stride {s:?} or dilation {d:?}",
            p.output_padding
        );
    }
    let out = |i: usize, k: usize, s: usize, pad: usize, d: usize, extra: usize| -> Result<usize> {
        let full = (i - 1) * s + d * (k - 1) + extra + 1;
        if full <= 2 * pad {
            return arg_err!(
                "{op}: padding {pad} removes the whole output of size {full} (input {i}, kernel {k})"
            );
        }
        Ok(full - 2 * pad)
    };
    let h = out(hi, kh, s.0, p.padding.0, d.0, op_h)?;
    let w = out(wi, kw, s.1, p.padding.1, d.1, op_w)?;
    Ok(Geometry {
        n,
        c_in: cout_g * g,
        h,
        w,
        c_out: cin_t,
        ho: hi,
        wo: wi,
        kh,
        kw,
        p: cp,
    })
}

fn check_shape(op: &str, what: &str, got: &[usize], want: &[usize]) -> Result<()> {
    if got != want {
        return shape_err!("{op}: {what} has shape {got:?}, expected {want:?}");
    }
    Ok(())
}

/// An error unless `bias` is absent or `[c]` on `x`'s device.
fn check_bias(op: &str, x: &Tensor, bias: Option<&Tensor>, c: usize) -> Result<()> {
    let Some(b) = bias else { return Ok(()) };
    x.check_same_device(b, op)?;
    check_shape(op, "bias", b.shape(), &[c])
}

/// `y + bias` per channel, for the paths that do not fuse it (the bias is checked).
fn add_bias(y: Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let Some(b) = bias else { return Ok(y) };
    y.add(&b.reshape(&[1, y.shape()[1], 1, 1])?)
}

// The three primitives, each choosing its path: the direct kernels for depthwise, the
// generic depthwise kernels where those do not apply, and the GEMM path for the rest.
// The GEMM path takes every geometry at every size; the others only what their loops
// fit in the device's loop budget (a kernel so large that one output column passes it).

/// The forward with an optional bias `[c_out]` (fused into the GEMM path's epilogue).
fn forward(g: &Geometry, x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let budget = x.device().loop_budget();
    if depthwise_rows4::supports(g, budget) {
        add_bias(depthwise_rows4::forward(g, x, w, None)?, bias)
    } else if direct::supports(g, budget) {
        add_bias(direct::forward(g, x, w, None)?, bias)
    } else if g.is_depthwise() && depthwise::fits_forward(g, budget) {
        add_bias(depthwise::forward(g, x, w)?, bias)
    } else {
        gemm::forward(g, x, w, bias)
    }
}

fn input_grad(g: &Geometry, dy: &Tensor, w: &Tensor) -> Result<Tensor> {
    let budget = dy.device().loop_budget();
    if depthwise_rows4::supports_input_grad(g, budget) {
        depthwise_rows4::input_grad(g, dy, w)
    } else if direct::supports_input_grad(g, budget) {
        direct::input_grad(g, dy, w)
    } else if direct::supports_strided_input_grad(g, budget) {
        direct::strided_input_grad(g, dy, w)
    } else if g.is_depthwise() && depthwise::fits_input_grad(g, budget) {
        depthwise::input_grad(g, dy, w)
    } else if let Some(flipped) = flipped_geometry(g) {
        // At stride 1 the input gradient is itself a convolution of dy, so it takes the
        // forward paths (implicit GEMM for small groups) instead of GEMM + col2im.
        forward(&flipped, dy, &flip_weight(g, w)?, None)
    } else {
        gemm::input_grad(g, dy, w)
    }
}

/// For a stride-1 convolution, the convolution of `dy` that yields its input gradient:
/// channels swapped per group, kernel rotated 180° (see [`flip_weight`]), padding
/// `dilation·(k - 1) - padding`. `None` for strided ones (and for padding beyond the
/// dilated kernel, where the gradient would need negative padding).
fn flipped_geometry(g: &Geometry) -> Option<Geometry> {
    let span = |k: usize, d: usize| d * (k - 1);
    let (sh, sw) = (span(g.kh, g.p.dilation.0), span(g.kw, g.p.dilation.1));
    if g.p.stride != (1, 1) || g.p.padding.0 > sh || g.p.padding.1 > sw {
        return None;
    }
    Some(Geometry {
        n: g.n,
        c_in: g.c_out,
        h: g.ho,
        w: g.wo,
        c_out: g.c_in,
        ho: g.h,
        wo: g.w,
        kh: g.kh,
        kw: g.kw,
        p: Conv2dParams {
            padding: (sh - g.p.padding.0, sw - g.p.padding.1),
            ..g.p
        },
    })
}

/// The weight of [`flipped_geometry`]'s convolution. Kernel: `shaders/conv_flip.wgsl`.
fn flip_weight(g: &Geometry, w: &Tensor) -> Result<Tensor> {
    const FLIP: crate::gpu::Kernel = crate::gpu::kernel!("conv_flip.wgsl");
    let shape = [g.c_in, g.cout_g(), g.kh, g.kw];
    let out = w.uninit_like(&shape)?;
    let total = out.numel();
    w.device().dispatch(
        &FLIP,
        "main",
        &[],
        &[w.buffer(), out.buffer()],
        &[
            total as u32,
            g.cin_g() as u32,
            g.cout_g() as u32,
            g.kh as u32,
            g.kw as u32,
        ],
        crate::gpu::Grid::for_items(total as u64, 256).trips(0),
    )?;
    Ok(out)
}

fn weight_grad(g: &Geometry, x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    let budget = x.device().loop_budget();
    if depthwise_rows4::supports(g, budget) {
        depthwise_rows4::weight_grad(g, x, dy)
    } else if direct::supports_weight_grad(g, budget) {
        direct::weight_grad(g, x, dy)
    } else if g.is_depthwise() {
        depthwise::weight_grad(g, x, dy)
    } else {
        gemm::weight_grad(g, x, dy)
    }
}

/// 2-D convolution: `x [N, C_in, H, W]`, `weight [C_out, C_in/groups, kH, kW]`, optional
/// `bias [C_out]` → `[N, C_out, Ho, Wo]`, as `torch.nn.functional.conv2d`.
pub fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    p: &Conv2dParams,
) -> Result<Tensor> {
    x.check_same_device(weight, "conv2d")?;
    let g = conv_geometry("conv2d", x.shape(), weight.shape(), p)?;
    check_bias("conv2d", x, bias, g.c_out)?;
    forward(&g, x, weight, bias)
}

/// [`conv2d`] without a bias, with the moments of each output channel computed by the
/// convolution's own last step where its path allows (depthwise convolutions on vec4
/// rows, pointwise ones over the whole batch's planes on adapters with 8-wide subgroups):
/// what a training batch norm after it merges ([`batch_norm_act_train_from`]) instead of
/// reading the output once more. `None` where the path does not, and the output as
/// [`conv2d`]'s.
///
/// [`batch_norm_act_train_from`]: crate::ops::norm::batch_norm_act_train_from
pub fn conv2d_with_moments(
    x: &Tensor,
    weight: &Tensor,
    p: &Conv2dParams,
) -> Result<(Tensor, Option<ChannelMoments>)> {
    let op = "conv2d_with_moments";
    x.check_same_device(weight, op)?;
    let g = conv_geometry(op, x.shape(), weight.shape(), p)?;
    let device = x.device();
    let max_segments = ChannelMoments::max_segments(device);
    let fused = if g.output_shape().contains(&0) {
        None
    } else if depthwise_rows4::supports(&g, device.loop_budget()) {
        depthwise_rows4::forward_moments(&g, x, weight, max_segments)?
    } else {
        gemm::forward_moments(&g, x, weight, max_segments)?
    };
    Ok(match fused {
        Some((y, partial)) => {
            let moments = ChannelMoments::new(partial, &y);
            (y, Some(moments))
        }
        None => (forward(&g, x, weight, None)?, None),
    })
}

/// [`conv2d`] without a bias, then an evaluation-mode batch norm and `act`: for
/// inference, nothing saved for a backward pass. Where the convolution's path allows
/// (pointwise convolutions over whole planes, depthwise ones on the direct kernels, on
/// adapters with 8-wide subgroups) the batch norm and the activation are the last step
/// of the convolution itself, saving a pass over its output; elsewhere they run after it.
/// The same numbers either way, up to float rounding.
pub fn conv2d_batch_norm_eval(
    x: &Tensor,
    weight: &Tensor,
    p: &Conv2dParams,
    bn: FrozenBatchNorm,
    act: BnAct,
) -> Result<Tensor> {
    let op = "conv2d_batch_norm_eval";
    x.check_same_device(weight, op)?;
    let g = conv_geometry(op, x.shape(), weight.shape(), p)?;
    let coef = bn.scale_shift(op, x, g.c_out)?;
    let budget = x.device().loop_budget();
    let rows4 = depthwise_rows4::supports(&g, budget);
    if rows4 || direct::supports(&g, budget) {
        // The direct kernels read the scale and shift past the weights.
        let flat = |t: &Tensor| t.reshape(&[1, t.numel()]);
        let w_coef = concat(&[&flat(weight)?, &flat(&coef)?], 1)?;
        let fold = Some((weight.numel(), act));
        return if rows4 {
            depthwise_rows4::forward(&g, x, &w_coef, fold)
        } else {
            direct::forward(&g, x, &w_coef, fold)
        };
    }
    if let Some(y) = gemm::forward_scale_shift(&g, x, weight, (&coef, act))? {
        return Ok(y);
    }
    scale_shift(&forward(&g, x, weight, None)?, &coef, act)
}

/// Gradient of [`conv2d`] with respect to its input, given the output gradient.
pub fn conv2d_backward_input(
    grad_out: &Tensor,
    weight: &Tensor,
    input_shape: &[usize],
    p: &Conv2dParams,
) -> Result<Tensor> {
    let op = "conv2d_backward_input";
    grad_out.check_same_device(weight, op)?;
    let g = conv_geometry(op, input_shape, weight.shape(), p)?;
    check_shape(op, "grad_out", grad_out.shape(), &g.output_shape())?;
    input_grad(&g, grad_out, weight)
}

/// Gradient of [`conv2d`] with respect to its weight, given the input and output gradient.
pub fn conv2d_backward_weight(
    x: &Tensor,
    grad_out: &Tensor,
    weight_shape: &[usize],
    p: &Conv2dParams,
) -> Result<Tensor> {
    let op = "conv2d_backward_weight";
    x.check_same_device(grad_out, op)?;
    let g = conv_geometry(op, x.shape(), weight_shape, p)?;
    check_shape(op, "grad_out", grad_out.shape(), &g.output_shape())?;
    weight_grad(&g, x, grad_out)
}

/// Gradient of a convolution's bias (either kind): the output gradient summed over
/// batch and space, `[N, C, H, W]` → `[C]`.
pub fn conv_backward_bias(grad_out: &Tensor) -> Result<Tensor> {
    dims4(
        "conv_backward_bias",
        "grad_out",
        INPUT_LAYOUT,
        grad_out.shape(),
    )?;
    grad_out.sum(&[0, 2, 3], false)
}

/// Transposed 2-D convolution: `x [N, C_in, H, W]`, `weight [C_in, C_out/groups, kH, kW]`,
/// optional `bias [C_out]` → `[N, C_out, Ho, Wo]` with
/// `Ho = (H - 1)·stride - 2·padding + dilation·(kH - 1) + output_padding + 1`, as
/// `torch.nn.functional.conv_transpose2d`.
pub fn conv_transpose2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    p: &ConvTranspose2dParams,
) -> Result<Tensor> {
    x.check_same_device(weight, "conv_transpose2d")?;
    let g = transpose_geometry("conv_transpose2d", x.shape(), weight.shape(), p)?;
    check_bias("conv_transpose2d", x, bias, g.c_in)?;
    add_bias(input_grad(&g, x, weight)?, bias)
}

/// Gradient of [`conv_transpose2d`] with respect to its input.
pub fn conv_transpose2d_backward_input(
    grad_out: &Tensor,
    weight: &Tensor,
    input_shape: &[usize],
    p: &ConvTranspose2dParams,
) -> Result<Tensor> {
    let op = "conv_transpose2d_backward_input";
    grad_out.check_same_device(weight, op)?;
    let g = transpose_geometry(op, input_shape, weight.shape(), p)?;
    check_shape(op, "grad_out", grad_out.shape(), &g.input_shape())?;
    forward(&g, grad_out, weight, None)
}

/// Gradient of [`conv_transpose2d`] with respect to its weight.
pub fn conv_transpose2d_backward_weight(
    x: &Tensor,
    grad_out: &Tensor,
    weight_shape: &[usize],
    p: &ConvTranspose2dParams,
) -> Result<Tensor> {
    let op = "conv_transpose2d_backward_weight";
    x.check_same_device(grad_out, op)?;
    let g = transpose_geometry(op, x.shape(), weight_shape, p)?;
    check_shape(op, "grad_out", grad_out.shape(), &g.input_shape())?;
    // The transposed conv's output gradient is the convolution's input; its input is the
    // convolution's output gradient.
    weight_grad(&g, grad_out, x)
}
