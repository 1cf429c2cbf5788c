//! Depthwise convolution (groups = input channels, any channel multiplier) where the
//! direct kernels (`direct.rs`) do not apply: dilated, or the input gradient of a strided
//! one. Each primitive is one launch for all channels. Kernel: `shaders/conv_depthwise.wgsl`.

use super::Geometry;
use crate::error::Result;
use crate::gpu::{Grid, Kernel, kernel};
use crate::tensor::Tensor;

const DEPTHWISE: Kernel = kernel!("conv_depthwise.wgsl");
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
