//! Layers: each registers its tensors in a [`ParamStore`] under PyTorch's dotted names at
//! construction, initialized as torchvision does, and reads them from the store at each
//! forward — so an optimizer or a checkpoint can replace them between steps.

use crate::autograd::{Act, Tape, Var};
use crate::error::{Result, arg_err};
use crate::gpu::Device;
use crate::nn::ParamStore;
use crate::ops::conv::{Conv2dParams, ConvTranspose2dParams};
use crate::ops::norm::batch_norm_eval;
use crate::rng::Rng;
use crate::tensor::{Tensor, checked_count};

/// What a forward pass needs besides its input: the tape, the parameters, the mode.
pub struct Ctx<'a> {
    /// Where ops are recorded (a `Tape::no_grad()` one for evaluation).
    pub tape: &'a Tape,
    /// The model's tensors; batch norm writes its running statistics back in training.
    pub store: &'a mut ParamStore,
    /// Training mode: batch statistics in batch norm, dropout active.
    pub train: bool,
    /// Seeds dropout; advanced at every dropout layer so each draws a fresh mask.
    seed: u64,
}

impl<'a> Ctx<'a> {
    /// A context for one forward pass; `seed` fixes the dropout masks of this pass.
    pub fn new(tape: &'a Tape, store: &'a mut ParamStore, train: bool, seed: u64) -> Self {
        Self {
            tape,
            store,
            train,
            seed,
        }
    }

    /// The stored tensor `name` as a tape leaf whose gradient is reported under `name`.
    pub fn param(&self, name: &str) -> Result<Var> {
        Ok(self.tape.param(name, self.store.get(name)?.clone()))
    }

    fn next_seed(&mut self) -> u64 {
        self.seed = self
            .seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.seed
    }
}

/// Normal(0, std) values from `rng`. The size is checked against the device before
/// anything is allocated, so a huge layer is an `Err`, not an aborted process.
fn normal(device: &Device, rng: &mut Rng, shape: &[usize], std: f64) -> Result<Tensor> {
    let n = checked_count(device, shape)?;
    let data: Vec<f32> = (0..n).map(|_| (rng.normal() * std) as f32).collect();
    Tensor::from_vec(device, data, shape)
}

/// An `Err` unless every size of a layer is positive.
fn check_sizes(layer: &str, name: &str, sizes: &[(&str, usize)]) -> Result<()> {
    match sizes.iter().find(|(_, v)| *v == 0) {
        Some((what, _)) => arg_err!("{layer} {name:?}: {what} must be positive, got {sizes:?}"),
        None => Ok(()),
    }
}

/// A convolution's tensors: `<name>.weight` of `shape` from Normal(0, √(2 / fan_out))
/// — kaiming-normal with fan_out = shape[0]·kH·kW, PyTorch's fan_out of that tensor — and
/// `<name>.bias` zeros of `bias_len` when asked.
fn register_conv(
    store: &mut ParamStore,
    device: &Device,
    rng: &mut Rng,
    name: &str,
    shape: [usize; 4],
    bias_len: Option<usize>,
) -> Result<()> {
    let fan_out = shape[0] as f64 * shape[2] as f64 * shape[3] as f64;
    let std = (2.0 / fan_out).sqrt();
    store.insert_param(format!("{name}.weight"), normal(device, rng, &shape, std)?)?;
    if let Some(len) = bias_len {
        store.insert_param(format!("{name}.bias"), Tensor::zeros(device, &[len])?)?;
    }
    Ok(())
}

/// The weight and (when registered) bias of the convolution `name`, as tape leaves.
fn conv_leaves(ctx: &Ctx, name: &str, bias: bool) -> Result<(Var, Option<Var>)> {
    let w = ctx.param(&format!("{name}.weight"))?;
    let b = if bias {
        Some(ctx.param(&format!("{name}.bias"))?)
    } else {
        None
    };
    Ok((w, b))
}

/// 2-D convolution. Weight init: kaiming-normal with fan_out (std = √(2 / (C_out·kH·kW))),
/// bias zeros — torchvision's init for its classification models.
pub struct Conv2d {
    name: String,
    params: Conv2dParams,
    bias: bool,
}

impl Conv2d {
    /// Registers `<name>.weight` `[c_out, c_in/groups, k, k]` (and `<name>.bias`).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: &mut ParamStore,
        device: &Device,
        rng: &mut Rng,
        name: &str,
        (c_in, c_out, k): (usize, usize, usize),
        params: Conv2dParams,
        bias: bool,
    ) -> Result<Self> {
        let g = params.groups;
        let sizes = [
            ("c_in", c_in),
            ("c_out", c_out),
            ("kernel", k),
            ("groups", g),
        ];
        check_sizes("Conv2d", name, &sizes)?;
        if c_in % g != 0 || c_out % g != 0 {
            return arg_err!(
                "Conv2d {name:?}: groups {g} must divide c_in {c_in} and c_out {c_out}"
            );
        }
        let shape = [c_out, c_in / g, k, k];
        register_conv(store, device, rng, name, shape, bias.then_some(c_out))?;
        Ok(Self {
            name: name.to_string(),
            params,
            bias,
        })
    }

    /// `conv2d(x, weight) + bias`.
    pub fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let (w, b) = conv_leaves(ctx, &self.name, self.bias)?;
        ctx.tape.conv2d(x, &w, b.as_ref(), &self.params)
    }
}

