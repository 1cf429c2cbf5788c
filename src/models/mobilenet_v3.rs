//! MobileNetV3 (Howard et al., 2019, "Searching for MobileNetV3"), Large and Small, built
//! as torchvision builds them: the same modules, names and counts.
//!
//! Inverted residual blocks (MobileNetV2's expansion, depthwise and linear projection)
//! with, per block, a kernel of 3 or 5, squeeze-excitation or not (its gate a
//! hard-sigmoid, its width `_make_divisible(expanded / 4, 8)`), and ReLU or h-swish; the
//! rows are the paper's Tables 1 and 2. Batch norm uses eps 1e-3 and momentum 0.01.

use super::make_divisible;
use crate::autograd::Var;
use crate::error::{Result, arg_err};
use crate::nn::{
    Activation, BatchNorm2dConfig, Conv2dConfig, Ctx, Dropout, Fan, Flatten, Init, Linear,
    LinearConfig, Module, Scope, Sequential, SqueezeExcite, conv_norm_act,
};

/// One row of the paper's table: input channels, kernel, expanded channels, output
/// channels, squeeze-excitation, h-swish (else ReLU), stride.
#[derive(Clone, Copy, Debug)]
struct Bneck {
    c_in: usize,
    kernel: usize,
    expanded: usize,
    c_out: usize,
    se: bool,
    hswish: bool,
    stride: usize,
}

/// The tables' nonlinearity column: ReLU or h-swish.
const RE: bool = false;
const HS: bool = true;

const fn bneck(
    c_in: usize,
    kernel: usize,
    expanded: usize,
    c_out: usize,
    se: bool,
    hswish: bool,
    stride: usize,
) -> Bneck {
    Bneck {
        c_in,
        kernel,
        expanded,
        c_out,
        se,
        hswish,
        stride,
    }
}

/// Table 1, MobileNetV3-Large; its last channel count is 1280.
#[rustfmt::skip]
const LARGE: [Bneck; 15] = [
    bneck(16, 3, 16, 16, false, RE, 1),
    bneck(16, 3, 64, 24, false, RE, 2),
    bneck(24, 3, 72, 24, false, RE, 1),
    bneck(24, 5, 72, 40, true, RE, 2),
    bneck(40, 5, 120, 40, true, RE, 1),
    bneck(40, 5, 120, 40, true, RE, 1),
    bneck(40, 3, 240, 80, false, HS, 2),
    bneck(80, 3, 200, 80, false, HS, 1),
    bneck(80, 3, 184, 80, false, HS, 1),
    bneck(80, 3, 184, 80, false, HS, 1),
    bneck(80, 3, 480, 112, true, HS, 1),
    bneck(112, 3, 672, 112, true, HS, 1),
    bneck(112, 5, 672, 160, true, HS, 2),
    bneck(160, 5, 960, 160, true, HS, 1),
    bneck(160, 5, 960, 160, true, HS, 1),
];

/// Table 2, MobileNetV3-Small; its last channel count is 1024.
#[rustfmt::skip]
const SMALL: [Bneck; 11] = [
    bneck(16, 3, 16, 16, true, RE, 2),
    bneck(16, 3, 72, 24, false, RE, 2),
    bneck(24, 3, 88, 24, false, RE, 1),
    bneck(24, 5, 96, 40, true, HS, 2),
    bneck(40, 5, 240, 40, true, HS, 1),
    bneck(40, 5, 240, 40, true, HS, 1),
    bneck(40, 5, 120, 48, true, HS, 1),
    bneck(48, 5, 144, 48, true, HS, 1),
    bneck(48, 5, 288, 96, true, HS, 2),
    bneck(96, 5, 576, 96, true, HS, 1),
    bneck(96, 5, 576, 96, true, HS, 1),
];

/// Which network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MobileNetV3Size {
    /// MobileNetV3-Large.
    Large,
    /// MobileNetV3-Small.
    Small,
}

/// How to build MobileNetV3.
#[derive(Clone, Debug, PartialEq)]
pub struct MobileNetV3Config {
    /// Large or Small.
    pub size: MobileNetV3Size,
    /// Classes of the classifier.
    pub num_classes: usize,
    /// Channel multiplier (torchvision's `width_mult`).
    pub width_mult: f32,
    /// Small-input variant: the stem and the first stride-2 block at stride 1, for
    /// 32×32 images.
    pub cifar: bool,
}

impl MobileNetV3Config {
    /// torchvision's network of `size`, width 1.0.
    pub fn new(size: MobileNetV3Size, num_classes: usize) -> Self {
        Self {
            size,
            num_classes,
            width_mult: 1.0,
            cifar: false,
        }
    }
}

fn norm() -> BatchNorm2dConfig {
    BatchNorm2dConfig::default().eps(1e-3).momentum(0.01)
}

