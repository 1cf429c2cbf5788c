//! Classic architectures assembled from `crate::nn` layers, each file reading like its
//! paper's table, with torchvision's parameter names.

pub mod mobilenet_v2;

pub use mobilenet_v2::{MobileNetV2, MobileNetV2Config};
