//! Direct convolution for groups with few input channels — depthwise, ResNeXt-style
//! grouped — with dilation 1: a window slid along each row, weights in registers, one
//! launch per primitive for all groups. Kernel: `shaders/conv_direct.wgsl`.
//!
//! As GEMMs these would be many tiny matrix products (1 row each for depthwise, 4 for
//! ResNeXt 32×4d) whose im2col costs more than the arithmetic. A window and weights of
//! more than 64 values each made the driver (lavapipe) spill the unrolled loops and compile
//! for seconds, so a group whose weights do not fit is split into one block per output
//! channel (each block re-reads the group's window). Measured on lavapipe, that made
//! grouped convolutions no faster than the GEMM path, so today only depthwise ones (which
//! fit whole) come here; the blocking stays for large channel multipliers.

use super::Geometry;
use crate::error::Result;
use crate::gpu::{Grid, Kernel, kernel};
use crate::ops::norm::BnAct;
use crate::ops::reduce::{Reduction, reduce_with};
use crate::ops::segments::{Segments, items_within};
use crate::tensor::Tensor;

const DIRECT: Kernel = kernel!("conv_direct.wgsl");
const ZERO_INSERT: Kernel = kernel!("conv_zero_insert.wgsl");
/// Register budgets of the WGSL (`WINDOW_MAX`, `WEIGHTS_MAX`): one group's input window
/// and its weights.
const WINDOW_MAX: usize = 64;
const WEIGHTS_MAX: usize = 64;
/// Invocations per workgroup (`WG` in the WGSL).
const WG: u64 = 64;

/// Loop iterations of the kernels, counted as lavapipe counts them (see
/// [`crate::gpu::loops`]): `(fixed, per column)` for `cig` source channels per group and
/// `cog` destinations per block. The window and weight loops have override-constant
/// bounds, but the driver does not unroll all of them, so each is counted in full.
fn loop_cost(g: &Geometry, cig: usize, cog: usize) -> (u64, u64) {
    let window = (cig * g.kh * g.kw) as u64;
    let weights = cog as u64 * window;
    // Plus COG for the scale and shift of a forward with SCALE_SHIFT.
    let fixed = weights + 2 * cog as u64 + window + 16;
    let per_column = 2 + weights + cog as u64 + window + (cig * g.kh) as u64;
    (fixed, per_column)
}

/// Whether the direct kernels take this convolution's forward and weight gradient: a
/// group's input window must fit the registers, and one output column the loop budget.
pub(super) fn supports(g: &Geometry, budget: u64) -> bool {
    // Grouped convolutions with 4 input channels per group ran no faster here than on the
    // GEMM path (lavapipe) and compiled for seconds, so only depthwise takes this path.
    let (cog, _, _) = blocking(g, g.cin_g(), g.cout_g());
    let (fixed, per_column) = loop_cost(g, g.cin_g(), cog);
    g.is_depthwise()
        && g.p.dilation == (1, 1)
        && g.cin_g() * g.kh * g.kw <= WINDOW_MAX
        && items_within(budget, fixed, per_column).is_some()
}

/// Loop iterations of `weight_grad`: `(fixed, per item, per column)` — the final
/// reduction per weight of the window (a tree of 6 halvings each), the window's load per
/// item (a row piece), the products and the slide per column.
fn weight_grad_cost(g: &Geometry) -> (u64, u64, u64) {
    let window = (g.cin_g() * g.kh * g.kw) as u64;
    (
        8 * window + 16,
        2 + window + 8,
        2 + 2 * window + (g.cin_g() * g.kh) as u64,
    )
}

/// Whether they take the weight gradient: as [`supports`], with one item of one column
/// within the budget.
pub(super) fn supports_weight_grad(g: &Geometry, budget: u64) -> bool {
    let (fixed, per_item, per_column) = weight_grad_cost(g);
    supports(g, budget) && items_within(budget, fixed + per_item, per_column).is_some()
}

/// Whether they also take the input gradient (a stride-1 correlation with the flipped
/// kernel, which needs padding below the kernel size; the window then spans a group's
/// output channels).
pub(super) fn supports_input_grad(g: &Geometry, budget: u64) -> bool {
    let (cog, _, _) = blocking(g, g.cout_g(), g.cin_g());
    let (fixed, per_column) = loop_cost(g, g.cout_g(), cog);
    g.is_depthwise()
        && g.p.dilation == (1, 1)
        && g.cout_g() * g.kh * g.kw <= WINDOW_MAX
        && g.p.stride == (1, 1)
        && g.p.padding.0 < g.kh
        && g.p.padding.1 < g.kw
        && items_within(budget, fixed, per_column).is_some()
}

