// The units batch norm's kernels read a channel's planes in (see channel_walk.wgsl):
// here single floats, for planes of any size. unit4.wgsl reads 4 at a time.

alias Unit = f32;
alias UnitBits = u32;
alias UnitMask = bool;
const UNIT: u32 = 1u;

// The sum of a unit's floats.
fn unit_sum(v: Unit) -> f32 {
    return v;
}
