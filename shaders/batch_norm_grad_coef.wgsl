// Batch norm's backward, second pass, one invocation per channel: adds up the segments
// of batch_norm_grad_sums.wgsl into dbias = Σ g and dweight = Σ g · xhat, and writes
// the coefficients of dx = a · g + b · (x - mean) + c for batch_norm_grad_input.wgsl.
// Training (through the batch statistics), with n values per channel:
//   dx = w · invstd · (g - Σg / n - xhat · Σg·xhat / n)
// so a = w · invstd, b = -a · invstd · Σg·xhat / n, c = -a · Σg / n. In evaluation
// (EVAL, frozen statistics) dx = w · invstd · g: b = c = 0.

struct Params {
    channels: u32,
    segments: u32,
    flags: u32,
    count: f32,
}

@group(0) @binding(0) var<storage, read> partial: array<f32>; // [channels, segments, 2]
@group(0) @binding(1) var<storage, read> mean: array<f32>;
@group(0) @binding(2) var<storage, read> invstd: array<f32>;
@group(0) @binding(3) var<storage, read> weight: array<f32>;
@group(0) @binding(4) var<storage, read_write> dweight: array<f32>;
@group(0) @binding(5) var<storage, read_write> dbias: array<f32>;
@group(0) @binding(6) var<storage, read_write> coef: array<f32>; // [channels, 4]: a, b, c, mean
@group(0) @binding(7) var<uniform> p: Params;

override EVAL: bool = false;

// Bit of p.flags. Without a weight the host binds another buffer in its slot.
const HAS_WEIGHT: u32 = 1u;

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
    var sums = vec2<f32>(0.0);
    for (var s = 0u; s < p.segments; s++) {
        let o = 2u * (c * p.segments + s);
        sums += vec2<f32>(partial[o], partial[o + 1u]);
    }
    dbias[c] = sums.x;
    dweight[c] = sums.y;
    let inv = invstd[c];
    var a = inv;
    if (p.flags & HAS_WEIGHT) != 0u {
        a *= weight[c];
    }
    var b = 0.0;
    var k = 0.0;
    if !EVAL {
        b = -a * inv * sums.y / p.count;
        k = -a * sums.x / p.count;
    }
    coef[4u * c] = a;
    coef[4u * c + 1u] = b;
    coef[4u * c + 2u] = k;
    coef[4u * c + 3u] = mean[c];
}
