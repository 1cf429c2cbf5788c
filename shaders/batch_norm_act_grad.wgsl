// The gradient reaching batch norm's output through the activation fused after it (ACT:
// 0 none, 1 ReLU, 2 ReLU6), for batch_norm_grad_sums.wgsl and batch_norm_grad_input.wgsl,
// which bind `y` as array<Unit>. ReLU passes dy where its input z > 0, ReLU6
// where 0 < z < 6 (NaN: nowhere). With MASK_FROM_INPUT (training) z is recomputed from x
// with the forward's scale and shift, saving a read of y; else (the frozen backward) it is
// read off the output y, equal to z wherever the activation passed it.
// Prepended to the kernels that say `// requires: batch_norm_act_grad.wgsl`.

override ACT: u32 = 0u;
override MASK_FROM_INPUT: bool = false;

// The gradient at batch norm's output for element unit o, whose dy and x the caller
// has loaded (lavapipe does not merge repeated loads of one element: each costs a loop
// over the lanes). `ss`: the channel's scale and shift, with MASK_FROM_INPUT.
fn grad(o: u32, dy_o: Unit, x_o: Unit, ss: vec2<f32>) -> Unit {
    if ACT == 0u {
        return dy_o;
    }
    // The activation's input: recomputed from x as the forward computed it (training
    // saves its scale and shift), or read off the output y (where the activation passed
    // its input, y is that input).
    var v: Unit;
    if MASK_FROM_INPUT {
        v = x_o * ss.x + ss.y;
    } else {
        v = y[o];
    }
    if ACT == 1u {
        return select(Unit(0.0), dy_o, v > Unit(0.0));
    }
    return select(Unit(0.0), dy_o, v > Unit(0.0) & v < Unit(6.0));
}
