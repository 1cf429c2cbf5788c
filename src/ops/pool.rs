//! Pooling over `[N, C, H, W]` tensors: max, average, adaptive and global average, forward
//! and backward, with PyTorch's semantics (output sizes, `ceil_mode`, `count_include_pad`,
//! adaptive bins, argmax indices). Kernels: `shaders/pool.wgsl` (average) and
//! `shaders/pool_max.wgsl` (max, which also reads or writes an index buffer).
//!
//! Every backward pass is a gather: one invocation per input element sums over the outputs
//! whose windows can cover it. No atomics, so the result is the same on every run.
//!
//! A window (or a set of covering outputs) longer than the loop budget allows is walked
//! in segments, several invocations per element, whose partial sums a reduction adds up
//! (for max pooling, whose partial maxima `shaders/pool_max_combine.wgsl` combines).

use super::reduce::{Reduction, reduce_with};
use super::segments::{Segments, items_within};
use crate::error::{Result, arg_err, shape_err};
use crate::gpu::{Grid, Kernel, kernel};
use crate::tensor::Tensor;

const AVG: Kernel = kernel!("pool.wgsl");
const MAX: Kernel = kernel!("pool_max.wgsl");
const MAX_COMBINE: Kernel = kernel!("pool_max_combine.wgsl");
/// Loop iterations of a pooling invocation besides its walk (one per position).
const FIXED: u64 = 8;

/// Invocations per workgroup of every pooling kernel (`WG` in the WGSL).
const WG: u64 = 256;

/// The largest input size, kernel, stride, padding or dilation accepted. The kernels index
/// with i32 arithmetic, and sums of a few values this size stay within it.
const MAX_EXTENT: usize = 1 << 28;

/// The window of a 2-D max or average pooling, as PyTorch's `MaxPool2d` / `AvgPool2d`
/// arguments: `(height, width)` pairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2d {
    /// Window size.
    pub kernel: (usize, usize),
    /// Step between windows.
    pub stride: (usize, usize),
    /// Implicit padding on both sides; at most half the kernel.
    pub padding: (usize, usize),
    /// Spacing between the taps of a window (max pooling only; average pooling needs 1).
    pub dilation: (usize, usize),
    /// Round the output size up rather than down (windows that would start in the right
    /// or bottom padding are still dropped).
    pub ceil_mode: bool,
}

impl Pool2d {
    /// A `kernel` window with stride = kernel, no padding, dilation 1, `ceil_mode` off.
    pub fn new(kernel: (usize, usize)) -> Self {
        Pool2d {
            kernel,
            stride: kernel,
            padding: (0, 0),
            dilation: (1, 1),
            ceil_mode: false,
        }
    }

    /// With this stride.
    pub fn stride(mut self, stride: (usize, usize)) -> Self {
        self.stride = stride;
        self
    }

    /// With this padding.
    pub fn padding(mut self, padding: (usize, usize)) -> Self {
        self.padding = padding;
        self
    }

    /// With this dilation.
    pub fn dilation(mut self, dilation: (usize, usize)) -> Self {
        self.dilation = dilation;
        self
    }

    /// With `ceil_mode` on or off.
    pub fn ceil_mode(mut self, ceil_mode: bool) -> Self {
        self.ceil_mode = ceil_mode;
        self
    }

    /// The output `(height, width)` for an input of `(height, width)`, as PyTorch computes
    /// it; an `Err` when the window is invalid or leaves no output.
    pub fn output_size(&self, input: (usize, usize)) -> Result<(usize, usize)> {
        self.check("pool2d")?;
        Ok((
            self.axis_output("pool2d", "height", 0, input.0)?,
            self.axis_output("pool2d", "width", 1, input.1)?,
        ))
    }

    fn axis(&self, axis: usize) -> (usize, usize, usize, usize) {
        let pick = |pair: (usize, usize)| if axis == 0 { pair.0 } else { pair.1 };
        (
            pick(self.kernel),
            pick(self.stride),
            pick(self.padding),
            pick(self.dilation),
        )
    }

