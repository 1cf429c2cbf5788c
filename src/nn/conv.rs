//! Convolution layers: [`Conv2d`] and [`ConvTranspose2d`], configured by
//! [`Conv2dConfig`] and [`ConvTranspose2dConfig`] as PyTorch's constructor arguments.

use super::{BatchNorm2d, Ctx, Init, Module, Scope};
use crate::autograd::Var;
use crate::error::{Result, arg_err};
use crate::ops::conv::{Conv2dParams, ConvTranspose2dParams, conv2d_batch_norm_eval};
use crate::ops::norm::{BnAct, FrozenBatchNorm};

/// A 2-D convolution's settings besides its channels, as `nn.Conv2d`'s arguments, each a
/// (height, width) pair. Built from the kernel size: `Conv2dConfig::new(3).stride(2)
/// .padding(1).bias(false)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conv2dConfig {
    /// Kernel size.
    pub kernel: (usize, usize),
    /// Step between output positions.
    pub stride: (usize, usize),
    /// Zero padding on each side.
    pub padding: (usize, usize),
    /// Spacing between kernel taps.
    pub dilation: (usize, usize),
    /// Channel groups (the input channels for depthwise).
    pub groups: usize,
    /// Whether the layer adds a bias.
    pub bias: bool,
    /// How the weight starts (PyTorch's default unless the model sets another); the bias
    /// starts as PyTorch's default for the weight's fan-in, or zeros when the weight is
    /// Kaiming-normal (torchvision's models zero their conv biases).
    pub init: Init,
}

impl Conv2dConfig {
    /// A `k`×`k` kernel, stride 1, no padding, dilation 1, one group, with a bias.
    pub fn new(k: usize) -> Self {
        Self::rect(k, k)
    }

    /// A `kh`×`kw` kernel (Inception's 1×7 and 7×1), the other settings as [`Self::new`].
    pub fn rect(kh: usize, kw: usize) -> Self {
        Self {
            kernel: (kh, kw),
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
            bias: true,
            init: Init::TorchDefault,
        }
    }

    /// The same stride on both axes.
    pub fn stride(self, s: usize) -> Self {
        self.stride_hw((s, s))
    }

    /// A stride per axis.
    pub fn stride_hw(mut self, s: (usize, usize)) -> Self {
        self.stride = s;
        self
    }

    /// The same padding on both axes.
    pub fn padding(self, p: usize) -> Self {
        self.padding_hw((p, p))
    }

    /// A padding per axis.
    pub fn padding_hw(mut self, p: (usize, usize)) -> Self {
        self.padding = p;
        self
    }

    /// Padding `dilation · (k - 1) / 2` on each axis: the size is kept at stride 1 (for
    /// odd kernels), as torchvision's `Conv2dNormActivation` pads.
    pub fn same_padding(mut self) -> Self {
        let half = |k: usize, d: usize| d * k.saturating_sub(1) / 2;
        self.padding = (
            half(self.kernel.0, self.dilation.0),
            half(self.kernel.1, self.dilation.1),
        );
        self
    }

    /// The same dilation on both axes.
    pub fn dilation(mut self, d: usize) -> Self {
        self.dilation = (d, d);
        self
    }

    /// Channel groups.
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }

    /// With or without a bias.
    pub fn bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }

    /// The weight's initializer.
    pub fn init(mut self, init: Init) -> Self {
        self.init = init;
        self
    }

    fn params(&self) -> Conv2dParams {
        Conv2dParams {
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
            groups: self.groups,
        }
    }
}

/// The bias's initializer for a weight of `shape` initialized by `init` (see
/// [`Conv2dConfig::init`]).
fn bias_init(init: Init, shape: &[usize]) -> Init {
    match init {
        Init::TorchDefault => Init::torch_default_bias(shape),
        _ => Init::Zeros,
    }
}

/// An `Err` unless the channels and sizes make a layer: all positive, groups dividing
/// both channel counts.
fn check_channels(
    layer: &str,
    name: &str,
    (c_in, c_out): (usize, usize),
    kernel: (usize, usize),
    groups: usize,
) -> Result<()> {
    let sizes = [c_in, c_out, kernel.0, kernel.1, groups];
    if sizes.contains(&0) {
        return arg_err!(
            "{layer} {name:?}: channels ({c_in}, {c_out}), kernel {kernel:?} and groups \
             {groups} must be positive"
        );
    }
    if c_in % groups != 0 || c_out % groups != 0 {
        return arg_err!(
            "{layer} {name:?}: groups {groups} must divide c_in {c_in} and c_out {c_out}"
        );
    }
    Ok(())
}

/// 2-D convolution (`nn.Conv2d`): `weight` `[c_out, c_in/groups, kH, kW]`, optional `bias`
/// `[c_out]`.
pub struct Conv2d {
    weight: String,
    bias: Option<String>,
    params: Conv2dParams,
    out_channels: usize,
}

impl Conv2d {
    /// Registers `weight` (and `bias`) in `scope`.
    pub fn new(scope: &mut Scope, c_in: usize, c_out: usize, cfg: Conv2dConfig) -> Result<Self> {
        check_channels(
            "Conv2d",
            scope.path(),
            (c_in, c_out),
            cfg.kernel,
            cfg.groups,
        )?;
        let shape = [c_out, c_in / cfg.groups, cfg.kernel.0, cfg.kernel.1];
        let weight = scope.param("weight", &shape, cfg.init)?;
        let bias = cfg
            .bias
            .then(|| scope.param("bias", &[c_out], bias_init(cfg.init, &shape)))
            .transpose()?;
        Ok(Self {
            weight,
            bias,
            params: cfg.params(),
            out_channels: c_out,
        })
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.out_channels
    }
}

