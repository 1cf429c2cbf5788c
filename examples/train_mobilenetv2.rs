//! Trains MobileNetV2 (CIFAR variant) on CIFAR-10.
//!
//! `cargo run --release --example train_mobilenetv2 -- [flags]`; `--help` lists them. The
//! default recipe: SGD lr 0.1, momentum 0.9, weight decay 5e-4, cosine schedule, batch 128,
//! label smoothing 0.1. Each epoch shows a progress bar, evaluates on the test set, saves a
//! checkpoint and appends to `metrics.csv` and `curves.png` in `--out`. The last line is
//! `test_accuracy=0.XXXX`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use liandan::autograd::Tape;
use liandan::data::cifar10::Cifar10;
use liandan::data::loader::{Augment, Batch, Loader};
use liandan::io::checkpoint::{apply_checkpoint, load_checkpoint, save_checkpoint};
use liandan::models::{MobileNetV2, MobileNetV2Config};
use liandan::nn::{Ctx, ParamStore};
use liandan::optim::Optimizer;
use liandan::optim::schedule::Schedule;
use liandan::optim::sgd::{Sgd, SgdConfig};
use liandan::report::plot::{Curve, write_curves};
use liandan::{Device, Error, Result, Tensor};

const HELP: &str = "train_mobilenetv2: train MobileNetV2 on CIFAR-10

  --data DIR            CIFAR-10 binary release (default: $CIFAR10_DIR, else
                        data/cifar-10-batches-bin, else ../shared/data/cifar-10-batches-bin)
  --epochs N            (default 30)
  --batch-size N        (default 128)
  --lr X                base learning rate (default 0.1)
  --momentum X          (default 0.9)
  --weight-decay X      (default 5e-4)
  --label-smoothing X   (default 0.1)
  --schedule NAME       constant|step|multistep|cosine|onecycle (default cosine)
  --width-mult X        (default 1.0)
  --limit-train N       use the first N training images
  --limit-test N        use the first N test images
  --seed N              (default 0)
  --checkpoint PATH     where each epoch's checkpoint goes (default OUT/checkpoint.safetensors)
  --resume PATH         continue from a checkpoint
  --out DIR             metrics.csv and curves.png (default runs/mobilenetv2)";

struct Args {
    data: Option<PathBuf>,
    epochs: usize,
    batch_size: usize,
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    label_smoothing: f32,
    schedule: String,
    width_mult: f32,
    limit_train: Option<usize>,
    limit_test: Option<usize>,
    seed: u64,
    checkpoint: Option<PathBuf>,
    resume: Option<PathBuf>,
    out: PathBuf,
}

fn parse_args() -> std::result::Result<Args, String> {
    let mut a = Args {
        data: None,
        epochs: 30,
        batch_size: 128,
        lr: 0.1,
        momentum: 0.9,
        weight_decay: 5e-4,
        label_smoothing: 0.1,
        schedule: "cosine".into(),
        width_mult: 1.0,
        limit_train: None,
        limit_test: None,
        seed: 0,
        checkpoint: None,
        resume: None,
        out: PathBuf::from("runs/mobilenetv2"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Err(HELP.to_string());
        }
        let value = it
            .next()
            .ok_or(format!("{flag} needs a value (see --help)"))?;
        let bad = |what: &str| format!("{flag} {value:?}: expected {what}");
        let num = |v: &str| v.parse::<usize>().map_err(|_| bad("a whole number"));
        let real = |v: &str| {
            v.parse::<f32>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or(bad("a non-negative number"))
        };
        match flag.as_str() {
            "--data" => a.data = Some(value.into()),
            "--epochs" => a.epochs = num(&value)?,
            "--batch-size" => a.batch_size = num(&value)?.max(1),
            "--lr" => a.lr = real(&value)?,
            "--momentum" => a.momentum = real(&value)?,
            "--weight-decay" => a.weight_decay = real(&value)?,
            "--label-smoothing" => a.label_smoothing = real(&value)?,
            "--schedule" => a.schedule = value,
            "--width-mult" => a.width_mult = real(&value)?,
            "--limit-train" => a.limit_train = Some(num(&value)?),
            "--limit-test" => a.limit_test = Some(num(&value)?),
            "--seed" => a.seed = num(&value)? as u64,
            "--checkpoint" => a.checkpoint = Some(value.into()),
            "--resume" => a.resume = Some(value.into()),
            "--out" => a.out = value.into(),
            _ => return Err(format!("unknown flag {flag} (see --help)")),
        }
    }
    Ok(a)
}

