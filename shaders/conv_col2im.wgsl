// col2im for the GEMM path: the input gradient of a convolution (and so the forward of a
// transposed convolution). dcol holds, per output pixel, the gradient for each kernel tap
// (rows of k_g, as conv_im2col.wgsl's pixel_major). Each invocation GATHERS the taps that
// read its input element: no two invocations write the same element, so no atomics and
// the sum order is fixed (deterministic).

struct Params {
    total: u32,   // input elements in this chunk: chunk·c_in·h·w
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
}

@group(0) @binding(0) var<storage, read> dcol: array<f32>;
@group(0) @binding(1) var<storage, read_write> dx: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

const WG: u32 = 64u;

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
    let ih = (i / p.w) % p.h;
    let c = (i / (p.w * p.h)) % p.c_in;
    let nl = i / (p.w * p.h * p.c_in); // sample within the chunk
    let g = c / p.cin_g;
    let tap0 = (c % p.cin_g) * p.kh * p.kw;
    let rows = (nl * p.groups + g) * p.ho * p.wo; // first dcol row of (sample, group)
    // Output row oh reads input row oh·stride - pad + ky·dil; invert it. Without dilation
    // only every stride-th tap can land on this row, starting at (ih + pad) mod stride.
    let step_h = select(1u, p.stride_h, p.dil_h == 1u);
    let step_w = select(1u, p.stride_w, p.dil_w == 1u);
    let first_h = select(0u, (ih + p.pad_h) % p.stride_h, p.dil_h == 1u);
    let first_w = select(0u, (iw + p.pad_w) % p.stride_w, p.dil_w == 1u);
    var acc = 0.0;
    for (var ky = first_h; ky < p.kh; ky += step_h) {
        let num_h = i32(ih + p.pad_h) - i32(ky * p.dil_h);
        if num_h < 0 || u32(num_h) % p.stride_h != 0u {
            continue;
        }
        let oh = u32(num_h) / p.stride_h;
        if oh >= p.ho {
            continue;
        }
        for (var kx = first_w; kx < p.kw; kx += step_w) {
            let num_w = i32(iw + p.pad_w) - i32(kx * p.dil_w);
            if num_w < 0 || u32(num_w) % p.stride_w != 0u {
                continue;
            }
            let ow = u32(num_w) / p.stride_w;
            if ow >= p.wo {
                continue;
            }
            acc += dcol[(rows + oh * p.wo + ow) * p.k_g + tap0 + ky * p.kw + kx];
        }
    }
    dx[p.n0 * p.c_in * p.h * p.w + i] = acc;
}
