// variants: unit1.wgsl unit4.wgsl
// requires: channel_walk.wgsl
// Batch norm's statistics, first pass: the (count, mean, M2) of one segment of one
// channel (see channel_walk.wgsl), M2 being the sum of squared deviations from the mean.
// Each lane keeps its own and merges each unit in (Chan et al.'s pairwise update), then
// the workgroup merges its lanes in a tree. No E[x²] - E[x]²: that cancels in f32 when
// the mean is large next to the spread. batch_norm_stats.wgsl merges the segments.

@group(0) @binding(0) var<storage, read> x: array<Unit>;
// [channels, segments, 3]: count, mean, M2.
@group(0) @binding(1) var<storage, read_write> partial: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

var<workgroup> scratch: array<vec3<f32>, CHANNEL_WG>;

// (count, mean, M2) of a and b together; either may be empty.
fn merge(a: vec3<f32>, b: vec3<f32>) -> vec3<f32> {
    let n = a.x + b.x;
    if n == 0.0 {
        return a;
    }
    let d = b.y - a.y;
    let f = b.x / n;
    return vec3<f32>(n, a.y + d * f, a.z + b.z + d * d * a.x * f);
}

// (count, mean, M2) of the unit at o.
fn unit_moments(o: u32) -> vec3<f32> {
    let v = x[o];
    let m = unit_sum(v) / f32(UNIT);
    let d = v - Unit(m);
    return vec3<f32>(f32(UNIT), m, unit_sum(d * d));
}

@compute @workgroup_size(CHANNEL_WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = group_index(wid, nwg);
    if g >= p.channels * p.segments {
        return;
    }
    let w = channel_walk(g, lid);
    var acc = vec3<f32>(0.0);
    for (var n = w.n_first; n < w.n_end; n += w.n_step) {
        let base = plane_base(n, w.channel);
        for (var j = w.j_first; j < w.j_end; j += w.j_step) {
            acc = merge(acc, unit_moments(base + j));
        }
    }
    scratch[lid] = acc;
    workgroupBarrier();
    for (var half = CHANNEL_WG / 2u; half > 0u; half /= 2u) {
        if lid < half {
            scratch[lid] = merge(scratch[lid], scratch[lid + half]);
        }
        workgroupBarrier();
    }
    if lid == 0u {
        let r = scratch[0];
        partial[3u * g] = r.x;
        partial[3u * g + 1u] = r.y;
        partial[3u * g + 2u] = r.z;
    }
}
