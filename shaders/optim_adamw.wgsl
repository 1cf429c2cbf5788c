// One AdamW step for one parameter, fused, with PyTorch's `torch.optim.AdamW` semantics
// (decoupled weight decay, bias corrections from the step count t):
//   p = p·(1 - lr·wd)
//   m = β1·m + (1 - β1)·g          v = β2·v + (1 - β2)·g²
//   p = p - (lr / (1 - β1^t)) · m / (√v / √(1 - β2^t) + eps)
// The host computes the per-step scalars (decay factor, step size, √(1 - β2^t)) in f64.

struct Params {
    n: u32,
    flags: u32,
    decay: f32,        // 1 - lr·wd
    beta1: f32,
    beta2: f32,
    eps: f32,
    step_size: f32,    // lr / (1 - β1^t)
    bias2_sqrt: f32,   // √(1 - β2^t)
}

// Bit of p.flags: no moments yet (t = 1); they start at zero, and the host binds grad in
// their slots.
const FIRST_STEP: u32 = 1u;

const WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> param: array<f32>;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read> exp_avg: array<f32>;
@group(0) @binding(3) var<storage, read> exp_avg_sq: array<f32>;
@group(0) @binding(4) var<storage, read_write> param_out: array<f32>;
@group(0) @binding(5) var<storage, read_write> exp_avg_out: array<f32>;
@group(0) @binding(6) var<storage, read_write> exp_avg_sq_out: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = group_index(wid, nwg) * WG + lid;
    if i >= p.n {
        return;
    }
    let g = grad[i];
    var m = 0.0;
    var v = 0.0;
    if (p.flags & FIRST_STEP) == 0u {
        m = exp_avg[i];
        v = exp_avg_sq[i];
    }
    // PyTorch: exp_avg.lerp_(grad, 1 - β1), i.e. m + (1 - β1)(g - m).
    m = m + (1.0 - p.beta1) * (g - m);
    v = p.beta2 * v + (1.0 - p.beta2) * g * g;
    let denom = sqrt(v) / p.bias2_sqrt + p.eps;
    param_out[i] = param[i] * p.decay - p.step_size * m / denom;
    exp_avg_out[i] = m;
    exp_avg_sq_out[i] = v;
}
