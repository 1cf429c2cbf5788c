// Softmax (or log-softmax when LOG) over the last axis, elementwise, from each row's
// maximum m and Σ exp(x - m) (both from reduce.wgsl, which splits long rows so no
// invocation loops past the loop budget): y = exp(x - m) / s, or (x - m) - log s.
// Subtracting the row maximum keeps exp from overflowing.

struct Params {
    n: u32,   // elements
    len: u32, // row length
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> row_max: array<f32>;
@group(0) @binding(2) var<storage, read> row_sum: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

override LOG: bool = false;
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
    let row = i / p.len;
    let shifted = x[i] - row_max[row];
    if LOG {
        y[i] = shifted - log(row_sum[row]);
    } else {
        y[i] = exp(shifted) / row_sum[row];
    }
}
