//! Matrix products, 2-D and batched, with either operand transposed.
//! Kernels: `shaders/matmul_pack.wgsl`, then one of `shaders/matmul_tiled.wgsl` (real
//! GPUs: workgroup-memory tiles), `shaders/matmul_subgroup.wgsl` (8-wide subgroups, as on
//! lavapipe) or `shaders/matmul.wgsl` (portable registers-only fallback).
//!
//! All matmul kernels read A as `[M, K]` rows and B as `[N, K]` rows, K contiguous as
//! vec4s. An operand already in that layout (K contiguous, K a multiple of 4) is read in
//! place; any other is first packed (transposed and zero-padded) into a temporary, which
//! costs O((M + N)·K) against the product's O(M·N·K).

use crate::error::{Result, arg_err, shape_err};
use crate::gpu::{Grid, Kernel, PooledBuffer, kernel};
use crate::tensor::Tensor;

const PACK: Kernel = kernel!("matmul_pack.wgsl");
const MATMUL: Kernel = kernel!("matmul.wgsl");
const MATMUL_SUBGROUP: Kernel = kernel!("matmul_subgroup.wgsl");
const MATMUL_TILED: Kernel = kernel!("matmul_tiled.wgsl");
/// Subgroups (y) per workgroup of the register kernels: the `WG_Y` override. A workgroup
/// computes `8·WG_Y` rows × 64 columns. (8 and 2..16 measured the same on lavapipe.)
const WG_Y: u32 = 8;
/// vec4s of K staged per step by the tiled kernel: its `K4_TILE` override.
const K4_TILE: u32 = 4;

/// Which matmul kernel to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MatmulKernel {
    /// The subgroup kernel where subgroups are exactly 8 wide, else the tiled kernel on
    /// hardware GPUs and the portable one on software adapters.
    #[default]
    Auto,
    /// Registers only, no subgroup operations or workgroup memory: runs on every adapter.
    Portable,
    /// Rows of A shared across 8-wide subgroups; an `Err` on other adapters.
    Subgroup8,
    /// 64×64 tiles staged in workgroup memory: the classic GPU kernel.
    Tiled,
}

impl MatmulKernel {
    /// The concrete kernel `self` means on `device`.
    fn resolve(self, device: &crate::Device) -> Result<MatmulKernel> {
        let summary = device.summary();
        let subgroup8 = summary.subgroup_sizes == Some((8, 8));
        Ok(match self {
            MatmulKernel::Auto if subgroup8 => MatmulKernel::Subgroup8,
            MatmulKernel::Auto if summary.is_software => MatmulKernel::Portable,
            MatmulKernel::Auto => MatmulKernel::Tiled,
            MatmulKernel::Subgroup8 if !subgroup8 => {
                return arg_err!(
                    "matmul: the Subgroup8 kernel needs 8-wide subgroups; this adapter has \
                     subgroup sizes {:?}",
                    summary.subgroup_sizes
                );
            }
            other => other,
        })
    }

    /// Shader, override constants, and the rows × columns of C one workgroup computes.
    fn launch(self) -> (&'static Kernel, [(&'static str, f64); 1], usize, usize) {
        match self {
            MatmulKernel::Tiled => (&MATMUL_TILED, [("K4_TILE", K4_TILE as f64)], 64, 64),
            MatmulKernel::Subgroup8 => (
                &MATMUL_SUBGROUP,
                [("WG_Y", WG_Y as f64)],
                8 * WG_Y as usize,
                64,
            ),
            MatmulKernel::Portable | MatmulKernel::Auto => {
                (&MATMUL, [("WG_Y", WG_Y as f64)], 8 * WG_Y as usize, 64)
            }
        }
    }
}

/// One operand as the kernels will read it: a buffer of `[batch, rows, k4]` vec4s.
struct Operand<'a> {
    buffer: &'a PooledBuffer,
    batch_stride: usize, // in vec4s; 0 when broadcast over the batch
}

/// Where element (row, k) of the `b`-th matrix lies: `b·batch + row·row_stride + k·col_stride`.
struct View {
    batches: usize,
    rows: usize,
    k: usize,
    batch: usize,
    row_stride: usize,
    col_stride: usize,
}

fn prepare<'a>(t: &'a Tensor, v: View, packed_slot: &'a mut Option<Tensor>) -> Result<Operand<'a>> {
    let broadcast = v.batch == 0;
    if v.col_stride == 1 && v.k.is_multiple_of(4) {
        return Ok(Operand {
            buffer: t.buffer(),
            batch_stride: v.batch / 4,
        });
    }
    let k4 = v.k.div_ceil(4);
    let batches = if broadcast { 1 } else { v.batches };
    let packed = t.uninit_like(&[batches, v.rows, k4 * 4])?;
    let total = (batches * v.rows * k4) as u64;
    t.device().dispatch(
        &PACK,
        "main",
        &[],
        &[t.buffer(), packed.buffer()],
        &[
            total as u32,
            v.rows as u32,
            v.k as u32,
            k4 as u32,
            v.batch as u32,
            v.row_stride as u32,
            v.col_stride as u32,
        ],
        Grid::for_items(total, 256),
    )?;
    let slot = packed_slot.insert(packed);
    Ok(Operand {
        buffer: slot.buffer(),
        batch_stride: if broadcast { 0 } else { v.rows * k4 },
    })
}

