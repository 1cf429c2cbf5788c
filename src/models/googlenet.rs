//! GoogLeNet (Szegedy et al., 2015; Inception v1), built as torchvision builds it: batch
//! norm in every convolution (what Inception v2 brought, `BasicConv2d`), nine Inception
//! modules from the paper's Table 1, and two auxiliary classifiers in training.

use crate::autograd::Var;
use crate::error::{Result, arg_err};
use crate::nn::{
    AdaptiveAvgPool2d, BatchNorm2d, BatchNorm2dConfig, Concat, Conv2d, Conv2dConfig, Ctx, Dropout,
    Flatten, Init, Linear, LinearConfig, MaxPool2d, Module, Scope, Sequential,
};
use crate::ops::pool::Pool2d;
use crate::tensor::Tensor;

/// How to build GoogLeNet.
#[derive(Clone, Debug, PartialEq)]
pub struct GoogLeNetConfig {
    /// Classes of the classifiers.
    pub num_classes: usize,
    /// The two auxiliary classifiers (`aux1` after 4a, `aux2` after 4d), used in training.
    pub aux_logits: bool,
    /// Rescale inputs normalized with ImageNet's statistics to the (x - 0.5) / 0.5 that
    /// the original weights expect (torchvision sets this for its pretrained weights).
    pub transform_input: bool,
    /// Small-input variant: the 7×7 stem convolution and the first two max pools at
    /// stride 1, for 32×32 images.
    pub cifar: bool,
}

impl GoogLeNetConfig {
    /// torchvision's GoogLeNet trained from scratch: auxiliary classifiers on, inputs as
    /// they are.
    pub fn new(num_classes: usize) -> Self {
        Self {
            num_classes,
            aux_logits: true,
            transform_input: false,
            cifar: false,
        }
    }
}

/// torchvision's `BasicConv2d`: convolution without bias, batch norm (eps 1e-3), ReLU.
pub(crate) struct BasicConv2d {
    conv: Conv2d,
    bn: BatchNorm2d,
}

impl BasicConv2d {
    pub(crate) fn new(s: &mut Scope, c_in: usize, c_out: usize, cfg: Conv2dConfig) -> Result<Self> {
        Ok(Self {
            conv: Conv2d::new(&mut s.pp("conv"), c_in, c_out, cfg.bias(false))?,
            bn: BatchNorm2d::new(
                &mut s.pp("bn"),
                c_out,
                BatchNorm2dConfig::default().eps(1e-3),
            )?,
        })
    }
}

impl Module for BasicConv2d {
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let y = self.conv.forward(ctx, x)?;
        let y = self.bn.forward(ctx, &y)?;
        ctx.tape.relu(&y)
    }
}

/// GoogLeNet's initializer: truncated normal, std 0.01, within ±2.
const INIT: Init = Init::TruncatedNormal {
    mean: 0.0,
    std: 0.01,
    lo: -2.0,
    hi: 2.0,
};

fn conv(k: usize) -> Conv2dConfig {
    Conv2dConfig::new(k).init(INIT)
}

fn basic(s: &mut Scope, c_in: usize, c_out: usize, cfg: Conv2dConfig) -> Result<BasicConv2d> {
    BasicConv2d::new(s, c_in, c_out, cfg)
}

/// An Inception module: a 1×1 branch, 1×1-reduced 3×3 and "5×5" branches (3×3 in
/// torchvision, whose weights were trained that way), and a 3×3 max pool followed by a 1×1
/// projection; the four concatenated.
fn inception_module(
    s: &mut Scope,
    c_in: usize,
    (b1, r3, b3, r5, b5, proj): InceptionRow,
) -> Result<Concat> {
    let reduced = |s: &mut Scope, r: usize, c_out: usize| {
        Sequential::build(s, |l| {
            l.add(|s| basic(s, c_in, r, conv(1)))?;
            l.add(|s| basic(s, r, c_out, conv(3).padding(1)))?;
            Ok(())
        })
    };
    let pool = Pool2d::new((3, 3))
        .stride((1, 1))
        .padding((1, 1))
        .ceil_mode(true);
    Ok(Concat(vec![
        Box::new(basic(&mut s.pp("branch1"), c_in, b1, conv(1))?),
        Box::new(reduced(&mut s.pp("branch2"), r3, b3)?),
        Box::new(reduced(&mut s.pp("branch3"), r5, b5)?),
        Box::new(Sequential::build(&mut s.pp("branch4"), |l| {
            l.add_plain(MaxPool2d(pool));
            l.add(|s| basic(s, c_in, proj, conv(1)))?;
            Ok(())
        })?),
    ]))
}

