//! Matrix products whose operands or result pass one storage binding (a classifier weight
//! of 411 MB against lavapipe's 128 MiB): the product is split along one of its
//! dimensions M, N or K into pieces whose big tensors are windows of whole stored rows.
//!
//! Each operand is stored with one dimension outermost: A `[M, K]` (or `[K, M]`
//! transposed), B `[K, N]` (or `[N, K]`), C `[M, N]`. Splitting along that dimension
//! makes every piece of it a contiguous window. The small operands are bound whole and
//! addressed at an offset. Pieces along M and N fill blocks of C; pieces along K are
//! partial products, summed.
//!
//! A linear layer's three products each split one way: `x · Wᵀ` along N (rows of W),
//! `g · W` along K (rows of W), `gᵀ · x` along M (rows of the weight gradient).

use std::ops::Range;

use super::matmul::{MatmulKernel, MatrixView, Output, gemm, pack};
use super::windows::{fits, rows_per_window};
use crate::error::{Result, arg_err};
use crate::tensor::Tensor;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dim {
    M,
    N,
    K,
}

/// One operand: its tensor, whether it passes one binding, the product dimensions of its
/// stored rows and columns, and the stored row length.
struct Operand<'a> {
    tensor: &'a Tensor,
    big: bool,
    outer: Dim,
    inner: Dim,
    row_len: usize,
}

impl Operand<'_> {
    /// The operand's part for `ranges` (of M, N, K): a window of whole stored rows when it
    /// is big, else the whole tensor and an offset; with the strides of its rows (`rows`
    /// dimension) and of K.
    fn piece(&self, ranges: &Ranges, (rows, k): (Dim, Dim)) -> Result<(Tensor, MatrixView)> {
        let outer = ranges.of(self.outer);
        let inner = ranges.of(self.inner);
        let stride = |d: Dim| if d == self.outer { self.row_len } else { 1 };
        let (tensor, offset) = if self.big {
            let window = self
                .tensor
                .window(outer.start * self.row_len, &[outer.len(), self.row_len])?;
            (window, inner.start)
        } else {
            let offset = outer.start * self.row_len + inner.start;
            (self.tensor.clone(), offset)
        };
        let view = MatrixView {
            offset,
            batch_stride: 0,
            batch_mod: 1,
            rows: ranges.of(rows).len(),
            k: ranges.of(k).len(),
            row_stride: stride(rows),
            col_stride: stride(k),
        };
        Ok((tensor, view))
    }
}

/// The part of M, N and K one piece computes.
struct Ranges {
    m: Range<usize>,
    n: Range<usize>,
    k: Range<usize>,
}

impl Ranges {
    fn of(&self, d: Dim) -> Range<usize> {
        match d {
            Dim::M => self.m.clone(),
            Dim::N => self.n.clone(),
            Dim::K => self.k.clone(),
        }
    }
}

/// Whether `op(a) · op(b)` (2-D, `(m, n, k)`) needs windows: some operand or the result
/// passes one binding.
pub(crate) fn needs_windows(a: &Tensor, b: &Tensor, (m, n): (usize, usize)) -> bool {
    let device = a.device();
    !fits(device, a.numel()) || !fits(device, b.numel()) || !fits(device, m * n)
}

