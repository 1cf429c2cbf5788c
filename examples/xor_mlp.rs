//! Where the story starts: a single-layer perceptron cannot learn XOR, a network with one
//! hidden layer can (Minsky and Papert, 1969; Rumelhart, Hinton and Williams, 1986).
//!
//! `cargo run --release --example xor_mlp [-- --out DIR]` trains both on the four XOR
//! points with the engine (tape, `Linear`, tanh, cross-entropy, SGD with momentum),
//! prints each one's decision table and final loss, and writes `xor_boundaries.png`: each
//! model's probability of class 1 over the plane (dark: 0, light: 1), the four points
//! marked (red: class 0, blue: class 1).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use liandan::autograd::Tape;
use liandan::nn::{self, Activation, Ctx, Linear, LinearConfig, Module, ParamStore, Sequential};
use liandan::optim::{Optimizer, Sgd, SgdConfig};
use liandan::report::image::Canvas;
use liandan::{Device, Result, Tensor};

/// Train a perceptron and a one-hidden-layer MLP on XOR.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Directory for xor_boundaries.png
    #[arg(long, default_value = "runs/xor")]
    out: PathBuf,
    /// Training steps (full batch)
    #[arg(long, default_value_t = 400)]
    steps: usize,
    /// Hidden units of the MLP
    #[arg(long, default_value_t = 8)]
    hidden: usize,
}

/// The four XOR points and their classes.
const POINTS: [([f32; 2], usize); 4] = [
    ([0.0, 0.0], 0),
    ([0.0, 1.0], 1),
    ([1.0, 0.0], 1),
    ([1.0, 1.0], 0),
];

/// A trained model: its layers, tensors and final loss.
struct Trained {
    model: Sequential,
    store: ParamStore,
    loss: f32,
}

/// `hidden = None`: the perceptron (one linear layer to the two class scores, so its
/// boundary is a line); `Some(h)`: h tanh units, then the linear layer.
fn build(device: &Device, hidden: Option<usize>) -> Result<(Sequential, ParamStore)> {
    nn::build(device, 3, |s| {
        Sequential::build(s, |l| {
            match hidden {
                None => {
                    l.add(|s| Linear::new(s, 2, 2, LinearConfig::default()))?;
                }
                Some(h) => {
                    l.add(|s| Linear::new(s, 2, h, LinearConfig::default()))?;
                    l.add_plain(Activation::Tanh);
                    l.add(|s| Linear::new(s, h, 2, LinearConfig::default()))?;
                }
            }
            Ok(())
        })
    })
}

/// Full-batch training on the four points; the cross-entropy of two class scores is
/// logistic regression's loss.
fn train(device: &Device, hidden: Option<usize>, steps: usize) -> Result<Trained> {
    let (model, mut store) = build(device, hidden)?;
    let inputs: Vec<f32> = POINTS.iter().flat_map(|(p, _)| *p).collect();
    let labels: Vec<usize> = POINTS.iter().map(|(_, c)| *c).collect();
    let x = Tensor::from_vec(device, inputs, &[4, 2])?;
    let mut sgd = Sgd::new(SgdConfig {
        momentum: 0.9,
        ..SgdConfig::default()
    })?;
    let mut loss = f32::NAN;
    for _ in 0..steps {
        let tape = Tape::new();
        let input = tape.input(x.clone());
        let logits = model.forward(&mut Ctx::train(&tape, &mut store, 0), &input)?;
        let l = tape.cross_entropy(&logits, &labels, 0.0)?;
        loss = l.value().to_scalar()?;
        let grads = tape.backward(&l)?.by_name()?;
        sgd.step(&mut store, &grads, 0.1)?;
    }
    Ok(Trained { model, store, loss })
}

/// P(class 1) at each of `points` (`[n, 2]`, row by row).
fn probability_of_one(device: &Device, t: &Trained, points: Vec<f32>) -> Result<Vec<f32>> {
    let n = points.len() / 2;
    let tape = Tape::no_grad();
    let x = tape.input(Tensor::from_vec(device, points, &[n, 2])?);
    let logits = t.model.forward(&mut Ctx::eval(&tape, &t.store), &x)?;
    let p = logits.value().softmax()?.to_vec()?;
    Ok(p.chunks_exact(2).map(|c| c[1]).collect())
}

