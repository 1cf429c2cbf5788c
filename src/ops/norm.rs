//! Normalization layers with PyTorch's semantics: batch norm (training and evaluation,
//! with an optional fused ReLU or ReLU6), layer norm and group norm, forward and backward.
//!
//! Batch norm has kernels of its own (`src/ops/batch_norm.rs`, `shaders/batch_norm_*.wgsl`)
//! that walk each channel's planes without dividing an index per element, and merge
//! per-segment means and squared deviations (Welford/Chan) into the statistics.
//!
//! Layer and group norm (`shaders/norm_*.wgsl`) take their statistics per row (layer
//! norm: one sample; group norm: one (sample, group)) as reductions
//! (`shaders/reduce.wgsl`) in two passes — the mean, then the squared deviations from it.
//! Neither op computes E\[x²\] - E\[x\]²: it cancels catastrophically in f32 when the mean
//! is large next to the spread. Long rows are split, so any count per statistic stays
//! within the loop budget, and every op is a fixed number of launches whatever the
//! channel count. Tensors are immutable, so batch norm returns its new running statistics
//! instead of updating them.

use super::batch_norm;
pub use super::batch_norm::BnAct;
use super::reduce::{Reduction, reduce_with};
use super::segments::{Segments, items_within};
use crate::dist::SharedComm;
use crate::error::{Result, arg_err, shape_err};
use crate::gpu::{Grid, Kernel, kernel};
use crate::tensor::Tensor;

const FINALIZE: Kernel = kernel!("norm_finalize.wgsl");
const APPLY: Kernel = kernel!("norm_apply.wgsl");
const GRAD_SUMS: Kernel = kernel!("norm_grad_sums.wgsl");
const GRAD_INPUT: Kernel = kernel!("norm_grad_input.wgsl");

/// Invocations per workgroup of the elementwise kernels (`WG` in their WGSL).
const ELEMENTWISE_WG: u64 = 256;
/// Invocations per workgroup of `norm_grad_sums.wgsl`, and most elements one workgroup
/// sums (256 per invocation).
const SUMS_WG: usize = 64;
const SUMS_SEGMENT: usize = 256 * SUMS_WG;

/// What [`batch_norm_train`] returns.
#[derive(Clone, Debug)]
pub struct BatchNormTrain {
    /// The normalized output, shaped like the input.
    pub y: Tensor,
    /// The batch mean per channel, `[C]`.
    pub save_mean: Tensor,
    /// `1 / sqrt(biased batch variance + eps)` per channel, `[C]`.
    pub save_invstd: Tensor,
    /// The new running mean: `(1 - momentum) · old + momentum · batch mean`, `[C]`.
    pub running_mean: Tensor,
    /// The new running variance: `(1 - momentum) · old + momentum · unbiased batch
    /// variance` (`n / (n - 1)` times the biased one, as PyTorch), `[C]`.
    pub running_var: Tensor,
    /// The scale and shift per channel the output was computed with, `[C, 2]`:
    /// `invstd · weight` and `bias - mean · invstd · weight`. [`batch_norm_act_backward`]
    /// recomputes the fused activation's input from them.
    pub scale_shift: Tensor,
}

/// Where each element finds its statistic and its affine parameter: at
/// `(flat index / div) % modulus` of the statistics and of the weight and bias.
#[derive(Clone, Copy)]
struct Indexing {
    stat_div: usize,
    stat_mod: usize,
    affine_div: usize,
    affine_mod: usize,
}

impl Indexing {
    /// Layer norm: statistics per row of `[R, D]`, parameters per column.
    fn per_row(r: usize, d: usize) -> Indexing {
        Indexing {
            stat_div: d,
            stat_mod: r,
            affine_div: 1,
            affine_mod: d,
        }
    }

    /// As `u32` words for a uniform block; the moduli and divisors are at least 1 so the
    /// kernels never divide by zero (a zero-sized tensor launches nothing anyway).
    fn words(self) -> [u32; 4] {
        [
            self.stat_div.max(1) as u32,
            self.stat_mod.max(1) as u32,
            self.affine_div.max(1) as u32,
            self.affine_mod.max(1) as u32,
        ]
    }
}

/// Which elements one backward sum runs over (see `shaders/norm_grad_sums.wgsl`): row `r`
/// is `outer` runs of `inner` contiguous elements, `outer_stride` apart, from `r · inner`.
#[derive(Clone, Copy)]
struct Rows {
    rows: usize,
    inner: usize,
    outer: usize,
    outer_stride: usize,
}

