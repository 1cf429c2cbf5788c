// requires: workgroup_reduce.wgsl
// Softmax (or log-softmax when LOG) over the last axis: one workgroup per row, so long
// rows (1000 classes) are split across the workgroup. Subtracting the row maximum keeps
// exp from overflowing.

struct Params {
    rows: u32,
    len: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

override LOG: bool = false;
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
    var m = bitcast<f32>(0xff800000u); // -inf
    for (var i = lid; i < p.len; i += WG) {
        m = max(m, x[base + i]);
    }
    let row_max = workgroup_reduce(lid, m, true);
    var s = 0.0;
    for (var i = lid; i < p.len; i += WG) {
        s += exp(x[base + i] - row_max);
    }
    let total = workgroup_reduce(lid, s, false);
    let log_total = log(total);
    for (var i = lid; i < p.len; i += WG) {
        let shifted = x[base + i] - row_max;
        if LOG {
            y[base + i] = shifted - log_total;
        } else {
            y[base + i] = exp(shifted) / total;
        }
    }
}
