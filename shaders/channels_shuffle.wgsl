// Channel shuffle as a transpose of the middle two dims: x viewed as [A, B, C, D] becomes
// y of shape [A, C, B, D]. ShuffleNet's shuffle of [N, g·k, S] is B = g, C = k; its
// inverse swaps B and C.

struct Params {
    n: u32,
    b: u32,
    c: u32,
    d: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

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
    // i indexes y as [a, c, b, d].
    let d = i % p.d;
    let rest = i / p.d;
    let b = rest % p.b;
    let a_c = rest / p.b; // a · C + c
    let a = a_c / p.c;
    let c = a_c - a * p.c;
    y[i] = x[((a * p.b + b) * p.c + c) * p.d + d];
}
