//! The micro-benchmarks behind ShuffleNet V2's four design guidelines (Ma, Zhang, Zheng,
//! Sun, ECCV 2018, arXiv 1807.11164, Section 2, Tables 1–4), built from the public ops a
//! user's network calls ([`conv2d`], [`Tensor::relu`], [`Tensor::add`], [`concat()`]), so
//! they time what such a network would run. `benches/shufflenet_v2_guidelines.rs`,
//! `examples/guidelines_report.rs` and the smoke test `kernels-tests/guidelines.rs` all
//! build their networks here.
//!
//! Every network maps `[batch, c, size, size]` to the same shape (stride 1; 1×1 convs
//! unpadded, 3×3 padded by 1) by stacking one block [`DEPTH`] times, each block with its
//! own weights. How the settings the paper leaves open are read:
//! - Batch and spatial size are parameters. The paper used 56×56, batch 8 on its GPU and
//!   batch 1 on ARM; the bench and the report default to 56 and 8.
//! - Convolutions only, no bias and no batch norm: the paper's text names no other layer,
//!   and G4 is the one experiment about element-wise work, so no other one should carry it.
//! - Weights are N(0, 1/fan_in), so activations stay near unit size through the stack:
//!   plain N(0, 1) weights would overflow to inf after a few layers, and inf, NaN or
//!   subnormal values can change a CPU adapter's speed.
//! - G1: block = 1×1 c1→c2, then 1×1 c2→c1, with the paper's (c1, c2) pairs. They are
//!   equal-FLOP only roughly: (36, 432) has 5.1% fewer than (128, 128), hence G1's
//!   [`Guideline::flop_tolerance`] of 6%.
//! - G2: block = one 1×1 group conv c→c with g groups, the paper's (g, c) pairs
//!   (c²/g within 1.2% of 128²).
//! - G3 (Appendix Fig. 1, read as follows): 1-fragment = one 1×1 conv 128→128;
//!   k-fragment-series = k 1×1 convs c→c in a row with c = round(128/√k) (91 for k = 2,
//!   64 for k = 4); k-fragment-parallel = k 1×1 convs 128→128/k on the same input, their
//!   outputs concatenated along channels (Inception-style, which keeps c = 128 and the
//!   FLOPs exact; a sum would have added element-wise work, which is G4's subject).
//! - G4: ResNet's bottleneck with every width c (Table 4's caption gives one c "in unit";
//!   ResNet's 4c outer width would have made the 1×1 convs dominate): 1×1, 3×3 (pad 1),
//!   1×1, all c→c. With ReLU: after the first two convs and, as in ResNet, after the
//!   shortcut add (after the third conv when there is no shortcut).
//! - Only Table 1–2's ×1 columns and Table 3's c = 128 column are built (the ×2/×4 and
//!   c = 256/512 columns scale the channel widths); Table 4's c = 32, 64, 128 all are.
//!
//! Paper numbers: GPU in batches/s (GTX 1080Ti, batch 8), ARM in images/s (Snapdragon 810,
//! batch 1, one thread). The ARM columns of Tables 1–3 were measured at narrower widths
//! than the GPU ones ([`Guideline::paper_arm_widths`]); Table 4 uses the same c for both.

use crate::error::{Result, arg_err};
use crate::gpu::Device;
use crate::ops::channels::concat;
use crate::ops::conv::{Conv2dParams, conv2d};
use crate::tensor::Tensor;

/// Blocks stacked in every network: the paper's 10 in all four experiments.
pub const DEPTH: usize = 10;

/// One of the paper's four guidelines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Guideline {
    /// Equal channel width minimizes memory access cost (Table 1).
    G1,
    /// Excessive group convolution increases memory access cost (Table 2).
    G2,
    /// Network fragmentation reduces the degree of parallelism (Table 3).
    G3,
    /// Element-wise operations are non-negligible (Table 4).
    G4,
}

impl Guideline {
    /// All four, in the paper's order.
    pub const ALL: [Guideline; 4] = [Guideline::G1, Guideline::G2, Guideline::G3, Guideline::G4];

