// Strided slab copy for concat and split: `n` elements in rows of `row_len` contiguous
// elements, row r read from src at src_offset + r·src_stride and written to dst at
// dst_offset + r·dst_stride. Viewing a tensor as [outer, axis, inner], a slab along the
// axis is `outer` such rows of (its axis length)·inner elements.

struct Params {
    n: u32,
    row_len: u32,
    src_stride: u32,
    src_offset: u32,
    dst_stride: u32,
    dst_offset: u32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
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
    let row = i / p.row_len;
    let col = i - row * p.row_len;
    dst[p.dst_offset + row * p.dst_stride + col] = src[p.src_offset + row * p.src_stride + col];
}
