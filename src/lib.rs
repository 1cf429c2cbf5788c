//! # liandan
//!
//! A GPU compute engine for convolutional networks: a tensor runtime on wgpu with
//! hand-written WGSL compute shaders.
//!
//! ```no_run
//! use liandan::{Device, Tensor};
//! # fn main() -> liandan::Result<()> {
//! let device = Device::new()?; // LIANDAN_BACKEND / LIANDAN_ADAPTER choose the adapter
//! let a = Tensor::randn(&device, &[64, 32], 1)?;
//! let b = Tensor::randn(&device, &[32, 16], 2)?;
//! let c = a.matmul(&b)?.relu()?;
//! assert_eq!(c.shape(), &[64, 16]);
//! let values: Vec<f32> = c.to_vec()?; // waits for the GPU
//! # Ok(()) }
//! ```
//!
//! Layers, bottom up: [`gpu`] (the only module naming wgpu types), [`Tensor`], [`ops`].
//! See ARCHITECTURE.md for the map.

#![warn(missing_docs)]

pub mod autograd;
pub mod bench;
pub mod data;
pub mod dist;
pub mod error;
pub mod gpu;
pub mod io;
pub mod models;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod report;
pub mod rng;
pub mod tensor;
pub mod train;

pub use error::{Error, Result};
pub use gpu::{BackendChoice, Device, DeviceBuilder};
pub use rng::Rng;
pub use tensor::Tensor;
