//! Curves as a PNG, drawn with `plotters`: panels side by side, each with a title, axes
//! with ticks and labels, a legend, and a marker at every point (so a single epoch shows
//! as a point). The text uses a subset of DejaVu Sans shipped in `assets/fonts` (its
//! licence beside it), so nothing depends on the fonts a machine has.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::error::{Error, Result};
use crate::io::checkpoint::write_atomically;

/// One line: its name in the legend, its values (x = 1, 2, …) and its colour.
pub struct Curve<'a> {
    /// The legend's entry.
    pub label: &'a str,
    /// Values at x = 1, 2, …; non-finite ones are skipped.
    pub values: &'a [f64],
    /// RGB colour.
    pub rgb: [u8; 3],
}

/// One plot: a title, the axes' names, and its curves sharing one y range.
pub struct Panel<'a> {
    /// Above the plot.
    pub title: &'a str,
    /// Under the x axis.
    pub x_label: &'a str,
    /// Beside the y axis.
    pub y_label: &'a str,
    /// The lines.
    pub curves: Vec<Curve<'a>>,
}

const PANEL_W: u32 = 520;
const PANEL_H: u32 = 360;
const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-ascii.ttf");

fn register() {
    static ONCE: Once = Once::new();
    // The font is valid (a test draws with it); a failure here would only lose the text.
    ONCE.call_once(|| {
        let _ = register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// The range `values` span, padded by 5% (a flat line gets ±1).
fn span(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return None;
    }
    let pad = if hi > lo { (hi - lo) * 0.05 } else { 1.0 };
    Some((lo - pad, hi + pad))
}

fn draw(
    root: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    panels: &[Panel],
) -> std::result::Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let areas = root.split_evenly((1, panels.len().max(1)));
    for (area, panel) in areas.iter().zip(panels) {
        let n = panel
            .curves
            .iter()
            .map(|c| c.values.len())
            .max()
            .unwrap_or(0)
            .max(1);
        let y =
            span(panel.curves.iter().flat_map(|c| c.values.iter().copied())).unwrap_or((0.0, 1.0));
        let mut chart = ChartBuilder::on(area)
            .caption(panel.title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(0.5..n as f64 + 0.5, y.0..y.1)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc(panel.x_label)
            .y_desc(panel.y_label)
            .x_labels(n.clamp(2, 10))
            // Only whole steps are labelled (a tick between two would repeat one).
            .x_label_formatter(&|x| {
                if (x - x.round()).abs() < 1e-9 {
                    format!("{x:.0}")
                } else {
                    String::new()
                }
            })
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 15))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(|e| e.to_string())?;
        for curve in &panel.curves {
            let colour = RGBColor(curve.rgb[0], curve.rgb[1], curve.rgb[2]);
            let points: Vec<(f64, f64)> = curve
                .values
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .map(|(i, &v)| ((i + 1) as f64, v))
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(curve.label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                });
            // Markers, fewer when there are many points.
            let every = (points.len() / 40).max(1);
            chart
                .draw_series(
                    points
                        .iter()
                        .step_by(every)
                        .map(|&p| Circle::new(p, 3, colour.filled())),
                )
                .map_err(|e| e.to_string())?;
        }
        chart
            .configure_series_labels()
            .label_font(("sans-serif", 13))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}

/// Draws `panels` side by side and writes them as a PNG at `path` (atomically).
pub fn write_panels(path: impl AsRef<Path>, panels: &[Panel]) -> Result<()> {
    let path = path.as_ref();
    register();
    let (w, h) = (PANEL_W * panels.len().max(1) as u32, PANEL_H);
    let mut pixels = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (w, h)).into_drawing_area();
        draw(&root, panels)
            .map_err(|e| Error::InvalidArgument(format!("plot {}: {e}", path.display())))?;
    }
    let mut png = Vec::new();
    {
        let err =
            |e: png::EncodingError| Error::InvalidArgument(format!("plot {}: {e}", path.display()));
        let mut encoder = png::Encoder::new(&mut png, w, h);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(err)?;
        writer.write_image_data(&pixels).map_err(err)?;
        writer.finish().map_err(err)?;
    }
    write_atomically(path, &png)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_point_and_a_flat_line_draw_with_text() {
        let dir = std::env::temp_dir().join(format!("liandan-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("curves.png");
        let one = [2.3];
        let flat = [0.5, 0.5, f64::NAN, 0.5];
        let panels = [
            Panel {
                title: "loss",
                x_label: "epoch",
                y_label: "cross-entropy",
                curves: vec![Curve {
                    label: "train",
                    values: &one,
                    rgb: [31, 119, 180],
                }],
            },
            Panel {
                title: "accuracy",
                x_label: "epoch",
                y_label: "accuracy",
                curves: vec![Curve {
                    label: "test",
                    values: &flat,
                    rgb: [255, 127, 14],
                }],
            },
        ];
        write_panels(&path, &panels).unwrap();
        let image = image::open(&path).unwrap().to_rgb8();
        assert_eq!(image.dimensions(), (2 * PANEL_W, PANEL_H));
        // The single point's marker and the text are drawn: blue and dark pixels exist.
        let blue = image.pixels().filter(|p| p.0 == [31, 119, 180]).count();
        let dark = image
            .pixels()
            .filter(|p| p.0.iter().all(|&c| c < 60))
            .count();
        assert!(blue > 10, "{blue} marker pixels");
        assert!(dark > 200, "{dark} text and axis pixels");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
