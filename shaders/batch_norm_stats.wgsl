// Batch norm's statistics, second pass, one invocation per channel. In training it merges
// the channel's segments from batch_norm_moments.wgsl into the batch mean and biased
// variance, saves mean and invstd = 1 / sqrt(var + eps), and updates the running
// statistics (the running variance takes the unbiased variance, count / (count - 1) times
// the biased one, as PyTorch). In evaluation (EVAL) the statistics are the running ones.
// Either way it folds the affine parameters in: the apply pass computes x · scale + shift.

struct Params {
    channels: u32,
    segments: u32,
    flags: u32,
    eps: f32,
    momentum: f32,
    unbias: f32, // count / (count - 1)
}

@group(0) @binding(0) var<storage, read> partial: array<f32>; // [channels, segments, 3]; not with EVAL
@group(0) @binding(1) var<storage, read> running_mean: array<f32>;
@group(0) @binding(2) var<storage, read> running_var: array<f32>;
@group(0) @binding(3) var<storage, read> weight: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
// [channels, 2]: scale, shift.
@group(0) @binding(5) var<storage, read_write> coef: array<f32>;
// Training only; in evaluation the host binds other buffers here, never touched.
@group(0) @binding(6) var<storage, read_write> save_mean: array<f32>;
@group(0) @binding(7) var<storage, read_write> save_invstd: array<f32>;
@group(0) @binding(8) var<storage, read_write> new_running_mean: array<f32>;
@group(0) @binding(9) var<storage, read_write> new_running_var: array<f32>;
@group(0) @binding(10) var<uniform> p: Params;

override EVAL: bool = false;

// Bits of p.flags. Without a weight (bias) the host binds another buffer in its slot.
const HAS_WEIGHT: u32 = 1u;
const HAS_BIAS: u32 = 2u;

const WG: u32 = 64u;

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let c = group_index(wid, nwg) * WG + lid;
    if c >= p.channels {
        return;
    }
    var mean = running_mean[c];
    var invstd = 1.0 / sqrt(running_var[c] + p.eps);
    if !EVAL {
        // Chan et al.'s pairwise merge, as in batch_norm_moments.wgsl.
        var acc = vec3<f32>(0.0);
        for (var s = 0u; s < p.segments; s++) {
            let o = 3u * (c * p.segments + s);
            let b = vec3<f32>(partial[o], partial[o + 1u], partial[o + 2u]);
            let n = acc.x + b.x;
            if n > 0.0 {
                let d = b.y - acc.y;
                let f = b.x / n;
                acc = vec3<f32>(n, acc.y + d * f, acc.z + b.z + d * d * acc.x * f);
            }
        }
        mean = acc.y;
        let var_biased = acc.z / acc.x;
        invstd = 1.0 / sqrt(var_biased + p.eps);
        save_mean[c] = mean;
        save_invstd[c] = invstd;
        let m = p.momentum;
        new_running_mean[c] = (1.0 - m) * running_mean[c] + m * mean;
        new_running_var[c] = (1.0 - m) * running_var[c] + m * var_biased * p.unbias;
    }
    var scale = invstd;
    if (p.flags & HAS_WEIGHT) != 0u {
        scale *= weight[c];
    }
    var shift = -mean * scale;
    if (p.flags & HAS_BIAS) != 0u {
        shift += bias[c];
    }
    coef[2u * c] = scale;
    coef[2u * c + 1u] = shift;
}
