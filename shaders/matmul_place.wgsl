// The last step of a split-K product: `t` holds the finished products ([batches, m, n],
// dense: the K-slices' partial results already summed by the host); each element is
// written to its place in C (matrix z at c_offset + z·c_stride, rows c_row_stride apart),
// with the per-row bias the GEMM epilogue would have added.

struct Params {
    total: u32, // batches · m · n
    m: u32,
    n: u32,
    c_offset: u32,
    c_stride: u32,
    c_row_stride: u32,
    bias_mod: u32,
}

@group(0) @binding(0) var<storage, read> t: array<f32>;
@group(0) @binding(1) var<storage, read> bias: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

override HAS_BIAS: bool = false;

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
    let z = i / (p.m * p.n);
    let row = (i / p.n) % p.m;
    let col = i % p.n;
    var v = t[i];
    if HAS_BIAS {
        v += bias[(z % p.bias_mod) * p.m + row];
    }
    c[p.c_offset + z * p.c_stride + row * p.c_row_stride + col] = v;
}
