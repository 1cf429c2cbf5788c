//! Matrix products, 2-D and batched, with either operand transposed.
//! Kernels: `shaders/matmul_pack.wgsl`, then one of `shaders/matmul_tiled.wgsl` (real
//! GPUs: workgroup-memory tiles), `shaders/matmul_subgroup.wgsl` (8-wide subgroups, as on
//! lavapipe) or `shaders/matmul.wgsl` (portable registers-only fallback).
//!
//! All matmul kernels read A as `[M, K]` rows and B as `[N, K]` rows, K contiguous as
//! vec4s. An operand already in that layout (K contiguous, K a multiple of 4) is read in
//! place; any other is first packed (transposed and zero-padded) into a temporary, which
//! costs O((M + N)·K) against the product's O(M·N·K).

use std::ops::Range;

use super::batch_norm::BnAct;
use super::matmul_windows;
use super::reduce::{Reduction, reduce_with};
use super::segments::{Segments, items_within};
use super::windows::fits;
use crate::error::{Error, Result, arg_err, shape_err};
use crate::gpu::{Grid, Kernel, kernel};
use crate::tensor::Tensor;

const PACK: Kernel = kernel!("matmul_pack.wgsl");
const MATMUL: Kernel = kernel!("matmul.wgsl");
/// The subgroup kernel, storing as [`MATMUL_SUBGROUP_KN`] does.
const MATMUL_SUBGROUP: [Kernel; 2] = [
    kernel!("matmul_subgroup.wgsl", "out1.wgsl"),
    kernel!("matmul_subgroup.wgsl", "out4.wgsl"),
];
/// The K-major kernel storing floats one by one, or vec4s (`shaders/out1.wgsl`,
/// `shaders/out4.wgsl`) where every row of 8 results is whole and 16-byte aligned.
const MATMUL_SUBGROUP_KN: [Kernel; 2] = [
    kernel!("matmul_subgroup_kn.wgsl", "out1.wgsl"),
    kernel!("matmul_subgroup_kn.wgsl", "out4.wgsl"),
];
const MATMUL_TILED: Kernel = kernel!("matmul_tiled.wgsl");
const PLACE: Kernel = kernel!("matmul_place.wgsl");
/// Most subgroups (y) per workgroup of the register kernels: the `WG_Y` override. A
/// workgroup computes `8·WG_Y` rows × 64 columns. (8 and 2..16 measured the same on
/// lavapipe for large products.)
const WG_Y: u32 = 8;
/// vec4s of K staged per step by the tiled kernel: its `K4_TILE` override.
const K4_TILE: u32 = 4;

/// Subgroups (8 rows each) per workgroup for a product with `m` rows: as few row tiles
/// as [`WG_Y`] subgroups allow, then the smallest height that still covers `m` with that
/// many tiles. E.g. 90 rows: 2 tiles of 48 (96 computed) instead of 2 of 64 (128); 4 rows
/// (a ResNeXt group): 1 subgroup. Each height is its own pipeline (at most `WG_Y`).
pub(crate) fn subgroups_for_rows(m: usize) -> usize {
    let max_rows = 8 * WG_Y as usize;
    let tiles = m.div_ceil(max_rows).max(1);
    m.div_ceil(8 * tiles).clamp(1, WG_Y as usize)
}

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

    /// Shader, override constants, and the rows × columns of C one workgroup computes, for
    /// a product with `m` rows; the subgroup kernel in its vec4-storing variant when
    /// `vec4_rows`.
    fn launch(
        self,
        m: usize,
        vec4_rows: bool,
    ) -> (&'static Kernel, [(&'static str, f64); 1], usize, usize) {
        // The register kernels give each subgroup 8 rows; the workgroup height is chosen
        // so the fewest rows are computed only to be thrown away.
        let wg_y = subgroups_for_rows(m);
        let rows = 8 * wg_y;
        match self {
            MatmulKernel::Tiled => (&MATMUL_TILED, [("K4_TILE", K4_TILE as f64)], 64, 64),
            MatmulKernel::Subgroup8 => {
                let kernel = &MATMUL_SUBGROUP[usize::from(vec4_rows)];
                (kernel, [("WG_Y", wg_y as f64)], rows, 64)
            }
            MatmulKernel::Portable | MatmulKernel::Auto => {
                (&MATMUL, [("WG_Y", wg_y as f64)], rows, 64)
            }
        }
    }
}