/// Whether the model classifies all four points right.
fn solves_xor(device: &Device, t: &Trained) -> Result<bool> {
    let points = POINTS.iter().flat_map(|(p, _)| *p).collect();
    let p = probability_of_one(device, t, points)?;
    Ok(POINTS
        .iter()
        .zip(p)
        .all(|((_, class), p)| (p > 0.5) == (*class == 1)))
}

fn print_table(device: &Device, name: &str, t: &Trained) -> Result<()> {
    let points = POINTS.iter().flat_map(|(p, _)| *p).collect();
    let p = probability_of_one(device, t, points)?;
    println!("{name}: final loss {:.4}", t.loss);
    println!("  x1 x2  class  P(class 1)  predicted");
    for (((x, class), p), _) in POINTS.iter().zip(&p).zip(0..) {
        let predicted = usize::from(*p > 0.5);
        let mark = if predicted == *class { "" } else { "  wrong" };
        println!(
            "  {:2} {:2}  {class:5}  {p:10.3}  {predicted:9}{mark}",
            x[0], x[1]
        );
    }
    Ok(())
}

/// Each model's P(class 1) over [-0.5, 1.5]², side by side, the points marked.
fn draw(device: &Device, models: &[&Trained], path: &std::path::Path) -> Result<()> {
    const SIDE: usize = 200;
    let coord = |i: usize| -0.5 + 2.0 * i as f32 / (SIDE - 1) as f32;
    let grid: Vec<f32> = (0..SIDE * SIDE)
        .flat_map(|i| [coord(i % SIDE), coord(SIDE - 1 - i / SIDE)])
        .collect();
    let mut canvas = Canvas::new(models.len() * (SIDE + 10) - 10, SIDE);
    for (m, t) in models.iter().enumerate() {
        let left = m * (SIDE + 10);
        let p = probability_of_one(device, t, grid.clone())?;
        for (i, p) in p.iter().enumerate() {
            let g = (40.0 + 200.0 * p) as u8;
            canvas.set(left + i % SIDE, i / SIDE, [g, g, g]);
        }
        for (point, class) in POINTS {
            let to_px = |v: f32| ((v + 0.5) / 2.0 * (SIDE - 1) as f32) as usize;
            let (x, y) = (to_px(point[0]), SIDE - 1 - to_px(point[1]));
            let rgb = if class == 1 {
                [40, 90, 220]
            } else {
                [220, 40, 40]
            };
            canvas.block((left + x.saturating_sub(4), y.saturating_sub(4)), 9, rgb);
        }
    }
    canvas.write_png(path)
}

fn run(args: &Args) -> Result<()> {
    let device = Device::new()?;
    let perceptron = train(&device, None, args.steps)?;
    let mlp = train(&device, Some(args.hidden), args.steps)?;
    print_table(&device, "perceptron (one linear layer)", &perceptron)?;
    print_table(
        &device,
        &format!("MLP ({} tanh hidden units)", args.hidden),
        &mlp,
    )?;
    println!(
        "the perceptron {} XOR; the MLP {} it",
        if solves_xor(&device, &perceptron)? {
            "separates"
        } else {
            "cannot separate"
        },
        if solves_xor(&device, &mlp)? {
            "solves"
        } else {
            "does not solve"
        }
    );
    std::fs::create_dir_all(&args.out)
        .map_err(|e| liandan::Error::InvalidArgument(format!("{}: {e}", args.out.display())))?;
    let path = args.out.join("xor_boundaries.png");
    draw(&device, &[&perceptron, &mlp], &path)?;
    println!("decision boundaries (perceptron, MLP): {}", path.display());
    Ok(())
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xor_mlp: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mlp_solves_xor_and_the_perceptron_cannot() {
        let device = Device::new().unwrap();
        let perceptron = train(&device, None, 400).unwrap();
        let mlp = train(&device, Some(8), 400).unwrap();
        assert!(solves_xor(&device, &mlp).unwrap(), "MLP loss {}", mlp.loss);
        assert!(mlp.loss < 0.1, "MLP loss {}", mlp.loss);
        // No line separates XOR: a linear model gets at most 3 of the 4 points, and its
        // loss stays near ln 2.
        assert!(!solves_xor(&device, &perceptron).unwrap());
        assert!(perceptron.loss > 0.6, "perceptron loss {}", perceptron.loss);
    }
}
