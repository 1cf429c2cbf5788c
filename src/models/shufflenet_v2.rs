//! ShuffleNet V2 (Ma et al., 2018), built as torchvision builds it: the same modules,
//! names and counts.
//!
//! The paper's Table 5: a 3×3 stem and max pool, three stages of units ([4, 8, 4]), a 1×1
//! `conv5`, global pool, `fc`. A unit (Figure 3c) splits the channels in two, leaves one
//! half alone and runs the other through 1×1, depthwise 3×3, 1×1 (the same width in and
//! out: guideline G1), then concatenates and shuffles them (Figure 3c); a downsampling
//! unit (Figure 3d) runs both halves on the whole input, each at stride 2.

use crate::autograd::Var;
use crate::error::{Result, arg_err};
use crate::nn::{
    Activation, BatchNorm2d, BatchNorm2dConfig, Conv2d, Conv2dConfig, Ctx, Flatten, Linear,
    LinearConfig, MaxPool2d, Module, Scope, Sequential,
};
use crate::ops::pool::Pool2d;

/// Units per stage (stage2, stage3, stage4).
const REPEATS: [usize; 3] = [4, 8, 4];

/// Output channels of the stem, the three stages and `conv5`, per width (Table 5).
pub const WIDTHS: [(&str, [usize; 5]); 4] = [
    ("x0_5", [24, 48, 96, 192, 1024]),
    ("x1_0", [24, 116, 232, 464, 1024]),
    ("x1_5", [24, 176, 352, 704, 1024]),
    ("x2_0", [24, 244, 488, 976, 2048]),
];

fn conv(k: usize) -> Conv2dConfig {
    Conv2dConfig::new(k).bias(false)
}

fn bn(s: &mut Scope, c: usize) -> Result<BatchNorm2d> {
    BatchNorm2d::new(s, c, BatchNorm2dConfig::default())
}

/// Depthwise 3×3 at `stride`, batch norm (no activation: the paper's Figure 3).
fn depthwise(l: &mut crate::nn::Layers, c: usize, stride: usize) -> Result<()> {
    let dw = conv(3).stride(stride).padding(1).groups(c);
    l.add(|s| Conv2d::new(s, c, c, dw))?;
    l.add(|s| bn(s, c))?;
    Ok(())
}

/// 1×1 convolution, batch norm, ReLU.
fn pointwise(l: &mut crate::nn::Layers, c_in: usize, c_out: usize) -> Result<()> {
    l.add(|s| Conv2d::new(s, c_in, c_out, conv(1)))?;
    l.add(|s| bn(s, c_out))?;
    l.add_plain(Activation::Relu);
    Ok(())
}

/// One unit: `branch1` (downsampling units only: depthwise, then 1×1) and `branch2`
/// (1×1, depthwise, 1×1), concatenated and shuffled in two groups.
struct InvertedResidual {
    branch1: Option<Sequential>,
    branch2: Sequential,
}

impl InvertedResidual {
    fn new(s: &mut Scope, c_in: usize, c_out: usize, stride: usize) -> Result<Self> {
        let half = c_out / 2;
        if stride == 1 && c_in != 2 * half {
            return arg_err!(
                "ShuffleNetV2 {:?}: a stride-1 unit needs input channels {c_in} = output \
                 channels {c_out}",
                s.path()
            );
        }
        let branch1 = (stride > 1)
            .then(|| {
                Sequential::build(&mut s.pp("branch1"), |l| {
                    depthwise(l, c_in, stride)?;
                    pointwise(l, c_in, half)
                })
            })
            .transpose()?;
        let branch2_in = if stride > 1 { c_in } else { half };
        let branch2 = Sequential::build(&mut s.pp("branch2"), |l| {
            pointwise(l, branch2_in, half)?;
            depthwise(l, half, stride)?;
            pointwise(l, half, half)
        })?;
        Ok(Self { branch1, branch2 })
    }
}

impl Module for InvertedResidual {
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let y = match &self.branch1 {
            Some(branch1) => {
                let a = branch1.forward(ctx, x)?;
                let b = self.branch2.forward(ctx, x)?;
                ctx.tape.concat(&[&a, &b], 1)?
            }
            None => {
                let halves = ctx.tape.chunk(x, 2, 1)?;
                let b = self.branch2.forward(ctx, &halves[1])?;
                ctx.tape.concat(&[&halves[0], &b], 1)?
            }
        };
        ctx.tape.channel_shuffle(&y, 2)
    }
}

/// ShuffleNet V2: `conv1` (3×3 stride 2, BN, ReLU), 3×3 stride-2 max pool, `stage2` …
/// `stage4`, `conv5`, global average pool, `fc`.
pub struct ShuffleNetV2 {
    conv1: Sequential,
    maxpool: MaxPool2d,
    stages: Vec<Sequential>,
    conv5: Sequential,
    fc: Linear,
}

impl ShuffleNetV2 {
    /// Builds the network of `channels` (a row of [`WIDTHS`]) in `scope` with PyTorch's
    /// default initialization (as torchvision). `cifar`: the stem convolution and max
    /// pool at stride 1, for 32×32 images.
    pub fn new(
        scope: &mut Scope,
        channels: [usize; 5],
        num_classes: usize,
        cifar: bool,
    ) -> Result<Self> {
        if num_classes == 0 {
            return arg_err!("ShuffleNetV2: num_classes must be positive");
        }
        let stride = if cifar { 1 } else { 2 };
        let conv1 = Sequential::build(&mut scope.pp("conv1"), |l| {
            l.add(|s| Conv2d::new(s, 3, channels[0], conv(3).stride(stride).padding(1)))?;
            l.add(|s| bn(s, channels[0]))?;
            l.add_plain(Activation::Relu);
            Ok(())
        })?;
        let maxpool = MaxPool2d(Pool2d::new((3, 3)).stride((stride, stride)).padding((1, 1)));
        let mut c_in = channels[0];
        let mut stages = Vec::new();
        for (i, (&repeats, &c_out)) in REPEATS.iter().zip(&channels[1..4]).enumerate() {
            stages.push(Sequential::build(
                &mut scope.pp(format!("stage{}", i + 2)),
                |l| {
                    l.add(|s| InvertedResidual::new(s, c_in, c_out, 2))?;
                    for _ in 1..repeats {
                        l.add(|s| InvertedResidual::new(s, c_out, c_out, 1))?;
                    }
                    Ok(())
                },
            )?);
            c_in = c_out;
        }
        let conv5 = Sequential::build(&mut scope.pp("conv5"), |l| pointwise(l, c_in, channels[4]))?;
        let fc = Linear::new(
            &mut scope.pp("fc"),
            channels[4],
            num_classes,
            LinearConfig::default(),
        )?;
        Ok(Self {
            conv1,
            maxpool,
            stages,
            conv5,
            fc,
        })
    }
}

impl Module for ShuffleNetV2 {
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let y = self.conv1.forward(ctx, x)?;
        let mut y = self.maxpool.forward(ctx, &y)?;
        for stage in &self.stages {
            y = stage.forward(ctx, &y)?;
        }
        let y = self.conv5.forward(ctx, &y)?;
        let y = ctx.tape.global_avg_pool(&y)?;
        let y = Flatten::default().forward(ctx, &y)?;
        self.fc.forward(ctx, &y)
    }
}