/// `op(a) · op(b)` where `op` transposes the last two dimensions when asked. Leading
/// (batch) dimensions must match, or one side has none or only size-1 ones (broadcast).
pub fn matmul_with(
    a: &Tensor,
    b: &Tensor,
    transpose_a: bool,
    transpose_b: bool,
    which: MatmulKernel,
) -> Result<Tensor> {
    a.check_same_device(b, "matmul")?;
    let (sa, sb) = (a.shape(), b.shape());
    if sa.len() < 2 || sb.len() < 2 {
        return shape_err!("matmul: operands need at least 2 dims, got {sa:?} and {sb:?}");
    }
    let (ra, ca) = (sa[sa.len() - 2], sa[sa.len() - 1]);
    let (rb, cb) = (sb[sb.len() - 2], sb[sb.len() - 1]);
    let (m, k) = if transpose_a { (ca, ra) } else { (ra, ca) };
    let (kb, n) = if transpose_b { (cb, rb) } else { (rb, cb) };
    if k != kb {
        return shape_err!(
            "matmul: inner dimensions differ: {sa:?}{} · {sb:?}{} is {m}x{k} · {kb}x{n}",
            if transpose_a { "ᵀ" } else { "" },
            if transpose_b { "ᵀ" } else { "" },
        );
    }
    let (batch_a, batch_b) = (&sa[..sa.len() - 2], &sb[..sb.len() - 2]);
    let (count_a, count_b) = (
        batch_a.iter().product::<usize>(),
        batch_b.iter().product::<usize>(),
    );
    let out_batch: &[usize] =
        if batch_a == batch_b || count_b == 1 && batch_b.len() <= batch_a.len() {
            batch_a
        } else if count_a == 1 && batch_a.len() <= batch_b.len() {
            batch_b
        } else {
            return shape_err!("matmul: batch dimensions of {sa:?} and {sb:?} do not match");
        };
    let batches: usize = out_batch.iter().product();
    let mut out_shape = out_batch.to_vec();
    out_shape.extend([m, n]);
    let out = a.uninit_like(&out_shape)?;
    if out.numel() == 0 {
        return Ok(out);
    }

    let which = which.resolve(a.device())?;
    let (kernel, overrides, tile_rows, tile_cols) = which.launch();

    let broadcast_a = count_a == 1 && batches > 1;
    let broadcast_b = count_b == 1 && batches > 1;
    let view_a = View {
        batches,
        rows: m,
        k,
        batch: if broadcast_a { 0 } else { m * k },
        row_stride: if transpose_a { 1 } else { k },
        col_stride: if transpose_a { m } else { 1 },
    };
    let view_b = View {
        batches,
        rows: n,
        k,
        batch: if broadcast_b { 0 } else { n * k },
        row_stride: if transpose_b { k } else { 1 },
        col_stride: if transpose_b { 1 } else { n },
    };
    let (mut slot_a, mut slot_b) = (None, None);
    let pa = prepare(a, view_a, &mut slot_a)?;
    let pb = prepare(b, view_b, &mut slot_b)?;
    let grid = Grid::Xyz([
        n.div_ceil(tile_cols) as u32,
        m.div_ceil(tile_rows) as u32,
        batches as u32,
    ]);
    a.device().dispatch(
        kernel,
        "main",
        &overrides,
        &[pa.buffer, pb.buffer, out.buffer()],
        &[
            m as u32,
            n as u32,
            k.div_ceil(4) as u32,
            pa.batch_stride as u32,
            pb.batch_stride as u32,
            (m * n) as u32,
        ],
        grid,
    )?;
    Ok(out)
}

impl Tensor {
    /// `self · other` (`[.., M, K] · [.., K, N] → [.., M, N]`).
    pub fn matmul(&self, other: &Tensor) -> Result<Tensor> {
        matmul_with(self, other, false, false, MatmulKernel::Auto)
    }

    /// `self · otherᵀ` (`[.., M, K] · [.., N, K]ᵀ`), as in a linear layer `x · Wᵀ`.
    pub fn matmul_nt(&self, other: &Tensor) -> Result<Tensor> {
        matmul_with(self, other, false, true, MatmulKernel::Auto)
    }

    /// `selfᵀ · other` (`[.., K, M]ᵀ · [.., K, N]`), as in a weight gradient `gᵀ · x`.
    pub fn matmul_tn(&self, other: &Tensor) -> Result<Tensor> {
        matmul_with(self, other, true, false, MatmulKernel::Auto)
    }
}
