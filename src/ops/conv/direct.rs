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
use crate::tensor::Tensor;

const DIRECT: Kernel = kernel!("conv_direct.wgsl");
/// Register budgets of the WGSL (`WINDOW_MAX`, `WEIGHTS_MAX`): one group's input window
/// and its weights.
const WINDOW_MAX: usize = 64;
const WEIGHTS_MAX: usize = 64;
/// Invocations per workgroup (`WG` in the WGSL).
const WG: u64 = 64;

/// Whether the direct kernels take this convolution's forward and weight gradient: a
/// group's input window must fit the registers.
pub(super) fn supports(g: &Geometry) -> bool {
    // Grouped convolutions with 4 input channels per group ran no faster here than on the
    // GEMM path (lavapipe) and compiled for seconds, so only depthwise takes this path.
    g.is_depthwise() && g.p.dilation == (1, 1) && g.cin_g() * g.kh * g.kw <= WINDOW_MAX
}

/// Whether they also take the input gradient (a stride-1 correlation with the flipped
/// kernel, which needs padding below the kernel size; the window then spans a group's
/// output channels).
pub(super) fn supports_input_grad(g: &Geometry) -> bool {
    g.is_depthwise()
        && g.p.dilation == (1, 1)
        && g.cout_g() * g.kh * g.kw <= WINDOW_MAX
        && g.p.stride == (1, 1)
        && g.p.padding.0 < g.kh
        && g.p.padding.1 < g.kw
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

/// Parameter words: rows of `dst` are written from `src`.
#[allow(clippy::too_many_arguments)]
fn params(
    g: &Geometry,
    total: usize,
    src: [usize; 3],
    dst: [usize; 3],
    stride: (usize, usize),
    pad: (usize, usize),
    (blocks, src_div): (usize, usize),
) -> Vec<u32> {
    [
        total, g.n, src[0], src[1], src[2], dst[0], dst[1], dst[2], stride.0, stride.1, pad.0,
        pad.1, blocks, src_div,
    ]
    .iter()
    .map(|&v| v as u32)
    .collect()
}

fn overrides(g: &Geometry, cig: usize, cog: usize, flip: bool) -> [(&'static str, f64); 6] {
    // The input gradient always runs at stride 1.
    let unit_stride = flip || g.p.stride.1 == 1;
    [
        ("KH", g.kh as f64),
        ("KW", g.kw as f64),
        ("CIG", cig as f64),
        ("COG", cog as f64),
        ("FLIP", f64::from(u8::from(flip))),
        ("UNIT_STRIDE", f64::from(u8::from(unit_stride))),
    ]
}

/// One invocation per (sample, block of output channels, output row).
pub(super) fn forward(g: &Geometry, x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let y = x.uninit_like(&g.output_shape())?;
    let (cog, blocks, src_div) = blocking(g, g.cin_g(), g.cout_g());
    let rows = g.n * blocks * g.ho;
    let words = params(
        g,
        rows,
        [g.c_in, g.h, g.w],
        [g.c_out, g.ho, g.wo],
        g.p.stride,
        g.p.padding,
        (blocks, src_div),
    );
    x.device().dispatch(
        &DIRECT,
        "forward",
        &overrides(g, g.cin_g(), cog, false),
        &[x.buffer(), w.buffer(), y.buffer()],
        &words,
        Grid::for_items(rows as u64, WG),
    )?;
    Ok(y)
}

/// The input gradient of a stride-1 convolution: the forward kernel over `dy` with the
/// kernel flipped, its channel roles swapped and the complementary padding.
pub(super) fn input_grad(g: &Geometry, dy: &Tensor, w: &Tensor) -> Result<Tensor> {
    let dx = dy.uninit_like(&g.input_shape())?;
    let (cog, blocks, src_div) = blocking(g, g.cout_g(), g.cin_g());
    let rows = g.n * blocks * g.h;
    let pad = (g.kh - 1 - g.p.padding.0, g.kw - 1 - g.p.padding.1);
    let words = params(
        g,
        rows,
        [g.c_out, g.ho, g.wo],
        [g.c_in, g.h, g.w],
        (1, 1),
        pad,
        (blocks, src_div),
    );
    dy.device().dispatch(
        &DIRECT,
        "forward",
        &overrides(g, g.cout_g(), cog, true),
        &[dy.buffer(), w.buffer(), dx.buffer()],
        &words,
        Grid::for_items(rows as u64, WG),
    )?;
    Ok(dx)
}

/// One workgroup per output channel, reducing over batch and rows: a single launch.
pub(super) fn weight_grad(g: &Geometry, x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    let dw = x.uninit_like(&g.weight_shape())?;
    let (cog, blocks, src_div) = blocking(g, g.cin_g(), g.cout_g());
    let words = params(
        g,
        g.c_out,
        [g.c_in, g.h, g.w],
        [g.c_out, g.ho, g.wo],
        g.p.stride,
        g.p.padding,
        (blocks, src_div),
    );
    x.device().dispatch(
        &DIRECT,
        "weight_grad",
        &overrides(g, g.cin_g(), cog, false),
        &[x.buffer(), dy.buffer(), dw.buffer()],
        &words,
        Grid::Linear(g.c_out as u64),
    )?;
    Ok(dw)
}
