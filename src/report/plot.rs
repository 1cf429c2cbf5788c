//! Training curves as a PNG: one panel per series (e.g. loss, accuracy), each a line per
//! curve on a light grid, no text (the CSV beside it carries the numbers).

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use crate::error::{Error, Result};

/// One line: its values per epoch and its colour.
pub struct Curve<'a> {
    /// Values, one per epoch; non-finite ones are skipped.
    pub values: &'a [f64],
    /// RGB colour.
    pub rgb: [u8; 3],
}

const PANEL_W: usize = 480;
const PANEL_H: usize = 320;
const MARGIN: usize = 24;

struct Canvas {
    width: usize,
    height: usize,
    pixels: Vec<u8>, // RGB
}

impl Canvas {
    fn new(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            pixels: vec![255; width * height * 3],
        }
    }

    fn set(&mut self, x: i64, y: i64, rgb: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            let i = (y as usize * self.width + x as usize) * 3;
            self.pixels[i..i + 3].copy_from_slice(&rgb);
        }
    }

    /// A 2-pixel-wide line (Bresenham, doubled vertically).
    fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), rgb: [u8; 3]) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        loop {
            self.set(x, y, rgb);
            self.set(x, y + 1, rgb);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }
}

/// Writes `panels` side by side to `path`: each panel's curves share its y range (from
/// the smallest to the largest finite value), x spans the epochs.
pub fn write_curves(path: impl AsRef<Path>, panels: &[Vec<Curve>]) -> Result<()> {
    let path = path.as_ref();
    let mut canvas = Canvas::new(PANEL_W * panels.len().max(1), PANEL_H);
    for (p, curves) in panels.iter().enumerate() {
        let left = (p * PANEL_W + MARGIN) as i64;
        let (right, top, bottom) = (
            ((p + 1) * PANEL_W - MARGIN) as i64,
            MARGIN as i64,
            (PANEL_H - MARGIN) as i64,
        );
        let grey = [200, 200, 200];
        for k in 0..=4 {
            let y = top + (bottom - top) * k / 4;
            canvas.line((left, y), (right, y), grey);
        }
        canvas.line((left, top), (left, bottom), [80, 80, 80]);
        let finite = curves
            .iter()
            .flat_map(|c| c.values.iter().copied())
            .filter(|v| v.is_finite());
        let (lo, hi) = finite.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
        if lo > hi {
            continue; // nothing to draw yet
        }
        let span = if hi > lo { hi - lo } else { 1.0 };
        for curve in curves {
            let n = curve.values.len();
            let at = |i: usize, v: f64| {
                let x = left
                    + if n > 1 {
                        (right - left) * i as i64 / (n as i64 - 1)
                    } else {
                        0
                    };
                let y = bottom - ((v - lo) / span * (bottom - top) as f64) as i64;
                (x, y)
            };
            let points: Vec<(i64, i64)> = curve
                .values
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .map(|(i, &v)| at(i, v))
                .collect();
            for pair in points.windows(2) {
                canvas.line(pair[0], pair[1], curve.rgb);
            }
            if let [only] = points.as_slice() {
                canvas.line(*only, (only.0 + 3, only.1), curve.rgb);
            }
        }
    }
    let io = |e: std::io::Error| Error::InvalidArgument(format!("plot {}: {e}", path.display()));
    let file = File::create(path).map_err(io)?;
    let mut encoder = png::Encoder::new(
        BufWriter::new(file),
        canvas.width as u32,
        canvas.height as u32,
    );
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let png_err =
        |e: png::EncodingError| Error::InvalidArgument(format!("plot {}: {e}", path.display()));
    let mut writer = encoder.write_header().map_err(png_err)?;
    writer.write_image_data(&canvas.pixels).map_err(png_err)?;
    writer.finish().map_err(png_err)
}
