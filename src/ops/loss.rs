//! Cross-entropy loss with label smoothing (PyTorch's `F.cross_entropy` with class-index
//! targets and `reduction="mean"`), forward and backward. Kernel: `shaders/loss.wgsl`.
//!
//! Each row's maximum and Σ exp(x - max) come from reductions that split long rows (so
//! any number of classes stays within the loop budget); the row losses, and the
//! gradient, are then elementwise, and the batch mean a GPU reduction: nothing is read
//! back.
//! Targets are uploaded per call as a `[N]` tensor holding each class index's `u32` bit
//! pattern (one small write, which submits the work recorded before it).

use super::elementwise::{BCE_LOGITS_GRAD_OP, BCE_LOGITS_OP, binary_op};
use super::reduce::{Reduction, reduce_with};
use super::softmax::row_stats;
use crate::error::{Result, arg_err, shape_err};
use crate::gpu::{Grid, Kernel, kernel};
use crate::tensor::Tensor;

const LOSS: Kernel = kernel!("loss.wgsl");

/// `(N, C)` after checking the logits' shape, the targets and the smoothing.
fn check(
    op: &str,
    logits: &Tensor,
    targets: &[usize],
    label_smoothing: f32,
) -> Result<(usize, usize)> {
    let &[n, c] = logits.shape() else {
        return shape_err!(
            "{op}: expected logits of shape [N, C], got {:?}",
            logits.shape()
        );
    };
    if targets.len() != n {
        return shape_err!(
            "{op}: {} targets for logits of shape {:?} ({n} rows)",
            targets.len(),
            logits.shape()
        );
    }
    if let Some((i, &t)) = targets.iter().enumerate().find(|&(_, &t)| t >= c) {
        return arg_err!("{op}: target {i} is class {t}, but there are only C = {c} classes");
    }
    if !(0.0..=1.0).contains(&label_smoothing) {
        return arg_err!("{op}: label_smoothing must be in [0, 1], got {label_smoothing}");
    }
    Ok((n, c))
}

/// The class indices as a `[N]` tensor of `u32` bit patterns (checked `< C` already, so
/// each fits a `u32`).
fn upload_targets(logits: &Tensor, targets: &[usize]) -> Result<Tensor> {
    let bits: Vec<f32> = targets.iter().map(|&t| f32::from_bits(t as u32)).collect();
    Tensor::from_vec(logits.device(), bits, &[targets.len()])
}

/// Runs `entry` of the loss kernel over `invocations` rows or elements, writing `out`;
/// `row_shifted` is bound only for `rows`.
fn launch(
    entry: &'static str,
    (logits, targets): (&Tensor, &Tensor),
    (row_max, row_sum, row_shifted): (&Tensor, &Tensor, Option<&Tensor>),
    out: &Tensor,
    (invocations, classes): (usize, usize),
    (label_smoothing, scale): (f32, f32),
) -> Result<()> {
    let mut buffers = vec![
        logits.buffer(),
        targets.buffer(),
        row_max.buffer(),
        row_sum.buffer(),
        out.buffer(),
    ];
    buffers.extend(row_shifted.map(Tensor::buffer));
    logits.device().dispatch(
        &LOSS,
        entry,
        &[],
        &buffers,
        &[
            invocations as u32,
            classes as u32,
            label_smoothing.to_bits(),
            scale.to_bits(),
        ],
        Grid::for_items(invocations as u64, 256).trips(0),
    )
}

/// Mean cross-entropy over a batch of `logits` `[N, C]` and class indices `targets`
/// (length N), as a `[1]` tensor. With label smoothing ε (PyTorch's `label_smoothing`;
/// 0 for none) the loss of row i is `(1 - ε)·(-log p[i, t_i]) + ε·mean_c(-log p[i, c])`,
/// `p` being the row's softmax. An empty batch gives NaN, as PyTorch.
///
/// An `Err` when the logits are not 2-D, the target count is not N, a target is not below
/// C (naming the row and the class), or ε is not in `[0, 1]`.
pub fn cross_entropy(logits: &Tensor, targets: &[usize], label_smoothing: f32) -> Result<Tensor> {
    let (n, c) = check("cross_entropy", logits, targets, label_smoothing)?;
    if n == 0 {
        // The mean over no rows is NaN, as PyTorch.
        return Tensor::full(logits.device(), &[1], f32::NAN);
    }
    let targets = upload_targets(logits, targets)?;
    let (row_max, row_sum) = row_stats(logits, n, c)?;
    // Σ (x - max) per row, for the smoothing term (skipped, and never read, without it).
    let row_shifted = if label_smoothing > 0.0 {
        reduce_with(
            logits,
            &[1],
            true,
            Reduction::SumCentered,
            Some(&row_max),
            1.0,
        )?
    } else {
        row_max.clone()
    };
    let rows = logits.uninit_like(&[n])?;
    launch(
        "rows",
        (logits, &targets),
        (&row_max, &row_sum, Some(&row_shifted)),
        &rows,
        (n, c),
        (label_smoothing, 0.0),
    )?;
    rows.mean(&[0], true)
}

