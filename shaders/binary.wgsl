// Binary elementwise ops with NumPy/PyTorch broadcasting. The host merges dimensions so
// that `ndim` is as small as possible, and sets BROADCAST = false when both operands have
// the output's shape (then no index arithmetic is needed).

struct Params {
    n: u32,
    ndim: u32,
    // Output shape and the operands' element strides (0 on a broadcast dimension), up to
    // 8 dimensions, innermost last; packed 4 to a vec4 for uniform layout rules.
    shape: array<vec4<u32>, 2>,
    a_strides: array<vec4<u32>, 2>,
    b_strides: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

override OP: u32 = 0u;
override BROADCAST: bool = true;
const ADD: u32 = 0u;
const SUB: u32 = 1u;
const MUL: u32 = 2u;
const DIV: u32 = 3u;

const WG: u32 = 256u;

fn combine(u: f32, v: f32) -> f32 {
    switch OP {
        case ADD: { return u + v; }
        case SUB: { return u - v; }
        case MUL: { return u * v; }
        case DIV: { return u / v; }
        default: { return u; }
    }
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
    if !BROADCAST {
        out[i] = combine(a[i], b[i]);
        return;
    }
    var rest = i;
    var ia = 0u;
    var ib = 0u;
    for (var d = i32(p.ndim) - 1; d >= 0; d--) {
        let q = u32(d) / 4u;
        let r = u32(d) % 4u;
        let size = p.shape[q][r];
        let coord = rest % size;
        rest = rest / size;
        ia += coord * p.a_strides[q][r];
        ib += coord * p.b_strides[q][r];
    }
    out[i] = combine(a[ia], b[ib]);
}
