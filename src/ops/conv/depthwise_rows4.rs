//! Depthwise convolution on rows of vec4s: the forward, the input gradient and the weight
//! gradient of a depthwise convolution (one input and one output channel per group,
//! dilation 1, column stride 1 or 2) whose planes are a multiple of 4 wide — MobileNet's,
//! EfficientNet's and ShuffleNet's at most sizes. Kernels: `shaders/depthwise_strips.wgsl`,
//! `shaders/conv_depthwise_rows4.wgsl` (forward, stride-1 input gradient),
//! `shaders/conv_depthwise_rows4_grad_input.wgsl` (stride-2 input gradient),
//! `shaders/conv_depthwise_rows4_grad.wgsl` (weight gradient).
//!
//! The same sliding window as `direct.rs`, over chunks of 4 columns: per 4 outputs, one
//! vec4 load per kernel row and column stride, and one vec4 store. On lavapipe, whose
//! loads and stores each loop over the lanes, MobileNetV2-CIFAR's depthwise forwards and
//! input gradients took 342 ms of a step instead of 452, its weight gradients 228 instead
//! of 351 (docs/performance.md). Shapes it does not take go to `direct.rs`.

use super::Geometry;
use crate::error::Result;
use crate::gpu::{Grid, Kernel, kernel};
use crate::ops::norm::BnAct;
use crate::ops::reduce::{Reduction, reduce_with};
use crate::ops::segments::{Segments, items_within};
use crate::tensor::Tensor;

const FORWARD: Kernel = kernel!("conv_depthwise_rows4.wgsl");
const WEIGHT_GRAD: Kernel = kernel!("conv_depthwise_rows4_grad.wgsl");
const GATHER: Kernel = kernel!("conv_depthwise_rows4_grad_input.wgsl");
/// Invocations per workgroup of the forward (`WG`) and the weight gradient (`REDUCE_WG`).
const FORWARD_WG: u64 = 64;
const GRAD_WG: u64 = 64;
/// Register budgets of the WGSL (`KH_MAX`, `TAPS_MAX`).
const KH_MAX: usize = 7;
const TAPS_MAX: usize = 49;

/// A stride-(sh, sw) correlation of `src` planes with a `kh × kw` kernel: what one launch
/// of the forward kernel computes, widths in floats.
#[derive(Clone, Copy, Debug)]
struct Slide {
    kh: usize,
    kw: usize,
    src: (usize, usize),
    dst: (usize, usize),
    stride: (usize, usize),
    pad: (usize, usize),
}

impl Slide {
    /// Whether the strips reach every tap (see `depthwise_strips.wgsl`) and the rows are
    /// whole chunks.
    fn fits(&self) -> bool {
        let (sw, pw) = (self.stride.1, self.pad.1);
        self.kh <= KH_MAX
            && self.kh * self.kw <= TAPS_MAX
            && (sw == 1 || sw == 2)
            && self.src.1.is_multiple_of(4)
            && self.dst.1.is_multiple_of(4)
            && self.src.1 > 0
            && self.dst.1 > 0
            && pw <= 4
            && self.kw <= pw + sw + 4
    }

    /// Whether the column-stride-2 input gradient's strips (`dy` chunks m - 1..=m + 1 for
    /// dx chunks 2m and 2m + 1: `conv_depthwise_rows4_grad_input.wgsl`) reach every tap.
    /// `self` is the convolution's forward slide.
    fn gather_fits(&self) -> bool {
        let pw = self.pad.1;
        self.kh <= KH_MAX
            && self.kh * self.kw <= TAPS_MAX
            && self.stride.1 == 2
            && self.src.1.is_multiple_of(4)
            && self.dst.1.is_multiple_of(4)
            && self.src.1 > 0
            && self.dst.1 > 0
            && pw <= 4
            && self.kw <= pw + 9
    }