impl Module for Conv2d {
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let w = ctx.param(&self.weight)?;
        let b = self.bias.as_deref().map(|b| ctx.param(b)).transpose()?;
        ctx.tape.conv2d(x, &w, b.as_ref(), &self.params)
    }

    fn forward_then_batch_norm(
        &self,
        ctx: &mut Ctx,
        x: &Var,
        bn: &BatchNorm2d,
        act: BnAct,
    ) -> Option<Result<Var>> {
        if self.bias.is_some() {
            return None;
        }
        if ctx.is_training() {
            // Training: the batch norm's statistics merge the moments the convolution
            // wrote on the way, where its path does.
            let run = |ctx: &mut Ctx| -> Result<Var> {
                let w = ctx.param(&self.weight)?;
                let (y, moments) = ctx.tape.conv2d_with_moments(x, &w, &self.params)?;
                bn.forward_act_from(ctx, &y, moments.as_ref(), act)
            };
            return Some(run(ctx));
        }
        if ctx.tape.is_recording() {
            // A frozen batch norm that gradients flow through: run apart.
            return None;
        }
        let run = || -> Result<Var> {
            let w = ctx.store().get(&self.weight)?;
            let ([weight, bias, running_mean, running_var], eps) = bn.frozen(ctx)?;
            let frozen = FrozenBatchNorm {
                weight: Some(&weight),
                bias: Some(&bias),
                running_mean: &running_mean,
                running_var: &running_var,
                eps,
            };
            let y = conv2d_batch_norm_eval(x.value(), w, &self.params, frozen, act)?;
            Ok(ctx.tape.constant(y))
        };
        Some(run())
    }
}

/// A transposed convolution's settings besides its channels, as
/// `nn.ConvTranspose2d`'s arguments.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConvTranspose2dConfig {
    /// Kernel size.
    pub kernel: (usize, usize),
    /// Step between input positions in the output.
    pub stride: (usize, usize),
    /// Zero padding removed from each side of the output.
    pub padding: (usize, usize),
    /// Extra size on one side of the output.
    pub output_padding: (usize, usize),
    /// Spacing between kernel taps.
    pub dilation: (usize, usize),
    /// Channel groups.
    pub groups: usize,
    /// Whether the layer adds a bias.
    pub bias: bool,
    /// How the weight starts (see [`Conv2dConfig::init`]).
    pub init: Init,
}

impl ConvTranspose2dConfig {
    /// A `k`×`k` kernel, stride 1, no padding, one group, with a bias, PyTorch's init.
    pub fn new(k: usize) -> Self {
        Self {
            kernel: (k, k),
            stride: (1, 1),
            padding: (0, 0),
            output_padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
            bias: true,
            init: Init::TorchDefault,
        }
    }

    /// The same stride on both axes.
    pub fn stride(mut self, s: usize) -> Self {
        self.stride = (s, s);
        self
    }

    /// The same padding on both axes.
    pub fn padding(mut self, p: usize) -> Self {
        self.padding = (p, p);
        self
    }

    /// The same output padding on both axes.
    pub fn output_padding(mut self, p: usize) -> Self {
        self.output_padding = (p, p);
        self
    }

    /// The same dilation on both axes.
    pub fn dilation(mut self, d: usize) -> Self {
        self.dilation = (d, d);
        self
    }

    /// Channel groups.
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }

    /// With or without a bias.
    pub fn bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }

    /// The weight's initializer.
    pub fn init(mut self, init: Init) -> Self {
        self.init = init;
        self
    }
}

/// Transposed 2-D convolution (`nn.ConvTranspose2d`): `weight` `[c_in, c_out/groups, kH,
/// kW]`, optional `bias` `[c_out]`.
pub struct ConvTranspose2d {
    weight: String,
    bias: Option<String>,
    params: ConvTranspose2dParams,
}

impl ConvTranspose2d {
    /// Registers `weight` (and `bias`) in `scope`.
    pub fn new(
        scope: &mut Scope,
        c_in: usize,
        c_out: usize,
        cfg: ConvTranspose2dConfig,
    ) -> Result<Self> {
        check_channels(
            "ConvTranspose2d",
            scope.path(),
            (c_in, c_out),
            cfg.kernel,
            cfg.groups,
        )?;
        let shape = [c_in, c_out / cfg.groups, cfg.kernel.0, cfg.kernel.1];
        let weight = scope.param("weight", &shape, cfg.init)?;
        let bias = cfg
            .bias
            .then(|| scope.param("bias", &[c_out], bias_init(cfg.init, &shape)))
            .transpose()?;
        let params = ConvTranspose2dParams {
            stride: cfg.stride,
            padding: cfg.padding,
            output_padding: cfg.output_padding,
            dilation: cfg.dilation,
            groups: cfg.groups,
        };
        Ok(Self {
            weight,
            bias,
            params,
        })
    }
}

impl Module for ConvTranspose2d {
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let w = ctx.param(&self.weight)?;
        let b = self.bias.as_deref().map(|b| ctx.param(b)).transpose()?;
        ctx.tape.conv_transpose2d(x, &w, b.as_ref(), &self.params)
    }
}