/// The data directory: the flag, `$CIFAR10_DIR`, or the first default that exists.
fn data_dir(flag: Option<&Path>) -> Result<PathBuf> {
    let candidates: Vec<PathBuf> = match (flag, std::env::var_os("CIFAR10_DIR")) {
        (Some(dir), _) => vec![dir.to_path_buf()],
        (None, Some(dir)) => vec![dir.into()],
        (None, None) => vec![
            "data/cifar-10-batches-bin".into(),
            "../shared/data/cifar-10-batches-bin".into(),
        ],
    };
    candidates
        .iter()
        .find(|d| d.join("data_batch_1.bin").is_file())
        .cloned()
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "no CIFAR-10 data in {candidates:?}: download the official \"CIFAR-10 binary \
             version\" (cifar-10-binary.tar.gz), unpack it, and point --data (or \
             $CIFAR10_DIR) at the cifar-10-batches-bin directory holding data_batch_1.bin … \
             test_batch.bin"
            ))
        })
}

/// Sums over one epoch; `read_loss` brings the loss and the logits back each step.
#[derive(Default)]
struct Tally {
    loss: f64,
    correct: usize,
    seen: usize,
}

impl Tally {
    fn add(&mut self, loss: &Tensor, logits: &Tensor, labels: &[usize]) -> Result<()> {
        let n = labels.len();
        self.loss += loss.to_scalar()? as f64 * n as f64;
        let values = logits.to_vec()?;
        let classes = values.len() / n.max(1);
        for (row, &label) in values.chunks(classes).zip(labels) {
            let best = row
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(i, _)| i);
            self.correct += usize::from(best == Some(label));
        }
        self.seen += n;
        Ok(())
    }
    fn mean_loss(&self) -> f64 {
        self.loss / self.seen.max(1) as f64
    }
    fn accuracy(&self) -> f64 {
        self.correct as f64 / self.seen.max(1) as f64
    }
}

fn upload(device: &Device, batch: &Batch) -> Result<Tensor> {
    Tensor::from_slice(device, &batch.images, &batch.shape())
}

/// One optimization step; returns the loss and logits (still on the device).
#[allow(clippy::too_many_arguments)]
fn train_step(
    model: &MobileNetV2,
    store: &mut ParamStore,
    optimizer: &mut Sgd,
    device: &Device,
    batch: &Batch,
    lr: f32,
    smoothing: f32,
    seed: u64,
) -> Result<(Tensor, Tensor)> {
    let tape = Tape::new();
    let x = tape.input(upload(device, batch)?);
    let mut ctx = Ctx::new(&tape, store, true, seed);
    let logits = model.forward(&mut ctx, &x)?;
    let loss = tape.cross_entropy(&logits, &batch.labels, smoothing)?;
    let grads = tape.backward(&loss)?.by_name()?;
    optimizer.step(store, &grads, lr)?;
    Ok((loss.value().clone(), logits.value().clone()))
}

fn evaluate(
    model: &MobileNetV2,
    store: &mut ParamStore,
    device: &Device,
    loader: &Loader,
    smoothing: f32,
) -> Result<(Tally, f64)> {
    let start = Instant::now();
    let mut tally = Tally::default();
    for batch in loader.epoch(0) {
        let tape = Tape::no_grad();
        let x = tape.input(upload(device, &batch)?);
        let mut ctx = Ctx::new(&tape, store, false, 0);
        let logits = model.forward(&mut ctx, &x)?;
        let loss = tape.cross_entropy(&logits, &batch.labels, smoothing)?;
        tally.add(loss.value(), logits.value(), &batch.labels)?;
    }
    let rate = tally.seen as f64 / start.elapsed().as_secs_f64();
    Ok((tally, rate))
}

struct EpochRow {
    epoch: usize,
    lr: f32,
    train: (f64, f64),
    test: (f64, f64),
    train_rate: f64,
    eval_rate: f64,
}

