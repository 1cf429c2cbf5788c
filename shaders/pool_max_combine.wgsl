// Max pooling over windows longer than the loop budget allows (src/gpu/loops.rs):
// pool_max.wgsl's max_forward wrote each output's segments' maxima and indices
// ([outputs, s_in], index NONE for a segment of padding only). Each invocation takes the
// maximum of `group` consecutive segments of one output, in window order, by the same
// rule, writing [outputs, s_out]; the host repeats this until one is left per output.

// requires: pool_max_rule.wgsl

struct Params {
    n: u32, // outputs · s_out
    s_in: u32,
    s_out: u32,
    group: u32,
}

@group(0) @binding(0) var<storage, read> values: array<f32>;
@group(0) @binding(1) var<storage, read> partial_indices: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<storage, read_write> indices: array<u32>;
@group(0) @binding(4) var<uniform> p: Params;

const WG: u32 = 256u;

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
    let o = i / p.s_out;
    let first = (i % p.s_out) * p.group;
    let end = min(first + p.group, p.s_in);
    var best = bitcast<f32>(0xff800000u); // -inf
    var best_at = NONE;
    for (var s = o * p.s_in + first; s < o * p.s_in + end; s++) {
        let at = partial_indices[s];
        if at != NONE && better(values[s], best, best_at) {
            best = values[s];
            best_at = at;
        }
    }
    dst[i] = best;
    indices[i] = best_at;
}
