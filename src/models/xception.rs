//! Xception (Chollet, 2017, "Xception: Deep Learning with Depthwise Separable
//! Convolutions"), the "extreme Inception": every Inception module replaced by a
//! depthwise-separable convolution (a per-channel 3×3, then a 1×1 across channels), with
//! residual connections. Built as timm's `legacy_xception` builds it: the same modules,
//! names and counts, so timm's weights load by key.
//!
//! The paper's Figure 5: the entry flow (two plain convolutions, then `block1`–`block3`,
//! each halving the grid with a strided max pool and a strided 1×1 shortcut), the middle
//! flow (`block4`–`block11`, 728 channels, identity shortcuts), the exit flow (`block12`,
//! then separable `conv3` and `conv4` to 2048 channels), global average pool, `fc`.

use crate::autograd::Var;
use crate::error::{Result, arg_err};
use crate::nn::{
    Activation, BatchNorm2d, BatchNorm2dConfig, Conv2d, Conv2dConfig, Ctx, Fan, Flatten, Init,
    Linear, LinearConfig, MaxPool2d, Module, Scope, Sequential,
};
use crate::ops::pool::Pool2d;

/// timm's initializer for every convolution here: Kaiming normal, fan_out.
fn conv(k: usize) -> Conv2dConfig {
    Conv2dConfig::new(k)
        .init(Init::KaimingNormal(Fan::Out))
        .bias(false)
}

fn bn(s: &mut Scope, c: usize) -> Result<BatchNorm2d> {
    BatchNorm2d::new(s, c, BatchNorm2dConfig::default())
}

/// A depthwise-separable convolution: `conv1`, 3×3 per channel (padding 1), then
/// `pointwise`, 1×1 across channels.
struct SeparableConv2d {
    conv1: Conv2d,
    pointwise: Conv2d,
}

impl SeparableConv2d {
    fn new(s: &mut Scope, c_in: usize, c_out: usize) -> Result<Self> {
        Ok(Self {
            conv1: Conv2d::new(
                &mut s.pp("conv1"),
                c_in,
                c_in,
                conv(3).padding(1).groups(c_in),
            )?,
            pointwise: Conv2d::new(&mut s.pp("pointwise"), c_in, c_out, conv(1))?,
        })
    }
}

impl Module for SeparableConv2d {
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let y = self.conv1.forward(ctx, x)?;
        self.pointwise.forward(ctx, &y)
    }
}

/// One row of Figure 5: input and output channels, separable convolutions, stride (2
/// ends in a max pool), whether it starts with ReLU, and whether the first convolution
/// widens (`grow_first`) or the last.
struct BlockRow {
    c_in: usize,
    c_out: usize,
    reps: usize,
    stride: usize,
    start_with_relu: bool,
    grow_first: bool,
}

const fn row(c_in: usize, c_out: usize, reps: usize, stride: usize) -> BlockRow {
    BlockRow {
        c_in,
        c_out,
        reps,
        stride,
        start_with_relu: true,
        grow_first: true,
    }
}

/// The twelve blocks: entry flow (1–3), middle flow (4–11), exit flow (12).
#[rustfmt::skip]
const BLOCKS: [BlockRow; 12] = [
    BlockRow { start_with_relu: false, ..row(64, 128, 2, 2) },
    row(128, 256, 2, 2),
    row(256, 728, 2, 2),
    row(728, 728, 3, 1), row(728, 728, 3, 1), row(728, 728, 3, 1), row(728, 728, 3, 1),
    row(728, 728, 3, 1), row(728, 728, 3, 1), row(728, 728, 3, 1), row(728, 728, 3, 1),
    BlockRow { grow_first: false, ..row(728, 1024, 2, 2) },
];

/// A block: `rep` (ReLU, separable conv, batch norm, repeated; a 3×3 stride-2 max pool at
/// the end when it downsamples) plus the shortcut (`skip`, a strided 1×1 conv, and
/// `skipbn` when the shape changes; the identity otherwise).
struct Block {
    skip: Option<(Conv2d, BatchNorm2d)>,
    rep: Sequential,
}

