// requires: channel_walk.wgsl
// Batch norm's backward, last pass: dx = a · g + b · (x - mean) + c per channel, with the
// coefficients of batch_norm_grad_coef.wgsl and g the gradient at batch norm's output
// (dy through the fused activation ACT, as in batch_norm_grad_sums.wgsl).

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
@group(0) @binding(3) var<storage, read> coef: array<f32>; // [channels, 4]: a, b, c, mean
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

override ACT: u32 = 0u;

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
    let a = coef[4u * w.channel];
    let b = coef[4u * w.channel + 1u];
    let c = coef[4u * w.channel + 2u];
    let m = coef[4u * w.channel + 3u];
    for (var n = w.n_first; n < w.n_end; n += w.n_step) {
        let base = plane_base(n, w.channel);
        for (var j = w.j_first; j < w.j_end; j += w.j_step) {
            let o = base + j * UNIT;
            dx[o] = a * grad(o) + b * (x[o] - m) + c;
            if UNIT == 4u {
                dx[o + 1u] = a * grad(o + 1u) + b * (x[o + 1u] - m) + c;
                dx[o + 2u] = a * grad(o + 2u) + b * (x[o + 2u] - m) + c;
                dx[o + 3u] = a * grad(o + 3u) + b * (x[o + 3u] - m) + c;
            }
        }
    }
}