fn conv(k: usize) -> Conv2dConfig {
    Conv2dConfig::new(k).init(Init::KaimingNormal(Fan::Out))
}

/// An inverted residual block: [1×1 expansion], depthwise k×k, [squeeze-excitation],
/// 1×1 linear projection; a shortcut at stride 1 when the channels match.
struct InvertedResidual {
    block: Sequential,
    shortcut: bool,
}

impl InvertedResidual {
    fn new(s: &mut Scope, b: &Bneck, stride: usize) -> Result<Self> {
        let act = Some(if b.hswish {
            Activation::HardSwish
        } else {
            Activation::Relu
        });
        let block = Sequential::build(&mut s.pp("block"), |l| {
            if b.expanded != b.c_in {
                l.add(|s| conv_norm_act(s, b.c_in, b.expanded, conv(1), norm(), act))?;
            }
            let depthwise = conv(b.kernel).stride(stride).groups(b.expanded);
            l.add(|s| conv_norm_act(s, b.expanded, b.expanded, depthwise, norm(), act))?;
            if b.se {
                let squeeze = make_divisible((b.expanded / 4) as f32, 8);
                let acts = (Activation::Relu, Activation::HardSigmoid);
                let init = Init::KaimingNormal(Fan::Out);
                l.add(|s| SqueezeExcite::new(s, b.expanded, squeeze, acts, init))?;
            }
            l.add(|s| conv_norm_act(s, b.expanded, b.c_out, conv(1), norm(), None))?;
            Ok(())
        })?;
        Ok(Self {
            block,
            shortcut: stride == 1 && b.c_in == b.c_out,
        })
    }
}

impl Module for InvertedResidual {
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let y = self.block.forward(ctx, x)?;
        if self.shortcut {
            ctx.tape.add(&y, x)
        } else {
            Ok(y)
        }
    }
}

/// MobileNetV3: `features` (stem, the table's blocks, a 1×1 to 6× the last width), global
/// average pool, `classifier` (linear, h-swish, dropout 0.2, linear).
pub struct MobileNetV3 {
    features: Sequential,
    classifier: Sequential,
}

impl MobileNetV3 {
    /// Builds the network in `scope`, initialized as torchvision initializes it.
    pub fn new(scope: &mut Scope, config: &MobileNetV3Config) -> Result<Self> {
        let wm = config.width_mult;
        if config.num_classes == 0 || !(wm > 0.0 && wm.is_finite()) {
            return arg_err!(
                "MobileNetV3: num_classes {} and width_mult {wm} must be positive",
                config.num_classes
            );
        }
        let (table, last): (&[Bneck], usize) = match config.size {
            MobileNetV3Size::Large => (&LARGE, 1280),
            MobileNetV3Size::Small => (&SMALL, 1024),
        };
        let adjust = |c: usize| make_divisible(c as f32 * wm, 8);
        let rows: Vec<Bneck> = table
            .iter()
            .map(|b| Bneck {
                c_in: adjust(b.c_in),
                expanded: adjust(b.expanded),
                c_out: adjust(b.c_out),
                ..*b
            })
            .collect();
        let first = rows[0].c_in;
        let head = 6 * rows[rows.len() - 1].c_out;
        let last = adjust(last);
        let stem_stride = if config.cifar { 1 } else { 2 };
        let mut cifar_stride_left = config.cifar;
        let features = Sequential::build(&mut scope.pp("features"), |l| {
            let stem = conv(3).stride(stem_stride);
            l.add(|s| conv_norm_act(s, 3, first, stem, norm(), Some(Activation::HardSwish)))?;
            for b in &rows {
                let stride = if b.stride == 2 && cifar_stride_left {
                    cifar_stride_left = false;
                    1
                } else {
                    b.stride
                };
                l.add(|s| InvertedResidual::new(s, b, stride))?;
            }
            let c = rows[rows.len() - 1].c_out;
            l.add(|s| conv_norm_act(s, c, head, conv(1), norm(), Some(Activation::HardSwish)))?;
            Ok(())
        })?;
        let linear = LinearConfig::init_zero_bias(Init::Normal {
            mean: 0.0,
            std: 0.01,
        });
        let classifier = Sequential::build(&mut scope.pp("classifier"), |l| {
            l.add(|s| Linear::new(s, head, last, linear))?;
            l.add_plain(Activation::HardSwish);
            l.add_plain(Dropout { p: 0.2 });
            l.add(|s| Linear::new(s, last, config.num_classes, linear))?;
            Ok(())
        })?;
        Ok(Self {
            features,
            classifier,
        })
    }
}

impl Module for MobileNetV3 {
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let y = self.features.forward(ctx, x)?;
        let y = ctx.tape.global_avg_pool(&y)?;
        let y = Flatten::default().forward(ctx, &y)?;
        self.classifier.forward(ctx, &y)
    }
}
