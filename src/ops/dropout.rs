//! Dropout (PyTorch's `F.dropout`), forward and backward. Kernels: `shaders/dropout.wgsl`,
//! `shaders/dropout_backward.wgsl`.
//!
//! The mask is drawn in the shader from a counter-based hash of (seed, element index), so
//! nothing is uploaded and a seed always redraws the same mask, on every adapter.
//! [`dropout_mask_cpu`] computes the same mask on the CPU.

use crate::error::{Result, arg_err, shape_err};
use crate::gpu::{Grid, Kernel, kernel};
use crate::tensor::Tensor;

const DROPOUT: Kernel = kernel!("dropout.wgsl");
const DROPOUT_BACKWARD: Kernel = kernel!("dropout_backward.wgsl");

/// Invocations per workgroup of both kernels (`WG` in their WGSL).
const WG: u64 = 256;

/// Bits of the hash compared against the threshold: 24, so `p · 2^24` and the comparison
/// are exact in both f32 and u32.
const HASH_BITS: u32 = 24;

fn check_p(op: &str, p: f32) -> Result<()> {
    if !(0.0..=1.0).contains(&p) {
        return arg_err!("{op}: the drop probability p must be in [0, 1], got {p}");
    }
    Ok(())
}

/// The factor kept elements are multiplied by: `1 / (1 - p)`, or 0 when everything is
/// dropped (as PyTorch's `native_dropout_backward`, so `p = 1` gives zeros, not NaN).
fn keep_scale(p: f32) -> f32 {
    if p == 1.0 { 0.0 } else { 1.0 / (1.0 - p) }
}

/// An element is kept when the top 24 bits of its hash are at least this.
fn threshold(p: f32) -> u32 {
    (f64::from(p) * f64::from(1u32 << HASH_BITS)).round() as u32
}

/// The PCG output permutation as a 32-bit hash; mirrors `pcg` in `shaders/dropout.wgsl`.
fn pcg(v: u32) -> u32 {
    let state = v.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277_803_737);
    (word >> 22) ^ word
}

/// Whether element `i` is kept; mirrors `keep` in `shaders/dropout.wgsl`.
fn keeps(seed: u64, i: u32, threshold: u32) -> bool {
    let k0 = pcg(seed as u32);
    let k1 = pcg((seed >> 32) as u32 ^ k0);
    let h = pcg(pcg(i ^ k0) ^ k1);
    h >> (32 - HASH_BITS) >= threshold
}

/// The mask [`dropout`] draws for `numel` elements with drop probability `p` and `seed`,
/// computed on the CPU: 1.0 where an element is kept, 0.0 where it is dropped. For tests
/// and for CPU code that must agree with the GPU.
pub fn dropout_mask_cpu(numel: usize, p: f32, seed: u64) -> Result<Vec<f32>> {
    check_p("dropout_mask_cpu", p)?;
    if u32::try_from(numel).is_err() {
        return arg_err!("dropout_mask_cpu: {numel} elements are more than a tensor can hold");
    }
    let t = threshold(p);
    Ok((0..numel as u32)
        .map(|i| if keeps(seed, i, t) { 1.0 } else { 0.0 })
        .collect())
}

/// Dropout with drop probability `p`, as PyTorch's `F.dropout(x, p, training)`.
///
/// In training each element is dropped (set to 0) with probability `p` and the rest are
/// scaled by `1 / (1 - p)`; returns the output and the 0/1 mask of kept elements (for
/// [`dropout_backward`]). The mask is a hash of `(seed, element index)`: the same seed
/// gives the same mask for tensors of the same size. `p = 1` drops everything (zeros).
///
/// Outside training, or with `p = 0`, returns `x` itself and no mask. An `Err` when `p`
/// is not in `[0, 1]` (NaN included).
pub fn dropout(x: &Tensor, p: f32, training: bool, seed: u64) -> Result<(Tensor, Option<Tensor>)> {
    check_p("dropout", p)?;
    if !training || p == 0.0 {
        return Ok((x.clone(), None));
    }
    let y = x.uninit_like(x.shape())?;
    let mask = x.uninit_like(x.shape())?;
    let n = x.numel() as u64;
    x.device().dispatch(
        &DROPOUT,
        "main",
        &[],
        &[x.buffer(), y.buffer(), mask.buffer()],
        &[
            n as u32,
            seed as u32,
            (seed >> 32) as u32,
            threshold(p),
            keep_scale(p).to_bits(),
        ],
        Grid::for_items(n, WG).trips(0),
    )?;
    Ok((y, Some(mask)))
}

/// Gradient of [`dropout`] in training: `grad_y · mask / (1 - p)` (0 when `p = 1`), with
/// the mask the forward returned and the same `p`. An `Err` when the shapes differ or `p`
/// is not in `[0, 1]`.
pub fn dropout_backward(grad_y: &Tensor, mask: &Tensor, p: f32) -> Result<Tensor> {
    let op = "dropout_backward";
    check_p(op, p)?;
    grad_y.check_same_device(mask, op)?;
    if grad_y.shape() != mask.shape() {
        return shape_err!(
            "{op}: grad_y has shape {:?} but mask has shape {:?}",
            grad_y.shape(),
            mask.shape()
        );
    }
    let dx = grad_y.uninit_like(grad_y.shape())?;
    let n = grad_y.numel() as u64;
    grad_y.device().dispatch(
        &DROPOUT_BACKWARD,
        "main",
        &[],
        &[grad_y.buffer(), mask.buffer(), dx.buffer()],
        &[n as u32, keep_scale(p).to_bits()],
        Grid::for_items(n, WG).trips(0),
    )?;
    Ok(dx)
}
