// Helpers prepended to every kernel (see src/gpu/kernel.rs: full_source).

// The linear number of this workgroup in a grid that the host folded over y and z
// (src/gpu/grid.rs) because it passed the per-dimension limit. Uniform across the workgroup.
fn group_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + nwg.x * (wid.y + nwg.y * wid.z);
}
