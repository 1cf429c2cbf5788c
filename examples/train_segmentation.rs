//! Trains the segmentation network (`models::segmentation::SegNet`) on the synthetic
//! shapes (`data::shapes`): per-pixel cross-entropy with boundary pixels ignored, AdamW.
//!
//! ```text
//! cargo run --release --example train_segmentation
//! ```
//!
//! It first prints which offsets the context block's dilated convolutions reach, for its
//! rates 1, 2, 5 and for 2, 2, 2 (the gridding the chosen rates avoid). After each epoch
//! it prints the validation set's IoU per class and mIoU, and writes `predictions.png`:
//! for the first validation images, a row each of input, ground truth and prediction
//! (black: background, red: circle, green: square, blue: triangle, white: ignored). The
//! last line is `miou=0.XXXX`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use liandan::autograd::Tape;
use liandan::data::shapes::{CLASSES, IGNORE, Shapes, iou};
use liandan::models::segmentation::{CONTEXT_RATES, SegNet, coverage};
use liandan::nn::{self, Ctx, Module, ParamStore};
use liandan::optim::{AdamW, AdamWConfig, Optimizer, Schedule};
use liandan::report::image::Canvas;
use liandan::{Device, Error, Result, Rng, Tensor};

/// Train a small segmentation network on synthetic shapes.
#[derive(Parser, Debug, Clone)]
#[command(version, about)]
struct Args {
    /// Side of the images (a multiple of 4)
    #[arg(long, default_value_t = 32)]
    side: usize,
    /// Training images
    #[arg(long, default_value_t = 2000)]
    train: usize,
    /// Validation images
    #[arg(long, default_value_t = 200)]
    val: usize,
    /// Channels at full resolution
    #[arg(long, default_value_t = 16)]
    width: usize,
    #[arg(long, default_value_t = 32)]
    batch: usize,
    #[arg(long, default_value_t = 12)]
    epochs: usize,
    /// AdamW's peak learning rate (cosine schedule)
    #[arg(long, default_value_t = 3e-3)]
    lr: f32,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output directory
    #[arg(long, default_value = "runs/segmentation")]
    out: PathBuf,
}

/// One character per offset: `#` reached, `.` a hole.
fn coverage_line(rates: &[usize]) -> String {
    coverage(rates)
        .iter()
        .map(|&c| if c { '#' } else { '.' })
        .collect()
}

/// Per-pixel classes of `logits` `[N, C, H, W]` (the highest score).
fn argmax(logits: &Tensor) -> Result<Vec<usize>> {
    let [n, c, h, w] = logits.shape()[..] else {
        return Err(Error::InvalidArgument(
            "segmentation logits must be 4-D".into(),
        ));
    };
    let v = logits.to_vec()?;
    let plane = h * w;
    let mut out = Vec::with_capacity(n * plane);
    for b in 0..n {
        for q in 0..plane {
            let at = |k: usize| v[(b * c + k) * plane + q];
            out.push((0..c).max_by(|&i, &j| at(i).total_cmp(&at(j))).unwrap_or(0));
        }
    }
    Ok(out)
}

/// Predictions for all of `data`, in batches, in evaluation mode.
fn predict(
    device: &Device,
    model: &SegNet,
    store: &ParamStore,
    data: &Shapes,
    batch: usize,
) -> Result<Vec<usize>> {
    let mut predicted = Vec::with_capacity(data.labels.len());
    for start in (0..data.len()).step_by(batch) {
        let end = (start + batch).min(data.len());
        let (images, _) = data.batch(start..end);
        let tape = Tape::no_grad();
        let x = tape.input(Tensor::from_slice(
            device,
            images,
            &[end - start, 3, data.side, data.side],
        )?);
        let logits = model.forward(&mut Ctx::eval(&tape, store), &x)?;
        predicted.extend(argmax(logits.value())?);
    }
    Ok(predicted)
}

const PALETTE: [[u8; 3]; 4] = [[0, 0, 0], [220, 50, 50], [50, 190, 70], [60, 90, 230]];

fn colour(label: usize) -> [u8; 3] {
    PALETTE.get(label).copied().unwrap_or([255, 255, 255])
}

/// Input, ground truth and prediction for the first `rows` images of `data`.
fn draw(data: &Shapes, predicted: &[usize], rows: usize, path: &std::path::Path) -> Result<()> {
    let (side, scale, gap) = (data.side, 4, 6);
    let tile = side * scale + gap;
    let mut canvas = Canvas::new(3 * tile, rows * tile);
    let plane = side * side;
    for r in 0..rows.min(data.len()) {
        let (image, truth) = data.batch(r..r + 1);
        // The pixels are normalized: scale each image to [0, 1] for display.
        let (lo, hi) = image
            .iter()
            .fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
        let shown: Vec<f32> = image
            .iter()
            .map(|v| (v - lo) / (hi - lo).max(1e-6))
            .collect();
        canvas.rgb_planes((0, r * tile), (side, side), &shown, scale);
        for q in 0..plane {
            let (x, y) = ((q % side) * scale, r * tile + (q / side) * scale);
            canvas.block((tile + x, y), scale, colour(truth[q]));
            canvas.block((2 * tile + x, y), scale, colour(predicted[r * plane + q]));
        }
    }
    canvas.write_png(path)
}

