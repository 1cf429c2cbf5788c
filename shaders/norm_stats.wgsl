// requires: workgroup_reduce.wgsl
// Layer and group norm statistics: the mean and 1 / sqrt(biased variance + eps) of each
// contiguous row (layer norm: the normalized trailing dims of one sample; group norm: one
// (sample, group)). One workgroup per row. Two passes, the mean and then the sum of squared
// deviations from it, because E[x²] - E[x]² cancels catastrophically in f32 when the mean
// is large next to the spread.

struct Params {
    rows: u32,
    len: u32,
    eps: f32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> mean: array<f32>;
@group(0) @binding(2) var<storage, read_write> invstd: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

const WG: u32 = REDUCE_WG;


@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = group_index(wid, nwg);
    if row >= p.rows {
        return;
    }
    let base = row * p.len;
    var s = 0.0;
    for (var i = lid; i < p.len; i += WG) {
        s += x[base + i];
    }
    let mu = workgroup_sum(lid, s) / f32(p.len);
    var q = 0.0;
    for (var i = lid; i < p.len; i += WG) {
        let d = x[base + i] - mu;
        q += d * d;
    }
    let m2 = workgroup_sum(lid, q);
    if lid == 0u {
        mean[row] = mu;
        invstd[row] = 1.0 / sqrt(m2 / f32(p.len) + p.eps);
    }
}