/// How invocations split the destination channels: `cig` source channels per group
/// feed `dst_per_group` destination channels; all of a group's destinations form one block
/// when their weights fit the registers, else each destination channel is its own block.
/// Returns (COG, blocks, src_div).
fn blocking(g: &Geometry, cig: usize, dst_per_group: usize) -> (usize, usize, usize) {
    let taps = g.kh * g.kw;
    if dst_per_group * cig * taps <= WEIGHTS_MAX {
        (dst_per_group, g.p.groups, 1)
    } else {
        (1, g.p.groups * dst_per_group, dst_per_group)
    }
}

/// What one launch of the kernel covers: rows of `dst` written from `src`, the blocking,
/// and how the work is cut into pieces (see the WGSL's `Params`).
struct Launch {
    total: usize,
    src: [usize; 3],
    dst: [usize; 3],
    stride: (usize, usize),
    pad: (usize, usize),
    blocks: (usize, usize),
    segments: Segments,
    chunk: (usize, usize),
}

impl Launch {
    fn words(&self, g: &Geometry) -> Vec<u32> {
        let Launch {
            total,
            src,
            dst,
            stride,
            pad,
            blocks,
            segments,
            chunk,
        } = *self;
        [
            total,
            g.n,
            src[0],
            src[1],
            src[2],
            dst[0],
            dst[1],
            dst[2],
            stride.0,
            stride.1,
            pad.0,
            pad.1,
            blocks.0,
            blocks.1,
            segments.count,
            segments.len,
            chunk.0,
            chunk.1,
            0, // coef_offset: set by forward_scale_shift
        ]
        .iter()
        .map(|&v| v as u32)
        .collect()
    }
}

fn overrides(g: &Geometry, cig: usize, cog: usize, flip: bool) -> Vec<(&'static str, f64)> {
    // The input gradient always runs at stride 1.
    let unit_stride = flip || g.p.stride.1 == 1;
    vec![
        ("KH", g.kh as f64),
        ("KW", g.kw as f64),
        ("CIG", cig as f64),
        ("COG", cog as f64),
        ("FLIP", f64::from(u8::from(flip))),
        ("UNIT_STRIDE", f64::from(u8::from(unit_stride))),
    ]
}

/// The `forward` entry: one invocation per (sample, block of destination channels,
/// destination row), or per column range of it when a row is longer than the budget.
fn slide_rows(
    g: &Geometry,
    (src, weight, dst): (&Tensor, &Tensor, &Tensor),
    (src_dims, dst_dims): ([usize; 3], [usize; 3]),
    (stride, pad): ((usize, usize), (usize, usize)),
    (flip, scale_shift): (bool, Option<(usize, BnAct)>),
) -> Result<()> {
    let (cig, dst_per_group) = if flip {
        (g.cout_g(), g.cin_g())
    } else {
        (g.cin_g(), g.cout_g())
    };
    let (cog, blocks, src_div) = blocking(g, cig, dst_per_group);
    let (fixed, per_column) = loop_cost(g, cig, cog);
    let budget = src.device().loop_budget();
    let columns = items_within(budget, fixed, per_column).unwrap_or(1);
    let segments = Segments::split(dst_dims[2], columns);
    let rows = g.n * blocks * dst_dims[1];
    let launch = Launch {
        total: rows * segments.count,
        src: src_dims,
        dst: dst_dims,
        stride,
        pad,
        blocks: (blocks, src_div),
        segments,
        chunk: (0, 0),
    };
    let mut overrides = overrides(g, cig, cog, flip);
    let mut words = launch.words(g);
    if let Some((coef_offset, act)) = scale_shift {
        overrides.extend([("SCALE_SHIFT", 1.0), ("ACT", act.code())]);
        *words.last_mut().expect("coef_offset") = coef_offset as u32;
    }
    src.device().dispatch(
        &DIRECT,
        "forward",
        &overrides,
        &[src.buffer(), weight.buffer(), dst.buffer()],
        &words,
        Grid::for_items(launch.total as u64, WG).trips(fixed + segments.len as u64 * per_column),
    )
}

/// The forward: the window slides along rows of the input. With `fold = Some((offset,
/// act))` each result ends in `act(v · scale + shift)` per output channel, `w` holding
/// the weights, then from `offset` a scale and shift per output channel.
pub(super) fn forward(
    g: &Geometry,
    x: &Tensor,
    w: &Tensor,
    fold: Option<(usize, BnAct)>,
) -> Result<Tensor> {
    let y = x.uninit_like(&g.output_shape())?;
    slide_rows(
        g,
        (x, w, &y),
        ([g.c_in, g.h, g.w], [g.c_out, g.ho, g.wo]),
        (g.p.stride, g.p.padding),
        (false, fold),
    )?;
    Ok(y)
}

