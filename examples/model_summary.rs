//! What a zoo model is made of: layer by layer, its output shapes, parameters, MACs
//! (multiply-accumulates) and memory access cost, and the peak device memory of a
//! training step.
//!
//! ```text
//! cargo run --release --example model_summary -- --model resnet50
//! cargo run --release --example model_summary -- --model densenet121 --input 3x32x32 --batch 64
//! cargo run --release --example model_summary -- --all --tsv
//! ```
//!
//! The table comes from the tape of one forward pass (batch 1, evaluation mode): one row
//! per op, named by the scope of its parameters (`layer1.0.conv1`) or, for an op without
//! any, by the block it works in (`layer1.0` for a ReLU between `layer1.0.bn1` and
//! `layer1.0.conv2`). MACs count the products of convolutions
//! and linear layers. The memory access cost is ShuffleNet V2's: the bytes an op reads
//! (inputs and parameters) and writes, as f32. The peak memory is the buffer pool's
//! high-water mark over one training step (forward, cross-entropy, backward, an SGD
//! update with momentum), weights included. Everything runs with the device in dry-run
//! mode: every tensor is allocated as in a real run, no kernel runs, so even a large
//! model at a large batch is measured in seconds.

use std::process::ExitCode;

use clap::Parser;
use liandan::autograd::{Record, Tape};
use liandan::models::zoo::{self, ZOO, ZooEntry, ZooOptions};
use liandan::nn::{self, Ctx, Module, ParamStore};
use liandan::optim::{Optimizer, Sgd, SgdConfig};
use liandan::report::summary::layer_table;
use liandan::{Device, Error, Result, Tensor};

/// Per-layer shapes, parameters, MACs and memory of a zoo model; or one line per model.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The architecture (see --all for the list)
    #[arg(long, required_unless_present = "all")]
    model: Option<String>,
    /// Classes of the classifier
    #[arg(long, default_value_t = 1000)]
    num_classes: usize,
    /// Input as CxHxW (default: 3x224x224, or 3x299x299 for the 299-pixel models)
    #[arg(long)]
    input: Option<String>,
    /// Also measure the peak memory of a training step at this batch size
    #[arg(long)]
    batch: Option<usize>,
    /// Build the small-input (CIFAR) variant
    #[arg(long)]
    cifar: bool,
    /// One line per architecture: name, parameters, MACs, output shape
    #[arg(long)]
    all: bool,
    /// Tab-separated output, for scripts
    #[arg(long)]
    tsv: bool,
}

/// `3x224x224` → [3, 224, 224].
fn parse_input(text: &str) -> Result<[usize; 3]> {
    let dims: Vec<usize> = text
        .split(['x', 'X', '×'])
        .map(|d| d.trim().parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::InvalidArgument(format!("--input {text:?}: expected CxHxW")))?;
    match dims[..] {
        [c, h, w] if c > 0 && h > 0 && w > 0 => Ok([c, h, w]),
        _ => Err(Error::InvalidArgument(format!(
            "--input {text:?}: expected three positive sizes, CxHxW"
        ))),
    }
}

/// A model built on `device` with the options its torchvision counts describe.
fn build(
    device: &Device,
    entry: &ZooEntry,
    num_classes: usize,
    cifar: bool,
) -> Result<(Box<dyn Module>, ParamStore)> {
    let options = ZooOptions {
        cifar,
        ..entry.pretrained_options(num_classes)
    };
    nn::build(device, 0, |s| entry.build(s, &options))
}

/// The records of one evaluation forward pass at batch 1.
fn forward_records(
    device: &Device,
    model: &dyn Module,
    store: &ParamStore,
    input: [usize; 3],
) -> Result<Vec<Record>> {
    let tape = Tape::new();
    let x = tape.input(Tensor::zeros(device, &[1, input[0], input[1], input[2]])?);
    let mut ctx = Ctx::eval(&tape, store);
    model.forward(&mut ctx, &x)?;
    Ok(tape.records())
}

