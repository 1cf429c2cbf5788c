// im2col for the GEMM path of convolution: copies each output pixel's receptive field
// into a row (pixel_major, for the forward product) or each kernel tap's values over all
// output pixels into a row (tap_major, for the weight gradient). Rows are zero-padded to
// `row_len` (a multiple of 4) so the matmul kernels can read them as vec4s. Out-of-image
// taps read 0.
//
// A row of group g holds the taps of its input channels in PyTorch's weight order:
// k = ci_local·kh·kw + ky·kw + kx.
//
// Each invocation writes its row four values at a time (one vec4 store instead of four
// scalar ones: on CPU adapters every lane-divergent store is a loop over lanes) and walks
// the row's coordinates incrementally, without a division per element.

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
    row_len: u32, // padded row length of col, a multiple of 4
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> col: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> p: Params;

const WG: u32 = 64u;

// The input value at (ih, iw) of the plane starting at `plane`, 0 outside the image; the
// address is clamped so the load is always in bounds and needs no branch.
fn input_at(plane: u32, ih: i32, iw: i32) -> f32 {
    let inside = ih >= 0 && iw >= 0 && ih < i32(p.h) && iw < i32(p.w);
    let r = u32(clamp(ih, 0, i32(p.h) - 1));
    let c = u32(clamp(iw, 0, i32(p.w) - 1));
    return select(0.0, x[plane + r * p.w + c], inside);
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
    let plane_size = p.h * p.w;
    let first_plane = (n * p.c_in + g * p.cin_g) * plane_size;
    // The tap (channel cl, ky, kx) of the next value.
    var cl = 0u;
    var ky = 0u;
    var kx = 0u;
    let base = row * (p.row_len / 4u);
    for (var q = 0u; q < p.row_len / 4u; q++) {
        var v = vec4<f32>(0.0);
        for (var j = 0u; j < 4u; j++) {
            let value = input_at(first_plane + cl * plane_size, top + i32(ky * p.dil_h), left + i32(kx * p.dil_w));
            v[j] = select(0.0, value, cl < p.cin_g); // past k_g: padding
            kx++;
            if kx == p.kw {
                kx = 0u;
                ky++;
                if ky == p.kh {
                    ky = 0u;
                    cl++;
                }
            }
        }
        col[base + q] = v;
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
    // The output pixel (oh, ow) of the next value.
    var oh = 0u;
    var ow = 0u;
    let base = row * (p.row_len / 4u);
    for (var q = 0u; q < p.row_len / 4u; q++) {
        var v = vec4<f32>(0.0);
        for (var j = 0u; j < 4u; j++) {
            let ih = i32(oh * p.stride_h + ky * p.dil_h) - i32(p.pad_h);
            let iw = i32(ow * p.stride_w + kx * p.dil_w) - i32(p.pad_w);
            v[j] = select(0.0, input_at(plane, ih, iw), oh < p.ho); // past ho·wo: padding
            ow++;
            if ow == p.wo {
                ow = 0u;
                oh++;
            }
        }
        col[base + q] = v;
    }
}
