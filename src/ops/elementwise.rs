//! Elementwise ops: fill, unary activations and math, and binary arithmetic with
//! broadcasting. Kernels: `shaders/fill.wgsl`, `shaders/unary.wgsl`, `shaders/binary.wgsl`.

use super::layout::{broadcast_shape, broadcast_strides, merge_dims, pack_dims};
use super::windows::for_each_window;
use crate::error::{Result, arg_err};
use crate::gpu::{Grid, Kernel, kernel};
use crate::tensor::Tensor;

const FILL: Kernel = kernel!("fill.wgsl");
const UNARY: Kernel = kernel!("unary.wgsl");
const BINARY: Kernel = kernel!("binary.wgsl");

/// Invocations per workgroup of the elementwise kernels (`WG` in their WGSL).
const WG: u64 = 256;
/// Outputs per invocation of the binary kernel (its `PER_INVOCATION` override). On a CPU
/// adapter, 16 made a large per-channel add 1.9x faster (fewer integer divisions); small
/// tensors and GPUs want the parallelism of one output per invocation, with neighbouring
/// invocations on neighbouring elements.
fn binary_per_invocation(software: bool, outputs: u64) -> u64 {
    if software && outputs >= 1 << 15 {
        16
    } else {
        1
    }
}

/// Unary ops, numbered as the `OP` override of `shaders/unary.wgsl`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    /// `-x`
    Neg = 0,
    /// `e^x`
    Exp = 1,
    /// natural logarithm
    Log = 2,
    /// square root
    Sqrt = 3,
    /// `max(x, 0)`
    Relu = 4,
    /// `min(max(x, 0), 6)`
    Relu6 = 5,
    /// `1 / (1 + e^-x)`
    Sigmoid = 6,
    /// hyperbolic tangent
    Tanh = 7,
    /// `relu6(x + 3) / 6`
    HardSigmoid = 8,
    /// `x · relu6(x + 3) / 6`
    HardSwish = 9,
    /// `x · sigmoid(x)` (also called swish)
    Silu = 10,
}

/// Affine is the unary kernel's op 11, reached through [`Tensor::affine`].
const AFFINE_OP: f64 = 11.0;
/// Leaky ReLU is op 12, reached through [`Tensor::leaky_relu`] (it takes a slope).
const LEAKY_RELU_OP: f64 = 12.0;

/// Binary ops, numbered as the `OP` override of `shaders/binary.wgsl`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    /// `a + b`
    Add = 0,
    /// `a - b`
    Sub = 1,
    /// `a * b`
    Mul = 2,
    /// `a / b`
    Div = 3,
    /// `a · [b > 0]`: the gradient `a` of `relu` at input `b`.
    ReluGrad = 4,
    /// `a · [0 < b < 6]`: the gradient `a` of `relu6` at input `b`.
    Relu6Grad = 5,
    /// `a · σ(b)(1 - σ(b))`: the gradient of `sigmoid` at `b`.
    SigmoidGrad = 6,
    /// `a / 6 · [-3 < b < 3]`: the gradient of `hardsigmoid` at `b`.
    HardSigmoidGrad = 7,
    /// `a · (0 below -3, 1 above 3, (2b + 3)/6 between)`: the gradient of `hardswish`.
    HardSwishGrad = 8,
    /// `a · σ(b)(1 + b(1 - σ(b)))`: the gradient of `silu` at `b`.
    SiluGrad = 9,
    /// `a · (1 - tanh²(b))`: the gradient of `tanh` at `b`.
    TanhGrad = 10,
}

/// The leaky ReLU gradient is the binary kernel's op 11, reached through
/// [`leaky_relu_grad`] (it takes a slope).
const LEAKY_RELU_GRAD_OP: u32 = 11;
/// Binary cross-entropy with logits per element, and its gradient: ops 12 and 13, used
/// by `ops::loss::bce_with_logits`.
pub(crate) const BCE_LOGITS_OP: (u32, &str) = (12, "bce_with_logits");
pub(crate) const BCE_LOGITS_GRAD_OP: (u32, &str) = (13, "bce_with_logits_grad");

/// `op` (one of the crate's own binary ops) of `a` and `b`, same shapes.
pub(crate) fn binary_op(a: &Tensor, b: &Tensor, op: (u32, &str)) -> Result<Tensor> {
    binary_kernel(a, b, op, 0.0)
}