/// Transposed 2-D convolution, weight `[c_in, c_out/groups, k, k]` from a normal
/// distribution with the kaiming fan_out std of that tensor (√(2 / (c_in·k·k)), PyTorch's
/// fan_out for this layout), bias zeros.
pub struct ConvTranspose2d {
    name: String,
    params: ConvTranspose2dParams,
    bias: bool,
}

impl ConvTranspose2d {
    /// Registers `<name>.weight` (and `<name>.bias`).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: &mut ParamStore,
        device: &Device,
        rng: &mut Rng,
        name: &str,
        (c_in, c_out, k): (usize, usize, usize),
        params: ConvTranspose2dParams,
        bias: bool,
    ) -> Result<Self> {
        let g = params.groups;
        let sizes = [
            ("c_in", c_in),
            ("c_out", c_out),
            ("kernel", k),
            ("groups", g),
        ];
        check_sizes("ConvTranspose2d", name, &sizes)?;
        if c_in % g != 0 || c_out % g != 0 {
            return arg_err!(
                "ConvTranspose2d {name:?}: groups {g} must divide c_in {c_in} and c_out {c_out}"
            );
        }
        let shape = [c_in, c_out / g, k, k];
        register_conv(store, device, rng, name, shape, bias.then_some(c_out))?;
        Ok(Self {
            name: name.to_string(),
            params,
            bias,
        })
    }

    /// `conv_transpose2d(x, weight) + bias`.
    pub fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let (w, b) = conv_leaves(ctx, &self.name, self.bias)?;
        ctx.tape.conv_transpose2d(x, &w, b.as_ref(), &self.params)
    }
}

/// Squeeze-and-excitation (torchvision's `SqueezeExcitation`): global average pool, 1×1
/// conv `fc1` to `squeeze` channels, ReLU, 1×1 conv `fc2` back, a gate activation
/// (sigmoid; hard-sigmoid in MobileNetV3), and the input scaled per channel by the gate.
pub struct SqueezeExcite {
    fc1: Conv2d,
    fc2: Conv2d,
    gate: Act,
}

impl SqueezeExcite {
    /// Registers `<name>.fc1.{weight,bias}` and `<name>.fc2.{weight,bias}`.
    pub fn new(
        store: &mut ParamStore,
        device: &Device,
        rng: &mut Rng,
        name: &str,
        (channels, squeeze): (usize, usize),
        gate: Act,
    ) -> Result<Self> {
        let p = Conv2dParams::default();
        Ok(Self {
            fc1: Conv2d::new(
                store,
                device,
                rng,
                &format!("{name}.fc1"),
                (channels, squeeze, 1),
                p,
                true,
            )?,
            fc2: Conv2d::new(
                store,
                device,
                rng,
                &format!("{name}.fc2"),
                (squeeze, channels, 1),
                p,
                true,
            )?,
            gate,
        })
    }

    /// `x · gate(fc2(relu(fc1(mean over H×W of x))))`.
    pub fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let s = ctx.tape.global_avg_pool(x)?;
        let s = self.fc1.forward(ctx, &s)?;
        let s = ctx.tape.relu(&s)?;
        let s = self.fc2.forward(ctx, &s)?;
        let s = ctx.tape.activation(&s, self.gate)?;
        ctx.tape.mul(x, &s)
    }
}

/// Batch norm over channels (`[N, C, H, W]`), PyTorch's defaults: eps 1e-5, momentum
/// 0.1, weight ones, bias zeros, running mean zeros, running variance ones.
pub struct BatchNorm2d {
    name: String,
    eps: f32,
    momentum: f32,
}

impl BatchNorm2d {
    /// Registers `<name>.weight`, `.bias` (parameters) and `.running_mean`, `.running_var`
    /// (buffers).
    pub fn new(
        store: &mut ParamStore,
        device: &Device,
        name: &str,
        channels: usize,
    ) -> Result<Self> {
        check_sizes("BatchNorm2d", name, &[("channels", channels)])?;
        store.insert_param(format!("{name}.weight"), Tensor::ones(device, &[channels])?)?;
        store.insert_param(format!("{name}.bias"), Tensor::zeros(device, &[channels])?)?;
        store.insert_buffer(
            format!("{name}.running_mean"),
            Tensor::zeros(device, &[channels])?,
        )?;
        store.insert_buffer(
            format!("{name}.running_var"),
            Tensor::ones(device, &[channels])?,
        )?;
        Ok(Self {
            name: name.to_string(),
            eps: 1e-5,
            momentum: 0.1,
        })
    }

