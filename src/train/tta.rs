//! Test-time augmentation: a model's softmax averaged over views of each image (a mirror,
//! or ten crops), as the GoogLeNet and ResNet papers evaluate.

use crate::error::{Result, arg_err};

/// Which views of an image evaluation averages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tta {
    /// The image alone.
    #[default]
    None,
    /// The image and its mirror.
    Flip,
    /// The four corner crops and the center crop of the image padded by an eighth of its
    /// side (4 pixels at 32×32), and their mirrors.
    TenCrop,
}

impl Tta {
    /// `none`, `flip` or `10crop`.
    pub fn parse(text: &str) -> Result<Tta> {
        match text {
            "none" => Ok(Tta::None),
            "flip" => Ok(Tta::Flip),
            "10crop" => Ok(Tta::TenCrop),
            other => arg_err!("test-time augmentation {other:?}: expected none, flip or 10crop"),
        }
    }

    /// The views of a batch of `images` (NCHW, `shape` = [n, c, h, w]), each a batch of
    /// the same shape; the first is the images themselves.
    pub fn views(self, images: &[f32], shape: [usize; 4]) -> Vec<Vec<f32>> {
        match self {
            Tta::None => vec![images.to_vec()],
            Tta::Flip => vec![images.to_vec(), mirror(images, shape)],
            Tta::TenCrop => {
                let pad = (shape[2].min(shape[3]) / 8).max(1);
                let mut views = Vec::with_capacity(10);
                // Center first, then the corners: (top, left) offsets in the padded image.
                for (top, left) in [
                    (pad, pad),
                    (0, 0),
                    (0, 2 * pad),
                    (2 * pad, 0),
                    (2 * pad, 2 * pad),
                ] {
                    let view = crop_padded(images, shape, pad, (top, left));
                    views.push(mirror(&view, shape));
                    views.push(view);
                }
                views.swap(0, 1); // the unmirrored center crop (the image itself) first
                views
            }
        }
    }
}

/// Every image mirrored left to right.
fn mirror(images: &[f32], [_, _, h, w]: [usize; 4]) -> Vec<f32> {
    let mut out = images.to_vec();
    for row in out.chunks_exact_mut(w).take(images.len() / w.max(1)) {
        row.reverse();
    }
    debug_assert_eq!(out.len() % (h * w).max(1), 0);
    out
}

/// The `h × w` window at (`top`, `left`) of every image zero-padded by `pad` on each
/// side (zero is the mean pixel of normalized data).
fn crop_padded(
    images: &[f32],
    [n, c, h, w]: [usize; 4],
    pad: usize,
    (top, left): (usize, usize),
) -> Vec<f32> {
    let mut out = vec![0.0; images.len()];
    for plane in 0..n * c {
        let src = &images[plane * h * w..(plane + 1) * h * w];
        let dst = &mut out[plane * h * w..(plane + 1) * h * w];
        for y in 0..h {
            let sy = (y + top) as isize - pad as isize;
            if !(0..h as isize).contains(&sy) {
                continue;
            }
            for x in 0..w {
                let sx = (x + left) as isize - pad as isize;
                if (0..w as isize).contains(&sx) {
                    dst[y * w + x] = src[sy as usize * w + sx as usize];
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::Tta;

    #[test]
    fn views_are_the_image_its_mirror_and_shifted_crops() {
        // One 1-channel 8×8 image holding its pixel index.
        let image: Vec<f32> = (0..64).map(|v| v as f32).collect();
        let shape = [1, 1, 8, 8];
        let flip = Tta::Flip.views(&image, shape);
        assert_eq!(flip[0], image);
        assert_eq!(flip[1][..8], [7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0]);
        let crops = Tta::TenCrop.views(&image, shape);
        assert_eq!(crops.len(), 10);
        assert_eq!(
            crops[0], image,
            "the center crop of the padded image is the image"
        );
        // The top-left crop shifts the image down and right by the padding (1 pixel).
        let top_left = &crops[3];
        assert_eq!(top_left[0], 0.0);
        assert_eq!(top_left[9], image[0]);
        assert_eq!(top_left[63], image[54]);
        assert!(Tta::parse("5crop").is_err());
    }
}