    /// PyTorch's argument checks, plus the size limit of the kernels.
    fn check(&self, op: &str) -> Result<()> {
        let Pool2d {
            kernel,
            stride,
            padding,
            dilation,
            ..
        } = *self;
        for (name, (h, w)) in [
            ("kernel", kernel),
            ("stride", stride),
            ("dilation", dilation),
        ] {
            if h == 0 || w == 0 {
                return arg_err!("{op}: {name} {:?} must be positive", (h, w));
            }
        }
        if padding.0 > kernel.0 / 2 || padding.1 > kernel.1 / 2 {
            return arg_err!(
                "{op}: padding {padding:?} must be at most half the kernel {kernel:?}"
            );
        }
        for (name, (h, w)) in [
            ("kernel", kernel),
            ("stride", stride),
            ("padding", padding),
            ("dilation", dilation),
        ] {
            if h > MAX_EXTENT || w > MAX_EXTENT {
                return arg_err!("{op}: {name} {:?} is larger than {MAX_EXTENT}", (h, w));
            }
        }
        Ok(())
    }

    /// The output size along one axis (after [`Pool2d::check`]), PyTorch's formula:
    /// `floor_or_ceil((size + 2p - d(k - 1) - 1) / s) + 1`, less one in ceil mode when the
    /// last window would start in the padding.
    fn axis_output(&self, op: &str, name: &str, axis: usize, size: usize) -> Result<usize> {
        let (k, s, p, d) = self.axis(axis);
        if size > MAX_EXTENT {
            return arg_err!("{op}: input {name} {size} is larger than {MAX_EXTENT}");
        }
        // Every value is at most 2^28, so i64 cannot overflow.
        let (size_i, k_i, s_i, p_i, d_i) = (size as i64, k as i64, s as i64, p as i64, d as i64);
        let span = size_i + 2 * p_i - d_i * (k_i - 1) - 1;
        let round_up = if self.ceil_mode { s_i - 1 } else { 0 };
        let mut out = (span + round_up).div_euclid(s_i) + 1;
        if self.ceil_mode && (out - 1) * s_i >= size_i + p_i {
            out -= 1;
        }
        if out < 1 {
            return arg_err!(
                "{op}: output {name} would be {out}: input {name} {size} with kernel {k}, \
                 stride {s}, padding {p}, dilation {d}"
            );
        }
        Ok(out as usize)
    }

    /// The first output along one axis whose taps all fall in the padding, if any. Only
    /// dilation can make one (a size-1 input, padding 1, dilation 2 reads positions -1 and
    /// 1); PyTorch returns -inf there with an index outside the window, so it is refused.
    fn empty_window(&self, axis: usize, size: usize, out: usize) -> Option<usize> {
        let (k, s, p, d) = self.axis(axis);
        // Windows starting at or after 0 hold their first tap (every window starts inside
        // the input), so only the first few can be empty.
        (0..out).take_while(|&o| o * s < p).find(|&o| {
            let first = (o * s) as i64 - p as i64;
            (0..k as i64)
                .map(|j| first + j * d as i64)
                .all(|at| at < 0 || at >= size as i64)
        })
    }
}

/// How outputs map to input windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Window {
    Fixed(Pool2d),
    /// PyTorch's adaptive bins: output `o` of `out` reads
    /// `floor(o * size / out) .. ceil((o + 1) * size / out)`.
    Adaptive,
}

/// One pooling's shapes and window: what a launch needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Geometry {
    batch: usize,
    channels: usize,
    input: (usize, usize),
    output: (usize, usize),
    window: Window,
}

impl Geometry {
    fn input_shape(&self) -> [usize; 4] {
        [self.batch, self.channels, self.input.0, self.input.1]
    }

    fn output_shape(&self) -> [usize; 4] {
        [self.batch, self.channels, self.output.0, self.output.1]
    }

