// Dropout backward: dx = grad_y · mask · scale, with the mask the forward returned.

struct Params {
    n: u32,
    scale: f32, // 1 / (1 - p), or 0 when p = 1
}

@group(0) @binding(0) var<storage, read> grad_y: array<f32>;
@group(0) @binding(1) var<storage, read> mask: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

const WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = group_index(wid, nwg) * WG + lid;
    if i < p.n {
        dx[i] = grad_y[i] * mask[i] * p.scale;
    }
}
