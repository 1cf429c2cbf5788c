// variants: unit1.wgsl unit4.wgsl
// requires: channel_walk.wgsl
// requires: batch_norm_act_grad.wgsl
// Batch norm's backward, last pass: dx = a · g + b · (x - mean) + c per channel, with the
// coefficients of batch_norm_grad_coef.wgsl and g the gradient at batch norm's output
// (dy through the fused activation ACT, read off z or y as in batch_norm_grad_sums.wgsl).

// read_write because dx may be this very buffer (batch_norm::backward's `reuse`): each
// element is read, then written by the same invocation. A fresh dx costs lavapipe a
// read of every line it writes (write-allocate), about as much as a third input.
@group(0) @binding(0) var<storage, read_write> dy: array<Unit>;
@group(0) @binding(1) var<storage, read> x: array<Unit>;
// With ACT, the forward's output, unless MASK_FROM_INPUT; else any tensor of units.
@group(0) @binding(2) var<storage, read> y: array<Unit>;
@group(0) @binding(3) var<storage, read> coef: array<f32>; // [channels, 4]: a, b, c, mean
// With ACT and MASK_FROM_INPUT, the forward's scale and shift, [channels, 2]; else any.
@group(0) @binding(4) var<storage, read> scale_shift: array<f32>;
// dy's buffer, or another.
@group(0) @binding(5) var<storage, read_write> dx: array<Unit>;
@group(0) @binding(6) var<uniform> p: Params;

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
    let a = coef[4u * w.channel];
    let b = coef[4u * w.channel + 1u];
    let c = coef[4u * w.channel + 2u];
    let m = coef[4u * w.channel + 3u];
    for (var n = w.n_first; n < w.n_end; n += w.n_step) {
        let base = plane_base(n, w.channel);
        for (var j = w.j_first; j < w.j_end; j += w.j_step) {
            let o = base + j;
            let x_o = x[o];
            dx[o] = a * grad(o, dy[o], x_o, ss) + b * (x_o - Unit(m)) + c;
        }
    }
}
