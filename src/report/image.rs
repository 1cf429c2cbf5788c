//! Pictures the examples write: an RGB canvas, tiles of grey or colour maps laid out in a
//! grid, and PNG output (written atomically, as checkpoints are).

use std::path::Path;

use crate::error::{Error, Result};
use crate::io::checkpoint::write_atomically;

/// An RGB image in memory, white to start with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Canvas {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width × height × 3` bytes, row by row.
    pub pixels: Vec<u8>,
}

impl Canvas {
    /// A white canvas.
    pub fn new(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            pixels: vec![255; width * height * 3],
        }
    }

    /// Sets one pixel; outside the canvas nothing happens.
    pub fn set(&mut self, x: usize, y: usize, rgb: [u8; 3]) {
        if x < self.width && y < self.height {
            let i = (y * self.width + x) * 3;
            self.pixels[i..i + 3].copy_from_slice(&rgb);
        }
    }

    /// Draws `values` (`h × w`, row by row) at (`left`, `top`), each value min–max
    /// normalized over the map to a grey level, each pixel `scale` pixels wide.
    pub fn grey_map(
        &mut self,
        (left, top): (usize, usize),
        (h, w): (usize, usize),
        values: &[f32],
        scale: usize,
    ) {
        let (lo, hi) = values
            .iter()
            .filter(|v| v.is_finite())
            .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let span = if hi > lo { hi - lo } else { 1.0 };
        for y in 0..h {
            for x in 0..w {
                let v = values[y * w + x];
                let g = if v.is_finite() {
                    ((v - lo) / span * 255.0) as u8
                } else {
                    0
                };
                self.block((left + x * scale, top + y * scale), scale, [g, g, g]);
            }
        }
    }

    /// Draws an `h × w` RGB image given as three planes of values in [0, 1] (CHW).
    pub fn rgb_planes(
        &mut self,
        (left, top): (usize, usize),
        (h, w): (usize, usize),
        chw: &[f32],
        scale: usize,
    ) {
        let plane = h * w;
        for y in 0..h {
            for x in 0..w {
                let px =
                    |c: usize| (chw[c * plane + y * w + x].clamp(0.0, 1.0) * 255.0).round() as u8;
                self.block(
                    (left + x * scale, top + y * scale),
                    scale,
                    [px(0), px(1), px(2)],
                );
            }
        }
    }

    /// A `size × size` square of one colour at (`left`, `top`).
    pub fn block(&mut self, (left, top): (usize, usize), size: usize, rgb: [u8; 3]) {
        for dy in 0..size {
            for dx in 0..size {
                self.set(left + dx, top + dy, rgb);
            }
        }
    }

    /// Writes the canvas as an 8-bit RGB PNG at `path`, atomically.
    pub fn write_png(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let err =
            |e: png::EncodingError| Error::InvalidArgument(format!("{}: {e}", path.display()));
        let mut bytes = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut bytes, self.width as u32, self.height as u32);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header().map_err(err)?;
            writer.write_image_data(&self.pixels).map_err(err)?;
            writer.finish().map_err(err)?;
        }
        write_atomically(path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::Canvas;

    #[test]
    fn maps_are_normalized_and_placed() {
        let mut canvas = Canvas::new(4, 2);
        canvas.grey_map((0, 0), (1, 2), &[1.0, 3.0], 2);
        assert_eq!(&canvas.pixels[0..3], &[0, 0, 0]);
        assert_eq!(&canvas.pixels[6..9], &[255, 255, 255]);
        assert_eq!(
            &canvas.pixels[(4 + 3) * 3..(4 + 3) * 3 + 3],
            &[255, 255, 255]
        );
        canvas.rgb_planes((0, 0), (1, 1), &[1.0, 0.0, 0.5], 1);
        assert_eq!(&canvas.pixels[0..3], &[255, 0, 128]);
    }
}
