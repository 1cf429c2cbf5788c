// requires: workgroup_reduce.wgsl
// Batch norm statistics in training: per channel of an [N, C, S] input, the batch mean,
// 1 / sqrt(biased variance + eps), and the new running estimates (PyTorch: the running
// variance takes the unbiased variance, n / (n - 1) times the biased one). One workgroup
// per channel; two passes (mean, then squared deviations) for accuracy in f32.

struct Params {
    channels: u32,
    spatial: u32,
    count: u32, // N · S values per channel, at least 2 (checked on the host)
    eps: f32,
    momentum: f32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> running_mean: array<f32>;
@group(0) @binding(2) var<storage, read> running_var: array<f32>;
@group(0) @binding(3) var<storage, read_write> mean: array<f32>;
@group(0) @binding(4) var<storage, read_write> invstd: array<f32>;
@group(0) @binding(5) var<storage, read_write> new_running_mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> new_running_var: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

const WG: u32 = REDUCE_WG;


// Offset of the k-th value of channel c: sample k / S, position k % S.
fn offset(c: u32, k: u32) -> u32 {
    return ((k / p.spatial) * p.channels + c) * p.spatial + k % p.spatial;
}

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let c = group_index(wid, nwg);
    if c >= p.channels {
        return;
    }
    var s = 0.0;
    for (var k = lid; k < p.count; k += WG) {
        s += x[offset(c, k)];
    }
    let mu = workgroup_sum(lid, s) / f32(p.count);
    var q = 0.0;
    for (var k = lid; k < p.count; k += WG) {
        let d = x[offset(c, k)] - mu;
        q += d * d;
    }
    let m2 = workgroup_sum(lid, q);
    if lid == 0u {
        let n = f32(p.count);
        mean[c] = mu;
        invstd[c] = 1.0 / sqrt(m2 / n + p.eps);
        let m = p.momentum;
        new_running_mean[c] = (1.0 - m) * running_mean[c] + m * mu;
        new_running_var[c] = (1.0 - m) * running_var[c] + m * (m2 / (n - 1.0));
    }
}