fn check_finite(op: &str, name: &str, value: f32) -> Result<()> {
    if !value.is_finite() {
        return arg_err!("{op}: {name} must be finite, got {value}");
    }
    Ok(())
}

/// An error unless `t` lives on `x`'s device and has shape `want`.
fn check_param(op: &str, name: &str, x: &Tensor, t: &Tensor, want: &[usize]) -> Result<()> {
    x.check_same_device(t, op)?;
    if t.shape() != want {
        return shape_err!(
            "{op}: {name} has shape {:?}, expected {want:?} for input of shape {:?}",
            t.shape(),
            x.shape()
        );
    }
    Ok(())
}

fn check_optional(
    op: &str,
    name: &str,
    x: &Tensor,
    t: Option<&Tensor>,
    want: &[usize],
) -> Result<()> {
    t.map_or(Ok(()), |t| check_param(op, name, x, t, want))
}

/// `(N, C, S)` of an `[N, C, ...]` input, S being the product of the trailing dims.
fn split_channels(op: &str, x: &Tensor) -> Result<(usize, usize, usize)> {
    let shape = x.shape();
    if shape.len() < 2 {
        return arg_err!(
            "{op}: expected an input of at least 2 dims [N, C, ...], got shape {shape:?}"
        );
    }
    Ok((shape[0], shape[1], shape[2..].iter().product()))
}

/// `y = (x - mean) · invstd · weight + bias`, a missing weight or bias being the identity.
fn apply(
    x: &Tensor,
    mean: &Tensor,
    invstd: &Tensor,
    (weight, bias): (Option<&Tensor>, Option<&Tensor>),
    at: Indexing,
) -> Result<Tensor> {
    let y = x.uninit_like(x.shape())?;
    let n = x.numel();
    let flags = u32::from(weight.is_some()) | u32::from(bias.is_some()) << 1;
    let mut params = vec![n as u32];
    params.extend(at.words());
    params.push(flags);
    // A missing weight or bias is never read; any read-only buffer fills its slot.
    let weight = weight.unwrap_or(mean);
    let bias = bias.unwrap_or(mean);
    x.device().dispatch(
        &APPLY,
        "main",
        &[],
        &[
            x.buffer(),
            mean.buffer(),
            invstd.buffer(),
            weight.buffer(),
            bias.buffer(),
            y.buffer(),
        ],
        &params,
        Grid::for_items(n as u64, ELEMENTWISE_WG).trips(0),
    )?;
    Ok(y)
}

/// What every backward kernel reads: the upstream gradient, the forward's input, weight
/// and statistics, and where each element finds its statistic and weight.
struct Saved<'a> {
    dy: &'a Tensor,
    x: &'a Tensor,
    mean: &'a Tensor,
    invstd: &'a Tensor,
    weight: Option<&'a Tensor>,
    at: Indexing,
}

