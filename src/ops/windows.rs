//! Tensors larger than one storage binding.
//!
//! A tensor may be as large as one buffer (`max_buffer_size`: 2 GiB on lavapipe), but a
//! kernel sees at most `max_storage_buffer_binding_size` bytes of each operand (128 MiB
//! on lavapipe and in WebGPU's defaults): AlexNet's and VGG's first classifier weights
//! pass it. Ops bind such tensors in windows ([`Tensor::window`]): elementwise ops and
//! optimizer updates run once per range of elements ([`for_each_window`]), matrix
//! products once per block of rows (`ops::matmul`). A window starts at a multiple of the
//! adapter's storage offset alignment. An op that does not split its operands gets a
//! clear `Err` from the launch, never a validation failure.

use std::ops::Range;

use crate::error::{Error, Result};
use crate::gpu::Device;
use crate::tensor::Tensor;

/// Whether a tensor of `elements` f32s fits one binding as it is.
pub(crate) fn fits(device: &Device, elements: usize) -> bool {
    (elements as u64 * 4).next_multiple_of(16) <= device.limits().max_storage_buffer_binding_size
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The most rows of `row_len` elements one window may hold: every multiple of the count
/// starts aligned, the count is a multiple of `multiple_of`, and that many rows of
/// `bound_len` elements (a row as some kernel binds it, e.g. padded to vec4s) fit one
/// binding. An `Err` when not even one step of rows fits.
pub(crate) fn rows_per_window(
    device: &Device,
    row_len: usize,
    multiple_of: usize,
    bound_len: usize,
) -> Result<usize> {
    let limits = device.limits();
    let align = (limits.min_storage_buffer_offset_alignment as usize).max(4);
    let row_bytes = row_len.max(1) * 4;
    let aligned_rows = align / gcd(row_bytes, align);
    let step = aligned_rows / gcd(aligned_rows, multiple_of) * multiple_of;
    // Windows are bound rounded up to 16 bytes: keep that inside the limit.
    let usable = limits.max_storage_buffer_binding_size.saturating_sub(15) as usize;
    let bound_bytes = bound_len.max(row_len).max(1) * 4;
    let rows = usable / bound_bytes / step * step;
    if rows == 0 {
        return Err(Error::TooLarge {
            what: format!("{step} rows of {bound_len} elements (the smallest window)"),
            bytes: (step * bound_bytes) as u64,
            limit: limits.max_storage_buffer_binding_size,
        });
    }
    Ok(rows)
}

/// Ranges of `0..n` that each fit one binding, starting aligned; one range when all fit.
pub(crate) fn element_ranges(device: &Device, n: usize) -> Result<Vec<Range<usize>>> {
    if fits(device, n) {
        return Ok(std::iter::once(0..n).collect());
    }
    let step = rows_per_window(device, 1, 1, 1)?;
    Ok((0..n)
        .step_by(step)
        .map(|start| start..(start + step).min(n))
        .collect())
}

/// Runs `f` on the same range of elements of every tensor in `tensors` (all of one
/// element count), for each range that fits one binding; once, on the tensors
/// themselves, when they fit. For elementwise work.
pub(crate) fn for_each_window(
    tensors: &[&Tensor],
    mut f: impl FnMut(&[Tensor]) -> Result<()>,
) -> Result<()> {
    let Some(first) = tensors.first() else {
        return Ok(());
    };
    let n = first.numel();
    if let Some(t) = tensors.iter().find(|t| t.numel() != n) {
        return Err(Error::Internal(format!(
            "for_each_window: {:?} and {:?} differ in size",
            first.shape(),
            t.shape()
        )));
    }
    let ranges = element_ranges(first.device(), n)?;
    if ranges.len() == 1 {
        let whole: Vec<Tensor> = tensors.iter().map(|&t| t.clone()).collect();
        return f(&whole);
    }
    for range in ranges {
        let windows = tensors
            .iter()
            .map(|t| t.window(range.start, &[range.len()]))
            .collect::<Result<Vec<_>>>()?;
        f(&windows)?;
    }
    Ok(())
}
