//! DenseNet (Huang et al., 2017), built as torchvision builds it: dense blocks whose
//! layers each see every earlier layer's maps (concatenated), transitions of batch norm,
//! ReLU, 1×1 convolution and 2×2 average pool halving the channels, growth rate 32,
//! bottleneck width 4 · 32.

use crate::autograd::Var;
use crate::error::{Result, arg_err};
use crate::nn::{
    Activation, AvgPool2d, BatchNorm2d, BatchNorm2dConfig, Conv2d, Conv2dConfig, Ctx, Fan, Flatten,
    Init, Linear, LinearConfig, MaxPool2d, Module, Scope, Sequential,
};
use crate::ops::pool::Pool2d;

/// How to build a DenseNet.
#[derive(Clone, Debug, PartialEq)]
pub struct DenseNetConfig {
    /// Layers in each of the four dense blocks.
    pub blocks: [usize; 4],
    /// Maps each layer adds (k).
    pub growth: usize,
    /// Maps of the stem.
    pub init_features: usize,
    /// The bottleneck's width, in multiples of the growth.
    pub bn_size: usize,
    /// Classes of the classifier.
    pub num_classes: usize,
    /// Small-input variant: the stem's 7×7 convolution and max pool at stride 1.
    pub cifar: bool,
}

impl DenseNetConfig {
    fn new(blocks: [usize; 4], num_classes: usize) -> Self {
        Self {
            blocks,
            growth: 32,
            init_features: 64,
            bn_size: 4,
            num_classes,
            cifar: false,
        }
    }

    /// DenseNet-121: blocks of 6, 12, 24, 16 layers.
    pub fn densenet121(num_classes: usize) -> Self {
        Self::new([6, 12, 24, 16], num_classes)
    }
    /// DenseNet-169: 6, 12, 32, 32.
    pub fn densenet169(num_classes: usize) -> Self {
        Self::new([6, 12, 32, 32], num_classes)
    }
    /// DenseNet-201: 6, 12, 48, 32.
    pub fn densenet201(num_classes: usize) -> Self {
        Self::new([6, 12, 48, 32], num_classes)
    }
}

/// torchvision's DenseNet convolutions: Kaiming-normal (fan_in), no bias.
fn conv(k: usize) -> Conv2dConfig {
    Conv2dConfig::new(k)
        .init(Init::KaimingNormal(Fan::In))
        .bias(false)
        .same_padding()
}

fn norm(s: &mut Scope, channels: usize) -> Result<BatchNorm2d> {
    BatchNorm2d::new(s, channels, BatchNorm2dConfig::default())
}

/// One layer of a dense block: BN, ReLU, 1×1 conv to `bn_size · growth`, BN, ReLU, 3×3 conv
/// to `growth`; its output joins the block's running concatenation.
struct DenseLayer {
    branch: Sequential,
}

impl Module for DenseLayer {
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let y = self.branch.forward(ctx, x)?;
        ctx.tape.concat(&[x, &y], 1)
    }
}

/// DenseNet: `features` (stem, dense blocks and transitions, `norm5`), ReLU, global
/// average pool, `classifier`.
pub struct DenseNet {
    features: Sequential,
    classifier: Linear,
}

impl DenseNet {
    /// Builds the network in `scope`, initialized as torchvision initializes it.
    pub fn new(scope: &mut Scope, c: &DenseNetConfig) -> Result<Self> {
        if c.num_classes == 0 || c.growth == 0 || c.bn_size == 0 {
            return arg_err!("DenseNet: num_classes, growth and bn_size must be positive");
        }
        let stride = if c.cifar { 1 } else { 2 };
        let mut channels = c.init_features;
        let features = Sequential::build(&mut scope.pp("features"), |l| {
            let stem = conv(7).stride(stride);
            l.add_named("conv0", |s| Conv2d::new(s, 3, channels, stem))?;
            l.add_named("norm0", |s| norm(s, channels))?;
            l.add_plain(Activation::Relu);
            let pool = Pool2d::new((3, 3)).stride((stride, stride)).padding((1, 1));
            l.add_plain(MaxPool2d(pool));
            for (b, &layers) in c.blocks.iter().enumerate() {
                l.add_named(&format!("denseblock{}", b + 1), |s| {
                    Sequential::build(s, |block| {
                        for i in 0..layers {
                            let c_in = channels + i * c.growth;
                            block.add_named(&format!("denselayer{}", i + 1), |s| {
                                dense_layer(s, c_in, c)
                            })?;
                        }
                        Ok(())
                    })
                })?;
                channels += layers * c.growth;
                if b + 1 < c.blocks.len() {
                    let c_out = channels / 2;
                    l.add_named(&format!("transition{}", b + 1), |s| {
                        Sequential::build(s, |t| {
                            t.add_named("norm", |s| norm(s, channels))?;
                            t.add_plain(Activation::Relu);
                            t.add_named("conv", |s| Conv2d::new(s, channels, c_out, conv(1)))?;
                            t.add_plain(AvgPool2d::new(Pool2d::new((2, 2))));
                            Ok(())
                        })
                    })?;
                    channels = c_out;
                }
            }
            l.add_named("norm5", |s| norm(s, channels))?;
            Ok(())
        })?;
        let linear = LinearConfig {
            bias_init: Some(Init::Zeros),
            ..LinearConfig::default()
        };
        let classifier = Linear::new(&mut scope.pp("classifier"), channels, c.num_classes, linear)?;
        Ok(Self {
            features,
            classifier,
        })
    }
}

/// A dense layer taking `c_in` maps.
fn dense_layer(s: &mut Scope, c_in: usize, c: &DenseNetConfig) -> Result<DenseLayer> {
    let width = c.bn_size * c.growth;
    let branch = Sequential::build(s, |l| {
        l.add_named("norm1", |s| norm(s, c_in))?;
        l.add_plain(Activation::Relu);
        l.add_named("conv1", |s| Conv2d::new(s, c_in, width, conv(1)))?;
        l.add_named("norm2", |s| norm(s, width))?;
        l.add_plain(Activation::Relu);
        l.add_named("conv2", |s| Conv2d::new(s, width, c.growth, conv(3)))?;
        Ok(())
    })?;
    Ok(DenseLayer { branch })
}

impl Module for DenseNet {
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let y = self.features.forward(ctx, x)?;
        let y = ctx.tape.relu(&y)?;
        let y = ctx.tape.global_avg_pool(&y)?;
        let y = Flatten::default().forward(ctx, &y)?;
        self.classifier.forward(ctx, &y)
    }
}
