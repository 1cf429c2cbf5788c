//! What convolutions see: a model's feature maps for one image, as pictures.
//!
//! ```text
//! cargo run --release --example feature_maps          # AlexNet, its first three convs
//! cargo run --release --example feature_maps -- --model resnet18 \
//!     --weights resnet18.safetensors --image cat.jpg --layers conv1,layer1.0.conv2
//! ```
//!
//! For each requested layer (a convolution's scope, as `model_summary` names them) it
//! writes `<layer>.png`: the input image, then the first 16 channels of the layer's output
//! after its activation, each min–max normalized, 4 to a row. It also prints the share of
//! "dead" channels, nearly all zero after the ReLU: Zeiler and Fergus's question about
//! AlexNet's first layers, which ZFNet answered with smaller strides and filters.
//!
//! Weights: a torchvision `state_dict` saved with safetensors (`--weights`) or a liandan
//! checkpoint (`--checkpoint`, e.g. from `train_cifar`; give its `--num-classes 10
//! --cifar`). Without either the model keeps its random initial weights. The default
//! image (`docs/img/shapes.png`) is a drawing of shapes and stripes in the repository.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use liandan::autograd::{Record, Tape};
use liandan::data::images::{IMAGENET_MEAN, IMAGENET_STD, load_center_crop};
use liandan::io::{apply_checkpoint, load_checkpoint};
use liandan::models::zoo::{self, ZooOptions};
use liandan::nn::{self, Ctx};
use liandan::report::image::Canvas;
use liandan::{Device, Error, Result, Tensor};

/// Feature maps of a zoo model for one image, as PNG grids.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The architecture
    #[arg(long, default_value = "alexnet")]
    model: String,
    /// A torchvision state_dict, saved with safetensors
    #[arg(long, conflicts_with = "checkpoint")]
    weights: Option<PathBuf>,
    /// A liandan checkpoint (train_cifar's)
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Classes of the weights' classifier
    #[arg(long, default_value_t = 1000)]
    num_classes: usize,
    /// The small-input (CIFAR) variant, for a train_cifar checkpoint
    #[arg(long)]
    cifar: bool,
    /// The image (PNG or JPEG)
    #[arg(long, default_value = "docs/img/shapes.png")]
    image: PathBuf,
    /// Convolutions to show, comma-separated (default: AlexNet's first three)
    #[arg(
        long,
        default_value = "features.0,features.3,features.6",
        value_delimiter = ','
    )]
    layers: Vec<String>,
    /// Output directory
    #[arg(long, default_value = "runs/feature_maps")]
    out: PathBuf,
}

/// Channels shown per layer.
const SHOWN: usize = 16;
/// A channel is dead when at most this share of its values is above zero.
const DEAD_SHARE: f32 = 0.01;

/// The record holding layer `layer`'s output after its activation: the op reading its
/// parameters, then along its only consumers through normalization to the first ReLU
/// (or the op itself when none follows). A batch norm with its activation fused in
/// (`batch_norm+relu`, `batch_norm+relu6`) is that activation's output.
fn layer_output(records: &[Record], layer: &str) -> Option<usize> {
    let prefix = format!("{layer}.");
    let mut at = records.iter().position(|r| {
        r.param.is_none()
            && r.inputs.iter().any(|&i| {
                records[i]
                    .param
                    .as_deref()
                    .is_some_and(|p| p.starts_with(&prefix) && !p[prefix.len()..].contains('.'))
            })
    })?;
    for _ in 0..3 {
        let consumers: Vec<usize> = (at + 1..records.len())
            .filter(|&j| records[j].inputs.contains(&at))
            .collect();
        let [next] = consumers[..] else { break };
        let kind = records[next].op.split(' ').next().unwrap_or("");
        match kind {
            "relu" | "relu6" | "leaky_relu" => return Some(next),
            fused if fused.starts_with("batch_norm+") => return Some(next),
            "batch_norm" | "add" => at = next,
            _ => break,
        }
    }
    Some(at)
}

