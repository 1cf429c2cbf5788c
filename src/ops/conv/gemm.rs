//! The GEMM path of convolution: im2col (or, for 1×1 stride-1 convolutions, a plain
//! transpose) turns each primitive into matmuls batched over (sample, group), so grouped
//! convolutions run all groups in one launch. The im2col buffers are bounded by processing
//! the batch in chunks.
//! Kernels: `shaders/conv_im2col.wgsl`, `shaders/conv_col2im.wgsl` and the matmul kernels.

use super::Geometry;
use crate::error::Result;
use crate::gpu::{Grid, Kernel, kernel};
use crate::ops::matmul::{MatmulKernel, MatrixView, Packed, gemm, pack};
use crate::tensor::Tensor;

const IM2COL: Kernel = kernel!("conv_im2col.wgsl");
const COL2IM: Kernel = kernel!("conv_col2im.wgsl");
const IMPLICIT: Kernel = kernel!("conv_implicit.wgsl");

/// Most bytes of im2col/col2im scratch per chunk of the batch.
const SCRATCH_BYTES: usize = 32 << 20;
/// Invocations per workgroup of the im2col/col2im kernels (`WG` in their WGSL).
const WG: u64 = 64;

/// 1×1, stride 1, no padding: every input pixel is its own receptive field.
fn is_pointwise(g: &Geometry) -> bool {
    g.kh == 1 && g.kw == 1 && g.p.stride == (1, 1) && g.p.padding == (0, 0)
}

/// The batch in chunks `(first sample, samples)` whose scratch fits [`SCRATCH_BYTES`].
fn chunks(g: &Geometry, scratch_floats_per_sample: usize) -> impl Iterator<Item = (usize, usize)> {
    let per_sample = (scratch_floats_per_sample * 4).max(1);
    let size = (SCRATCH_BYTES / per_sample).clamp(1, g.n.max(1));
    let n = g.n;
    (0..n).step_by(size).map(move |n0| (n0, size.min(n - n0)))
}

/// The geometry words shared by both im2col/col2im parameter blocks.
fn geometry_words(g: &Geometry, invocations: usize, n0: usize) -> Vec<u32> {
    [
        invocations,
        n0,
        g.c_in,
        g.h,
        g.w,
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
        g.p.groups,
        g.cin_g(),
        g.k_g(),
    ]
    .iter()
    .map(|&v| v as u32)
    .collect()
}

/// im2col of samples `n0..n0 + count`: `rows` rows of `row_len` floats, laid out by `entry`
/// (`pixel_major` or `tap_major`), as an operand whose rows are `k = row_len` long.
fn im2col(
    g: &Geometry,
    x: &Tensor,
    entry: &'static str,
    (n0, count): (usize, usize),
    rows_per_matrix: usize,
    row_len: usize,
) -> Result<Packed> {
    let matrices = count * g.p.groups;
    let rows = matrices * rows_per_matrix;
    let col = x.uninit_like(&[rows, row_len])?;
    let mut params = geometry_words(g, rows, n0);
    params.push(row_len as u32);
    x.device().dispatch(
        &IM2COL,
        entry,
        &[],
        &[x.buffer(), col.buffer()],
        &params,
        Grid::for_items(rows as u64, WG),
    )?;
    pack(
        &col,
        MatrixView {
            offset: 0,
            batch_stride: rows_per_matrix * row_len,
            batch_mod: matrices,
            rows: rows_per_matrix,
            k: row_len,
            row_stride: row_len,
            col_stride: 1,
        },
    )
}

/// Output channels per group up to which the forward gathers im2col values inside the
/// product (`conv_implicit.wgsl`) instead of writing them out first. Each im2col value is
/// used once per output channel of its group: with few (grouped convolutions) the im2col
/// pass costs more than the product — ResNeXt-style 4 per group ran 1.7x faster implicit
/// on lavapipe — while with 64 the explicit path's plain vec4 loads won (15 vs 10 GFLOP/s).
const IMPLICIT_MAX_COUT_G: usize = 16;

/// Whether the forward takes the implicit-GEMM kernel (written for 8-wide subgroups).
fn use_implicit(g: &Geometry, x: &Tensor) -> bool {
    g.cout_g() <= IMPLICIT_MAX_COUT_G
        && !is_pointwise(g)
        && x.device().summary().subgroup_sizes == Some((8, 8))
}

