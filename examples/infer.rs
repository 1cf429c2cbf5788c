//! Runs a zoo model on weights saved from PyTorch.
//!
//! ```text
//! cargo run --release --example infer -- --model resnet18 --weights resnet18.safetensors \
//!     --input x.safetensors --output y.safetensors
//! cargo run --release --example infer -- --model resnet18 --weights resnet18.safetensors \
//!     --image cat.jpg --labels imagenet_classes.txt
//! ```
//!
//! The weights are a `state_dict` saved with safetensors, keys exactly as PyTorch names
//! them (`safetensors.torch.save_file(model.state_dict(), "w.safetensors")`); batch
//! norm's running statistics included, `num_batches_tracked` accepted. Missing, extra or
//! mis-shaped keys are listed in one error. GoogLeNet and Inception v3 are built as
//! torchvision builds them for its pretrained weights: inputs rescaled by
//! `transform_input` (`--transform-input off` for weights trained from scratch), and
//! auxiliary heads only when the file has their keys.
//!
//! With `--input`, the tensor named `input` (NCHW, f32) runs in evaluation mode and the
//! tensor `logits` is written to `--output`. With `--image`, the image is preprocessed as
//! torchvision's ImageNet transforms do (resize the short side to 256, center crop 224, or
//! 342 and 299 for the 299-pixel models; ImageNet mean and std) and the top five classes
//! are printed with their probabilities.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use liandan::autograd::Tape;
use liandan::data::images::imagenet_input;
use liandan::io::checkpoint::write_atomically;
use liandan::io::{apply_checkpoint, load_checkpoint};
use liandan::models::zoo::{self, ZooOptions};
use liandan::nn::{self, Ctx};
use liandan::{Device, Error, Result, Tensor};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

/// Run a zoo model on PyTorch weights: a tensor file in, logits out; or an image in,
/// the top-5 classes out.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The architecture, as `model_summary --all` lists them (e.g. resnet50)
    #[arg(long)]
    model: String,
    /// Classes of the classifier the weights were trained with
    #[arg(long, default_value_t = 1000)]
    num_classes: usize,
    /// The state_dict, saved with safetensors
    #[arg(long)]
    weights: PathBuf,
    /// A safetensors file holding the tensor `input` (N×3×H×W, f32)
    #[arg(long, conflicts_with = "image", requires = "output")]
    input: Option<PathBuf>,
    /// Where to write the tensor `logits` (N×classes, f32)
    #[arg(long)]
    output: Option<PathBuf>,
    /// An image (PNG or JPEG) to classify
    #[arg(long)]
    image: Option<PathBuf>,
    /// Class names, one per line in class order (for --image)
    #[arg(long)]
    labels: Option<PathBuf>,
    /// GoogLeNet's and Inception v3's input rescaling: on, off, or auto (on, as
    /// torchvision builds them for its pretrained weights; off for weights trained
    /// from scratch with torchvision's defaults)
    #[arg(long, default_value = "auto", value_parser = ["auto", "on", "off"])]
    transform_input: String,
}

fn file_err(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("{}: {what}", path.display()))
}

/// The f32 tensor `name` of a safetensors file.
fn read_tensor(device: &Device, path: &Path, name: &str) -> Result<Tensor> {
    let bytes = std::fs::read(path).map_err(|e| file_err(path, e))?;
    let file = SafeTensors::deserialize(&bytes).map_err(|e| file_err(path, e))?;
    let view = file.tensor(name).map_err(|_| {
        let names = file.names();
        file_err(path, format!("no tensor {name:?}; it has {names:?}"))
    })?;
    if view.dtype() != Dtype::F32 {
        return Err(file_err(
            path,
            format!("{name:?} is {:?}, not F32", view.dtype()),
        ));
    }
    let values: Vec<f32> = view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Tensor::from_vec(device, values, view.shape())
}

fn write_tensor(path: &Path, name: &str, t: &Tensor) -> Result<()> {
    let bytes: Vec<u8> = t.to_vec()?.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view =
        TensorView::new(Dtype::F32, t.shape().to_vec(), &bytes).map_err(|e| file_err(path, e))?;
    let file = safetensors::serialize([(name, view)], None::<HashMap<String, String>>)
        .map_err(|e| file_err(path, e))?;
    write_atomically(path, &file)
}

fn run(args: Args) -> Result<()> {
    let entry = zoo::find(&args.model)?;
    let ckpt = load_checkpoint(&args.weights)?;
    // The auxiliary heads are built when the file has their keys (torchvision's
    // pretrained GoogLeNet has none, its Inception v3 has them).
    let has_aux = ckpt
        .tensors
        .iter()
        .any(|(name, _, _)| name.starts_with("aux1.") || name.starts_with("AuxLogits."));
    let pretrained = entry.pretrained_options(args.num_classes);
    let options = ZooOptions {
        aux_logits: has_aux,
        transform_input: match args.transform_input.as_str() {
            "on" => true,
            "off" => false,
            _ => pretrained.transform_input,
        },
        ..pretrained
    };
    let transform_input = options.transform_input;
    let device = Device::new()?;
    let (model, mut store) = nn::build(&device, 0, |s| entry.build(s, &options))?;
    apply_checkpoint(&ckpt, &mut store, &device, None)?;
    eprintln!(
        "{}: {} tensors loaded from {} ({} parameters){}",
        entry.name,
        store.len(),
        args.weights.display(),
        store.num_parameters(),
        if transform_input {
            "; transform_input on"
        } else {
            ""
        }
    );

    let input = match (&args.input, &args.image) {
        (Some(path), _) => read_tensor(&device, path, "input")?,
        (None, Some(path)) => imagenet_input(&device, path, entry.input_size as u32)?,
        (None, None) => {
            return Err(Error::InvalidArgument(
                "give --input X.safetensors --output Y.safetensors, or --image IMG".into(),
            ));
        }
    };
    let tape = Tape::no_grad();
    let x = tape.input(input);
    let mut ctx = Ctx::eval(&tape, &store);
    let logits = model.forward(&mut ctx, &x)?.value().clone();

    if let Some(path) = &args.output {
        write_tensor(path, "logits", &logits)?;
        eprintln!("logits {:?} written to {}", logits.shape(), path.display());
    }
    if args.image.is_some() {
        let labels: Vec<String> = match &args.labels {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| file_err(path, e))?
                .lines()
                .map(str::to_string)
                .collect(),
            None => Vec::new(),
        };
        let probs = logits.softmax()?.to_vec()?;
        let mut order: Vec<usize> = (0..probs.len()).collect();
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
        for &class in order.iter().take(5) {
            let label = labels.get(class).map_or("", String::as_str);
            println!("{:6.2}%  {class:4}  {label}", 100.0 * probs[class]);
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
