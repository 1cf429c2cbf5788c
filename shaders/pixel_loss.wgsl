// Cross-entropy per pixel over the channel axis of logits [N, C, H, W] (semantic
// segmentation), pixels whose target is IGNORE left out. From each pixel's maximum m
// and s = Σ_c exp(x_c - m) over its channels (reduce.wgsl, which splits long channel
// runs so no invocation loops past the loop budget):
//   loss = log s - (x_t - m)                                      (entry `pixels`)
//   dx_c = scale·(exp(x_c - m) / s - [c == t]), 0 where ignored   (entry `backward`)
// `targets` holds each pixel's class as a u32; the host has checked each is < C or
// IGNORE.

struct Params {
    n: u32,       // invocations: pixels (pixels) or elements (backward)
    classes: u32,
    plane: u32,   // H·W
    scale: f32,   // backward: grad_loss / (pixels counted)
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> targets: array<u32>;
@group(0) @binding(2) var<storage, read> pixel_max: array<f32>;
@group(0) @binding(3) var<storage, read> pixel_sum: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

const WG: u32 = 256u;
const IGNORE: u32 = 0xffffffffu;

// Each pixel's loss (0 for an ignored one).
@compute @workgroup_size(WG)
fn pixels(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = group_index(wid, nwg) * WG + lid;
    if i >= p.n {
        return;
    }
    let t = targets[i];
    if t == IGNORE {
        out[i] = 0.0;
        return;
    }
    let n = i / p.plane;
    let q = i % p.plane;
    out[i] = log(pixel_sum[i]) - (x[(n * p.classes + t) * p.plane + q] - pixel_max[i]);
}

// The gradient of the mean loss with respect to each logit.
@compute @workgroup_size(WG)
fn backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = group_index(wid, nwg) * WG + lid;
    if e >= p.n {
        return;
    }
    let q = e % p.plane;
    let nc = e / p.plane;
    let c = nc % p.classes;
    let pixel = (nc / p.classes) * p.plane + q;
    let t = targets[pixel];
    if t == IGNORE {
        out[e] = 0.0;
        return;
    }
    let prob = exp(x[e] - pixel_max[pixel]) / pixel_sum[pixel];
    out[e] = p.scale * (prob - select(0.0, 1.0, c == t));
}
