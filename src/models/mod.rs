//! Classic architectures assembled from `crate::nn` layers, each file reading like its
//! paper's table, with torchvision's parameter names. [`zoo`] finds them by name.
//!
//! Inference with torchvision's weights (a `state_dict` saved with safetensors):
//!
//! ```no_run
//! use liandan::data::images::imagenet_input;
//! use liandan::models::zoo;
//! use liandan::{Device, nn};
//! # fn main() -> liandan::Result<()> {
//! let device = Device::new()?;
//! let entry = zoo::find("resnet50")?;
//! let options = entry.pretrained_options(1000);
//! let (model, mut store) = nn::build(&device, 0, |s| entry.build(s, &options))?;
//! liandan::io::load_state_dict("resnet50.safetensors", &mut store, &device)?;
//! let image = imagenet_input(&device, "cat.jpg", 224)?; // resize, crop, normalize
//! let probabilities = nn::predict(model.as_ref(), &store, &image)?;
//! for (class, p) in &probabilities.topk(5)?[0] {
//!     println!("{class:4} {:.1}%", 100.0 * p);
//! }
//! # Ok(()) }
//! ```
//!
//! The same without files, as the tests run it:
//!
//! ```
//! use liandan::models::zoo;
//! use liandan::{Device, Tensor, nn};
//! # fn main() -> liandan::Result<()> {
//! let device = Device::new()?;
//! let entry = zoo::find("mobilenet_v3_small")?;
//! let (model, store) = nn::build(&device, 0, |s| entry.build(s, &entry.pretrained_options(10)))?;
//! let images = Tensor::randn(&device, &[2, 3, 64, 64], 1)?;
//! let probabilities = nn::predict(model.as_ref(), &store, &images)?;
//! assert_eq!(probabilities.shape(), &[2, 10]);
//! let classes = probabilities.argmax()?; // one per image
//! assert!(classes.iter().all(|&c| c < 10));
//! # Ok(()) }
//! ```

pub mod alexnet;
pub mod dcgan;
pub mod densenet;
pub mod efficientnet;
pub mod googlenet;
pub mod inception_resnet_v2;
pub mod inception_v3;
pub mod inception_v4;
pub mod lenet;
pub mod mobilenet_v1;
pub mod mobilenet_v2;
pub mod mobilenet_v3;
pub mod resnet;
pub mod segmentation;
pub mod shufflenet_v1;
pub mod shufflenet_v2;
pub mod vgg;
pub mod xception;
pub mod zoo;

pub use alexnet::AlexNet;
pub use densenet::{DenseNet, DenseNetConfig};
pub use efficientnet::{EfficientNet, EfficientNetConfig, efficientnet_scaling};
pub use googlenet::{GoogLeNet, GoogLeNetConfig};
pub use inception_resnet_v2::InceptionResNetV2;
pub use inception_v3::{InceptionV3, InceptionV3Config};
pub use inception_v4::InceptionV4;
pub use lenet::LeNet5;
pub use mobilenet_v1::MobileNetV1;
pub use mobilenet_v2::{MobileNetV2, MobileNetV2Config};
pub use mobilenet_v3::{MobileNetV3, MobileNetV3Config, MobileNetV3Size};
pub use resnet::{Block, ResNet, ResNetConfig};
pub use shufflenet_v1::ShuffleNetV1;
pub use shufflenet_v2::ShuffleNetV2;
pub use vgg::Vgg;
pub use xception::Xception;

/// torchvision's `_make_divisible`: the nearest multiple of `divisor` not below 90% of `v`
/// (channel counts under a width multiplier).
pub(crate) fn make_divisible(v: f32, divisor: usize) -> usize {
    let d = divisor as f32;
    let mut rounded = (((v + d / 2.0) / d).floor() * d).max(d);
    if rounded < 0.9 * v {
        rounded += d;
    }
    rounded as usize
}

#[cfg(test)]
mod tests {
    use super::make_divisible;

    #[test]
    fn make_divisible_matches_torchvision() {
        assert_eq!(make_divisible(32.0, 8), 32);
        assert_eq!(make_divisible(32.0 * 0.5, 8), 16);
        assert_eq!(make_divisible(24.0 * 0.75, 8), 24); // 18 → 16 is below 90%, so 24
        assert_eq!(make_divisible(1280.0, 8), 1280);
        assert_eq!(make_divisible(320.0 * 1.4, 8), 448);
    }
}
