// Workgroup-wide reductions, prepended to the kernels that say `// requires:
// workgroup_reduce.wgsl` (see src/gpu/kernel.rs: full_source). Their workgroups have
// REDUCE_WG invocations.

const REDUCE_WG: u32 = 64u;

var<workgroup> reduce_scratch: array<f32, REDUCE_WG>;

// Combines every invocation's `v` by sum (or by max, NaN winning, when `take_max`); every
// invocation gets the result. Call from uniform control flow.
fn workgroup_reduce(lid: u32, v: f32, take_max: bool) -> f32 {
    reduce_scratch[lid] = v;
    workgroupBarrier();
    for (var half = REDUCE_WG / 2u; half > 0u; half /= 2u) {
        if lid < half {
            let other = reduce_scratch[lid + half];
            reduce_scratch[lid] = select(reduce_scratch[lid] + other, max_nan(reduce_scratch[lid], other), take_max);
        }
        workgroupBarrier();
    }
    let result = reduce_scratch[0];
    workgroupBarrier(); // everyone has read the result before the scratch is reused
    return result;
}

// The workgroup-wide sum of every invocation's `v`.
fn workgroup_sum(lid: u32, v: f32) -> f32 {
    return workgroup_reduce(lid, v, false);
}
