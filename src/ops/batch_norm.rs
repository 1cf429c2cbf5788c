//! Batch norm's kernels: per-channel passes over `[N, C, S]` tensors that walk each
//! channel's planes directly (`shaders/channel_walk.wgsl`), with the activation that
//! follows batch norm in most networks fused in. The public API is in [`super::norm`].
//!
//! - Training forward: `batch_norm_moments` (Welford partials per channel segment),
//!   `batch_norm_stats` (merged statistics, running statistics, and the affine folded into
//!   a scale and shift per channel), `batch_norm_apply` (`act(x · scale + shift)`).
//! - Evaluation forward: `batch_norm_stats` in its EVAL form, then `batch_norm_apply`.
//! - Backward: `batch_norm_grad_sums` (Σ g and Σ g · xhat per segment),
//!   `batch_norm_grad_coef` (dweight, dbias, and dx's coefficients per channel),
//!   `batch_norm_grad_input`.

use crate::dist::{SharedComm, gather_moments, sum_over_ranks};
use crate::error::{Error, Result};
use crate::gpu::{Device, Grid, Kernel, kernel};
use crate::ops::norm::BatchNormTrain;
use crate::ops::segments::Segments;
use crate::tensor::Tensor;

/// The walking kernels, each in two variants: reading planes in single floats and in
/// vec4s (`shaders/unit1.wgsl`, `shaders/unit4.wgsl`).
const MOMENTS: [Kernel; 2] = [
    kernel!("batch_norm_moments.wgsl", "unit1.wgsl"),
    kernel!("batch_norm_moments.wgsl", "unit4.wgsl"),
];
const APPLY: [Kernel; 2] = [
    kernel!("batch_norm_apply.wgsl", "unit1.wgsl"),
    kernel!("batch_norm_apply.wgsl", "unit4.wgsl"),
];
const GRAD_SUMS: [Kernel; 2] = [
    kernel!("batch_norm_grad_sums.wgsl", "unit1.wgsl"),
    kernel!("batch_norm_grad_sums.wgsl", "unit4.wgsl"),
];
const GRAD_INPUT: [Kernel; 2] = [
    kernel!("batch_norm_grad_input.wgsl", "unit1.wgsl"),
    kernel!("batch_norm_grad_input.wgsl", "unit4.wgsl"),
];
const STATS: Kernel = kernel!("batch_norm_stats.wgsl");
const GRAD_COEF: Kernel = kernel!("batch_norm_grad_coef.wgsl");

/// Invocations per workgroup of the channel walks (`CHANNEL_WG` in
/// `shaders/channel_walk.wgsl`).
const WALK_WG: usize = 256;
/// Invocations per workgroup of the per-channel kernels (`WG` in their WGSL).
const PER_CHANNEL_WG: u64 = 64;
/// Units each lane of a walk takes, about: enough that a lane's setup is paid back,
/// few enough that a channel has several workgroups to spread over a GPU.
const UNITS_PER_LANE: usize = 16;
/// Loop iterations of a walking invocation besides its walk: the workgroup's tree.
const WALK_FIXED: u64 = 16;

/// An activation fused into batch norm: `y = act(batch_norm(x))` in one pass, and its
/// gradient folded into batch norm's backward (where the activation passed its input,
/// recomputed from x in training, read off the output in the frozen backward).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BnAct {
    /// No activation.
    #[default]
    Identity,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
}

impl BnAct {
    /// The `ACT` override of the kernels.
    pub(crate) fn code(self) -> f64 {
        match self {
            BnAct::Identity => 0.0,
            BnAct::Relu => 1.0,
            BnAct::Relu6 => 2.0,
        }
    }
}

