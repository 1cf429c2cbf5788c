// requires: channel_walk.wgsl
// Batch norm's backward, first pass: per segment of a channel (see channel_walk.wgsl),
// Σ g and Σ g · xhat, where xhat = (x - mean) · invstd and g is the gradient reaching
// batch norm's output: dy, or with ACT (the fused activation of batch_norm_apply.wgsl)
// dy where the activation passed its input through and 0 where it clamped. That is read
// off the saved output y: ReLU passes where y > 0, ReLU6 where 0 < y < 6 (NaN: nowhere).
// batch_norm_grad_coef.wgsl adds up the segments.

struct Params {
    channels: u32,
    plane: u32,
    plane_units: u32,
    lane_shift: u32,
    samples: u32,
    seg_samples: u32,
    pos_segs: u32,
    seg_units: u32,
    segments: u32,
}

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>; // with ACT; else any buffer
@group(0) @binding(3) var<storage, read> mean: array<f32>;
@group(0) @binding(4) var<storage, read> invstd: array<f32>;
// [channels, segments, 2]: Σ g, Σ g · xhat.
@group(0) @binding(5) var<storage, read_write> partial: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

override ACT: u32 = 0u;

var<workgroup> scratch: array<vec2<f32>, CHANNEL_WG>;

// The gradient at batch norm's output for one element: dy through the activation.
fn grad(o: u32) -> f32 {
    if ACT == 1u {
        return select(0.0, dy[o], y[o] > 0.0);
    }
    if ACT == 2u {
        let v = y[o];
        return select(0.0, dy[o], v > 0.0 && v < 6.0);
    }
    return dy[o];
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
    let m = mean[w.channel];
    let inv = invstd[w.channel];
    var acc = vec2<f32>(0.0);
    for (var n = w.n_first; n < w.n_end; n += w.n_step) {
        let base = plane_base(n, w.channel);
        for (var j = w.j_first; j < w.j_end; j += w.j_step) {
            let o = base + j * UNIT;
            if UNIT == 4u {
                let gv = vec4<f32>(grad(o), grad(o + 1u), grad(o + 2u), grad(o + 3u));
                let xhat = (vec4<f32>(x[o], x[o + 1u], x[o + 2u], x[o + 3u]) - m) * inv;
                acc += vec2<f32>(gv.x + gv.y + gv.z + gv.w, dot(gv, xhat));
            } else {
                let gv = grad(o);
                acc += vec2<f32>(gv, gv * (x[o] - m) * inv);
            }
        }
    }
    scratch[lid] = acc;
    workgroupBarrier();
    for (var half = CHANNEL_WG / 2u; half > 0u; half /= 2u) {
        if lid < half {
            scratch[lid] += scratch[lid + half];
        }
        workgroupBarrier();
    }
    if lid == 0u {
        partial[2u * g] = scratch[0].x;
        partial[2u * g + 1u] = scratch[0].y;
    }
}