/// Where the elements of an operand's matrices lie in its tensor, in floats: element
/// (row, k) of matrix z is at `offset + (z % batch_mod)·batch_stride + row·row_stride +
/// k·col_stride`. `batch_mod` is how many distinct matrices there are (1 broadcasts one
/// matrix over the batch).
#[derive(Clone, Copy, Debug)]
pub(crate) struct MatrixView {
    pub offset: usize,
    pub batch_stride: usize,
    pub batch_mod: usize,
    pub rows: usize,
    pub k: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

/// An operand in the kernels' layout: `batch_mod` matrices of `[rows, k4]` vec4s, K
/// contiguous, starting at `offset4` vec4s into `tensor`'s buffer, `stride4` apart. A B
/// operand may instead be K-major ([`k_major`]): K rows of its columns, `k_stride4` vec4s
/// apart.
pub(crate) struct Packed {
    tensor: Tensor,
    offset4: usize,
    stride4: usize,
    batch_mod: usize,
    k_major: Option<KMajor>,
    k_planes: Option<KPlanes>,
}

/// K running over several planes (see [`k_planes`]): `len4` vec4s of every row per plane,
/// the next plane `stride4` vec4s on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct KPlanes {
    len4: usize,
    stride4: usize,
}

/// How a K-major B operand lies (see [`k_major`]), and what the K-major kernel does to
/// each result before it stores it.
#[derive(Clone, Debug)]
struct KMajor {
    /// Vec4s between rows of K.
    k_stride4: usize,
    planes: ColumnPlanes,
    /// `act(v · t[2r] + t[2r + 1])` for row r: an evaluation-mode batch norm (its scale
    /// and shift per channel) and its activation, fused into the product.
    scale_shift: Option<(Tensor, BnAct)>,
    /// Where the kernel writes each row's moments per tile of 64 columns, `[m,
    /// segments, 3]` (see [`Packed::with_moments`]).
    moments: Option<Tensor>,
}

/// The columns of a product grouped in planes: `len` columns each (a multiple of 8), the
/// next plane of B `b_stride` floats and of C `c_stride` floats on (one sample's pixels
/// in NCHW tensors). One plane of all the columns is an ordinary product.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ColumnPlanes {
    pub len: usize,
    pub b_stride: usize,
    pub c_stride: usize,
}

impl Packed {
    pub(crate) fn buffer(&self) -> crate::gpu::Binding<'_> {
        self.tensor.buffer()
    }
}

/// A B operand read where it lies, when its rows (the columns of B as [`gemm`] takes it:
/// output columns) are contiguous and its K steps vec4-aligned: the NCHW layout of a
/// pointwise convolution's input or output gradient, `[K = channels, N = pixels]`. With
/// `planes`, the columns run on over several samples' planes (then `v.rows` is all of
/// them). Only the 8-wide subgroup kernel reads this layout; `None` elsewhere, and the
/// caller packs.
pub(crate) fn k_major(t: &Tensor, v: MatrixView, planes: Option<ColumnPlanes>) -> Option<Packed> {
    let aligned = |x: usize| x.is_multiple_of(4);
    let subgroup8 = t.device().summary().subgroup_sizes == Some((8, 8));
    let planes_ok = planes.is_none_or(|p| {
        p.len.is_multiple_of(8) && aligned(p.b_stride) && v.rows.is_multiple_of(p.len)
    });
    (subgroup8
        && planes_ok
        && v.row_stride == 1
        && v.k >= 1
        && aligned(v.col_stride)
        && aligned(v.offset)
        && aligned(v.batch_stride))
    .then(|| Packed {
        tensor: t.clone(),
        offset4: v.offset / 4,
        stride4: v.batch_stride / 4,
        batch_mod: v.batch_mod,
        k_planes: None,
        k_major: Some(KMajor {
            k_stride4: v.col_stride / 4,
            planes: planes.unwrap_or(ColumnPlanes {
                len: v.rows,
                b_stride: 0,
                c_stride: 0,
            }),
            scale_shift: None,
            moments: None,
        }),
    })
}

