// The normalization itself, elementwise: y = (x - mean) · invstd · weight + bias, for
// layer and group norm. Which statistic and which affine parameter an element
// uses is (i / div) % mod of its flat index i, set by the host per op. Batch norm has
// kernels of its own that walk channels (batch_norm_apply.wgsl).

struct Params {
    n: u32,
    stat_div: u32,
    stat_mod: u32,
    affine_div: u32,
    affine_mod: u32,
    flags: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> mean: array<f32>;
@group(0) @binding(2) var<storage, read> invstd: array<f32>;
@group(0) @binding(3) var<storage, read> weight: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

// Bits of p.flags. Without a weight (bias) the host binds some other buffer in its slot,
// which is then never read.
const HAS_WEIGHT: u32 = 1u;
const HAS_BIAS: u32 = 2u;

const WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = group_index(wid, nwg) * WG + lid;
    if i >= p.n {
        return;
    }
    let s = (i / p.stat_div) % p.stat_mod;
    let a = (i / p.affine_div) % p.affine_mod;
    let inv = invstd[s];
    var w = 1.0;
    if (p.flags & HAS_WEIGHT) != 0u {
        w = weight[a];
    }
    var b = 0.0;
    if (p.flags & HAS_BIAS) != 0u {
        b = bias[a];
    }
    y[i] = (x[i] - mean[s]) * inv * w + b;
}
