//! EfficientNet B0–B7 (Tan and Le, 2019), built as torchvision builds them: the same
//! modules, names and counts.
//!
//! B0 is the paper's Table 1: a 3×3 stem, seven stages of MBConv blocks (MobileNetV2's
//! inverted residual with squeeze-excitation, SiLU inside), a 1×1 head to 4× the last
//! width, global pool, dropout, `classifier`. B1–B7 scale B0's depth (blocks per stage),
//! width (channels) and input resolution together: compound scaling (Section 3.3,
//! [`efficientnet_scaling`]). Residual branches are dropped per sample in training
//! (stochastic depth), with a probability rising linearly over the blocks to 0.2.

use super::make_divisible;
use crate::autograd::Var;
use crate::error::{Result, arg_err};
use crate::nn::{
    Activation, BatchNorm2dConfig, Conv2dConfig, Ctx, Dropout, Fan, Flatten, Init, Linear,
    LinearConfig, Module, Scope, Sequential, SqueezeExcite, StochasticDepth, conv_norm_act,
};

/// Table 1 (B0), one row per stage: expansion, kernel, stride, input and output channels,
/// blocks.
#[rustfmt::skip]
const STAGES: [(usize, usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
];

/// The compound-scaling coefficients of Section 3.3, found by grid search on B0:
/// depth α = 1.2, width β = 1.1, resolution γ = 1.15, with α·β²·γ² ≈ 2 so each step of φ
/// about doubles the FLOPs.
pub const ALPHA: f64 = 1.2;
/// Width coefficient β.
pub const BETA: f64 = 1.1;
/// Resolution coefficient γ.
pub const GAMMA: f64 = 1.15;

/// The multipliers of depth, width and resolution for compound coefficient `phi`:
/// (α^φ, β^φ, γ^φ). The released models sit near them, rounded: B1 near φ = 0.5 (1.1,
/// 1.0, 240 px against 1.10, 1.05, 240), B2 at φ = 1 (1.2, 1.1, 260 against 1.2, 1.1,
/// 258), B3 near φ = 2 (1.4, 1.2, 300 against 1.44, 1.21, 296); `docs/zoo.md` has the
/// table.
pub fn efficientnet_scaling(phi: f64) -> (f64, f64, f64) {
    (ALPHA.powf(phi), BETA.powf(phi), GAMMA.powf(phi))
}

/// How to build an EfficientNet.
#[derive(Clone, Debug, PartialEq)]
pub struct EfficientNetConfig {
    /// Channel multiplier.
    pub width_mult: f64,
    /// Blocks-per-stage multiplier (rounded up).
    pub depth_mult: f64,
    /// Dropout before the classifier.
    pub dropout: f32,
    /// The last block's stochastic-depth probability (the first block's is 0).
    pub stochastic_depth: f32,
    /// Batch norm's settings (torchvision: PyTorch's defaults for B0–B4, eps 1e-3 and
    /// momentum 0.01 for B5–B7).
    pub norm: BatchNorm2dConfig,
    /// Classes of the classifier.
    pub num_classes: usize,
    /// Small-input variant: the stem and the first stride-2 stage at stride 1, for 32×32
    /// images.
    pub cifar: bool,
}

/// torchvision's (width, depth, dropout, input size) for B0 … B7.
const VARIANTS: [(f64, f64, f32, usize); 8] = [
    (1.0, 1.0, 0.2, 224),
    (1.0, 1.1, 0.2, 240),
    (1.1, 1.2, 0.3, 288),
    (1.2, 1.4, 0.3, 300),
    (1.4, 1.8, 0.4, 380),
    (1.6, 2.2, 0.4, 456),
    (1.8, 2.6, 0.5, 528),
    (2.0, 3.1, 0.5, 600),
];

impl EfficientNetConfig {
    /// EfficientNet-B`index` (0 … 7) as torchvision builds it.
    pub fn b(index: usize, num_classes: usize) -> Result<Self> {
        let Some(&(width_mult, depth_mult, dropout, _)) = VARIANTS.get(index) else {
            return arg_err!("EfficientNet: B{index} does not exist; B0 … B7 do");
        };
        let norm = if index >= 5 {
            BatchNorm2dConfig::default().eps(1e-3).momentum(0.01)
        } else {
            BatchNorm2dConfig::default()
        };
        Ok(Self {
            width_mult,
            depth_mult,
            dropout,
            stochastic_depth: 0.2,
            norm,
            num_classes,
            cifar: false,
        })
    }

    /// The input side torchvision's weights for B`index` were trained at.
    pub fn resolution(index: usize) -> Option<usize> {
        VARIANTS.get(index).map(|v| v.3)
    }
}

fn conv(k: usize) -> Conv2dConfig {
    Conv2dConfig::new(k).init(Init::KaimingNormal(Fan::Out))
}

/// MBConv: [1×1 expansion], depthwise k×k, squeeze-excitation (to a quarter of the
/// block's input width), 1×1 linear projection; at stride 1 with matching widths, the
/// input plus the branch after stochastic depth.
struct MbConv {
    block: Sequential,
    residual: Option<StochasticDepth>,
}

/// One block's shape: expansion, kernel, stride, input and output channels.
type BlockShape = (usize, usize, usize, usize, usize);

impl MbConv {
    fn new(
        s: &mut Scope,
        (expand, kernel, stride, c_in, c_out): BlockShape,
        norm: BatchNorm2dConfig,
        drop: f32,
    ) -> Result<Self> {
        let expanded = make_divisible((c_in * expand) as f32, 8);
        let silu = Some(Activation::Silu);
        let block = Sequential::build(&mut s.pp("block"), |l| {
            if expanded != c_in {
                l.add(|s| conv_norm_act(s, c_in, expanded, conv(1), norm, silu))?;
            }
            let depthwise = conv(kernel).stride(stride).groups(expanded);
            l.add(|s| conv_norm_act(s, expanded, expanded, depthwise, norm, silu))?;
            let squeeze = (c_in / 4).max(1);
            let acts = (Activation::Silu, Activation::Sigmoid);
            let init = Init::KaimingNormal(Fan::Out);
            l.add(|s| SqueezeExcite::new(s, expanded, squeeze, acts, init))?;
            l.add(|s| conv_norm_act(s, expanded, c_out, conv(1), norm, None))?;
            Ok(())
        })?;
        let residual = (stride == 1 && c_in == c_out).then_some(StochasticDepth { p: drop });
        Ok(Self { block, residual })
    }
}

impl Module for MbConv {
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let y = self.block.forward(ctx, x)?;
        match &self.residual {
            Some(drop) => {
                let y = drop.forward(ctx, &y)?;
                ctx.tape.add(&y, x)
            }
            None => Ok(y),
        }
    }
}

