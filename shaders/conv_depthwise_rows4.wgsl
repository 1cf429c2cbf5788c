// requires: depthwise_strips.wgsl
// requires: fused_act.wgsl
// Depthwise convolution's forward on vec4 rows (see depthwise_strips.wgsl): one invocation
// per `row_items` consecutive output rows of the batch's `items` (which share a plane's
// weights, loaded once), or per range of `seg_len` chunks of one row when a row is longer
// than the loop budget allows. dst[plane, oh, ow] = Σ src[plane, oh·stride_h - pad_h + ky,
// ow·STRIDE_W - pad_w + kx] · w[channel, ky, kx].
//
// With FLIP the kernel is read flipped: the input gradient of a stride-1 convolution
// (src = dy, dst = dx, padding k - 1 - p). With SCALE_SHIFT each result ends in
// fused_act(v · scale + shift), a scale and shift per channel read from `wts` from
// coef_offset on (an evaluation-mode batch norm folded in). With MOMENTS each invocation
// also writes the (count, mean, M2) of its results to `moments` (M2: the sum of squared
// deviations from the mean), [channels, segments, 3]: batch_norm_stats.wgsl merges them,
// so a batch norm after the convolution needs no pass of its own over its input. The host
// then makes row_items divide h_dst, so that an invocation's rows lie in one plane.

@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> wts: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;
// With MOMENTS, [channels, segments, 3], segment (sample · blocks + block) · p.segments +
// range, blocks being the h_dst / row_items blocks of rows of a plane; else any buffer,
// never touched.
@group(0) @binding(3) var<storage, read_write> moments: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

override FLIP: bool = false;
override SCALE_SHIFT: bool = false;
override MOMENTS: bool = false;

const WG: u32 = 64u;

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = group_index(wid, nwg) * WG + lid;
    if i >= p.total {
        return;
    }
    let work = row_work(i, p.w_dst4);
    let c0 = work.step0;
    let taps = KH * KW;
    var wt: array<f32, TAPS_MAX>;
    var scale = 1.0;
    var shift = 0.0;
    var loaded = p.channels; // no channel's weights yet
    var stats = vec3<f32>(0.0);
    for (var r = work.first; r < work.end; r++) {
        let oh = r % p.h_dst;
        let plane = r / p.h_dst;
        let channel = plane % p.channels;
        // Consecutive rows share their plane's weights: load them when the channel changes.
        if channel != loaded {
            loaded = channel;
            for (var t = 0u; t < taps; t++) {
                wt[t] = wts[channel * taps + select(t, taps - 1u - t, FLIP)];
            }
            if SCALE_SHIFT {
                scale = wts[p.coef_offset + 2u * channel];
                shift = wts[p.coef_offset + 2u * channel + 1u];
            }
        }
        let base = plane * p.h_src * p.w_src4;
        let top = i32(oh * p.stride_h) - i32(p.pad_h);
        var strips: Strips;
        load_strips(&strips, base, top, c0);
        let dst_row = (plane * p.h_dst + oh) * p.w_dst4;
        for (var c = c0; c < work.step1; c++) {
            if c > c0 {
                slide_strips(&strips, base, top, c);
            }
            var acc = vec4<f32>(0.0);
            for (var ky = 0u; ky < KH; ky++) {
                for (var kx = 0u; kx < KW; kx++) {
                    acc += tap_vec(&strips, ky, kx) * wt[ky * KW + kx];
                }
            }
            if SCALE_SHIFT {
                let v = acc * scale + shift;
                acc = vec4<f32>(fused_act(v.x), fused_act(v.y), fused_act(v.z), fused_act(v.w));
            }
            dst[dst_row + c] = acc;
            if MOMENTS {
                stats = merge_chunk(stats, acc);
            }
        }
    }
    if MOMENTS {
        let plane = work.first / p.h_dst;
        let blocks = p.h_dst / p.row_items;
        let block = (work.first % p.h_dst) / p.row_items;
        let sample = plane / p.channels;
        let segments = p.items / p.h_dst / p.channels * blocks * p.segments;
        let segment = (sample * blocks + block) * p.segments + i % p.segments;
        let at = 3u * ((plane % p.channels) * segments + segment);
        moments[at] = stats.x;
        moments[at + 1u] = stats.y;
        moments[at + 2u] = stats.z;
    }
}

// (count, mean, M2) of `a`'s values and the 4 of v together (Chan et al.'s update).
fn merge_chunk(a: vec3<f32>, v: vec4<f32>) -> vec3<f32> {
    let m = dot(v, vec4<f32>(0.25));
    let d = v - m;
    let n = a.x + 4.0;
    let delta = m - a.y;
    let f = 4.0 / n;
    return vec3<f32>(n, a.y + delta * f, a.z + dot(d, d) + delta * delta * a.x * f);
}
