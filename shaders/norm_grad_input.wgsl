// dx of the normalizations in training mode, through the statistics, elementwise:
//   dx = invstd · (w · dy - k · (Σg + xhat · Σg·xhat) / count)
// where the sums come from norm_grad_sums.wgsl over the `count` elements sharing this
// element's statistic. Layer and group norm sum g = w · dy (the weight varies within a
// row), so k = 1; batch norm sums dy alone (one weight per channel) and k = w.

struct Params {
    n: u32,
    stat_div: u32,
    stat_mod: u32,
    affine_div: u32,
    affine_mod: u32,
    count: u32,
    flags: u32,
}

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> mean: array<f32>;
@group(0) @binding(3) var<storage, read> invstd: array<f32>;
@group(0) @binding(4) var<storage, read> weight: array<f32>;
@group(0) @binding(5) var<storage, read> sum_g: array<f32>;
@group(0) @binding(6) var<storage, read> sum_g_xhat: array<f32>;
@group(0) @binding(7) var<storage, read_write> dx: array<f32>;
@group(0) @binding(8) var<uniform> p: Params;

// Bits of p.flags. Without a weight the host binds another buffer in its slot.
const HAS_WEIGHT: u32 = 1u;
const SUMS_UNWEIGHTED: u32 = 2u;

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
    var w = 1.0;
    if (p.flags & HAS_WEIGHT) != 0u {
        w = weight[(i / p.affine_div) % p.affine_mod];
    }
    let k = select(1.0, w, (p.flags & SUMS_UNWEIGHTED) != 0u);
    let inv = invstd[s];
    let xhat = (x[i] - mean[s]) * inv;
    let correction = (sum_g[s] + xhat * sum_g_xhat[s]) / f32(p.count);
    dx[i] = inv * (w * dy[i] - k * correction);
}
