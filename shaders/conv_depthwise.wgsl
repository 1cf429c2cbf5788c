// requires: workgroup_reduce.wgsl
// Depthwise convolution (groups = input channels; output channel co reads input channel
// co / mult), forward and both gradients, each ONE launch for all channels.
//
// forward and backward_input give each invocation a row (or, for rows longer than the
// loop budget allows, a range of `seg_len` columns of it: `segments` per row), so the
// row's index arithmetic is paid once and neighbouring outputs reuse the same weights.
// backward_weight gives each (channel, tap) `segments` workgroups, each reducing
// `seg_len` of the batch's output pixels; the host adds up the partial sums.

struct Params {
    total: u32, // invocations (rows · segments) or workgroups (weights · segments)
    n: u32,
    c_in: u32,
    h: u32,
    w: u32,
    c_out: u32,
    ho: u32,
    wo: u32,
    kh: u32,
    kw: u32,
    stride_h: u32,
    stride_w: u32,
    pad_h: u32,
    pad_w: u32,
    dil_h: u32,
    dil_w: u32,
    mult: u32, // c_out / c_in
    segments: u32,
    seg_len: u32, // columns (forward, backward_input) or pixels (backward_weight)
}

// forward: (x, weight, y); backward_input: (dy, weight, dx); backward_weight: (x, dy, dw).
@group(0) @binding(0) var<storage, read> in0: array<f32>;
@group(0) @binding(1) var<storage, read> in1: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

const WG: u32 = REDUCE_WG;

// One invocation per output row (n, co, oh), or per range of its columns.
@compute @workgroup_size(WG)
fn forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = group_index(wid, nwg) * WG + lid;
    if i >= p.total {
        return;
    }
    let r = i / p.segments;
    let ow0 = (i % p.segments) * p.seg_len;
    let ow1 = min(ow0 + p.seg_len, p.wo);
    let oh = r % p.ho;
    let co = (r / p.ho) % p.c_out;
    let n = r / (p.ho * p.c_out);
    let plane = (n * p.c_in + co / p.mult) * p.h * p.w;
    let taps = co * p.kh * p.kw;
    let out_row = r * p.wo;
    for (var ow = ow0; ow < ow1; ow++) {
        let left = i32(ow * p.stride_w) - i32(p.pad_w);
        var acc = 0.0;
        for (var ky = 0u; ky < p.kh; ky++) {
            let ih = i32(oh * p.stride_h + ky * p.dil_h) - i32(p.pad_h);
            if ih < 0 || ih >= i32(p.h) {
                continue;
            }
            let row = plane + u32(ih) * p.w;
            for (var kx = 0u; kx < p.kw; kx++) {
                let iw = left + i32(kx * p.dil_w);
                if iw >= 0 && iw < i32(p.w) {
                    acc += in0[row + u32(iw)] * in1[taps + ky * p.kw + kx];
                }
            }
        }
        out[out_row + ow] = acc;
    }
}

// One invocation per input row (n, ci, ih), or per range of its columns: gathers from
// every output that read it.
@compute @workgroup_size(WG)
fn backward_input(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = group_index(wid, nwg) * WG + lid;
    if i >= p.total {
        return;
    }
    let r = i / p.segments;
    let iw0 = (i % p.segments) * p.seg_len;
    let iw1 = min(iw0 + p.seg_len, p.w);
    let ih = r % p.h;
    let ci = (r / p.h) % p.c_in;
    let n = r / (p.h * p.c_in);
    let out_row = r * p.w;
    for (var iw = iw0; iw < iw1; iw++) {
        var acc = 0.0;
        for (var m = 0u; m < p.mult; m++) {
            let co = ci * p.mult + m;
            let plane = (n * p.c_out + co) * p.ho * p.wo;
            for (var ky = 0u; ky < p.kh; ky++) {
                let num_h = i32(ih + p.pad_h) - i32(ky * p.dil_h);
                if num_h < 0 || u32(num_h) % p.stride_h != 0u || u32(num_h) / p.stride_h >= p.ho {
                    continue;
                }
                let row = plane + (u32(num_h) / p.stride_h) * p.wo;
                for (var kx = 0u; kx < p.kw; kx++) {
                    let num_w = i32(iw + p.pad_w) - i32(kx * p.dil_w);
                    if num_w < 0 || u32(num_w) % p.stride_w != 0u || u32(num_w) / p.stride_w >= p.wo {
                        continue;
                    }
                    acc += in0[row + u32(num_w) / p.stride_w] * in1[(co * p.kh + ky) * p.kw + kx];
                }
            }
        }
        out[out_row + iw] = acc;
    }
}

// Workgroups per weight (co, ky, kx): sum dy · x over batch and output pixels.
@compute @workgroup_size(WG)
fn backward_weight(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let wg = group_index(wid, nwg);
    if wg >= p.total {
        return;
    }
    let t = wg / p.segments;
    let first = (wg % p.segments) * p.seg_len;
    let kx = t % p.kw;
    let ky = (t / p.kw) % p.kh;
    let co = t / (p.kw * p.kh);
    let ci = co / p.mult;
    let pixels = p.ho * p.wo;
    var acc = 0.0;
    let last = min(first + p.seg_len, p.n * pixels);
    for (var j = first + lid; j < last; j += WG) {
        let n = j / pixels;
        let oh = (j % pixels) / p.wo;
        let ow = j % p.wo;
        let ih = i32(oh * p.stride_h + ky * p.dil_h) - i32(p.pad_h);
        let iw = i32(ow * p.stride_w + kx * p.dil_w) - i32(p.pad_w);
        if ih >= 0 && ih < i32(p.h) && iw >= 0 && iw < i32(p.w) {
            let xv = in0[((n * p.c_in + ci) * p.h + u32(ih)) * p.w + u32(iw)];
            acc += xv * in1[(n * p.c_out + co) * pixels + j % pixels];
        }
    }
    let total = workgroup_sum(lid, acc);
    if lid == 0u {
        out[wg] = total;
    }
}
