//! Reductions over chosen axes: sum, mean, max, and global average pooling.
//! Kernel: `shaders/reduce.wgsl`.

use super::layout::{contiguous_strides, merge_dims, pack_dims};
use super::segments::{Segments, items_within};
use crate::error::{Error, Result, arg_err, shape_err};
use crate::gpu::{Grid, Kernel, kernel};
use crate::tensor::Tensor;

const REDUCE: Kernel = kernel!("reduce.wgsl");

/// Invocations per workgroup of `reduce_thread` and of `reduce_group` (as in the WGSL).
const THREAD_WG: u64 = 256;
const GROUP_WG: usize = 64;
/// Elements one workgroup of `reduce_group` takes at most: 256 per invocation, enough
/// work to amortize the workgroup's tree reduction, small enough that long reductions
/// spread over many workgroups on a GPU.
const GROUP_SEGMENT: usize = 256 * GROUP_WG;

/// What a reduction combines (the `OP` override of `shaders/reduce.wgsl`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reduction {
    /// Σ x.
    Sum = 0,
    /// max x, NaN winning.
    Max = 1,
    /// Σ exp(x - c), c one value per output.
    SumExp = 2,
    /// Σ (x - c)², c one value per output.
    SumSquares = 3,
    /// Σ (x - c), c one value per output.
    SumCentered = 4,
}

impl Reduction {
    fn name(self) -> &'static str {
        match self {
            Reduction::Sum => "sum",
            Reduction::Max => "max",
            Reduction::SumExp => "sum_exp",
            Reduction::SumSquares => "sum_squares",
            Reduction::SumCentered => "sum_centered",
        }
    }

    /// How partial results of this reduction combine.
    fn of_partials(self) -> Reduction {
        match self {
            Reduction::Max => Reduction::Max,
            _ => Reduction::Sum,
        }
    }
}

/// Checks `axes` against `shape`: each in range, none repeated, at least one.
fn check_axes(op: &str, shape: &[usize], axes: &[usize]) -> Result<()> {
    if axes.is_empty() {
        return arg_err!("{op}: no axes given for a tensor of shape {shape:?}");
    }
    for (i, &axis) in axes.iter().enumerate() {
        if axis >= shape.len() {
            return arg_err!(
                "{op}: axis {axis} is out of range for shape {shape:?} ({} dims)",
                shape.len()
            );
        }
        if axes[..i].contains(&axis) {
            return arg_err!("{op}: axis {axis} is given twice in {axes:?}");
        }
    }
    Ok(())
}

/// The user-facing reductions: sum, mean (`scale` = 1/len) and max.
fn reduce(x: &Tensor, axes: &[usize], keepdim: bool, how: Reduction, mean: bool) -> Result<Tensor> {
    let op = if mean { "mean" } else { how.name() };
    let shape = x.shape();
    check_axes(op, shape, axes)?;
    let red_len: usize = axes.iter().map(|&a| shape[a]).product();
    if red_len == 0 && how == Reduction::Max {
        return arg_err!(
            "max: cannot take the maximum over zero elements (shape {shape:?}, axes {axes:?})"
        );
    }
    if red_len == 0 && mean {
        // The mean of nothing is NaN, as in PyTorch. Filled here: WGSL lets shaders assume
        // values are finite, so 0 · NaN in a kernel need not give NaN.
        let out = x.uninit_like(&out_shape(shape, axes, keepdim))?;
        crate::ops::elementwise::fill(&out, f32::NAN)?;
        return Ok(out);
    }
    let scale = if mean { 1.0 / red_len as f32 } else { 1.0 };
    reduce_with(x, axes, keepdim, how, None, scale)
}

/// The shape a reduction over `axes` leaves.
fn out_shape(shape: &[usize], axes: &[usize], keepdim: bool) -> Vec<usize> {
    (0..shape.len())
        .filter_map(|d| match (axes.contains(&d), keepdim) {
            (false, _) => Some(shape[d]),
            (true, true) => Some(1),
            (true, false) => None,
        })
        .collect()
}