impl Packed {
    /// This K-major operand, with the product's rows ending in `act(v · scale + shift)`
    /// (`coef` `[m, 2]`: scale and shift per row, as `batch_norm_stats.wgsl` writes them).
    /// Only for products in one pass without a bias; an `Err` otherwise, from [`gemm`].
    pub(crate) fn with_scale_shift(mut self, coef: &Tensor, act: BnAct) -> Result<Packed> {
        match &mut self.k_major {
            Some(kn) => kn.scale_shift = Some((coef.clone(), act)),
            None => {
                return Err(Error::Internal(
                    "matmul: only a K-major operand carries a scale and shift".into(),
                ));
            }
        }
        Ok(self)
    }

    /// This K-major operand, with the product also writing each row's (count, mean, M2)
    /// per 64 columns to `moments`, `[m, segments, 3]`, segment `matrix · tiles + tile`
    /// ([`moment_segments`] of them): the partial statistics a batch norm after a
    /// pointwise convolution merges. Only for products in one pass without a bias or a
    /// scale and shift; an `Err` otherwise, from [`gemm`].
    pub(crate) fn with_moments(mut self, moments: &Tensor) -> Result<Packed> {
        match &mut self.k_major {
            Some(kn) => kn.moments = Some(moments.clone()),
            None => {
                return Err(Error::Internal(
                    "matmul: only a K-major operand computes moments".into(),
                ));
            }
        }
        Ok(self)
    }
}

/// Columns per workgroup of the K-major kernel: the tile [`Packed::with_moments`] writes
/// one segment of moments per row for.
const K_MAJOR_TILE_COLS: usize = 64;

/// Segments of moments per row of `batches` products of `n` columns with a K-major B
/// (see [`Packed::with_moments`]).
pub(crate) fn moment_segments(n: usize, batches: usize) -> usize {
    batches * n.div_ceil(K_MAJOR_TILE_COLS)
}

/// An operand of `rows` rows whose K runs over `planes` planes of `len` floats each:
/// row r's part of plane i at `offset + i · plane_stride + r · len` (an NCHW tensor's
/// `[C, H·W]` planes, K being every sample's pixels). Read in place by the 8-wide subgroup
/// kernel; `None` on other adapters or unaligned layouts, and the caller goes per plane.
pub(crate) fn k_planes(
    t: &Tensor,
    offset: usize,
    (len, plane_stride): (usize, usize),
) -> Option<Packed> {
    let aligned = |x: usize| x.is_multiple_of(4);
    let subgroup8 = t.device().summary().subgroup_sizes == Some((8, 8));
    (subgroup8 && len > 0 && aligned(len) && aligned(offset) && aligned(plane_stride)).then(|| {
        Packed {
            tensor: t.clone(),
            offset4: offset / 4,
            stride4: 0,
            batch_mod: 1,
            k_major: None,
            k_planes: Some(KPlanes {
                len4: len / 4,
                stride4: plane_stride / 4,
            }),
        }
    })
}

/// Whether a product with a K-major B and `k` rows of K runs in one pass (no split-K),
/// which a B whose columns run over several planes needs.
pub(crate) fn k_major_fits_one_pass(device: &crate::Device, k: usize) -> bool {
    let (fixed, per_k4) = K_MAJOR_LOOP_COST;
    items_within(device.loop_budget(), fixed, per_k4).is_some_and(|k4| k.div_ceil(4) <= k4)
}

/// Loop iterations of the K-major kernel: as the subgroup kernel's, plus the moments'
/// loop over 8 rows, plus the loop over the 4 rows of B per vec4 of K.
const K_MAJOR_LOOP_COST: (u64, u64) = (8 + 72 + 9, 5);

