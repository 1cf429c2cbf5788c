// Max pooling over [N, C, H, W] planes, forward and backward, for fixed windows
// (kernel/stride/padding/dilation) and PyTorch's adaptive bins (ADAPTIVE). The forward
// pass records, per output, the flat index h * W + w of its maximum within the input plane;
// the backward pass is a gather over the outputs whose windows can cover each input
// element, adding the gradients of those whose index is that element: no atomics, and the
// same summation order on every run. Average pooling is in pool.wgsl (no index buffer).

// requires: pool_window.wgsl

// Binding 0 is read, 1 written. The index buffer is written by the forward pass and read by
// the backward pass; it is read_write in both so that both entry points share one layout.
@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, read_write> indices: array<u32>;
@group(0) @binding(3) var<uniform> p: Params;

// Marks "no tap seen yet"; never a real index, as planes are far smaller.
const NONE: u32 = 0xffffffffu;

// NaN tested on the bits: WGSL lets compilers assume floats are not NaN.
fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

// dst[output] = max of src (the input) over the window, indices[output] = where it is.
// As PyTorch: the first maximum in row-major window order wins, a NaN always wins (so the
// last NaN), padding never does, and a window of only -inf points at its first tap.
@compute @workgroup_size(WG)
fn max_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let o = group_index(wid, nwg) * WG + lid;
    if o >= p.n {
        return;
    }
    let at = split(o, p.out_h, p.out_w);
    let th = taps_h(i32(at.y));
    let tw = taps_w(i32(at.z));
    let plane = at.x * u32(p.in_h * p.in_w);
    var best = bitcast<f32>(0xff800000u); // -inf
    var best_at = NONE;
    for (var j = 0; j < th.count; j++) {
        let h = th.first + j * th.step;
        if h < 0 || h >= p.in_h {
            continue;
        }
        for (var l = 0; l < tw.count; l++) {
            let w = tw.first + l * tw.step;
            if w < 0 || w >= p.in_w {
                continue;
            }
            let at_hw = u32(h * p.in_w + w);
            let v = src[plane + at_hw];
            if best_at == NONE || v > best || is_nan(v) {
                best = v;
                best_at = at_hw;
            }
        }
    }
    // The host rejects windows with no tap inside the input, so best_at is set here.
    dst[o] = best;
    indices[o] = best_at;
}

// dst[input] = sum of src (grad_out) over the outputs whose recorded index is this element.
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
    let at = split(i, p.in_h, p.in_w);
    let here = at.y * u32(p.in_w) + at.z;
    let rh = covering_h(i32(at.y));
    let rw = covering_w(i32(at.z));
    let plane = at.x * u32(p.out_h * p.out_w);
    var sum = 0.0;
    for (var oh = rh.x; oh <= rh.y; oh++) {
        let row = plane + u32(oh * p.out_w);
        for (var ow = rw.x; ow <= rw.y; ow++) {
            if indices[row + u32(ow)] == here {
                sum += src[row + u32(ow)];
            }
        }
    }
    dst[i] = sum;
}
