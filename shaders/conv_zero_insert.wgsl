// The gradient of a strided convolution's output spread out to stride 1: up[n, c, i·sh,
// j·sw] = dy[n, c, i, j], one invocation per element of dy; the host fills `up` with
// zeros first. The input gradient is then a stride-1 correlation of `up` with the
// flipped kernel (conv_direct.wgsl's FLIP), whose sliding window is fast, where gathering
// the taps that reach each input pixel divided indices per element.

struct Params {
    total: u32, // elements of dy
    ho: u32,
    wo: u32,
    hu: u32,
    wu: u32,
    sh: u32,
    sw: u32,
}

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read_write> up: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

const WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = group_index(wid, nwg) * WG + lid;
    if i >= p.total {
        return;
    }
    let col = i % p.wo;
    let rows = i / p.wo;
    let row = rows % p.ho;
    let plane = rows / p.ho;
    up[(plane * p.hu + row * p.sh) * p.wu + col * p.sw] = dy[i];
}
