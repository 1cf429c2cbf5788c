// The activation a kernel applies to what it stores, set by the override ACT as in
// batch_norm_apply.wgsl (0 none, 1 ReLU, 2 ReLU6); NaN stays NaN, as in PyTorch.
// Prepended to the kernels that say `// requires: fused_act.wgsl`.

override ACT: u32 = 0u;

fn fused_act(v: f32) -> f32 {
    var r = v;
    if ACT == 1u {
        r = max(v, 0.0);
    } else if ACT == 2u {
        r = clamp(v, 0.0, 6.0);
    }
    return select(r, v, is_nan(v));
}
