// The last step of the normalizations' statistics, per statistic (elementwise): from the
// mean and the biased variance (both reductions of reduce.wgsl, which splits long ones so
// no invocation loops past the loop budget), invstd = 1 / sqrt(var + eps) and, with
// RUNNING (batch norm in training), the new running estimates. PyTorch's running variance
// takes the unbiased variance, count / (count - 1) times the biased one.

struct Params {
    n: u32,
    eps: f32,
    momentum: f32,
    unbias: f32, // count / (count - 1)
}

@group(0) @binding(0) var<storage, read> mean: array<f32>;
@group(0) @binding(1) var<storage, read> var_biased: array<f32>;
@group(0) @binding(2) var<storage, read_write> invstd: array<f32>;
// With RUNNING only; without, the host binds other buffers here, never touched.
@group(0) @binding(3) var<storage, read> running_mean: array<f32>;
@group(0) @binding(4) var<storage, read> running_var: array<f32>;
@group(0) @binding(5) var<storage, read_write> new_running_mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> new_running_var: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

override RUNNING: bool = false;

const WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = group_index(wid, nwg) * WG + lid;
    if i >= p.n {
        return;
    }
    invstd[i] = 1.0 / sqrt(var_biased[i] + p.eps);
    if RUNNING {
        let m = p.momentum;
        new_running_mean[i] = (1.0 - m) * running_mean[i] + m * mean[i];
        new_running_var[i] = (1.0 - m) * running_var[i] + m * var_biased[i] * p.unbias;
    }
}
