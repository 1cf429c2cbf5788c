// Depthwise convolution (one input and one output channel per group, dilation 1) on rows
// read as vec4s, for planes whose widths are multiples of 4, shared by
// conv_depthwise_rows4.wgsl (forward, stride-1 input gradient),
// conv_depthwise_rows4_grad_input.wgsl (stride-2 input gradient) and
// conv_depthwise_rows4_grad.wgsl (weight gradient). It is conv_direct.wgsl's common case
// with about a quarter of its memory operations: lavapipe runs every lane's load or store
// as a loop over the lanes, so their count, not their bytes, bounded that kernel.
//
// A "chunk" is 4 consecutive columns. Output chunk c of a row reads, from each of the KH
// source rows it spans, a strip of STRIDE_W + 2 source chunks: the chunk before its
// columns, the STRIDE_W chunks under them, and the chunk after. Output column 4c + k, tap
// kx reads float STRIDE_W·k + kx + 4 - PAD_W of the strip, which the host keeps inside it
// (PAD_W ≤ 4, KW - PAD_W ≤ STRIDE_W + 4). Moving to chunk c + 1 keeps the strip's last two
// chunks and loads STRIDE_W new ones per row.
//
// The includer binds `src: array<vec4<f32>>` (the source planes) and a uniform
// `p: Params`, whose fields are src/ops/conv/depthwise_rows4.rs's.

struct Params {
    total: u32, // forward: invocations; weight_grad: workgroups
    channels: u32,
    h_src: u32,
    w_src4: u32, // source row, in chunks
    h_dst: u32,
    w_dst4: u32, // output (forward) or dy (weight_grad) row, in chunks
    stride_h: u32,
    pad_h: u32,
    segments: u32,  // forward: per row; weight_grad: per channel
    seg_len: u32,   // forward: chunks; weight_grad: items
    chunk_len: u32, // weight_grad: chunks per item
    row_items: u32, // forward: rows per invocation; weight_grad: items per row
    items: u32,     // forward: rows of the batch; weight_grad: items per channel
    coef_offset: u32,
}

override KH: u32 = 3u;
override KW: u32 = 3u;
override STRIDE_W: u32 = 1u; // 1 or 2
// An override rather than a field, so that the strips' indices are constants and the
// strips stay in registers.
override PAD_W: u32 = 1u;

// Register budgets, checked by the host.
const KH_MAX: u32 = 7u;
const TAPS_MAX: u32 = 49u;
const STRIP: u32 = 4u; // chunks per strip, at most (STRIDE_W + 2)

// The strips of the KH source rows.
alias Strips = array<array<vec4<f32>, STRIP>, KH_MAX>;

// The work of invocation i of a kernel walking destination rows (`RowPlan` in
// src/ops/conv/depthwise_rows4.rs): rows first..end of the batch's `items`, and of each
// row the steps step0..step1 of its `steps` (chunks, or pairs of them). That is
// `row_items` whole rows, or one range of `seg_len` steps of one row (segments > 1).
struct RowWork {
    first: u32,
    end: u32,
    step0: u32,
    step1: u32,
}

fn row_work(i: u32, steps: u32) -> RowWork {
    let first = (i / p.segments) * p.row_items;
    let step0 = (i % p.segments) * p.seg_len;
    return RowWork(first, min(first + p.row_items, p.items), step0, min(step0 + p.seg_len, steps));
}

// Source chunk q of row `row` of the plane at `base`; zeros off the image. The address is
// clamped so the load is always in bounds.
fn chunk_at(base: u32, row: i32, q: i32) -> vec4<f32> {
    let inside = row >= 0 && row < i32(p.h_src) && q >= 0 && q < i32(p.w_src4);
    let r = u32(clamp(row, 0, i32(p.h_src) - 1));
    let c = u32(clamp(q, 0, i32(p.w_src4) - 1));
    return select(vec4<f32>(0.0), src[base + r * p.w_src4 + c], inside);
}

// Fills the strips for output chunk c of the rows from `top`.
fn load_strips(s: ptr<function, Strips>, base: u32, top: i32, c: u32) {
    let first = i32(c * STRIDE_W) - 1;
    for (var ky = 0u; ky < KH; ky++) {
        for (var q = 0u; q < STRIDE_W + 2u; q++) {
            (*s)[ky][q] = chunk_at(base, top + i32(ky), first + i32(q));
        }
    }
}

// Moves the strips from output chunk c - 1 to c: the last two chunks stay.
fn slide_strips(s: ptr<function, Strips>, base: u32, top: i32, c: u32) {
    let first = i32(c * STRIDE_W) - 1;
    for (var ky = 0u; ky < KH; ky++) {
        (*s)[ky][0] = (*s)[ky][STRIDE_W];
        (*s)[ky][1] = (*s)[ky][STRIDE_W + 1u];
        for (var q = 2u; q < STRIDE_W + 2u; q++) {
            (*s)[ky][q] = chunk_at(base, top + i32(ky), first + i32(q));
        }
    }
}

// The 4 source values tap (ky, kx) meets for the chunk's 4 outputs.
fn tap_vec(s: ptr<function, Strips>, ky: u32, kx: u32) -> vec4<f32> {
    var v: vec4<f32>;
    for (var k = 0u; k < 4u; k++) {
        let at = STRIDE_W * k + kx + 4u - PAD_W;
        v[k] = (*s)[ky][at / 4u][at % 4u];
    }
    return v;
}
