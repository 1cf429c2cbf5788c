// variants: out1.wgsl out4.wgsl
// Needs the SUBGROUP feature (naga gates subgroup built-ins by capability, not by an
// `enable` directive).
// C[z] = A[z] · B[z]ᵀ with A packed as [M, K4] and B as [N, K4] vec4 rows (K contiguous,
// zero-padded; see matmul_pack.wgsl), for adapters whose subgroups are exactly 8 wide
// (lavapipe's SIMD lanes).
//
// Each invocation computes an 8×8 block of C in registers. The 8 lanes of a subgroup share
// the same 8 rows of A: each lane loads one row and the others receive it by broadcast,
// so every lane issues 1 + 8 loads (instead of 16) per 256 multiply-adds. Software
// adapters turn every lane-divergent load into a loop of scalar loads, which makes that
// count what decides speed; workgroup memory did not help there (its reads loop the same).
//
// K may run over several planes: k_plane vec4s of each row per plane, the next plane
// a_plane_stride (b_plane_stride) vec4s on. A pointwise convolution's weight gradient
// sums over every pixel of every sample that way, dy · xᵀ read in place from NCHW, in one
// product instead of one per sample. With one plane, k_plane is k4 and rows follow rows.
//
// Workgroup: 8·WG_Y invocations in one dimension = WG_Y subgroups of 8 lanes; tile of
// 8·WG_Y rows × 64 columns. Rows come from the subgroup id and columns from the lane, so
// the result does not depend on how the driver groups invocations into subgroups.

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
    k_plane: u32,
    a_plane_stride: u32,
    b_plane_stride: u32,
}

@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> c: array<Out>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

override HAS_BIAS: bool = false;

override WG_Y: u32 = 8u;

@compute @workgroup_size(8 * WG_Y)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(subgroup_id) subgroup: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let row0 = (wid.y * WG_Y + subgroup) * 8u;
    let col0 = (wid.x * 8u + lane) * 8u;
    let q = p.z_base + wid.z;
    let z = q % p.batches;
    let k_begin = (q / p.batches) * p.k4_slice;
    let k_end = min(k_begin + p.k4_slice, p.k4);
    let a_base = p.a_offset + (z % p.a_mod) * p.a_stride;
    let b_base = p.b_offset + (z % p.b_mod) * p.b_stride;

    // Rows and columns past the edge read the last valid one (always in bounds); their
    // results are not stored.
    let my_a_row = a_base + min(row0 + lane, p.m - 1u) * p.k_plane;
    var b_row: array<u32, 8>;
    for (var j = 0u; j < 8u; j++) {
        b_row[j] = b_base + min(col0 + j, p.n - 1u) * p.k_plane;
    }
    // Where step k_begin of K lies: its plane, and its vec4 within the plane's rows.
    var plane = k_begin / p.k_plane;
    var at = k_begin % p.k_plane;

    // acc[2r] holds columns 0..3 of row r, acc[2r + 1] columns 4..7.
    var acc: array<vec4<f32>, 16>;
    for (var kk = k_begin; kk < k_end; kk++) {
        let bk = plane * p.b_plane_stride + at;
        let lo = mat4x4<f32>(b[b_row[0] + bk], b[b_row[1] + bk], b[b_row[2] + bk], b[b_row[3] + bk]);
        let hi = mat4x4<f32>(b[b_row[4] + bk], b[b_row[5] + bk], b[b_row[6] + bk], b[b_row[7] + bk]);
        let mine = a[my_a_row + plane * p.a_plane_stride + at];
        at++;
        if at == p.k_plane {
            at = 0u;
            plane++;
        }
        // v * M gives (dot(v, M[0]), ..., dot(v, M[3])).
        let a0 = subgroupBroadcast(mine, 0u);
        acc[0] += a0 * lo;
        acc[1] += a0 * hi;
        let a1 = subgroupBroadcast(mine, 1u);
        acc[2] += a1 * lo;
        acc[3] += a1 * hi;
        let a2 = subgroupBroadcast(mine, 2u);
        acc[4] += a2 * lo;
        acc[5] += a2 * hi;
        let a3 = subgroupBroadcast(mine, 3u);
        acc[6] += a3 * lo;
        acc[7] += a3 * hi;
        let a4 = subgroupBroadcast(mine, 4u);
        acc[8] += a4 * lo;
        acc[9] += a4 * hi;
        let a5 = subgroupBroadcast(mine, 5u);
        acc[10] += a5 * lo;
        acc[11] += a5 * hi;
        let a6 = subgroupBroadcast(mine, 6u);
        acc[12] += a6 * lo;
        acc[13] += a6 * hi;
        let a7 = subgroupBroadcast(mine, 7u);
        acc[14] += a7 * lo;
        acc[15] += a7 * hi;
    }

    let c_base = p.c_offset + (q / p.batches) * p.slice_stride + z * p.c_stride;
    let bias_base = (z % p.bias_mod) * p.m;
    for (var r = 0u; r < 8u; r++) {
        let row = row0 + r;
        var row_bias = 0.0;
        if HAS_BIAS {
            row_bias = bias[bias_base + min(row, p.m - 1u)];
        }
        if row < p.m && col0 < p.n {
            let at = c_base + row * p.c_row_stride + col0;
            store8(at, acc[2u * r] + row_bias, acc[2u * r + 1u] + row_bias, min(8u, p.n - col0));
        }
    }
}
