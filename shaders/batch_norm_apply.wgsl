// variants: unit1.wgsl unit4.wgsl
// requires: channel_walk.wgsl
// Batch norm's normalization, y = act(x · scale + shift) per channel, scale and shift
// from batch_norm_stats.wgsl (the statistics and the affine parameters folded together).
// ACT fuses the activation that follows batch norm in most networks, saving a pass over
// the tensor each way: 0 none, 1 ReLU, 2 ReLU6; NaN stays NaN, as in PyTorch.

@group(0) @binding(0) var<storage, read> x: array<Unit>;
@group(0) @binding(1) var<storage, read> coef: array<f32>; // [channels, 2]: scale, shift
@group(0) @binding(2) var<storage, read_write> y: array<Unit>;
@group(0) @binding(3) var<uniform> p: Params;

override ACT: u32 = 0u;

fn act(v: Unit) -> Unit {
    var r = v;
    if ACT == 1u {
        r = max(v, Unit(0.0));
    } else if ACT == 2u {
        r = clamp(v, Unit(0.0), Unit(6.0));
    }
    // WGSL leaves max and clamp of NaN to the implementation.
    return select(r, v, unit_is_nan(v));
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
    let scale = coef[2u * w.channel];
    let shift = coef[2u * w.channel + 1u];
    for (var n = w.n_first; n < w.n_end; n += w.n_step) {
        let base = plane_base(n, w.channel);
        for (var j = w.j_first; j < w.j_end; j += w.j_step) {
            y[base + j] = act(x[base + j] * scale + shift);
        }
    }
}
