// requires: workgroup_reduce.wgsl
// Cross-entropy with label smoothing over rows of logits, one workgroup per row (so rows
// of 1000 classes are split across the workgroup, as in softmax.wgsl). With m the row
// maximum and s = Σ exp(x - m), -log p_c = log s - (x_c - m), so
//   loss = log s - (1 - eps)·(x_t - m) - eps·mean_c(x_c - m)       (entry `forward`)
//   dx_c = scale·(exp(x_c - m) / s - eps / C - (1 - eps)·[c == t]) (entry `backward`)
// Shifting by m keeps exp from overflowing and the differences exact for close values.
// `targets` holds each row's class as a u32; the host has checked every one is < C.

struct Params {
    rows: u32,
    classes: u32,
    eps: f32,
    scale: f32, // backward: grad_loss / N
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> targets: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

const WG: u32 = REDUCE_WG;


fn row_max(lid: u32, base: u32) -> f32 {
    var m = bitcast<f32>(0xff800000u); // -inf
    for (var c = lid; c < p.classes; c += WG) {
        m = max(m, x[base + c]);
    }
    return workgroup_reduce(lid, m, true);
}

fn sum_exp(lid: u32, base: u32, m: f32) -> f32 {
    var s = 0.0;
    for (var c = lid; c < p.classes; c += WG) {
        s += exp(x[base + c] - m);
    }
    return workgroup_reduce(lid, s, false);
}

@compute @workgroup_size(WG)
fn forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = group_index(wid, nwg);
    if row >= p.rows {
        return;
    }
    let base = row * p.classes;
    let m = row_max(lid, base);
    let s = sum_exp(lid, base, m);
    var shifted = 0.0;
    for (var c = lid; c < p.classes; c += WG) {
        shifted += x[base + c] - m;
    }
    let mean_shifted = workgroup_reduce(lid, shifted, false) / f32(p.classes);
    if lid == 0u {
        let target_shifted = x[base + targets[row]] - m;
        out[row] = log(s) - (1.0 - p.eps) * target_shifted - p.eps * mean_shifted;
    }
}

@compute @workgroup_size(WG)
fn backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = group_index(wid, nwg);
    if row >= p.rows {
        return;
    }
    let base = row * p.classes;
    let m = row_max(lid, base);
    let s = sum_exp(lid, base, m);
    let t = targets[row];
    let spread = p.eps / f32(p.classes);
    for (var c = lid; c < p.classes; c += WG) {
        let onehot = select(0.0, 1.0 - p.eps, c == t);
        out[base + c] = p.scale * (exp(x[base + c] - m) / s - spread - onehot);
    }
}
