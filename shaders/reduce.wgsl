// requires: workgroup_reduce.wgsl
// Sum / max over a set of axes. The host splits the input's dimensions into kept ones
// (that index the output) and reduced ones, merging neighbours, and passes both lists
// with their element strides. `scale` multiplies sums (1/len gives the mean).

struct Params {
    n_out: u32,
    red_len: u32,
    kept_ndim: u32,
    red_ndim: u32,
    scale: f32,
    kept_shape: array<vec4<u32>, 2>,
    kept_strides: array<vec4<u32>, 2>,
    red_shape: array<vec4<u32>, 2>,
    red_strides: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

override OP: u32 = 0u;
const SUM: u32 = 0u;
const MAX: u32 = 1u;

const THREAD_WG: u32 = 256u;
const GROUP_WG: u32 = REDUCE_WG;

fn identity() -> f32 {
    if OP == MAX {
        return bitcast<f32>(0xff800000u); // -inf
    }
    return 0.0;
}

fn combine(u: f32, v: f32) -> f32 {
    if OP == MAX {
        return max(u, v);
    }
    return u + v;
}

fn finish(v: f32) -> f32 {
    if OP == SUM {
        return v * p.scale;
    }
    return v;
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

fn kept_offset(index: u32) -> u32 {
    return strided_offset(index, false);
}

fn reduced_offset(index: u32) -> u32 {
    return strided_offset(index, true);
}

// One invocation per output: for short reductions with many outputs.
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
    let base = kept_offset(o);
    var acc = identity();
    for (var r = 0u; r < p.red_len; r++) {
        acc = combine(acc, x[base + reduced_offset(r)]);
    }
    y[o] = finish(acc);
}

// One workgroup per output: for long reductions.
@compute @workgroup_size(GROUP_WG)
fn reduce_group(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let o = group_index(wid, nwg);
    if o >= p.n_out {
        return;
    }
    let base = kept_offset(o);
    var acc = identity();
    for (var r = lid; r < p.red_len; r += GROUP_WG) {
        acc = combine(acc, x[base + reduced_offset(r)]);
    }
    let total = workgroup_reduce(lid, acc, OP == MAX);
    if lid == 0u {
        y[o] = finish(total);
    }
}