    /// `g1` … `g4`: the bench group names.
    pub fn name(self) -> &'static str {
        match self {
            Guideline::G1 => "g1",
            Guideline::G2 => "g2",
            Guideline::G3 => "g3",
            Guideline::G4 => "g4",
        }
    }

    /// The guideline as the paper states it.
    pub fn title(self) -> &'static str {
        match self {
            Guideline::G1 => "G1: equal channel width minimizes memory access cost",
            Guideline::G2 => "G2: excessive group convolution increases memory access cost",
            Guideline::G3 => "G3: network fragmentation reduces degree of parallelism",
            Guideline::G4 => "G4: element-wise operations are non-negligible",
        }
    }

    /// What one network of this guideline stacks, for table captions.
    pub fn structure(self) -> &'static str {
        match self {
            Guideline::G1 => "10 blocks of 1x1 conv c1->c2, 1x1 conv c2->c1",
            Guideline::G2 => "10 1x1 group convs c->c, g groups",
            Guideline::G3 => "10 blocks of 1..4 1x1 convs in series or in parallel (concat)",
            Guideline::G4 => "10 bottlenecks 1x1, 3x3, 1x1 (all c->c), ReLU / shortcut on or off",
        }
    }

    /// The widths the paper's ARM column of this table was measured at (its GPU widths,
    /// which liandan runs, are in each setting's name).
    pub fn paper_arm_widths(self) -> &'static str {
        match self {
            Guideline::G1 => "(c1,c2) = (32,32), (22,44), (13,78), (9,108)",
            Guideline::G2 => "c = 64, 90, 128, 180",
            Guideline::G3 => "c = 64 for 1-fragment",
            Guideline::G4 => "the same c as the GPU column",
        }
    }

    /// Largest relative FLOP difference allowed between two settings compared with each
    /// other (same [`GuidelineNet::column`]): 6% for G1, whose paper pair (36, 432) is 5.1%
    /// under 128²; 2% for G2 and G3 (integer channel counts); 0 for G4, whose variants
    /// differ only in element-wise work.
    pub fn flop_tolerance(self) -> f64 {
        match self {
            Guideline::G1 => 0.06,
            Guideline::G2 | Guideline::G3 => 0.02,
            Guideline::G4 => 0.0,
        }
    }
}

/// A k×k convolution, stride 1, padded to keep the spatial size, no bias.
struct Conv {
    weight: Tensor,
    params: Conv2dParams,
}

impl Conv {
    /// `c_in → c_out` in `groups` groups with N(0, 1/fan_in) weights from `seed`.
    fn new(
        device: &Device,
        c_in: usize,
        c_out: usize,
        k: usize,
        groups: usize,
        seed: u64,
    ) -> Result<Conv> {
        if groups == 0
            || !c_in.is_multiple_of(groups)
            || !c_out.is_multiple_of(groups)
            || k.is_multiple_of(2)
        {
            return arg_err!(
                "guideline conv: {groups} groups must divide {c_in} -> {c_out} channels and \
                 the kernel size {k} must be odd"
            );
        }
        let fan_in = c_in / groups * k * k;
        let weight = Tensor::randn(device, &[c_out, c_in / groups, k, k], seed)?
            .scale((1.0 / fan_in as f64).sqrt() as f32)?;
        Ok(Conv {
            weight,
            params: Conv2dParams::square(1, k / 2, 1, groups),
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        conv2d(x, &self.weight, None, &self.params)
    }
}

/// One of the stacked blocks.
enum Block {
    /// Convolutions one after another.
    Series(Vec<Conv>),
    /// Convolutions of the same input, outputs concatenated along channels.
    Parallel(Vec<Conv>),
    /// ResNet's bottleneck: three convs, ReLUs and the shortcut add each optional.
    Bottleneck {
        convs: Box<[Conv; 3]>,
        relu: bool,
        shortcut: bool,
    },
}

impl Block {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Block::Series(convs) => convs.iter().try_fold(x.clone(), |y, conv| conv.forward(&y)),
            Block::Parallel(convs) => {
                let outs = convs
                    .iter()
                    .map(|conv| conv.forward(x))
                    .collect::<Result<Vec<_>>>()?;
                concat(&outs.iter().collect::<Vec<_>>(), 1)
            }
            Block::Bottleneck {
                convs,
                relu,
                shortcut,
            } => {
                let act = |t: Tensor| if *relu { t.relu() } else { Ok(t) };
                let y = act(convs[0].forward(x)?)?;
                let y = act(convs[1].forward(&y)?)?;
                let y = convs[2].forward(&y)?;
                act(if *shortcut { y.add(x)? } else { y })
            }
        }
    }

    fn convs(&self) -> &[Conv] {
        match self {
            Block::Series(convs) | Block::Parallel(convs) => convs,
            Block::Bottleneck { convs, .. } => &convs[..],
        }
    }
}

