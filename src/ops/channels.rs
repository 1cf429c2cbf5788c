//! Joining, splitting and permuting tensors along an axis: [`concat()`], [`split`],
//! [`chunk`] (PyTorch's `torch.cat`, `torch.split`, `torch.chunk`) and ShuffleNet's
//! [`channel_shuffle`], with their backwards. Kernels: `shaders/channels_copy.wgsl`,
//! `shaders/channels_shuffle.wgsl`.
//!
//! Tensors are contiguous and own their storage from offset 0, so a split is a copy, not
//! a view. Each slab (one input of a concat, one output of a split) is one launch of the
//! strided copy kernel.

use crate::error::{Result, arg_err, shape_err};
use crate::gpu::{Grid, Kernel, kernel};
use crate::tensor::Tensor;

const COPY: Kernel = kernel!("channels_copy.wgsl");
const SHUFFLE: Kernel = kernel!("channels_shuffle.wgsl");

/// Invocations per workgroup of both kernels (`WG` in their WGSL).
const WG: u64 = 256;

fn check_axis(op: &str, shape: &[usize], axis: usize) -> Result<()> {
    if axis >= shape.len() {
        return arg_err!(
            "{op}: axis {axis} is out of range for shape {shape:?} ({} dims)",
            shape.len()
        );
    }
    Ok(())
}

/// `(outer, inner)`: the element counts before and after `axis`.
fn outer_inner(shape: &[usize], axis: usize) -> (usize, usize) {
    (
        shape[..axis].iter().product(),
        shape[axis + 1..].iter().product(),
    )
}

/// One side of a slab copy: a tensor viewed as `[outer, axis_len, inner]` and the first
/// index along the axis that the slab covers.
struct Side<'a> {
    tensor: &'a Tensor,
    axis_len: usize,
    start: usize,
}

/// Copies `len` indices along the axis from `src` to `dst` (both `[outer, _, inner]`).
fn copy_slab(src: Side, dst: Side, outer: usize, len: usize, inner: usize) -> Result<()> {
    let row_len = len * inner;
    let n = (outer * row_len) as u64;
    src.tensor.device().dispatch(
        &COPY,
        "main",
        &[],
        &[src.tensor.buffer(), dst.tensor.buffer()],
        &[
            n as u32,
            row_len as u32,
            (src.axis_len * inner) as u32,
            (src.start * inner) as u32,
            (dst.axis_len * inner) as u32,
            (dst.start * inner) as u32,
        ],
        Grid::for_items(n, WG).trips(0),
    )
}

/// Joins `tensors` along `axis` (PyTorch's `torch.cat`): all must have the same number of
/// dims and the same sizes except along `axis`. DenseNet's and GoogLeNet's channel concat
/// is `axis` 1 of `[N, C, H, W]`. An `Err` for an empty list, an axis out of range, or
/// shapes that do not fit (naming both).
pub fn concat(tensors: &[&Tensor], axis: usize) -> Result<Tensor> {
    let op = "concat";
    let Some(first) = tensors.first() else {
        return arg_err!("{op}: no tensors given");
    };
    check_axis(op, first.shape(), axis)?;
    for (i, t) in tensors.iter().enumerate().skip(1) {
        first.check_same_device(t, op)?;
        let fits = t.ndim() == first.ndim()
            && (0..t.ndim()).all(|d| d == axis || t.shape()[d] == first.shape()[d]);
        if !fits {
            return shape_err!(
                "{op}: tensor {i} has shape {:?} but tensor 0 has shape {:?}; they must \
                 match in every dim but axis {axis}",
                t.shape(),
                first.shape()
            );
        }
    }
    let total: usize = tensors.iter().map(|t| t.shape()[axis]).sum();
    let mut out_shape = first.shape().to_vec();
    out_shape[axis] = total;
    let out = first.uninit_like(&out_shape)?;
    let (outer, inner) = outer_inner(&out_shape, axis);
    let mut start = 0;
    for t in tensors {
        let len = t.shape()[axis];
        let src = Side {
            tensor: t,
            axis_len: len,
            start: 0,
        };
        let dst = Side {
            tensor: &out,
            axis_len: total,
            start,
        };
        copy_slab(src, dst, outer, len, inner)?;
        start += len;
    }
    Ok(out)
}

/// Splits `x` along `axis` into pieces of the given `sizes` (PyTorch's
/// `torch.split(x, sizes, axis)` with a list of sizes; zeros give empty pieces). An `Err`
/// when `sizes` is empty, does not sum to the axis length, or `axis` is out of range.
pub fn split(x: &Tensor, sizes: &[usize], axis: usize) -> Result<Vec<Tensor>> {
    let op = "split";
    check_axis(op, x.shape(), axis)?;
    if sizes.is_empty() {
        return arg_err!(
            "{op}: no sizes given for axis {axis} of shape {:?}",
            x.shape()
        );
    }
    let axis_len = x.shape()[axis];
    let total = sizes.iter().try_fold(0usize, |acc, &s| acc.checked_add(s));
    if total != Some(axis_len) {
        return shape_err!(
            "{op}: sizes {sizes:?} do not sum to {axis_len}, the length of axis {axis} of \
             shape {:?}",
            x.shape()
        );
    }
    let (outer, inner) = outer_inner(x.shape(), axis);
    let mut start = 0;
    let mut pieces = Vec::with_capacity(sizes.len());
    for &len in sizes {
        let mut shape = x.shape().to_vec();
        shape[axis] = len;
        let piece = x.uninit_like(&shape)?;
        let src = Side {
            tensor: x,
            axis_len,
            start,
        };
        let dst = Side {
            tensor: &piece,
            axis_len: len,
            start: 0,
        };
        copy_slab(src, dst, outer, len, inner)?;
        pieces.push(piece);
        start += len;
    }
    Ok(pieces)
}

