// variants: out1.wgsl out4.wgsl
// requires: fused_act.wgsl
// Needs the SUBGROUP feature (naga gates subgroup built-ins by capability, not by an
// `enable` directive).
// C[z] = A[z] · B[z] with A packed as [M, K4] vec4 rows (K contiguous, zero-padded; see
// matmul_pack.wgsl) and B as it lies in an NCHW tensor: K rows of N floats, N contiguous
// (b_k_stride vec4s apart). A pointwise convolution's input [C_in, H·W] per sample, and
// its output gradient [C_out, H·W], are such a B, so neither is transposed into a packed
// copy first. Otherwise as matmul_subgroup.wgsl: 8-wide subgroups, an 8×8 block of C per
// lane, rows of A shared by subgroup broadcast; each lane loads its 8 columns of 4 rows of
// B as 8 vec4s per step of K, as many loads as the packed kernel.
//
// The columns may run over several samples: planes of `plane` columns (a multiple of 8,
// so a lane's 8 never straddle two), plane i of B starting b_plane_stride vec4s and of C
// c_plane_stride floats after plane i - 1. A pointwise convolution then multiplies its
// weight by all the batch's pixels at once: on a 4×4 image, 16 columns per sample would
// fill a quarter of each 64-column tile.
//
// With MOMENTS the kernel also writes each row's moments over the subgroup's 64 columns
// (count, mean, M2: the sum of squared deviations from the mean) to `moments`, [m,
// segments, 3] with segment z · (workgroups along x) + x: batch_norm_stats.wgsl merges
// them, so a batch norm after a pointwise convolution needs no pass of its own over its
// input. Only without a bias or a scale and shift (the host checks).

struct Params {
    m: u32,
    n: u32,
    k4: u32,
    // Matrix z of A starts at a_offset + (z % a_mod) * a_stride vec4s (a_mod = 1
    // broadcasts A over the batch; a_mod = groups cycles through per-group weights).
    a_offset: u32,
    a_stride: u32,
    a_mod: u32,
    b_offset: u32,
    b_stride: u32,
    b_mod: u32,
    // Matrix z of C starts at c_offset + z * c_stride floats, its rows c_row_stride apart.
    c_offset: u32,
    c_stride: u32,
    c_row_stride: u32,
    // Launch number of workgroup layer z: z_base + z (a batch past the grid's z limit is
    // launched in parts).
    z_base: u32,
    // With HAS_BIAS, row r of matrix z gets bias[(z % bias_mod)·m + r] added (a
    // convolution's per-channel bias, fused into the product's epilogue).
    bias_mod: u32,
    // Split-K: launch number q is K-slice q / batches of matrix q % batches. A slice sums
    // k4_slice vec4s of K (a bounded loop; src/gpu/loops.rs) into its own partial C,
    // slice_stride floats after the previous slice's; the host sums the partials.
    batches: u32,
    k4_slice: u32,
    slice_stride: u32,
    // K itself (rows of B past it read 0) and the vec4s between B's rows.
    k: u32,
    b_k_stride: u32,
    plane: u32,
    b_plane_stride: u32,
    c_plane_stride: u32,
}

@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> c: array<Out>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
// With MOMENTS, [m, segments, 3]; else any buffer, never touched.
@group(0) @binding(4) var<storage, read_write> moments: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

override HAS_BIAS: bool = false;
// With SCALE_SHIFT the bias binding holds a scale and a shift per row, and each result
// becomes fused_act(v · scale + shift): an evaluation-mode batch norm and its activation,
// folded into the convolution before them.
override SCALE_SHIFT: bool = false;
override K_ALIGNED: bool = false;
override MOMENTS: bool = false;

override WG_Y: u32 = 8u;

