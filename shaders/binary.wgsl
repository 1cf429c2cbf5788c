// Binary elementwise ops with NumPy/PyTorch broadcasting. The host merges dimensions so
// that `ndim` is as small as possible, and sets BROADCAST = false when both operands have
// the output's shape (then no index arithmetic is needed).

struct Params {
    n: u32,
    ndim: u32,
    alpha: f32, // LEAKY_RELU_GRAD: the negative slope
    _pad: u32,
    // Output shape and the operands' element strides (0 on a broadcast dimension), up to
    // 8 dimensions, innermost last; packed 4 to a vec4 for uniform layout rules.
    shape: array<vec4<u32>, 2>,
    a_strides: array<vec4<u32>, 2>,
    b_strides: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

override OP: u32 = 0u;
override BROADCAST: bool = true;
const ADD: u32 = 0u;
const SUB: u32 = 1u;
const MUL: u32 = 2u;
const DIV: u32 = 3u;
// Activation gradients: u = the incoming gradient, v = the activation's input.
const RELU_GRAD: u32 = 4u;
const RELU6_GRAD: u32 = 5u;
const SIGMOID_GRAD: u32 = 6u;
const HARDSIGMOID_GRAD: u32 = 7u;
const HARDSWISH_GRAD: u32 = 8u;
const SILU_GRAD: u32 = 9u;
const TANH_GRAD: u32 = 10u;
const LEAKY_RELU_GRAD: u32 = 11u;
// Binary cross-entropy with logits: u = the logit, v = the target in [0, 1].
const BCE_LOGITS: u32 = 12u;
const BCE_LOGITS_GRAD: u32 = 13u;

fn sigmoid(x: f32) -> f32 {
    return 1.0 / (1.0 + exp(-x));
}

const WG: u32 = 256u;
// Consecutive outputs per invocation: many on CPU adapters, where it saves integer
// divisions; few on GPUs, where neighbouring invocations should touch neighbouring words.
override PER_INVOCATION: u32 = 1u;

fn combine(u: f32, v: f32) -> f32 {
    switch OP {
        case ADD: { return u + v; }
        case SUB: { return u - v; }
        case MUL: { return u * v; }
        case DIV: { return u / v; }
        // PyTorch's conventions: the gradient is 0 at the kinks (x = 0, x = 6).
        case RELU_GRAD: { return select(0.0, u, v > 0.0); }
        case RELU6_GRAD: { return select(0.0, u, v > 0.0 && v < 6.0); }
        case SIGMOID_GRAD: {
            let s = sigmoid(v);
            return u * s * (1.0 - s);
        }
        case HARDSIGMOID_GRAD: { return select(0.0, u / 6.0, v > -3.0 && v < 3.0); }
        case HARDSWISH_GRAD: {
            // PyTorch: 0 below -3, 1 above 3, (2x + 3) / 6 between (both ends included).
            if v < -3.0 {
                return 0.0;
            }
            if v > 3.0 {
                return u;
            }
            return u * (2.0 * v + 3.0) / 6.0;
        }
        case SILU_GRAD: {
            let s = sigmoid(v);
            return u * s * (1.0 + v * (1.0 - s));
        }
        case TANH_GRAD: {
            // tanh saturates to ±1 in f32 past |v| = 10 (see unary.wgsl), and its
            // exp-based lowering can overflow there.
            let t = tanh(clamp(v, -10.0, 10.0));
            return u * (1.0 - t * t);
        }
        // PyTorch: the slope at x = 0 is the negative one.
        case LEAKY_RELU_GRAD: { return select(u * p.alpha, u, v > 0.0); }
        // max(u, 0) - u·v + log(1 + e^-|u|): no exponential of a large positive number,
        // so any logit is finite (PyTorch's formulation).
        case BCE_LOGITS: { return max(u, 0.0) - u * v + log(1.0 + exp(-abs(u))); }
        case BCE_LOGITS_GRAD: { return sigmoid(u) - v; }
        default: { return u; }
    }
}

// Offsets into a and b of output element i (the slow path: one division per dim).
fn operand_offsets(i: u32) -> vec2<u32> {
    var rest = i;
    var offsets = vec2<u32>(0u);
    for (var d = i32(p.ndim) - 1; d >= 0; d--) {
        let q = u32(d) / 4u;
        let r = u32(d) % 4u;
        let size = p.shape[q][r];
        let coord = rest % size;
        rest = rest / size;
        offsets += coord * vec2<u32>(p.a_strides[q][r], p.b_strides[q][r]);
    }
    return offsets;
}

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // Each invocation handles PER_INVOCATION consecutive outputs, so the index division
    // (slow: integer division has no SIMD form on CPUs) runs once per run, not per element.
    let first = (group_index(wid, nwg) * WG + lid) * PER_INVOCATION;
    if first >= p.n {
        return;
    }
    let last = min(first + PER_INVOCATION, p.n);
    if !BROADCAST {
        for (var i = first; i < last; i++) {
            out[i] = combine(a[i], b[i]);
        }
        return;
    }
    // Walk the innermost dimension by its strides; redo the division only on wrapping.
    let inner = p.ndim - 1u;
    let inner_size = p.shape[inner / 4u][inner % 4u];
    let inner_step = vec2<u32>(p.a_strides[inner / 4u][inner % 4u], p.b_strides[inner / 4u][inner % 4u]);
    var offsets = operand_offsets(first);
    var coord = first % inner_size;
    for (var i = first; i < last; i++) {
        out[i] = combine(a[offsets.x], b[offsets.y]);
        coord += 1u;
        if coord == inner_size {
            coord = 0u;
            offsets = operand_offsets(i + 1u);
        } else {
            offsets += inner_step;
        }
    }
}