/// EfficientNet: `features` (stem, seven stages, 1×1 head), global average pool,
/// `classifier` (dropout, linear).
pub struct EfficientNet {
    features: Sequential,
    classifier: Sequential,
}

impl EfficientNet {
    /// Builds the network in `scope`, initialized as torchvision initializes it.
    pub fn new(scope: &mut Scope, c: &EfficientNetConfig) -> Result<Self> {
        let positive = |v: f64| v > 0.0 && v.is_finite();
        if c.num_classes == 0 || !positive(c.width_mult) || !positive(c.depth_mult) {
            return arg_err!(
                "EfficientNet: num_classes {}, width_mult {} and depth_mult {} must be positive",
                c.num_classes,
                c.width_mult,
                c.depth_mult
            );
        }
        let width = |ch: usize| make_divisible((ch as f64 * c.width_mult) as f32, 8);
        let depth = |n: usize| (n as f64 * c.depth_mult).ceil() as usize;
        let total: usize = STAGES.iter().map(|st| depth(st.5)).sum();
        let stem_out = width(STAGES[0].3);
        let last_in = width(STAGES[6].4);
        let head = 4 * last_in;
        let mut block_id = 0;
        let mut cifar_stride_left = c.cifar;
        let features = Sequential::build(&mut scope.pp("features"), |l| {
            let stem = conv(3).stride(if c.cifar { 1 } else { 2 });
            l.add(|s| conv_norm_act(s, 3, stem_out, stem, c.norm, Some(Activation::Silu)))?;
            for (expand, kernel, stride, c_in, c_out, n) in STAGES {
                let (c_in, c_out) = (width(c_in), width(c_out));
                let stride = if stride == 2 && cifar_stride_left {
                    cifar_stride_left = false;
                    1
                } else {
                    stride
                };
                l.add(|s| {
                    Sequential::build(s, |stage| {
                        for i in 0..depth(n) {
                            let shape = if i == 0 {
                                (expand, kernel, stride, c_in, c_out)
                            } else {
                                (expand, kernel, 1, c_out, c_out)
                            };
                            let drop = c.stochastic_depth * block_id as f32 / total as f32;
                            stage.add(|s| MbConv::new(s, shape, c.norm, drop))?;
                            block_id += 1;
                        }
                        Ok(())
                    })
                })?;
            }
            l.add(|s| conv_norm_act(s, last_in, head, conv(1), c.norm, Some(Activation::Silu)))?;
            Ok(())
        })?;
        // torchvision: uniform within ±1/√(output features), zero bias.
        let range = 1.0 / (c.num_classes as f64).sqrt();
        let linear = LinearConfig::init_zero_bias(Init::Uniform {
            lo: -range,
            hi: range,
        });
        let classifier = Sequential::build(&mut scope.pp("classifier"), |l| {
            l.add_plain(Dropout { p: c.dropout });
            l.add(|s| Linear::new(s, head, c.num_classes, linear))?;
            Ok(())
        })?;
        Ok(Self {
            features,
            classifier,
        })
    }
}

impl Module for EfficientNet {
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let y = self.features.forward(ctx, x)?;
        let y = ctx.tape.global_avg_pool(&y)?;
        let y = Flatten::default().forward(ctx, &y)?;
        self.classifier.forward(ctx, &y)
    }
}