/// How the walking kernels cover each channel of an `[N, C, S]` tensor (the fields of
/// `shaders/channel_walk.wgsl`): segments of samples × positions, read in units of
/// `unit` floats, `1 << lane_shift` lanes per plane.
#[derive(Clone, Copy, Debug)]
pub(super) struct ChannelWalk {
    channels: usize,
    plane_units: usize,
    lane_shift: u32,
    samples: usize,
    seg_samples: usize,
    pos_segs: usize,
    seg_units: usize,
    segments: usize,
    unit: usize,
    /// Loop iterations of one lane's walk, both loops.
    walk_trips: u64,
}

impl ChannelWalk {
    /// The walk of `[n, c, s]` (all non-zero) for `device`'s loop budget, with at most
    /// `max_segments` segments per channel when the segments' results are merged by one
    /// invocation per channel.
    fn new(device: &Device, (n, c, s): (usize, usize, usize), max_segments: usize) -> Result<Self> {
        let budget = device.loop_budget().saturating_sub(WALK_FIXED);
        let unit = if s % 4 == 0 { 4 } else { 1 };
        let plane_units = s / unit;
        let lanes = plane_units.next_power_of_two().min(WALK_WG);
        let planes_per_group = WALK_WG / lanes;
        // Each pass of the outer loop costs one iteration plus the inner loop's.
        let max_inner = (budget / 2).max(1) as usize;
        let per_plane = plane_units.div_ceil(lanes);
        let too_large = || {
            Error::Internal(format!(
                "batch norm: no walk of [{n}, {c}, {s}] fits the loop budget of {budget} with \
                 at most {max_segments} segments per channel"
            ))
        };
        let (seg_samples, seg_units, inner) = if per_plane <= max_inner {
            // Whole planes: as many samples per segment as make UNITS_PER_LANE, or as the
            // segment limit needs.
            let by_target = (UNITS_PER_LANE / per_plane).max(1) * planes_per_group;
            let by_limit = n.div_ceil(max_segments).next_multiple_of(planes_per_group);
            let seg_samples = by_target
                .max(by_limit)
                .min(n.next_multiple_of(planes_per_group));
            (seg_samples, plane_units, per_plane)
        } else {
            // Planes in position ranges, one sample per segment: as long as UNITS_PER_LANE
            // or the segment limit needs, as the budget allows.
            let by_limit = per_plane.div_ceil((max_segments / n).max(1));
            let pos = Segments::split(per_plane, UNITS_PER_LANE.max(by_limit).min(max_inner));
            (1, pos.len * lanes, pos.len)
        };
        let outer = seg_samples.div_ceil(planes_per_group);
        let walk_trips = (outer * (1 + inner)) as u64;
        let pos_segs = plane_units.div_ceil(seg_units);
        let segments = n.div_ceil(seg_samples) * pos_segs;
        if walk_trips > budget || segments > max_segments {
            return Err(too_large());
        }
        Ok(ChannelWalk {
            channels: c,
            plane_units,
            lane_shift: lanes.trailing_zeros(),
            samples: n,
            seg_samples,
            pos_segs,
            seg_units,
            segments,
            unit,
            walk_trips,
        })
    }

    /// The leading words of the walking kernels' parameters.
    fn words(&self) -> Vec<u32> {
        [
            self.channels,
            self.plane_units,
            self.lane_shift as usize,
            self.samples,
            self.seg_samples,
            self.pos_segs,
            self.seg_units,
            self.segments,
        ]
        .map(|v| v as u32)
        .to_vec()
    }