impl Saved<'_> {
    /// The buffer bound in the weight's slot: without a weight the kernels never read it.
    fn weight_or_any(&self) -> &Tensor {
        self.weight.unwrap_or(self.mean)
    }

    /// Per row of `rows`: `(Σ g, Σ g · xhat)` with `g = dy · weight` when `weighted`, or
    /// `dy` alone. Both results have `shape` (`rows.rows` elements).
    fn sums(&self, weighted: bool, rows: Rows, shape: &[usize]) -> Result<(Tensor, Tensor)> {
        let device = self.x.device();
        // Each invocation: its share of a segment (one iteration per element) and the
        // workgroup's tree of 6 halvings.
        let fixed = 8 + 7;
        let per_lane = items_within(device.loop_budget(), fixed, 1).unwrap_or(1);
        let count = rows.inner * rows.outer;
        let segments = Segments::split(count, (per_lane * SUMS_WG).min(SUMS_SEGMENT));
        let partial_shape = [rows.rows, segments.count];
        let sum_g = self.x.uninit_like(&partial_shape)?;
        let sum_g_xhat = self.x.uninit_like(&partial_shape)?;
        let mut params = vec![
            rows.rows as u32,
            rows.inner as u32,
            rows.outer as u32,
            rows.outer_stride as u32,
        ];
        params.extend(self.at.words());
        params.push(u32::from(weighted && self.weight.is_some()));
        params.extend([segments.count as u32, segments.len as u32]);
        let trips = fixed + segments.len.div_ceil(SUMS_WG) as u64;
        device.dispatch(
            &GRAD_SUMS,
            "main",
            &[],
            &[
                self.dy.buffer(),
                self.x.buffer(),
                self.mean.buffer(),
                self.invstd.buffer(),
                self.weight_or_any().buffer(),
                sum_g.buffer(),
                sum_g_xhat.buffer(),
            ],
            &params,
            Grid::Linear((rows.rows * segments.count) as u64).trips(trips),
        )?;
        // Add up each row's segments (nothing to add with one).
        let total = |t: Tensor| -> Result<Tensor> {
            let t = if segments.count == 1 {
                t
            } else {
                reduce_with(&t, &[1], false, Reduction::Sum, None, 1.0)?
            };
            t.reshape(shape)
        };
        Ok((total(sum_g)?, total(sum_g_xhat)?))
    }

    /// dx through the statistics, from the [`Saved::sums`] over the `count` elements of
    /// each statistic; `sums_weighted` unless those sums left the weight out (batch norm,
    /// whose weight is constant over a statistic's elements).
    fn grad_input(
        &self,
        (sum_g, sum_g_xhat): &(Tensor, Tensor),
        count: usize,
        sums_weighted: bool,
    ) -> Result<Tensor> {
        let x = self.x;
        let dx = x.uninit_like(x.shape())?;
        let n = x.numel();
        let flags = u32::from(self.weight.is_some()) | u32::from(!sums_weighted) << 1;
        let mut params = vec![n as u32];
        params.extend(self.at.words());
        params.extend([count as u32, flags]);
        x.device().dispatch(
            &GRAD_INPUT,
            "main",
            &[],
            &[
                self.dy.buffer(),
                x.buffer(),
                self.mean.buffer(),
                self.invstd.buffer(),
                self.weight_or_any().buffer(),
                sum_g.buffer(),
                sum_g_xhat.buffer(),
                dx.buffer(),
            ],
            &params,
            Grid::for_items(n as u64, ELEMENTWISE_WG).trips(0),
        )?;
        Ok(dx)
    }
}

/// The mean and biased variance of `x` over `axes`, `count` elements per statistic:
/// two reductions, the second of squared deviations from the first.
fn moments(x: &Tensor, axes: &[usize], count: usize) -> Result<(Tensor, Tensor)> {
    let scale = 1.0 / count as f32;
    let mean = reduce_with(x, axes, false, Reduction::Sum, None, scale)?;
    let var = reduce_with(x, axes, false, Reduction::SumSquares, Some(&mean), scale)?;
    Ok((mean, var))
}

/// invstd = 1 / sqrt(var + eps) per statistic: one elementwise launch.
fn finalize(mean: &Tensor, var: &Tensor, eps: f32) -> Result<Tensor> {
    let invstd = mean.uninit_like(mean.shape())?;
    let n = mean.numel();
    mean.device().dispatch(
        &FINALIZE,
        "main",
        &[],
        &[var.buffer(), invstd.buffer()],
        &[n as u32, eps.to_bits()],
        Grid::for_items(n as u64, ELEMENTWISE_WG).trips(0),
    )?;
    Ok(invstd)
}

/// Mean and invstd of each of `rows` contiguous rows of `len` elements of `x`, shaped
/// `shape`.
fn row_stats(
    x: &Tensor,
    rows: usize,
    len: usize,
    eps: f32,
    shape: &[usize],
) -> Result<(Tensor, Tensor)> {
    let (mean, var) = moments(&x.reshape(&[rows, len])?, &[1], len)?;
    let invstd = finalize(&mean, &var, eps)?;
    Ok((mean.reshape(shape)?, invstd.reshape(shape)?))
}

/// The checks common to both batch norm forwards; returns `(N, C, S)`.
fn check_batch_norm(
    op: &str,
    x: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    running_mean: &Tensor,
    running_var: &Tensor,
    eps: f32,
) -> Result<(usize, usize, usize)> {
    let (n, c, s) = split_channels(op, x)?;
    check_optional(op, "weight", x, weight, &[c])?;
    check_optional(op, "bias", x, bias, &[c])?;
    check_param(op, "running_mean", x, running_mean, &[c])?;
    check_param(op, "running_var", x, running_var, &[c])?;
    check_finite(op, "eps", eps)?;
    Ok((n, c, s))
}

