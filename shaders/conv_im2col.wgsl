// im2col for the GEMM path of convolution: copies each output pixel's receptive field
// into a row (pixel_major, for the forward product) or each kernel tap's values over all
// output pixels into a row (tap_major, for the weight gradient). Rows are zero-padded to
// `row_len` so the matmul kernels can read them as vec4s. Out-of-image taps read 0.
//
// A row of group g holds the taps of its input channels in PyTorch's weight order:
// k = ci_local·kh·kw + ky·kw + kx.

struct Params {
    rows: u32,    // invocations: chunk·groups·ho·wo (pixel_major) or chunk·groups·k_g (tap_major)
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
    cin_g: u32,   // input channels per group
    k_g: u32,     // cin_g·kh·kw
    row_len: u32, // padded row length of col
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> col: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

const WG: u32 = 64u;

// The input value at (n, c, ih, iw) with ih/iw possibly outside the image (then 0).
fn input_at(plane: u32, ih: i32, iw: i32) -> f32 {
    if ih < 0 || iw < 0 || ih >= i32(p.h) || iw >= i32(p.w) {
        return 0.0;
    }
    return x[plane + u32(ih) * p.w + u32(iw)];
}

@compute @workgroup_size(WG)
fn pixel_major(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = group_index(wid, nwg) * WG + lid;
    if row >= p.rows {
        return;
    }
    let pixels = p.ho * p.wo;
    let pix = row % pixels;
    let g = (row / pixels) % p.groups;
    let n = p.n0 + row / (pixels * p.groups);
    let top = i32((pix / p.wo) * p.stride_h) - i32(p.pad_h);
    let left = i32((pix % p.wo) * p.stride_w) - i32(p.pad_w);
    var out = row * p.row_len;
    for (var cl = 0u; cl < p.cin_g; cl++) {
        let plane = ((n * p.c_in) + g * p.cin_g + cl) * p.h * p.w;
        for (var ky = 0u; ky < p.kh; ky++) {
            let ih = top + i32(ky * p.dil_h);
            for (var kx = 0u; kx < p.kw; kx++) {
                col[out] = input_at(plane, ih, left + i32(kx * p.dil_w));
                out++;
            }
        }
    }
    for (var k = p.k_g; k < p.row_len; k++) {
        col[row * p.row_len + k] = 0.0;
    }
}

@compute @workgroup_size(WG)
fn tap_major(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = group_index(wid, nwg) * WG + lid;
    if row >= p.rows {
        return;
    }
    let k = row % p.k_g;
    let g = (row / p.k_g) % p.groups;
    let n = p.n0 + row / (p.k_g * p.groups);
    let taps = p.kh * p.kw;
    let cl = k / taps;
    let ky = (k % taps) / p.kw;
    let kx = k % p.kw;
    let plane = ((n * p.c_in) + g * p.cin_g + cl) * p.h * p.w;
    var out = row * p.row_len;
    for (var oh = 0u; oh < p.ho; oh++) {
        let ih = i32(oh * p.stride_h + ky * p.dil_h) - i32(p.pad_h);
        for (var ow = 0u; ow < p.wo; ow++) {
            col[out] = input_at(plane, ih, i32(ow * p.stride_w + kx * p.dil_w) - i32(p.pad_w));
            out++;
        }
    }
    for (var j = p.ho * p.wo; j < p.row_len; j++) {
        col[row * p.row_len + j] = 0.0;
    }
}