fn run(args: &Args) -> Result<f64> {
    if !args.side.is_multiple_of(4) || args.batch == 0 || args.train == 0 || args.val == 0 {
        return Err(Error::InvalidArgument(format!(
            "--side {} must be a multiple of 4, --batch, --train and --val positive",
            args.side
        )));
    }
    println!("offsets one output of the context block reaches (3x3 kernels, one axis):");
    println!(
        "  rates {CONTEXT_RATES:?}: {}",
        coverage_line(&CONTEXT_RATES)
    );
    println!(
        "  rates [2, 2, 2]: {} (gridding: odd offsets never seen)",
        coverage_line(&[2, 2, 2])
    );
    let train = Shapes::generate(args.train, args.side, args.seed);
    let val = Shapes::generate(args.val, args.side, args.seed ^ 0x5EED);
    let device = Device::new()?;
    let classes = CLASSES.len();
    let (model, mut store) =
        nn::build(&device, args.seed, |s| SegNet::new(s, args.width, classes))?;
    println!(
        "SegNet width {} ({} parameters) on {} train / {} val images of {}x{}, {}",
        args.width,
        store.num_parameters(),
        args.train,
        args.val,
        args.side,
        args.side,
        device.summary().name
    );
    let steps_per_epoch = args.train.div_ceil(args.batch);
    let schedule = Schedule::parse("cosine", steps_per_epoch * args.epochs)?;
    let mut adam = AdamW::new(AdamWConfig {
        weight_decay: 1e-4,
        ..AdamWConfig::default()
    })?;
    std::fs::create_dir_all(&args.out)
        .map_err(|e| Error::InvalidArgument(format!("{}: {e}", args.out.display())))?;
    let mut step = 0;
    let mut miou = 0.0;
    let start = std::time::Instant::now();
    for epoch in 1..=args.epochs {
        let mut order: Vec<usize> = (0..args.train).collect();
        let mut rng = Rng::new(args.seed ^ epoch as u64);
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let mut loss_sum = 0.0;
        for chunk in order.chunks(args.batch) {
            let plane = args.side * args.side;
            let mut images = Vec::with_capacity(chunk.len() * 3 * plane);
            let mut labels = Vec::with_capacity(chunk.len() * plane);
            for &i in chunk {
                let (x, y) = train.batch(i..i + 1);
                images.extend_from_slice(x);
                labels.extend_from_slice(y);
            }
            let tape = Tape::new();
            let shape = [chunk.len(), 3, args.side, args.side];
            let x = tape.input(Tensor::from_vec(&device, images, &shape)?);
            let logits = model.forward(&mut Ctx::train(&tape, &mut store, step as u64), &x)?;
            let loss = tape.pixel_cross_entropy(&logits, &labels, Some(IGNORE))?;
            loss_sum += f64::from(loss.value().to_scalar()?);
            let grads = tape.backward(&loss)?.by_name()?;
            adam.step(&mut store, &grads, schedule.lr(args.lr, step))?;
            step += 1;
        }
        let predicted = predict(&device, &model, &store, &val, args.batch)?;
        let (per_class, mean) = iou(&predicted, &val.labels, classes);
        miou = mean;
        let per_class: Vec<String> = CLASSES
            .iter()
            .zip(&per_class)
            .map(|(name, v)| format!("{name} {v:.3}"))
            .collect();
        println!(
            "epoch {epoch}/{}: train loss {:.4} | val IoU {} | mIoU {mean:.4} | {:.0} s",
            args.epochs,
            loss_sum / steps_per_epoch as f64,
            per_class.join(", "),
            start.elapsed().as_secs_f64()
        );
        draw(&val, &predicted, 6, &args.out.join("predictions.png"))?;
    }
    Ok(miou)
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(miou) => {
            println!("miou={miou:.4}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("train_segmentation: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One epoch of one step on four tiny images: a finite mIoU and the picture written.
    #[test]
    fn one_training_step_on_tiny_data() {
        let out = std::env::temp_dir().join(format!("liandan-seg-{}", std::process::id()));
        let args = Args::try_parse_from([
            "train_segmentation",
            "--side",
            "16",
            "--train",
            "4",
            "--val",
            "2",
            "--width",
            "4",
            "--batch",
            "4",
            "--epochs",
            "1",
            "--out",
            out.to_str().unwrap(),
        ])
        .unwrap();
        let miou = run(&args).unwrap();
        assert!((0.0..=1.0).contains(&miou), "{miou}");
        assert!(out.join("predictions.png").is_file());
        std::fs::remove_dir_all(&out).unwrap();
    }
}
