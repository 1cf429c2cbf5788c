//! Images from files as model input: decoded by the `image` crate (PNG, JPEG) and
//! preprocessed as torchvision's ImageNet evaluation transform does.

use std::path::Path;

use image::imageops::FilterType;

use crate::error::{Error, Result};
use crate::gpu::Device;
use crate::tensor::Tensor;

/// ImageNet's per-channel mean (RGB), as torchvision normalizes.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet's per-channel standard deviation (RGB).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// An image file as `[3, crop, crop]` pixels in [0, 1] (CHW, RGB): the short side resized
/// to `resize` (bilinear), then the center `crop × crop`.
pub fn load_center_crop(path: impl AsRef<Path>, resize: u32, crop: u32) -> Result<Vec<f32>> {
    let path = path.as_ref();
    let err = |e: image::ImageError| Error::InvalidArgument(format!("{}: {e}", path.display()));
    if crop == 0 || resize < crop {
        return Err(Error::InvalidArgument(format!(
            "{}: crop {crop} must be positive and within the resized side {resize}",
            path.display()
        )));
    }
    let image = image::open(path).map_err(err)?.to_rgb8();
    let (w, h) = image.dimensions();
    let scale = resize as f64 / w.min(h).max(1) as f64;
    let (nw, nh) = (
        ((w as f64 * scale).round() as u32).max(crop),
        ((h as f64 * scale).round() as u32).max(crop),
    );
    let resized = image::imageops::resize(&image, nw, nh, FilterType::Triangle);
    let (left, top) = ((nw - crop) / 2, (nh - crop) / 2);
    let plane = (crop * crop) as usize;
    let mut values = vec![0.0f32; 3 * plane];
    for y in 0..crop {
        for x in 0..crop {
            let pixel = resized.get_pixel(left + x, top + y);
            for c in 0..3 {
                values[c * plane + (y * crop + x) as usize] = pixel[c] as f32 / 255.0;
            }
        }
    }
    Ok(values)
}

/// torchvision's ImageNet evaluation transform of an image file, as a `[1, 3, crop,
/// crop]` tensor: resize the short side to `crop · 256 / 224` (256 for 224, 342 for
/// 299), center crop, normalize by [`IMAGENET_MEAN`] and [`IMAGENET_STD`].
pub fn imagenet_input(device: &Device, path: impl AsRef<Path>, crop: u32) -> Result<Tensor> {
    let mut values = load_center_crop(path, crop * 256 / 224, crop)?;
    let plane = (crop * crop) as usize;
    for (c, chunk) in values.chunks_exact_mut(plane).enumerate() {
        for v in chunk {
            *v = (*v - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
        }
    }
    Tensor::from_vec(device, values, &[1, 3, crop as usize, crop as usize])
}
