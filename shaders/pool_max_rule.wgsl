// Max pooling's rule for a running maximum, shared by pool_max.wgsl and
// pool_max_combine.wgsl (prepended to both; see src/gpu/kernel.rs: full_source).

// Marks "no tap seen yet"; never a real index, as planes are far smaller.
const NONE: u32 = 0xffffffffu;

// As PyTorch: the first maximum in row-major window order wins, a NaN always wins (so the
// last NaN), and a window of only -inf points at its first tap. `best_at == NONE` until a
// tap is taken.
fn better(v: f32, best: f32, best_at: u32) -> bool {
    return best_at == NONE || v > best || is_nan(v);
}