/// Splits `x` along `axis` into at most `chunks` pieces as PyTorch's `torch.chunk`: each
/// `ceil(len / chunks)` long but the last, which is shorter; so fewer than `chunks` pieces
/// come back when that size covers the axis sooner (length 6 in 4 chunks gives 3 of 2).
/// An axis of length 0 gives `chunks` empty pieces. An `Err` when `chunks` is 0 or
/// `axis` is out of range.
pub fn chunk(x: &Tensor, chunks: usize, axis: usize) -> Result<Vec<Tensor>> {
    let op = "chunk";
    check_axis(op, x.shape(), axis)?;
    if chunks == 0 {
        return arg_err!(
            "{op}: chunks must be positive, got 0 (shape {:?})",
            x.shape()
        );
    }
    let len = x.shape()[axis];
    let sizes = if len == 0 {
        vec![0; chunks]
    } else {
        let size = len.div_ceil(chunks);
        (0..len.div_ceil(size))
            .map(|i| size.min(len - i * size))
            .collect()
    };
    split(x, &sizes, axis)
}

/// Gradient of [`concat()`]: the upstream gradient split back into the inputs' lengths
/// `sizes` along `axis` (that is, [`split`]).
pub fn concat_backward(grad: &Tensor, sizes: &[usize], axis: usize) -> Result<Vec<Tensor>> {
    split(grad, sizes, axis)
}

/// Gradient of [`split`] or [`chunk`]: the pieces' gradients joined along `axis` (that is,
/// [`concat()`]).
pub fn split_backward(grads: &[&Tensor], axis: usize) -> Result<Tensor> {
    concat(grads, axis)
}

/// Gradient of one piece of a [`split`]: `grad` (the piece's gradient) placed at indices
/// `start..` along `axis` of a tensor of `full_shape`, zeros elsewhere. Lets each piece of
/// a split flow back on its own, whether or not the other pieces are used.
pub fn narrow_backward(
    grad: &Tensor,
    full_shape: &[usize],
    axis: usize,
    start: usize,
) -> Result<Tensor> {
    let op = "narrow_backward";
    check_axis(op, full_shape, axis)?;
    let g = grad.shape();
    let fits = g.len() == full_shape.len()
        && (0..g.len()).all(|d| d == axis || g[d] == full_shape[d])
        && start
            .checked_add(g[axis])
            .is_some_and(|end| end <= full_shape[axis]);
    if !fits {
        return shape_err!(
            "{op}: a gradient of shape {g:?} does not fit shape {full_shape:?} at index \
             {start} of axis {axis}"
        );
    }
    let out = Tensor::zeros(grad.device(), full_shape)?;
    let (outer, inner) = outer_inner(full_shape, axis);
    let src = Side {
        tensor: grad,
        axis_len: g[axis],
        start: 0,
    };
    let dst = Side {
        tensor: &out,
        axis_len: full_shape[axis],
        start,
    };
    copy_slab(src, dst, outer, g[axis], inner)?;
    Ok(out)
}

/// `(N, C, S)` of an `[N, C, ...]` tensor after checking that `groups` divides `C`.
fn shuffle_dims(op: &str, x: &Tensor, groups: usize) -> Result<(usize, usize, usize)> {
    let shape = x.shape();
    if shape.len() < 2 {
        return arg_err!("{op}: expected an input of at least 2 dims [N, C, ...], got {shape:?}");
    }
    let c = shape[1];
    if groups == 0 || !c.is_multiple_of(groups) {
        return arg_err!(
            "{op}: groups {groups} does not divide the {c} channels of shape {shape:?}"
        );
    }
    Ok((shape[0], c, shape[2..].iter().product()))
}

/// `x` viewed as `[a, b, c, d]`, transposed to `[a, c, b, d]`, in `x`'s shape.
fn transpose_middle(x: &Tensor, [_, b, c, d]: [usize; 4]) -> Result<Tensor> {
    let y = x.uninit_like(x.shape())?;
    let n = x.numel() as u64;
    x.device().dispatch(
        &SHUFFLE,
        "main",
        &[],
        &[x.buffer(), y.buffer()],
        &[n as u32, b as u32, c as u32, d as u32],
        Grid::for_items(n, WG).trips(0),
    )?;
    Ok(y)
}

/// ShuffleNet's channel shuffle (PyTorch's `nn.ChannelShuffle`) of an `[N, C, ...]`
/// tensor: the channels, viewed as `[groups, C / groups]`, are transposed to
/// `[C / groups, groups]`, so output channel `j · groups + k` is input channel
/// `k · (C / groups) + j`. An `Err` unless `groups` divides `C` (0 included).
pub fn channel_shuffle(x: &Tensor, groups: usize) -> Result<Tensor> {
    let (n, c, s) = shuffle_dims("channel_shuffle", x, groups)?;
    transpose_middle(x, [n, groups, c / groups, s])
}

/// Gradient of [`channel_shuffle`] with the same `groups`: the inverse permutation, which
/// is a shuffle with `C / groups` groups.
pub fn channel_shuffle_backward(grad: &Tensor, groups: usize) -> Result<Tensor> {
    let (n, c, s) = shuffle_dims("channel_shuffle_backward", grad, groups)?;
    transpose_middle(grad, [n, c / groups, groups, s])
}