    /// The gather's loop iterations: `(fixed, per pair of chunks)`, each loop counted in
    /// full with one more for each time it starts (see [`crate::gpu::loops`]): per pair
    /// the slide (kh + 1) and two chunks, each kh + 1 + kh·(kw + 1) + 5·kh·kw.
    fn gather_cost(&self) -> (u64, u64) {
        let (kh, kw) = (self.kh as u64, self.kw as u64);
        let taps = kh * kw;
        (2 * taps + 6 * kh + 24, 4 + 5 * kh + 12 * taps)
    }

    /// Loop iterations of the forward as lavapipe counts them, each loop in full with one
    /// more for each time it starts: `(fixed, per chunk)`. Per chunk: the slide
    /// (kh·(sw + 2) + 1) and the taps (2·kh + 1 + 6·kh·kw); fixed per row: the weights,
    /// the strips' first load and the loops' starts.
    fn loop_cost(&self) -> (u64, u64) {
        let (kh, kw, sw) = (self.kh as u64, self.kw as u64, self.stride.1 as u64);
        let taps = kh * kw;
        (2 * taps + kh * (sw + 4) + 24, 3 + kh * (sw + 4) + 6 * taps)
    }

    fn overrides(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("KH", self.kh as f64),
            ("KW", self.kw as f64),
            ("STRIDE_W", self.stride.1 as f64),
            ("PAD_W", self.pad.1 as f64),
        ]
    }

    /// The Params words (`depthwise_strips.wgsl`), the last five for the weight gradient
    /// and the folded batch norm.
    fn words(
        &self,
        channels: usize,
        total: usize,
        segments: Segments,
        rest: [usize; 4],
    ) -> Vec<u32> {
        [
            total,
            channels,
            self.src.0,
            self.src.1 / 4,
            self.dst.0,
            self.dst.1 / 4,
            self.stride.0,
            self.pad.0,
            segments.count,
            segments.len,
            rest[0],
            rest[1],
            rest[2],
            rest[3],
        ]
        .iter()
        .map(|&v| v as u32)
        .collect()
    }
}

fn is_plain_depthwise(g: &Geometry) -> bool {
    g.is_depthwise() && g.c_out == g.c_in && g.p.dilation == (1, 1)
}

/// The forward's slide.
fn forward_slide(g: &Geometry) -> Slide {
    Slide {
        kh: g.kh,
        kw: g.kw,
        src: (g.h, g.w),
        dst: (g.ho, g.wo),
        stride: g.p.stride,
        pad: g.p.padding,
    }
}

/// The input gradient's slide: the flipped kernel over `dy`, spread out to stride 1
/// (its rows padded with zeros to whole chunks) when the convolution is strided.
fn input_grad_slide(g: &Geometry) -> Option<Slide> {
    let (sh, sw) = g.p.stride;
    let (hu, wu) = (
        (g.ho - 1) * sh + 1,
        ((g.wo - 1) * sw + 1).next_multiple_of(4),
    );
    (g.p.padding.0 < g.kh && g.p.padding.1 < g.kw).then(|| Slide {
        kh: g.kh,
        kw: g.kw,
        src: (hu, wu),
        dst: (g.h, g.w),
        stride: (1, 1),
        pad: (g.kh - 1 - g.p.padding.0, g.kw - 1 - g.p.padding.1),
    })
}

fn within_budget(slide: &Slide, budget: u64) -> bool {
    let (fixed, per_chunk) = slide.loop_cost();
    items_within(budget, fixed, per_chunk).is_some()
}

/// Whether these kernels take the forward (and the weight gradient, whose loops are the
/// forward's plus a fixed reduction).
pub(super) fn supports(g: &Geometry, budget: u64) -> bool {
    let slide = forward_slide(g);
    is_plain_depthwise(g) && slide.fits() && within_budget(&slide, budget) && {
        let (fixed, per_item, per_chunk) = weight_grad_cost(&slide);
        items_within(budget, fixed + per_item, per_chunk).is_some()
    }
}

