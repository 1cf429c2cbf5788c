//! Data on the CPU side: the CIFAR-10 reader, the batch loader, and image files as model
//! input.
//!
//! [`cifar10::Cifar10`] reads the binary layout into memory (u8, CHW per image) and
//! checks every byte it depends on, so a truncated or corrupt file is an error that
//! names the file and the byte offset. [`loader::Loader`] turns it into batches of
//! normalized f32 images (random crop with zero padding, horizontal flip, per-channel
//! normalization), shuffled and augmented as a pure function of `(seed, epoch)`, and
//! prepared on a background thread so the next batch is ready while the GPU trains.
//!
//! ```no_run
//! use std::sync::Arc;
//! use liandan::data::cifar10::Cifar10;
//! use liandan::data::loader::{Augment, Loader};
//! # fn main() -> liandan::Result<()> {
//! let train = Arc::new(Cifar10::load_train("../shared/data/cifar-10-batches-bin")?);
//! let loader = Loader::new(train, 128, true, Some(Augment::standard()), 42, true)?;
//! for batch in loader.epoch(0) {
//!     // batch.images: 128×3×32×32 f32, batch.labels: 128 class indices;
//!     // upload with Tensor::from_slice(&device, &batch.images, &batch.shape()).
//!     assert_eq!(batch.labels.len(), 128);
//! }
//! # Ok(()) }
//! ```

pub mod cifar10;
pub mod download;
pub mod images;
pub mod loader;
pub mod shapes;
