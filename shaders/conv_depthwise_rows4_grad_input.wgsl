// requires: depthwise_strips.wgsl
// The input gradient of a depthwise convolution of column stride 2 (any row stride) on
// vec4 rows (see depthwise_strips.wgsl), gathered straight from dy: dx[ih, iw] =
// Σ dy[oh, ow] · w[ky, kx] over the taps with ih = oh·stride_h - pad_h + ky and
// iw = 2·ow - PAD_W + kx. Spreading dy out to stride 1 first (conv_zero_insert.wgsl)
// costs a fill, a scatter, and a convolution over four times the pixels, three quarters
// of them zeros.
//
// Here `src` is dy (h_src × w_src4 chunks per plane) and `dst` dx (h_dst × w_dst4). For
// dx row ih, kernel row ky meets dy row (ih + pad_h - ky) / stride_h when that divides
// and lies in dy. Columns go in pairs of dx chunks: chunks 2m and 2m + 1 read dy chunks
// m - 1, m and m + 1 (a strip of 3 per kernel row), and output column 4c + k, tap kx meets
// dy column 2c + (k + PAD_W - kx) / 2 when k + PAD_W - kx is even: which taps those are
// is known when the kernel is built. The next pair slides the strip one chunk.
//
// One invocation per `row_items` consecutive dx rows of the batch's `items` (they share
// a plane's weights), or per range of `seg_len` pairs of one row when a row is longer
// than the loop budget allows.

@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> wts: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> p: Params;

const WG: u32 = 64u;

// The 4 outputs of chunk 2m + half from the strips of dy chunks m - 1, m, m + 1.
fn chunk_grad(s: ptr<function, Strips>, wt: ptr<function, array<f32, TAPS_MAX>>, half: u32) -> vec4<f32> {
    var acc = vec4<f32>(0.0);
    for (var ky = 0u; ky < KH; ky++) {
        for (var kx = 0u; kx < KW; kx++) {
            let w = (*wt)[ky * KW + kx];
            for (var k = 0u; k < 4u; k++) {
                let j = i32(k + PAD_W) - i32(kx);
                if (j & 1) == 0 {
                    let at = u32(4 + 2 * i32(half) + j / 2);
                    acc[k] += (*s)[ky][at / 4u][at % 4u] * w;
                }
            }
        }
    }
    return acc;
}

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
    let work = row_work(i, (p.w_dst4 + 1u) / 2u);
    let m0 = work.step0;
    let taps = KH * KW;
    var wt: array<f32, TAPS_MAX>;
    var loaded = p.channels; // no channel's weights yet
    for (var r = work.first; r < work.end; r++) {
        let ih = r % p.h_dst;
        let plane = r / p.h_dst;
        let channel = plane % p.channels;
        if channel != loaded {
            loaded = channel;
            for (var t = 0u; t < taps; t++) {
                wt[t] = wts[channel * taps + t];
            }
        }
        let base = plane * p.h_src * p.w_src4;
        // The dy row each kernel row meets, or -1 (zeros) where none does.
        var rows: array<i32, KH_MAX>;
        for (var ky = 0u; ky < KH; ky++) {
            let t = i32(ih + p.pad_h) - i32(ky);
            let oh = t / i32(p.stride_h);
            let meets = t >= 0 && oh * i32(p.stride_h) == t;
            rows[ky] = select(-1, oh, meets);
        }
        var strips: Strips;
        for (var ky = 0u; ky < KH; ky++) {
            for (var q = 0u; q < 3u; q++) {
                strips[ky][q] = chunk_at(base, rows[ky], i32(m0 + q) - 1);
            }
        }
        let dst_row = (plane * p.h_dst + ih) * p.w_dst4;
        for (var m = m0; m < work.step1; m++) {
            if m > m0 {
                for (var ky = 0u; ky < KH; ky++) {
                    strips[ky][0] = strips[ky][1];
                    strips[ky][1] = strips[ky][2];
                    strips[ky][2] = chunk_at(base, rows[ky], i32(m) + 1);
                }
            }
            dst[dst_row + 2u * m] = chunk_grad(&strips, &wt, 0u);
            if 2u * m + 1u < p.w_dst4 {
                dst[dst_row + 2u * m + 1u] = chunk_grad(&strips, &wt, 1u);
            }
        }
    }
}
