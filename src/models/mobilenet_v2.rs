//! MobileNetV2 (Sandler et al., 2018), built as torchvision builds it: the same modules,
//! parameter names (`features.1.conv.0.0.weight`, …) and counts (3,504,872 parameters at
//! 1000 classes, width 1.0), from the paper's table of inverted-residual stages.

use crate::autograd::Var;
use crate::error::{Result, arg_err};
use crate::gpu::Device;
use crate::nn::{Activation, ConvBnAct, Ctx, Dropout, Linear, Module, ParamStore};
use crate::rng::Rng;

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

/// torchvision's `_make_divisible`: the nearest multiple of `divisor` not below 90% of `v`.
fn make_divisible(v: f32, divisor: usize) -> usize {
    let d = divisor as f32;
    let mut rounded = (((v + d / 2.0) / d).floor() * d).max(d);
    if rounded < 0.9 * v {
        rounded += d;
    }
    rounded as usize
}

/// An inverted residual block: 1×1 expansion (unless t = 1), 3×3 depthwise, 1×1 linear
/// projection, with a shortcut when the stride is 1 and the channels match.
struct InvertedResidual {
    layers: Vec<ConvBnAct>,
    shortcut: bool,
}

impl InvertedResidual {
    #[allow(clippy::too_many_arguments)]
    fn new(
        store: &mut ParamStore,
        device: &Device,
        rng: &mut Rng,
        name: &str,
        c_in: usize,
        c_out: usize,
        stride: usize,
        t: usize,
    ) -> Result<Self> {
        let hidden = c_in * t;
        let mut layers = Vec::new();
        // torchvision numbers the sub-modules of `conv` in order: [expand], depthwise,
        // projection conv, projection norm.
        let mut i = 0;
        if t != 1 {
            layers.push(ConvBnAct::new(
                store,
                device,
                rng,
                &format!("{name}.conv.{i}"),
                (c_in, hidden, 1),
                1,
                1,
                Some(Activation::Relu6),
            )?);
            i += 1;
        }
        layers.push(ConvBnAct::new(
            store,
            device,
            rng,
            &format!("{name}.conv.{i}"),
            (hidden, hidden, 3),
            stride,
            hidden,
            Some(Activation::Relu6),
        )?);
        let names = (
            format!("{name}.conv.{}", i + 1),
            format!("{name}.conv.{}", i + 2),
        );
        layers.push(ConvBnAct::with_names(
            store,
            device,
            rng,
            (&names.0, &names.1),
            (hidden, c_out, 1),
            1,
            1,
            None,
        )?);
        Ok(Self {
            layers,
            shortcut: stride == 1 && c_in == c_out,
        })
    }

    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let mut y = x.clone();
        for layer in &self.layers {
            y = layer.forward(ctx, &y)?;
        }
        if self.shortcut {
            ctx.tape.add(&y, x)
        } else {
            Ok(y)
        }
    }
}

/// MobileNetV2: stem, 17 inverted residual blocks, 1×1 head to 1280 channels, global
/// average pool, dropout, linear classifier.
pub struct MobileNetV2 {
    config: MobileNetV2Config,
    stem: ConvBnAct,
    blocks: Vec<InvertedResidual>,
    head: ConvBnAct,
    dropout: Dropout,
    classifier: Linear,
}

impl MobileNetV2 {
    /// Builds the network, registering every tensor in `store` (initialized as torchvision
    /// does, from `seed`).
    pub fn new(
        store: &mut ParamStore,
        device: &Device,
        config: MobileNetV2Config,
        seed: u64,
    ) -> Result<Self> {
        if config.num_classes == 0 || !(config.width_mult > 0.0 && config.width_mult.is_finite()) {
            return arg_err!(
                "MobileNetV2: num_classes {} and width_mult {} must be positive",
                config.num_classes,
                config.width_mult
            );
        }
        let mut rng = Rng::new(seed);
        let rng = &mut rng;
        let wm = config.width_mult;
        let mut c_in = make_divisible(32.0 * wm, 8);
        let last = make_divisible(1280.0 * wm.max(1.0), 8);
        let stem_stride = if config.cifar { 1 } else { 2 };
        let stem = ConvBnAct::new(
            store,
            device,
            rng,
            "features.0",
            (3, c_in, 3),
            stem_stride,
            1,
            Some(Activation::Relu6),
        )?;
        let mut blocks = Vec::new();
        for (t, c, n, s) in STAGES {
            let c_out = make_divisible(c as f32 * wm, 8);
            let first_stride = if config.cifar && c == 24 { 1 } else { s };
            for i in 0..n {
                let name = format!("features.{}", blocks.len() + 1);
                let stride = if i == 0 { first_stride } else { 1 };
                blocks.push(InvertedResidual::new(
                    store, device, rng, &name, c_in, c_out, stride, t,
                )?);
                c_in = c_out;
            }
        }
        let head_name = format!("features.{}", blocks.len() + 1);
        let head = ConvBnAct::new(
            store,
            device,
            rng,
            &head_name,
            (c_in, last, 1),
            1,
            1,
            Some(Activation::Relu6),
        )?;
        let classifier = Linear::new(
            store,
            device,
            rng,
            "classifier.1",
            (last, config.num_classes),
            0.01,
        )?;
        let dropout = Dropout { p: config.dropout };
        Ok(Self {
            config,
            stem,
            blocks,
            head,
            dropout,
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
        let mut y = self.stem.forward(ctx, x)?;
        for block in &self.blocks {
            y = block.forward(ctx, &y)?;
        }
        let y = self.head.forward(ctx, &y)?;
        let y = ctx.tape.global_avg_pool(&y)?;
        let channels = y.shape()[1];
        let y = ctx.tape.reshape(&y, &[y.shape()[0], channels])?;
        let y = self.dropout.forward(ctx, &y)?;
        self.classifier.forward(ctx, &y)
    }
}

#[cfg(test)]
mod tests {
    use super::make_divisible;

    #[test]
    fn make_divisible_matches_torchvision() {
        assert_eq!(make_divisible(32.0, 8), 32);
        assert_eq!(make_divisible(32.0 * 0.5, 8), 16);
        assert_eq!(make_divisible(24.0 * 0.75, 8), 24); // 18 → 16 is below 90%, so 24
        assert_eq!(make_divisible(1280.0, 8), 1280);
        assert_eq!(make_divisible(320.0 * 1.4, 8), 448);
    }
}
