// Cross-entropy with label smoothing over rows of logits, from each row's maximum m and
// s = Σ exp(x - m) (reduce.wgsl, which splits long rows so no invocation loops past the
// loop budget). With -log p_c = log s - (x_c - m):
//   loss = log s - (1 - eps)·(x_t - m) - eps·mean_c(x_c - m)        (entry `rows`)
//   dx_c = scale·(exp(x_c - m) / s - eps / C - (1 - eps)·[c == t])  (entry `backward`)
// Shifting by m keeps exp from overflowing and the differences exact for close values.
// `targets` holds each row's class as a u32; the host has checked every one is < C.

struct Params {
    n: u32,       // invocations: rows (rows) or elements (backward)
    classes: u32,
    eps: f32,
    scale: f32,   // backward: grad_loss / N
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> targets: array<u32>;
@group(0) @binding(2) var<storage, read> row_max: array<f32>;
@group(0) @binding(3) var<storage, read> row_sum: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
// The two entry points differ from binding 5 on (each pipeline's layout holds only the
// bindings its entry point uses, and the host binds them in order): `rows` reads
// Σ_c (x_c - m) per row (used only when eps > 0) and takes its parameters at 6;
// `backward` takes its parameters at 5.
@group(0) @binding(5) var<storage, read> row_shifted: array<f32>;
@group(0) @binding(6) var<uniform> rows_p: Params;
@group(0) @binding(5) var<uniform> backward_p: Params;

const WG: u32 = 256u;

// The loss of each row.
@compute @workgroup_size(WG)
fn rows(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let p = rows_p;
    let row = group_index(wid, nwg) * WG + lid;
    if row >= p.n {
        return;
    }
    let m = row_max[row];
    let target_shifted = x[row * p.classes + targets[row]] - m;
    var loss = log(row_sum[row]) - (1.0 - p.eps) * target_shifted;
    // Only with smoothing: a -inf logit makes the smoothing term infinite, and without
    // smoothing it must not turn the loss into 0 · inf = NaN (PyTorch gives a finite loss).
    if p.eps > 0.0 {
        loss -= p.eps * row_shifted[row] / f32(p.classes);
    }
    out[row] = loss;
}

// The gradient of the mean loss with respect to each logit.
@compute @workgroup_size(WG)
fn backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let p = backward_p;
    let i = group_index(wid, nwg) * WG + lid;
    if i >= p.n {
        return;
    }
    let row = i / p.classes;
    let c = i % p.classes;
    let onehot = select(0.0, 1.0 - p.eps, c == targets[row]);
    let prob = exp(x[i] - row_max[row]) / row_sum[row];
    out[i] = p.scale * (prob - p.eps / f32(p.classes) - onehot);
}
