//! The GEMM path of convolution: im2col (or, for 1×1 stride-1 convolutions, a plain
//! transpose) turns each primitive into matmuls batched over (sample, group), so grouped
//! convolutions run all groups in one launch. It takes every geometry at every size:
//! - the im2col/col2im scratch is bounded by working in chunks — several whole samples,
//!   or, when one sample is too large, ranges of its output pixels;
//! - long im2col rows are written by several invocations, large kernels' col2im taps
//!   gathered in several launches, and long products split along K (see `gemm`), so no
//!   invocation loops past the device's loop budget.
//!
//! Kernels: `shaders/conv_im2col.wgsl`, `shaders/conv_col2im.wgsl`,
//! `shaders/conv_implicit.wgsl` and the matmul kernels.

use std::ops::Range;

use super::Geometry;
use crate::error::{Error, Result};
use crate::gpu::{Device, Grid, Kernel, kernel};
use crate::ops::matmul::{
    ColumnPlanes, MatmulKernel, MatrixView, Output, Packed, gemm, k_major, k_major_fits_one_pass,
    k_planes, moment_segments, pack, place,
};
use crate::ops::norm::BnAct;
use crate::ops::reduce::{Reduction, reduce_with};
use crate::ops::segments::{Segments, items_within};
use crate::tensor::Tensor;

const IM2COL: Kernel = kernel!("conv_im2col.wgsl");
const COL2IM: Kernel = kernel!("conv_col2im.wgsl");
const IMPLICIT: Kernel = kernel!("conv_implicit.wgsl");

/// Most bytes of im2col/col2im scratch per chunk.
const SCRATCH_BYTES: usize = 32 << 20;
/// Most output pixels in one chunk: the products tile pixels by at least 8, so every
/// grid dimension stays within 65,535 workgroups.
const MAX_CHUNK_PIXELS: usize = 65_535 * 8;
/// Invocations per workgroup of the im2col/col2im kernels (`WG` in their WGSL).
const WG: u64 = 64;
/// Loop iterations of an im2col/col2im invocation besides its main loop.
const FIXED: u64 = 8;

/// 1×1, stride 1, no padding: every input pixel is its own receptive field.
fn is_pointwise(g: &Geometry) -> bool {
    g.kh == 1 && g.kw == 1 && g.p.stride == (1, 1) && g.p.padding == (0, 0)
}

/// A pointwise product over every pixel of a chunk's samples at once, `out[n] = a ·
/// src[n]` with `src` `[k, hw]` and `out` `[m, hw]` per sample (NCHW), the columns running
/// plane after plane: one product of `m × (samples · hw)` instead of one per sample, whose
/// 64-column tiles a 4×4 image would fill a quarter of. Only for one group (the weights
/// shared by every column) of whole samples, where the kernel reads `src` in place and K
/// fits one pass; `Ok(false)` otherwise, and nothing ran.
fn pointwise_over_planes(
    a: &Packed,
    src: &Tensor,
    out: &Tensor,
    (m, k, hw): (usize, usize, usize),
    chunk: &Chunk,
    epilogue: Epilogue,
) -> Result<bool> {
    if chunk.len() != hw || !k_major_fits_one_pass(src.device(), k) {
        return Ok(false);
    }
    let columns = chunk.count * hw;
    let view = MatrixView {
        offset: chunk.n0 * k * hw,
        batch_stride: 0,
        batch_mod: 1,
        rows: columns,
        k,
        row_stride: 1,
        col_stride: hw,
    };
    let planes = ColumnPlanes {
        len: hw,
        b_stride: k * hw,
        c_stride: m * hw,
    };
    let Some(mut b) = k_major(src, view, Some(planes)) else {
        return Ok(false);
    };
    if let Some((coef, act)) = epilogue.scale_shift {
        b = b.with_scale_shift(coef, act)?;
    }
    if let Some(moments) = epilogue.moments {
        b = b.with_moments(moments)?;
    }
    let c = Output {
        tensor: out,
        offset: chunk.n0 * m * hw,
        matrix_stride: 0,
        row_stride: hw,
    };
    let bias = epilogue.bias.map(|b| (b, 1));
    gemm(a, &b, c, (m, columns, k), 1, bias, MatmulKernel::Auto)?;
    Ok(true)
}