/// Whether the input gradient is gathered straight from dy (column stride 2).
fn gathers_input_grad(g: &Geometry, budget: u64) -> bool {
    let slide = forward_slide(g);
    let (fixed, per_pair) = slide.gather_cost();
    is_plain_depthwise(g) && slide.gather_fits() && items_within(budget, fixed, per_pair).is_some()
}

/// Whether they take the input gradient.
pub(super) fn supports_input_grad(g: &Geometry, budget: u64) -> bool {
    gathers_input_grad(g, budget)
        || is_plain_depthwise(g)
            && input_grad_slide(g).is_some_and(|s| s.fits() && within_budget(&s, budget))
}

/// Invocations the forward aims for at least, so a GPU has work for all its cores; past
/// that, an invocation takes several rows and loads its weights once for them.
const FORWARD_INVOCATIONS: usize = 16_384;

/// One launch of the forward kernel over `src` into `dst`; with `moments` it also
/// writes the moments of every channel of `dst` (see [`forward_moments`]) there, planned
/// by `plan`.
fn slide_rows(
    slide: &Slide,
    channels: usize,
    tensors: (&Tensor, &Tensor, &Tensor),
    (flip, scale_shift): (bool, Option<(usize, BnAct)>),
    (plan, moments): (&RowPlan, Option<&Tensor>),
) -> Result<()> {
    let mut overrides = slide.overrides();
    overrides.push(("FLIP", f64::from(u8::from(flip))));
    overrides.push(("MOMENTS", f64::from(u8::from(moments.is_some()))));
    let mut coef_offset = 0;
    if let Some((offset, act)) = scale_shift {
        overrides.extend([("SCALE_SHIFT", 1.0), ("ACT", act.code())]);
        coef_offset = offset;
    }
    // Without moments, dst fills their binding (bound writable twice, which wgpu allows)
    // and the kernel never touches it.
    let extra = moments.unwrap_or(tensors.2);
    launch_rows(
        (&FORWARD, overrides),
        slide,
        channels,
        tensors,
        plan,
        (coef_offset, Some(extra)),
    )
}

/// How a launch of a kernel walking destination rows covers them: `rows_per` whole
/// rows per invocation, or one range of `segments.len` steps of one long row.
struct RowPlan {
    rows: usize,
    rows_per: usize,
    segments: Segments,
    /// Loop iterations of one invocation.
    trips: u64,
}

impl RowPlan {
    /// The plan for `rows` destination rows of `steps.0` steps each (chunks, or pairs of
    /// them), `steps.1` being the kernel's loop cost `(fixed, per step)`. With
    /// `in_planes`, an invocation's rows lie in one plane of `plane_rows` rows (for the
    /// moments, which are per channel).
    fn new(
        rows: usize,
        plane_rows: usize,
        budget: u64,
        (steps, (fixed, per_step)): (usize, (u64, u64)),
        in_planes: bool,
    ) -> RowPlan {
        let max_steps = items_within(budget, fixed, per_step).unwrap_or(1);
        let segments = Segments::split(steps, max_steps);
        // Several rows per invocation only when whole rows fit, each row paying the fixed
        // cost again (weights and strips).
        let row_cost = fixed + steps as u64 * per_step;
        let mut rows_per = if segments.count == 1 {
            items_within(budget, 0, row_cost)
                .unwrap_or(1)
                .min(rows.div_ceil(FORWARD_INVOCATIONS))
                .max(1)
        } else {
            1
        };
        if in_planes {
            rows_per = (1..=rows_per.min(plane_rows))
                .rev()
                .find(|r| plane_rows.is_multiple_of(*r))
                .unwrap_or(1);
        }
        let trips = rows_per as u64 * (fixed + segments.len as u64 * per_step);
        RowPlan {
            rows,
            rows_per,
            segments,
            trips,
        }
    }