fn run(args: &Args) -> Result<()> {
    let entry = zoo::find(&args.model)?;
    let device = Device::new()?;
    let options = ZooOptions {
        cifar: args.cifar,
        ..entry.pretrained_options(args.num_classes)
    };
    let (model, mut store) = nn::build(&device, 0, |s| entry.build(s, &options))?;
    let source = match (&args.weights, &args.checkpoint) {
        (Some(path), _) | (None, Some(path)) => {
            apply_checkpoint(&load_checkpoint(path)?, &mut store, &device, None)?;
            path.display().to_string()
        }
        (None, None) => "random initial weights".to_string(),
    };
    let side = if args.cifar {
        32
    } else {
        entry.input_size as u32
    };
    let pixels = load_center_crop(&args.image, side * 256 / 224, side)?;
    let plane = (side * side) as usize;
    let normalized: Vec<f32> = pixels
        .iter()
        .enumerate()
        .map(|(i, v)| (v - IMAGENET_MEAN[i / plane]) / IMAGENET_STD[i / plane])
        .collect();
    let s = side as usize;
    let tape = Tape::new();
    let x = tape.input(Tensor::from_vec(&device, normalized, &[1, 3, s, s])?);
    model.forward(&mut Ctx::eval(&tape, &store), &x)?;
    let records = tape.records();
    println!(
        "{}: {} ({}), image {}",
        entry.name,
        source,
        args.image.display(),
        side
    );
    std::fs::create_dir_all(&args.out)
        .map_err(|e| Error::InvalidArgument(format!("{}: {e}", args.out.display())))?;
    for layer in &args.layers {
        let index = layer_output(&records, layer).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{} has no layer {layer:?} with parameters; model_summary --model {} lists them",
                entry.name, entry.name
            ))
        })?;
        let map = tape.value(index).expect("a recorded value");
        let [_, c, h, w] = map.shape()[..] else {
            return Err(Error::InvalidArgument(format!(
                "{layer}: output {:?} is not a feature map [1, C, H, W]",
                map.shape()
            )));
        };
        let values = map.to_vec()?;
        let dead = values
            .chunks_exact(h * w)
            .filter(|ch| {
                (ch.iter().filter(|&&v| v > 0.0).count() as f32) <= DEAD_SHARE * (h * w) as f32
            })
            .count();
        let path = write_grid(&args.out, layer, &pixels, s, &values, (c, h, w))?;
        println!(
            "{layer:<20} {:<12} {c:4} channels {h}x{w}: {dead} dead ({:.0}%) -> {}",
            records[index].op.split(' ').next().unwrap_or(""),
            100.0 * dead as f32 / c as f32,
            path.display()
        );
    }
    Ok(())
}

/// The input image, then the first [`SHOWN`] channels, 4 to a row, each scaled up to
/// about the image's size.
fn write_grid(
    out: &Path,
    layer: &str,
    image: &[f32],
    side: usize,
    values: &[f32],
    (c, h, w): (usize, usize, usize),
) -> Result<PathBuf> {
    let tile = (side / h.max(w)).max(1) * h.max(w) / 2;
    let scale = (tile / h.max(w)).max(1);
    let (tile_h, tile_w) = (h * scale, w * scale);
    let gap = 4;
    let cols = 4;
    let shown = c.min(SHOWN);
    let rows = shown.div_ceil(cols);
    let grid_w = cols * (tile_w + gap);
    let width = side + gap * 2 + grid_w;
    let height = side.max(rows * (tile_h + gap));
    let mut canvas = Canvas::new(width, height);
    canvas.rgb_planes((0, 0), (side, side), image, 1);
    for k in 0..shown {
        let left = side + 2 * gap + (k % cols) * (tile_w + gap);
        let top = (k / cols) * (tile_h + gap);
        canvas.grey_map(
            (left, top),
            (h, w),
            &values[k * h * w..(k + 1) * h * w],
            scale,
        );
    }
    let path = out.join(format!("{layer}.png"));
    canvas.write_png(&path)?;
    Ok(path)
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("feature_maps: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_write_a_grid_per_layer_of_a_small_model() {
        let out = std::env::temp_dir().join(format!("liandan-fmaps-{}", std::process::id()));
        let args = Args::try_parse_from([
            "feature_maps",
            "--model",
            "lenet5",
            "--num-classes",
            "10",
            "--layers",
            "features.0,features.3",
            "--image",
            concat!(env!("CARGO_MANIFEST_DIR"), "/docs/img/shapes.png"),
            "--out",
            out.to_str().unwrap(),
        ])
        .unwrap();
        run(&args).unwrap();
        for layer in ["features.0", "features.3"] {
            let bytes = std::fs::read(out.join(format!("{layer}.png"))).unwrap();
            assert_eq!(&bytes[1..4], b"PNG");
        }
        let bad = Args {
            layers: vec!["features.9".into()],
            ..args
        };
        assert!(run(&bad).unwrap_err().to_string().contains("features.9"));
        std::fs::remove_dir_all(&out).unwrap();
    }

    /// MobileNetV2's stem is conv, batch norm and ReLU6 in a Sequential, which runs the
    /// last two as one op: the layer's output is that op's, after the activation.
    #[test]
    fn a_fused_batch_norm_and_activation_is_the_layers_output() {
        let device = Device::new().unwrap();
        let entry = zoo::find("mobilenet_v2").unwrap();
        let options = ZooOptions {
            cifar: true,
            ..ZooOptions::new(10)
        };
        let (model, store) = nn::build(&device, 0, |s| entry.build(s, &options)).unwrap();
        let tape = Tape::new();
        let x = tape.input(Tensor::randn(&device, &[1, 3, 32, 32], 1).unwrap());
        model.forward(&mut Ctx::eval(&tape, &store), &x).unwrap();
        let records = tape.records();
        let index = layer_output(&records, "features.0.0").unwrap();
        assert!(
            records[index].op.starts_with("batch_norm+relu6"),
            "{}",
            records[index].op
        );
        let values = tape.value(index).unwrap().to_vec().unwrap();
        assert!(values.iter().all(|v| (0.0..=6.0).contains(v)));
    }
}
