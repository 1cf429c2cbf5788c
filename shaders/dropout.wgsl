// Dropout forward: y = x · mask · scale (x · scale where the element is kept, x · 0 where
// dropped), and the 0/1 mask. Whether element i is kept is a counter-based hash of
// (seed, i), so the mask needs no upload and the same seed redraws the same mask on every
// adapter. src/ops/dropout.rs mirrors the hash on the CPU (`dropout_mask_cpu`); the two
// must change together.

struct Params {
    n: u32,
    seed_lo: u32,
    seed_hi: u32,
    // Kept when the hash's top 24 bits are >= threshold = round(p · 2^24); 2^24 drops all.
    threshold: u32,
    scale: f32, // 1 / (1 - p)
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> mask: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

const WG: u32 = 256u;

// The PCG output permutation as a 32-bit hash (Jarzynski & Olano, "Hash Functions for GPU
// Rendering", 2020): a bijection with good avalanche, so distinct counters never collide.
fn pcg(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

// Two keys from the seed's halves, then two rounds over the index. Each round is a
// bijection, so within one seed no two elements share a hash; with one round, two seeds'
// masks would be the same sequence read in an order permuted by XOR (i ^ k0 vs i ^ k0').
fn keep(i: u32) -> bool {
    let k0 = pcg(p.seed_lo);
    let k1 = pcg(p.seed_hi ^ k0);
    let h = pcg(pcg(i ^ k0) ^ k1);
    return (h >> 8u) >= p.threshold;
}

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
    let kept = keep(i);
    // x · mask · scale, as PyTorch (and as the backward pass multiplies): a dropped
    // infinity or NaN gives NaN, not 0.
    y[i] = x[i] * select(0.0, p.scale, kept);
    mask[i] = select(0.0, 1.0, kept);
}
