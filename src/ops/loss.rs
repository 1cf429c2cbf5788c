//! Cross-entropy loss with label smoothing (PyTorch's `F.cross_entropy` with class-index
//! targets and `reduction="mean"`), forward and backward. Kernel: `shaders/loss.wgsl`.
//!
//! One workgroup per row computes a stable log-softmax (shifted by the row maximum) and
//! the row's loss; the batch mean is then a GPU reduction, so nothing is read back.
//! Targets are uploaded per call as a `[N]` tensor holding each class index's `u32` bit
//! pattern (one small write, which submits the work recorded before it).

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

/// Runs `entry` of the loss kernel, writing `out`.
fn launch(
    entry: &'static str,
    logits: &Tensor,
    targets: &Tensor,
    out: &Tensor,
    (n, c): (usize, usize),
    label_smoothing: f32,
    scale: f32,
) -> Result<()> {
    logits.device().dispatch(
        &LOSS,
        entry,
        &[],
        &[logits.buffer(), targets.buffer(), out.buffer()],
        &[
            n as u32,
            c as u32,
            label_smoothing.to_bits(),
            scale.to_bits(),
        ],
        Grid::Linear(n as u64),
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
    let targets = upload_targets(logits, targets)?;
    let rows = logits.uninit_like(&[n])?;
    launch(
        "forward",
        logits,
        &targets,
        &rows,
        (n, c),
        label_smoothing,
        0.0,
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
    let targets = upload_targets(logits, targets)?;
    let grad = logits.uninit_like(&[n, c])?;
    let scale = grad_loss / n.max(1) as f32;
    launch(
        "backward",
        logits,
        &targets,
        &grad,
        (n, c),
        label_smoothing,
        scale,
    )?;
    Ok(grad)
}
