//! How fast a training step is: images/s of the MobileNetV2-CIFAR training step (forward,
//! cross-entropy, backward, SGD with momentum) and of evaluation, a per-op breakdown of
//! one step, and the same network in PyTorch in the same run when PyTorch is importable.
//!
//! ```text
//! make bench-train            # cargo run --release --example bench_train
//! cargo run --release --example bench_train -- --batch 256 --eval-batch 1024 --steps 20
//! cargo run --release --example bench_train -- --no-torch --kernels 25   # per kernel too
//! ```
//!
//! The breakdown comes from a profiled tape ([`liandan::autograd::Tape::profiled`]),
//! which waits for the device after every op: its shares are what it measures, its total
//! is longer than a real step. "Recording" is the CPU time a step spends issuing its work
//! and "waiting" the time left for the device to finish it, measured on an unprofiled
//! step. PyTorch runs `scripts/bench_train_torch.py` (`$LIANDAN_PYTHON`, else `python3`)
//! with as many threads as the machine has cores, or on CUDA with `--torch-cuda`.

use std::process::{Command, ExitCode};
use std::time::Instant;

use clap::Parser;
use liandan::autograd::Tape;
use liandan::models::zoo::{self, ZooOptions};
use liandan::nn::{self, Ctx, Module, ParamStore};
use liandan::optim::{Optimizer, Sgd, SgdConfig};
use liandan::{Device, Error, Result, Tensor};

/// Time the training step and evaluation of a zoo model's CIFAR variant.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The architecture (its CIFAR variant)
    #[arg(long, default_value = "mobilenet_v2")]
    model: String,
    /// Images per training step
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Images per evaluation forward (128: at 256 MobileNetV2-CIFAR's widest activation,
    /// 151 MB, passes lavapipe's 128 MiB storage binding, which convolutions do not yet
    /// split; GPUs bind more)
    #[arg(long, default_value_t = 128)]
    eval_batch: usize,
    /// Timed steps (after one untimed, which compiles the pipelines)
    #[arg(long, default_value_t = 3)]
    steps: usize,
    /// Skip PyTorch
    #[arg(long)]
    no_torch: bool,
    /// Run PyTorch on CUDA instead of the CPU
    #[arg(long)]
    torch_cuda: bool,
    /// Also time one step kernel by kernel, and print the slowest this many
    #[arg(long, default_value_t = 0)]
    kernels: usize,
}

struct Bench {
    device: Device,
    model: Box<dyn Module>,
    store: ParamStore,
    sgd: Sgd,
    images: Tensor,
    labels: Vec<usize>,
}

impl Bench {
    /// One training step on `tape`; returns the CPU seconds spent recording it (the
    /// device may still be running it).
    fn step(&mut self, tape: &Tape) -> Result<f64> {
        let start = Instant::now();
        let x = tape.input(self.images.clone());
        let logits = self
            .model
            .forward(&mut Ctx::train(tape, &mut self.store, 0), &x)?;
        let loss = tape.cross_entropy(&logits, &self.labels, 0.1)?;
        let grads = tape.backward(&loss)?.by_name()?;
        self.sgd.step(&mut self.store, &grads, 0.05)?;
        self.device.flush()?;
        Ok(start.elapsed().as_secs_f64())
    }
}

