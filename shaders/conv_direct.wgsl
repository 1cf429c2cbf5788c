// requires: workgroup_reduce.wgsl
// requires: fused_act.wgsl
// Direct convolution for groups with few input channels (depthwise, ResNeXt-style grouped
// convolutions), dilation 1. Each invocation slides a window of CIG input planes ×
// KH × KW along one row, so every input value is loaded once per row rather than once per
// tap, and computes the COG output channels of its group from it with the group's weights
// in registers. KH, KW, CIG and COG are override constants, so loops
// unroll and the window and weights live in registers.
//
// `forward`: dst[n, g·COG + o, oh, ow] = Σ_{i, ky, kx} src[n, g·CIG + i, oh·stride_h -
// pad_h + ky, ow·stride_w - pad_w + kx] · w[g·COG + o, i, ky, kx]. With FLIP it is the input
// gradient of a stride-1 convolution instead (src = dy, dst = dx, the kernel flipped and
// its in/out channels swapped, padding k - 1 - p).
// `weight_grad`: workgroups slide the same window over pieces of rows (an item is up to
// `chunk_cols` columns of one row), accumulating dy · window, then reduce the sums; one
// workgroup per (output channel, segment of `seg_items` items), each segment a partial
// sum the host adds up when there are several.
//
// With SCALE_SHIFT, `forward` ends each result in fused_act(v · scale + shift), a scale
// and shift per destination channel read from in1 past the weights, at coef_offset: an
// evaluation-mode batch norm and its activation folded into the convolution.
//
// Rows longer than the loop budget allows (src/gpu/loops.rs) are cut into `segments`
// column ranges of `seg_cols` for the forward, one invocation each.

struct Params {
    total: u32, // invocations (forward: rows · segments) or workgroups (weight_grad)
    n: u32,
    c_src: u32,
    h_src: u32,
    w_src: u32,
    c_dst: u32,
    h_dst: u32,
    w_dst: u32,
    stride_h: u32,
    stride_w: u32,
    pad_h: u32,
    pad_w: u32,
    // Invocations work on blocks of COG destination channels; block b reads source group
    // b / src_div. Depthwise: one block per group (src_div 1). A grouped convolution
    // whose weights would not fit registers: one block per output channel, src_div =
    // output channels per group.
    blocks: u32,
    src_div: u32,
    // forward: column ranges per row; weight_grad: workgroups per output channel.
    segments: u32,
    // forward: columns per range; weight_grad: items per workgroup.
    seg_len: u32,
    // weight_grad: columns per item, and items per row.
    chunk_cols: u32,
    row_chunks: u32,
    coef_offset: u32,
}

// forward: (src, weight, dst); weight_grad: (x, dy, dw).
@group(0) @binding(0) var<storage, read> in0: array<f32>;
@group(0) @binding(1) var<storage, read> in1: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

override KH: u32 = 3u;
override KW: u32 = 3u;
override CIG: u32 = 1u; // source channels per group
override COG: u32 = 1u; // destination channels per group
override FLIP: bool = false;
override UNIT_STRIDE: bool = true; // stride_w == 1
override SCALE_SHIFT: bool = false;
// Register budgets, checked by the host (src/ops/conv/direct.rs). Larger windows made
// the driver spill the unrolled loops to memory (and compile for seconds).
const WINDOW_MAX: u32 = 64u;  // CIG·KH·KW
const WEIGHTS_MAX: u32 = 64u; // COG·CIG·KH·KW
const WG: u32 = REDUCE_WG;

// The source value at (plane, row, col), 0 off the image; the address is clamped so the
// load is always in bounds and branch-free.
fn src_at(plane: u32, row: i32, col: i32) -> f32 {
    let inside = row >= 0 && row < i32(p.h_src) && col >= 0 && col < i32(p.w_src);
    let r = u32(clamp(row, 0, i32(p.h_src) - 1));
    let c = u32(clamp(col, 0, i32(p.w_src) - 1));
    return select(0.0, in0[plane + r * p.w_src + c], inside);
}

// Fills the window for the first output column of a row.
fn load_window(win: ptr<function, array<f32, WINDOW_MAX>>, planes: u32, top: i32, left: i32) {
    for (var i = 0u; i < CIG; i++) {
        for (var ky = 0u; ky < KH; ky++) {
            for (var kx = 0u; kx < KW; kx++) {
                (*win)[(i * KH + ky) * KW + kx] = src_at(planes + i * p.h_src * p.w_src, top + i32(ky), left + i32(kx));
            }
        }
    }
}

