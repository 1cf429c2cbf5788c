//! Inception v3 (Szegedy et al., 2016, "Rethinking the Inception Architecture for
//! Computer Vision"), built as torchvision builds it: the same modules, names and counts.
//!
//! The paper's Table 1: a stem of plain 3×3 convolutions, then three grids of Inception
//! modules: 35×35 (`Mixed_5b`–`5d`, Figure 5: the 5×5 factorized into two 3×3), 17×17
//! (`Mixed_6b`–`6e`, Figure 6: n×n factorized into 1×n and n×1, n = 7) and 8×8
//! (`Mixed_7b`, `7c`, Figure 7: the 3×3 split into parallel 1×3 and 3×1). Between the
//! grids, the reductions of Figure 10 (`Mixed_6a`, `7a`): strided convolutions and a max
//! pool side by side, so the grid shrinks without a representational bottleneck. An
//! auxiliary classifier on the 17×17 grid (`AuxLogits`) is used in training.

use super::googlenet::{BasicConv2d, transform_input};
use crate::autograd::Var;
use crate::error::{Result, arg_err};
use crate::nn::{
    AvgPool2d, Concat, Conv2dConfig, Ctx, Dropout, Flatten, Init, Linear, LinearConfig, MaxPool2d,
    Module, Scope, Sequential,
};
use crate::ops::pool::Pool2d;

/// How to build Inception v3.
#[derive(Clone, Debug, PartialEq)]
pub struct InceptionV3Config {
    /// Classes of the classifiers.
    pub num_classes: usize,
    /// The auxiliary classifier `AuxLogits` on the 17×17 grid, used in training.
    pub aux_logits: bool,
    /// Rescale ImageNet-normalized inputs to the (x - 0.5) / 0.5 the original weights
    /// expect (torchvision sets it for its pretrained weights).
    pub transform_input: bool,
    /// Small-input variant: `Conv2d_1a_3x3` and the stem's two max pools at stride 1, so
    /// a 32×32 image reaches the 8×8 grid at 4×4. The auxiliary classifier's 5×5 pool
    /// and 5×5 convolution need a 17×17 grid, so at 32×32 build without it.
    pub cifar: bool,
}

impl InceptionV3Config {
    /// torchvision's Inception v3 trained from scratch: auxiliary classifier on, inputs
    /// as they are.
    pub fn new(num_classes: usize) -> Self {
        Self {
            num_classes,
            aux_logits: true,
            transform_input: false,
            cifar: false,
        }
    }
}

/// torchvision's initializer: truncated normal within ±2, std 0.1 unless a layer sets
/// its own.
fn trunc_normal(std: f64) -> Init {
    Init::TruncatedNormal {
        mean: 0.0,
        std,
        lo: -2.0,
        hi: 2.0,
    }
}

fn k(n: usize) -> Conv2dConfig {
    Conv2dConfig::new(n).init(trunc_normal(0.1))
}

/// A 1×n convolution keeping the size.
fn k1xn(n: usize) -> Conv2dConfig {
    Conv2dConfig::rect(1, n)
        .padding_hw((0, n / 2))
        .init(trunc_normal(0.1))
}

/// An n×1 convolution keeping the size.
fn knx1(n: usize) -> Conv2dConfig {
    Conv2dConfig::rect(n, 1)
        .padding_hw((n / 2, 0))
        .init(trunc_normal(0.1))
}

type Branch = Box<dyn Module>;

/// Convolutions applied in turn, named `{name}_1`, `{name}_2`, … (torchvision's flat
/// names; a single one is just `name`), each given as (output channels, config).
fn chain(
    s: &mut Scope,
    name: &str,
    c_in: usize,
    convs: &[(usize, Conv2dConfig)],
) -> Result<Branch> {
    let mut layers: Vec<Branch> = Vec::new();
    let mut c = c_in;
    for (i, &(c_out, cfg)) in convs.iter().enumerate() {
        let leaf = if convs.len() == 1 {
            name.to_string()
        } else {
            format!("{name}_{}", i + 1)
        };
        layers.push(Box::new(BasicConv2d::new(&mut s.pp(leaf), c, c_out, cfg)?));
        c = c_out;
    }
    Ok(Box::new(Sequential::from_children(layers)))
}

/// A branch that pools (3×3) and then projects with a 1×1 `branch_pool`.
fn pool_branch(s: &mut Scope, c_in: usize, c_out: usize) -> Result<Branch> {
    // F.avg_pool2d(x, 3, stride=1, padding=1): the padding counts in the divisor.
    let pool = AvgPool2d::new(Pool2d::new((3, 3)).stride((1, 1)).padding((1, 1)));
    let conv = BasicConv2d::new(&mut s.pp("branch_pool"), c_in, c_out, k(1))?;
    Ok(Box::new(Sequential::from_children(vec![
        Box::new(pool),
        Box::new(conv),
    ])))
}

/// The reductions' 3×3 stride-2 max pool branch.
fn max_pool_branch() -> Branch {
    Box::new(MaxPool2d(Pool2d::new((3, 3)).stride((2, 2))))
}

