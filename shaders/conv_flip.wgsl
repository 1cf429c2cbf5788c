// The weight of the convolution that computes another one's input gradient at stride 1:
// per group, input and output channels swapped and the kernel rotated 180°:
// out[g·cin_g + i][o][ky][kx] = w[g·cout_g + o][i][kh - 1 - ky][kw - 1 - kx].

struct Params {
    total: u32,
    cin_g: u32,
    cout_g: u32,
    kh: u32,
    kw: u32,
}

@group(0) @binding(0) var<storage, read> w: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

const WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = group_index(wid, nwg) * WG + lid;
    if e >= p.total {
        return;
    }
    let taps = p.kh * p.kw;
    let t = e % taps;
    let o = (e / taps) % p.cout_g;
    let ci = e / (taps * p.cout_g); // g·cin_g + i
    let g = ci / p.cin_g;
    let i = ci % p.cin_g;
    out[e] = w[((g * p.cout_g + o) * p.cin_g + i) * taps + (taps - 1u - t)];
}