/// One setting of one guideline: a stacked network, its input, and the paper's numbers.
pub struct GuidelineNet {
    /// The guideline it belongs to.
    pub guideline: Guideline,
    /// The setting as the paper's table names it, with liandan's channel counts,
    /// e.g. `1:2 (90,180)` or `2-fragment-series (c=91)`.
    pub setting: String,
    /// A short name without spaces for bench ids, e.g. `1to2_c90_c180`.
    pub id: String,
    /// The paper's column the numbers come from (`x1`, `c=128`, `c=32`...): settings are
    /// normalized and ranked only against others of the same guideline and column.
    pub column: &'static str,
    /// The paper's GPU throughput, batches/s (GTX 1080Ti, batch 8).
    pub paper_gpu: f64,
    /// The paper's ARM throughput, images/s (Snapdragon 810, batch 1), where known; note
    /// its widths ([`Guideline::paper_arm_widths`]).
    pub paper_arm: Option<f64>,
    input: Tensor,
    blocks: Vec<Block>,
}

impl GuidelineNet {
    /// Records a forward pass of the whole stack on the stored input and returns the
    /// output; call `Device::synchronize` to wait for it.
    pub fn forward(&self) -> Result<Tensor> {
        self.blocks
            .iter()
            .try_fold(self.input.clone(), |x, block| block.forward(&x))
    }

    /// Multiply-adds of the convolutions in one forward of the whole batch (the paper's
    /// "FLOPs", B = h·w·c1·c2 per 1×1 conv), counted from the shapes: every conv keeps the
    /// spatial size, so each costs batch·h·w times its weight count.
    pub fn flops(&self) -> u64 {
        let s = self.input.shape();
        let positions = (s[0] * s[2] * s[3]) as u64;
        let weights: usize = self
            .blocks
            .iter()
            .flat_map(Block::convs)
            .map(|conv| conv.weight.numel())
            .sum();
        positions * weights as u64
    }

    /// The input's shape `[batch, c, size, size]`, which is also the output's.
    pub fn input_shape(&self) -> &[usize] {
        self.input.shape()
    }
}

/// Builds networks of one input shape, handing out a fresh weight seed per conv.
struct Builder<'a> {
    device: &'a Device,
    batch: usize,
    size: usize,
    seed: u64,
}

impl Builder<'_> {
    fn conv(&mut self, c_in: usize, c_out: usize, k: usize, groups: usize) -> Result<Conv> {
        self.seed += 1;
        Conv::new(self.device, c_in, c_out, k, groups, self.seed)
    }

    /// `DEPTH` blocks from `block`, on a random input of `c` channels.
    fn net(
        &mut self,
        guideline: Guideline,
        (setting, id): (String, String),
        column: &'static str,
        (paper_gpu, paper_arm): (f64, Option<f64>),
        c: usize,
        mut block: impl FnMut(&mut Self) -> Result<Block>,
    ) -> Result<GuidelineNet> {
        let input = Tensor::randn(self.device, &[self.batch, c, self.size, self.size], 1)?;
        let blocks = (0..DEPTH)
            .map(|_| block(self))
            .collect::<Result<Vec<_>>>()?;
        Ok(GuidelineNet {
            guideline,
            setting,
            id,
            column,
            paper_gpu,
            paper_arm,
            input,
            blocks,
        })
    }
}

/// Table 1: (c1, c2), GPU batches/s, ARM images/s (ARM at other widths).
const G1: [(usize, usize, f64, f64); 4] = [
    (128, 128, 1480.0, 76.2),
    (90, 180, 1296.0, 72.9),
    (52, 312, 876.0, 69.1),
    (36, 432, 748.0, 57.6),
];

/// Table 2: (g, c), GPU batches/s, ARM images/s (ARM at other widths).
const G2: [(usize, usize, f64, f64); 4] = [
    (1, 128, 2451.0, 40.0),
    (2, 180, 1725.0, 35.0),
    (4, 256, 1026.0, 32.9),
    (8, 360, 634.0, 27.8),
];

/// Table 3: (fragments, parallel), GPU batches/s at c = 128, ARM images/s at c = 64.
const G3: [(usize, bool, f64, f64); 5] = [
    (1, false, 2446.0, 40.2),
    (2, false, 1790.0, 38.6),
    (4, false, 752.0, 38.4),
    (2, true, 1537.0, 33.4),
    (4, true, 691.0, 35.0),
];

/// The width of Table 3's 1-fragment network.
const G3_C: usize = 128;

