//! Matrix products, 2-D and batched, with either operand transposed.
//! Kernels: `shaders/matmul_pack.wgsl`, `shaders/matmul.wgsl`, `shaders/matmul_subgroup.wgsl`.
//!
//! Both matmul kernels read A as `[M, K]` rows and B as `[N, K]` rows, K contiguous as
//! vec4s. An operand already in that layout (K contiguous, K a multiple of 4) is read in
//! place; any other is first packed (transposed and zero-padded) into a temporary, which
//! costs O((M + N)·K) against the product's O(M·N·K).

use crate::error::{Result, arg_err, shape_err};
use crate::gpu::{Grid, Kernel, PooledBuffer, kernel};
use crate::tensor::Tensor;

const PACK: Kernel = kernel!("matmul_pack.wgsl");
const MATMUL: Kernel = kernel!("matmul.wgsl");
const MATMUL_SUBGROUP: Kernel = kernel!("matmul_subgroup.wgsl");

/// Subgroups (y) per workgroup: the `WG_Y` override. A workgroup computes a tile of
/// `8·WG_Y` rows × 64 columns.
const WG_Y: u32 = 8;
const TILE_ROWS: usize = 8 * WG_Y as usize;
const TILE_COLS: usize = 64;

/// Which matmul kernel to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MatmulKernel {
    /// The subgroup kernel where subgroups are exactly 8 wide, else the portable one.
    #[default]
    Auto,
    /// Registers only, no subgroup operations: runs on every adapter.
    Portable,
    /// Rows of A shared across 8-wide subgroups; an `Err` on other adapters.
    Subgroup8,
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

    let kernel = match (which, a.device().summary().subgroup_sizes) {
        (MatmulKernel::Portable, _) => &MATMUL,
        (MatmulKernel::Auto | MatmulKernel::Subgroup8, Some((8, 8))) => &MATMUL_SUBGROUP,
        (MatmulKernel::Auto, _) => &MATMUL,
        (MatmulKernel::Subgroup8, sizes) => {
            return arg_err!(
                "matmul: the Subgroup8 kernel needs 8-wide subgroups; this adapter has {sizes:?}"
            );
        }
    };

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
        n.div_ceil(TILE_COLS) as u32,
        m.div_ceil(TILE_ROWS) as u32,
        batches as u32,
    ]);
    a.device().dispatch(
        kernel,
        "main",
        &[("WG_Y", WG_Y as f64)],
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
