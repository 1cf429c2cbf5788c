// col2im for the GEMM path: the input gradient of a convolution (and so the forward of a
// transposed convolution). dcol holds, per output pixel of a chunk (pixels pix0..pix0 +
// pixels of samples n0..), the gradient for each kernel tap (rows of k_g, as
// conv_im2col.wgsl's pixel_major). Each invocation GATHERS the taps that read its input
// element: no two invocations write the same element, so no atomics and the sum order is
// fixed (deterministic).
//
// A launch covers input rows ih0..ih0 + rows (those the chunk's pixels read) and the taps
// ky0..ky1 × kx0..kx1. A large kernel's taps, or a large sample's pixels, are split over
// several launches (src/gpu/loops.rs); with ACCUMULATE each adds to what the earlier ones
// wrote.

struct Params {
    total: u32,   // input elements of this launch: samples · c_in · rows · w
    n0: u32,      // first sample of this chunk
    c_in: u32,
    h: u32,
    w: u32,
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
    groups: u32,
    cin_g: u32,
    k_g: u32,
    pix0: u32,    // first output pixel of the chunk, within its sample
    pixels: u32,  // output pixels of the chunk
    ih0: u32,     // first input row of this launch
    rows: u32,    // input rows of this launch
    ky0: u32,     // taps of this launch: ky0..ky1 × kx0..kx1
    ky1: u32,
    kx0: u32,
    kx1: u32,
}

@group(0) @binding(0) var<storage, read> dcol: array<f32>;
@group(0) @binding(1) var<storage, read_write> dx: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

override ACCUMULATE: bool = false;

const WG: u32 = 64u;

// The first tap at or after `lowest` that can land on position `at` (+ pad) of an axis:
// without dilation only every stride-th tap can, starting at (at + pad) mod stride.
fn first_tap(lowest: u32, at: u32, pad: u32, stride: u32, dil: u32) -> u32 {
    if dil != 1u {
        return lowest;
    }
    let phase = (at + pad) % stride;
    if lowest <= phase {
        return phase;
    }
    return lowest + (stride - (lowest - phase) % stride) % stride;
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
    let iw = i % p.w;
    let ih = p.ih0 + (i / p.w) % p.rows;
    let c = (i / (p.w * p.rows)) % p.c_in;
    let nl = i / (p.w * p.rows * p.c_in); // sample within the chunk
    let g = c / p.cin_g;
    let tap0 = (c % p.cin_g) * p.kh * p.kw;
    let first_row = (nl * p.groups + g) * p.pixels; // first dcol row of (sample, group)
    // Output row oh reads input row oh·stride - pad + ky·dil; invert it.
    let step_h = select(1u, p.stride_h, p.dil_h == 1u);
    let step_w = select(1u, p.stride_w, p.dil_w == 1u);
    let start_w = first_tap(p.kx0, iw, p.pad_w, p.stride_w, p.dil_w);
    var acc = 0.0;
    for (var ky = first_tap(p.ky0, ih, p.pad_h, p.stride_h, p.dil_h); ky < p.ky1; ky += step_h) {
        let num_h = i32(ih + p.pad_h) - i32(ky * p.dil_h);
        if num_h < 0 || u32(num_h) % p.stride_h != 0u {
            continue;
        }
        let oh = u32(num_h) / p.stride_h;
        if oh >= p.ho {
            continue;
        }
        for (var kx = start_w; kx < p.kx1; kx += step_w) {
            let num_w = i32(iw + p.pad_w) - i32(kx * p.dil_w);
            if num_w < 0 || u32(num_w) % p.stride_w != 0u {
                continue;
            }
            let ow = u32(num_w) / p.stride_w;
            let pix = oh * p.wo + ow;
            if ow >= p.wo || pix < p.pix0 || pix >= p.pix0 + p.pixels {
                continue;
            }
            acc += dcol[(first_row + pix - p.pix0) * p.k_g + tap0 + ky * p.kw + kx];
        }
    }
    let at = ((p.n0 + nl) * p.c_in + c) * p.h * p.w + ih * p.w + iw;
    if ACCUMULATE {
        dx[at] += acc;
    } else {
        dx[at] = acc;
    }
}