/// Gradient of [`cross_entropy`] with respect to the logits, for an upstream gradient
/// `grad_loss` of the (scalar) loss: `grad_loss · (softmax(logits) - (1 - ε)·onehot(t) -
/// ε / C) / N`, shaped `[N, C]`. The same checks as the forward, and an `Err` when
/// `grad_loss` is not finite.
pub fn cross_entropy_backward(
    logits: &Tensor,
    targets: &[usize],
    label_smoothing: f32,
    grad_loss: f32,
) -> Result<Tensor> {
    let op = "cross_entropy_backward";
    let (n, c) = check(op, logits, targets, label_smoothing)?;
    if !grad_loss.is_finite() {
        return arg_err!("{op}: grad_loss must be finite, got {grad_loss}");
    }
    let grad = logits.uninit_like(&[n, c])?;
    if grad.numel() == 0 {
        return Ok(grad);
    }
    let targets = upload_targets(logits, targets)?;
    let (row_max, row_sum) = row_stats(logits, n, c)?;
    let scale = grad_loss / n as f32;
    launch(
        "backward",
        (logits, &targets),
        (&row_max, &row_sum, None),
        &grad,
        (n * c, c),
        (label_smoothing, scale),
    )?;
    Ok(grad)
}

/// Checks that `logits` and `targets` have one shape with at least one element.
fn check_bce(op: &str, logits: &Tensor, targets: &Tensor) -> Result<usize> {
    logits.check_same_device(targets, op)?;
    if logits.shape() != targets.shape() {
        return shape_err!(
            "{op}: logits {:?} and targets {:?} must have the same shape",
            logits.shape(),
            targets.shape()
        );
    }
    Ok(logits.numel())
}

/// Mean binary cross-entropy of `logits` against `targets` (probabilities in [0, 1], same
/// shape), PyTorch's `binary_cross_entropy_with_logits`: mean of max(x, 0) - x·t +
/// log(1 + e^-|x|), finite for any finite logit. A `[1]` tensor; NaN for no elements,
/// as PyTorch.
pub fn bce_with_logits(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let n = check_bce("bce_with_logits", logits, targets)?;
    if n == 0 {
        return Tensor::full(logits.device(), &[1], f32::NAN);
    }
    let per_element = binary_op(logits, targets, BCE_LOGITS_OP)?;
    let all: Vec<usize> = (0..per_element.ndim()).collect();
    reduce_with(
        &per_element,
        &all,
        false,
        Reduction::Sum,
        None,
        1.0 / n as f32,
    )?
    .reshape(&[1])
}

/// The gradient of [`bce_with_logits`] with respect to the logits for a unit loss
/// gradient: (σ(x) - t) / n.
pub fn bce_with_logits_backward(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let n = check_bce("bce_with_logits_backward", logits, targets)?;
    binary_op(logits, targets, BCE_LOGITS_GRAD_OP)?.scale(1.0 / n.max(1) as f32)
}

const PIXEL_LOSS: Kernel = kernel!("pixel_loss.wgsl");

/// The pixel count, classes, plane and counted pixels, after checking the logits
/// `[N, C, H, W]` and one target per pixel (a class below C, or `ignore_index`).
fn check_pixels(
    op: &str,
    logits: &Tensor,
    targets: &[usize],
    ignore_index: Option<usize>,
) -> Result<(usize, usize, usize, usize)> {
    let &[n, c, h, w] = logits.shape() else {
        return shape_err!(
            "{op}: expected logits of shape [N, C, H, W], got {:?}",
            logits.shape()
        );
    };
    let pixels = n * h * w;
    if targets.len() != pixels {
        return shape_err!(
            "{op}: {} targets for logits of shape {:?} ({pixels} pixels, N·H·W)",
            targets.len(),
            logits.shape()
        );
    }
    let mut counted = 0;
    for (i, &t) in targets.iter().enumerate() {
        if Some(t) == ignore_index {
            continue;
        }
        if t >= c {
            return arg_err!(
                "{op}: pixel {i} has class {t}, but there are only C = {c} classes (and the \
                 ignored index is {ignore_index:?})"
            );
        }
        counted += 1;
    }
    Ok((pixels, c, h * w, counted))
}