/// Batch normalization in training mode (PyTorch's `F.batch_norm(training=True)`) of an
/// `[N, C, ...]` input (`[N, C]`, `[N, C, L]`, `[N, C, H, W]`, ...): each channel is
/// normalized with its mean and biased variance over the batch and the trailing dims, then
/// scaled by `weight` and shifted by `bias` (both `[C]`, identity when `None`).
///
/// Returns the output, the saved statistics [`batch_norm_backward`] needs, and the running
/// statistics updated with `momentum` (PyTorch's default is 0.1; the cumulative average of
/// `momentum=None` is not offered). Errors when a channel has fewer than 2 values, since
/// its unbiased variance is undefined (PyTorch: "Expected more than 1 value per channel").
pub fn batch_norm_train(
    x: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    running_mean: &Tensor,
    running_var: &Tensor,
    momentum: f32,
    eps: f32,
) -> Result<BatchNormTrain> {
    batch_norm_act_train(
        x,
        (weight, bias),
        (running_mean, running_var),
        (momentum, eps),
        BnAct::Identity,
    )
}

/// [`batch_norm_train`] with the activation that follows it fused in: `y =
/// act(batch_norm(x))` in one pass over `x`. The affine parameters and the running
/// statistics come in pairs: `(weight, bias)`, `(running_mean, running_var)`, and
/// `(momentum, eps)`.
pub fn batch_norm_act_train(
    x: &Tensor,
    affine: (Option<&Tensor>, Option<&Tensor>),
    running: (&Tensor, &Tensor),
    hyper: (f32, f32),
    act: BnAct,
) -> Result<BatchNormTrain> {
    train_with(x, (None, None), affine, running, hyper, act)
}

/// [`batch_norm_act_train`] with the batch statistics merged from `moments`, which the
/// op that wrote `x` computed on the way ([`crate::ops::conv::conv2d_with_moments`]),
/// instead of from a pass of its own over `x`: the same numbers up to float rounding.
/// An `Err` when `moments` are not those of `x`.
pub fn batch_norm_act_train_from(
    x: &Tensor,
    moments: &ChannelMoments,
    affine: (Option<&Tensor>, Option<&Tensor>),
    running: (&Tensor, &Tensor),
    hyper: (f32, f32),
    act: BnAct,
) -> Result<BatchNormTrain> {
    train_with(x, (Some(moments), None), affine, running, hyper, act)
}

/// [`batch_norm_act_train_from`] with optional `moments`, and with `sync` the statistics
/// of every rank's batch (sync batch norm; its backward needs the same `sync`: see
/// [`batch_norm_act_backward_owned`]).
pub(crate) fn batch_norm_act_train_synced(
    x: &Tensor,
    (moments, sync): (Option<&ChannelMoments>, Option<&SharedComm>),
    affine: (Option<&Tensor>, Option<&Tensor>),
    running: (&Tensor, &Tensor),
    hyper: (f32, f32),
    act: BnAct,
) -> Result<BatchNormTrain> {
    train_with(x, (moments, sync), affine, running, hyper, act)
}

/// The moments of each channel of a tensor, written by the op that computed it (a
/// convolution's last step, see [`crate::ops::conv::conv2d_with_moments`]): count, mean
/// and M2 (the sum of squared deviations from the mean) per segment of each channel,
/// which batch norm's statistics merge ([`batch_norm_act_train_from`]) instead of reading
/// the tensor again.
#[derive(Clone, Debug)]
pub struct ChannelMoments {
    /// `[C, segments, 3]`.
    partial: Tensor,
    /// The tensor they are of (checked on use).
    of: Tensor,
}

impl ChannelMoments {
    /// The moments `partial` (`[C, segments, 3]`) of `of`.
    pub(crate) fn new(partial: Tensor, of: &Tensor) -> Self {
        Self {
            partial,
            of: of.clone(),
        }
    }

    /// Most segments per channel batch norm's statistics merge on `device` (one
    /// invocation per channel loops over them).
    pub(crate) fn max_segments(device: &crate::Device) -> usize {
        batch_norm::max_merged_segments(device)
    }
}

