//! Inception-ResNet-v2 (Szegedy et al., 2016, "Inception-v4, Inception-ResNet and the
//! Impact of Residual Connections on Learning"), built as timm's `inception_resnet_v2`
//! builds it: the same modules, names and counts, so timm's weights load by key.
//!
//! The paper's Figure 15 with timm's (TensorFlow-slim's) stem: plain convolutions and max
//! pools to 35×35, `mixed_5b` (an Inception-A to 320 channels), 10 × Inception-ResNet-A
//! (`repeat`, Figure 16), Reduction-A (`mixed_6a`), 20 × Inception-ResNet-B (`repeat_1`,
//! Figure 17), Reduction-B (`mixed_7a`), 10 × Inception-ResNet-C (`repeat_2` and the last,
//! unactivated `block8`, Figure 19), then `conv2d_7b` to 1536 channels. Each residual
//! block's branches are concatenated, projected back by a 1×1 `conv2d` (with bias), and
//! added to the input scaled down (0.17, 0.10, 0.20), which the paper found keeps very
//! deep residual Inception training stable (Section 3.3).

use super::inception_v4::{conv, k, k1xn, knx1, max_pool, pool_proj, seq};
use crate::autograd::Var;
use crate::error::{Result, arg_err};
use crate::nn::{Concat, Conv2d, Ctx, Flatten, Linear, LinearConfig, Module, Scope, Sequential};

type Branch = Box<dyn Module>;

/// `mixed_5b`, an Inception-A module: 1×1; 1×1 → 5×5; 1×1 → 3×3 → 3×3; pool → 1×1;
/// 192 → 320.
fn mixed_5b(s: &mut Scope) -> Result<Concat> {
    Ok(Concat(vec![
        conv(&mut s.pp("branch0"), 192, 96, k(1))?,
        seq(
            &mut s.pp("branch1"),
            192,
            &[(48, k(1)), (64, k(5).padding(2))],
        )?,
        seq(
            &mut s.pp("branch2"),
            192,
            &[(64, k(1)), (96, k(3).padding(1)), (96, k(3).padding(1))],
        )?,
        pool_proj(&mut s.pp("branch3"), 192, 64)?,
    ]))
}

/// A residual Inception block: `x + scale · conv2d(concat(branches(x)))`, then ReLU
/// unless it is the last block.
struct ResidualInception {
    branches: Concat,
    conv2d: Conv2d,
    scale: f32,
    relu: bool,
}

impl ResidualInception {
    fn new(
        s: &mut Scope,
        branches: Concat,
        (inner, c): (usize, usize),
        scale: f32,
        relu: bool,
    ) -> Result<Self> {
        Ok(Self {
            branches,
            conv2d: Conv2d::new(&mut s.pp("conv2d"), inner, c, k(1))?,
            scale,
            relu,
        })
    }
}

impl Module for ResidualInception {
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let y = self.branches.forward(ctx, x)?;
        let y = self.conv2d.forward(ctx, &y)?;
        let y = ctx.tape.add(&ctx.tape.scale(&y, self.scale)?, x)?;
        if self.relu { ctx.tape.relu(&y) } else { Ok(y) }
    }
}

/// Figure 16, Inception-ResNet-A on the 35×35 grid (`Block35`), 320 channels.
fn block35(s: &mut Scope) -> Result<ResidualInception> {
    let branches = Concat(vec![
        conv(&mut s.pp("branch0"), 320, 32, k(1))?,
        seq(
            &mut s.pp("branch1"),
            320,
            &[(32, k(1)), (32, k(3).padding(1))],
        )?,
        seq(
            &mut s.pp("branch2"),
            320,
            &[(32, k(1)), (48, k(3).padding(1)), (64, k(3).padding(1))],
        )?,
    ]);
    ResidualInception::new(s, branches, (128, 320), 0.17, true)
}

/// Reduction-A (`mixed_6a`), 35×35 → 17×17, 320 → 1088.
fn mixed_6a(s: &mut Scope) -> Result<Concat> {
    Ok(Concat(vec![
        conv(&mut s.pp("branch0"), 320, 384, k(3).stride(2))?,
        seq(
            &mut s.pp("branch1"),
            320,
            &[(256, k(1)), (256, k(3).padding(1)), (384, k(3).stride(2))],
        )?,
        max_pool(),
    ]))
}