/// Reduces `x` over `axes` (checked by the caller) with `how`, the sums scaled by `scale`.
/// The centred reductions read `center`, one value per output in the output's order.
/// Reductions longer than one workgroup's segment run in two or more passes.
pub(crate) fn reduce_with(
    x: &Tensor,
    axes: &[usize],
    keepdim: bool,
    how: Reduction,
    center: Option<&Tensor>,
    scale: f32,
) -> Result<Tensor> {
    let op = how.name();
    let shape = x.shape();
    let out_shape = out_shape(shape, axes, keepdim);
    let n_out: usize = out_shape.iter().product();
    if let Some(c) = center {
        x.check_same_device(c, op)?;
        if c.numel() != n_out {
            return shape_err!(
                "{op}: the center has shape {:?}, but the reduction of {shape:?} over \
                 {axes:?} has {n_out} outputs",
                c.shape()
            );
        }
    }
    let red_len: usize = axes.iter().map(|&a| shape[a]).product();

    // Split the input's dimensions into kept and reduced lists (each merged on its own).
    let strides = contiguous_strides(shape);
    let pick = |want: bool| -> (Vec<usize>, Vec<usize>) {
        let dims: Vec<usize> = (0..shape.len())
            .filter(|d| axes.contains(d) == want)
            .collect();
        let sub_shape: Vec<usize> = dims.iter().map(|&d| shape[d]).collect();
        let sub_strides: Vec<usize> = dims.iter().map(|&d| strides[d]).collect();
        let (merged, mut merged_strides) = merge_dims(&sub_shape, &[sub_strides]);
        (merged, merged_strides.remove(0))
    };
    let (kept_shape, kept_strides) = pick(false);
    let (red_shape, red_strides) = pick(true);

    // Loop iterations: each element costs one, plus one per reduced dimension to find it;
    // finding the output costs one per kept dimension.
    let budget = x.device().loop_budget();
    let per_element = 1 + red_shape.len() as u64;
    let fixed = kept_shape.len() as u64 + 8; // + the workgroup's tree reduction
    let thread_fits = red_len as u64 * per_element + fixed <= budget;
    let per_group = !thread_fits || red_len > 256 || (red_len > 16 && n_out < 4096);
    let segments = if per_group {
        let per_lane = items_within(budget, fixed, per_element).ok_or_else(|| {
            Error::Internal(format!("{op}: the loop budget {budget} fits no element"))
        })?;
        Segments::split(red_len, (per_lane * GROUP_WG).min(GROUP_SEGMENT))
    } else {
        Segments::split(red_len, red_len)
    };
    let target = if segments.count > 1 {
        x.uninit_like(&[n_out, segments.count])?
    } else {
        x.uninit_like(&out_shape)?
    };
    let mut params = vec![
        n_out as u32,
        red_len as u32,
        kept_shape.len() as u32,
        red_shape.len() as u32,
        if segments.count > 1 { 1.0f32 } else { scale }.to_bits(),
        segments.count as u32,
        segments.len as u32,
        0,
    ];
    for dims in [&kept_shape, &kept_strides, &red_shape, &red_strides] {
        params.extend(pack_dims(op, dims)?);
    }
    let launch = if per_group {
        let trips = segments.len.div_ceil(GROUP_WG) as u64 * per_element + fixed;
        Grid::Linear((n_out * segments.count) as u64).trips(trips)
    } else {
        Grid::for_items(n_out as u64, THREAD_WG).trips(red_len as u64 * per_element + fixed)
    };
    x.device().dispatch(
        &REDUCE,
        if per_group {
            "reduce_group"
        } else {
            "reduce_thread"
        },
        &[("OP", how as u32 as f64)],
        &[x.buffer(), center.unwrap_or(x).buffer(), target.buffer()],
        &params,
        launch,
    )?;
    if segments.count == 1 {
        return Ok(target);
    }
    // Combine each output's partials (a much shorter reduction), then restore the shape.
    reduce_with(&target, &[1], false, how.of_partials(), None, scale)?.reshape(&out_shape)
}

/// Reductions as methods.
impl Tensor {
    /// Sum over `axes`; `keepdim` leaves them as size-1 dimensions.
    pub fn sum(&self, axes: &[usize], keepdim: bool) -> Result<Tensor> {
        reduce(self, axes, keepdim, Reduction::Sum, false)
    }

    /// Mean over `axes`; `keepdim` leaves them as size-1 dimensions.
    pub fn mean(&self, axes: &[usize], keepdim: bool) -> Result<Tensor> {
        reduce(self, axes, keepdim, Reduction::Sum, true)
    }

    /// Maximum over `axes`; `keepdim` leaves them as size-1 dimensions.
    pub fn max(&self, axes: &[usize], keepdim: bool) -> Result<Tensor> {
        reduce(self, axes, keepdim, Reduction::Max, false)
    }

    /// Sum of every element, as a one-element tensor of shape `[1]`.
    pub fn sum_all(&self) -> Result<Tensor> {
        self.reshape(&[self.numel()])?.sum(&[0], true)
    }

    /// Global average pooling of an `[N, C, H, W]` tensor to `[N, C, 1, 1]`.
    pub fn global_avg_pool2d(&self) -> Result<Tensor> {
        if self.ndim() != 4 {
            return arg_err!(
                "global_avg_pool2d: expected an [N, C, H, W] tensor, got shape {:?}",
                self.shape()
            );
        }
        self.mean(&[2, 3], true)
    }
}
