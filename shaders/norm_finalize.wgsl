// invstd = 1 / sqrt(var + eps) per statistic, elementwise, from the biased variance (a
// reduction of reduce.wgsl, which splits long ones so no invocation loops past the loop
// budget): the last step of layer and group norm's statistics, and batch norm's invstd
// from its running variance for the frozen backward.

struct Params {
    n: u32,
    eps: f32,
}

@group(0) @binding(0) var<storage, read> var_biased: array<f32>;
@group(0) @binding(1) var<storage, read_write> invstd: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

const WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = group_index(wid, nwg) * WG + lid;
    if i < p.n {
        invstd[i] = 1.0 / sqrt(var_biased[i] + p.eps);
    }
}
