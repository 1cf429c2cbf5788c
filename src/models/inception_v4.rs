//! Inception-v4 (Szegedy et al., 2016, "Inception-v4, Inception-ResNet and the Impact of
//! Residual Connections on Learning"), built as timm's `inception_v4` builds it: the same
//! modules, names (`features.{i}`, `last_linear`) and counts, so timm's weights load by key.
//!
//! The paper's Figure 9, in `features`: the stem (Figure 3: three convolutions, then three
//! mixed steps where a convolution and a pool run side by side), 4 × Inception-A (Figure
//! 4), Reduction-A (Figure 7), 7 × Inception-B (Figure 5), Reduction-B (Figure 8), 3 ×
//! Inception-C (Figure 6); then global average pool and the classifier.

use super::googlenet::BasicConv2d;
use crate::autograd::Var;
use crate::error::{Result, arg_err};
use crate::nn::{
    AvgPool2d, Concat, Conv2dConfig, Ctx, Flatten, Linear, LinearConfig, MaxPool2d, Module, Scope,
    Sequential,
};
use crate::ops::pool::Pool2d;

type Branch = Box<dyn Module>;

/// timm's `ConvNormAct`: convolution without bias, batch norm (eps 1e-3), ReLU; PyTorch's
/// default initialization (timm sets no other for this model).
pub(crate) fn conv(s: &mut Scope, c_in: usize, c_out: usize, cfg: Conv2dConfig) -> Result<Branch> {
    Ok(Box::new(BasicConv2d::new(s, c_in, c_out, cfg)?))
}

/// An n×n convolution, no padding.
pub(crate) fn k(n: usize) -> Conv2dConfig {
    Conv2dConfig::new(n)
}

/// A 1×n convolution keeping the size.
pub(crate) fn k1xn(n: usize) -> Conv2dConfig {
    Conv2dConfig::rect(1, n).padding_hw((0, n / 2))
}

/// An n×1 convolution keeping the size.
pub(crate) fn knx1(n: usize) -> Conv2dConfig {
    Conv2dConfig::rect(n, 1).padding_hw((n / 2, 0))
}

/// Convolutions in turn, as a `Sequential` numbered from 0, each given as (output
/// channels, config).
pub(crate) fn seq(s: &mut Scope, c_in: usize, convs: &[(usize, Conv2dConfig)]) -> Result<Branch> {
    let mut c = c_in;
    Ok(Box::new(Sequential::build(s, |l| {
        for &(c_out, cfg) in convs {
            l.add(|s| BasicConv2d::new(s, c, c_out, cfg))?;
            c = c_out;
        }
        Ok(())
    })?))
}

/// A 3×3 stride-2 max pool, no padding: the reductions' pool branch.
pub(crate) fn max_pool() -> Branch {
    Box::new(MaxPool2d(Pool2d::new((3, 3)).stride((2, 2))))
}

/// A 3×3 average pool keeping the size, padding not counted, then a 1×1 convolution at
/// index 1 (timm's `branch3`).
pub(crate) fn pool_proj(s: &mut Scope, c_in: usize, c_out: usize) -> Result<Branch> {
    let pool = Pool2d::new((3, 3)).stride((1, 1)).padding((1, 1));
    Ok(Box::new(Sequential::build(s, |l| {
        l.add_plain(AvgPool2d {
            window: pool,
            count_include_pad: false,
        });
        l.add(|s| BasicConv2d::new(s, c_in, c_out, k(1)))?;
        Ok(())
    })?))
}

/// Figure 3's first mixed step: 3×3 stride-2 max pool ‖ 3×3 stride-2 conv, 64 → 160.
fn mixed_3a(s: &mut Scope) -> Result<Concat> {
    Ok(Concat(vec![
        max_pool(),
        conv(&mut s.pp("conv"), 64, 96, k(3).stride(2))?,
    ]))
}

/// Figure 3's second: 1×1 → 3×3 ‖ 1×1 → 7×1 → 1×7 → 3×3, 160 → 192.
fn mixed_4a(s: &mut Scope) -> Result<Concat> {
    Ok(Concat(vec![
        seq(&mut s.pp("branch0"), 160, &[(64, k(1)), (96, k(3))])?,
        seq(
            &mut s.pp("branch1"),
            160,
            &[(64, k(1)), (64, k1xn(7)), (64, knx1(7)), (96, k(3))],
        )?,
    ]))
}

/// Figure 3's third: 3×3 stride-2 conv ‖ max pool, 192 → 384.
fn mixed_5a(s: &mut Scope) -> Result<Concat> {
    Ok(Concat(vec![
        conv(&mut s.pp("conv"), 192, 192, k(3).stride(2))?,
        max_pool(),
    ]))
}

/// Figure 4, Inception-A on the 35×35 grid, 384 → 384.
fn inception_a(s: &mut Scope) -> Result<Concat> {
    Ok(Concat(vec![
        conv(&mut s.pp("branch0"), 384, 96, k(1))?,
        seq(
            &mut s.pp("branch1"),
            384,
            &[(64, k(1)), (96, k(3).padding(1))],
        )?,
        seq(
            &mut s.pp("branch2"),
            384,
            &[(64, k(1)), (96, k(3).padding(1)), (96, k(3).padding(1))],
        )?,
        pool_proj(&mut s.pp("branch3"), 384, 96)?,
    ]))
}

/// Figure 7, Reduction-A, 35×35 → 17×17 (k, l, m, n = 192, 224, 256, 384), 384 → 1024.
fn reduction_a(s: &mut Scope) -> Result<Concat> {
    Ok(Concat(vec![
        conv(&mut s.pp("branch0"), 384, 384, k(3).stride(2))?,
        seq(
            &mut s.pp("branch1"),
            384,
            &[(192, k(1)), (224, k(3).padding(1)), (256, k(3).stride(2))],
        )?,
        max_pool(),
    ]))
}

