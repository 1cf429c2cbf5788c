//! Depthwise convolution (groups = input channels, any channel multiplier) where the
//! direct kernels (`direct.rs`) do not apply: dilated, or the input gradient of a strided
//! one. Each primitive is one launch for all channels. Kernel: `shaders/conv_depthwise.wgsl`.
//!
//! Rows longer than the loop budget allows are cut into column ranges, and the weight
//! gradient's sum over the batch into segments added up afterwards. A kernel so large
//! that one output column alone passes the budget is left to the GEMM path.

use super::Geometry;
use crate::error::Result;
use crate::gpu::{Grid, Kernel, kernel};
use crate::ops::reduce::{Reduction, reduce_with};
use crate::ops::segments::{Segments, items_within};
use crate::tensor::Tensor;

const DEPTHWISE: Kernel = kernel!("conv_depthwise.wgsl");
/// Invocations per workgroup (`WG` in the WGSL).
const WG: u64 = 64;
/// Loop iterations of an invocation besides its columns (index arithmetic, the tree
/// reduction of `backward_weight`).
const FIXED: u64 = 16;
/// Most output pixels one workgroup of `backward_weight` sums: 256 per invocation.
const WEIGHT_SEGMENT: usize = 256 * WG as usize;

/// Loop iterations per output column of `forward`: the column, then the rows and columns
/// of the kernel (their bounds are uniforms, so nothing is unrolled).
fn forward_per_column(g: &Geometry) -> u64 {
    2 + 2 * g.kh as u64 + (g.kh * g.kw) as u64
}

/// Loop iterations per input column of `backward_input`: the kernel's taps for each of
/// the channel multiplier's outputs.
fn input_grad_per_column(g: &Geometry) -> u64 {
    let mult = (g.c_out / g.c_in) as u64;
    2 + mult * (3 + 2 * g.kh as u64 + (g.kh * g.kw) as u64)
}

/// Whether `forward` can take this convolution: one output column within the budget.
pub(super) fn fits_forward(g: &Geometry, budget: u64) -> bool {
    items_within(budget, FIXED, forward_per_column(g)).is_some()
}

/// Whether `input_grad` can take this convolution.
pub(super) fn fits_input_grad(g: &Geometry, budget: u64) -> bool {
    items_within(budget, FIXED, input_grad_per_column(g)).is_some()
}

fn params(g: &Geometry, total: usize, segments: Segments) -> Vec<u32> {
    [
        total,
        g.n,
        g.c_in,
        g.h,
        g.w,
        g.c_out,
        g.ho,
        g.wo,
        g.kh,
        g.kw,
        g.p.stride.0,
        g.p.stride.1,
        g.p.padding.0,
        g.p.padding.1,
        g.p.dilation.0,
        g.p.dilation.1,
        g.c_out / g.c_in,
        segments.count,
        segments.len,
    ]
    .iter()
    .map(|&v| v as u32)
    .collect()
}

/// Launches `entry` with one invocation per row of `rows`, or per range of `width`
/// columns that fits the budget at `per_column` iterations each.
fn by_rows(
    g: &Geometry,
    entry: &'static str,
    (src, w, dst): (&Tensor, &Tensor, &Tensor),
    (rows, width): (usize, usize),
    per_column: u64,
) -> Result<()> {
    let budget = src.device().loop_budget();
    let columns = items_within(budget, FIXED, per_column).unwrap_or(1);
    let segments = Segments::split(width, columns);
    let total = rows * segments.count;
    src.device().dispatch(
        &DEPTHWISE,
        entry,
        &[],
        &[src.buffer(), w.buffer(), dst.buffer()],
        &params(g, total, segments),
        Grid::for_items(total as u64, WG).trips(FIXED + segments.len as u64 * per_column),
    )
}

/// One invocation per output row (or column range of it).
pub(super) fn forward(g: &Geometry, x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let y = x.uninit_like(&g.output_shape())?;
    let rows = g.n * g.c_out * g.ho;
    by_rows(
        g,
        "forward",
        (x, w, &y),
        (rows, g.wo),
        forward_per_column(g),
    )?;
    Ok(y)
}

/// One invocation per input row (or column range of it), gathering from the outputs
/// that read it.
pub(super) fn input_grad(g: &Geometry, dy: &Tensor, w: &Tensor) -> Result<Tensor> {
    let dx = dy.uninit_like(&g.input_shape())?;
    let rows = g.n * g.c_in * g.h;
    by_rows(
        g,
        "backward_input",
        (dy, w, &dx),
        (rows, g.w),
        input_grad_per_column(g),
    )?;
    Ok(dx)
}

/// Workgroups per weight element, each reducing a segment of the batch's output pixels;
/// the segments' partial sums are added up when there are several.
pub(super) fn weight_grad(g: &Geometry, x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    let weights = g.c_out * g.kh * g.kw;
    let budget = x.device().loop_budget();
    let per_lane = items_within(budget, FIXED, 1).unwrap_or(1);
    let pixels = g.n * g.ho * g.wo;
    let segments = Segments::split(pixels, (per_lane * WG as usize).min(WEIGHT_SEGMENT));
    let partial = x.uninit_like(&[weights, segments.count])?;
    let total = weights * segments.count;
    let trips = FIXED + segments.len.div_ceil(WG as usize) as u64;
    x.device().dispatch(
        &DEPTHWISE,
        "backward_weight",
        &[],
        &[x.buffer(), dy.buffer(), partial.buffer()],
        &params(g, total, segments),
        Grid::Linear(total as u64).trips(trips),
    )?;
    let dw = if segments.count == 1 {
        partial
    } else {
        reduce_with(&partial, &[1], false, Reduction::Sum, None, 1.0)?
    };
    dw.reshape(&g.weight_shape())
}