/// A stem followed by two parallel heads whose outputs are concatenated (Figure 7's
/// split 1×3 / 3×1).
fn fork(stem: Branch, heads: [Branch; 2]) -> Branch {
    let [a, b] = heads;
    Box::new(Sequential::from_children(vec![
        stem,
        Box::new(Concat(vec![a, b])),
    ]))
}

/// Figure 5, the 35×35 module: 1×1; 1×1 → 5×5; 1×1 → 3×3 → 3×3; pool → 1×1. Output
/// 224 + `pool_features` channels.
fn inception_a(s: &mut Scope, c_in: usize, pool_features: usize) -> Result<Concat> {
    Ok(Concat(vec![
        chain(s, "branch1x1", c_in, &[(64, k(1))])?,
        chain(s, "branch5x5", c_in, &[(48, k(1)), (64, k(5).padding(2))])?,
        chain(
            s,
            "branch3x3dbl",
            c_in,
            &[(64, k(1)), (96, k(3).padding(1)), (96, k(3).padding(1))],
        )?,
        pool_branch(s, c_in, pool_features)?,
    ]))
}

/// Figure 10, 35×35 → 17×17: 3×3 stride 2; 1×1 → 3×3 → 3×3 stride 2; max pool. Output
/// `c_in` + 480 channels.
fn inception_b(s: &mut Scope, c_in: usize) -> Result<Concat> {
    Ok(Concat(vec![
        chain(s, "branch3x3", c_in, &[(384, k(3).stride(2))])?,
        chain(
            s,
            "branch3x3dbl",
            c_in,
            &[(64, k(1)), (96, k(3).padding(1)), (96, k(3).stride(2))],
        )?,
        max_pool_branch(),
    ]))
}

/// Figure 6, the 17×17 module with 7×7 factorized into 1×7 and 7×1 (`c7` channels
/// inside the factorized branches). Output 768 channels.
fn inception_c(s: &mut Scope, c_in: usize, c7: usize) -> Result<Concat> {
    Ok(Concat(vec![
        chain(s, "branch1x1", c_in, &[(192, k(1))])?,
        chain(
            s,
            "branch7x7",
            c_in,
            &[(c7, k(1)), (c7, k1xn(7)), (192, knx1(7))],
        )?,
        chain(
            s,
            "branch7x7dbl",
            c_in,
            &[
                (c7, k(1)),
                (c7, knx1(7)),
                (c7, k1xn(7)),
                (c7, knx1(7)),
                (192, k1xn(7)),
            ],
        )?,
        pool_branch(s, c_in, 192)?,
    ]))
}

/// 17×17 → 8×8: 1×1 → 3×3 stride 2; 1×1 → 1×7 → 7×1 → 3×3 stride 2; max pool. Output
/// `c_in` + 512 channels.
fn inception_d(s: &mut Scope, c_in: usize) -> Result<Concat> {
    Ok(Concat(vec![
        chain(s, "branch3x3", c_in, &[(192, k(1)), (320, k(3).stride(2))])?,
        chain(
            s,
            "branch7x7x3",
            c_in,
            &[
                (192, k(1)),
                (192, k1xn(7)),
                (192, knx1(7)),
                (192, k(3).stride(2)),
            ],
        )?,
        max_pool_branch(),
    ]))
}

/// Figure 7, the 8×8 module: 1×1; 1×1 → (1×3 ‖ 3×1); 1×1 → 3×3 → (1×3 ‖ 3×1); pool →
/// 1×1. Output 2048 channels.
fn inception_e(s: &mut Scope, c_in: usize) -> Result<Concat> {
    Ok(Concat(vec![
        chain(s, "branch1x1", c_in, &[(320, k(1))])?,
        fork(
            chain(s, "branch3x3_1", c_in, &[(384, k(1))])?,
            [
                chain(s, "branch3x3_2a", 384, &[(384, k1xn(3))])?,
                chain(s, "branch3x3_2b", 384, &[(384, knx1(3))])?,
            ],
        ),
        fork(
            Box::new(Sequential::from_children(vec![
                chain(s, "branch3x3dbl_1", c_in, &[(448, k(1))])?,
                chain(s, "branch3x3dbl_2", 448, &[(384, k(3).padding(1))])?,
            ])),
            [
                chain(s, "branch3x3dbl_3a", 384, &[(384, k1xn(3))])?,
                chain(s, "branch3x3dbl_3b", 384, &[(384, knx1(3))])?,
            ],
        ),
        pool_branch(s, c_in, 192)?,
    ]))
}

/// The auxiliary classifier: 5×5 stride-3 average pool, 1×1 `conv0` to 128, 5×5 `conv1`
/// to 768, global average pool, `fc`.
struct InceptionAux {
    conv0: BasicConv2d,
    conv1: BasicConv2d,
    fc: Linear,
}