/// Brings an operand into the kernels' layout: in place when it already is (dense rows,
/// K contiguous, everything aligned to vec4s), else through the pack kernel.
pub(crate) fn pack(t: &Tensor, v: MatrixView) -> Result<Packed> {
    let aligned = |x: usize| x.is_multiple_of(4);
    if v.col_stride == 1
        && v.row_stride == v.k
        && aligned(v.k)
        && aligned(v.offset)
        && aligned(v.batch_stride)
    {
        return Ok(Packed {
            tensor: t.clone(),
            offset4: v.offset / 4,
            stride4: v.batch_stride / 4,
            batch_mod: v.batch_mod,
            k_major: None,
            k_planes: None,
        });
    }
    let k4 = v.k.div_ceil(4);
    let packed = t.uninit_like(&[v.batch_mod, v.rows, k4 * 4])?;
    let total = (v.batch_mod * v.rows * k4) as u64;
    t.device().dispatch(
        &PACK,
        "main",
        &[],
        &[t.buffer(), packed.buffer()],
        &[
            total as u32,
            v.offset as u32,
            v.rows as u32,
            v.k as u32,
            k4 as u32,
            v.batch_stride as u32,
            v.row_stride as u32,
            v.col_stride as u32,
        ],
        Grid::for_items(total, 256).trips(4),
    )?;
    Ok(Packed {
        tensor: packed,
        offset4: 0,
        stride4: v.rows * k4,
        batch_mod: v.batch_mod,
        k_major: None,
        k_planes: None,
    })
}

/// Where a batch of products goes: matrix z of C starts `offset + z·matrix_stride` floats
/// into `tensor`, its rows `row_stride` floats apart (the column count for a dense matrix;
/// more when the product fills a block of a wider matrix).
pub(crate) struct Output<'a> {
    pub tensor: &'a Tensor,
    pub offset: usize,
    pub matrix_stride: usize,
    pub row_stride: usize,
}

impl<'a> Output<'a> {
    /// Dense `m × n` matrices from the start of `tensor`.
    pub(crate) fn dense(tensor: &'a Tensor, (m, n): (usize, usize)) -> Self {
        Output {
            tensor,
            offset: 0,
            matrix_stride: m * n,
            row_stride: n,
        }
    }
}

impl MatmulKernel {
    /// Loop iterations of one invocation: `(fixed, per vec4 of K)`, counting every loop
    /// as written (the epilogue's 8×8, the row setup; the tiled kernel's staging loop and
    /// its 4 × 4 inner loops per step of K4_TILE vec4s).
    fn loop_cost(self, b: &Packed) -> (u64, u64) {
        if b.k_major.is_some() {
            return K_MAJOR_LOOP_COST;
        }
        match self {
            MatmulKernel::Subgroup8 => (8 + 72, 1),
            MatmulKernel::Tiled => (20 + 20, (1 + 4 + 16u64).div_ceil(K4_TILE as u64)),
            MatmulKernel::Portable | MatmulKernel::Auto => (16 + 72, 9),
        }
    }
}

