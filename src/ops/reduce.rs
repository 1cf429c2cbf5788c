//! Reductions over chosen axes: sum, mean, max, and global average pooling.
//! Kernel: `shaders/reduce.wgsl`.

use super::layout::{contiguous_strides, merge_dims, pack_dims};
use crate::error::{Result, arg_err};
use crate::gpu::{Grid, Kernel, kernel};
use crate::tensor::Tensor;

const REDUCE: Kernel = kernel!("reduce.wgsl");

/// Invocations per workgroup of `reduce_thread` and `reduce_group` (as in the WGSL).
const THREAD_WG: u64 = 256;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Reduction {
    Sum = 0,
    Max = 1,
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

fn reduce(x: &Tensor, axes: &[usize], keepdim: bool, how: Reduction, mean: bool) -> Result<Tensor> {
    let op = match (how, mean) {
        (Reduction::Max, _) => "max",
        (Reduction::Sum, false) => "sum",
        (Reduction::Sum, true) => "mean",
    };
    let shape = x.shape();
    check_axes(op, shape, axes)?;
    let reduced: Vec<bool> = (0..shape.len()).map(|d| axes.contains(&d)).collect();
    let red_len: usize = axes.iter().map(|&a| shape[a]).product();
    if red_len == 0 && how == Reduction::Max {
        return arg_err!(
            "max: cannot take the maximum over zero elements (shape {shape:?}, axes {axes:?})"
        );
    }
    let out_shape: Vec<usize> = (0..shape.len())
        .filter_map(|d| match (reduced[d], keepdim) {
            (false, _) => Some(shape[d]),
            (true, true) => Some(1),
            (true, false) => None,
        })
        .collect();
    let out = x.uninit_like(&out_shape)?;
    let n_out = out.numel();

    // Split the input's dimensions into kept and reduced lists (each merged on its own).
    let strides = contiguous_strides(shape);
    let pick = |want: bool| -> (Vec<usize>, Vec<usize>) {
        let dims: Vec<usize> = (0..shape.len()).filter(|&d| reduced[d] == want).collect();
        let sub_shape: Vec<usize> = dims.iter().map(|&d| shape[d]).collect();
        let sub_strides: Vec<usize> = dims.iter().map(|&d| strides[d]).collect();
        let (merged, mut merged_strides) = merge_dims(&sub_shape, &[sub_strides]);
        (merged, merged_strides.remove(0))
    };
    let (kept_shape, kept_strides) = pick(false);
    let (red_shape, red_strides) = pick(true);

    if red_len == 0 && mean {
        // The mean of nothing is NaN, as in PyTorch. Filled here: WGSL lets shaders assume
        // values are finite, so 0 · NaN in a kernel need not give NaN.
        crate::ops::elementwise::fill(&out, f32::NAN)?;
        return Ok(out);
    }
    let scale = if mean { 1.0 / red_len as f32 } else { 1.0 };
    let mut params = vec![
        n_out as u32,
        red_len as u32,
        kept_shape.len() as u32,
        red_shape.len() as u32,
        scale.to_bits(),
        0,
        0,
        0,
    ];
    for dims in [&kept_shape, &kept_strides, &red_shape, &red_strides] {
        params.extend(pack_dims(op, dims)?);
    }
    // Long reductions, or few outputs, spread each output over a workgroup.
    let per_group = red_len > 256 || (red_len > 16 && n_out < 4096);
    let (entry, grid) = if per_group {
        ("reduce_group", Grid::Linear(n_out as u64))
    } else {
        ("reduce_thread", Grid::for_items(n_out as u64, THREAD_WG))
    };
    x.device().dispatch(
        &REDUCE,
        entry,
        &[("OP", how as u32 as f64)],
        &[x.buffer(), out.buffer()],
        &params,
        grid,
    )?;
    Ok(out)
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