impl InceptionAux {
    fn new(s: &mut Scope, c_in: usize, num_classes: usize) -> Result<Self> {
        let fc = LinearConfig {
            init: trunc_normal(0.001),
            ..LinearConfig::default()
        };
        Ok(Self {
            conv0: BasicConv2d::new(&mut s.pp("conv0"), c_in, 128, k(1))?,
            conv1: BasicConv2d::new(&mut s.pp("conv1"), 128, 768, k(5).init(trunc_normal(0.01)))?,
            fc: Linear::new(&mut s.pp("fc"), 768, num_classes, fc)?,
        })
    }
}

impl Module for InceptionAux {
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let pool = AvgPool2d::new(Pool2d::new((5, 5)).stride((3, 3)));
        let y = pool.forward(ctx, x)?;
        let y = self.conv0.forward(ctx, &y)?;
        let y = self.conv1.forward(ctx, &y)?;
        let y = ctx.tape.global_avg_pool(&y)?;
        let y = Flatten::default().forward(ctx, &y)?;
        self.fc.forward(ctx, &y)
    }
}

/// Inception v3: the stem and the 35×35 and 17×17 grids (`to_aux`), the optional
/// `AuxLogits`, the 8×8 grid (`from_aux`), global average pool, dropout 0.5, `fc`.
pub struct InceptionV3 {
    config: InceptionV3Config,
    to_aux: Sequential,
    aux: Option<InceptionAux>,
    from_aux: Sequential,
    fc: Linear,
}

impl InceptionV3 {
    /// Builds the network in `scope`, initialized as torchvision initializes it.
    pub fn new(scope: &mut Scope, config: InceptionV3Config) -> Result<Self> {
        if config.num_classes == 0 {
            return arg_err!("Inception v3: num_classes must be positive");
        }
        let stride = if config.cifar { 1 } else { 2 };
        let max_pool = || MaxPool2d(Pool2d::new((3, 3)).stride((stride, stride)));
        let basic = |s: &mut Scope, name: &str, c_in, c_out, cfg| -> Result<Branch> {
            Ok(Box::new(BasicConv2d::new(
                &mut s.pp(name),
                c_in,
                c_out,
                cfg,
            )?))
        };
        let s = scope;
        let to_aux: Vec<Branch> = vec![
            basic(s, "Conv2d_1a_3x3", 3, 32, k(3).stride(stride))?,
            basic(s, "Conv2d_2a_3x3", 32, 32, k(3))?,
            basic(s, "Conv2d_2b_3x3", 32, 64, k(3).padding(1))?,
            Box::new(max_pool()),
            basic(s, "Conv2d_3b_1x1", 64, 80, k(1))?,
            basic(s, "Conv2d_4a_3x3", 80, 192, k(3))?,
            Box::new(max_pool()),
            Box::new(inception_a(&mut s.pp("Mixed_5b"), 192, 32)?),
            Box::new(inception_a(&mut s.pp("Mixed_5c"), 256, 64)?),
            Box::new(inception_a(&mut s.pp("Mixed_5d"), 288, 64)?),
            Box::new(inception_b(&mut s.pp("Mixed_6a"), 288)?),
            Box::new(inception_c(&mut s.pp("Mixed_6b"), 768, 128)?),
            Box::new(inception_c(&mut s.pp("Mixed_6c"), 768, 160)?),
            Box::new(inception_c(&mut s.pp("Mixed_6d"), 768, 160)?),
            Box::new(inception_c(&mut s.pp("Mixed_6e"), 768, 192)?),
        ];
        let aux = config
            .aux_logits
            .then(|| InceptionAux::new(&mut s.pp("AuxLogits"), 768, config.num_classes))
            .transpose()?;
        let from_aux: Vec<Branch> = vec![
            Box::new(inception_d(&mut s.pp("Mixed_7a"), 768)?),
            Box::new(inception_e(&mut s.pp("Mixed_7b"), 1280)?),
            Box::new(inception_e(&mut s.pp("Mixed_7c"), 2048)?),
        ];
        let fc = LinearConfig {
            init: trunc_normal(0.1),
            ..LinearConfig::default()
        };
        let fc = Linear::new(&mut s.pp("fc"), 2048, config.num_classes, fc)?;
        Ok(Self {
            config,
            to_aux: Sequential::from_children(to_aux),
            aux,
            from_aux: Sequential::from_children(from_aux),
            fc,
        })
    }
}

impl Module for InceptionV3 {
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        Ok(self.forward_aux(ctx, x)?.0)
    }

    /// In training with the auxiliary classifier: the main logits and `[aux]`.
    fn forward_aux(&self, ctx: &mut Ctx, x: &Var) -> Result<(Var, Vec<Var>)> {
        let x = if self.config.transform_input {
            transform_input(ctx, x)?
        } else {
            x.clone()
        };
        let y = self.to_aux.forward(ctx, &x)?;
        let aux = match (&self.aux, ctx.is_training()) {
            (Some(aux), true) => vec![aux.forward(ctx, &y)?],
            _ => Vec::new(),
        };
        let y = self.from_aux.forward(ctx, &y)?;
        let y = ctx.tape.global_avg_pool(&y)?;
        let y = Dropout { p: 0.5 }.forward(ctx, &y)?;
        let y = Flatten::default().forward(ctx, &y)?;
        Ok((self.fc.forward(ctx, &y)?, aux))
    }
}
