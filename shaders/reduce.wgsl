// requires: workgroup_reduce.wgsl
// Reductions over a set of axes: sum, max (NaN wins, as PyTorch), and sums of a term
// centred on a per-output value c: Σ exp(x - c) (softmax's denominator with c the row
// maximum), Σ (x - c)² (a variance's numerator with c the mean) and Σ (x - c) (a mean
// taken relative to c, exact where the values are close to it). The host splits the
// input's dimensions into kept ones (that index the output) and reduced ones, merging
// neighbours, and passes both lists with their element strides. `scale` multiplies the
// sums (1/len gives the mean).
//
// Long reductions are cut into `segments` of `seg_len` elements, one workgroup each, so
// no invocation loops past the loop budget (src/gpu/loops.rs); output g = o·segments + s
// is then a partial result, and the host reduces the partials in a second launch.

struct Params {
    n_out: u32,
    red_len: u32,
    kept_ndim: u32,
    red_ndim: u32,
    scale: f32,
    segments: u32,
    seg_len: u32,
    kept_shape: array<vec4<u32>, 2>,
    kept_strides: array<vec4<u32>, 2>,
    red_shape: array<vec4<u32>, 2>,
    red_strides: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
// One value per output for the centred ops; any buffer (never read) for the others.
@group(0) @binding(1) var<storage, read> center: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

override OP: u32 = 0u;
const SUM: u32 = 0u;
const MAX: u32 = 1u;
const SUM_EXP: u32 = 2u;
const SUM_SQ: u32 = 3u;
const SUM_CENTERED: u32 = 4u;

const THREAD_WG: u32 = 256u;
const GROUP_WG: u32 = REDUCE_WG;

fn identity() -> f32 {
    if OP == MAX {
        return bitcast<f32>(0xff800000u); // -inf
    }
    return 0.0;
}

// The term element v of output o contributes.
fn term(v: f32, o: u32) -> f32 {
    if OP == SUM_EXP {
        return exp(v - center[o]);
    }
    if OP == SUM_SQ {
        let d = v - center[o];
        return d * d;
    }
    if OP == SUM_CENTERED {
        return v - center[o];
    }
    return v;
}

fn combine(u: f32, v: f32) -> f32 {
    if OP == MAX {
        return max_nan(u, v);
    }
    return u + v;
}

fn finish(v: f32) -> f32 {
    if OP == MAX {
        return v;
    }
    return v * p.scale;
}

// Element offset of the `index`-th position of the kept (or the reduced) dimensions.
// Reads the uniform block in place: passing its arrays as arguments made the compiler copy
// them for every element.
fn strided_offset(index: u32, reduced: bool) -> u32 {
    var rest = index;
    var offset = 0u;
    for (var d = i32(select(p.kept_ndim, p.red_ndim, reduced)) - 1; d >= 0; d--) {
        let q = u32(d) / 4u;
        let r = u32(d) % 4u;
        let size = select(p.kept_shape[q][r], p.red_shape[q][r], reduced);
        let stride = select(p.kept_strides[q][r], p.red_strides[q][r], reduced);
        offset += (rest % size) * stride;
        rest = rest / size;
    }
    return offset;
}

// One invocation per output, the whole reduction: for short reductions with many outputs.
@compute @workgroup_size(THREAD_WG)
fn reduce_thread(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let o = group_index(wid, nwg) * THREAD_WG + lid;
    if o >= p.n_out {
        return;
    }
    let base = strided_offset(o, false);
    var acc = identity();
    for (var r = 0u; r < p.red_len; r++) {
        acc = combine(acc, term(x[base + strided_offset(r, true)], o));
    }
    y[o] = finish(acc);
}

// One workgroup per (output, segment): for long reductions.
@compute @workgroup_size(GROUP_WG)
fn reduce_group(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = group_index(wid, nwg);
    if g >= p.n_out * p.segments {
        return;
    }
    let o = g / p.segments;
    let begin = (g % p.segments) * p.seg_len;
    let end = min(begin + p.seg_len, p.red_len);
    let base = strided_offset(o, false);
    var acc = identity();
    for (var r = begin + lid; r < end; r += GROUP_WG) {
        acc = combine(acc, term(x[base + strided_offset(r, true)], o));
    }
    let total = workgroup_reduce(lid, acc, OP == MAX);
    if lid == 0u {
        y[g] = finish(total);
    }
}
