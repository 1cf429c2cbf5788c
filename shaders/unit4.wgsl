// The units batch norm's kernels read a channel's planes in (see channel_walk.wgsl):
// here 4 floats, one vec4 load or store each, for planes of a multiple of 4 floats
// (nearly every layer). A kernel built with this prelude binds its tensors as
// array<Unit>. unit1.wgsl is the same for any plane.

alias Unit = vec4<f32>;
alias UnitBits = vec4<u32>;
alias UnitMask = vec4<bool>;
const UNIT: u32 = 4u;

// The sum of a unit's floats.
fn unit_sum(v: Unit) -> f32 {
    return v.x + v.y + v.z + v.w;
}