/// One row of the paper's Table 1: #1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj.
type InceptionRow = (usize, usize, usize, usize, usize, usize);

/// An auxiliary classifier: 4×4 adaptive average pool, 1×1 `conv` to 128, `fc1` to 1024,
/// ReLU, dropout 0.7, `fc2`.
struct InceptionAux {
    conv: BasicConv2d,
    fc1: Linear,
    fc2: Linear,
}

impl InceptionAux {
    fn new(s: &mut Scope, c_in: usize, num_classes: usize) -> Result<Self> {
        let linear = LinearConfig {
            init: INIT,
            ..LinearConfig::default()
        };
        Ok(Self {
            conv: basic(&mut s.pp("conv"), c_in, 128, conv(1))?,
            fc1: Linear::new(&mut s.pp("fc1"), 2048, 1024, linear)?,
            fc2: Linear::new(&mut s.pp("fc2"), 1024, num_classes, linear)?,
        })
    }
}

impl Module for InceptionAux {
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let y = AdaptiveAvgPool2d((4, 4)).forward(ctx, x)?;
        let y = self.conv.forward(ctx, &y)?;
        let y = Flatten::default().forward(ctx, &y)?;
        let y = ctx.tape.relu(&self.fc1.forward(ctx, &y)?)?;
        let y = Dropout { p: 0.7 }.forward(ctx, &y)?;
        self.fc2.forward(ctx, &y)
    }
}

/// The paper's Table 1, by stage: inception (3a, 3b), (4a … 4e), (5a, 5b).
const STAGE3: [InceptionRow; 2] = [(64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64)];
const STAGE4: [InceptionRow; 5] = [
    (192, 96, 208, 16, 48, 64),
    (160, 112, 224, 24, 64, 64),
    (128, 128, 256, 24, 64, 64),
    (112, 144, 288, 32, 64, 64),
    (256, 160, 320, 32, 128, 128),
];
const STAGE5: [InceptionRow; 2] = [(256, 160, 320, 32, 128, 128), (384, 192, 384, 48, 128, 128)];

/// Output channels of an Inception module.
fn width((b1, _, b3, _, b5, proj): InceptionRow) -> usize {
    b1 + b3 + b5 + proj
}

/// GoogLeNet: stem (`conv1` … `conv3` with max pools), `inception3a` … `inception5b` with
/// max pools between the stages, optional `aux1` and `aux2`, global average pool, dropout
/// 0.2, `fc`.
pub struct GoogLeNet {
    config: GoogLeNetConfig,
    conv1: BasicConv2d,
    conv2: BasicConv2d,
    conv3: BasicConv2d,
    inception: Vec<(String, Concat)>,
    aux: Option<(InceptionAux, InceptionAux)>,
    fc: Linear,
}

