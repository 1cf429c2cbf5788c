// Average pooling over [N, C, H, W] planes, forward and backward, for fixed windows
// (kernel/stride/padding, dilation 1) and PyTorch's adaptive bins (ADAPTIVE). Max pooling
// is in pool_max.wgsl: it binds an index buffer as well, and auto layout wants every entry
// point of a file to use every binding.
//
// Both directions are gathers with one invocation per element written: the backward pass
// loops over the outputs whose windows can cover its input element, so it needs no atomics
// and sums in the same order on every run.

// requires: pool_window.wgsl

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

// Count padding in the divisor of fixed windows (PyTorch's count_include_pad).
override INCLUDE_PAD: bool = true;

// One axis's factor of the divisor of a window. PyTorch clips a fixed window's end to
// size + pad first (that is the count with padding), then to the input.
fn divisor_part(t: Taps, size: i32, pad: i32) -> i32 {
    if ADAPTIVE {
        return t.count;
    }
    if INCLUDE_PAD {
        return min(t.first + t.count, size + pad) - t.first;
    }
    return min(t.first + t.count, size) - max(t.first, 0);
}

fn divisor(th: Taps, tw: Taps) -> f32 {
    return f32(divisor_part(th, p.in_h, p.pad_h) * divisor_part(tw, p.in_w, p.pad_w));
}

// dst[output] = mean of src over the output's window (src is the input); with several
// segments, dst[output · segments + s] = segment s's share of it.
@compute @workgroup_size(WG)
fn avg_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = group_index(wid, nwg) * WG + lid;
    if i >= p.n {
        return;
    }
    let o = i / p.segments;
    let at = split(o, p.out_h, p.out_w);
    let th = taps_h(i32(at.y));
    let tw = taps_w(i32(at.z));
    // Only in-bounds taps are summed; dilation is 1, so they are a contiguous range.
    let h0 = max(th.first, 0);
    let h1 = min(th.first + th.count, p.in_h);
    let w0 = max(tw.first, 0);
    let w1 = min(tw.first + tw.count, p.in_w);
    let cols = u32(max(w1 - w0, 0));
    let piece = piece(i, u32(max(h1 - h0, 0)) * cols);
    let plane = at.x * u32(p.in_h * p.in_w);
    var h = h0 + i32(piece.first / max(cols, 1u));
    var w = w0 + i32(piece.first % max(cols, 1u));
    var sum = 0.0;
    for (var t = piece.first; t < piece.end; t++) {
        sum += src[plane + u32(h * p.in_w + w)];
        w++;
        if w == w1 {
            w = w0;
            h++;
        }
    }
    dst[i] = sum / divisor(th, tw);
}

// dst[input] = sum over the windows covering it of grad / divisor (src is grad_out); with
// several segments, dst[input · segments + s] = segment s's share of it.
@compute @workgroup_size(WG)
fn avg_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = group_index(wid, nwg) * WG + lid;
    if i >= p.n {
        return;
    }
    let e = i / p.segments;
    let at = split(e, p.in_h, p.in_w);
    // Dilation is 1 and adaptive bins are contiguous, so every output in these ranges
    // covers this element.
    let rh = covering_h(i32(at.y));
    let rw = covering_w(i32(at.z));
    let cols = u32(max(rw.y - rw.x + 1, 0));
    let piece = piece(i, u32(max(rh.y - rh.x + 1, 0)) * cols);
    let plane = at.x * u32(p.out_h * p.out_w);
    var oh = rh.x + i32(piece.first / max(cols, 1u));
    var ow = rw.x + i32(piece.first % max(cols, 1u));
    var sum = 0.0;
    for (var t = piece.first; t < piece.end; t++) {
        sum += src[plane + u32(oh * p.out_w + ow)] / divisor(taps_h(oh), taps_w(ow));
        ow++;
        if ow > rw.y {
            ow = rw.x;
            oh++;
        }
    }
    dst[i] = sum;
}