/// The per-pixel maximum and Σ exp(x - max) over the channels, and the targets as u32
/// bits (ignored pixels as all ones).
fn pixel_stats(
    logits: &Tensor,
    targets: &[usize],
    ignore_index: Option<usize>,
) -> Result<(Tensor, Tensor, Tensor)> {
    let max = reduce_with(logits, &[1], true, Reduction::Max, None, 1.0)?;
    let sum = reduce_with(logits, &[1], true, Reduction::SumExp, Some(&max), 1.0)?;
    let bits: Vec<f32> = targets
        .iter()
        .map(|&t| {
            f32::from_bits(if Some(t) == ignore_index {
                u32::MAX
            } else {
                t as u32
            })
        })
        .collect();
    let targets = Tensor::from_vec(logits.device(), bits, &[targets.len()])?;
    Ok((max, sum, targets))
}

fn launch_pixels(
    entry: &'static str,
    (logits, targets, max, sum): (&Tensor, &Tensor, &Tensor, &Tensor),
    out: &Tensor,
    (invocations, classes, plane): (usize, usize, usize),
    scale: f32,
) -> Result<()> {
    logits.device().dispatch(
        &PIXEL_LOSS,
        entry,
        &[],
        &[
            logits.buffer(),
            targets.buffer(),
            max.buffer(),
            sum.buffer(),
            out.buffer(),
        ],
        &[
            invocations as u32,
            classes as u32,
            plane as u32,
            scale.to_bits(),
        ],
        Grid::for_items(invocations as u64, 256).trips(0),
    )
}

/// Mean cross-entropy per pixel for semantic segmentation (PyTorch's `cross_entropy` on
/// `[N, C, H, W]` logits with `ignore_index`): the softmax runs over the channels of
/// each pixel, `targets` holds one class per pixel (N·H·W, row by row), and pixels whose
/// target is `ignore_index` count neither in the sum nor in the mean. A `[1]` tensor; NaN
/// when every pixel is ignored, as PyTorch. An `Err` names a target that is neither
/// below C nor ignored, or a count or shape that does not fit.
pub fn pixel_cross_entropy(
    logits: &Tensor,
    targets: &[usize],
    ignore_index: Option<usize>,
) -> Result<Tensor> {
    let op = "pixel_cross_entropy";
    let (pixels, c, plane, counted) = check_pixels(op, logits, targets, ignore_index)?;
    if counted == 0 {
        return Tensor::full(logits.device(), &[1], f32::NAN);
    }
    let (max, sum, bits) = pixel_stats(logits, targets, ignore_index)?;
    let losses = logits.uninit_like(&[pixels])?;
    let operands = (logits, &bits, &max, &sum);
    launch_pixels("pixels", operands, &losses, (pixels, c, plane), 1.0)?;
    reduce_with(
        &losses,
        &[0],
        false,
        Reduction::Sum,
        None,
        1.0 / counted as f32,
    )?
    .reshape(&[1])
}

/// The gradient of [`pixel_cross_entropy`] with respect to the logits for a unit loss
/// gradient: (softmax - one-hot) / (pixels counted), zero at ignored pixels.
pub fn pixel_cross_entropy_backward(
    logits: &Tensor,
    targets: &[usize],
    ignore_index: Option<usize>,
) -> Result<Tensor> {
    let op = "pixel_cross_entropy_backward";
    let (_, c, plane, counted) = check_pixels(op, logits, targets, ignore_index)?;
    let dx = logits.uninit_like(logits.shape())?;
    if counted == 0 {
        crate::ops::elementwise::fill(&dx, 0.0)?;
        return Ok(dx);
    }
    let (max, sum, bits) = pixel_stats(logits, targets, ignore_index)?;
    let operands = (logits, &bits, &max, &sum);
    let scale = 1.0 / counted as f32;
    launch_pixels("backward", operands, &dx, (logits.numel(), c, plane), scale)?;
    Ok(dx)
}
