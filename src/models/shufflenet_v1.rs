//! ShuffleNet V1 (Zhang et al., 2017, "ShuffleNet: An Extremely Efficient Convolutional
//! Neural Network for Mobile Devices"). torchvision and timm lack it: the names follow
//! torchvision's ResNet (`stage2.0.conv1`, `bn1`, …).
//!
//! The paper's Table 1: a 3×3 stride-2 stem to 24 channels and a max pool, three stages
//! of units (1 + 3, 1 + 7, 1 + 3), global pool, `fc`. A unit (Figure 2b, c) is a grouped
//! 1×1 convolution to a quarter of the output width, a channel shuffle so the next
//! grouped layer sees every group, a depthwise 3×3, and a grouped 1×1 back; added to the
//! input, or at stride 2 concatenated with the input's 3×3 average pool. The first 1×1 of
//! stage 2 is not grouped: its 24 input channels are too few.

use crate::autograd::Var;
use crate::error::{Result, arg_err};
use crate::nn::{
    Activation, AvgPool2d, BatchNorm2d, BatchNorm2dConfig, Conv2d, Conv2dConfig, Ctx, Fan, Flatten,
    Init, Linear, LinearConfig, MaxPool2d, Module, Scope, Sequential,
};
use crate::ops::pool::Pool2d;

/// Units per stage: one at stride 2, then the rest at stride 1.
const REPEATS: [usize; 3] = [4, 8, 4];

/// Table 1: stage 2's output channels for each group count (stages 3 and 4 double them).
pub const STAGE2_CHANNELS: [(usize, usize); 5] = [(1, 144), (2, 200), (3, 240), (4, 272), (8, 384)];

fn conv(k: usize) -> Conv2dConfig {
    Conv2dConfig::new(k)
        .bias(false)
        .init(Init::KaimingNormal(Fan::Out))
}

fn bn(s: &mut Scope, c: usize) -> Result<BatchNorm2d> {
    BatchNorm2d::new(s, c, BatchNorm2dConfig::default())
}

/// A ShuffleNet unit: `conv1` (grouped 1×1) `bn1` ReLU, shuffle, `conv2` (depthwise 3×3)
/// `bn2`, `conv3` (grouped 1×1) `bn3`; then the shortcut and ReLU.
struct ShuffleUnit {
    convs: [(Conv2d, BatchNorm2d); 3],
    groups: usize,
    stride: usize,
}

impl ShuffleUnit {
    fn new(
        s: &mut Scope,
        (c_in, c_out): (usize, usize),
        stride: usize,
        (groups, first_groups): (usize, usize),
    ) -> Result<Self> {
        let mid = c_out / 4;
        // At stride 2 the input is concatenated, so the branch makes the rest.
        let branch_out = if stride == 2 { c_out - c_in } else { c_out };
        let mut layer = |i: usize, c_in: usize, c_out: usize, cfg: Conv2dConfig| {
            Ok::<_, crate::Error>((
                Conv2d::new(&mut s.pp(format!("conv{i}")), c_in, c_out, cfg)?,
                bn(&mut s.pp(format!("bn{i}")), c_out)?,
            ))
        };
        let convs = [
            layer(1, c_in, mid, conv(1).groups(first_groups))?,
            layer(2, mid, mid, conv(3).stride(stride).padding(1).groups(mid))?,
            layer(3, mid, branch_out, conv(1).groups(groups))?,
        ];
        Ok(Self {
            convs,
            groups,
            stride,
        })
    }
}

impl Module for ShuffleUnit {
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let [(c1, b1), (c2, b2), (c3, b3)] = &self.convs;
        let y = c1.forward(ctx, x)?;
        let y = ctx.tape.relu(&b1.forward(ctx, &y)?)?;
        let y = if self.groups > 1 {
            ctx.tape.channel_shuffle(&y, self.groups)?
        } else {
            y
        };
        let y = c2.forward(ctx, &y)?;
        let y = b2.forward(ctx, &y)?;
        let y = c3.forward(ctx, &y)?;
        let y = b3.forward(ctx, &y)?;
        let y = if self.stride == 2 {
            let pool = AvgPool2d::new(Pool2d::new((3, 3)).stride((2, 2)).padding((1, 1)));
            let shortcut = pool.forward(ctx, x)?;
            ctx.tape.concat(&[&shortcut, &y], 1)?
        } else {
            ctx.tape.add(x, &y)?
        };
        ctx.tape.relu(&y)
    }
}

/// ShuffleNet V1 (1×): `conv1` (Sequential: conv, BN, ReLU), 3×3 stride-2 max pool,
/// `stage2` … `stage4`, global average pool, `fc`.
pub struct ShuffleNetV1 {
    conv1: Sequential,
    maxpool: MaxPool2d,
    stages: Vec<Sequential>,
    fc: Linear,
}

impl ShuffleNetV1 {
    /// Builds the network with `groups` (1, 2, 3, 4 or 8; the paper's default is 3) in
    /// `scope`. `cifar`: the stem convolution and max pool at stride 1, for 32×32 images.
    pub fn new(scope: &mut Scope, groups: usize, num_classes: usize, cifar: bool) -> Result<Self> {
        let Some(&(_, stage2)) = STAGE2_CHANNELS.iter().find(|(g, _)| *g == groups) else {
            return arg_err!("ShuffleNetV1: groups {groups} is not one of 1, 2, 3, 4, 8");
        };
        if num_classes == 0 {
            return arg_err!("ShuffleNetV1: num_classes must be positive");
        }
        let stride = if cifar { 1 } else { 2 };
        let conv1 = Sequential::build(&mut scope.pp("conv1"), |l| {
            l.add(|s| Conv2d::new(s, 3, 24, conv(3).stride(stride).padding(1)))?;
            l.add(|s| bn(s, 24))?;
            l.add_plain(Activation::Relu);
            Ok(())
        })?;
        let maxpool = MaxPool2d(Pool2d::new((3, 3)).stride((stride, stride)).padding((1, 1)));
        let mut c_in = 24;
        let mut stages = Vec::new();
        for (i, &repeats) in REPEATS.iter().enumerate() {
            let c_out = stage2 << i;
            stages.push(Sequential::build(
                &mut scope.pp(format!("stage{}", i + 2)),
                |l| {
                    let first_groups = if i == 0 { 1 } else { groups };
                    l.add(|s| ShuffleUnit::new(s, (c_in, c_out), 2, (groups, first_groups)))?;
                    for _ in 1..repeats {
                        l.add(|s| ShuffleUnit::new(s, (c_out, c_out), 1, (groups, groups)))?;
                    }
                    Ok(())
                },
            )?);
            c_in = c_out;
        }
        let linear = LinearConfig::init_zero_bias(Init::Normal {
            mean: 0.0,
            std: 0.01,
        });
        let fc = Linear::new(&mut scope.pp("fc"), c_in, num_classes, linear)?;
        Ok(Self {
            conv1,
            maxpool,
            stages,
            fc,
        })
    }
}

impl Module for ShuffleNetV1 {
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let y = self.conv1.forward(ctx, x)?;
        let mut y = self.maxpool.forward(ctx, &y)?;
        for stage in &self.stages {
            y = stage.forward(ctx, &y)?;
        }
        let y = ctx.tape.global_avg_pool(&y)?;
        let y = Flatten::default().forward(ctx, &y)?;
        self.fc.forward(ctx, &y)
    }
}
