// Packs a (possibly transposed, possibly batched) matrix into the layout the matmul
// kernels read: [batch, rows, k4] of vec4, K contiguous, zero-padded to a multiple of 4.
// `row_stride` and `col_stride` describe where element (row, k) sits in the source, so one
// kernel serves A, Aᵀ, B and Bᵀ.

struct Params {
    total: u32, // batch * rows * k4
    offset: u32, // of the first matrix in the source, in floats
    rows: u32,
    cols: u32,
    k4: u32,
    batch_stride: u32,
    row_stride: u32,
    col_stride: u32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;
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
    let q = i % p.k4;
    let row = (i / p.k4) % p.rows;
    let batch = i / (p.k4 * p.rows);
    let base = p.offset + batch * p.batch_stride + row * p.row_stride;
    var v = vec4<f32>(0.0);
    for (var j = 0u; j < 4u; j++) {
        let col = q * 4u + j;
        if col < p.cols {
            v[j] = src[base + col * p.col_stride];
        }
    }
    dst[i] = v;
}
