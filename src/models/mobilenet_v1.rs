//! MobileNet V1 (Howard et al., 2017, "MobileNets: Efficient Convolutional Neural
//! Networks for Mobile Vision Applications"). torchvision and timm lack it: the names
//! follow torchvision's MobileNetV2 (`features.{i}`, `Conv2dNormActivation` children).
//!
//! The paper's Table 1: a full 3×3 convolution, then thirteen depthwise-separable
//! convolutions (a depthwise 3×3 and a pointwise 1×1, each followed by batch norm and
//! ReLU), global average pool, `fc`. The width multiplier α thins every layer (the
//! parameters and MACs fall roughly as α²); the resolution multiplier ρ is the input
//! size (the MACs fall as ρ²).

use crate::autograd::Var;
use crate::error::{Result, arg_err};
use crate::nn::{
    Activation, BatchNorm2dConfig, Conv2dConfig, Ctx, Fan, Flatten, Init, Linear, LinearConfig,
    Module, Scope, Sequential, conv_norm_act,
};

/// Table 1's depthwise-separable rows: output channels and stride.
#[rustfmt::skip]
const SEPARABLE: [(usize, usize); 13] = [
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1),
    (1024, 2), (1024, 1),
];

fn conv(k: usize) -> Conv2dConfig {
    Conv2dConfig::new(k).init(Init::KaimingNormal(Fan::Out))
}

fn conv_bn_relu(s: &mut Scope, c_in: usize, c_out: usize, cfg: Conv2dConfig) -> Result<Sequential> {
    let norm = BatchNorm2dConfig::default();
    conv_norm_act(s, c_in, c_out, cfg, norm, Some(Activation::Relu))
}

/// MobileNet V1: `features` (stem and 13 separable blocks, each a `Sequential` of the
/// depthwise and the pointwise layer), global average pool, `fc`.
pub struct MobileNetV1 {
    features: Sequential,
    fc: Linear,
}

impl MobileNetV1 {
    /// Builds the network of width `alpha` (the paper's 1.0, 0.75, 0.5, 0.25, or any
    /// positive value; channels are rounded) in `scope`. `cifar`: the stem and the first
    /// stride-2 block at stride 1, for 32×32 images.
    pub fn new(scope: &mut Scope, alpha: f32, num_classes: usize, cifar: bool) -> Result<Self> {
        if num_classes == 0 || !(alpha > 0.0 && alpha.is_finite()) {
            return arg_err!(
                "MobileNetV1: num_classes {num_classes} and alpha {alpha} must be positive"
            );
        }
        let width = |c: usize| ((c as f32 * alpha).round() as usize).max(1);
        let mut c_in = width(32);
        let mut cifar_stride_left = cifar;
        let features = Sequential::build(&mut scope.pp("features"), |l| {
            let stem = conv(3).stride(if cifar { 1 } else { 2 });
            l.add(|s| conv_bn_relu(s, 3, c_in, stem))?;
            for (c, stride) in SEPARABLE {
                let c_out = width(c);
                let stride = if stride == 2 && cifar_stride_left {
                    cifar_stride_left = false;
                    1
                } else {
                    stride
                };
                l.add(|s| {
                    Sequential::build(s, |l| {
                        let dw = conv(3).stride(stride).groups(c_in);
                        l.add(|s| conv_bn_relu(s, c_in, c_in, dw))?;
                        l.add(|s| conv_bn_relu(s, c_in, c_out, conv(1)))?;
                        Ok(())
                    })
                })?;
                c_in = c_out;
            }
            Ok(())
        })?;
        let linear = LinearConfig::init_zero_bias(Init::Normal {
            mean: 0.0,
            std: 0.01,
        });
        let fc = Linear::new(&mut scope.pp("fc"), c_in, num_classes, linear)?;
        Ok(Self { features, fc })
    }
}

impl Module for MobileNetV1 {
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let y = self.features.forward(ctx, x)?;
        let y = ctx.tape.global_avg_pool(&y)?;
        let y = Flatten::default().forward(ctx, &y)?;
        self.fc.forward(ctx, &y)
    }
}