/// Figure 5, Inception-B on the 17×17 grid, 1024 → 1024.
fn inception_b(s: &mut Scope) -> Result<Concat> {
    Ok(Concat(vec![
        conv(&mut s.pp("branch0"), 1024, 384, k(1))?,
        seq(
            &mut s.pp("branch1"),
            1024,
            &[(192, k(1)), (224, k1xn(7)), (256, knx1(7))],
        )?,
        seq(
            &mut s.pp("branch2"),
            1024,
            &[
                (192, k(1)),
                (192, knx1(7)),
                (224, k1xn(7)),
                (224, knx1(7)),
                (256, k1xn(7)),
            ],
        )?,
        pool_proj(&mut s.pp("branch3"), 1024, 128)?,
    ]))
}

/// Figure 8, Reduction-B, 17×17 → 8×8, 1024 → 1536.
fn reduction_b(s: &mut Scope) -> Result<Concat> {
    Ok(Concat(vec![
        seq(
            &mut s.pp("branch0"),
            1024,
            &[(192, k(1)), (192, k(3).stride(2))],
        )?,
        seq(
            &mut s.pp("branch1"),
            1024,
            &[
                (256, k(1)),
                (256, k1xn(7)),
                (320, knx1(7)),
                (320, k(3).stride(2)),
            ],
        )?,
        max_pool(),
    ]))
}

/// Figure 6, Inception-C on the 8×8 grid, 1536 → 1536: two of its branches end in
/// parallel 1×3 and 3×1 convolutions (timm's flat names `branch1_1a`, `branch2_3b`, …).
struct InceptionC {
    branch0: BasicConv2d,
    branch1_0: BasicConv2d,
    branch1_1: [BasicConv2d; 2],
    branch2: [BasicConv2d; 3],
    branch2_3: [BasicConv2d; 2],
    branch3: Branch,
}

impl InceptionC {
    fn new(s: &mut Scope) -> Result<Self> {
        let mut c = |name: &str, c_in: usize, c_out: usize, cfg: Conv2dConfig| {
            BasicConv2d::new(&mut s.pp(name), c_in, c_out, cfg)
        };
        let branch0 = c("branch0", 1536, 256, k(1))?;
        let branch1_0 = c("branch1_0", 1536, 384, k(1))?;
        let branch1_1 = [
            c("branch1_1a", 384, 256, k1xn(3))?,
            c("branch1_1b", 384, 256, knx1(3))?,
        ];
        let branch2 = [
            c("branch2_0", 1536, 384, k(1))?,
            c("branch2_1", 384, 448, knx1(3))?,
            c("branch2_2", 448, 512, k1xn(3))?,
        ];
        let branch2_3 = [
            c("branch2_3a", 512, 256, k1xn(3))?,
            c("branch2_3b", 512, 256, knx1(3))?,
        ];
        Ok(Self {
            branch0,
            branch1_0,
            branch1_1,
            branch2,
            branch2_3,
            branch3: pool_proj(&mut s.pp("branch3"), 1536, 256)?,
        })
    }
}

impl Module for InceptionC {
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let x0 = self.branch0.forward(ctx, x)?;
        let x1 = self.branch1_0.forward(ctx, x)?;
        let x1a = self.branch1_1[0].forward(ctx, &x1)?;
        let x1b = self.branch1_1[1].forward(ctx, &x1)?;
        let mut x2 = x.clone();
        for c in &self.branch2 {
            x2 = c.forward(ctx, &x2)?;
        }
        let x2a = self.branch2_3[0].forward(ctx, &x2)?;
        let x2b = self.branch2_3[1].forward(ctx, &x2)?;
        let x3 = self.branch3.forward(ctx, x)?;
        ctx.tape.concat(&[&x0, &x1a, &x1b, &x2a, &x2b, &x3], 1)
    }
}

/// Inception-v4: `features` (Figure 9), global average pool, `last_linear`.
pub struct InceptionV4 {
    features: Sequential,
    last_linear: Linear,
}

impl InceptionV4 {
    /// Builds the network in `scope` with PyTorch's default initialization (as timm).
    pub fn new(scope: &mut Scope, num_classes: usize) -> Result<Self> {
        if num_classes == 0 {
            return arg_err!("Inception-v4: num_classes must be positive");
        }
        let features = Sequential::build(&mut scope.pp("features"), |l| {
            l.add(|s| BasicConv2d::new(s, 3, 32, k(3).stride(2)))?;
            l.add(|s| BasicConv2d::new(s, 32, 32, k(3)))?;
            l.add(|s| BasicConv2d::new(s, 32, 64, k(3).padding(1)))?;
            l.add(mixed_3a)?;
            l.add(mixed_4a)?;
            l.add(mixed_5a)?;
            for _ in 0..4 {
                l.add(inception_a)?;
            }
            l.add(reduction_a)?;
            for _ in 0..7 {
                l.add(inception_b)?;
            }
            l.add(reduction_b)?;
            for _ in 0..3 {
                l.add(InceptionC::new)?;
            }
            Ok(())
        })?;
        let last_linear = Linear::new(
            &mut scope.pp("last_linear"),
            1536,
            num_classes,
            LinearConfig::default(),
        )?;
        Ok(Self {
            features,
            last_linear,
        })
    }
}

impl Module for InceptionV4 {
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let y = self.features.forward(ctx, x)?;
        let y = ctx.tape.global_avg_pool(&y)?;
        let y = Flatten::default().forward(ctx, &y)?;
        self.last_linear.forward(ctx, &y)
    }
}