/// The forward as one implicit-GEMM launch over every (sample, group): no scratch.
fn implicit_forward(
    g: &Geometry,
    x: &Tensor,
    weights: &Packed,
    bias: Option<&Tensor>,
    y: Tensor,
) -> Result<Tensor> {
    let (groups, cog, k4) = (g.p.groups, g.cout_g(), g.k_g().div_ceil(4));
    let hwo = g.ho * g.wo;
    // 8 output channels and 64 pixels per subgroup, 8 subgroups per workgroup: stacked
    // along the channels when there are more than 8, else along the pixels.
    let along_pixels = cog <= 8;
    let wg_y = if along_pixels {
        8
    } else {
        crate::ops::matmul::subgroups_for_rows(cog)
    };
    let (tile_rows, tile_cols) = if along_pixels {
        (8, 64 * wg_y)
    } else {
        (8 * wg_y, 64)
    };
    let words: Vec<u32> = [
        cog,
        hwo,
        k4,
        cog * k4,
        groups,
        g.c_in,
        g.h,
        g.w,
        g.wo,
        g.p.stride.0,
        g.p.stride.1,
        g.p.padding.0,
        g.p.padding.1,
        g.p.dilation.0,
        g.p.dilation.1,
        g.kh,
        g.kw,
        g.cin_g(),
        g.c_out,
    ]
    .iter()
    .map(|&v| v as u32)
    .collect();
    let overrides = [
        ("WG_Y", wg_y as f64),
        ("SUBGROUPS_ALONG_PIXELS", f64::from(u8::from(along_pixels))),
        ("HAS_BIAS", f64::from(u8::from(bias.is_some()))),
    ];
    // Without a bias any buffer fills the binding; the kernel never reads it.
    let bias_buffer = bias.unwrap_or(x).buffer();
    // (sample, group) pairs past the grid's z limit run in parts.
    let pairs = g.n * groups;
    let max_z = x.device().limits().max_compute_workgroups_per_dimension as usize;
    for z_base in (0..pairs).step_by(max_z) {
        let grid = Grid::Xyz([
            hwo.div_ceil(tile_cols) as u32,
            cog.div_ceil(tile_rows) as u32,
            (pairs - z_base).min(max_z) as u32,
        ]);
        let mut params = words.clone();
        params.push(z_base as u32);
        x.device().dispatch(
            &IMPLICIT,
            "main",
            &overrides,
            &[weights.buffer(), x.buffer(), y.buffer(), bias_buffer],
            &params,
            grid,
        )?;
    }
    Ok(y)
}

/// Forward: `y[n, g] = W[g] · col[n, g]ᵀ`, one matmul per (sample, group), all in one launch.
/// The bias (`[c_out]`), when given, is added in the product's epilogue.
pub(super) fn forward(
    g: &Geometry,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
) -> Result<Tensor> {
    let y = x.uninit_like(&g.output_shape())?;
    let (groups, cog, kg, hwo) = (g.p.groups, g.cout_g(), g.k_g(), g.ho * g.wo);
    let k4 = kg.div_ceil(4) * 4;
    let weights = pack(
        w,
        MatrixView {
            offset: 0,
            batch_stride: cog * kg,
            batch_mod: groups,
            rows: cog,
            k: kg,
            row_stride: kg,
            col_stride: 1,
        },
    )?;
    if use_implicit(g, x) {
        return implicit_forward(g, x, &weights, bias, y);
    }
    for (n0, count) in chunks(g, groups * hwo * k4) {
        let cols = if is_pointwise(g) {
            // The input's pixels are the columns already; they only need transposing.
            let hw = g.h * g.w;
            pack(
                x,
                MatrixView {
                    offset: n0 * g.c_in * hw,
                    batch_stride: g.cin_g() * hw,
                    batch_mod: count * groups,
                    rows: hw,
                    k: kg,
                    row_stride: 1,
                    col_stride: hw,
                },
            )?
        } else {
            im2col(g, x, "pixel_major", (n0, count), hwo, k4)?
        };
        let out = (n0 * g.c_out * hwo, cog * hwo);
        gemm(
            &weights,
            &cols,
            &y,
            out,
            (cog, hwo, kg),
            count * groups,
            bias.map(|b| (b, groups)),
            MatmulKernel::Auto,
        )?;
    }
    Ok(y)
}