/// Figure 17, Inception-ResNet-B on the 17×17 grid (`Block17`), 1088 channels.
fn block17(s: &mut Scope) -> Result<ResidualInception> {
    let branches = Concat(vec![
        conv(&mut s.pp("branch0"), 1088, 192, k(1))?,
        seq(
            &mut s.pp("branch1"),
            1088,
            &[(128, k(1)), (160, k1xn(7)), (192, knx1(7))],
        )?,
    ]);
    ResidualInception::new(s, branches, (384, 1088), 0.10, true)
}

/// Reduction-B (`mixed_7a`), 17×17 → 8×8, 1088 → 2080.
fn mixed_7a(s: &mut Scope) -> Result<Concat> {
    Ok(Concat(vec![
        seq(
            &mut s.pp("branch0"),
            1088,
            &[(256, k(1)), (384, k(3).stride(2))],
        )?,
        seq(
            &mut s.pp("branch1"),
            1088,
            &[(256, k(1)), (288, k(3).stride(2))],
        )?,
        seq(
            &mut s.pp("branch2"),
            1088,
            &[(256, k(1)), (288, k(3).padding(1)), (320, k(3).stride(2))],
        )?,
        max_pool(),
    ]))
}

/// Figure 19, Inception-ResNet-C on the 8×8 grid (`Block8`), 2080 channels.
fn block8(s: &mut Scope, scale: f32, relu: bool) -> Result<ResidualInception> {
    let branches = Concat(vec![
        conv(&mut s.pp("branch0"), 2080, 192, k(1))?,
        seq(
            &mut s.pp("branch1"),
            2080,
            &[(192, k(1)), (224, k1xn(3)), (256, knx1(3))],
        )?,
    ]);
    ResidualInception::new(s, branches, (448, 2080), scale, relu)
}

/// Inception-ResNet-v2: the layers above in order, global average pool, `classif`.
pub struct InceptionResNetV2 {
    body: Sequential,
    classif: Linear,
}

impl InceptionResNetV2 {
    /// Builds the network in `scope` with PyTorch's default initialization (as timm).
    pub fn new(scope: &mut Scope, num_classes: usize) -> Result<Self> {
        if num_classes == 0 {
            return arg_err!("Inception-ResNet-v2: num_classes must be positive");
        }
        let s = scope;
        let repeat =
            |s: &mut Scope, n: usize, block: fn(&mut Scope) -> Result<ResidualInception>| {
                Sequential::build(s, |l| {
                    for _ in 0..n {
                        l.add(block)?;
                    }
                    Ok(())
                })
            };
        let body: Vec<Branch> = vec![
            conv(&mut s.pp("conv2d_1a"), 3, 32, k(3).stride(2))?,
            conv(&mut s.pp("conv2d_2a"), 32, 32, k(3))?,
            conv(&mut s.pp("conv2d_2b"), 32, 64, k(3).padding(1))?,
            max_pool(), // maxpool_3a
            conv(&mut s.pp("conv2d_3b"), 64, 80, k(1))?,
            conv(&mut s.pp("conv2d_4a"), 80, 192, k(3))?,
            max_pool(), // maxpool_5a
            Box::new(mixed_5b(&mut s.pp("mixed_5b"))?),
            Box::new(repeat(&mut s.pp("repeat"), 10, block35)?),
            Box::new(mixed_6a(&mut s.pp("mixed_6a"))?),
            Box::new(repeat(&mut s.pp("repeat_1"), 20, block17)?),
            Box::new(mixed_7a(&mut s.pp("mixed_7a"))?),
            Box::new(repeat(&mut s.pp("repeat_2"), 9, |s| block8(s, 0.20, true))?),
            Box::new(block8(&mut s.pp("block8"), 1.0, false)?),
            conv(&mut s.pp("conv2d_7b"), 2080, 1536, k(1))?,
        ];
        let classif = Linear::new(
            &mut s.pp("classif"),
            1536,
            num_classes,
            LinearConfig::default(),
        )?;
        Ok(Self {
            body: Sequential::from_children(body),
            classif,
        })
    }
}

impl Module for InceptionResNetV2 {
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let y = self.body.forward(ctx, x)?;
        let y = ctx.tape.global_avg_pool(&y)?;
        let y = Flatten::default().forward(ctx, &y)?;
        self.classif.forward(ctx, &y)
    }
}