/// What a pointwise product over planes does besides the product: add a bias, end in a
/// folded batch norm and its activation, or write the moments of every row (see
/// [`Packed::with_moments`](crate::ops::matmul::Packed::with_moments)).
#[derive(Clone, Copy, Default)]
struct Epilogue<'a> {
    bias: Option<&'a Tensor>,
    scale_shift: Option<(&'a Tensor, BnAct)>,
    moments: Option<&'a Tensor>,
}

/// A piece of the work: samples `n0..n0 + count` and, of each, output pixels `pixels`
/// (all of them, unless one sample alone is too large and `count` is 1).
#[derive(Clone, Debug)]
struct Chunk {
    n0: usize,
    count: usize,
    pixels: Range<usize>,
}

impl Chunk {
    fn len(&self) -> usize {
        self.pixels.len()
    }

    /// (sample, group) products of the chunk.
    fn matrices(&self, g: &Geometry) -> usize {
        self.count * g.p.groups
    }

    /// Whether this is the first chunk of its samples (it writes, the others add).
    fn is_first(&self) -> bool {
        self.pixels.start == 0
    }
}

/// The work in chunks whose scratch fits [`SCRATCH_BYTES`] and one storage binding:
/// `floats_per_pixel` per output pixel of a sample (im2col columns) plus
/// `floats_per_sample` per sample (per-sample partial products). As many whole samples
/// as fit, else one sample's pixels in ranges.
fn chunks(
    g: &Geometry,
    device: &Device,
    floats_per_pixel: usize,
    floats_per_sample: usize,
) -> Vec<Chunk> {
    let scratch = SCRATCH_BYTES.min(device.limits().max_storage_buffer_binding_size as usize);
    let hwo = g.ho * g.wo;
    let pixels_fit = (scratch / (floats_per_pixel * 4).max(1)).clamp(1, MAX_CHUNK_PIXELS);
    if hwo <= pixels_fit {
        let samples_by_pixels = pixels_fit / hwo.max(1);
        let samples_by_partials = scratch / (floats_per_sample * 4).max(1);
        let samples = samples_by_pixels
            .min(samples_by_partials)
            .clamp(1, g.n.max(1));
        return (0..g.n)
            .step_by(samples)
            .map(|n0| Chunk {
                n0,
                count: samples.min(g.n - n0),
                pixels: 0..hwo,
            })
            .collect();
    }
    let ranges = Segments::split(hwo, pixels_fit);
    (0..g.n)
        .flat_map(|n0| {
            (0..ranges.count).map(move |i| Chunk {
                n0,
                count: 1,
                pixels: ranges.range(i, hwo),
            })
        })
        .collect()
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

/// im2col of a chunk, as an operand of `rows_per_matrix` rows of `row_len` floats per
/// (sample, group): `pixel_major` (a row of taps per pixel) or `tap_major` (a row of
/// pixels per tap). Long rows are split between invocations.
fn im2col(
    g: &Geometry,
    x: &Tensor,
    entry: &'static str,
    chunk: &Chunk,
    (rows_per_matrix, row_len): (usize, usize),
) -> Result<Packed> {
    let matrices = chunk.matrices(g);
    let rows = matrices * rows_per_matrix;
    let col = x.uninit_like(&[rows, row_len])?;
    let budget = x.device().loop_budget();
    let per_invocation = items_within(budget, FIXED, 1).unwrap_or(1);
    let segments = Segments::split(row_len / 4, per_invocation);
    let invocations = rows * segments.count;
    let mut params = geometry_words(g, invocations, chunk.n0);
    params.extend(
        [
            row_len,
            chunk.pixels.start,
            chunk.len(),
            segments.count,
            segments.len,
        ]
        .map(|v| v as u32),
    );
    x.device().dispatch(
        &IM2COL,
        entry,
        &[],
        &[x.buffer(), col.buffer()],
        &params,
        Grid::for_items(invocations as u64, WG).trips(FIXED + segments.len as u64),
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

/// Loop iterations of an implicit-GEMM invocation: `(fixed, per vec4 of K)`. Per vec4 of
/// K, lavapipe unrolls the loop over 8 pixels but not the one over 4 taps around it: 6
/// iterations, measured at the cap (5 left outputs short there).
const IMPLICIT_COST: (u64, u64) = (16, 6);

/// The forward as implicit-GEMM launches over every (sample, group): no scratch. Long
/// reductions (many input channels × taps) are split along K into partial products that
/// a reduction adds up; images too wide for one grid are taken in pixel ranges.
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
    let overrides = |bias: bool| {
        [
            ("WG_Y", wg_y as f64),
            ("SUBGROUPS_ALONG_PIXELS", f64::from(u8::from(along_pixels))),
            ("HAS_BIAS", f64::from(u8::from(bias))),
        ]
    };
    let device = x.device();
    let budget = device.loop_budget();
    let (fixed, per_k4) = IMPLICIT_COST;
    let k4_slice = items_within(budget, fixed, per_k4).ok_or_else(|| {
        Error::Internal(format!(
            "conv2d: the loop budget {budget} fits no step of K"
        ))
    })?;
    let slices = Segments::split(k4, k4_slice);
    let pairs = g.n * groups;
    let max_z = device.limits().max_compute_workgroups_per_dimension as usize;
    let ranges = Segments::split(hwo, 65_535 * tile_cols);
    for range in (0..ranges.count).map(|i| ranges.range(i, hwo)) {
        let pixels = range.len();
        // Where the products go: y itself, or a partial product per K-slice.
        let split = slices.count > 1;
        let partial = if split {
            Some(x.uninit_like(&[slices.count, pairs, cog, pixels])?)
        } else {
            None
        };
        let (target, c_offset, c_stride, c_row_stride) = match &partial {
            Some(t) => (t, 0, cog * pixels, pixels),
            None => (&y, range.start, cog * hwo, hwo),
        };
        let fused_bias = bias.filter(|_| !split);
        // Without a bias any buffer fills the binding; the kernel never reads it.
        let bias_buffer = fused_bias.unwrap_or(x).buffer();
        let words: Vec<u32> = [
            cog,
            pixels,
            range.start,
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
        ]
        .iter()
        .map(|&v| v as u32)
        .collect();
        // (slice, pair) layers past the grid's z limit run in parts.
        let layers = pairs * slices.count;
        for z_base in (0..layers).step_by(max_z) {
            let grid = Grid::Xyz([
                pixels.div_ceil(tile_cols) as u32,
                cog.div_ceil(tile_rows) as u32,
                (layers - z_base).min(max_z) as u32,
            ]);
            let mut params = words.clone();
            params.extend(
                [
                    z_base,
                    pairs,
                    slices.len,
                    c_offset,
                    c_stride,
                    c_row_stride,
                    pairs * cog * pixels,
                ]
                .map(|v| v as u32),
            );
            device.dispatch(
                &IMPLICIT,
                "main",
                &overrides(fused_bias.is_some()),
                &[weights.buffer(), x.buffer(), target.buffer(), bias_buffer],
                &params,
                grid.trips(fixed + slices.len as u64 * per_k4),
            )?;
        }
        if let Some(partial) = partial {
            let sum = reduce_with(&partial, &[0], false, Reduction::Sum, None, 1.0)?;
            let out = Output {
                tensor: &y,
                offset: range.start,
                matrix_stride: cog * hwo,
                row_stride: hwo,
            };
            place(&sum, &out, (cog, pixels), pairs, bias.map(|b| (b, groups)))?;
        }
    }
    Ok(y)
}

/// The forward of a pointwise convolution without a bias, ending in `act(v · scale +
/// shift)` per output channel (`coef` `[c_out, 2]`): when every chunk can run as one
/// product over whole planes (see [`pointwise_over_planes`]); `None` otherwise, and
/// nothing ran.
pub(super) fn forward_scale_shift(
    g: &Geometry,
    x: &Tensor,
    w: &Tensor,
    (coef, act): (&Tensor, BnAct),
) -> Result<Option<Tensor>> {
    let hw = g.h * g.w;
    let chunks = chunks(g, x.device(), 0, 0);
    if !is_pointwise(g) || g.p.groups != 1 || chunks.iter().any(|chunk| chunk.len() != hw) {
        return Ok(None);
    }
    let weights = pack_weights(g, w)?;
    let y = x.uninit_like(&g.output_shape())?;
    let dims = (g.c_out, g.c_in, hw);
    let epilogue = Epilogue {
        scale_shift: Some((coef, act)),
        ..Epilogue::default()
    };
    for (i, chunk) in chunks.iter().enumerate() {
        // Whole-sample chunks differ only in where they start (a multiple of a plane), so
        // the kernel takes all of them or, from the first, none.
        if !pointwise_over_planes(&weights, x, &y, dims, chunk, epilogue)? {
            if i == 0 {
                return Ok(None);
            }
            return Err(Error::Internal(
                "conv2d: a pointwise chunk could not run over whole planes".into(),
            ));
        }
    }
    Ok(Some(y))
}

/// The forward of a pointwise convolution without a bias, with the moments of each
/// output channel per 64 pixels (`[c_out, segments, 3]`, see
/// [`Packed::with_moments`](crate::ops::matmul::Packed::with_moments)) written by the
/// product itself: when the whole batch runs as one product over planes (see
/// [`pointwise_over_planes`]) and batch norm can merge that many segments; `None`
/// otherwise, and nothing ran.
pub(super) fn forward_moments(
    g: &Geometry,
    x: &Tensor,
    w: &Tensor,
    max_segments: usize,
) -> Result<Option<(Tensor, Tensor)>> {
    let hw = g.h * g.w;
    let chunks = chunks(g, x.device(), 0, 0);
    let [chunk] = chunks.as_slice() else {
        return Ok(None);
    };
    let segments = moment_segments(g.n * hw, 1);
    if !is_pointwise(g) || g.p.groups != 1 || chunk.count != g.n || segments > max_segments {
        return Ok(None);
    }
    let weights = pack_weights(g, w)?;
    let y = x.uninit_like(&g.output_shape())?;
    let moments = x.uninit_like(&[g.c_out, segments, 3])?;
    let epilogue = Epilogue {
        moments: Some(&moments),
        ..Epilogue::default()
    };
    let dims = (g.c_out, g.c_in, hw);
    Ok(pointwise_over_planes(&weights, x, &y, dims, chunk, epilogue)?.then_some((y, moments)))
}

/// The weight as the forward's A operand: `[cout_g, k_g]` per group.
fn pack_weights(g: &Geometry, w: &Tensor) -> Result<Packed> {
    let (cog, kg) = (g.cout_g(), g.k_g());
    pack(
        w,
        MatrixView {
            offset: 0,
            batch_stride: cog * kg,
            batch_mod: g.p.groups,
            rows: cog,
            k: kg,
            row_stride: kg,
            col_stride: 1,
        },
    )
}

/// Forward: `y[n, g] = W[g] · col[n, g]ᵀ`, one matmul per (sample, group), all in one launch
/// per chunk. The bias (`[c_out]`), when given, is added in the product's epilogue.
pub(super) fn forward(
    g: &Geometry,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
) -> Result<Tensor> {
    let y = x.uninit_like(&g.output_shape())?;
    let (groups, cog, kg, hwo) = (g.p.groups, g.cout_g(), g.k_g(), g.ho * g.wo);
    let k4 = kg.div_ceil(4) * 4;
    let weights = pack_weights(g, w)?;
    if use_implicit(g, x) {
        return implicit_forward(g, x, &weights, bias, y);
    }
    let pointwise = is_pointwise(g);
    for chunk in chunks(g, x.device(), if pointwise { 0 } else { groups * k4 }, 0) {
        let dims = (g.c_out, g.c_in, g.h * g.w);
        if pointwise
            && groups == 1
            && pointwise_over_planes(
                &weights,
                x,
                &y,
                dims,
                &chunk,
                Epilogue {
                    bias,
                    ..Epilogue::default()
                },
            )?
        {
            continue;
        }
        let matrices = chunk.matrices(g);
        let cols = if pointwise {
            // The input's pixels are the columns already: read in place where the kernel
            // can, else transposed into a packed copy.
            let hw = g.h * g.w;
            let view = MatrixView {
                offset: chunk.n0 * g.c_in * hw + chunk.pixels.start,
                batch_stride: g.cin_g() * hw,
                batch_mod: matrices,
                rows: chunk.len(),
                k: kg,
                row_stride: 1,
                col_stride: hw,
            };
            match k_major(x, view, None) {
                Some(cols) => cols,
                None => pack(x, view)?,
            }
        } else {
            im2col(g, x, "pixel_major", &chunk, (chunk.len(), k4))?
        };
        let out = Output {
            tensor: &y,
            offset: chunk.n0 * g.c_out * hwo + chunk.pixels.start,
            matrix_stride: cog * hwo,
            row_stride: hwo,
        };
        gemm(
            &weights,
            &cols,
            out,
            (cog, chunk.len(), kg),
            matrices,
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
    for chunk in chunks(g, dy.device(), if pointwise { 0 } else { groups * kg }, 0) {
        // Pointwise: dx[n] = Wᵀ · dy[n].
        let dims = (g.c_in, g.c_out, hwo);
        if pointwise
            && groups == 1
            && pointwise_over_planes(&weights_t, dy, &dx, dims, &chunk, Epilogue::default())?
        {
            continue;
        }
        let matrices = chunk.matrices(g);
        // dy per (sample, group) with rows = output pixels, k = output channel.
        let dy_view = MatrixView {
            offset: chunk.n0 * g.c_out * hwo + chunk.pixels.start,
            batch_stride: cog * hwo,
            batch_mod: matrices,
            rows: chunk.len(),
            k: cog,
            row_stride: 1,
            col_stride: hwo,
        };
        // Pointwise: read in place where the kernel can.
        let in_place = if pointwise {
            k_major(dy, dy_view, None)
        } else {
            None
        };
        let dy_t = match in_place {
            Some(dy_t) => dy_t,
            None => pack(dy, dy_view)?,
        };
        if pointwise {
            // dx[n, g] = W[g]ᵀ · dy[n, g]: rows = input channel, columns = pixels.
            let out = Output {
                tensor: &dx,
                offset: chunk.n0 * g.c_in * hwo + chunk.pixels.start,
                matrix_stride: g.cin_g() * hwo,
                row_stride: hwo,
            };
            gemm(
                &weights_t,
                &dy_t,
                out,
                (kg, chunk.len(), cog),
                matrices,
                None,
                MatmulKernel::Auto,
            )?;
            continue;
        }
        let dcol = dy.uninit_like(&[matrices * chunk.len(), kg])?;
        let out = Output {
            tensor: &dcol,
            offset: 0,
            matrix_stride: chunk.len() * kg,
            row_stride: kg,
        };
        gemm(
            &dy_t,
            &weights_t,
            out,
            (chunk.len(), kg, cog),
            matrices,
            None,
            MatmulKernel::Auto,
        )?;
        col2im(g, &dcol, &dx, &chunk)?;
    }
    Ok(dx)
}

/// Gathers a chunk's `dcol` into `dx`. The chunk's first launch writes every input row of
/// its samples; later ones (the rest of a large sample's pixels, or of a large kernel's
/// taps) add to the rows their pixels read.
fn col2im(g: &Geometry, dcol: &Tensor, dx: &Tensor, chunk: &Chunk) -> Result<()> {
    // Input rows the chunk's output rows read; all of them for a sample's first chunk,
    // so rows no output reads get their zeros.
    let rows = if chunk.is_first() {
        0..g.h
    } else {
        let (first, last) = (chunk.pixels.start / g.wo, (chunk.pixels.end - 1) / g.wo);
        let top = (first * g.p.stride.0).saturating_sub(g.p.padding.0);
        let bottom = last * g.p.stride.0 + g.p.dilation.0 * (g.kh - 1) + 1;
        top.min(g.h)..bottom.saturating_sub(g.p.padding.0).min(g.h)
    };
    if rows.is_empty() {
        return Ok(());
    }
    // Taps per launch: one invocation loops over ky, and over kx for each ky.
    let budget = dx.device().loop_budget();
    let kx_len = items_within(budget, FIXED + 4, 1).unwrap_or(1).min(g.kw);
    let ky_len = items_within(budget, FIXED, 2 + kx_len as u64)
        .unwrap_or(1)
        .min(g.kh);
    let (ky_parts, kx_parts) = (Segments::split(g.kh, ky_len), Segments::split(g.kw, kx_len));
    let total = chunk.count * g.c_in * rows.len() * g.w;
    let trips = FIXED + ky_parts.len as u64 * (2 + kx_parts.len as u64);
    for (i, (ky, kx)) in (0..ky_parts.count)
        .flat_map(|a| (0..kx_parts.count).map(move |b| (a, b)))
        .enumerate()
    {
        let (ky, kx) = (ky_parts.range(ky, g.kh), kx_parts.range(kx, g.kw));
        let mut params = geometry_words(g, total, chunk.n0);
        params.extend(
            [
                chunk.pixels.start,
                chunk.len(),
                rows.start,
                rows.len(),
                ky.start,
                ky.end,
                kx.start,
                kx.end,
            ]
            .map(|v| v as u32),
        );
        let accumulate = !(chunk.is_first() && i == 0);
        dx.device().dispatch(
            &COL2IM,
            "main",
            &[("ACCUMULATE", f64::from(u8::from(accumulate)))],
            &[dcol.buffer(), dx.buffer()],
            &params,
            Grid::for_items(total as u64, WG).trips(trips),
        )?;
    }
    Ok(())
}

/// Weight gradient: `dW[g] = Σ_n dy[n, g] · colᵀ[n, g]`, the per-sample (and per pixel
/// range) products summed.
pub(super) fn weight_grad(g: &Geometry, x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    let (groups, cog, kg, hwo) = (g.p.groups, g.cout_g(), g.k_g(), g.ho * g.wo);
    let pointwise = is_pointwise(g);
    let mut total: Option<Tensor> = None;
    // Each sample of a chunk gets its own partial weight gradient, summed after.
    let per_sample = g.c_out * kg;
    for chunk in chunks(
        g,
        x.device(),
        if pointwise { 0 } else { groups * kg },
        per_sample,
    ) {
        if pointwise && groups == 1 && chunk.len() == hwo {
            // dW = Σ over every pixel of every sample of dy · xᵀ, as one product read in
            // place, K running over the samples' planes.
            let planes = |t: &Tensor, c: usize| k_planes(t, chunk.n0 * c * hwo, (hwo, c * hwo));
            if let (Some(dy_rows), Some(x_rows)) = (planes(dy, g.c_out), planes(x, g.c_in)) {
                let dw = x.uninit_like(&[g.c_out, g.c_in])?;
                let out = Output::dense(&dw, (g.c_out, g.c_in));
                let dims = (g.c_out, g.c_in, chunk.count * hwo);
                gemm(&dy_rows, &x_rows, out, dims, 1, None, MatmulKernel::Auto)?;
                total = Some(match total {
                    Some(t) => t.add(&dw)?,
                    None => dw,
                });
                continue;
            }
        }
        let matrices = chunk.matrices(g);
        // dy per (sample, group): rows = output channel, k = pixel.
        let dy_rows = pack(
            dy,
            MatrixView {
                offset: chunk.n0 * g.c_out * hwo + chunk.pixels.start,
                batch_stride: cog * hwo,
                batch_mod: matrices,
                rows: cog,
                k: chunk.len(),
                row_stride: hwo,
                col_stride: 1,
            },
        )?;
        let cols = if pointwise {
            let hw = g.h * g.w;
            pack(
                x,
                MatrixView {
                    offset: chunk.n0 * g.c_in * hw + chunk.pixels.start,
                    batch_stride: g.cin_g() * hw,
                    batch_mod: matrices,
                    rows: kg,
                    k: chunk.len(),
                    row_stride: hw,
                    col_stride: 1,
                },
            )?
        } else {
            let row_len = chunk.len().div_ceil(4) * 4;
            im2col(g, x, "tap_major", &chunk, (kg, row_len))?
        };
        let partial = x.uninit_like(&[chunk.count, g.c_out * kg])?;
        let out = Output {
            tensor: &partial,
            offset: 0,
            matrix_stride: cog * kg,
            row_stride: kg,
        };
        gemm(
            &dy_rows,
            &cols,
            out,
            (cog, kg, chunk.len()),
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