    /// The most positions one element's walk covers, over both axes: the taps of an
    /// output's window inside the input (forward), or the outputs whose windows cover an
    /// input element (backward).
    fn longest_walk(&self, backward: bool) -> usize {
        let axis = |size: usize, out: usize, k: usize, s: usize, d: usize| match self.window {
            Window::Adaptive if backward => out.div_ceil(size) + 1,
            Window::Adaptive => size.div_ceil(out) + 1,
            Window::Fixed(_) if backward => ((k - 1) * d / s + 1).min(out),
            Window::Fixed(_) => k.min(size.div_ceil(d)),
        };
        let (k, s, d) = match self.window {
            Window::Fixed(w) => (w.kernel, w.stride, w.dilation),
            Window::Adaptive => ((1, 1), (1, 1), (1, 1)),
        };
        axis(self.input.0, self.output.0, k.0, s.0, d.0)
            * axis(self.input.1, self.output.1, k.1, s.1, d.1)
    }

    /// How each element's walk is cut so an invocation stays within `budget`.
    fn segments(&self, backward: bool, budget: u64) -> Segments {
        let per_invocation = items_within(budget, FIXED, 1).unwrap_or(1);
        Segments::split(self.longest_walk(backward), per_invocation)
    }

    /// The kernels' parameter block (see `Params` in `shaders/pool_window.wgsl`).
    fn params(&self, invocations: usize, segments: Segments) -> Vec<u32> {
        let (k, s, p, d) = match self.window {
            Window::Fixed(w) => (w.kernel, w.stride, w.padding, w.dilation),
            // Unused by the adaptive kernels; a stride of 1 keeps every division defined.
            Window::Adaptive => ((1, 1), (1, 1), (0, 0), (1, 1)),
        };
        [
            invocations,
            self.input.0,
            self.input.1,
            self.output.0,
            self.output.1,
            k.0,
            k.1,
            s.0,
            s.1,
            p.0,
            p.1,
            d.0,
            d.1,
            segments.count,
            segments.len,
        ]
        .iter()
        .map(|&v| v as u32)
        .collect()
    }

    fn adaptive(&self) -> f64 {
        f64::from(u8::from(self.window == Window::Adaptive))
    }
}

/// Checks that `shape` is `[N, C, H, W]` with C, H and W non-zero (PyTorch allows only an
/// empty batch).
fn check_input(op: &str, what: &str, shape: &[usize]) -> Result<[usize; 4]> {
    match *shape {
        [n, c, h, w] if c > 0 && h > 0 && w > 0 => Ok([n, c, h, w]),
        [_, _, _, _] => {
            arg_err!("{op}: {what} of shape {shape:?} has an empty channel or spatial dimension")
        }
        _ => arg_err!("{op}: expected an [N, C, H, W] {what}, got shape {shape:?}"),
    }
}

/// The geometry of a fixed-window pooling of an input of `shape`.
fn fixed_geometry(op: &str, shape: &[usize], window: &Pool2d) -> Result<Geometry> {
    let [batch, channels, h, w] = check_input(op, "input", shape)?;
    window.check(op)?;
    let output = (
        window.axis_output(op, "height", 0, h)?,
        window.axis_output(op, "width", 1, w)?,
    );
    for (axis, name, size, out) in [(0, "row", h, output.0), (1, "column", w, output.1)] {
        if let Some(o) = window.empty_window(axis, size, out) {
            return arg_err!(
                "{op}: output {name} {o} covers only padding: input {shape:?}, {window:?}"
            );
        }
    }
    Ok(Geometry {
        batch,
        channels,
        input: (h, w),
        output,
        window: Window::Fixed(*window),
    })
}

/// The geometry of an adaptive pooling of an input of `shape` to `output`.
fn adaptive_geometry(op: &str, shape: &[usize], output: (usize, usize)) -> Result<Geometry> {
    let [batch, channels, h, w] = check_input(op, "input", shape)?;
    if output.0 == 0 || output.1 == 0 {
        return arg_err!("{op}: output size {output:?} must be positive");
    }
    // The kernels compute (size + 1) * (out + 1) in i32 to find bin bounds.
    for (size, out) in [(h, output.0), (w, output.1)] {
        // u128: neither sum nor product can overflow, whatever the sizes.
        if (size as u128 + 1) * (out as u128 + 1) > i32::MAX as u128 {
            return arg_err!(
                "{op}: input {shape:?} to output {output:?} is too large ((size + 1) * (out + 1) \
                 must stay below 2^31)"
            );
        }
    }
    Ok(Geometry {
        batch,
        channels,
        input: (h, w),
        output,
        window: Window::Adaptive,
    })
}

