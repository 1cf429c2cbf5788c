//! ResNet (He et al., 2015), ResNeXt (Xie et al., 2017), Wide ResNet (Zagoruyko and
//! Komodakis, 2016) and SE-ResNet (Hu et al., 2018), built as torchvision builds the first
//! three and timm builds `seresnet50`: the same modules, names and counts.
//!
//! One network, four stages of residual blocks (`layer1` … `layer4`), from the papers'
//! tables: the blocks per stage, the block (basic 3×3-3×3 or bottleneck 1×1-3×3-1×1), the
//! bottleneck's groups and width, and squeeze-excitation or not.

use crate::autograd::Var;
use crate::error::{Result, arg_err};
use crate::nn::{
    Activation, BatchNorm2d, BatchNorm2dConfig, Conv2d, Conv2dConfig, Ctx, Fan, Flatten, Init,
    Linear, LinearConfig, MaxPool2d, Module, Scope, Sequential, SqueezeExcite,
};
use crate::ops::pool::Pool2d;

/// A residual block's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Block {
    /// Two 3×3 convolutions (ResNet-18 and -34); output channels = planes.
    Basic,
    /// 1×1 reduce, 3×3 (grouped for ResNeXt), 1×1 expand; output channels = 4 · planes.
    Bottleneck,
}

impl Block {
    fn expansion(self) -> usize {
        match self {
            Block::Basic => 1,
            Block::Bottleneck => 4,
        }
    }
}

/// How to build a ResNet.
#[derive(Clone, Debug, PartialEq)]
pub struct ResNetConfig {
    /// The block of every stage.
    pub block: Block,
    /// Blocks in each of the four stages (the paper's Table 1).
    pub layers: [usize; 4],
    /// Groups of the bottleneck's 3×3 convolution (ResNeXt's cardinality).
    pub groups: usize,
    /// Bottleneck width per group at 64 planes (ResNeXt's `d`; Wide ResNet doubles it).
    pub width_per_group: usize,
    /// Squeeze-excitation (reduction 16) after each block's last batch norm (SE-ResNet).
    pub se: bool,
    /// Classes of the classifier.
    pub num_classes: usize,
    /// Small-input variant for 32×32 images: the stem's 7×7 convolution and its max pool
    /// use stride 1 instead of 2 (so the last stage sees 4×4, not 1×1); nothing else
    /// changes.
    pub cifar: bool,
}

impl ResNetConfig {
    fn new(block: Block, layers: [usize; 4], num_classes: usize) -> Self {
        Self {
            block,
            layers,
            groups: 1,
            width_per_group: 64,
            se: false,
            num_classes,
            cifar: false,
        }
    }

    /// ResNet-18: basic blocks, [2, 2, 2, 2].
    pub fn resnet18(num_classes: usize) -> Self {
        Self::new(Block::Basic, [2, 2, 2, 2], num_classes)
    }
    /// ResNet-34: basic blocks, [3, 4, 6, 3].
    pub fn resnet34(num_classes: usize) -> Self {
        Self::new(Block::Basic, [3, 4, 6, 3], num_classes)
    }
    /// ResNet-50: bottlenecks, [3, 4, 6, 3].
    pub fn resnet50(num_classes: usize) -> Self {
        Self::new(Block::Bottleneck, [3, 4, 6, 3], num_classes)
    }
    /// ResNet-101: bottlenecks, [3, 4, 23, 3].
    pub fn resnet101(num_classes: usize) -> Self {
        Self::new(Block::Bottleneck, [3, 4, 23, 3], num_classes)
    }
    /// ResNet-152: bottlenecks, [3, 8, 36, 3].
    pub fn resnet152(num_classes: usize) -> Self {
        Self::new(Block::Bottleneck, [3, 8, 36, 3], num_classes)
    }
    /// ResNeXt-50 32×4d: ResNet-50 with 32 groups of width 4.
    pub fn resnext50_32x4d(num_classes: usize) -> Self {
        Self {
            groups: 32,
            width_per_group: 4,
            ..Self::resnet50(num_classes)
        }
    }
    /// ResNeXt-101 32×8d: ResNet-101 with 32 groups of width 8.
    pub fn resnext101_32x8d(num_classes: usize) -> Self {
        Self {
            groups: 32,
            width_per_group: 8,
            ..Self::resnet101(num_classes)
        }
    }
    /// Wide ResNet-50-2: ResNet-50 with bottlenecks twice as wide.
    pub fn wide_resnet50_2(num_classes: usize) -> Self {
        Self {
            width_per_group: 128,
            ..Self::resnet50(num_classes)
        }
    }
    /// SE-ResNet-50: ResNet-50 with squeeze-excitation in every bottleneck.
    pub fn se_resnet50(num_classes: usize) -> Self {
        Self {
            se: true,
            ..Self::resnet50(num_classes)
        }
    }
}

/// torchvision's convolutions here: Kaiming-normal (fan_out) weights, no bias.
fn conv(k: usize) -> Conv2dConfig {
    Conv2dConfig::new(k)
        .init(Init::KaimingNormal(Fan::Out))
        .bias(false)
}

fn bn(s: &mut Scope, channels: usize) -> Result<BatchNorm2d> {
    BatchNorm2d::new(s, channels, BatchNorm2dConfig::default())
}

