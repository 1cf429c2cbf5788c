// How the batch-norm kernels walk one channel of an [N, C, S] tensor (NCHW and kin),
// prepended to the kernels that say `// requires: channel_walk.wgsl`.
//
// Workgroup number g (of CHANNEL_WG invocations) takes channel g / segments and, of it,
// segment g % segments: a range of samples, and of each sample's plane of S floats a
// range of positions. A plane is read in units (unit4.wgsl: vec4s, when S is a multiple
// of 4; unit1.wgsl: floats), one load each; 2^lane_shift lanes share a plane, each taking
// every 2^lane_shift-th unit, and the workgroup's other lanes take the next samples. So
// no index is divided per element: lavapipe divides integers one lane at a time, and
// that division, and then its loads of single floats, bounded the general kernels'
// speed. The includer requires a unit prelude first and binds a uniform `p: Params`,
// whose fields are ChannelWalk's (src/ops/batch_norm.rs).

const CHANNEL_WG: u32 = 256u;

struct Params {
    channels: u32,
    plane_units: u32,
    lane_shift: u32,
    samples: u32,
    seg_samples: u32,
    pos_segs: u32,
    seg_units: u32,
    segments: u32,
}

struct Walk {
    channel: u32,
    // Samples n_first, n_first + n_step, ... below n_end.
    n_first: u32,
    n_end: u32,
    n_step: u32,
    // Units j_first, j_first + j_step, ... below j_end of each sample's plane.
    j_first: u32,
    j_end: u32,
    j_step: u32,
}

// Workgroup g's part of the walk, for lane `lid`. Call with g < channels · segments.
fn channel_walk(g: u32, lid: u32) -> Walk {
    let seg = g % p.segments;
    let sample_seg = seg / p.pos_segs;
    let pos_seg = seg % p.pos_segs;
    let lanes = 1u << p.lane_shift;
    var w: Walk;
    w.channel = g / p.segments;
    w.n_first = sample_seg * p.seg_samples + (lid >> p.lane_shift);
    w.n_end = min((sample_seg + 1u) * p.seg_samples, p.samples);
    w.n_step = CHANNEL_WG >> p.lane_shift;
    w.j_first = pos_seg * p.seg_units + (lid & (lanes - 1u));
    w.j_end = min((pos_seg + 1u) * p.seg_units, p.plane_units);
    w.j_step = lanes;
    return w;
}

// Where sample n's plane of channel c begins, in units.
fn plane_base(n: u32, c: u32) -> u32 {
    return (n * p.channels + c) * p.plane_units;
}

// Whether each float of v is NaN, tested on its bits (compilers may fold v != v).
fn unit_is_nan(v: Unit) -> UnitMask {
    return (bitcast<UnitBits>(v) & UnitBits(0x7fffffffu)) > UnitBits(0x7f800000u);
}