/// `batches` products `C[z] = A[z] · B[z]ᵀ` (A: m×k, B: n×k) written to `c`. With
/// `bias = Some((t, bias_mod))`, row r of matrix z gets `t[(z % bias_mod)·m + r]` added
/// in the kernels' epilogue.
///
/// A K longer than one invocation may loop over (see [`crate::gpu::loops`]) is split:
/// every K-slice of every matrix is its own workgroup layer writing a partial product,
/// the partials are summed by a reduction, and the sum is written into place. The slices
/// run in parallel, which is also what a GPU wants for long, thin products (a weight
/// gradient summing over every pixel of a batch).
pub(crate) fn gemm(
    a: &Packed,
    b: &Packed,
    c: Output,
    (m, n, k): (usize, usize, usize),
    batches: usize,
    bias: Option<(&Tensor, usize)>,
    which: MatmulKernel,
) -> Result<()> {
    if m == 0 || n == 0 || batches == 0 {
        return Ok(());
    }
    let device = c.tensor.device();
    let which = which.resolve(device)?;
    if a.k_planes.map(|kp| kp.len4) != b.k_planes.map(|kp| kp.len4) {
        return Err(Error::Internal(
            "matmul: both operands need planes of K of one length".into(),
        ));
    }
    let special = b.k_major.is_some() || b.k_planes.is_some();
    if special && which != MatmulKernel::Subgroup8 {
        return Err(Error::Internal(format!(
            "matmul: a K-major or planar operand needs the Subgroup8 kernel, not {which:?}"
        )));
    }
    let k4 = k.div_ceil(4);
    let (fixed, per_k4) = which.loop_cost(b);
    let budget = device.loop_budget();
    let k4_slice = items_within(budget, fixed, per_k4).ok_or_else(|| {
        Error::Internal(format!(
            "matmul: the loop budget {budget} fits no step of K"
        ))
    })?;
    let slices = Segments::split(k4, k4_slice);
    let needs_one_pass = b.k_major.as_ref().is_some_and(|kn| {
        kn.planes.b_stride != 0 || kn.scale_shift.is_some() || kn.moments.is_some()
    });
    if b.k_major
        .as_ref()
        .is_some_and(|kn| kn.scale_shift.is_some())
        && bias.is_some()
    {
        return Err(Error::Internal(
            "matmul: a scale and shift replace the bias; not both".into(),
        ));
    }
    if let Some(moments) = b.k_major.as_ref().and_then(|kn| kn.moments.as_ref()) {
        let want = [m, moment_segments(n, batches), 3];
        if bias.is_some()
            || b.k_major
                .as_ref()
                .is_some_and(|kn| kn.scale_shift.is_some())
        {
            return Err(Error::Internal(
                "matmul: moments are of the plain product; no bias or scale and shift".into(),
            ));
        }
        if moments.shape() != want {
            return Err(Error::Internal(format!(
                "matmul: moments shaped {:?}, the product needs {want:?}",
                moments.shape()
            )));
        }
    }
    if slices.count > 1 && needs_one_pass {
        return Err(Error::Internal(
            "matmul: columns over several planes, a scale and shift, or moments need K in one \
             pass"
                .into(),
        ));
    }
    let every_layer = 0..batches * slices.count;
    if slices.count == 1 {
        let layers = (every_layer, 0);
        return gemm_launch(a, b, &c, (m, n, k), (batches, slices, layers), bias, which);
    }
    let per_slice = batches * m * n;
    if fits(device, slices.count * per_slice) {
        // Partial products [slice, batch, m, n], summed over the slices, then put in place.
        let partial = c.tensor.uninit_like(&[slices.count, batches, m, n])?;
        let layers = (every_layer, per_slice);
        let dims = (batches, slices, layers);
        gemm_launch(
            a,
            b,
            &Output::dense(&partial, (m, n)),
            (m, n, k),
            dims,
            None,
            which,
        )?;
        let sum = reduce_with(&partial, &[0], false, Reduction::Sum, None, 1.0)?;
        return place(&sum, &c, (m, n), batches, bias);
    }
    // All the partials would pass one binding (a weight gradient over a large batch):
    // one slice at a time, each into a [batch, m, n] of its own, added up.
    let mut sum: Option<Tensor> = None;
    for s in 0..slices.count {
        let partial = c.tensor.uninit_like(&[batches, m, n])?;
        let layers = (s * batches..(s + 1) * batches, 0);
        let dims = (batches, slices, layers);
        gemm_launch(
            a,
            b,
            &Output::dense(&partial, (m, n)),
            (m, n, k),
            dims,
            None,
            which,
        )?;
        sum = Some(match sum {
            None => partial,
            Some(total) => total.add(&partial)?,
        });
    }
    let sum = sum.expect("at least one slice");
    place(&sum, &c, (m, n), batches, bias)
}