    /// Invocations of the launch.
    fn total(&self) -> usize {
        self.rows.div_ceil(self.rows_per) * self.segments.count
    }

    /// Moments segments per channel of `samples` samples with planes of `plane_rows`
    /// rows (a multiple of `rows_per`).
    fn moment_segments(&self, samples: usize, plane_rows: usize) -> usize {
        samples * (plane_rows / self.rows_per) * self.segments.count
    }
}

/// One launch of a kernel that walks destination rows as `plan` says. `extra` fills the
/// binding after the destination, for the kernels that have one.
fn launch_rows(
    (kernel, overrides): (&Kernel, Vec<(&'static str, f64)>),
    slide: &Slide,
    channels: usize,
    (src, weight, dst): (&Tensor, &Tensor, &Tensor),
    plan: &RowPlan,
    (coef_offset, extra): (usize, Option<&Tensor>),
) -> Result<()> {
    let total = plan.total();
    let mut buffers = vec![src.buffer(), weight.buffer(), dst.buffer()];
    buffers.extend(extra.map(Tensor::buffer));
    src.device().dispatch(
        kernel,
        "main",
        &overrides,
        &buffers,
        &slide.words(
            channels,
            total,
            plan.segments,
            [0, plan.rows_per, plan.rows, coef_offset],
        ),
        Grid::for_items(total as u64, FORWARD_WG).trips(plan.trips),
    )
}

/// The forward's plan of rows.
fn forward_plan(g: &Geometry, slide: &Slide, budget: u64, in_planes: bool) -> RowPlan {
    let rows = g.n * g.c_in * slide.dst.0;
    let steps = (slide.dst.1 / 4, slide.loop_cost());
    RowPlan::new(rows, slide.dst.0, budget, steps, in_planes)
}

/// The forward. With `fold = Some((offset, act))` each result ends in
/// `act(v · scale + shift)` per channel, `w` holding the weights, then from `offset` a
/// scale and shift per channel.
pub(super) fn forward(
    g: &Geometry,
    x: &Tensor,
    w: &Tensor,
    fold: Option<(usize, BnAct)>,
) -> Result<Tensor> {
    let y = x.uninit_like(&g.output_shape())?;
    let slide = forward_slide(g);
    let plan = forward_plan(g, &slide, x.device().loop_budget(), false);
    slide_rows(&slide, g.c_in, (x, w, &y), (false, fold), (&plan, None))?;
    Ok(y)
}

/// The forward, with the moments of each output channel (count, mean and M2 per
/// invocation's rows, `[c_out, segments, 3]`) written by the kernel itself: when batch
/// norm can merge that many segments (`max_segments`); `None` otherwise, and nothing ran.
pub(super) fn forward_moments(
    g: &Geometry,
    x: &Tensor,
    w: &Tensor,
    max_segments: usize,
) -> Result<Option<(Tensor, Tensor)>> {
    let slide = forward_slide(g);
    let plan = forward_plan(g, &slide, x.device().loop_budget(), true);
    let segments = plan.moment_segments(g.n, g.ho);
    if segments > max_segments {
        return Ok(None);
    }
    let y = x.uninit_like(&g.output_shape())?;
    let moments = x.uninit_like(&[g.c_out, segments, 3])?;
    let tensors = (x, w, &y);
    slide_rows(
        &slide,
        g.c_in,
        tensors,
        (false, None),
        (&plan, Some(&moments)),
    )?;
    Ok(Some((y, moments)))
}

/// The input gradient: gathered straight from `dy` at column stride 2; else the flipped
/// kernel slid over `dy`, spread out first when the convolution is strided (zeros
/// between its pixels and up to whole chunks).
pub(super) fn input_grad(g: &Geometry, dy: &Tensor, w: &Tensor) -> Result<Tensor> {
    if gathers_input_grad(g, dy.device().loop_budget()) {
        // The kernel's source is dy, its destination dx: the forward's shapes swapped.
        let forward = forward_slide(g);
        let slide = Slide {
            src: forward.dst,
            dst: forward.src,
            ..forward
        };
        let dx = dy.uninit_like(&g.input_shape())?;
        let pairs = (g.w / 4).div_ceil(2);
        let steps = (pairs, forward.gather_cost());
        let budget = dy.device().loop_budget();
        let plan = RowPlan::new(g.n * g.c_in * g.h, g.h, budget, steps, false);
        let kernel = (&GATHER, forward.overrides());
        launch_rows(kernel, &slide, g.c_in, (dy, w, &dx), &plan, (0, None))?;
        return Ok(dx);
    }
    let slide = input_grad_slide(g).expect("checked by supports_input_grad");
    let spread;
    let src = if g.p.stride == (1, 1) && slide.src.1 == g.wo {
        dy
    } else {
        spread = super::direct::spread(g, dy, slide.src)?;
        &spread
    };
    let dx = dy.uninit_like(&g.input_shape())?;
    let rows = g.n * g.c_in * slide.dst.0;
    let steps = (slide.dst.1 / 4, slide.loop_cost());
    let plan = RowPlan::new(rows, slide.dst.0, dy.device().loop_budget(), steps, false);
    slide_rows(&slide, g.c_in, (src, w, &dx), (true, None), (&plan, None))?;
    Ok(dx)
}

/// Loop iterations of the weight gradient: `(fixed, per item, per chunk)` — the final
/// reduction of each tap (a tree of 6 halvings), the strips' load per item (a row
/// piece), the products and the slide per chunk.
fn weight_grad_cost(slide: &Slide) -> (u64, u64, u64) {
    let taps = (slide.kh * slide.kw) as u64;
    let (fixed, per_chunk) = slide.loop_cost();
    (8 * taps + 16, fixed, per_chunk)
}

/// Most items (row pieces) one workgroup takes: several per lane, so the final reduction
/// is amortized, but spread over many workgroups when the batch is large.
const WEIGHT_GRAD_ITEMS: usize = 16 * GRAD_WG as usize;

/// The weight gradient: workgroups per (channel, segment of row pieces), whose partial
/// sums a reduction adds up when a channel has several.
pub(super) fn weight_grad(g: &Geometry, x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    let slide = forward_slide(g);
    let taps = g.kh * g.kw;
    let (fixed, per_item, per_chunk) = weight_grad_cost(&slide);
    let budget = x.device().loop_budget();
    let row_chunks = g.wo / 4;
    let chunk_len = items_within(budget, fixed + per_item, per_chunk)
        .unwrap_or(1)
        .min(row_chunks);
    let pieces = Segments::split(row_chunks, chunk_len);
    let item_cost = per_item + pieces.len as u64 * per_chunk;
    let per_lane = items_within(budget, fixed, item_cost).unwrap_or(1);
    let items = g.n * g.ho * pieces.count;
    let segments = Segments::split(items, (per_lane * GRAD_WG as usize).min(WEIGHT_GRAD_ITEMS));
    let total = g.c_out * segments.count;
    let partial = x.uninit_like(&[g.c_out, segments.count, taps])?;
    x.device().dispatch(
        &WEIGHT_GRAD,
        "main",
        &slide.overrides(),
        &[x.buffer(), dy.buffer(), partial.buffer()],
        &slide.words(
            g.c_in,
            total,
            segments,
            [pieces.len, pieces.count, items, 0],
        ),
        Grid::Linear(total as u64)
            .trips(fixed + segments.len.div_ceil(GRAD_WG as usize) as u64 * item_cost),
    )?;
    let dw = if segments.count == 1 {
        partial
    } else {
        reduce_with(&partial, &[1], false, Reduction::Sum, None, 1.0)?
    };
    dw.reshape(&g.weight_shape())
}
