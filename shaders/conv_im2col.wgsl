// im2col for the GEMM path of convolution: copies each output pixel's receptive field
// into a row (pixel_major, for the forward product) or each kernel tap's values over the
// output pixels into a row (tap_major, for the weight gradient). Rows are zero-padded to
// `row_len` (a multiple of 4) so the matmul kernels can read them as vec4s. Out-of-image
// taps read 0.
//
// A row of group g holds the taps of its input channels in PyTorch's weight order:
// k = ci_local·kh·kw + ky·kw + kx. A launch covers samples n0.. and, of each, the output
// pixels pix0..pix0 + pixels (a whole sample, or a slice of a very large one).
//
// Each invocation writes `seg4` vec4s of one row (a row longer than the loop budget
// allows is split between `segments` invocations; src/gpu/loops.rs), four values at a
// time (one vec4 store instead of four scalar ones: on CPU adapters every lane-divergent
// store is a loop over lanes), walking the row's coordinates incrementally.

struct Params {
    invocations: u32, // rows · segments
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
    pix0: u32,    // first output pixel of the chunk, within its sample
    pixels: u32,  // output pixels of the chunk
    segments: u32, // invocations per row
    seg4: u32,    // vec4s per invocation
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
    let i = group_index(wid, nwg) * WG + lid;
    if i >= p.invocations {
        return;
    }
    let row = i / p.segments;
    let q0 = (i % p.segments) * p.seg4;
    let q1 = min(q0 + p.seg4, p.row_len / 4u);
    let pix = p.pix0 + row % p.pixels;
    let g = (row / p.pixels) % p.groups;
    let n = p.n0 + row / (p.pixels * p.groups);
    let top = i32((pix / p.wo) * p.stride_h) - i32(p.pad_h);
    let left = i32((pix % p.wo) * p.stride_w) - i32(p.pad_w);
    let plane_size = p.h * p.w;
    let first_plane = (n * p.c_in + g * p.cin_g) * plane_size;
    // The tap (channel cl, ky, kx) of the segment's first value.
    let taps = p.kh * p.kw;
    var cl = (q0 * 4u) / taps;
    var ky = ((q0 * 4u) % taps) / p.kw;
    var kx = (q0 * 4u) % p.kw;
    let base = row * (p.row_len / 4u);
    for (var q = q0; q < q1; q++) {
        var v = vec4<f32>(0.0);
        for (var j = 0u; j < 4u; j++) {
            let value = input_at(first_plane + min(cl, p.cin_g - 1u) * plane_size, top + i32(ky * p.dil_h), left + i32(kx * p.dil_w));
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
    let i = group_index(wid, nwg) * WG + lid;
    if i >= p.invocations {
        return;
    }
    let row = i / p.segments;
    let q0 = (i % p.segments) * p.seg4;
    let q1 = min(q0 + p.seg4, p.row_len / 4u);
    let k = row % p.k_g;
    let g = (row / p.k_g) % p.groups;
    let n = p.n0 + row / (p.k_g * p.groups);
    let taps = p.kh * p.kw;
    let cl = k / taps;
    let ky = (k % taps) / p.kw;
    let kx = k % p.kw;
    let plane = ((n * p.c_in) + g * p.cin_g + cl) * p.h * p.w;
    // The output pixel (oh, ow) of the segment's first value, and how many values of the
    // chunk remain from there (past them: padding).
    let first = p.pix0 + q0 * 4u;
    var oh = first / p.wo;
    var ow = first % p.wo;
    var left = i32(p.pixels) - i32(q0 * 4u);
    let base = row * (p.row_len / 4u);
    for (var q = q0; q < q1; q++) {
        var v = vec4<f32>(0.0);
        for (var j = 0u; j < 4u; j++) {
            let ih = i32(oh * p.stride_h + ky * p.dil_h) - i32(p.pad_h);
            let iw = i32(ow * p.stride_w + kx * p.dil_w) - i32(p.pad_w);
            v[j] = select(0.0, input_at(plane, ih, iw), left > 0);
            left--;
            ow++;
            if ow == p.wo {
                ow = 0u;
                oh++;
            }
        }
        col[base + q] = v;
    }
}
