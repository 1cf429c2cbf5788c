//! A synthetic segmentation dataset: circles, squares and triangles of random size,
//! position and colour on a textured background, some overlapping (the later one covers
//! the earlier), with a class per pixel. Generated from a seed, so a train and a
//! validation set are two seeds and nothing is downloaded.
//!
//! Colour says nothing about the class (every shape draws its colour at random), so a
//! model has to see shape: corners, straight or curved edges. Pixels on a boundary between
//! two classes are labelled [`IGNORE`], as VOC labels its object outlines, so the loss
//! and the scores skip what even a person could not call.

use crate::rng::Rng;

/// The classes: background, circle, square, triangle.
pub const CLASSES: [&str; 4] = ["background", "circle", "square", "triangle"];
/// The label of a pixel on a boundary: left out of the loss and the scores.
pub const IGNORE: usize = 255;

/// Images and their per-pixel labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Shapes {
    /// Side of every (square) image.
    pub side: usize,
    /// `len × 3 × side × side` pixels, about zero mean and unit spread (NCHW).
    pub images: Vec<f32>,
    /// `len × side × side` classes (an index of [`CLASSES`], or [`IGNORE`]).
    pub labels: Vec<usize>,
}

/// Whether the point (x, y) is inside the shape of `class` with centre (cx, cy) and
/// radius r (a triangle pointing up, a square axis-aligned).
fn inside(class: usize, (x, y): (f32, f32), (cx, cy, r): (f32, f32, f32)) -> bool {
    let (dx, dy) = (x - cx, y - cy);
    match class {
        1 => dx * dx + dy * dy <= r * r,
        2 => dx.abs() <= r * 0.85 && dy.abs() <= r * 0.85,
        _ => {
            // Apex at (cx, cy - r), base at cy + r/2 from cx - 0.87r to cx + 0.87r.
            let top = cy - r;
            let base = cy + 0.5 * r;
            if y < top || y > base {
                return false;
            }
            let half_width = 0.866 * r * (y - top) / (base - top);
            dx.abs() <= half_width
        }
    }
}

impl Shapes {
    /// `len` images of `side` pixels drawn from `seed`: 1 to 3 shapes each.
    pub fn generate(len: usize, side: usize, seed: u64) -> Shapes {
        let mut rng = Rng::new(seed);
        let plane = side * side;
        let mut images = vec![0.0f32; len * 3 * plane];
        let mut labels = vec![0usize; len * plane];
        for i in 0..len {
            let image = &mut images[i * 3 * plane..(i + 1) * 3 * plane];
            let label = &mut labels[i * plane..(i + 1) * plane];
            // Background: a random colour, a gentle gradient and per-pixel noise.
            let base: [f32; 3] = std::array::from_fn(|_| rng.uniform_in(-1.0, 1.0) as f32);
            let tilt: [f32; 2] = std::array::from_fn(|_| rng.uniform_in(-0.6, 0.6) as f32);
            for y in 0..side {
                for x in 0..side {
                    let g = tilt[0] * x as f32 / side as f32 + tilt[1] * y as f32 / side as f32;
                    for c in 0..3 {
                        let noise = rng.uniform_in(-0.35, 0.35) as f32;
                        image[c * plane + y * side + x] = base[c] + g + noise;
                    }
                }
            }
            let shapes = 1 + rng.below(3) as usize;
            for _ in 0..shapes {
                let class = 1 + rng.below(3) as usize;
                let r = side as f32 * rng.uniform_in(0.12, 0.3) as f32;
                let cx = rng.uniform_in(0.15, 0.85) as f32 * side as f32;
                let cy = rng.uniform_in(0.15, 0.85) as f32 * side as f32;
                let colour: [f32; 3] = std::array::from_fn(|_| rng.uniform_in(-1.5, 1.5) as f32);
                for y in 0..side {
                    for x in 0..side {
                        if inside(class, (x as f32 + 0.5, y as f32 + 0.5), (cx, cy, r)) {
                            label[y * side + x] = class;
                            for c in 0..3 {
                                let noise = rng.uniform_in(-0.25, 0.25) as f32;
                                image[c * plane + y * side + x] = colour[c] + noise;
                            }
                        }
                    }
                }
            }
            // Boundaries: a pixel whose right or lower neighbour has another class.
            let classes = label.to_vec();
            for y in 0..side {
                for x in 0..side {
                    let here = classes[y * side + x];
                    let right = (x + 1 < side).then(|| classes[y * side + x + 1]);
                    let below = (y + 1 < side).then(|| classes[(y + 1) * side + x]);
                    if right.is_some_and(|c| c != here) || below.is_some_and(|c| c != here) {
                        label[y * side + x] = IGNORE;
                    }
                }
            }
        }
        Shapes {
            side,
            images,
            labels,
        }
    }

    /// Images held.
    pub fn len(&self) -> usize {
        self.labels.len() / (self.side * self.side).max(1)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Images `range` as (pixels NCHW, labels).
    pub fn batch(&self, range: std::ops::Range<usize>) -> (&[f32], &[usize]) {
        let plane = self.side * self.side;
        (
            &self.images[range.start * 3 * plane..range.end * 3 * plane],
            &self.labels[range.start * plane..range.end * plane],
        )
    }
}

/// Intersection over union per class of `predicted` against `truth` (pixels labelled
/// [`IGNORE`] left out), and their mean over the classes present in either.
pub fn iou(predicted: &[usize], truth: &[usize], classes: usize) -> (Vec<f64>, f64) {
    let mut inter = vec![0usize; classes];
    let mut union = vec![0usize; classes];
    for (&p, &t) in predicted.iter().zip(truth) {
        if t == IGNORE {
            continue;
        }
        if p == t {
            inter[t] += 1;
            union[t] += 1;
        } else {
            union[t] += 1;
            if p < classes {
                union[p] += 1;
            }
        }
    }
    let per_class: Vec<f64> = inter
        .iter()
        .zip(&union)
        .map(|(&i, &u)| {
            if u == 0 {
                f64::NAN
            } else {
                i as f64 / u as f64
            }
        })
        .collect();
    let present: Vec<f64> = per_class.iter().copied().filter(|v| !v.is_nan()).collect();
    let mean = present.iter().sum::<f64>() / present.len().max(1) as f64;
    (per_class, mean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_appears_and_boundaries_are_ignored() {
        let data = Shapes::generate(40, 32, 1);
        assert_eq!(data.len(), 40);
        for (class, name) in CLASSES.iter().enumerate() {
            assert!(data.labels.contains(&class), "{name}");
        }
        let ignored = data.labels.iter().filter(|&&l| l == IGNORE).count();
        assert!(ignored > 0 && ignored < data.labels.len() / 5, "{ignored}");
        assert_eq!(Shapes::generate(3, 16, 9), Shapes::generate(3, 16, 9));
    }

    #[test]
    fn iou_counts_each_class_and_skips_ignored_pixels() {
        let truth = [0, 0, 1, 1, IGNORE];
        let predicted = [0, 1, 1, 1, 0];
        let (per_class, mean) = iou(&predicted, &truth, 2);
        assert_eq!(per_class, vec![0.5, 2.0 / 3.0]);
        assert!((mean - (0.5 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
    }
}
