// C[z] = A[z] · B[z]ᵀ with A packed as [M, K4] and B as [N, K4] vec4 rows (K contiguous,
// zero-padded; see matmul_pack.wgsl). The kernel for real GPUs: a workgroup of 16×16
// invocations computes a 64×64 tile of C. Each K step stages 64 rows × K4_TILE vec4s of A
// and of B in workgroup memory, loaded by all 256 invocations together, then each
// invocation accumulates its 4×4 block from there, so each operand element is read from
// global memory once per workgroup instead of 64 times. Software adapters read workgroup
// memory as slowly as storage, so they use matmul_subgroup.wgsl instead.

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
}

@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

override HAS_BIAS: bool = false;

const TILE: u32 = 64u; // rows and columns of C per workgroup (16 invocations × 4)
// vec4s of K staged per step; 256 invocations load TILE·K4_TILE vec4s of each operand.
override K4_TILE: u32 = 4u;

var<workgroup> a_tile: array<vec4<f32>, TILE * K4_TILE>;
var<workgroup> b_tile: array<vec4<f32>, TILE * K4_TILE>;

@compute @workgroup_size(16, 16)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    let q = p.z_base + wid.z;
    let z = q % p.batches;
    let k_begin = (q / p.batches) * p.k4_slice;
    let k_end = min(k_begin + p.k4_slice, p.k4);
    let a_base = p.a_offset + (z % p.a_mod) * p.a_stride;
    let b_base = p.b_offset + (z % p.b_mod) * p.b_stride;

    var acc: array<vec4<f32>, 4>; // acc[i][j]: row lid.y·4 + i, column lid.x·4 + j
    for (var k0 = k_begin; k0 < k_end; k0 += K4_TILE) {
        // Stage the slabs: element e of a slab is (row e / K4_TILE, vec4 e % K4_TILE).
        for (var e = li; e < TILE * K4_TILE; e += 256u) {
            let r = e / K4_TILE;
            let kk = k0 + e % K4_TILE;
            let in_k = kk < k_end;
            let a_row = min(row0 + r, p.m - 1u);
            let b_row = min(col0 + r, p.n - 1u);
            a_tile[e] = select(vec4<f32>(0.0), a[a_base + a_row * p.k4 + min(kk, p.k4 - 1u)], in_k);
            b_tile[e] = select(vec4<f32>(0.0), b[b_base + b_row * p.k4 + min(kk, p.k4 - 1u)], in_k);
        }
        workgroupBarrier();
        for (var q = 0u; q < K4_TILE; q++) {
            let b_cols = mat4x4<f32>(
                b_tile[(lid.x * 4u + 0u) * K4_TILE + q],
                b_tile[(lid.x * 4u + 1u) * K4_TILE + q],
                b_tile[(lid.x * 4u + 2u) * K4_TILE + q],
                b_tile[(lid.x * 4u + 3u) * K4_TILE + q],
            );
            for (var i = 0u; i < 4u; i++) {
                // v * M gives (dot(v, M[0]), ..., dot(v, M[3])).
                acc[i] += a_tile[(lid.y * 4u + i) * K4_TILE + q] * b_cols;
            }
        }
        workgroupBarrier();
    }

    let c_base = p.c_offset + (q / p.batches) * p.slice_stride + z * p.c_stride;
    let bias_base = (z % p.bias_mod) * p.m;
    for (var i = 0u; i < 4u; i++) {
        let row = row0 + lid.y * 4u + i;
        var row_bias = 0.0;
        if HAS_BIAS {
            row_bias = bias[bias_base + min(row, p.m - 1u)];
        }
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + lid.x * 4u + j;
            if row < p.m && col < p.n {
                c[c_base + row * p.c_row_stride + col] = acc[i][j] + row_bias;
            }
        }
    }
}