/// Table 4: c, then per (ReLU, shortcut) variant GPU batches/s and ARM images/s.
type G4Row = (usize, &'static str, [(bool, bool, f64, f64); 4]);
const G4: [G4Row; 3] = [
    (
        32,
        "c=32",
        [
            (true, true, 2427.0, 56.7),
            (true, false, 2647.0, 61.9),
            (false, true, 2672.0, 57.3),
            (false, false, 2842.0, 66.3),
        ],
    ),
    (
        64,
        "c=64",
        [
            (true, true, 2066.0, 16.9),
            (true, false, 2256.0, 18.8),
            (false, true, 2121.0, 18.2),
            (false, false, 2376.0, 20.2),
        ],
    ),
    (
        128,
        "c=128",
        [
            (true, true, 1436.0, 5.0),
            (true, false, 1735.0, 5.2),
            (false, true, 1458.0, 5.1),
            (false, false, 1782.0, 5.4),
        ],
    ),
];

/// The networks of one guideline at batch `batch` and `size`×`size` inputs, in the
/// paper's row order (G4: c = 32, 64, 128, each in the paper's four variants).
pub fn networks(
    device: &Device,
    guideline: Guideline,
    batch: usize,
    size: usize,
) -> Result<Vec<GuidelineNet>> {
    if batch == 0 || size == 0 {
        return arg_err!(
            "guideline networks: batch {batch} and size {size} must both be at least 1"
        );
    }
    let mut b = Builder {
        device,
        batch,
        size,
        seed: 100,
    };
    let g = guideline;
    let mut nets = Vec::new();
    match g {
        Guideline::G1 => {
            for (c1, c2, gpu, arm) in G1 {
                let names = (
                    format!("1:{} ({c1},{c2})", c2 / c1),
                    format!("1to{}_c{c1}_c{c2}", c2 / c1),
                );
                nets.push(b.net(g, names, "x1", (gpu, Some(arm)), c1, |b| {
                    Ok(Block::Series(vec![
                        b.conv(c1, c2, 1, 1)?,
                        b.conv(c2, c1, 1, 1)?,
                    ]))
                })?);
            }
        }
        Guideline::G2 => {
            for (groups, c, gpu, arm) in G2 {
                let names = (format!("g={groups}, c={c}"), format!("g{groups}_c{c}"));
                nets.push(b.net(g, names, "x1", (gpu, Some(arm)), c, |b| {
                    Ok(Block::Series(vec![b.conv(c, c, 1, groups)?]))
                })?);
            }
        }
        Guideline::G3 => {
            for (k, parallel, gpu, arm) in G3 {
                let kind = match (k, parallel) {
                    (1, _) => "1-fragment".to_string(),
                    (_, false) => format!("{k}-fragment-series"),
                    (_, true) => format!("{k}-fragment-parallel"),
                };
                let id = kind.replace('-', "_");
                let paper = (gpu, Some(arm));
                let net = if parallel {
                    let names = (format!("{kind} ({k}x {G3_C}->{}, concat)", G3_C / k), id);
                    b.net(g, names, "c=128", paper, G3_C, |b| {
                        let convs = (0..k).map(|_| b.conv(G3_C, G3_C / k, 1, 1));
                        Ok(Block::Parallel(convs.collect::<Result<_>>()?))
                    })?
                } else {
                    // k convs of c² each match 128² when c = 128/√k.
                    let c = (G3_C as f64 / (k as f64).sqrt()).round() as usize;
                    let names = (format!("{kind} (c={c})"), id);
                    b.net(g, names, "c=128", paper, c, |b| {
                        let convs = (0..k).map(|_| b.conv(c, c, 1, 1));
                        Ok(Block::Series(convs.collect::<Result<_>>()?))
                    })?
                };
                nets.push(net);
            }
        }
        Guideline::G4 => {
            for (c, column, variants) in G4 {
                for (relu, shortcut, gpu, arm) in variants {
                    let what = match (relu, shortcut) {
                        (true, true) => "ReLU+shortcut",
                        (true, false) => "ReLU only",
                        (false, true) => "shortcut only",
                        (false, false) => "neither",
                    };
                    let id = format!("c{c}_{}", what.replace(['+', ' '], "_").to_lowercase());
                    let names = (format!("{column}: {what}"), id);
                    nets.push(b.net(g, names, column, (gpu, Some(arm)), c, |b| {
                        Ok(Block::Bottleneck {
                            convs: Box::new([
                                b.conv(c, c, 1, 1)?,
                                b.conv(c, c, 3, 1)?,
                                b.conv(c, c, 1, 1)?,
                            ]),
                            relu,
                            shortcut,
                        })
                    })?);
                }
            }
        }
    }
    Ok(nets)
}

/// The networks of all four guidelines, in the paper's order (see [`networks`]).
pub fn all(device: &Device, batch: usize, size: usize) -> Result<Vec<GuidelineNet>> {
    let mut nets = Vec::new();
    for g in Guideline::ALL {
        nets.extend(networks(device, g, batch, size)?);
    }
    Ok(nets)
}