fn train_with(
    x: &Tensor,
    (moments, sync): (Option<&ChannelMoments>, Option<&SharedComm>),
    (weight, bias): (Option<&Tensor>, Option<&Tensor>),
    (running_mean, running_var): (&Tensor, &Tensor),
    (momentum, eps): (f32, f32),
    act: BnAct,
) -> Result<BatchNormTrain> {
    let op = "batch_norm_train";
    let (n, c, s) = check_batch_norm(op, x, weight, bias, running_mean, running_var, eps)?;
    check_finite(op, "momentum", momentum)?;
    // With sync batch norm the count that matters is over every rank (checked once
    // gathered); each rank needs a value per channel all the same, since an empty one
    // would skip its collectives.
    let count = n * s;
    let least = if sync.is_some() { 1 } else { 2 };
    if count < least {
        return arg_err!(
            "{op}: expected more than 1 value per channel when training (with sync batch \
             norm, at least 1 on every rank), got input of shape {:?} ({count} per channel)",
            x.shape()
        );
    }
    if let Some(m) = moments
        && !m.of.is_same_tensor(x)
    {
        return arg_err!(
            "{op}: the moments given are of another tensor than the input {:?}",
            x.shape()
        );
    }
    batch_norm::train(
        x,
        (moments.map(|m| &m.partial), sync),
        (n, c, s),
        (weight, bias),
        (running_mean, running_var),
        (momentum, eps),
        act,
    )
}

/// Batch normalization in evaluation mode (PyTorch's `F.batch_norm(training=False)`):
/// `(x - running_mean) / sqrt(running_var + eps) · weight + bias` per channel of an
/// `[N, C, ...]` input. One launch.
pub fn batch_norm_eval(
    x: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    running_mean: &Tensor,
    running_var: &Tensor,
    eps: f32,
) -> Result<Tensor> {
    batch_norm_act_eval(
        x,
        (weight, bias),
        (running_mean, running_var),
        eps,
        BnAct::Identity,
    )
}

/// [`batch_norm_eval`] with the activation that follows it fused in.
pub fn batch_norm_act_eval(
    x: &Tensor,
    (weight, bias): (Option<&Tensor>, Option<&Tensor>),
    (running_mean, running_var): (&Tensor, &Tensor),
    eps: f32,
    act: BnAct,
) -> Result<Tensor> {
    let op = "batch_norm_eval";
    let (n, c, s) = check_batch_norm(op, x, weight, bias, running_mean, running_var, eps)?;
    batch_norm::eval(
        x,
        (n, c, s),
        (weight, bias),
        (running_mean, running_var),
        eps,
        act,
    )
}

/// A batch norm in evaluation mode, as [`batch_norm_eval`] takes it: the affine
/// parameters (`[C]`, identity when `None`), the running statistics and eps.
#[derive(Clone, Copy, Debug)]
pub struct FrozenBatchNorm<'a> {
    /// The scale, `[C]`.
    pub weight: Option<&'a Tensor>,
    /// The shift, `[C]`.
    pub bias: Option<&'a Tensor>,
    /// The running mean, `[C]`.
    pub running_mean: &'a Tensor,
    /// The running variance, `[C]`.
    pub running_var: &'a Tensor,
    /// Added to the variance.
    pub eps: f32,
}

impl FrozenBatchNorm<'_> {
    /// Its scale and shift per channel, `[c, 2]`, its tensors checked to be `[c]` and on
    /// `x`'s device (`x` the tensor it will apply to, or its convolution's input).
    pub(super) fn scale_shift(&self, op: &str, x: &Tensor, c: usize) -> Result<Tensor> {
        check_optional(op, "batch norm weight", x, self.weight, &[c])?;
        check_optional(op, "batch norm bias", x, self.bias, &[c])?;
        check_param(op, "running_mean", x, self.running_mean, &[c])?;
        check_param(op, "running_var", x, self.running_var, &[c])?;
        check_finite(op, "eps", self.eps)?;
        batch_norm::eval_scale_shift(
            c,
            (self.weight, self.bias),
            (self.running_mean, self.running_var),
            self.eps,
        )
    }
}

/// `act(x · scale + shift)` per channel of an `[N, C, ...]` input, `coef` `[C, 2]`.
pub(super) fn scale_shift(x: &Tensor, coef: &Tensor, act: BnAct) -> Result<Tensor> {
    let (n, c, s) = split_channels("batch_norm_eval", x)?;
    batch_norm::scale_shift(x, (n, c, s), coef, act)
}