impl GoogLeNet {
    /// Builds the network in `scope`, initialized as torchvision initializes it.
    pub fn new(scope: &mut Scope, config: GoogLeNetConfig) -> Result<Self> {
        if config.num_classes == 0 {
            return arg_err!("GoogLeNet: num_classes must be positive");
        }
        let stride = if config.cifar { 1 } else { 2 };
        let conv1 = basic(
            &mut scope.pp("conv1"),
            3,
            64,
            conv(7).stride(stride).padding(3),
        )?;
        let conv2 = basic(&mut scope.pp("conv2"), 64, 64, conv(1))?;
        let conv3 = basic(&mut scope.pp("conv3"), 64, 192, conv(3).padding(1))?;
        let mut inception = Vec::new();
        let mut c_in = 192;
        for (stage, rows) in [(3, &STAGE3[..]), (4, &STAGE4[..]), (5, &STAGE5[..])] {
            for (i, &row) in rows.iter().enumerate() {
                let name = format!("inception{stage}{}", (b'a' + i as u8) as char);
                inception.push((
                    name.clone(),
                    inception_module(&mut scope.pp(&name), c_in, row)?,
                ));
                c_in = width(row);
            }
        }
        let aux = if config.aux_logits {
            Some((
                InceptionAux::new(&mut scope.pp("aux1"), width(STAGE4[0]), config.num_classes)?,
                InceptionAux::new(&mut scope.pp("aux2"), width(STAGE4[3]), config.num_classes)?,
            ))
        } else {
            None
        };
        let linear = LinearConfig {
            init: INIT,
            ..LinearConfig::default()
        };
        let fc = Linear::new(&mut scope.pp("fc"), c_in, config.num_classes, linear)?;
        Ok(Self {
            config,
            conv1,
            conv2,
            conv3,
            inception,
            aux,
            fc,
        })
    }
}

impl Module for GoogLeNet {
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        Ok(self.forward_aux(ctx, x)?.0)
    }

    /// In training with auxiliary classifiers: the main logits and `[aux1, aux2]`.
    fn forward_aux(&self, ctx: &mut Ctx, x: &Var) -> Result<(Var, Vec<Var>)> {
        let x = if self.config.transform_input {
            transform_input(ctx, x)?
        } else {
            x.clone()
        };
        let stride = if self.config.cifar { 1 } else { 2 };
        let pool = |stride: usize, k: usize| {
            MaxPool2d(Pool2d::new((k, k)).stride((stride, stride)).ceil_mode(true))
        };
        let y = self.conv1.forward(ctx, &x)?;
        let y = pool(stride, 3).forward(ctx, &y)?;
        let y = self.conv2.forward(ctx, &y)?;
        let y = self.conv3.forward(ctx, &y)?;
        let mut y = pool(stride, 3).forward(ctx, &y)?;
        let mut aux = Vec::new();
        for (name, module) in &self.inception {
            match name.as_str() {
                "inception4a" => y = pool(2, 3).forward(ctx, &y)?,
                "inception5a" => y = pool(2, 2).forward(ctx, &y)?,
                _ => {}
            }
            y = module.forward(ctx, &y)?;
            if let (Some((aux1, aux2)), true) = (&self.aux, ctx.is_training()) {
                match name.as_str() {
                    "inception4a" => aux.push(aux1.forward(ctx, &y)?),
                    "inception4d" => aux.push(aux2.forward(ctx, &y)?),
                    _ => {}
                }
            }
        }
        let y = ctx.tape.global_avg_pool(&y)?;
        let y = Flatten::default().forward(ctx, &y)?;
        let y = Dropout { p: 0.2 }.forward(ctx, &y)?;
        Ok((self.fc.forward(ctx, &y)?, aux))
    }
}

/// torchvision's `_transform_input` (GoogLeNet and Inception v3 with their original
/// weights): channel c becomes x · std_c / 0.5 + (mean_c - 0.5) / 0.5 with ImageNet's
/// mean and std, the (x - 0.5) / 0.5 scaling those weights were trained on.
pub(crate) fn transform_input(ctx: &mut Ctx, x: &Var) -> Result<Var> {
    let (mean, std) = ([0.485f32, 0.456, 0.406], [0.229f32, 0.224, 0.225]);
    let device = x.value().device();
    let scale: Vec<f32> = std.iter().map(|s| s / 0.5).collect();
    let shift: Vec<f32> = mean.iter().map(|m| (m - 0.5) / 0.5).collect();
    let scale = ctx
        .tape
        .constant(Tensor::from_vec(device, scale, &[1, 3, 1, 1])?);
    let shift = ctx
        .tape
        .constant(Tensor::from_vec(device, shift, &[1, 3, 1, 1])?);
    ctx.tape.add(&ctx.tape.mul(x, &scale)?, &shift)
}
