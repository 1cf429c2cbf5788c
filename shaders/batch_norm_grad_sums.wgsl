// variants: unit1.wgsl unit4.wgsl
// requires: channel_walk.wgsl
// requires: batch_norm_act_grad.wgsl
// Batch norm's backward, first pass: per segment of a channel (see channel_walk.wgsl),
// Σ g and Σ g · xhat, where xhat = (x - mean) · invstd and g is the gradient reaching
// batch norm's output: dy, or with ACT (the fused activation of batch_norm_apply.wgsl)
// dy where the activation passed its input z through and 0 where it clamped: ReLU passes
// where z > 0, ReLU6 where 0 < z < 6 (NaN: nowhere). Training recomputes z from x and the
// forward's scale and shift (MASK_FROM_INPUT), which saves reading y; the frozen backward
// reads it off y, equal to z where the activation passed it.
// batch_norm_grad_coef.wgsl adds up the segments.

@group(0) @binding(0) var<storage, read> dy: array<Unit>;
@group(0) @binding(1) var<storage, read> x: array<Unit>;
// With ACT, the forward's output, unless MASK_FROM_INPUT; else any tensor of units.
@group(0) @binding(2) var<storage, read> y: array<Unit>;
@group(0) @binding(3) var<storage, read> mean: array<f32>;
@group(0) @binding(4) var<storage, read> invstd: array<f32>;
// With ACT and MASK_FROM_INPUT, the forward's scale and shift, [channels, 2]; else any.
@group(0) @binding(5) var<storage, read> scale_shift: array<f32>;
// [channels, segments, 2]: Σ g, Σ g · xhat.
@group(0) @binding(6) var<storage, read_write> partial: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

var<workgroup> scratch: array<vec2<f32>, CHANNEL_WG>;

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
    var ss = vec2<f32>(0.0);
    if MASK_FROM_INPUT {
        ss = vec2<f32>(scale_shift[2u * w.channel], scale_shift[2u * w.channel + 1u]);
    }
    let m = mean[w.channel];
    let inv = invstd[w.channel];
    var acc = vec2<f32>(0.0);
    for (var n = w.n_first; n < w.n_end; n += w.n_step) {
        let base = plane_base(n, w.channel);
        for (var j = w.j_first; j < w.j_end; j += w.j_step) {
            let o = base + j;
            let x_o = x[o];
            let g = grad(o, dy[o], x_o, ss);
            let xhat = (x_o - Unit(m)) * inv;
            acc += vec2<f32>(unit_sum(g), unit_sum(g * xhat));
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
