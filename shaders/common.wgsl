// Helpers prepended to every kernel (see src/gpu/kernel.rs: full_source).

// The linear number of this workgroup in a grid that the host folded over y and z
// (src/gpu/grid.rs) because it passed the per-dimension limit. Uniform across the workgroup.
fn group_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + nwg.x * (wid.y + nwg.y * wid.z);
}

// Whether v is NaN, tested on its bits: WGSL lets compilers assume floats are never NaN,
// so `v != v` may fold to false.
fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

// max() that propagates NaN, as PyTorch's max does (WGSL's max may return either operand).
fn max_nan(u: f32, v: f32) -> f32 {
    if is_nan(u) {
        return u;
    }
    return select(max(u, v), v, is_nan(v));
}
