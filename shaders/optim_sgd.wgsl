// One SGD step for one parameter, fused: weight decay, momentum (plain or Nesterov) and
// the update in a single pass, with PyTorch's `torch.optim.SGD` semantics:
//   g = grad + wd·p
//   buf = g (first step) | momentum·buf + (1 - dampening)·g
//   g = nesterov ? g + momentum·buf : buf
//   p = p - lr·g
// Two entry points: `plain` (momentum 0: no buffer at all) and `momentum`. Their bindings
// differ from slot 3 on, so each entry point has its own globals there; a binding number
// is only required to be unique among the globals one entry point uses.

struct Params {
    n: u32,
    flags: u32,
    lr: f32,
    weight_decay: f32,
    momentum: f32,
    dampening: f32,
}

// Bits of p.flags.
const FIRST_STEP: u32 = 1u; // no momentum buffer yet: the host binds grad in its slot
const NESTEROV: u32 = 2u;

const WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> param: array<f32>;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> param_out: array<f32>;

// `plain`: binding 3 is the parameter block.
@group(0) @binding(3) var<uniform> plain_p: Params;

// `momentum`: bindings 3 and 4 are the buffer in and out, 5 the parameter block.
@group(0) @binding(3) var<storage, read> buf: array<f32>;
@group(0) @binding(4) var<storage, read_write> buf_out: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn plain(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = group_index(wid, nwg) * WG + lid;
    if i >= plain_p.n {
        return;
    }
    let w = param[i];
    let g = grad[i] + plain_p.weight_decay * w;
    param_out[i] = w - plain_p.lr * g;
}

@compute @workgroup_size(WG)
fn momentum(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = group_index(wid, nwg) * WG + lid;
    if i >= p.n {
        return;
    }
    let w = param[i];
    var g = grad[i] + p.weight_decay * w;
    var b = g;
    if (p.flags & FIRST_STEP) == 0u {
        b = p.momentum * buf[i] + (1.0 - p.dampening) * g;
    }
    if (p.flags & NESTEROV) != 0u {
        g = g + p.momentum * b;
    } else {
        g = b;
    }
    buf_out[i] = b;
    param_out[i] = w - p.lr * g;
}
