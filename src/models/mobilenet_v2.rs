//! MobileNetV2 (Sandler et al., 2018), built as torchvision builds it: the same modules,
//! parameter names (`features.1.conv.0.0.weight`, …) and counts (3,504,872 parameters at
//! 1000 classes, width 1.0), from the paper's table of inverted-residual stages.

use super::make_divisible;
use crate::autograd::Var;
use crate::error::{Result, arg_err};
use crate::nn::{
    Activation, BatchNorm2d, BatchNorm2dConfig, Conv2d, Conv2dConfig, Ctx, Dropout, Fan, Flatten,
    Init, Linear, LinearConfig, Module, Scope, Sequential, conv_norm_act,
};

/// The paper's Table 2: expansion t, output channels c, repeats n, first stride s.
const STAGES: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

/// How to build the network.
#[derive(Clone, Debug, PartialEq)]
pub struct MobileNetV2Config {
    /// Classes of the classifier.
    pub num_classes: usize,
    /// Channel multiplier (torchvision's `width_mult`).
    pub width_mult: f32,
    /// CIFAR variant: the stem and the t=6, c=24 stage use stride 1 instead of 2 (as
    /// kuangliu/pytorch-cifar does), so 32×32 inputs keep their resolution; nothing else
    /// changes.
    pub cifar: bool,
    /// Dropout before the classifier (torchvision: 0.2).
    pub dropout: f32,
}

impl MobileNetV2Config {
    /// torchvision's ImageNet network.
    pub fn imagenet(num_classes: usize) -> Self {
        Self {
            num_classes,
            width_mult: 1.0,
            cifar: false,
            dropout: 0.2,
        }
    }

    /// The CIFAR variant (10 classes, strides changed as above).
    pub fn cifar10() -> Self {
        Self {
            num_classes: 10,
            width_mult: 1.0,
            cifar: true,
            dropout: 0.2,
        }
    }
}

/// torchvision's convolutions: Kaiming-normal (fan_out) weights, no bias.
fn conv(k: usize) -> Conv2dConfig {
    Conv2dConfig::new(k).init(Init::KaimingNormal(Fan::Out))
}

/// A convolution, batch norm and ReLU6 (`Conv2dNormActivation`).
fn conv_bn_relu6(
    s: &mut Scope,
    c_in: usize,
    c_out: usize,
    cfg: Conv2dConfig,
) -> Result<Sequential> {
    let norm = BatchNorm2dConfig::default();
    conv_norm_act(s, c_in, c_out, cfg, norm, Some(Activation::Relu6))
}

/// An inverted residual block: 1×1 expansion (unless t = 1), 3×3 depthwise, 1×1 linear
/// projection, with a shortcut when the stride is 1 and the channels match. torchvision
/// numbers `conv`'s children in order: [expansion], depthwise, projection conv and norm.
struct InvertedResidual {
    conv: Sequential,
    shortcut: bool,
}

impl InvertedResidual {
    fn new(s: &mut Scope, c_in: usize, c_out: usize, stride: usize, t: usize) -> Result<Self> {
        let hidden = c_in * t;
        let conv = Sequential::build(&mut s.pp("conv"), |layers| {
            if t != 1 {
                layers.add(|s| conv_bn_relu6(s, c_in, hidden, conv(1)))?;
            }
            let depthwise = conv(3).stride(stride).groups(hidden);
            layers.add(|s| conv_bn_relu6(s, hidden, hidden, depthwise))?;
            layers.add(|s| Conv2d::new(s, hidden, c_out, conv(1).bias(false)))?;
            layers.add(|s| BatchNorm2d::new(s, c_out, BatchNorm2dConfig::default()))?;
            Ok(())
        })?;
        Ok(Self {
            conv,
            shortcut: stride == 1 && c_in == c_out,
        })
    }
}

impl Module for InvertedResidual {
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let y = self.conv.forward(ctx, x)?;
        if self.shortcut {
            ctx.tape.add(&y, x)
        } else {
            Ok(y)
        }
    }
}

/// MobileNetV2: `features` (stem, 17 inverted residual blocks, 1×1 head to 1280 channels),
/// global average pool, `classifier` (dropout, linear).
pub struct MobileNetV2 {
    config: MobileNetV2Config,
    features: Sequential,
    classifier: Sequential,
}

impl MobileNetV2 {
    /// Builds the network in `scope`, initialized as torchvision initializes it.
    pub fn new(scope: &mut Scope, config: MobileNetV2Config) -> Result<Self> {
        if config.num_classes == 0 || !(config.width_mult > 0.0 && config.width_mult.is_finite()) {
            return arg_err!(
                "MobileNetV2: num_classes {} and width_mult {} must be positive",
                config.num_classes,
                config.width_mult
            );
        }
        let wm = config.width_mult;
        let mut c_in = make_divisible(32.0 * wm, 8);
        let last = make_divisible(1280.0 * wm.max(1.0), 8);
        let stem_stride = if config.cifar { 1 } else { 2 };
        let features = Sequential::build(&mut scope.pp("features"), |layers| {
            layers.add(|s| conv_bn_relu6(s, 3, c_in, conv(3).stride(stem_stride)))?;
            for (t, c, n, s) in STAGES {
                let c_out = make_divisible(c as f32 * wm, 8);
                let first_stride = if config.cifar && c == 24 { 1 } else { s };
                for i in 0..n {
                    let stride = if i == 0 { first_stride } else { 1 };
                    layers.add(|s| InvertedResidual::new(s, c_in, c_out, stride, t))?;
                    c_in = c_out;
                }
            }
            layers.add(|s| conv_bn_relu6(s, c_in, last, conv(1)))?;
            Ok(())
        })?;
        let classifier = Sequential::build(&mut scope.pp("classifier"), |layers| {
            layers.add_plain(Dropout { p: config.dropout });
            let init = Init::Normal {
                mean: 0.0,
                std: 0.01,
            };
            let cfg = LinearConfig::init_zero_bias(init);
            layers.add(|s| Linear::new(s, last, config.num_classes, cfg))?;
            Ok(())
        })?;
        Ok(Self {
            config,
            features,
            classifier,
        })
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &MobileNetV2Config {
        &self.config
    }
}

impl Module for MobileNetV2 {
    /// Logits `[N, num_classes]` for images `[N, 3, H, W]`.
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let y = self.features.forward(ctx, x)?;
        let y = ctx.tape.global_avg_pool(&y)?;
        let y = Flatten::default().forward(ctx, &y)?;
        self.classifier.forward(ctx, &y)
    }
}