/// Gradients of [`batch_norm_eval`] from `grad_y`: the running statistics are constants,
/// so with `invstd = 1 / sqrt(running_var + eps)`, `dx = dy · weight · invstd` per channel,
/// `dweight = Σ dy · xhat` and `dbias = Σ dy` (xhat from the running statistics). This is
/// what flows through a frozen batch norm (fine-tuning, a model in eval mode). Returns
/// `(dx, dweight, dbias)`; the last two are returned even when `weight` is `None`.
pub fn batch_norm_eval_backward(
    grad_y: &Tensor,
    x: &Tensor,
    weight: Option<&Tensor>,
    running_mean: &Tensor,
    running_var: &Tensor,
    eps: f32,
) -> Result<(Tensor, Tensor, Tensor)> {
    batch_norm_act_eval_backward(grad_y, x, weight, (running_mean, running_var), eps, None)
}

/// Gradients of [`batch_norm_act_eval`]: as [`batch_norm_eval_backward`], through the
/// fused activation when `fused` gives it and the forward's output `y`.
pub fn batch_norm_act_eval_backward(
    grad_y: &Tensor,
    x: &Tensor,
    weight: Option<&Tensor>,
    (running_mean, running_var): (&Tensor, &Tensor),
    eps: f32,
    fused: Option<(BnAct, &Tensor)>,
) -> Result<(Tensor, Tensor, Tensor)> {
    let op = "batch_norm_eval_backward";
    let (n, c, s) = check_batch_norm(op, x, weight, None, running_mean, running_var, eps)?;
    check_param(op, "grad_y", x, grad_y, x.shape())?;
    check_fused(op, x, fused)?;
    let invstd = finalize(running_mean, running_var, eps)?;
    let saved = batch_norm::Saved {
        mean: running_mean,
        invstd: &invstd,
        batch_stats: false,
        weight,
        fused: fused.map(|(act, y)| (act, batch_norm::MaskFrom::Output(y))),
        sync: None,
    };
    batch_norm::backward(grad_y, x, (n, c, s), saved, false)
}

/// An error unless a fused activation's saved output is shaped like the input.
fn check_fused(op: &str, x: &Tensor, fused: Option<(BnAct, &Tensor)>) -> Result<()> {
    fused.map_or(Ok(()), |(_, y)| check_param(op, "y", x, y, x.shape()))
}

/// Gradients of [`batch_norm_train`] (training mode: through the batch statistics) from
/// `grad_y`, given the forward's input, `weight` and saved statistics. Returns `(dx,
/// dweight, dbias)`; `dweight = Σ dy · xhat` and `dbias = Σ dy` per channel are returned
/// even when `weight` is `None` (they are then the gradients an identity affine would get).
pub fn batch_norm_backward(
    grad_y: &Tensor,
    x: &Tensor,
    weight: Option<&Tensor>,
    save_mean: &Tensor,
    save_invstd: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    batch_norm_act_backward(grad_y, x, weight, (save_mean, save_invstd), None)
}

/// Gradients of [`batch_norm_act_train`]: as [`batch_norm_backward`], through the fused
/// activation when `fused` gives it and the forward's [`BatchNormTrain::scale_shift`]
/// (from which the activation's input is recomputed: cheaper than reading the output).
pub fn batch_norm_act_backward(
    grad_y: &Tensor,
    x: &Tensor,
    weight: Option<&Tensor>,
    stats: (&Tensor, &Tensor),
    fused: Option<(BnAct, &Tensor)>,
) -> Result<(Tensor, Tensor, Tensor)> {
    train_backward(grad_y, x, weight, stats, fused, (false, None))
}

/// [`batch_norm_act_backward`] taking `grad_y`: when nothing else holds its storage, dx
/// is written there (the tape hands over the gradients it no longer needs). With `sync`
/// (the forward's, [`batch_norm_act_train_synced`]) dx comes from the sums over every
/// rank's batch; the affine parameters' gradients stay this rank's own.
pub(crate) fn batch_norm_act_backward_owned(
    grad_y: Tensor,
    x: &Tensor,
    weight: Option<&Tensor>,
    stats: (&Tensor, &Tensor),
    fused: Option<(BnAct, &Tensor)>,
    sync: Option<&SharedComm>,
) -> Result<(Tensor, Tensor, Tensor)> {
    let reuse = grad_y.is_sole_owner();
    train_backward(&grad_y, x, weight, stats, fused, (reuse, sync))
}