    /// The variant of a walking kernel for this walk's units.
    fn kernel(&self, variants: &'static [Kernel; 2]) -> &'static Kernel {
        &variants[usize::from(self.unit == 4)]
    }

    /// One workgroup per (channel, segment), each lane walking its share.
    fn launch(&self) -> crate::gpu::Launch {
        Grid::Linear((self.channels * self.segments) as u64).trips(WALK_FIXED + self.walk_trips)
    }
}

/// Most segments whose results one invocation per channel merges (a loop of its own).
pub(super) fn max_merged_segments(device: &Device) -> usize {
    (device.loop_budget() - 8) as usize
}

/// The per-channel grid of `batch_norm_stats` and `batch_norm_grad_coef`.
fn per_channel(c: usize, segments: usize) -> crate::gpu::Launch {
    Grid::for_items(c as u64, PER_CHANNEL_WG).trips(segments as u64 + 8)
}

/// Training forward of `x` viewed as `[n, c, s]` (count `n · s` > 1 per channel). With
/// `moments` (`[c, segments, 3]`, written by the op that computed x) the statistics merge
/// those instead of walking x; with `sync`, every rank's batch (each rank's merged
/// moments gathered, then merged in rank order: the same bits on every rank).
pub(super) fn train(
    x: &Tensor,
    (moments, sync): (Option<&Tensor>, Option<&SharedComm>),
    (n, c, s): (usize, usize, usize),
    (weight, bias): (Option<&Tensor>, Option<&Tensor>),
    (running_mean, running_var): (&Tensor, &Tensor),
    (momentum, eps): (f32, f32),
    act: BnAct,
) -> Result<BatchNormTrain> {
    let device = x.device();
    let walk = ChannelWalk::new(device, (n, c, s), max_merged_segments(device))?;
    let walked;
    let max_segments = max_merged_segments(device);
    // Moments in more segments than the statistics may merge (the loop budget lowered
    // since the convolution wrote them) are left for a pass of its own.
    let moments = moments.filter(|m| m.shape().get(1).is_some_and(|&s| s <= max_segments));
    let partial = match moments {
        Some(partial) => {
            if partial.shape() != [c, partial.shape()[1], 3] {
                return Err(Error::Internal(format!(
                    "batch norm: moments shaped {:?} for {c} channels",
                    partial.shape()
                )));
            }
            partial
        }
        None => {
            walked = x.uninit_like(&[c, walk.segments, 3])?;
            device.dispatch(
                walk.kernel(&MOMENTS),
                "main",
                &[],
                &[x.buffer(), walked.buffer()],
                &walk.words(),
                walk.launch(),
            )?;
            &walked
        }
    };
    let mut count = n * s;
    let gathered;
    let partial = match sync {
        Some(comm) => {
            (gathered, count) = gather_moments(comm, partial, count)?;
            if count <= 1 {
                // Every rank sees the same count, so every rank stops here.
                return Err(Error::InvalidArgument(format!(
                    "batch_norm_train: expected more than 1 value per channel over all \
                     ranks, got {count}"
                )));
            }
            &gathered
        }
        None => partial,
    };
    let segments = partial.shape()[1];
    let stat = || x.uninit_like(&[c]);
    let (save_mean, save_invstd, new_mean, new_var) = (stat()?, stat()?, stat()?, stat()?);
    let coef = x.uninit_like(&[c, 2])?;
    let unbias = count as f32 / (count - 1) as f32;
    let flags = u32::from(weight.is_some()) | u32::from(bias.is_some()) << 1;
    device.dispatch(
        &STATS,
        "main",
        &[("EVAL", 0.0)],
        &[
            partial.buffer(),
            running_mean.buffer(),
            running_var.buffer(),
            weight.unwrap_or(running_mean).buffer(),
            bias.unwrap_or(running_mean).buffer(),
            coef.buffer(),
            save_mean.buffer(),
            save_invstd.buffer(),
            new_mean.buffer(),
            new_var.buffer(),
        ],
        &[
            c as u32,
            segments as u32,
            flags,
            eps.to_bits(),
            momentum.to_bits(),
            unbias.to_bits(),
        ],
        per_channel(c, segments),
    )?;
    let y = apply(x, &walk, &coef, act)?;
    Ok(BatchNormTrain {
        y,
        scale_shift: coef,
        save_mean,
        save_invstd,
        running_mean: new_mean,
        running_var: new_var,
    })
}

/// Evaluation forward of `x` viewed as `[n, c, s]`, with the running statistics.
pub(super) fn eval(
    x: &Tensor,
    (n, c, s): (usize, usize, usize),
    affine: (Option<&Tensor>, Option<&Tensor>),
    running: (&Tensor, &Tensor),
    eps: f32,
    act: BnAct,
) -> Result<Tensor> {
    if x.numel() == 0 {
        return x.uninit_like(x.shape());
    }
    let coef = eval_scale_shift(c, affine, running, eps)?;
    scale_shift(x, (n, c, s), &coef, act)
}

/// The scale and shift per channel, `[c, 2]`, of an evaluation-mode batch norm: its
/// running statistics and affine parameters folded together.
pub(super) fn eval_scale_shift(
    c: usize,
    (weight, bias): (Option<&Tensor>, Option<&Tensor>),
    (running_mean, running_var): (&Tensor, &Tensor),
    eps: f32,
) -> Result<Tensor> {
    let coef = running_mean.uninit_like(&[c, 2])?;
    let flags = u32::from(weight.is_some()) | u32::from(bias.is_some()) << 1;
    // Only the scale and shift are written; any buffers fill the other slots.
    let any = &coef;
    running_mean.device().dispatch(
        &STATS,
        "main",
        &[("EVAL", 1.0)],
        &[
            running_mean.buffer(),
            running_mean.buffer(),
            running_var.buffer(),
            weight.unwrap_or(running_mean).buffer(),
            bias.unwrap_or(running_mean).buffer(),
            coef.buffer(),
            any.buffer(),
            any.buffer(),
            any.buffer(),
            any.buffer(),
        ],
        &[c as u32, 0, flags, eps.to_bits(), 0, 0],
        per_channel(c, 0),
    )?;
    Ok(coef)
}

/// `act(x · scale + shift)` per channel of `x` viewed as `[n, c, s]`, from `coef` `[c, 2]`.
pub(super) fn scale_shift(
    x: &Tensor,
    (n, c, s): (usize, usize, usize),
    coef: &Tensor,
    act: BnAct,
) -> Result<Tensor> {
    if x.numel() == 0 {
        return x.uninit_like(x.shape());
    }
    let walk = ChannelWalk::new(x.device(), (n, c, s), usize::MAX)?;
    apply(x, &walk, coef, act)
}

/// `act(x · scale + shift)` per channel.
fn apply(x: &Tensor, walk: &ChannelWalk, coef: &Tensor, act: BnAct) -> Result<Tensor> {
    let y = x.uninit_like(x.shape())?;
    x.device().dispatch(
        walk.kernel(&APPLY),
        "main",
        &[("ACT", act.code())],
        &[x.buffer(), coef.buffer(), y.buffer()],
        &walk.words(),
        walk.launch(),
    )?;
    Ok(y)
}

/// What the backward reads besides the upstream gradient and the input.
pub(super) struct Saved<'a> {
    /// The mean and invstd the forward normalized with.
    pub mean: &'a Tensor,
    pub invstd: &'a Tensor,
    /// Whether those are the batch's (training: gradients flow through them) or the
    /// running statistics (evaluation: constants).
    pub batch_stats: bool,
    pub weight: Option<&'a Tensor>,
    /// The fused activation, and what its gradient is read off.
    pub fused: Option<(BnAct, MaskFrom<'a>)>,
    /// The ranks whose batches the batch statistics spanned (sync batch norm).
    pub sync: Option<&'a SharedComm>,
}

/// Where a fused activation passed its input: read off the forward's output, or
/// recomputed from the input with the forward's scale and shift per channel (`[C, 2]`),
/// which saves reading the output.
#[derive(Clone, Copy)]
pub(super) enum MaskFrom<'a> {
    Output(&'a Tensor),
    Input(&'a Tensor),
}

/// `(dx, dweight, dbias)` of `x` viewed as `[n, c, s]` from `grad_y`. With `reuse` (the
/// caller owns `grad_y` alone: see [`Tensor::is_sole_owner`]) dx is written over
/// `grad_y`, which saves lavapipe a third of the last pass; else into a new tensor.
pub(super) fn backward(
    grad_y: &Tensor,
    x: &Tensor,
    (n, c, s): (usize, usize, usize),
    saved: Saved,
    reuse: bool,
) -> Result<(Tensor, Tensor, Tensor)> {
    let device = x.device();
    if x.numel() == 0 {
        let zeros = || Tensor::zeros(device, &[c]);
        return Ok((x.uninit_like(x.shape())?, zeros()?, zeros()?));
    }
    let (mean, invstd) = (saved.mean, saved.invstd);
    let walk = ChannelWalk::new(device, (n, c, s), max_merged_segments(device))?;
    // What the kernels do not read, any buffer fills: x for tensors of units, mean for
    // per-channel ones.
    let (act, y, scale_shift) = match saved.fused {
        None => (BnAct::Identity, x, mean),
        Some((act, MaskFrom::Output(y))) => (act, y, mean),
        Some((act, MaskFrom::Input(scale_shift))) => (act, x, scale_shift),
    };
    let from_input = matches!(saved.fused, Some((_, MaskFrom::Input(_))));
    let overrides = [
        ("ACT", act.code()),
        ("MASK_FROM_INPUT", f64::from(u8::from(from_input))),
    ];
    let partial = x.uninit_like(&[c, walk.segments, 2])?;
    device.dispatch(
        walk.kernel(&GRAD_SUMS),
        "main",
        &overrides,
        &[
            grad_y.buffer(),
            x.buffer(),
            y.buffer(),
            mean.buffer(),
            invstd.buffer(),
            scale_shift.buffer(),
            partial.buffer(),
        ],
        &walk.words(),
        walk.launch(),
    )?;
    let coef = x.uninit_like(&[c, 4])?;
    let (dweight, dbias) = (x.uninit_like(&[c])?, x.uninit_like(&[c])?);
    let grad_coef = |partial: &Tensor, count: usize, (dweight, dbias): (&Tensor, &Tensor)| {
        let segments = partial.shape()[1];
        device.dispatch(
            &GRAD_COEF,
            "main",
            &[("EVAL", f64::from(u8::from(!saved.batch_stats)))],
            &[
                partial.buffer(),
                mean.buffer(),
                invstd.buffer(),
                saved.weight.unwrap_or(mean).buffer(),
                dweight.buffer(),
                dbias.buffer(),
                coef.buffer(),
            ],
            &[
                c as u32,
                segments as u32,
                u32::from(saved.weight.is_some()),
                (count as f32).to_bits(),
            ],
            per_channel(c, segments),
        )
    };
    // The affine parameters' gradients are this rank's own sums (the trainer averages
    // them over the ranks, as every parameter's).
    grad_coef(&partial, n * s, (&dweight, &dbias))?;
    if let Some(comm) = saved.sync {
        // dx's coefficients from the sums over every rank's batch: the statistics were
        // of all of them.
        let (total, count) = sum_over_ranks(comm, &partial, n * s)?;
        let unused = (x.uninit_like(&[c])?, x.uninit_like(&[c])?);
        grad_coef(&total, count, (&unused.0, &unused.1))?;
    }
    // The last pass binds grad_y writable: a copy when it shares storage with what the
    // pass reads (wgpu refuses a buffer bound both writable and read-only).
    let copy;
    let grad_y = if [x, y, scale_shift].iter().any(|t| grad_y.shares_storage(t)) {
        copy = grad_y.add_scalar(0.0)?;
        &copy
    } else {
        grad_y
    };
    let dx = if reuse {
        grad_y.clone()
    } else {
        x.uninit_like(x.shape())?
    };
    device.dispatch(
        walk.kernel(&GRAD_INPUT),
        "main",
        &overrides,
        &[
            grad_y.buffer(),
            x.buffer(),
            y.buffer(),
            coef.buffer(),
            scale_shift.buffer(),
            dx.buffer(),
        ],
        &walk.words(),
        walk.launch(),
    )?;
    Ok((dx, dweight, dbias))
}