fn torch(args: &Args) -> std::result::Result<(f64, f64, String), String> {
    let python = std::env::var("LIANDAN_PYTHON").unwrap_or_else(|_| "python3".into());
    // From the working directory when it has the script (a copy of the repository on
    // another machine), else from where this was built.
    let local = "scripts/bench_train_torch.py";
    let script = if std::path::Path::new(local).is_file() {
        local
    } else {
        concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/bench_train_torch.py")
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut command = Command::new(&python);
    command.args([
        script,
        "--batch",
        &args.batch.to_string(),
        "--eval-batch",
        &args.eval_batch.to_string(),
        "--steps",
        &args.steps.to_string(),
        "--threads",
        &threads.to_string(),
    ]);
    if args.torch_cuda {
        command.arg("--cuda");
    }
    let out = command.output().map_err(|e| format!("{python}: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(err.lines().last().unwrap_or("failed").to_string());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |key: &str| -> Option<String> {
        let at = text.find(&format!("\"{key}\": "))? + key.len() + 4;
        let rest = &text[at..];
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        Some(rest[..end].trim().trim_matches('"').to_string())
    };
    let number = |key: &str| field(key).and_then(|v| v.parse::<f64>().ok());
    match (number("train_images_per_s"), number("eval_images_per_s")) {
        (Some(t), Some(e)) => Ok((t, e, field("device").unwrap_or_default())),
        _ => Err(format!("unexpected output: {text}")),
    }
}

fn run(args: &Args) -> Result<()> {
    if args.batch == 0 || args.eval_batch == 0 || args.steps == 0 {
        return Err(Error::InvalidArgument(
            "--batch, --eval-batch and --steps must be positive".into(),
        ));
    }
    let device = Device::new()?;
    let entry = zoo::find(&args.model)?;
    let options = ZooOptions {
        cifar: true,
        ..ZooOptions::new(10)
    };
    let (model, store) = nn::build(&device, 0, |s| entry.build(s, &options))?;
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    println!(
        "{} (CIFAR variant), {} on {} ({cpu})",
        entry.name,
        device.summary().name,
        device.summary().backend
    );
    let mut bench = Bench {
        images: Tensor::randn(&device, &[args.batch, 3, 32, 32], 1)?,
        labels: (0..args.batch).map(|i| i % 10).collect(),
        sgd: Sgd::new(SgdConfig {
            momentum: 0.9,
            weight_decay: 5e-4,
            ..SgdConfig::default()
        })?,
        device: device.clone(),
        model,
        store,
    };

    // Training: one untimed step, then the timed ones.
    bench.step(&Tape::new())?;
    device.synchronize()?;
    let dispatches = device.dispatch_count();
    let (mut recording, start) = (0.0, Instant::now());
    for _ in 0..args.steps {
        recording += bench.step(&Tape::new())?;
    }
    let before_wait = start.elapsed().as_secs_f64();
    device.synchronize()?;
    let train_s = start.elapsed().as_secs_f64();
    let per_step = (device.dispatch_count() - dispatches) / args.steps as u64;
    let train_rate = (args.batch * args.steps) as f64 / train_s;

    // Evaluation.
    let eval_images = Tensor::randn(&device, &[args.eval_batch, 3, 32, 32], 2)?;
    let forward = |bench: &Bench| -> Result<()> {
        let tape = Tape::no_grad();
        let x = tape.input(eval_images.clone());
        bench
            .model
            .forward(&mut Ctx::eval(&tape, &bench.store), &x)?;
        Ok(())
    };
    forward(&bench)?;
    device.synchronize()?;
    let start = Instant::now();
    for _ in 0..args.steps {
        forward(&bench)?;
    }
    device.synchronize()?;
    let eval_rate = (args.eval_batch * args.steps) as f64 / start.elapsed().as_secs_f64();

    println!(
        "liandan: train {train_rate:.1} images/s (batch {}), eval {eval_rate:.1} images/s (batch {})",
        args.batch, args.eval_batch
    );
    println!(
        "  per step: {per_step} dispatches; {:.0} ms recording on the CPU, {:.0} ms more waiting for the device",
        1e3 * recording / args.steps as f64,
        1e3 * (train_s - before_wait) / args.steps as f64
    );

    // The breakdown of one profiled step.
    let tape = Tape::profiled();
    bench.step(&tape)?;
    let rows = tape.profile();
    let total: f64 = rows.iter().map(|r| r.forward_s + r.backward_s).sum();
    println!(
        "one profiled step ({:.0} ms with a wait after every op), by kind of op:",
        1e3 * total
    );
    println!(
        "  {:<28} {:>5} {:>10} {:>10} {:>6}",
        "op", "count", "fwd ms", "bwd ms", "share"
    );
    for r in &rows {
        println!(
            "  {:<28} {:>5} {:>10.1} {:>10.1} {:>5.1}%",
            r.kind,
            r.count,
            1e3 * r.forward_s,
            1e3 * r.backward_s,
            100.0 * (r.forward_s + r.backward_s) / total
        );
    }

    if args.kernels > 0 {
        print_kernels(&mut bench, args.kernels)?;
    }
    if args.no_torch {
        return Ok(());
    }
    match torch(args) {
        Ok((t, e, name)) => println!(
            "PyTorch ({name}): train {t:.1} images/s, eval {e:.1} images/s; liandan / PyTorch: train {:.3}, eval {:.3}",
            train_rate / t,
            eval_rate / e
        ),
        Err(why) => println!("PyTorch: not measured ({why})"),
    }
    Ok(())
}

/// One training step timed kernel by kernel: the `top` slowest kernels.
fn print_kernels(bench: &mut Bench, top: usize) -> Result<()> {
    bench.device.synchronize()?;
    bench.device.set_kernel_profile(true);
    let step = bench.step(&Tape::new());
    let rows = bench.device.kernel_profile();
    bench.device.set_kernel_profile(false);
    step?;
    let total: f64 = rows.iter().map(|r| r.seconds).sum();
    println!(
        "one step kernel by kernel ({:.0} ms with a wait after every launch):",
        1e3 * total
    );
    println!(
        "  {:<58} {:>8} {:>9} {:>6}",
        "kernel", "launches", "ms", "share"
    );
    for r in rows.iter().take(top) {
        println!(
            "  {:<58} {:>8} {:>9.1} {:>5.1}%",
            r.kernel,
            r.launches,
            1e3 * r.seconds,
            100.0 * r.seconds / total
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_train: {e}");
            ExitCode::FAILURE
        }
    }
}