fn train_backward(
    grad_y: &Tensor,
    x: &Tensor,
    weight: Option<&Tensor>,
    (save_mean, save_invstd): (&Tensor, &Tensor),
    fused: Option<(BnAct, &Tensor)>,
    (reuse, sync): (bool, Option<&SharedComm>),
) -> Result<(Tensor, Tensor, Tensor)> {
    let op = "batch_norm_backward";
    let (n, c, s) = split_channels(op, x)?;
    check_param(op, "grad_y", x, grad_y, x.shape())?;
    check_optional(op, "weight", x, weight, &[c])?;
    check_param(op, "save_mean", x, save_mean, &[c])?;
    check_param(op, "save_invstd", x, save_invstd, &[c])?;
    if let Some((_, scale_shift)) = fused {
        check_param(op, "scale_shift", x, scale_shift, &[c, 2])?;
    }
    let saved = batch_norm::Saved {
        mean: save_mean,
        invstd: save_invstd,
        batch_stats: true,
        weight,
        fused: fused.map(|(act, t)| (act, batch_norm::MaskFrom::Input(t))),
        sync,
    };
    batch_norm::backward(grad_y, x, (n, c, s), saved, reuse)
}

/// `(R, D, stats shape, normalized shape)` of a layer norm over the last `normalized_ndim`
/// dims of `x`.
fn layer_norm_layout(
    op: &str,
    x: &Tensor,
    normalized_ndim: usize,
) -> Result<(usize, usize, Vec<usize>, Vec<usize>)> {
    let shape = x.shape();
    if normalized_ndim == 0 || normalized_ndim > shape.len() {
        return arg_err!(
            "{op}: normalized_ndim {normalized_ndim} must be between 1 and the input's {} \
             dims (shape {shape:?})",
            shape.len()
        );
    }
    let split = shape.len() - normalized_ndim;
    let normalized = shape[split..].to_vec();
    let d: usize = normalized.iter().product();
    if d == 0 {
        return arg_err!("{op}: normalized shape {normalized:?} has no elements to normalize");
    }
    let rows: usize = shape[..split].iter().product();
    // PyTorch's native_layer_norm keeps the normalized dims as 1s in mean and rstd.
    let mut stats_shape = shape[..split].to_vec();
    stats_shape.resize(shape.len(), 1);
    Ok((rows, d, stats_shape, normalized))
}

/// Layer normalization (PyTorch's `F.layer_norm`) over the last `normalized_ndim` dims of
/// `x`, with `weight` and `bias` of that trailing shape (identity when `None`). Returns
/// `(y, mean, invstd)`; the statistics have `x`'s leading dims followed by
/// `normalized_ndim` 1s (as PyTorch's `native_layer_norm`).
pub fn layer_norm(
    x: &Tensor,
    normalized_ndim: usize,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f32,
) -> Result<(Tensor, Tensor, Tensor)> {
    let op = "layer_norm";
    let (rows, d, stats_shape, normalized) = layer_norm_layout(op, x, normalized_ndim)?;
    check_optional(op, "weight", x, weight, &normalized)?;
    check_optional(op, "bias", x, bias, &normalized)?;
    check_finite(op, "eps", eps)?;
    let (mean, invstd) = row_stats(x, rows, d, eps, &stats_shape)?;
    let at = Indexing::per_row(rows, d);
    let y = apply(x, &mean, &invstd, (weight, bias), at)?;
    Ok((y, mean, invstd))
}

/// Gradients of [`layer_norm`] from `grad_y`, given the forward's input, `weight` and
/// returned statistics. Returns `(dx, dweight, dbias)`, the last two of the normalized
/// shape: `Σ dy · xhat` and `Σ dy` over the leading dims, returned even when `weight` is
/// `None`.
pub fn layer_norm_backward(
    grad_y: &Tensor,
    x: &Tensor,
    normalized_ndim: usize,
    weight: Option<&Tensor>,
    mean: &Tensor,
    invstd: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    let op = "layer_norm_backward";
    let (rows, d, stats_shape, normalized) = layer_norm_layout(op, x, normalized_ndim)?;
    check_param(op, "grad_y", x, grad_y, x.shape())?;
    check_optional(op, "weight", x, weight, &normalized)?;
    check_param(op, "mean", x, mean, &stats_shape)?;
    check_param(op, "invstd", x, invstd, &stats_shape)?;
    let at = Indexing::per_row(rows, d);
    // dx needs Σ w·dy and Σ w·dy·xhat per row; dweight and dbias are column sums.
    let per_row = Rows {
        rows,
        inner: d,
        outer: 1,
        outer_stride: 0,
    };
    let saved = Saved {
        dy: grad_y,
        x,
        mean,
        invstd,
        weight,
        at,
    };
    let dx = saved.grad_input(&saved.sums(true, per_row, &[rows])?, d, true)?;
    let per_column = Rows {
        rows: d,
        inner: 1,
        outer: rows,
        outer_stride: d,
    };
    let (dbias, dweight) = saved.sums(false, per_column, &normalized)?;
    Ok((dx, dweight, dbias))
}