/// Checks that `grad_out` has the shape `geometry`'s forward pass produces.
fn check_grad(op: &str, grad_out: &Tensor, geometry: &Geometry) -> Result<()> {
    let want = geometry.output_shape();
    if grad_out.shape() != want {
        return shape_err!(
            "{op}: grad_out has shape {:?}, but the forward output of input {:?} has shape \
             {want:?}",
            grad_out.shape(),
            geometry.input_shape()
        );
    }
    Ok(())
}

/// Runs a gather `entry` of `kernel` writing `shape` from `src` (and `indices`, for max
/// pooling's backward): one invocation per element, or per segment of its walk with the
/// segments' partial sums added up afterwards.
fn gather(
    (kernel, entry): (&Kernel, &'static str),
    src: &Tensor,
    indices: Option<&Tensor>,
    geometry: &Geometry,
    (shape, backward): ([usize; 4], bool),
    overrides: &[(&'static str, f64)],
) -> Result<Tensor> {
    let segments = geometry.segments(backward, src.device().loop_budget());
    let elements: usize = shape.iter().product();
    let target = if segments.count > 1 {
        src.uninit_like(&[elements, segments.count])?
    } else {
        src.uninit_like(&shape)?
    };
    let invocations = elements * segments.count;
    let mut buffers = vec![src.buffer(), target.buffer()];
    buffers.extend(indices.map(Tensor::buffer));
    src.device().dispatch(
        kernel,
        entry,
        overrides,
        &buffers,
        &geometry.params(invocations, segments),
        Grid::for_items(invocations as u64, WG).trips(FIXED + segments.len as u64),
    )?;
    if segments.count == 1 {
        return Ok(target);
    }
    reduce_with(&target, &[1], false, Reduction::Sum, None, 1.0)?.reshape(&shape)
}

/// Average pooling forward (`src` = input) or backward (`src` = grad_out).
fn launch_avg(
    src: &Tensor,
    geometry: &Geometry,
    backward: bool,
    include_pad: bool,
) -> Result<Tensor> {
    let (entry, shape) = if backward {
        ("avg_backward", geometry.input_shape())
    } else {
        ("avg_forward", geometry.output_shape())
    };
    let overrides = [
        ("ADAPTIVE", geometry.adaptive()),
        ("INCLUDE_PAD", f64::from(u8::from(include_pad))),
    ];
    gather(
        (&AVG, entry),
        src,
        None,
        geometry,
        (shape, backward),
        &overrides,
    )
}

/// Max pooling forward: the maxima and their indices. A window longer than one
/// invocation may walk gives each segment's maximum first, then combines them in window
/// order (in rounds, if even the segments are too many for one invocation).
fn launch_max(x: &Tensor, geometry: Geometry) -> Result<(Tensor, PoolIndices)> {
    let budget = x.device().loop_budget();
    let segments = geometry.segments(false, budget);
    let outputs: usize = geometry.output_shape().iter().product();
    let invocations = outputs * segments.count;
    let mut values = x.uninit_like(&[outputs, segments.count])?;
    let mut indices = x.uninit_like(&[outputs, segments.count])?;
    x.device().dispatch(
        &MAX,
        "max_forward",
        &[("ADAPTIVE", geometry.adaptive())],
        &[x.buffer(), values.buffer(), indices.buffer()],
        &geometry.params(invocations, segments),
        Grid::for_items(invocations as u64, WG).trips(FIXED + segments.len as u64),
    )?;
    let group = items_within(budget, FIXED, 1).unwrap_or(1);
    let mut s_in = segments.count;
    while s_in > 1 {
        let s_out = s_in.div_ceil(group);
        let next_values = x.uninit_like(&[outputs, s_out])?;
        let next_indices = x.uninit_like(&[outputs, s_out])?;
        let n = outputs * s_out;
        x.device().dispatch(
            &MAX_COMBINE,
            "main",
            &[],
            &[
                values.buffer(),
                indices.buffer(),
                next_values.buffer(),
                next_indices.buffer(),
            ],
            &[n as u32, s_in as u32, s_out as u32, group as u32],
            Grid::for_items(n as u64, WG).trips(FIXED + group as u64),
        )?;
        (values, indices, s_in) = (next_values, next_indices, s_out);
    }
    let shape = geometry.output_shape();
    let (y, indices) = (values.reshape(&shape)?, indices.reshape(&shape)?);
    Ok((y, PoolIndices { indices, geometry }))
}

/// Max pooling backward, for indices from either max pooling.
fn max_backward(
    op: &str,
    grad_out: &Tensor,
    indices: &PoolIndices,
    input_shape: &[usize],
) -> Result<Tensor> {
    grad_out.check_same_device(&indices.indices, op)?;
    let geometry = indices.geometry;
    if input_shape != geometry.input_shape() {
        return shape_err!(
            "{op}: input_shape {input_shape:?} is not the shape {:?} the indices were made from",
            geometry.input_shape()
        );
    }
    check_grad(op, grad_out, &geometry)?;
    gather(
        (&MAX, "max_backward"),
        grad_out,
        Some(&indices.indices),
        &geometry,
        (geometry.input_shape(), true),
        &[("ADAPTIVE", geometry.adaptive())],
    )
}

/// Where each output of a max pooling took its value: the flat index `h * W + w` of the
/// maximum within its input plane, as PyTorch's `return_indices`. Opaque: it also remembers
/// the windows and input shape, which the backward pass needs.
#[derive(Clone, Debug)]
pub struct PoolIndices {
    indices: Tensor,
    geometry: Geometry,
}

impl PoolIndices {
    /// The indices as a tensor of the pooled output's shape. Its f32 elements carry u32
    /// indices bit for bit (`f32::to_bits` recovers them); they are not numbers.
    pub fn tensor(&self) -> &Tensor {
        &self.indices
    }

    /// The shape of the pooled output (and of the indices).
    pub fn shape(&self) -> &[usize] {
        self.indices.shape()
    }

    /// The shape of the input that was pooled.
    pub fn input_shape(&self) -> [usize; 4] {
        self.geometry.input_shape()
    }

    /// The indices, read back to the CPU in row-major order. Waits for pending work.
    pub fn to_vec(&self) -> Result<Vec<u32>> {
        Ok(self.indices.to_vec()?.iter().map(|v| v.to_bits()).collect())
    }
}

/// 2-D max pooling of an `[N, C, H, W]` tensor (PyTorch's `max_pool2d` with
/// `return_indices`): the maxima and, per output, the index of its maximum. The first
/// maximum in window order wins, NaN propagates, and padding never wins. A window whose
/// taps all fall in the padding (possible only with dilation) is an `Err`.
pub fn max_pool2d(x: &Tensor, window: &Pool2d) -> Result<(Tensor, PoolIndices)> {
    let geometry = fixed_geometry("max_pool2d", x.shape(), window)?;
    launch_max(x, geometry)
}

/// Gradient of [`max_pool2d`] with respect to its input of shape `input_shape`: each
/// output's gradient goes to the element its index names (summed where windows overlap).
/// Also accepts indices from [`adaptive_max_pool2d`].
pub fn max_pool2d_backward(
    grad_out: &Tensor,
    indices: &PoolIndices,
    input_shape: &[usize],
) -> Result<Tensor> {
    max_backward("max_pool2d_backward", grad_out, indices, input_shape)
}

/// 2-D average pooling of an `[N, C, H, W]` tensor (PyTorch's `avg_pool2d`). With
/// `count_include_pad` the divisor counts the padding (but not the extra positions
/// `ceil_mode` adds past it); without, only input elements. Dilation must be 1.
pub fn avg_pool2d(x: &Tensor, window: &Pool2d, count_include_pad: bool) -> Result<Tensor> {
    let geometry = avg_geometry("avg_pool2d", x.shape(), window)?;
    launch_avg(x, &geometry, false, count_include_pad)
}

/// Gradient of [`avg_pool2d`] with respect to its input of shape `input_shape`.
pub fn avg_pool2d_backward(
    grad_out: &Tensor,
    input_shape: &[usize],
    window: &Pool2d,
    count_include_pad: bool,
) -> Result<Tensor> {
    let op = "avg_pool2d_backward";
    let geometry = avg_geometry(op, input_shape, window)?;
    check_grad(op, grad_out, &geometry)?;
    launch_avg(grad_out, &geometry, true, count_include_pad)
}

fn avg_geometry(op: &str, shape: &[usize], window: &Pool2d) -> Result<Geometry> {
    if window.dilation != (1, 1) {
        return arg_err!(
            "{op}: dilation {:?} is not supported (average pooling has none)",
            window.dilation
        );
    }
    fixed_geometry(op, shape, window)
}

/// Adaptive average pooling of an `[N, C, H, W]` tensor to `[N, C, out_h, out_w]`
/// (PyTorch's `adaptive_avg_pool2d`): output `o` of `out` averages input positions
/// `floor(o * size / out) .. ceil((o + 1) * size / out)` on each axis.
pub fn adaptive_avg_pool2d(x: &Tensor, output: (usize, usize)) -> Result<Tensor> {
    let geometry = adaptive_geometry("adaptive_avg_pool2d", x.shape(), output)?;
    launch_avg(x, &geometry, false, false)
}

/// Gradient of [`adaptive_avg_pool2d`] with respect to its input of shape `input_shape`;
/// the output size is `grad_out`'s.
pub fn adaptive_avg_pool2d_backward(grad_out: &Tensor, input_shape: &[usize]) -> Result<Tensor> {
    let op = "adaptive_avg_pool2d_backward";
    let [_, _, out_h, out_w] = check_input(op, "grad_out", grad_out.shape())?;
    let geometry = adaptive_geometry(op, input_shape, (out_h, out_w))?;
    check_grad(op, grad_out, &geometry)?;
    launch_avg(grad_out, &geometry, true, false)
}

/// Adaptive max pooling of an `[N, C, H, W]` tensor to `[N, C, out_h, out_w]` (PyTorch's
/// `adaptive_max_pool2d` with `return_indices`), over the bins of
/// [`adaptive_avg_pool2d`].
pub fn adaptive_max_pool2d(x: &Tensor, output: (usize, usize)) -> Result<(Tensor, PoolIndices)> {
    let geometry = adaptive_geometry("adaptive_max_pool2d", x.shape(), output)?;
    launch_max(x, geometry)
}

/// Gradient of [`adaptive_max_pool2d`] with respect to its input of shape `input_shape`.
/// Also accepts indices from [`max_pool2d`].
pub fn adaptive_max_pool2d_backward(
    grad_out: &Tensor,
    indices: &PoolIndices,
    input_shape: &[usize],
) -> Result<Tensor> {
    max_backward(
        "adaptive_max_pool2d_backward",
        grad_out,
        indices,
        input_shape,
    )
}

/// Gradient of [`Tensor::global_avg_pool2d`]: `grad_out` of shape `[N, C, 1, 1]` spread
/// evenly over an input of shape `input_shape` (`[N, C, H, W]`).
pub fn global_avg_pool2d_backward(grad_out: &Tensor, input_shape: &[usize]) -> Result<Tensor> {
    let op = "global_avg_pool2d_backward";
    let geometry = adaptive_geometry(op, input_shape, (1, 1))?;
    check_grad(op, grad_out, &geometry)?;
    // Every input element takes its plane's gradient over H·W: a broadcast division
    // (`[N, C, 1, 1]` by `[1, 1, H, W]`), which costs a lavapipe step a tenth of what the
    // windowed kernel's index arithmetic did.
    let [_, _, h, w] = geometry.input_shape();
    let area = Tensor::full(grad_out.device(), &[1, 1, h, w], (h * w) as f32)?;
    grad_out.div(&area)
}
