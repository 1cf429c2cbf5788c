//! The convolution shapes liandan benchmarks (`benches/conv.rs`, `examples/conv_report.rs`):
//! one of each form, batch 32, as a CNN meets them. Kept in the library so the bench and
//! the report run exactly the same work.

use super::{
    Conv2dParams, ConvTranspose2dParams, conv_backward_bias, conv_geometry, conv_transpose2d,
    conv_transpose2d_backward_input, conv_transpose2d_backward_weight, conv2d,
    conv2d_backward_input, conv2d_backward_weight,
};
use crate::error::Result;
use crate::gpu::Device;
use crate::tensor::Tensor;

/// One benchmarked convolution: its tensors and parameters.
pub struct ConvCase {
    /// Short name: `standard`, `depthwise`, `pointwise`, `grouped`, `dilated`, `transposed`.
    pub name: &'static str,
    /// What it is, for tables.
    pub description: &'static str,
    x: Tensor,
    weight: Tensor,
    bias: Tensor,
    grad_out: Tensor,
    kind: Kind,
}

enum Kind {
    Conv(Conv2dParams),
    Transposed(ConvTranspose2dParams),
}

impl ConvCase {
    /// The six benchmark shapes, batch `n`, random data from fixed seeds.
    pub fn all(device: &Device, n: usize) -> Result<Vec<ConvCase>> {
        let conv = |name, description, c_in, hw, c_out, k, pad, dil, groups| -> Result<ConvCase> {
            let p = Conv2dParams::square(1, pad, dil, groups);
            let g = conv_geometry(name, &[n, c_in, hw, hw], &[c_out, c_in / groups, k, k], &p)?;
            Ok(ConvCase {
                name,
                description,
                x: Tensor::randn(device, &g.input_shape(), 1)?,
                weight: Tensor::randn(device, &g.weight_shape(), 2)?,
                bias: Tensor::randn(device, &[c_out], 3)?,
                grad_out: Tensor::randn(device, &g.output_shape(), 4)?,
                kind: Kind::Conv(p),
            })
        };
        let transposed = {
            let p = ConvTranspose2dParams {
                stride: (2, 2),
                padding: (1, 1),
                ..Default::default()
            };
            ConvCase {
                name: "transposed",
                description: "transposed 4x4 s2 p1 64->32, 16x16 -> 32x32",
                x: Tensor::randn(device, &[n, 64, 16, 16], 1)?,
                weight: Tensor::randn(device, &[64, 32, 4, 4], 2)?,
                bias: Tensor::randn(device, &[32], 3)?,
                grad_out: Tensor::randn(device, &[n, 32, 32, 32], 4)?,
                kind: Kind::Transposed(p),
            }
        };
        Ok(vec![
            conv(
                "standard",
                "standard 3x3 64->64 p1, 32x32",
                64,
                32,
                64,
                3,
                1,
                1,
                1,
            )?,
            conv(
                "depthwise",
                "depthwise 3x3 c=144 p1, 32x32",
                144,
                32,
                144,
                3,
                1,
                1,
                144,
            )?,
            conv(
                "pointwise",
                "pointwise 1x1 144->24, 32x32",
                144,
                32,
                24,
                1,
                0,
                1,
                1,
            )?,
            conv(
                "grouped",
                "grouped 3x3 128->128 g32 p1, 32x32",
                128,
                32,
                128,
                3,
                1,
                1,
                32,
            )?,
            conv(
                "dilated",
                "dilated 3x3 64->64 d2 p2, 32x32",
                64,
                32,
                64,
                3,
                2,
                2,
                1,
            )?,
            transposed,
        ])
    }

    /// Multiply-adds of one forward pass.
    pub fn macs(&self) -> u64 {
        let w = self.weight.shape();
        let taps = (w[1] * w[2] * w[3]) as u64;
        match &self.kind {
            // Every output element sums C_in/groups · kH · kW products.
            Kind::Conv(_) => self.grad_out.numel() as u64 * taps,
            // Every input element is spread over C_out/groups · kH · kW outputs.
            Kind::Transposed(_) => self.x.numel() as u64 * taps,
        }
    }

    /// Records the forward pass (with bias); returns the output.
    pub fn forward(&self) -> Result<Tensor> {
        match &self.kind {
            Kind::Conv(p) => conv2d(&self.x, &self.weight, Some(&self.bias), p),
            Kind::Transposed(p) => conv_transpose2d(&self.x, &self.weight, Some(&self.bias), p),
        }
    }

    /// Records the forward pass and the three gradients (input, weight, bias).
    pub fn forward_backward(&self) -> Result<[Tensor; 4]> {
        let y = self.forward()?;
        let (shape_x, shape_w) = (self.x.shape(), self.weight.shape());
        let (dx, dw) = match &self.kind {
            Kind::Conv(p) => (
                conv2d_backward_input(&self.grad_out, &self.weight, shape_x, p)?,
                conv2d_backward_weight(&self.x, &self.grad_out, shape_w, p)?,
            ),
            Kind::Transposed(p) => (
                conv_transpose2d_backward_input(&self.grad_out, &self.weight, shape_x, p)?,
                conv_transpose2d_backward_weight(&self.x, &self.grad_out, shape_w, p)?,
            ),
        };
        Ok([y, dx, dw, conv_backward_bias(&self.grad_out)?])
    }
}