/// `(N, C, S, channels per group)` of a group norm, checked.
fn group_norm_layout(
    op: &str,
    x: &Tensor,
    num_groups: usize,
) -> Result<(usize, usize, usize, usize)> {
    let (n, c, s) = split_channels(op, x)?;
    if num_groups == 0 || c % num_groups != 0 {
        return arg_err!(
            "{op}: num_groups {num_groups} must divide the {c} channels of input shape {:?}",
            x.shape()
        );
    }
    if c == 0 || s == 0 {
        return arg_err!(
            "{op}: input shape {:?} has no elements per group to normalize",
            x.shape()
        );
    }
    Ok((n, c, s, c / num_groups))
}

/// Indexing of group norm: statistics per (sample, group) row of `cg · s` elements,
/// parameters per channel.
fn group_norm_indexing(n: usize, g: usize, c: usize, s: usize) -> Indexing {
    Indexing {
        stat_div: c / g * s,
        stat_mod: n * g,
        affine_div: s,
        affine_mod: c,
    }
}

/// Group normalization (PyTorch's `F.group_norm`) of an `[N, C, ...]` input: the channels
/// are split into `num_groups` groups and each (sample, group) is normalized over its
/// channels and trailing dims, then scaled and shifted per channel by `weight` and `bias`
/// (`[C]`, identity when `None`). Returns `(y, mean, invstd)` with statistics `[N, G]`.
pub fn group_norm(
    x: &Tensor,
    num_groups: usize,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f32,
) -> Result<(Tensor, Tensor, Tensor)> {
    let op = "group_norm";
    let (n, c, s, cg) = group_norm_layout(op, x, num_groups)?;
    check_optional(op, "weight", x, weight, &[c])?;
    check_optional(op, "bias", x, bias, &[c])?;
    check_finite(op, "eps", eps)?;
    let (mean, invstd) = row_stats(x, n * num_groups, cg * s, eps, &[n, num_groups])?;
    let at = group_norm_indexing(n, num_groups, c, s);
    let y = apply(x, &mean, &invstd, (weight, bias), at)?;
    Ok((y, mean, invstd))
}

/// Gradients of [`group_norm`] from `grad_y`, given the forward's input, `weight` and
/// returned statistics. Returns `(dx, dweight, dbias)`, the last two `[C]`: `Σ dy · xhat`
/// and `Σ dy` per channel, returned even when `weight` is `None`.
pub fn group_norm_backward(
    grad_y: &Tensor,
    x: &Tensor,
    num_groups: usize,
    weight: Option<&Tensor>,
    mean: &Tensor,
    invstd: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    let op = "group_norm_backward";
    let (n, c, s, cg) = group_norm_layout(op, x, num_groups)?;
    check_param(op, "grad_y", x, grad_y, x.shape())?;
    check_optional(op, "weight", x, weight, &[c])?;
    check_param(op, "mean", x, mean, &[n, num_groups])?;
    check_param(op, "invstd", x, invstd, &[n, num_groups])?;
    let at = group_norm_indexing(n, num_groups, c, s);
    let rows = n * num_groups;
    let len = cg * s;
    // dx needs Σ w·dy and Σ w·dy·xhat per (sample, group), the weight varying inside it.
    let per_group = Rows {
        rows,
        inner: len,
        outer: 1,
        outer_stride: 0,
    };
    let saved = Saved {
        dy: grad_y,
        x,
        mean,
        invstd,
        weight,
        at,
    };
    let dx = saved.grad_input(&saved.sums(true, per_group, &[rows])?, len, true)?;
    let per_channel = Rows {
        rows: c,
        inner: s,
        outer: n,
        outer_stride: c * s,
    };
    let (dbias, dweight) = saved.sums(false, per_channel, &[c])?;
    Ok((dx, dweight, dbias))
}
