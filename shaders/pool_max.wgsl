// Max pooling over [N, C, H, W] planes, forward and backward, for fixed windows
// (kernel/stride/padding/dilation) and PyTorch's adaptive bins (ADAPTIVE). The forward
// pass records, per output, the flat index h * W + w of its maximum within the input plane;
// the backward pass is a gather over the outputs whose windows can cover each input
// element, adding the gradients of those whose index is that element: no atomics, and the
// same summation order on every run. Average pooling is in pool.wgsl (no index buffer).

// requires: pool_window.wgsl
// requires: pool_max_rule.wgsl

// Binding 0 is read, 1 written. The index buffer is written by the forward pass and read by
// the backward pass; it is read_write in both so that both entry points share one layout.
@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, read_write> indices: array<u32>;
@group(0) @binding(3) var<uniform> p: Params;

// dst[output] = max of src (the input) over the window, indices[output] = where it is.
// Padding never wins. With several segments, each writes its piece's maximum and index at
// output · segments + s (index NONE if the piece was all padding), for
// pool_max_combine.wgsl.
@compute @workgroup_size(WG)
fn max_forward(
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
    // Only the taps inside the input are walked (padding never wins).
    let th = inside(taps_h(i32(at.y)), p.in_h);
    let tw = inside(taps_w(i32(at.z)), p.in_w);
    let piece = piece(i, u32(th.count * tw.count));
    let plane = at.x * u32(p.in_h * p.in_w);
    var j = i32(piece.first) / max(tw.count, 1);
    var l = i32(piece.first) % max(tw.count, 1);
    var best = bitcast<f32>(0xff800000u); // -inf
    var best_at = NONE;
    for (var t = piece.first; t < piece.end; t++) {
        let at_hw = u32((th.first + j * th.step) * p.in_w + tw.first + l * tw.step);
        let v = src[plane + at_hw];
        if better(v, best, best_at) {
            best = v;
            best_at = at_hw;
        }
        l++;
        if l == tw.count {
            l = 0;
            j++;
        }
    }
    // With one segment the host has rejected windows with no tap inside the input, so
    // best_at is set here.
    dst[i] = best;
    indices[i] = best_at;
}

// dst[input] = sum of src (grad_out) over the outputs whose recorded index is this
// element; with several segments, dst[input · segments + s] = segment s's share of it.
@compute @workgroup_size(WG)
fn max_backward(
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
    let here = at.y * u32(p.in_w) + at.z;
    let rh = covering_h(i32(at.y));
    let rw = covering_w(i32(at.z));
    let cols = u32(max(rw.y - rw.x + 1, 0));
    let piece = piece(i, u32(max(rh.y - rh.x + 1, 0)) * cols);
    let plane = at.x * u32(p.out_h * p.out_w);
    var oh = rh.x + i32(piece.first / max(cols, 1u));
    var ow = rw.x + i32(piece.first % max(cols, 1u));
    var sum = 0.0;
    for (var t = piece.first; t < piece.end; t++) {
        let o = plane + u32(oh * p.out_w + ow);
        if indices[o] == here {
            sum += src[o];
        }
        ow++;
        if ow > rw.y {
            ow = rw.x;
            oh++;
        }
    }
    dst[i] = sum;
}