    /// Training: batch statistics (recorded), running statistics updated in the store.
    /// Evaluation: running statistics, and no gradient flows through.
    pub fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let key = |s: &str| format!("{}.{s}", self.name);
        let (mean, var) = (
            ctx.store.get(&key("running_mean"))?.clone(),
            ctx.store.get(&key("running_var"))?.clone(),
        );
        if ctx.train {
            let (w, b) = (ctx.param(&key("weight"))?, ctx.param(&key("bias"))?);
            let (y, new_mean, new_var) =
                ctx.tape
                    .batch_norm_train(x, &w, &b, &mean, &var, self.momentum, self.eps)?;
            ctx.store.set(&key("running_mean"), new_mean)?;
            ctx.store.set(&key("running_var"), new_var)?;
            return Ok(y);
        }
        let (w, b) = (ctx.store.get(&key("weight"))?, ctx.store.get(&key("bias"))?);
        let y = batch_norm_eval(x.value(), Some(w), Some(b), &mean, &var, self.eps)?;
        Ok(ctx.tape.constant(y))
    }
}

/// `x · Wᵀ + b`, weight `[out, in]` from Normal(0, `std`), bias zeros (torchvision's
/// MobileNetV2 classifier uses std 0.01).
pub struct Linear {
    name: String,
}

impl Linear {
    /// Registers `<name>.weight` `[out, in]` and `<name>.bias` `[out]`.
    pub fn new(
        store: &mut ParamStore,
        device: &Device,
        rng: &mut Rng,
        name: &str,
        (inputs, outputs): (usize, usize),
        std: f64,
    ) -> Result<Self> {
        check_sizes("Linear", name, &[("inputs", inputs), ("outputs", outputs)])?;
        store.insert_param(
            format!("{name}.weight"),
            normal(device, rng, &[outputs, inputs], std)?,
        )?;
        store.insert_param(format!("{name}.bias"), Tensor::zeros(device, &[outputs])?)?;
        Ok(Self {
            name: name.to_string(),
        })
    }

    /// `x · Wᵀ + b`.
    pub fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let w = ctx.param(&format!("{}.weight", self.name))?;
        let b = ctx.param(&format!("{}.bias", self.name))?;
        ctx.tape.linear(x, &w, Some(&b))
    }
}

/// Dropout with probability `p` in training, identity in evaluation.
pub struct Dropout {
    /// Probability of zeroing an element.
    pub p: f32,
}

impl Dropout {
    /// Applies dropout with a fresh seed from the context.
    pub fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let seed = ctx.next_seed();
        ctx.tape.dropout(x, self.p, ctx.train, seed)
    }
}

/// An activation applied after a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// `x · relu6(x + 3) / 6` (MobileNetV3).
    HardSwish,
    /// `x · sigmoid(x)` (EfficientNet).
    Silu,
}

impl Activation {
    /// Applies the activation on the tape.
    pub fn forward(self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        match self {
            Activation::Relu => ctx.tape.relu(x),
            Activation::Relu6 => ctx.tape.relu6(x),
            Activation::HardSwish => ctx.tape.activation(x, Act::HardSwish),
            Activation::Silu => ctx.tape.activation(x, Act::Silu),
        }
    }
}

/// Convolution → batch norm → optional activation (torchvision's `Conv2dNormActivation`):
/// the conv is `<name>.0`, the norm `<name>.1`, the conv has no bias.
pub struct ConvBnAct {
    conv: Conv2d,
    bn: BatchNorm2d,
    act: Option<Activation>,
}

impl ConvBnAct {
    /// Registers `<name>.0.weight` and `<name>.1.*`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: &mut ParamStore,
        device: &Device,
        rng: &mut Rng,
        name: &str,
        (c_in, c_out, k): (usize, usize, usize),
        stride: usize,
        groups: usize,
        act: Option<Activation>,
    ) -> Result<Self> {
        Self::with_names(
            store,
            device,
            rng,
            (&format!("{name}.0"), &format!("{name}.1")),
            (c_in, c_out, k),
            stride,
            groups,
            act,
        )
    }

    /// Like [`ConvBnAct::new`] with explicit names for the conv and the norm (torchvision's
    /// inverted residual names its last conv and norm `conv.2` and `conv.3`).
    #[allow(clippy::too_many_arguments)]
    pub fn with_names(
        store: &mut ParamStore,
        device: &Device,
        rng: &mut Rng,
        (conv_name, bn_name): (&str, &str),
        (c_in, c_out, k): (usize, usize, usize),
        stride: usize,
        groups: usize,
        act: Option<Activation>,
    ) -> Result<Self> {
        check_sizes("ConvBnAct", conv_name, &[("kernel", k), ("stride", stride)])?;
        let p = Conv2dParams::square(stride, (k - 1) / 2, 1, groups);
        Ok(Self {
            conv: Conv2d::new(store, device, rng, conv_name, (c_in, c_out, k), p, false)?,
            bn: BatchNorm2d::new(store, device, bn_name, c_out)?,
            act,
        })
    }

    /// conv → norm → activation.
    pub fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let y = self.conv.forward(ctx, x)?;
        let y = self.bn.forward(ctx, &y)?;
        match self.act {
            Some(act) => act.forward(ctx, &y),
            None => Ok(y),
        }
    }
}