/// The input gradient of a stride-1 convolution: the forward kernel over `dy` with the
/// kernel flipped, its channel roles swapped and the complementary padding.
pub(super) fn input_grad(g: &Geometry, dy: &Tensor, w: &Tensor) -> Result<Tensor> {
    let dx = dy.uninit_like(&g.input_shape())?;
    let pad = (g.kh - 1 - g.p.padding.0, g.kw - 1 - g.p.padding.1);
    slide_rows(
        g,
        (dy, w, &dx),
        ([g.c_out, g.ho, g.wo], [g.c_in, g.h, g.w]),
        ((1, 1), pad),
        (true, None),
    )?;
    Ok(dx)
}

/// Whether they take the input gradient of a strided convolution (as [`input_grad`] on
/// its output gradient spread out to stride 1: see [`strided_input_grad`]).
pub(super) fn supports_strided_input_grad(g: &Geometry, budget: u64) -> bool {
    let unit = Geometry {
        p: super::Conv2dParams {
            stride: (1, 1),
            ..g.p
        },
        ..*g
    };
    g.p.stride != (1, 1) && supports_input_grad(&unit, budget)
}

/// The input gradient of a strided convolution: `dy` spread out to stride 1 (zeros
/// between its pixels), then [`input_grad`]'s stride-1 correlation with the flipped
/// kernel. Input rows and columns past the last window read past the spread `dy`, which
/// the kernel takes as zeros, as it does the padding.
pub(super) fn strided_input_grad(g: &Geometry, dy: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (sh, sw) = g.p.stride;
    let (hu, wu) = ((g.ho - 1) * sh + 1, (g.wo - 1) * sw + 1);
    let up = spread(g, dy, (hu, wu))?;
    let dx = dy.uninit_like(&g.input_shape())?;
    let pad = (g.kh - 1 - g.p.padding.0, g.kw - 1 - g.p.padding.1);
    slide_rows(
        g,
        (&up, w, &dx),
        ([g.c_out, hu, wu], [g.c_in, g.h, g.w]),
        ((1, 1), pad),
        (true, None),
    )?;
    Ok(dx)
}

/// `dy` spread out to stride 1 in planes of `hu × wu` (at least `(ho - 1)·stride + 1`
/// each way): dy's pixels `stride` apart, zeros between and past them.
pub(super) fn spread(g: &Geometry, dy: &Tensor, (hu, wu): (usize, usize)) -> Result<Tensor> {
    let (sh, sw) = g.p.stride;
    let up = Tensor::zeros(dy.device(), &[g.n, g.c_out, hu, wu])?;
    let total = dy.numel();
    dy.device().dispatch(
        &ZERO_INSERT,
        "main",
        &[],
        &[dy.buffer(), up.buffer()],
        &[total, g.ho, g.wo, hu, wu, sh, sw].map(|v| v as u32),
        Grid::for_items(total as u64, 256).trips(0),
    )?;
    Ok(up)
}

/// Most items (row pieces) one workgroup of `weight_grad` takes: several per invocation,
/// so the workgroup's final reduction is amortized, but spread over many workgroups
/// when the batch is large (a GPU wants them).
const WEIGHT_GRAD_ITEMS: usize = 16 * WG as usize;

/// Workgroups per (output channel, segment of row pieces); the segments' partial sums
/// are added up by a reduction when there are several.
pub(super) fn weight_grad(g: &Geometry, x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    let (cog, blocks, src_div) = blocking(g, g.cin_g(), g.cout_g());
    let window = g.cin_g() * g.kh * g.kw;
    let (fixed, per_item, per_column) = weight_grad_cost(g);
    let budget = x.device().loop_budget();
    let cols = items_within(budget, fixed + per_item, per_column)
        .unwrap_or(1)
        .min(g.wo.max(1));
    let row_chunks = Segments::split(g.wo, cols);
    let item_cost = per_item + row_chunks.len as u64 * per_column;
    let per_lane = items_within(budget, fixed, item_cost).unwrap_or(1);
    let items = g.n * g.ho * row_chunks.count;
    let segments = Segments::split(items, (per_lane * WG as usize).min(WEIGHT_GRAD_ITEMS));
    let launch = Launch {
        total: g.c_out * segments.count,
        src: [g.c_in, g.h, g.w],
        dst: [g.c_out, g.ho, g.wo],
        stride: g.p.stride,
        pad: g.p.padding,
        blocks: (blocks, src_div),
        segments,
        chunk: (row_chunks.len, row_chunks.count),
    };
    let partial = x.uninit_like(&[g.c_out, segments.count, window])?;
    let trips = fixed + segments.len.div_ceil(WG as usize) as u64 * item_cost;
    x.device().dispatch(
        &DIRECT,
        "weight_grad",
        &overrides(g, g.cin_g(), cog, false),
        &[x.buffer(), dy.buffer(), partial.buffer()],
        &launch.words(g),
        Grid::Linear(launch.total as u64).trips(trips),
    )?;
    let dw = if segments.count == 1 {
        partial
    } else {
        reduce_with(&partial, &[1], false, Reduction::Sum, None, 1.0)?
    };
    dw.reshape(&g.weight_shape())
}
