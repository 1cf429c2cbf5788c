//! Neural-network building blocks: the parameter store, the scope models are built in,
//! initializers, and the layers — one file per family, mirroring `crate::ops`.
//!
//! A model is built in a [`Scope`] (its tensors registered under dotted names that come
//! from its structure) and run through the [`Module`] trait with a [`Ctx`].
//!
//! A small model of one's own, trained one step:
//!
//! ```
//! use liandan::autograd::{Tape, Var};
//! use liandan::nn::{self, Conv2d, Conv2dConfig, Ctx, Linear, LinearConfig, Module, Scope};
//! use liandan::optim::{Optimizer, Sgd, SgdConfig};
//! use liandan::{Device, Result, Tensor};
//!
//! /// A 3×3 convolution, ReLU, global average pool, linear classifier.
//! struct Tiny {
//!     conv: Conv2d,
//!     fc: Linear,
//! }
//!
//! impl Tiny {
//!     fn new(s: &mut Scope) -> Result<Self> {
//!         Ok(Tiny {
//!             conv: Conv2d::new(&mut s.pp("conv"), 3, 8, Conv2dConfig::new(3).padding(1))?,
//!             fc: Linear::new(&mut s.pp("fc"), 8, 10, LinearConfig::default())?,
//!         })
//!     }
//! }
//!
//! impl Module for Tiny {
//!     fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
//!         let y = ctx.tape.relu(&self.conv.forward(ctx, x)?)?;
//!         let y = ctx.tape.global_avg_pool(&y)?;
//!         let y = ctx.tape.flatten(&y, 1)?;
//!         self.fc.forward(ctx, &y)
//!     }
//! }
//!
//! # fn main() -> Result<()> {
//! let device = Device::new()?;
//! // Tensors named by the structure: conv.weight, conv.bias, fc.weight, fc.bias.
//! let (model, mut store) = nn::build(&device, 0, Tiny::new)?;
//! let mut sgd = Sgd::new(SgdConfig { momentum: 0.9, ..SgdConfig::default() })?;
//! let images = Tensor::randn(&device, &[4, 3, 16, 16], 1)?;
//! let labels = [3, 1, 4, 1];
//!
//! let tape = Tape::new();
//! let x = tape.input(images);
//! let logits = model.forward(&mut Ctx::train(&tape, &mut store, 0), &x)?;
//! let loss = tape.cross_entropy(&logits, &labels, 0.0)?;
//! let grads = tape.backward(&loss)?.by_name()?;
//! sgd.step(&mut store, &grads, 0.05)?;
//! assert!(loss.value().to_scalar()?.is_finite());
//! # Ok(()) }
//! ```

pub mod activation;
pub mod blocks;
pub mod context;
pub mod conv;
pub mod init;
pub mod linear;
pub mod module;
pub mod norm;
pub mod params;
pub mod pool;
pub mod scope;
pub mod sequential;

pub use activation::Activation;
pub use blocks::{Concat, SqueezeExcite, conv_norm_act};
pub use context::Ctx;
pub use conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
pub use init::{Fan, Init};
pub use linear::{Dropout, Flatten, Linear, LinearConfig, StochasticDepth};
pub use module::{Module, predict};
pub use norm::{BatchNorm2d, BatchNorm2dConfig};
pub use params::{ParamKind, ParamStore};
pub use pool::{AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, MaxPool2d};
pub use scope::{Scope, TensorSpec, build, specs};
pub use sequential::{Layers, Sequential};