/// One residual block: the branch's convolutions (each followed by its batch norm, ReLU
/// between), optional squeeze-excitation, the shortcut (a 1×1 projection where the shape
/// changes), then ReLU of the sum.
struct Residual {
    convs: Vec<(Conv2d, BatchNorm2d)>,
    se: Option<SqueezeExcite>,
    downsample: Option<Sequential>,
}

impl Residual {
    fn new(
        s: &mut Scope,
        c: &ResNetConfig,
        (c_in, planes): (usize, usize),
        stride: usize,
    ) -> Result<Self> {
        let c_out = planes * c.block.expansion();
        // (kernel, channels, stride, groups) of each convolution, in order.
        let convs = match c.block {
            Block::Basic => vec![(3, planes, stride, 1), (3, planes, 1, 1)],
            Block::Bottleneck => {
                let width = planes * c.width_per_group / 64 * c.groups;
                vec![
                    (1, width, 1, 1),
                    (3, width, stride, c.groups),
                    (1, c_out, 1, 1),
                ]
            }
        };
        let mut built = Vec::new();
        let mut channels = c_in;
        for (i, (k, c_next, stride, groups)) in convs.into_iter().enumerate() {
            let cfg = conv(k).stride(stride).same_padding().groups(groups);
            let conv = Conv2d::new(&mut s.pp(format!("conv{}", i + 1)), channels, c_next, cfg)?;
            let norm = bn(&mut s.pp(format!("bn{}", i + 1)), c_next)?;
            built.push((conv, norm));
            channels = c_next;
        }
        let se = if c.se {
            let acts = (Activation::Relu, Activation::Sigmoid);
            // timm initializes every convolution, the SE ones included, as the others.
            let init = Init::KaimingNormal(Fan::Out);
            Some(SqueezeExcite::new(
                &mut s.pp("se"),
                c_out,
                c_out / 16,
                acts,
                init,
            )?)
        } else {
            None
        };
        let downsample = if stride != 1 || c_in != c_out {
            Some(Sequential::build(&mut s.pp("downsample"), |layers| {
                layers.add(|s| Conv2d::new(s, c_in, c_out, conv(1).stride(stride)))?;
                layers.add(|s| bn(s, c_out))?;
                Ok(())
            })?)
        } else {
            None
        };
        Ok(Self {
            convs: built,
            se,
            downsample,
        })
    }
}

impl Module for Residual {
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let mut y = x.clone();
        for (i, (conv, norm)) in self.convs.iter().enumerate() {
            y = conv.forward(ctx, &y)?;
            y = norm.forward(ctx, &y)?;
            if i + 1 < self.convs.len() {
                y = ctx.tape.relu(&y)?;
            }
        }
        if let Some(se) = &self.se {
            y = se.forward(ctx, &y)?;
        }
        let shortcut = match &self.downsample {
            Some(d) => d.forward(ctx, x)?,
            None => x.clone(),
        };
        ctx.tape.relu(&ctx.tape.add(&y, &shortcut)?)
    }
}

/// A ResNet: stem (`conv1`, `bn1`, ReLU, max pool), `layer1` … `layer4` (64, 128, 256 and
/// 512 planes, the last three starting at stride 2), global average pool, `fc`.
pub struct ResNet {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    maxpool: MaxPool2d,
    layers: Vec<Sequential>,
    fc: Linear,
}

impl ResNet {
    /// Builds the network in `scope`, initialized as torchvision initializes it.
    pub fn new(scope: &mut Scope, c: &ResNetConfig) -> Result<Self> {
        if c.num_classes == 0 || c.groups == 0 || c.width_per_group == 0 {
            return arg_err!("ResNet: num_classes, groups and width_per_group must be positive");
        }
        let stride = if c.cifar { 1 } else { 2 };
        let conv1 = Conv2d::new(
            &mut scope.pp("conv1"),
            3,
            64,
            conv(7).stride(stride).padding(3),
        )?;
        let bn1 = bn(&mut scope.pp("bn1"), 64)?;
        let pool = Pool2d::new((3, 3)).stride((stride, stride)).padding((1, 1));
        let mut c_in = 64;
        let mut layers = Vec::new();
        for (i, (planes, blocks)) in [64, 128, 256, 512].into_iter().zip(c.layers).enumerate() {
            let first_stride = if i == 0 { 1 } else { 2 };
            layers.push(Sequential::build(
                &mut scope.pp(format!("layer{}", i + 1)),
                |l| {
                    for b in 0..blocks {
                        let stride = if b == 0 { first_stride } else { 1 };
                        l.add(|s| Residual::new(s, c, (c_in, planes), stride))?;
                        c_in = planes * c.block.expansion();
                    }
                    Ok(())
                },
            )?);
        }
        let fc = Linear::new(
            &mut scope.pp("fc"),
            c_in,
            c.num_classes,
            LinearConfig::default(),
        )?;
        Ok(Self {
            conv1,
            bn1,
            maxpool: MaxPool2d(pool),
            layers,
            fc,
        })
    }
}

impl Module for ResNet {
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let y = self.conv1.forward(ctx, x)?;
        let y = self.bn1.forward(ctx, &y)?;
        let y = ctx.tape.relu(&y)?;
        let mut y = self.maxpool.forward(ctx, &y)?;
        for layer in &self.layers {
            y = layer.forward(ctx, &y)?;
        }
        let y = ctx.tape.global_avg_pool(&y)?;
        let y = Flatten::default().forward(ctx, &y)?;
        self.fc.forward(ctx, &y)
    }
}
