// requires: depthwise_strips.wgsl
// requires: workgroup_reduce.wgsl
// Depthwise convolution's weight gradient on vec4 rows (see depthwise_strips.wgsl):
// workgroups per (channel, segment of `seg_len` items), an item a range of `chunk_len`
// output chunks of one row. Lanes accumulate dy · (the source under each tap) per tap,
// then the workgroup reduces each tap: dw[channel, ky, kx] = Σ dy[n, channel, oh, ow] ·
// x[n, channel, oh·stride_h - pad_h + ky, ow·STRIDE_W - pad_w + kx]. The host adds up
// the segments' partial sums when a channel has several.

@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> dy: array<vec4<f32>>;
// [channels, segments, KH·KW].
@group(0) @binding(2) var<storage, read_write> partial: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

const WG: u32 = REDUCE_WG;

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let wg = group_index(wid, nwg);
    if wg >= p.total {
        return;
    }
    let channel = wg / p.segments;
    let first = (wg % p.segments) * p.seg_len;
    let last = min(first + p.seg_len, p.items);
    let taps = KH * KW;
    var sums: array<f32, TAPS_MAX>;
    for (var item = first + lid; item < last; item += WG) {
        let r = item / p.row_items;
        let c0 = (item % p.row_items) * p.chunk_len;
        let c1 = min(c0 + p.chunk_len, p.w_dst4);
        let oh = r % p.h_dst;
        let plane = (r / p.h_dst) * p.channels + channel;
        let base = plane * p.h_src * p.w_src4;
        let top = i32(oh * p.stride_h) - i32(p.pad_h);
        var strips: Strips;
        load_strips(&strips, base, top, c0);
        let dy_row = (plane * p.h_dst + oh) * p.w_dst4;
        for (var c = c0; c < c1; c++) {
            if c > c0 {
                slide_strips(&strips, base, top, c);
            }
            let g = dy[dy_row + c];
            for (var ky = 0u; ky < KH; ky++) {
                for (var kx = 0u; kx < KW; kx++) {
                    sums[ky * KW + kx] += dot(g, tap_vec(&strips, ky, kx));
                }
            }
        }
    }
    for (var t = 0u; t < taps; t++) {
        let total = workgroup_sum(lid, sums[t]);
        if lid == 0u {
            partial[wg * taps + t] = total;
        }
    }
}