// Moves the window right to the columns starting at `left`. With column stride 1 it keeps
// the overlap and loads one new column; otherwise it reloads the window. (UNIT_STRIDE is an
// override so the choice folds away, and one pipeline serves every other stride.)
fn slide_window(win: ptr<function, array<f32, WINDOW_MAX>>, planes: u32, top: i32, left: i32) {
    if !UNIT_STRIDE {
        load_window(win, planes, top, left);
        return;
    }
    for (var i = 0u; i < CIG; i++) {
        for (var ky = 0u; ky < KH; ky++) {
            for (var kx = 0u; kx + 1u < KW; kx++) {
                let at = (i * KH + ky) * KW + kx;
                (*win)[at] = (*win)[at + 1u];
            }
            let at = (i * KH + ky) * KW + KW - 1u;
            (*win)[at] = src_at(planes + i * p.h_src * p.w_src, top + i32(ky), left + i32(KW - 1u));
        }
    }
}

// One invocation per (sample, group, output row), with the group's weights in registers.
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
    let ow1 = min(ow0 + p.seg_len, p.w_dst);
    let oh = r % p.h_dst;
    let b = (r / p.h_dst) % p.blocks;
    let n = r / (p.h_dst * p.blocks);
    let planes = (n * p.c_src + (b / p.src_div) * CIG) * p.h_src * p.w_src;
    let top = i32(oh * p.stride_h) - i32(p.pad_h);
    let taps = KH * KW;

    var wt: array<f32, WEIGHTS_MAX>;
    for (var o = 0u; o < COG; o++) {
        for (var i = 0u; i < CIG; i++) {
            for (var t = 0u; t < taps; t++) {
                var at = ((b * COG + o) * CIG + i) * taps + t;
                if FLIP {
                    // dx from dy: destination channel b·COG + o is an input channel of the
                    // convolution (in its group, index (b % src_div)·COG + o of
                    // COG·src_div) and "i" an output channel of group b / src_div; the
                    // weight is stored [output channel][input channel in group], flipped.
                    let group = b / p.src_div;
                    let in_group = (b % p.src_div) * COG + o;
                    at = ((group * CIG + i) * COG * p.src_div + in_group) * taps + (taps - 1u - t);
                }
                wt[(o * CIG + i) * taps + t] = in1[at];
            }
        }
    }
    // The scale and shift of each destination channel (SCALE_SHIFT), loaded once.
    var scale: array<f32, WEIGHTS_MAX>;
    var shift: array<f32, WEIGHTS_MAX>;
    if SCALE_SHIFT {
        for (var o = 0u; o < COG; o++) {
            let at = p.coef_offset + 2u * (b * COG + o);
            scale[o] = in1[at];
            shift[o] = in1[at + 1u];
        }
    }
    var win: array<f32, WINDOW_MAX>;
    let left = -i32(p.pad_w);
    load_window(&win, planes, top, left + i32(ow0 * p.stride_w));
    let dst_plane = p.h_dst * p.w_dst;
    let dst_row = ((n * p.c_dst + b * COG) * p.h_dst + oh) * p.w_dst;
    for (var ow = ow0; ow < ow1; ow++) {
        for (var o = 0u; o < COG; o++) {
            var acc = 0.0;
            for (var k = 0u; k < CIG * taps; k++) {
                acc += win[k] * wt[o * CIG * taps + k];
            }
            if SCALE_SHIFT {
                acc = fused_act(acc * scale[o] + shift[o]);
            }
            out[dst_row + o * dst_plane + ow] = acc;
        }
        slide_window(&win, planes, top, left + i32((ow + 1u) * p.stride_w));
    }
}

@compute @workgroup_size(WG)
fn weight_grad(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let wg = group_index(wid, nwg);
    if wg >= p.total {
        return;
    }
    let co = wg / p.segments;
    let group = co / COG / p.src_div;
    let items = p.n * p.h_dst * p.row_chunks;
    let first = (wg % p.segments) * p.seg_len;
    let last = min(first + p.seg_len, items);
    var sums: array<f32, WINDOW_MAX>;
    for (var item = first + lid; item < last; item += WG) {
        let r = item / p.row_chunks;
        let ow0 = (item % p.row_chunks) * p.chunk_cols;
        let ow1 = min(ow0 + p.chunk_cols, p.w_dst);
        let oh = r % p.h_dst;
        let n = r / p.h_dst;
        let planes = (n * p.c_src + group * CIG) * p.h_src * p.w_src;
        let top = i32(oh * p.stride_h) - i32(p.pad_h);
        let left = -i32(p.pad_w);
        var win: array<f32, WINDOW_MAX>;
        load_window(&win, planes, top, left + i32(ow0 * p.stride_w));
        let dy_row = ((n * p.c_dst + co) * p.h_dst + oh) * p.w_dst;
        for (var ow = ow0; ow < ow1; ow++) {
            let grad = in1[dy_row + ow];
            for (var k = 0u; k < CIG * KH * KW; k++) {
                sums[k] += grad * win[k];
            }
            slide_window(&win, planes, top, left + i32((ow + 1u) * p.stride_w));
        }
    }
    // Reduce each weight's sum over the workgroup, one weight at a time.
    for (var k = 0u; k < CIG * KH * KW; k++) {
        let total = workgroup_sum(lid, sums[k]);
        if lid == 0u {
            out[wg * CIG * KH * KW + k] = total;
        }
    }
}