impl Block {
    fn new(s: &mut Scope, r: &BlockRow) -> Result<Self> {
        let skip = if r.c_out != r.c_in || r.stride != 1 {
            let cfg = conv(1).stride(r.stride);
            Some((
                Conv2d::new(&mut s.pp("skip"), r.c_in, r.c_out, cfg)?,
                bn(&mut s.pp("skipbn"), r.c_out)?,
            ))
        } else {
            None
        };
        let rep = Sequential::build(&mut s.pp("rep"), |l| {
            for i in 0..r.reps {
                let (c_in, c_out) = match (r.grow_first, i) {
                    (true, 0) => (r.c_in, r.c_out),
                    (true, _) => (r.c_out, r.c_out),
                    (false, i) if i + 1 < r.reps => (r.c_in, r.c_in),
                    (false, _) => (r.c_in, r.c_out),
                };
                if i > 0 || r.start_with_relu {
                    l.add_plain(Activation::Relu);
                }
                l.add(|s| SeparableConv2d::new(s, c_in, c_out))?;
                l.add(|s| bn(s, c_out))?;
            }
            if r.stride != 1 {
                let pool = Pool2d::new((3, 3))
                    .stride((r.stride, r.stride))
                    .padding((1, 1));
                l.add_plain(MaxPool2d(pool));
            }
            Ok(())
        })?;
        Ok(Self { skip, rep })
    }
}

impl Module for Block {
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let y = self.rep.forward(ctx, x)?;
        let shortcut = match &self.skip {
            Some((conv, norm)) => {
                let s = conv.forward(ctx, x)?;
                norm.forward(ctx, &s)?
            }
            None => x.clone(),
        };
        ctx.tape.add(&y, &shortcut)
    }
}

/// Xception.
pub struct Xception {
    stem: Sequential,
    blocks: Vec<Block>,
    exit: Sequential,
    fc: Linear,
}

impl Xception {
    /// Builds the network in `scope`, initialized as timm initializes it. `cifar`: the
    /// first convolution at stride 1 instead of 2, for 32×32 images.
    pub fn new(scope: &mut Scope, num_classes: usize, cifar: bool) -> Result<Self> {
        if num_classes == 0 {
            return arg_err!("Xception: num_classes must be positive");
        }
        let s = scope;
        let stride = if cifar { 1 } else { 2 };
        let relu = || -> Box<dyn Module> { Box::new(Activation::Relu) };
        let stem: Vec<Box<dyn Module>> = vec![
            Box::new(Conv2d::new(
                &mut s.pp("conv1"),
                3,
                32,
                conv(3).stride(stride),
            )?),
            Box::new(bn(&mut s.pp("bn1"), 32)?),
            relu(),
            Box::new(Conv2d::new(&mut s.pp("conv2"), 32, 64, conv(3))?),
            Box::new(bn(&mut s.pp("bn2"), 64)?),
            relu(),
        ];
        let blocks = BLOCKS
            .iter()
            .enumerate()
            .map(|(i, r)| Block::new(&mut s.pp(format!("block{}", i + 1)), r))
            .collect::<Result<Vec<_>>>()?;
        let exit: Vec<Box<dyn Module>> = vec![
            Box::new(SeparableConv2d::new(&mut s.pp("conv3"), 1024, 1536)?),
            Box::new(bn(&mut s.pp("bn3"), 1536)?),
            relu(),
            Box::new(SeparableConv2d::new(&mut s.pp("conv4"), 1536, 2048)?),
            Box::new(bn(&mut s.pp("bn4"), 2048)?),
            relu(),
        ];
        let fc = Linear::new(&mut s.pp("fc"), 2048, num_classes, LinearConfig::default())?;
        Ok(Self {
            stem: Sequential::from_children(stem),
            blocks,
            exit: Sequential::from_children(exit),
            fc,
        })
    }
}

impl Module for Xception {
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let mut y = self.stem.forward(ctx, x)?;
        for block in &self.blocks {
            y = block.forward(ctx, &y)?;
        }
        let y = self.exit.forward(ctx, &y)?;
        let y = ctx.tape.global_avg_pool(&y)?;
        let y = Flatten::default().forward(ctx, &y)?;
        self.fc.forward(ctx, &y)
    }
}