/// Peak bytes in use over one training step at `batch`, weights included.
fn training_peak(
    device: &Device,
    model: &dyn Module,
    store: &mut ParamStore,
    batch: usize,
    input: [usize; 3],
) -> Result<u64> {
    device.reset_peak_memory();
    let mut optimizer = Sgd::new(SgdConfig {
        momentum: 0.9,
        ..SgdConfig::default()
    })?;
    let tape = Tape::new();
    let x = tape.input(Tensor::zeros(
        device,
        &[batch, input[0], input[1], input[2]],
    )?);
    let grads = {
        let mut ctx = Ctx::train(&tape, store, 0);
        let (logits, aux) = model.forward_aux(&mut ctx, &x)?;
        let targets = vec![0; batch];
        let mut loss = tape.cross_entropy(&logits, &targets, 0.0)?;
        for head in &aux {
            let l = tape.cross_entropy(head, &targets, 0.0)?;
            loss = tape.add(&loss, &tape.scale(&l, 0.3)?)?;
        }
        tape.backward(&loss)?.by_name()?
    };
    optimizer.step(store, &grads, 0.1)?;
    Ok(device.pool_stats().peak_bytes_in_use)
}

fn human(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.2}G", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.2}M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1}K", n as f64 / 1e3),
        n => n.to_string(),
    }
}

fn summary(args: &Args, device: &Device, name: &str) -> Result<()> {
    let entry = zoo::find(name)?;
    let side = entry.input_size;
    let input = match &args.input {
        Some(text) => parse_input(text)?,
        None => [3, side, side],
    };
    let (model, mut store) = build(device, entry, args.num_classes, args.cifar)?;
    let records = forward_records(device, model.as_ref(), &store, input)?;
    let rows = layer_table(&records);
    let sep = if args.tsv { "\t" } else { "  " };
    if args.tsv {
        println!("layer\top\toutput_shape\tparams\tmacs\tmemory_access_bytes");
    } else {
        println!(
            "{:<34}{sep}{:<38}{sep}{:<20}{sep}{:>10}{sep}{:>10}{sep}{:>10}",
            "layer", "op", "output shape", "params", "MACs", "mem access"
        );
    }
    for r in &rows {
        let shape = format!("{:?}", r.shape);
        if args.tsv {
            println!(
                "{}\t{}\t{shape}\t{}\t{}\t{}",
                r.layer, r.op, r.params, r.macs, r.access_bytes
            );
        } else {
            println!(
                "{:<34}{sep}{:<38}{sep}{:<20}{sep}{:>10}{sep}{:>10}{sep}{:>10}",
                r.layer,
                r.op,
                shape,
                human(r.params as u64),
                human(r.macs),
                human(r.access_bytes) + "B"
            );
        }
    }
    let used: usize = rows.iter().map(|r| r.params).sum();
    let macs: u64 = rows.iter().map(|r| r.macs).sum();
    let access: u64 = rows.iter().map(|r| r.access_bytes).sum();
    let total = store.num_parameters();
    println!(
        "total{sep}{} ops{sep}input {input:?}{sep}{total} params{sep}{macs} MACs{sep}{access} bytes accessed",
        rows.len()
    );
    if used != total {
        println!(
            "({} parameters are not used in evaluation: the auxiliary heads)",
            total - used
        );
    }
    if let Some(batch) = args.batch {
        let weights: u64 = store.iter_all().map(|(_, t, _)| 4 * t.numel() as u64).sum();
        let peak = training_peak(device, model.as_ref(), &mut store, batch, input)?;
        println!(
            "training step at batch {batch}: peak device memory {peak} bytes ({}B; weights and buffers {}B)",
            human(peak),
            human(weights)
        );
    }
    Ok(())
}

fn all(args: &Args, device: &Device) -> Result<()> {
    if args.tsv {
        println!("name\tparams\tmacs\toutput_shape");
    }
    for entry in ZOO {
        let side = entry.input_size;
        let (model, store) = build(device, entry, args.num_classes, false)?;
        let records = forward_records(device, model.as_ref(), &store, [3, side, side])?;
        let macs: u64 = layer_table(&records).iter().map(|r| r.macs).sum();
        let shape = records.last().map(|r| r.shape.clone()).unwrap_or_default();
        let params = store.num_parameters();
        if args.tsv {
            println!("{}\t{params}\t{macs}\t{shape:?}", entry.name);
        } else {
            println!(
                "{:<22} {:>12} params {:>9} MACs at {side}x{side} -> {shape:?}",
                entry.name,
                params,
                human(macs)
            );
        }
        drop((model, store));
        device.trim_pool();
    }
    Ok(())
}

fn run(args: Args) -> Result<()> {
    let device = Device::new()?;
    device.set_dry_run(true);
    match (&args.model, args.all) {
        (_, true) => all(&args, &device),
        (Some(name), false) => summary(&args, &device, name),
        (None, false) => Err(Error::InvalidArgument("give --model NAME or --all".into())),
    }
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