/// Input gradient: `dcol[n, g] = dy[n, g]ᵀ · W[g]`, then col2im gathers it into `dx`.
pub(super) fn input_grad(g: &Geometry, dy: &Tensor, w: &Tensor) -> Result<Tensor> {
    let dx = dy.uninit_like(&g.input_shape())?;
    let (groups, cog, kg, hwo) = (g.p.groups, g.cout_g(), g.k_g(), g.ho * g.wo);
    // Wᵀ per group: row = tap, k = output channel.
    let weights_t = pack(
        w,
        MatrixView {
            offset: 0,
            batch_stride: cog * kg,
            batch_mod: groups,
            rows: kg,
            k: cog,
            row_stride: 1,
            col_stride: kg,
        },
    )?;
    let pointwise = is_pointwise(g);
    let scratch = if pointwise { 0 } else { groups * hwo * kg };
    for (n0, count) in chunks(g, scratch) {
        let matrices = count * groups;
        // dy per (sample, group) with rows = output pixels, k = output channel.
        let dy_t = pack(
            dy,
            MatrixView {
                offset: n0 * g.c_out * hwo,
                batch_stride: cog * hwo,
                batch_mod: matrices,
                rows: hwo,
                k: cog,
                row_stride: 1,
                col_stride: hwo,
            },
        )?;
        if pointwise {
            // dx[n, g] = W[g]ᵀ · dy[n, g]: rows = input channel, columns = pixels.
            let out = (n0 * g.c_in * hwo, g.cin_g() * hwo);
            gemm(
                &weights_t,
                &dy_t,
                &dx,
                out,
                (kg, hwo, cog),
                matrices,
                None,
                MatmulKernel::Auto,
            )?;
            continue;
        }
        let dcol = dy.uninit_like(&[matrices * hwo, kg])?;
        gemm(
            &dy_t,
            &weights_t,
            &dcol,
            (0, hwo * kg),
            (hwo, kg, cog),
            matrices,
            None,
            MatmulKernel::Auto,
        )?;
        let total = count * g.c_in * g.h * g.w;
        dy.device().dispatch(
            &COL2IM,
            "main",
            &[],
            &[dcol.buffer(), dx.buffer()],
            &geometry_words(g, total, n0),
            Grid::for_items(total as u64, WG),
        )?;
    }
    Ok(dx)
}

/// Weight gradient: `dW[g] = Σ_n dy[n, g] · colᵀ[n, g]`, the per-sample products summed.
pub(super) fn weight_grad(g: &Geometry, x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    let (groups, cog, kg, hwo) = (g.p.groups, g.cout_g(), g.k_g(), g.ho * g.wo);
    let hwo4 = hwo.div_ceil(4) * 4;
    let mut total: Option<Tensor> = None;
    for (n0, count) in chunks(g, groups * kg * hwo4) {
        let matrices = count * groups;
        // dy per (sample, group): rows = output channel, k = pixel.
        let dy_rows = pack(
            dy,
            MatrixView {
                offset: n0 * g.c_out * hwo,
                batch_stride: cog * hwo,
                batch_mod: matrices,
                rows: cog,
                k: hwo,
                row_stride: hwo,
                col_stride: 1,
            },
        )?;
        let cols = if is_pointwise(g) {
            let hw = g.h * g.w;
            pack(
                x,
                MatrixView {
                    offset: n0 * g.c_in * hw,
                    batch_stride: g.cin_g() * hw,
                    batch_mod: matrices,
                    rows: kg,
                    k: hw,
                    row_stride: hw,
                    col_stride: 1,
                },
            )?
        } else {
            im2col(g, x, "tap_major", (n0, count), kg, hwo4)?
        };
        let partial = x.uninit_like(&[count, g.c_out * kg])?;
        gemm(
            &dy_rows,
            &cols,
            &partial,
            (0, cog * kg),
            (cog, kg, hwo),
            matrices,
            None,
            MatmulKernel::Auto,
        )?;
        let chunk_sum = partial.sum(&[0], false)?;
        total = Some(match total {
            Some(t) => t.add(&chunk_sum)?,
            None => chunk_sum,
        });
    }
    match total {
        Some(t) => t.reshape(&g.weight_shape()),
        None => Tensor::zeros(x.device(), &g.weight_shape()),
    }
}
