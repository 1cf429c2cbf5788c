// Needs the SUBGROUP feature.
// Implicit-GEMM convolution forward: y[n, g] = W[g] · colᵀ[n, g] as in
// matmul_subgroup.wgsl (same 8×8 blocks per lane, rows of A shared by subgroup broadcast),
// but the B operand — the im2col matrix, one row of taps per output pixel — is never
// written out: each lane gathers its 8 pixels' tap values straight from the input.
// That saves the im2col pass (a store and a reload per value).
//
// Pair z = n·groups + g. A is the packed weight [groups, cout_g, K4]; k = ci_local·kh·kw +
// ky·kw + kx as in PyTorch's weight layout; taps past k_g read 0.

struct Params {
    m: u32,       // output channels per group
    n: u32,       // output pixels of this chunk
    pix0: u32,    // the chunk's first output pixel, within its sample
    k4: u32,      // vec4s per weight row
    a_stride: u32, // vec4s between groups' weights
    groups: u32,
    c_in: u32,
    h: u32,
    w: u32,
    wo: u32,
    stride_h: u32,
    stride_w: u32,
    pad_h: u32,
    pad_w: u32,
    dil_h: u32,
    dil_w: u32,
    kh: u32,
    kw: u32,
    cin_g: u32,
    // Launch number of workgroup layer z: z_base + z (a batch past the grid's z limit is
    // launched in parts). Launch number q is K-slice q / pairs of (sample, group) pair
    // q % pairs; a slice sums k4_slice vec4s of K (a bounded loop; src/gpu/loops.rs).
    z_base: u32,
    pairs: u32,
    k4_slice: u32,
    // Pair z's block of C starts at c_offset + slice·slice_stride + z·c_stride, its rows
    // c_row_stride apart: the output itself, or a slice's partial product.
    c_offset: u32,
    c_stride: u32,
    c_row_stride: u32,
    slice_stride: u32,
}

@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>; // [c_out], with HAS_BIAS
@group(0) @binding(4) var<uniform> p: Params;

override HAS_BIAS: bool = false;

override WG_Y: u32 = 8u;
override SUBGROUPS_ALONG_PIXELS: bool = false;

@compute @workgroup_size(8 * WG_Y)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(subgroup_id) subgroup: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    // The workgroup's subgroups take 8-row blocks of output channels (ROWS_PER_SUBGROUP)
    // or, when a group has 8 or fewer, neighbouring 64-pixel blocks, so workgroups stay
    // full-sized either way.
    var row0 = (wid.y * WG_Y + subgroup) * 8u;
    var col0 = (wid.x * 8u + lane) * 8u;
    if SUBGROUPS_ALONG_PIXELS {
        row0 = wid.y * 8u;
        col0 = ((wid.x * WG_Y + subgroup) * 8u + lane) * 8u;
    }
    let q = p.z_base + wid.z;
    let z = q % p.pairs;
    let slice = q / p.pairs;
    let k_begin = slice * p.k4_slice;
    let k_end = min(k_begin + p.k4_slice, p.k4);
    let g = z % p.groups;
    let n = z / p.groups;
    let my_a_row = g * p.a_stride + min(row0 + lane, p.m - 1u) * p.k4;
    let plane_size = p.h * p.w;
    let x_base = (n * p.c_in + g * p.cin_g) * plane_size;

    // Top-left input corner of each of this lane's 8 pixels (past the edge: the last one).
    var top: array<i32, 8>;
    var left: array<i32, 8>;
    for (var j = 0u; j < 8u; j++) {
        let pix = p.pix0 + min(col0 + j, p.n - 1u);
        top[j] = i32((pix / p.wo) * p.stride_h) - i32(p.pad_h);
        left[j] = i32((pix % p.wo) * p.stride_w) - i32(p.pad_w);
    }

    // The tap (cl, ky, kx) of the next k, walked incrementally (the same in every lane).
    let taps = p.kh * p.kw;
    var cl = (k_begin * 4u) / taps;
    var ky = ((k_begin * 4u) % taps) / p.kw;
    var kx = (k_begin * 4u) % p.kw;
    var acc: array<vec4<f32>, 16>;
    for (var kk = k_begin; kk < k_end; kk++) {
        // B rows for these 4 taps: b[j][e] = input under tap e for pixel j.
        var b: array<vec4<f32>, 8>;
        for (var e = 0u; e < 4u; e++) {
            let tap_ok = cl < p.cin_g;
            let plane = x_base + min(cl, p.cin_g - 1u) * plane_size;
            let dy = i32(ky * p.dil_h);
            let dx = i32(kx * p.dil_w);
            for (var j = 0u; j < 8u; j++) {
                let ih = top[j] + dy;
                let iw = left[j] + dx;
                let inside = tap_ok && ih >= 0 && iw >= 0 && ih < i32(p.h) && iw < i32(p.w);
                let r = u32(clamp(ih, 0, i32(p.h) - 1));
                let c = u32(clamp(iw, 0, i32(p.w) - 1));
                b[j][e] = select(0.0, x[plane + r * p.w + c], inside);
            }
            kx++;
            if kx == p.kw {
                kx = 0u;
                ky++;
                if ky == p.kh {
                    ky = 0u;
                    cl++;
                }
            }
        }
        let lo = mat4x4<f32>(b[0], b[1], b[2], b[3]);
        let hi = mat4x4<f32>(b[4], b[5], b[6], b[7]);
        let mine = a[my_a_row + kk];
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

    let c_base = p.c_offset + slice * p.slice_stride + z * p.c_stride;
    for (var r = 0u; r < 8u; r++) {
        let row = row0 + r;
        var row_bias = 0.0;
        if HAS_BIAS {
            row_bias = bias[g * p.m + min(row, p.m - 1u)];
        }
        for (var j = 0u; j < 8u; j++) {
            let col = col0 + j;
            if row < p.m && col < p.n {
                y[c_base + row * p.c_row_stride + col] = acc[2u * r + j / 4u][j % 4u] + row_bias;
            }
        }
    }
}