/// Writes `value` to every element of `t` (records the fill; `t` is otherwise unchanged
/// storage, so this is for freshly made tensors and for poisoning outputs in tests).
pub fn fill(t: &Tensor, value: f32) -> Result<()> {
    for_each_window(&[t], |w| {
        let n = w[0].numel() as u64;
        t.device().dispatch(
            &FILL,
            "main",
            &[],
            &[w[0].buffer()],
            &[n as u32, value.to_bits()],
            Grid::for_items(n, WG).trips(0),
        )
    })
}

fn unary_kernel(x: &Tensor, op: f64, alpha: f32, beta: f32) -> Result<Tensor> {
    let y = x.uninit_like(x.shape())?;
    for_each_window(&[x, &y], |w| {
        let n = w[0].numel() as u64;
        x.device().dispatch(
            &UNARY,
            "main",
            &[("OP", op)],
            &[w[0].buffer(), w[1].buffer()],
            &[n as u32, alpha.to_bits(), beta.to_bits()],
            Grid::for_items(n, WG).trips(0),
        )
    })?;
    Ok(y)
}

/// `op(x)` elementwise.
pub fn unary(x: &Tensor, op: UnaryOp) -> Result<Tensor> {
    unary_kernel(x, op as u32 as f64, 1.0, 0.0)
}

/// `a op b` elementwise, broadcasting `a` and `b` to a common shape (NumPy rules).
pub fn binary(a: &Tensor, b: &Tensor, op: BinaryOp) -> Result<Tensor> {
    let name = format!("{op:?}").to_lowercase();
    binary_kernel(a, b, (op as u32, &name), 0.0)
}

/// The gradient `grad` of `leaky_relu` with `negative_slope` at input `x`: `grad` where
/// `x > 0`, `grad · negative_slope` elsewhere (as PyTorch, at 0 too).
pub fn leaky_relu_grad(grad: &Tensor, x: &Tensor, negative_slope: f32) -> Result<Tensor> {
    if !negative_slope.is_finite() {
        return arg_err!("leaky_relu_grad: negative_slope {negative_slope} must be finite");
    }
    let op = (LEAKY_RELU_GRAD_OP, "leaky_relu_grad");
    binary_kernel(grad, x, op, negative_slope)
}

fn binary_kernel(a: &Tensor, b: &Tensor, (op, name): (u32, &str), alpha: f32) -> Result<Tensor> {
    a.check_same_device(b, name)?;
    let out_shape = broadcast_shape(name, a.shape(), b.shape())?;
    let out = a.uninit_like(&out_shape)?;
    let same = a.shape() == b.shape();
    if same {
        // Same shapes: the elements pair up one to one, so large tensors split into
        // ranges of elements.
        return for_each_window(&[a, b, &out], |w| {
            binary_launch(&w[0], &w[1], &w[2], (op, name), alpha)
        })
        .map(|()| out);
    }
    binary_launch(a, b, &out, (op, name), alpha)?;
    Ok(out)
}

/// One launch of the binary kernel writing `out`, the broadcast of `a` and `b`.
fn binary_launch(
    a: &Tensor,
    b: &Tensor,
    out: &Tensor,
    (op, name): (u32, &str),
    alpha: f32,
) -> Result<()> {
    let out_shape = out.shape();
    let n = out.numel() as u64;
    let same = a.shape() == b.shape();
    let (mut shape, mut strides) = merge_dims(
        out_shape,
        &[
            broadcast_strides(a.shape(), out_shape),
            broadcast_strides(b.shape(), out_shape),
        ],
    );
    if shape.is_empty() {
        // All dims had size 1: one element; the kernel wants an innermost dim to walk.
        shape.push(1);
        strides.iter_mut().for_each(|s| s.push(0));
    }
    let per_invocation = binary_per_invocation(a.device().summary().is_software, n);
    let mut params = vec![n as u32, shape.len() as u32, alpha.to_bits(), 0];
    params.extend(pack_dims(name, &shape)?);
    params.extend(pack_dims(name, &strides[0])?);
    params.extend(pack_dims(name, &strides[1])?);
    a.device().dispatch(
        &BINARY,
        "main",
        &[
            ("OP", op as f64),
            ("BROADCAST", f64::from(u8::from(!same))),
            ("PER_INVOCATION", per_invocation as f64),
        ],
        &[a.buffer(), b.buffer(), out.buffer()],
        &params,
        // A run of outputs, each re-deriving its operands' offsets (one step per
        // dimension) at worst.
        Grid::for_items(n, WG * per_invocation)
            .trips(per_invocation * (1 + shape.len() as u64) + shape.len() as u64),
    )
}

