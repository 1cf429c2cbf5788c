// Backward sums of the normalizations: per output row r, Σ g and Σ g · xhat over the row's
// elements, where g = dy · weight (or dy alone when unweighted) and xhat = (x - mean) ·
// invstd. One workgroup per (row, segment of `seg_len` elements), a tree reduction in
// workgroup memory; long rows have several segments (so no invocation loops past the
// loop budget, src/gpu/loops.rs), whose partial sums the host adds up.
//
// A row is `outer` runs of `inner` contiguous elements, `outer_stride` apart, starting at
// r · inner. That one scheme covers every sum the backward passes need: a contiguous row
// (layer and group norm's dx: outer = 1), a channel of an [N, C, S] tensor (batch norm;
// group norm's dweight: inner = S, outer = N, stride C · S), and a column of [R, D] (layer
// norm's dweight: inner = 1, outer = R, stride D). Statistic and weight of an element are
// (offset / div) % mod, as in norm_apply.wgsl.

struct Params {
    rows: u32,
    inner: u32,
    outer: u32,
    outer_stride: u32,
    stat_div: u32,
    stat_mod: u32,
    affine_div: u32,
    affine_mod: u32,
    weighted: u32,
    segments: u32,
    seg_len: u32,
}

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> mean: array<f32>;
@group(0) @binding(3) var<storage, read> invstd: array<f32>;
@group(0) @binding(4) var<storage, read> weight: array<f32>;
@group(0) @binding(5) var<storage, read_write> sum_g: array<f32>;
@group(0) @binding(6) var<storage, read_write> sum_g_xhat: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

const WG: u32 = 64u;

var<workgroup> scratch: array<vec2<f32>, WG>;

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let wg = group_index(wid, nwg);
    if wg >= p.rows * p.segments {
        return;
    }
    let r = wg / p.segments;
    let first = (wg % p.segments) * p.seg_len;
    let last = min(first + p.seg_len, p.inner * p.outer);
    var acc = vec2<f32>(0.0);
    for (var k = first + lid; k < last; k += WG) {
        let off = r * p.inner + (k / p.inner) * p.outer_stride + k % p.inner;
        let s = (off / p.stat_div) % p.stat_mod;
        let xhat = (x[off] - mean[s]) * invstd[s];
        var g = dy[off];
        // Without a weight the host binds another buffer here and sets weighted to 0.
        if p.weighted != 0u {
            g *= weight[(off / p.affine_div) % p.affine_mod];
        }
        acc += vec2<f32>(g, g * xhat);
    }
    scratch[lid] = acc;
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half /= 2u) {
        if lid < half {
            scratch[lid] += scratch[lid + half];
        }
        workgroupBarrier();
    }
    if lid == 0u {
        sum_g[wg] = scratch[0].x;
        sum_g_xhat[wg] = scratch[0].y;
    }
}