fn write_metrics(out: &Path, rows: &[EpochRow]) -> Result<()> {
    let mut csv = String::from(
        "epoch,lr,train_loss,train_acc,test_loss,test_acc,train_images_per_s,eval_images_per_s\n",
    );
    for r in rows {
        let _ = writeln!(
            csv,
            "{},{:.6},{:.5},{:.5},{:.5},{:.5},{:.2},{:.2}",
            r.epoch, r.lr, r.train.0, r.train.1, r.test.0, r.test.1, r.train_rate, r.eval_rate
        );
    }
    let io = |e: std::io::Error| Error::InvalidArgument(format!("writing {}: {e}", out.display()));
    std::fs::write(out.join("metrics.csv"), csv).map_err(io)?;
    let series = |f: fn(&EpochRow) -> f64| rows.iter().map(f).collect::<Vec<f64>>();
    let (train_loss, test_loss) = (series(|r| r.train.0), series(|r| r.test.0));
    let (train_acc, test_acc) = (series(|r| r.train.1), series(|r| r.test.1));
    let (blue, orange) = ([31, 119, 180], [255, 127, 14]);
    write_curves(
        out.join("curves.png"),
        &[
            vec![
                Curve {
                    values: &train_loss,
                    rgb: blue,
                },
                Curve {
                    values: &test_loss,
                    rgb: orange,
                },
            ],
            vec![
                Curve {
                    values: &train_acc,
                    rgb: blue,
                },
                Curve {
                    values: &test_acc,
                    rgb: orange,
                },
            ],
        ],
    )
}