@compute @workgroup_size(8 * WG_Y)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(subgroup_id) subgroup: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let row0 = (wid.y * WG_Y + subgroup) * 8u;
    let col0 = (wid.x * 8u + lane) * 8u;
    // This lane's plane and its first column there (past the edge: the last column's).
    let first = min(col0, p.n - 1u);
    let plane = first / p.plane;
    let pix0 = first % p.plane;
    let q = p.z_base + wid.z;
    let z = q % p.batches;
    let k_begin = (q / p.batches) * p.k4_slice;
    let k_end = min(k_begin + p.k4_slice, p.k4);
    let a_base = p.a_offset + (z % p.a_mod) * p.a_stride;
    let b_base = p.b_offset + (z % p.b_mod) * p.b_stride;

    // Rows of A past the edge read the last valid one, and columns of B past it the last
    // valid vec4 (always in bounds); their results are not stored.
    let my_a_row = a_base + min(row0 + lane, p.m - 1u) * p.k4;
    let plane4 = (p.plane + 3u) / 4u;
    let b_plane = b_base + plane * p.b_plane_stride;
    let b_lo = b_plane + min(pix0 / 4u, plane4 - 1u);
    let b_hi = b_plane + min(pix0 / 4u + 1u, plane4 - 1u);

    // acc[2r] holds columns 0..3 of row r, acc[2r + 1] columns 4..7.
    var acc: array<vec4<f32>, 16>;
    for (var kk = k_begin; kk < k_end; kk++) {
        // Columns of rows 4kk..4kk+3 of B; rows past K read as 0 (A's padding is 0
        // too, but 0 · inf would be NaN). With K_ALIGNED (K a multiple of 4: nearly
        // every layer) there are none, and no row needs a check.
        let r0 = 4u * kk;
        var lo: mat4x4<f32>;
        var hi: mat4x4<f32>;
        if K_ALIGNED {
            let at = r0 * p.b_k_stride;
            let s = p.b_k_stride;
            lo = mat4x4<f32>(b[b_lo + at], b[b_lo + at + s], b[b_lo + at + 2u * s], b[b_lo + at + 3u * s]);
            hi = mat4x4<f32>(b[b_hi + at], b[b_hi + at + s], b[b_hi + at + 2u * s], b[b_hi + at + 3u * s]);
        } else {
            for (var e = 0u; e < 4u; e++) {
                let row = min(r0 + e, p.k - 1u) * p.b_k_stride;
                let inside = r0 + e < p.k;
                lo[e] = select(vec4<f32>(0.0), b[b_lo + row], inside);
                hi[e] = select(vec4<f32>(0.0), b[b_hi + row], inside);
            }
        }
        let mine = a[my_a_row + kk];
        // M * v gives Σ_e v[e] · M[e]: row r of A times 4 rows of B.
        let a0 = subgroupBroadcast(mine, 0u);
        acc[0] += lo * a0;
        acc[1] += hi * a0;
        let a1 = subgroupBroadcast(mine, 1u);
        acc[2] += lo * a1;
        acc[3] += hi * a1;
        let a2 = subgroupBroadcast(mine, 2u);
        acc[4] += lo * a2;
        acc[5] += hi * a2;
        let a3 = subgroupBroadcast(mine, 3u);
        acc[6] += lo * a3;
        acc[7] += hi * a3;
        let a4 = subgroupBroadcast(mine, 4u);
        acc[8] += lo * a4;
        acc[9] += hi * a4;
        let a5 = subgroupBroadcast(mine, 5u);
        acc[10] += lo * a5;
        acc[11] += hi * a5;
        let a6 = subgroupBroadcast(mine, 6u);
        acc[12] += lo * a6;
        acc[13] += hi * a6;
        let a7 = subgroupBroadcast(mine, 7u);
        acc[14] += lo * a7;
        acc[15] += hi * a7;
    }

    let c_base = p.c_offset + (q / p.batches) * p.slice_stride + z * p.c_stride
        + plane * p.c_plane_stride + pix0;
    let bias_base = (z % p.bias_mod) * p.m;
    for (var r = 0u; r < 8u; r++) {
        let row = row0 + r;
        let rr = min(row, p.m - 1u);
        var scale = 1.0;
        var shift = 0.0;
        if HAS_BIAS {
            shift = bias[bias_base + rr];
        }
        if SCALE_SHIFT {
            scale = bias[2u * rr];
            shift = bias[2u * rr + 1u];
        }
        if row < p.m && col0 < p.n {
            let lo = acc[2u * r] * scale + shift;
            let hi = acc[2u * r + 1u] * scale + shift;
            let lo_act = vec4<f32>(fused_act(lo.x), fused_act(lo.y), fused_act(lo.z), fused_act(lo.w));
            let hi_act = vec4<f32>(fused_act(hi.x), fused_act(hi.y), fused_act(hi.z), fused_act(hi.w));
            store8(c_base + row * p.c_row_stride, lo_act, hi_act, min(8u, p.n - col0));
        }
    }
    if MOMENTS {
        store_moments(&acc, row0, col0, lane, z * nwg.x + wid.x, p.batches * nwg.x);
    }
}

// Row r's (count, mean, M2) over the subgroup's columns inside the matrix, from the
// lanes' blocks, written by lane r: two subgroup sums per row, the second of squared
// deviations from the first's mean (no E[x²] - E[x]², which cancels in f32).
fn store_moments(
    acc: ptr<function, array<vec4<f32>, 16>>,
    row0: u32,
    col0: u32,
    lane: u32,
    segment: u32,
    segments: u32,
) {
    // Lane 0's columns are always inside (the grid ends at the last column), so the
    // subgroup's count is at least 1.
    let valid = select(0u, min(8u, p.n - min(col0, p.n)), col0 < p.n);
    let in_lo = vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(valid);
    let in_hi = vec4<u32>(4u, 5u, 6u, 7u) < vec4<u32>(valid);
    let count = subgroupAdd(f32(valid));
    for (var r = 0u; r < 8u; r++) {
        let lo = select(vec4<f32>(0.0), (*acc)[2u * r], in_lo);
        let hi = select(vec4<f32>(0.0), (*acc)[2u * r + 1u], in_hi);
        let mean = subgroupAdd(dot(lo + hi, vec4<f32>(1.0))) / count;
        let d_lo = select(vec4<f32>(0.0), lo - mean, in_lo);
        let d_hi = select(vec4<f32>(0.0), hi - mean, in_hi);
        let m2 = subgroupAdd(dot(d_lo, d_lo) + dot(d_hi, d_hi));
        let row = row0 + r;
        if lane == r && row < p.m {
            let at = 3u * (row * segments + segment);
            moments[at] = count;
            moments[at + 1u] = mean;
            moments[at + 2u] = m2;
        }
    }
}