/// Writes `t`, `batches` finished `m × n` products (dense), to their place in `c`, adding
/// the bias as [`gemm`]'s epilogue would: the last step of a split-K product.
pub(crate) fn place(
    t: &Tensor,
    c: &Output,
    (m, n): (usize, usize),
    batches: usize,
    bias: Option<(&Tensor, usize)>,
) -> Result<()> {
    let total = batches * m * n;
    let (bias_buffer, bias_mod) = match bias {
        Some((b, modulus)) => (b.buffer(), modulus),
        None => (t.buffer(), 1),
    };
    t.device().dispatch(
        &PLACE,
        "main",
        &[("HAS_BIAS", f64::from(u8::from(bias.is_some())))],
        &[t.buffer(), bias_buffer, c.tensor.buffer()],
        &[
            total as u32,
            m as u32,
            n as u32,
            c.offset as u32,
            c.matrix_stride as u32,
            c.row_stride as u32,
            bias_mod as u32,
        ],
        Grid::for_items(total as u64, 256).trips(0),
    )
}

/// Launches the product kernel over the workgroup layers `layers` (layer q is K-slice
/// q / batches of matrix q % batches; slice s writes its partial `slice_stride` floats
/// after slice s - 1's), in parts when they pass the grid's z limit.
fn gemm_launch(
    a: &Packed,
    b: &Packed,
    c: &Output,
    (m, n, k): (usize, usize, usize),
    (batches, slices, (layers, slice_stride)): (usize, Segments, (Range<usize>, usize)),
    bias: Option<(&Tensor, usize)>,
    which: MatmulKernel,
) -> Result<()> {
    let device = c.tensor.device();
    let k4 = k.div_ceil(4);
    // vec4 stores: every row of 8 columns whole (N, and the planes of columns, multiples
    // of 8) and starting on a vec4 (every offset and stride of C a multiple of 4).
    let aligned = |x: usize| x.is_multiple_of(4);
    let planes_ok = b
        .k_major
        .as_ref()
        .is_none_or(|kn| kn.planes.len.is_multiple_of(8) && aligned(kn.planes.c_stride));
    let vec4_rows = n.is_multiple_of(8)
        && planes_ok
        && [c.offset, c.matrix_stride, c.row_stride, slice_stride]
            .into_iter()
            .all(aligned);
    let (kernel, [tile_override], tile_rows, tile_cols) = which.launch(m, vec4_rows);
    let kernel = match b.k_major {
        Some(_) => &MATMUL_SUBGROUP_KN[usize::from(vec4_rows)],
        None => kernel,
    };
    let mut overrides = vec![
        tile_override,
        ("HAS_BIAS", f64::from(u8::from(bias.is_some()))),
    ];
    let scale_shift = b.k_major.as_ref().and_then(|kn| kn.scale_shift.as_ref());
    let moments = b.k_major.as_ref().and_then(|kn| kn.moments.as_ref());
    if b.k_major.is_some() {
        let act = scale_shift.map_or(BnAct::Identity, |(_, act)| *act);
        overrides.push(("SCALE_SHIFT", f64::from(u8::from(scale_shift.is_some()))));
        overrides.push(("ACT", act.code()));
        overrides.push(("K_ALIGNED", f64::from(u8::from(k.is_multiple_of(4)))));
        overrides.push(("MOMENTS", f64::from(u8::from(moments.is_some()))));
    }
    // Without a bias any buffer fills the binding; the kernel never reads it. The scale
    // and shift take the bias's binding.
    let (bias_buffer, bias_mod) = match (bias, scale_shift) {
        (_, Some((coef, _))) => (coef.buffer(), 1),
        (Some((t, modulus)), None) => (t.buffer(), modulus),
        (None, None) => (a.tensor.buffer(), 1),
    };
    let (fixed, per_k4) = which.loop_cost(b);
    // The last words: the K-major kernel's layout, or the planes of K of the others (the
    // kernels without planes do not read them).
    let tail: Vec<usize> = match &b.k_major {
        Some(kn) => vec![
            k,
            kn.k_stride4,
            kn.planes.len,
            kn.planes.b_stride / 4,
            kn.planes.c_stride,
        ],
        None => vec![
            a.k_planes.map_or(k4, |kp| kp.len4),
            a.k_planes.map_or(0, |kp| kp.stride4),
            b.k_planes.map_or(0, |kp| kp.stride4),
        ],
    };
    let mut buffers = vec![
        a.tensor.buffer(),
        b.tensor.buffer(),
        c.tensor.buffer(),
        bias_buffer,
    ];
    if b.k_major.is_some() {
        // The moments' binding; without them C fills it (bound writable twice, which
        // wgpu allows), and the kernel never touches it.
        buffers.push(moments.unwrap_or(c.tensor).buffer());
    }
    let trips = fixed + slices.len as u64 * per_k4;
    let max_z = device.limits().max_compute_workgroups_per_dimension as usize;
    for z_base in layers.clone().step_by(max_z) {
        let grid = Grid::Xyz([
            n.div_ceil(tile_cols) as u32,
            m.div_ceil(tile_rows) as u32,
            (layers.end - z_base).min(max_z) as u32,
        ]);
        device.dispatch(
            kernel,
            "main",
            &overrides,
            &buffers,
            &[
                m,
                n,
                k4,
                a.offset4,
                a.stride4,
                a.batch_mod,
                b.offset4,
                b.stride4,
                b.batch_mod,
                c.offset,
                c.matrix_stride,
                c.row_stride,
                z_base,
                bias_mod,
                batches,
                slices.len,
                slice_stride,
            ]
            .iter()
            .chain(&tail)
            .map(|&v| v as u32)
            .collect::<Vec<u32>>(),
            grid.trips(trips),
        )?;
    }
    Ok(())
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
    if batches * m * n == 0 {
        return a.uninit_like(&out_shape);
    }
    // Resolved before any packing, so an unsupported kernel choice records nothing.
    let which = which.resolve(a.device())?;
    if count_a == 1 && count_b == 1 && matmul_windows::needs_windows(a, b, (m, n)) {
        let c =
            matmul_windows::matmul_in_windows(a, b, (transpose_a, transpose_b), (m, n, k), which)?;
        return c.reshape(&out_shape);
    }
    let out = a.uninit_like(&out_shape)?;

    let view_a = MatrixView {
        offset: 0,
        batch_stride: m * k,
        batch_mod: count_a,
        rows: m,
        k,
        row_stride: if transpose_a { 1 } else { k },
        col_stride: if transpose_a { m } else { 1 },
    };
    let view_b = MatrixView {
        offset: 0,
        batch_stride: n * k,
        batch_mod: count_b,
        rows: n,
        k,
        row_stride: if transpose_b { k } else { 1 },
        col_stride: if transpose_b { 1 } else { n },
    };
    let pa = pack(a, view_a)?;
    let pb = pack(b, view_b)?;
    let dense = Output {
        tensor: &out,
        offset: 0,
        matrix_stride: m * n,
        row_stride: n,
    };
    gemm(&pa, &pb, dense, (m, n, k), batches, None, which)?;
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

#[cfg(test)]
mod tests {
    use super::subgroups_for_rows;

    #[test]
    fn workgroup_height_wastes_the_fewest_rows() {
        // (rows, subgroups): the tiles cover the rows with less than one subgroup to spare
        // per tile, and never more than 8 subgroups.
        for (m, want) in [
            (1, 1),
            (4, 1),
            (24, 3),
            (64, 8),
            (90, 6),
            (144, 6),
            (960, 8),
            (1000, 8),
        ] {
            assert_eq!(subgroups_for_rows(m), want, "{m} rows");
        }
        for m in 1..2000 {
            let wg_y = subgroups_for_rows(m);
            let tile = 8 * wg_y;
            let tiles = m.div_ceil(tile);
            assert!((1..=8).contains(&wg_y));
            assert!(
                tiles * tile - m < 8 * tiles,
                "{m} rows: {tiles} tiles of {tile}"
            );
        }
    }
}
