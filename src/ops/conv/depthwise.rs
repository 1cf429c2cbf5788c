//! Depthwise convolution (groups = input channels, any channel multiplier): its own
//! kernels, because as a GEMM each group would be a 1-row matrix product. Each primitive is
//! one launch for all channels.
//!
//! Kernels: `shaders/conv_depthwise_rows.wgsl` (the fast path: a window slid along each
//! row, for dilation 1 and kernels up to 7×7; the input gradient there needs stride 1 and
//! one output channel per input channel) and `shaders/conv_depthwise.wgsl` (everything else).

use super::Geometry;
use crate::error::Result;
use crate::gpu::{Grid, Kernel, kernel};
use crate::tensor::Tensor;

const DEPTHWISE: Kernel = kernel!("conv_depthwise.wgsl");
const DEPTHWISE_ROWS: Kernel = kernel!("conv_depthwise_rows.wgsl");

/// Largest kernel side the sliding-window kernels hold in registers (`MAX_K` in the WGSL).
const MAX_K: usize = 7;

fn has_fast_path(g: &Geometry) -> bool {
    g.p.dilation == (1, 1) && g.kh <= MAX_K && g.kw <= MAX_K
}

/// The sliding-window kernels' parameters: `src` is read, `dst`-shaped rows are written.
#[allow(clippy::too_many_arguments)]
fn rows_params(
    total: usize,
    n: usize,
    src: [usize; 3],
    dst: [usize; 3],
    stride_h: usize,
    pad: (usize, usize),
    mult: usize,
) -> Vec<u32> {
    [
        total, n, src[0], src[1], src[2], dst[0], dst[1], dst[2], stride_h, pad.0, pad.1, mult,
    ]
    .iter()
    .map(|&v| v as u32)
    .collect()
}

fn rows_overrides(g: &Geometry, flip: bool) -> [(&'static str, f64); 4] {
    [
        ("KH", g.kh as f64),
        ("KW", g.kw as f64),
        ("SW", if flip { 1.0 } else { g.p.stride.1 as f64 }),
        ("FLIP", f64::from(u8::from(flip))),
    ]
}
/// Invocations per workgroup (`WG` in the WGSL).
const WG: u64 = 64;

fn params(g: &Geometry, total: usize) -> Vec<u32> {
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
    ]
    .iter()
    .map(|&v| v as u32)
    .collect()
}

/// One invocation per output row.
pub(super) fn forward(g: &Geometry, x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let y = x.uninit_like(&g.output_shape())?;
    let rows = g.n * g.c_out * g.ho;
    if has_fast_path(g) {
        let mult = g.c_out / g.c_in;
        let params = rows_params(
            rows,
            g.n,
            [g.c_in, g.h, g.w],
            [g.c_out, g.ho, g.wo],
            g.p.stride.0,
            g.p.padding,
            mult,
        );
        x.device().dispatch(
            &DEPTHWISE_ROWS,
            "forward",
            &rows_overrides(g, false),
            &[x.buffer(), w.buffer(), y.buffer()],
            &params,
            Grid::for_items(rows as u64, WG),
        )?;
        return Ok(y);
    }
    x.device().dispatch(
        &DEPTHWISE,
        "forward",
        &[],
        &[x.buffer(), w.buffer(), y.buffer()],
        &params(g, rows),
        Grid::for_items(rows as u64, WG),
    )?;
    Ok(y)
}

/// One invocation per input row, gathering from the outputs that read it.
pub(super) fn input_grad(g: &Geometry, dy: &Tensor, w: &Tensor) -> Result<Tensor> {
    let dx = dy.uninit_like(&g.input_shape())?;
    let rows = g.n * g.c_in * g.h;
    let (ph, pw) = g.p.padding;
    if has_fast_path(g) && g.p.stride == (1, 1) && g.c_out == g.c_in && ph < g.kh && pw < g.kw {
        // A stride-1 correlation with the flipped kernel and the complementary padding.
        let pad = (g.kh - 1 - ph, g.kw - 1 - pw);
        let params = rows_params(
            rows,
            g.n,
            [g.c_out, g.ho, g.wo],
            [g.c_in, g.h, g.w],
            1,
            pad,
            1,
        );
        dy.device().dispatch(
            &DEPTHWISE_ROWS,
            "forward",
            &rows_overrides(g, true),
            &[dy.buffer(), w.buffer(), dx.buffer()],
            &params,
            Grid::for_items(rows as u64, WG),
        )?;
        return Ok(dx);
    }
    dy.device().dispatch(
        &DEPTHWISE,
        "backward_input",
        &[],
        &[dy.buffer(), w.buffer(), dx.buffer()],
        &params(g, rows),
        Grid::for_items(rows as u64, WG),
    )?;
    Ok(dx)
}

/// One workgroup per weight element, reducing over batch and space: a single launch.
pub(super) fn weight_grad(g: &Geometry, x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    let dw = x.uninit_like(&g.weight_shape())?;
    if has_fast_path(g) {
        let mult = g.c_out / g.c_in;
        let params = rows_params(
            g.c_out,
            g.n,
            [g.c_in, g.h, g.w],
            [g.c_out, g.ho, g.wo],
            g.p.stride.0,
            g.p.padding,
            mult,
        );
        x.device().dispatch(
            &DEPTHWISE_ROWS,
            "weight_grad",
            &rows_overrides(g, false),
            &[x.buffer(), dy.buffer(), dw.buffer()],
            &params,
            Grid::Linear(g.c_out as u64),
        )?;
        return Ok(dw);
    }
    let weights = g.c_out * g.kh * g.kw;
    x.device().dispatch(
        &DEPTHWISE,
        "backward_weight",
        &[],
        &[x.buffer(), dy.buffer(), dw.buffer()],
        &params(g, weights),
        Grid::Linear(weights as u64),
    )?;
    Ok(dw)
}