/// Elementwise ops as methods. Binary ones broadcast; every shape mismatch is an `Err`.
impl Tensor {
    /// `self + other`, broadcasting.
    pub fn add(&self, other: &Tensor) -> Result<Tensor> {
        binary(self, other, BinaryOp::Add)
    }
    /// `self - other`, broadcasting.
    pub fn sub(&self, other: &Tensor) -> Result<Tensor> {
        binary(self, other, BinaryOp::Sub)
    }
    /// `self * other`, broadcasting.
    pub fn mul(&self, other: &Tensor) -> Result<Tensor> {
        binary(self, other, BinaryOp::Mul)
    }
    /// `self / other`, broadcasting.
    pub fn div(&self, other: &Tensor) -> Result<Tensor> {
        binary(self, other, BinaryOp::Div)
    }
    /// `alpha · self + beta`.
    pub fn affine(&self, alpha: f32, beta: f32) -> Result<Tensor> {
        if !alpha.is_finite() || !beta.is_finite() {
            return arg_err!("affine: alpha {alpha} and beta {beta} must be finite");
        }
        unary_kernel(self, AFFINE_OP, alpha, beta)
    }
    /// `alpha · self`.
    pub fn scale(&self, alpha: f32) -> Result<Tensor> {
        self.affine(alpha, 0.0)
    }
    /// `self + value`.
    pub fn add_scalar(&self, value: f32) -> Result<Tensor> {
        self.affine(1.0, value)
    }
    /// `-self`.
    pub fn neg(&self) -> Result<Tensor> {
        unary(self, UnaryOp::Neg)
    }
    /// `e^self`.
    pub fn exp(&self) -> Result<Tensor> {
        unary(self, UnaryOp::Exp)
    }
    /// Natural logarithm.
    pub fn log(&self) -> Result<Tensor> {
        unary(self, UnaryOp::Log)
    }
    /// Square root.
    pub fn sqrt(&self) -> Result<Tensor> {
        unary(self, UnaryOp::Sqrt)
    }
    /// `max(self, 0)`.
    pub fn relu(&self) -> Result<Tensor> {
        unary(self, UnaryOp::Relu)
    }
    /// `min(max(self, 0), 6)`.
    pub fn relu6(&self) -> Result<Tensor> {
        unary(self, UnaryOp::Relu6)
    }
    /// `1 / (1 + e^-self)`.
    pub fn sigmoid(&self) -> Result<Tensor> {
        unary(self, UnaryOp::Sigmoid)
    }
    /// Hyperbolic tangent.
    pub fn tanh(&self) -> Result<Tensor> {
        unary(self, UnaryOp::Tanh)
    }
    /// `relu6(self + 3) / 6` (PyTorch's `hardsigmoid`).
    pub fn hardsigmoid(&self) -> Result<Tensor> {
        unary(self, UnaryOp::HardSigmoid)
    }
    /// `self · relu6(self + 3) / 6` (PyTorch's `hardswish`).
    pub fn hardswish(&self) -> Result<Tensor> {
        unary(self, UnaryOp::HardSwish)
    }
    /// `self · sigmoid(self)` (PyTorch's `silu`).
    pub fn silu(&self) -> Result<Tensor> {
        unary(self, UnaryOp::Silu)
    }
    /// `self` where positive, `negative_slope · self` elsewhere (PyTorch's
    /// `leaky_relu`; DCGAN's discriminator uses 0.2).
    pub fn leaky_relu(&self, negative_slope: f32) -> Result<Tensor> {
        if !negative_slope.is_finite() {
            return arg_err!("leaky_relu: negative_slope {negative_slope} must be finite");
        }
        unary_kernel(self, LEAKY_RELU_OP, negative_slope, 0.0)
    }
}
