// Depthwise convolution, fast path (dilation 1): each invocation slides a KH × KW window
// of input values along one row, so every input value is loaded once per row instead of
// once per tap, and the weights sit in registers. KH, KW and the column stride SW are
// override constants, so the loops unroll and the window lives in registers.
//
// `forward` computes dst[n, c, oh, :] = Σ src[n, c / mult, oh·stride_h - pad_h + ky,
// ow·SW - pad_w + kx] · w[c, ky, kx]. With FLIP (and mult 1, stride 1, padding k - 1 - p)
// the same loop is the input gradient: a correlation with the flipped kernel.
// `weight_grad` gives each channel a workgroup that slides the same window over the input
// rows while accumulating dy · window into KH·KW sums, then reduces them.

struct Params {
    total: u32, // rows (forward) or channels (weight_grad)
    n: u32,
    c_src: u32,
    h_src: u32,
    w_src: u32,
    c_dst: u32,
    h_dst: u32,
    w_dst: u32,
    stride_h: u32,
    pad_h: u32,
    pad_w: u32,
    mult: u32, // dst channels per src channel
}

// forward: (src, weight, dst); weight_grad: (x, dy, dw).
@group(0) @binding(0) var<storage, read> in0: array<f32>;
@group(0) @binding(1) var<storage, read> in1: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

override KH: u32 = 3u;
override KW: u32 = 3u;
override SW: u32 = 1u;
override FLIP: bool = false;
const MAX_K: u32 = 7u; // the window arrays hold up to 7 × 7
const WG: u32 = 64u;

// The source value at (row `row` of the plane starting at `plane`, column `col`), 0 off
// the image. The address is clamped so the load is always in bounds and branch-free.
fn src_at(plane: u32, row: i32, col: i32) -> f32 {
    let inside = row >= 0 && row < i32(p.h_src) && col >= 0 && col < i32(p.w_src);
    let r = u32(clamp(row, 0, i32(p.h_src) - 1));
    let c = u32(clamp(col, 0, i32(p.w_src) - 1));
    return select(0.0, in0[plane + r * p.w_src + c], inside);
}

@compute @workgroup_size(WG)
fn forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let r = group_index(wid, nwg) * WG + lid;
    if r >= p.total {
        return;
    }
    let oh = r % p.h_dst;
    let c = (r / p.h_dst) % p.c_dst;
    let n = r / (p.h_dst * p.c_dst);
    let plane = (n * p.c_src + c / p.mult) * p.h_src * p.w_src;
    let top = i32(oh * p.stride_h) - i32(p.pad_h);

    var wt: array<f32, 49>;
    for (var ky = 0u; ky < KH; ky++) {
        for (var kx = 0u; kx < KW; kx++) {
            let tap = select(ky * KW + kx, (KH - 1u - ky) * KW + (KW - 1u - kx), FLIP);
            wt[ky * MAX_K + kx] = in1[c * KH * KW + tap];
        }
    }
    var win: array<f32, 49>;
    let left = -i32(p.pad_w);
    for (var ky = 0u; ky < KH; ky++) {
        for (var kx = 0u; kx < KW; kx++) {
            win[ky * MAX_K + kx] = src_at(plane, top + i32(ky), left + i32(kx));
        }
    }
    let out_row = r * p.w_dst;
    for (var ow = 0u; ow < p.w_dst; ow++) {
        var acc = 0.0;
        for (var ky = 0u; ky < KH; ky++) {
            for (var kx = 0u; kx < KW; kx++) {
                acc += win[ky * MAX_K + kx] * wt[ky * MAX_K + kx];
            }
        }
        out[out_row + ow] = acc;
        // Slide right by SW columns: keep what overlaps, load the new columns.
        let next_left = left + i32((ow + 1u) * SW);
        for (var ky = 0u; ky < KH; ky++) {
            for (var kx = 0u; kx < KW; kx++) {
                if kx + SW < KW {
                    win[ky * MAX_K + kx] = win[ky * MAX_K + kx + SW];
                } else {
                    win[ky * MAX_K + kx] = src_at(plane, top + i32(ky), next_left + i32(kx));
                }
            }
        }
    }
}

var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(WG)
fn weight_grad(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let c = group_index(wid, nwg); // output channel
    if c >= p.total {
        return;
    }
    var sums: array<f32, 49>;
    let rows = p.n * p.h_dst;
    for (var r = lid; r < rows; r += WG) {
        let oh = r % p.h_dst;
        let n = r / p.h_dst;
        let plane = (n * p.c_src + c / p.mult) * p.h_src * p.w_src;
        let top = i32(oh * p.stride_h) - i32(p.pad_h);
        let left = -i32(p.pad_w);
        var win: array<f32, 49>;
        for (var ky = 0u; ky < KH; ky++) {
            for (var kx = 0u; kx < KW; kx++) {
                win[ky * MAX_K + kx] = src_at(plane, top + i32(ky), left + i32(kx));
            }
        }
        let dy_row = ((n * p.c_dst + c) * p.h_dst + oh) * p.w_dst;
        for (var ow = 0u; ow < p.w_dst; ow++) {
            let g = in1[dy_row + ow];
            for (var ky = 0u; ky < KH; ky++) {
                for (var kx = 0u; kx < KW; kx++) {
                    sums[ky * MAX_K + kx] += g * win[ky * MAX_K + kx];
                }
            }
            let next_left = left + i32((ow + 1u) * SW);
            for (var ky = 0u; ky < KH; ky++) {
                for (var kx = 0u; kx < KW; kx++) {
                    if kx + SW < KW {
                        win[ky * MAX_K + kx] = win[ky * MAX_K + kx + SW];
                    } else {
                        win[ky * MAX_K + kx] = src_at(plane, top + i32(ky), next_left + i32(kx));
                    }
                }
            }
        }
    }
    // Reduce each tap's sum over the workgroup, one tap at a time.
    for (var ky = 0u; ky < KH; ky++) {
        for (var kx = 0u; kx < KW; kx++) {
            partial[lid] = sums[ky * MAX_K + kx];
            workgroupBarrier();
            for (var half = WG / 2u; half > 0u; half /= 2u) {
                if lid < half {
                    partial[lid] += partial[lid + half];
                }
                workgroupBarrier();
            }
            if lid == 0u {
                out[(c * KH + ky) * KW + kx] = partial[0];
            }
            workgroupBarrier();
        }
    }
}
