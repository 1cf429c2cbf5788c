//! Neural-network building blocks: the parameter store, the scope models are built in,
//! initializers, and the layers — one file per family, mirroring `crate::ops`.
//!
//! A model is built in a [`Scope`] (its tensors registered under dotted names that come
//! from its structure) and run through the [`Module`] trait with a [`Ctx`].

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
pub use module::Module;
pub use norm::{BatchNorm2d, BatchNorm2dConfig};
pub use params::{ParamKind, ParamStore};
pub use pool::{AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, MaxPool2d};
pub use scope::{Scope, TensorSpec, build, specs};
pub use sequential::{Layers, Sequential};