fn run(args: Args) -> Result<f64> {
    let dir = data_dir(args.data.as_deref())?;
    let mut train_set = Cifar10::load_train(&dir)?;
    let mut test_set = Cifar10::load_test(&dir)?;
    if let Some(n) = args.limit_train {
        train_set = train_set.limit(n);
    }
    if let Some(n) = args.limit_test {
        test_set = test_set.limit(n);
    }
    let device = Device::new()?;
    let s = device.summary();
    println!("adapter: {} ({}, {})", s.name, s.backend, s.device_type);
    println!(
        "data: {} ({} train, {} test images)",
        dir.display(),
        train_set.len(),
        test_set.len()
    );

    let train = Loader::new(
        Arc::new(train_set),
        args.batch_size,
        true,
        Some(Augment::standard()),
        args.seed,
        true,
    )?;
    let test = Loader::new(
        Arc::new(test_set),
        args.batch_size,
        false,
        None,
        args.seed,
        false,
    )?;
    let steps_per_epoch = train.batches_per_epoch();
    let schedule = Schedule::parse(&args.schedule, steps_per_epoch * args.epochs)?;

    let mut store = ParamStore::new();
    let config = MobileNetV2Config {
        width_mult: args.width_mult,
        ..MobileNetV2Config::cifar10()
    };
    let model = MobileNetV2::new(&mut store, &device, config, args.seed)?;
    println!(
        "model: MobileNetV2 (CIFAR strides), {} parameters",
        store.num_parameters()
    );
    let sgd = SgdConfig {
        momentum: args.momentum,
        weight_decay: args.weight_decay,
        ..SgdConfig::default()
    };
    let mut optimizer = Sgd::new(sgd)?;

    std::fs::create_dir_all(&args.out)
        .map_err(|e| Error::InvalidArgument(format!("creating {}: {e}", args.out.display())))?;
    let checkpoint = args
        .checkpoint
        .clone()
        .unwrap_or_else(|| args.out.join("checkpoint.safetensors"));
    let (mut first_epoch, mut step) = (0, 0usize);
    if let Some(path) = &args.resume {
        let ckpt = load_checkpoint(path)?;
        let state: HashMap<String, Tensor> = apply_checkpoint(&ckpt, &mut store, &device)?;
        optimizer.load_state(&state)?;
        optimizer.load_state_meta(&ckpt.meta)?;
        let number = |key: &str| ckpt.meta.get(key).and_then(|v| v.parse::<usize>().ok());
        first_epoch = number("epoch").unwrap_or(0);
        step = number("step").unwrap_or(0);
        println!(
            "resumed from {} at epoch {first_epoch}, step {step}",
            path.display()
        );
    }

    let plain_progress = !std::io::stderr().is_terminal();
    // Momentum buffers exist from the first step on, so later steps allocate nothing.
    optimizer.reserve(&store)?;
    let mut rows = Vec::new();
    let mut allocations_after_first_step = None;
    // Buffers the training steps created after the first one (evaluation and checkpoints,
    // which allocate their own sizes once, are not counted).
    let mut step_allocations = 0u64;
    let mut test_accuracy = 0.0;
    for epoch in first_epoch..args.epochs {
        let bar = ProgressBar::new(steps_per_epoch as u64);
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} eta {eta}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{}/{}", epoch + 1, args.epochs));
        let start = Instant::now();
        let mut tally = Tally::default();
        let mut lr = args.lr;
        let mut loop_start = device.pool_stats().allocations;
        for batch in train.epoch(epoch) {
            lr = schedule.lr(args.lr, step);
            let seed = args.seed ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let (loss, logits) = train_step(
                &model,
                &mut store,
                &mut optimizer,
                &device,
                &batch,
                lr,
                args.label_smoothing,
                seed,
            )?;
            tally.add(&loss, &logits, &batch.labels)?;
            step += 1;
            if allocations_after_first_step.is_none() {
                allocations_after_first_step = Some(device.pool_stats().allocations);
                loop_start = device.pool_stats().allocations;
                if s.is_software {
                    let rate = batch.labels.len() as f64 / start.elapsed().as_secs_f64();
                    println!(
                        "note: {} is a software adapter; the first step ran at {rate:.1} images/s \
                         (pipelines compiling), so an epoch takes roughly {:.0} s or less",
                        s.name,
                        (steps_per_epoch * args.batch_size) as f64 / rate
                    );
                }
            }
            let rate = tally.seen as f64 / start.elapsed().as_secs_f64();
            let message = format!(
                "loss {:.4} acc {:.3} {rate:.1} img/s",
                tally.mean_loss(),
                tally.accuracy()
            );
            bar.inc(1);
            let done = bar.position() as usize;
            if plain_progress
                && (done.is_multiple_of((steps_per_epoch / 10).max(1)) || done == steps_per_epoch)
            {
                // Not a terminal (a log, CI): the bar is hidden, so print a line each 10%.
                let eta =
                    (steps_per_epoch - done) as f64 * start.elapsed().as_secs_f64() / done as f64;
                println!(
                    "epoch {}/{} step {done}/{steps_per_epoch} {message} eta {eta:.0} s",
                    epoch + 1,
                    args.epochs
                );
            }
            bar.set_message(message);
        }
        bar.finish();
        step_allocations += device.pool_stats().allocations - loop_start;
        let train_rate = tally.seen as f64 / start.elapsed().as_secs_f64();
        let (test_tally, eval_rate) =
            evaluate(&model, &mut store, &device, &test, args.label_smoothing)?;
        test_accuracy = test_tally.accuracy();
        println!(
            "epoch {}: train loss {:.4} acc {:.4} | test loss {:.4} acc {:.4} | {train_rate:.1} img/s train, \
             {eval_rate:.1} img/s eval | buffers the training steps allocated after step 1: \
             {step_allocations} (pool total {})",
            epoch + 1,
            tally.mean_loss(),
            tally.accuracy(),
            test_tally.mean_loss(),
            test_accuracy,
            device.pool_stats().allocations
        );
        rows.push(EpochRow {
            epoch: epoch + 1,
            lr,
            train: (tally.mean_loss(), tally.accuracy()),
            test: (test_tally.mean_loss(), test_accuracy),
            train_rate,
            eval_rate,
        });
        write_metrics(&args.out, &rows)?;
        let mut meta: BTreeMap<String, String> = optimizer.state_meta().into_iter().collect();
        meta.insert("epoch".into(), (epoch + 1).to_string());
        meta.insert("step".into(), step.to_string());
        meta.insert("schedule".into(), args.schedule.clone());
        meta.insert("base_lr".into(), args.lr.to_string());
        save_checkpoint(&checkpoint, &store, &optimizer.state(), &meta)?;
    }
    Ok(test_accuracy)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(accuracy) => {
            println!("test_accuracy={accuracy:.4}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("train_mobilenetv2: {e}");
            ExitCode::FAILURE
        }
    }
}
