// Pooling geometry shared by pool.wgsl and pool_max.wgsl (prepended to both; see
// src/gpu/kernel.rs: full_source): the parameter block, the window of taps an output
// reads, the outputs whose windows cover an input element, and the walk over a segment of
// a 2-D range. It uses the including file's uniform `p`.
//
// Each invocation handles one element's range (its window, or the outputs covering it)
// or, when ranges are longer than the loop budget allows (src/gpu/loops.rs), one of
// `segments` pieces of `seg_len` positions of it, in row-major order; the host then
// combines the pieces' partial results.

struct Params {
    // Invocations: output elements (forward) or input elements (backward).
    n: u32,
    in_h: i32,
    in_w: i32,
    out_h: i32,
    out_w: i32,
    // Fixed windows only (ADAPTIVE = false): kernel, stride, padding, dilation.
    k_h: i32,
    k_w: i32,
    s_h: i32,
    s_w: i32,
    pad_h: i32,
    pad_w: i32,
    d_h: i32,
    d_w: i32,
    segments: u32,
    seg_len: u32,
}

override ADAPTIVE: bool = false;

const WG: u32 = 256u;

// The positions one output reads along one axis: `first + j * step` for j < count. Fixed
// windows may reach into the padding (outside 0..size); adaptive bins never do.
struct Taps {
    first: i32,
    count: i32,
    step: i32,
}

fn taps(o: i32, size: i32, out: i32, k: i32, s: i32, pad: i32, d: i32) -> Taps {
    if ADAPTIVE {
        // PyTorch's bins: floor(o * size / out) up to ceil((o + 1) * size / out). The host
        // keeps (size + 1) * (out + 1) within i32.
        let first = (o * size) / out;
        let end = ((o + 1) * size + out - 1) / out;
        return Taps(first, end - first, 1);
    }
    return Taps(o * s - pad, k, d);
}

// The taps of `t` that fall inside 0..size: a sub-range, as the taps are evenly spaced.
fn inside(t: Taps, size: i32) -> Taps {
    // First j with first + j·step >= 0, and one past the last with it < size.
    let lo = select(0, (-t.first + t.step - 1) / t.step, t.first < 0);
    let hi = min(t.count, select(0, (size - 1 - t.first) / t.step + 1, t.first < size));
    return Taps(t.first + lo * t.step, max(hi - lo, 0), t.step);
}

// The outputs [lo, hi] along one axis whose tap span contains position `i`. With
// dilation a span can skip `i`; callers that care check (max pooling compares indices).
fn covering(i: i32, size: i32, out: i32, k: i32, s: i32, pad: i32, d: i32) -> vec2<i32> {
    if ADAPTIVE {
        // Inverting the bin bounds above: floor(i * out / size) to
        // ceil((i + 1) * out / size) - 1.
        return vec2(
            (i * out) / size,
            min(((i + 1) * out + size - 1) / size - 1, out - 1),
        );
    }
    // o * s - pad <= i <= o * s - pad + (k - 1) * d, and 0 <= o < out.
    let reach = i + pad;
    return vec2(
        (max(reach - (k - 1) * d, 0) + s - 1) / s,
        min(reach / s, out - 1),
    );
}

fn taps_h(o: i32) -> Taps {
    return taps(o, p.in_h, p.out_h, p.k_h, p.s_h, p.pad_h, p.d_h);
}

fn taps_w(o: i32) -> Taps {
    return taps(o, p.in_w, p.out_w, p.k_w, p.s_w, p.pad_w, p.d_w);
}

fn covering_h(i: i32) -> vec2<i32> {
    return covering(i, p.in_h, p.out_h, p.k_h, p.s_h, p.pad_h, p.d_h);
}

fn covering_w(i: i32) -> vec2<i32> {
    return covering(i, p.in_w, p.out_w, p.k_w, p.s_w, p.pad_w, p.d_w);
}

// Element `e` of a [planes, rows, cols] array as (plane, row, col).
fn split(e: u32, rows: i32, cols: i32) -> vec3<u32> {
    let c = u32(cols);
    let r = u32(rows);
    return vec3(e / (r * c), (e / c) % r, e % c);
}

// Invocation `i` as (element, first and end position of its piece of a range of `len`).
struct Piece {
    element: u32,
    first: u32,
    end: u32,
}

fn piece(i: u32, len: u32) -> Piece {
    let first = (i % p.segments) * p.seg_len;
    return Piece(i / p.segments, first, min(first + p.seg_len, len));
}

