// Unary elementwise ops, one pipeline per OP (an override constant, so the switch folds
// away when the pipeline is built). Definitions follow PyTorch.

struct Params {
    n: u32,
    alpha: f32, // AFFINE: y = alpha * x + beta; LEAKY_RELU: the negative slope
    beta: f32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

override OP: u32 = 0u;
const NEG: u32 = 0u;
const EXP: u32 = 1u;
const LOG: u32 = 2u;
const SQRT: u32 = 3u;
const RELU: u32 = 4u;
const RELU6: u32 = 5u;
const SIGMOID: u32 = 6u;
const TANH: u32 = 7u;
const HARDSIGMOID: u32 = 8u;
const HARDSWISH: u32 = 9u;
const SILU: u32 = 10u;
const AFFINE: u32 = 11u;
const LEAKY_RELU: u32 = 12u;

const WG: u32 = 256u;

fn sigmoid(v: f32) -> f32 {
    return 1.0 / (1.0 + exp(-v));
}

fn apply(v: f32) -> f32 {
    // Every op maps NaN to NaN, as PyTorch's do; max and clamp need not (WGSL leaves
    // their result on NaN to the implementation), so it is passed through here.
    if is_nan(v) {
        return v;
    }
    switch OP {
        case NEG: { return -v; }
        case EXP: { return exp(v); }
        case LOG: { return log(v); }
        case SQRT: { return sqrt(v); }
        case RELU: { return max(v, 0.0); }
        case RELU6: { return clamp(v, 0.0, 6.0); }
        case SIGMOID: { return sigmoid(v); }
        // tanh's exp-based lowering overflows to NaN for large |v| on some drivers;
        // tanh(±10) is ±1 in f32 already.
        case TANH: { return tanh(clamp(v, -10.0, 10.0)); }
        case HARDSIGMOID: { return clamp(v + 3.0, 0.0, 6.0) / 6.0; }
        case HARDSWISH: { return v * clamp(v + 3.0, 0.0, 6.0) / 6.0; }
        case SILU: { return v * sigmoid(v); }
        case AFFINE: { return p.alpha * v + p.beta; }
        case LEAKY_RELU: { return select(p.alpha * v, v, v > 0.0); }
        default: { return v; }
    }
}

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = group_index(wid, nwg) * WG + lid;
    if i < p.n {
        y[i] = apply(x[i]);
    }
}