/// `op(a) · op(b)` for 2-D `a` and `b`, split so each piece binds at most one binding's
/// worth of each tensor.
pub(crate) fn matmul_in_windows<'a>(
    a: &'a Tensor,
    b: &'a Tensor,
    (transpose_a, transpose_b): (bool, bool),
    (m, n, k): (usize, usize, usize),
    which: MatmulKernel,
) -> Result<Tensor> {
    let device = a.device();
    let operand = |tensor: &'a Tensor, outer: Dim, inner: Dim, row_len| Operand {
        tensor,
        big: !fits(device, tensor.numel()),
        outer,
        inner,
        row_len,
    };
    let a_op = if transpose_a {
        operand(a, Dim::K, Dim::M, m)
    } else {
        operand(a, Dim::M, Dim::K, k)
    };
    let b_op = if transpose_b {
        operand(b, Dim::N, Dim::K, k)
    } else {
        operand(b, Dim::K, Dim::N, n)
    };
    let c_big = !fits(device, m * n);

    // The one dimension every big tensor is split along.
    let mut split: Option<(Dim, usize)> = None;
    let bigs = [
        (a_op.big, a_op.outer, a_op.row_len),
        (b_op.big, b_op.outer, b_op.row_len),
        (c_big, Dim::M, n),
    ];
    for (big, outer, row_len) in bigs {
        if !big {
            continue;
        }
        // Rows of 4 so packed pieces (K padded to vec4s) stay as small as the windows.
        let rows = rows_per_window(device, row_len, 4, row_len.next_multiple_of(4))?;
        split = match split {
            None => Some((outer, rows)),
            Some((d, r)) if d == outer => Some((d, r.min(rows))),
            Some((d, _)) => {
                return arg_err!(
                    "matmul: {:?}{} · {:?}{} has operands larger than one storage binding \
                     ({} bytes) along different dimensions ({d:?} and {outer:?}); split \
                     the product",
                    a.shape(),
                    if transpose_a { "ᵀ" } else { "" },
                    b.shape(),
                    if transpose_b { "ᵀ" } else { "" },
                    device.limits().max_storage_buffer_binding_size
                );
            }
        };
    }
    let Some((dim, step)) = split else {
        return arg_err!("matmul_in_windows: every operand fits one binding");
    };
    let full = Ranges {
        m: 0..m,
        n: 0..n,
        k: 0..k,
    };
    let extent = full.of(dim).len();
    let pieces = (0..extent).step_by(step).map(|s| s..(s + step).min(extent));

    let out = if dim == Dim::K {
        None
    } else {
        Some(a.uninit_like(&[m, n])?)
    };
    let mut sum: Option<Tensor> = None;
    for range in pieces {
        let ranges = Ranges {
            m: if dim == Dim::M { range.clone() } else { 0..m },
            n: if dim == Dim::N { range.clone() } else { 0..n },
            k: if dim == Dim::K { range.clone() } else { 0..k },
        };
        let (ta, va) = a_op.piece(&ranges, (Dim::M, Dim::K))?;
        let (tb, vb) = b_op.piece(&ranges, (Dim::N, Dim::K))?;
        let (pa, pb) = (pack(&ta, va)?, pack(&tb, vb)?);
        let dims = (ranges.m.len(), ranges.n.len(), ranges.k.len());
        match (dim, &out) {
            (Dim::M, Some(out)) => {
                let rows = ranges.m.clone();
                let (tensor, offset) = if c_big {
                    (out.window(rows.start * n, &[rows.len(), n])?, 0)
                } else {
                    (out.clone(), rows.start * n)
                };
                let c = Output {
                    tensor: &tensor,
                    offset,
                    matrix_stride: rows.len() * n,
                    row_stride: n,
                };
                gemm(&pa, &pb, c, dims, 1, None, which)?;
            }
            (Dim::N, Some(out)) => {
                let c = Output {
                    tensor: out,
                    offset: ranges.n.start,
                    matrix_stride: m * n,
                    row_stride: n,
                };
                gemm(&pa, &pb, c, dims, 1, None, which)?;
            }
            _ => {
                let partial = a.uninit_like(&[m, n])?;
                let c = Output {
                    tensor: &partial,
                    offset: 0,
                    matrix_stride: m * n,
                    row_stride: n,
                };
                gemm(&pa, &pb, c, dims, 1, None, which)?;
                sum = Some(match sum {
                    None => partial,
                    Some(s) => s.add(&partial)?,
                });
            }
        }
    }
    match (sum, out) {
        (Some(sum), _) => Ok(sum),
        (None, Some(out)) => Ok(out),
        (None, None) => arg_err!("matmul: an empty product along K"),
    }
}
