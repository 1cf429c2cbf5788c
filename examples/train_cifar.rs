//! Trains any zoo model that takes 32×32 input on CIFAR-10 (its CIFAR variant: only the
//! stem's strides change), MobileNetV2 by default.
//!
//! `cargo run --release --example train_cifar -- --model resnet18 [flags]`; `--help` lists
//! them (`make train` runs MobileNetV2). The default recipe: SGD lr 0.1, momentum 0.9,
//! weight decay 5e-4, cosine schedule, batch 128, label smoothing 0.1. Auxiliary heads
//! (GoogLeNet) add their losses weighted 0.3; `--tta flip|10crop` also reports the test
//! accuracy with test-time augmentation. Each epoch shows a progress bar, evaluates on the test set, saves a
//! checkpoint and appends to `metrics.csv` and `curves.png` in `--out`. `--resume`
//! continues a run from its checkpoint exactly as if it had not stopped. The last line is
//! `test_accuracy=0.XXXX`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use liandan::data::cifar10::{self, Cifar10};
use liandan::data::download::download_cifar10;
use liandan::data::loader::{Augment, Loader};
use liandan::dist::{Communicator, GradientBuckets, local_group};
use liandan::models::zoo::{self, ZooOptions};
use liandan::models::{MobileNetV2, MobileNetV2Config};
use liandan::nn::{self, Module, ParamStore};
use liandan::optim::sgd::{Sgd, SgdConfig};
use liandan::report::metrics::{EpochRow, MetricsLog};
use liandan::train::{TrainConfig, Trainer, Tta};
use liandan::{Device, DeviceBuilder, Error, Result};

/// Train a zoo model (its CIFAR variant) on CIFAR-10.
#[derive(Parser, Debug, Clone)]
#[command(version, about)]
struct Args {
    /// The architecture (`model_summary --all` lists them)
    #[arg(long, default_value = "mobilenet_v2")]
    model: String,
    /// CIFAR-10 binary release: its cifar-10-batches-bin directory or one holding it
    /// (default: $CIFAR10_DIR, else data/, else ../shared/data/; downloaded into data/
    /// when none has it)
    #[arg(long)]
    data: Option<PathBuf>,
    /// Train until this many epochs are done
    #[arg(long, default_value_t = 30)]
    epochs: usize,
    /// Epochs the learning-rate schedule spans (default: --epochs). To stop early and
    /// resume later with the same learning rates, give the whole run's length here.
    #[arg(long)]
    schedule_epochs: Option<usize>,
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..))]
    batch_size: u32,
    /// Base learning rate
    #[arg(long, default_value_t = 0.1)]
    lr: f32,
    #[arg(long, default_value_t = 0.9)]
    momentum: f32,
    #[arg(long, default_value_t = 5e-4)]
    weight_decay: f32,
    #[arg(long, default_value_t = 0.1)]
    label_smoothing: f32,
    /// constant, step, multistep, cosine or onecycle
    #[arg(long, default_value = "cosine")]
    schedule: String,
    /// MobileNetV2's width multiplier
    #[arg(long, default_value_t = 1.0)]
    width_mult: f32,
    /// Also evaluate with test-time augmentation: none, flip or 10crop
    #[arg(long, default_value = "none")]
    tta: String,
    /// Use the first N training images
    #[arg(long)]
    limit_train: Option<usize>,
    /// Use the first N test images
    #[arg(long)]
    limit_test: Option<usize>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where each epoch's checkpoint goes (default: OUT/checkpoint.safetensors)
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Also print diagnostics (buffer allocations per epoch)
    #[arg(long)]
    verbose: bool,
    /// Continue the run saved in this checkpoint
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Directory for metrics.csv, curves.png and the checkpoint (default: runs/MODEL)
    #[arg(long)]
    out: Option<PathBuf>,
    /// Data-parallel over N ranks in this process, one thread and one device each
    /// (docs/distributed.md); --batch-size is the global batch, divided among them
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    local_devices: u32,
    /// Seconds a rank waits for the others in a collective before it fails, naming them
    #[arg(long, default_value_t = 300)]
    dist_timeout: u64,
    /// Data-parallel over the processes `mpirun` launched, one rank each (a build with
    /// `--features mpi`: `make train-dist`); --batch-size is the global batch
    #[arg(long)]
    distributed: bool,
    /// With several ranks: batch norm's training statistics over the global batch (every
    /// rank's), as PyTorch's SyncBatchNorm, instead of each rank's own shard
    #[arg(long)]
    sync_bn: bool,
}

/// The model named `args.model`, its CIFAR variant with 10 classes.
fn build_model(args: &Args, device: &Device) -> Result<(Box<dyn Module>, ParamStore)> {
    if args.model == "mobilenet_v2" {
        let config = MobileNetV2Config {
            width_mult: args.width_mult,
            ..MobileNetV2Config::cifar10()
        };
        let (model, store) = nn::build(device, args.seed, |s| MobileNetV2::new(s, config))?;
        return Ok((Box::new(model), store));
    }
    if args.width_mult != 1.0 {
        return Err(Error::InvalidArgument(format!(
            "--width-mult is MobileNetV2's; {} has none",
            args.model
        )));
    }
    let entry = zoo::find(&args.model)?;
    let options = ZooOptions {
        cifar: true,
        // Inception v3's auxiliary head pools 5×5 windows of a 17×17 grid, which a
        // 32×32 image never reaches.
        aux_logits: entry.name != "inception_v3",
        ..ZooOptions::new(10)
    };
    nn::build(device, args.seed, |s| entry.build(s, &options))
}

/// The data directory; when neither `--data` nor `$CIFAR10_DIR` names one and none is
/// found, the official release is downloaded into `data/` (checked, then unpacked).
fn find_or_download(args: &Args) -> Result<PathBuf> {
    match cifar10::locate(args.data.as_deref()) {
        Ok(dir) => Ok(dir),
        Err(missing) if args.data.is_none() && std::env::var_os("CIFAR10_DIR").is_none() => {
            println!("{missing}");
            println!("downloading {} into data/ ...", cifar10::DOWNLOAD_URL);
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("{bytes}/{total_bytes} [{bar:30}] {bytes_per_sec}")
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            let dir = download_cifar10(Path::new("data"), |done, total| {
                if let Some(total) = total {
                    bar.set_length(total);
                }
                bar.set_position(done);
            })?;
            bar.finish_and_clear();
            println!("CIFAR-10 checked (MD5) and unpacked into {}", dir.display());
            Ok(dir)
        }
        Err(e) => Err(e),
    }
}

/// A progress bar of `len` steps, hidden unless `shown` (rank 0 of a data-parallel run)
/// or when stderr is not a terminal (logs get a plain line every 10% instead).
fn progress_bar(shown: bool, len: usize, prefix: String) -> ProgressBar {
    let bar = if shown {
        ProgressBar::new(len as u64)
    } else {
        ProgressBar::hidden()
    };
    // Fits 80 columns; the message carries the rates and, once known, the ETA.
    bar.set_style(
        ProgressStyle::with_template("{prefix:>11} [{bar:16}] {pos}/{len} {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(prefix);
    bar
}

/// "eta 4m10s" from `done` of `total` steps in `elapsed`; empty before the first step.
fn eta(done: usize, total: usize, elapsed: std::time::Duration) -> String {
    if done == 0 {
        return String::new();
    }
    let left = (total.saturating_sub(done)) as f64 * elapsed.as_secs_f64() / done as f64;
    let secs = left.round() as u64;
    match secs {
        s if s >= 3600 => format!("eta {}h{:02}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("eta {}m{:02}s", s / 60, s % 60),
        s => format!("eta {s}s"),
    }
}

/// The run: on one device, on `--local-devices` ranks in this process, or as one rank of
/// an MPI job (`--distributed`). Rank 0's test accuracy; `None` on the other ranks.
fn run(args: Args) -> Result<Option<f64>> {
    let ranks = args.local_devices as usize;
    if args.distributed {
        if ranks > 1 {
            return Err(Error::InvalidArgument(
                "--distributed (ranks from mpirun) and --local-devices (ranks as threads) \
                 do not go together"
                    .into(),
            ));
        }
        return run_mpi(args);
    }
    if ranks == 1 {
        if args.sync_bn {
            return Err(Error::InvalidArgument(
                "--sync-bn needs several ranks: --local-devices N or --distributed".into(),
            ));
        }
        return run_rank(args, None);
    }
    if !(args.batch_size as usize).is_multiple_of(ranks) {
        return Err(Error::InvalidArgument(format!(
            "--batch-size {} does not divide among --local-devices {ranks}",
            args.batch_size
        )));
    }
    // Found (or downloaded) once, not by every rank at the same time.
    let mut args = args;
    args.data = Some(find_or_download(&args)?);
    let timeout = std::time::Duration::from_secs(args.dist_timeout);
    let mut comms = local_group(ranks, timeout)?.into_iter();
    let lead = comms.next().expect("rank 0");
    let others: Vec<_> = comms
        .map(|comm| {
            let args = args.clone();
            std::thread::spawn(move || run_rank(args, Some(Box::new(comm))))
        })
        .collect();
    let result = run_rank(args, Some(Box::new(lead)));
    // Rank 0's own error first; else the first other rank's.
    let mut first_err = result.as_ref().err().cloned();
    for (i, t) in others.into_iter().enumerate() {
        let outcome = t
            .join()
            .unwrap_or_else(|_| Err(Error::Distributed(format!("rank {} panicked", i + 1))));
        if let (None, Err(e)) = (&first_err, outcome) {
            first_err = Some(e);
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => result,
    }
}

/// This rank's number among the ranks on its machine: Open MPI's (or MPICH's) local rank
/// for an MPI job, else the rank itself (threads of this process).
fn local_rank(rank: usize) -> usize {
    ["OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID"]
        .iter()
        .find_map(|key| std::env::var(key).ok()?.parse().ok())
        .unwrap_or(rank)
}

/// This process as one rank of the MPI job `mpirun` started. A rank that fails ends the
/// whole job (MPI_Abort, status 1) after printing why: returning would leave the other
/// ranks waiting in their next collective.
#[cfg(feature = "mpi")]
fn run_mpi(args: Args) -> Result<Option<f64>> {
    let mpi = liandan::dist::MpiRuntime::init()?;
    let comm = mpi.world();
    let rank = comm.rank();
    let result = if !(args.batch_size as usize).is_multiple_of(comm.size()) {
        Err(Error::InvalidArgument(format!(
            "--batch-size {} does not divide among the job's {} ranks",
            args.batch_size,
            comm.size()
        )))
    } else {
        run_rank(args, Some(Box::new(comm)))
    };
    if let Err(e) = &result {
        eprintln!("train_cifar: rank {rank}: {e}");
        mpi.abort(1);
    }
    result
}

#[cfg(not(feature = "mpi"))]
fn run_mpi(_: Args) -> Result<Option<f64>> {
    Err(Error::InvalidArgument(
        "--distributed needs a build with MPI: cargo build --release --features mpi \
         --example train_cifar, then mpirun -np N target/release/examples/train_cifar \
         --distributed (make train-dist does both)"
            .into(),
    ))
}

/// One rank's run (the whole run without `comm`): rank 0 alone prints, shows progress,
/// and writes metrics, plots and checkpoints. Rank 0's test accuracy, `None` elsewhere.
fn run_rank(args: Args, comm: Option<Box<dyn Communicator>>) -> Result<Option<f64>> {
    let (rank, ranks) = comm.as_ref().map_or((0, 1), |c| (c.rank(), c.size()));
    let lead = rank == 0;
    macro_rules! say {
        ($($arg:tt)*) => { if lead { println!($($arg)*); } };
    }
    let dir = find_or_download(&args)?;
    let mut train_set = Cifar10::load_train(&dir)?;
    let mut test_set = Cifar10::load_test(&dir)?;
    if let Some(n) = args.limit_train {
        train_set = train_set.limit(n);
    }
    if let Some(n) = args.limit_test {
        test_set = test_set.limit(n);
    }
    // Ranks on one machine each take their own adapter where it has several.
    let device = DeviceBuilder::from_env()?
        .local_rank(local_rank(rank))
        .build()?;
    let s = device.summary().clone();
    say!("adapter: {} ({}, {})", s.name, s.backend, s.device_type);
    say!(
        "data: {} ({} train, {} test images)",
        dir.display(),
        train_set.len(),
        test_set.len()
    );
    if ranks > 1 {
        say!(
            "data-parallel over {ranks} ranks (a device each), {} images per rank \
             and step",
            args.batch_size as usize / ranks
        );
    }
    let batch_size = args.batch_size as usize;
    let train = Loader::new(
        Arc::new(train_set),
        batch_size / ranks,
        true,
        Some(Augment::standard()),
        args.seed,
        true,
    )?
    .sharded(rank, ranks)?;
    let test = Loader::new(
        Arc::new(test_set),
        batch_size / ranks,
        false,
        None,
        args.seed,
        false,
    )?
    .sharded_exact(rank, ranks)?;
    let steps_per_epoch = train.batches_per_epoch();

    let tta = Tta::parse(&args.tta)?;
    let (model, store) = build_model(&args, &device)?;
    say!(
        "model: {} (CIFAR strides), {} parameters",
        args.model,
        store.num_parameters()
    );
    let sgd = Sgd::new(SgdConfig {
        momentum: args.momentum,
        weight_decay: args.weight_decay,
        ..SgdConfig::default()
    })?;
    let schedule_epochs = args.schedule_epochs.unwrap_or(args.epochs);
    let train_config = TrainConfig {
        lr: args.lr,
        schedule: args.schedule.clone(),
        schedule_steps: steps_per_epoch * schedule_epochs,
        label_smoothing: args.label_smoothing,
        seed: args.seed,
    };
    let mut trainer = Trainer::new(model, store, Box::new(sgd), train_config)?;

    let out = args
        .out
        .clone()
        .unwrap_or_else(|| Path::new("runs").join(&args.model));
    if lead {
        std::fs::create_dir_all(&out)
            .map_err(|e| Error::InvalidArgument(format!("creating {}: {e}", out.display())))?;
    }
    let checkpoint = args
        .checkpoint
        .clone()
        .unwrap_or_else(|| out.join("checkpoint.safetensors"));
    // Which model this is, so `zoo::load` rebuilds it from the checkpoint.
    let cifar10 = ZooOptions {
        cifar: true,
        ..ZooOptions::new(10)
    };
    let run_meta = zoo::model_meta(zoo::find(&args.model)?, &cifar10);
    let mut metrics = MetricsLog::new();
    if let Some(path) = &args.resume {
        let saved = trainer.resume(path)?;
        if let Some(model) = saved.get("model").filter(|m| **m != args.model) {
            return Err(Error::InvalidArgument(format!(
                "{} holds a {model} run; this run trains {} (give --model {model})",
                path.display(),
                args.model
            )));
        }
        if lead {
            metrics = MetricsLog::resume(&out, trainer.epoch())?;
        }
        say!(
            "resumed from {} after epoch {} (step {})",
            path.display(),
            trainer.epoch(),
            trainer.step()
        );
        let now = [
            ("lr", args.lr.to_string()),
            ("schedule", args.schedule.clone()),
            (
                "schedule_steps",
                trainer.config().schedule_steps.to_string(),
            ),
            ("seed", args.seed.to_string()),
        ];
        for (key, value) in now {
            if let Some(then) = saved.get(key).filter(|then| **then != value) {
                say!(
                    "note: {key} was {then} in the saved run and is {value} now, so this run \
                     does not continue it exactly"
                );
            }
        }
    }

    // After a resume, which every rank makes from the same checkpoint (a shared file
    // system, or a copy on every machine): `distribute` checks they are at the same step
    // and gives them rank 0's parameters.
    if let Some(comm) = comm {
        trainer.distribute(comm, GradientBuckets::default())?;
        if args.sync_bn {
            trainer.sync_batch_norm()?;
        }
    }
    let plain_progress = lead && !std::io::stderr().is_terminal();
    let mut test_accuracy = metrics.rows().last().map_or(0.0, |r| r.test.1);
    let first_step_allocations = device.pool_stats().allocations;
    while trainer.epoch() < args.epochs {
        let epoch = trainer.epoch() + 1;
        let bar = progress_bar(
            lead,
            steps_per_epoch,
            format!("train {epoch}/{}", args.epochs),
        );
        let start = Instant::now();
        let mut loop_start = None;
        let mut last_lr = args.lr;
        let tally = trainer.train_epoch(&train, |r| {
            last_lr = r.lr;
            if loop_start.is_none() {
                loop_start = Some(device.pool_stats().allocations);
                if s.is_software && epoch == 1 {
                    let rate = (r.tally.seen() * ranks) as f64 / start.elapsed().as_secs_f64();
                    bar.println(format!(
                        "note: {} is a software adapter; the first step ran at {rate:.1} \
                         images/s (pipelines compiling), so an epoch takes roughly {:.0} s or \
                         less",
                        s.name,
                        (steps_per_epoch * batch_size) as f64 / rate
                    ));
                }
            }
            let rate = (r.tally.seen() * ranks) as f64 / start.elapsed().as_secs_f64();
            let message = format!(
                "loss {:.3} acc {:.3} {rate:.1} im/s {}",
                r.tally.mean_loss(),
                r.tally.accuracy(),
                eta(r.batch, steps_per_epoch, start.elapsed())
            );
            bar.inc(1);
            if plain_progress
                && (r.batch.is_multiple_of((steps_per_epoch / 10).max(1))
                    || r.batch == steps_per_epoch)
            {
                // Not a terminal (a log, CI): the bar is hidden, so print a line each 10%.
                println!(
                    "epoch {epoch}/{} step {}/{steps_per_epoch} {message}",
                    args.epochs, r.batch
                );
            }
            bar.set_message(message);
        })?;
        bar.finish();
        let step_allocations =
            device.pool_stats().allocations - loop_start.unwrap_or(first_step_allocations);
        let train_rate = tally.seen() as f64 / start.elapsed().as_secs_f64();
        let eval_start = Instant::now();
        let eval_bar = progress_bar(
            lead,
            test.batches_per_epoch(),
            format!("test {epoch}/{}", args.epochs),
        );
        let test_tally = trainer.evaluate(&test, |t| {
            eval_bar.inc(1);
            let done = eval_bar.position() as usize;
            let rate = t.seen() as f64 / eval_start.elapsed().as_secs_f64();
            let left = eta(done, test.batches_per_epoch(), eval_start.elapsed());
            eval_bar.set_message(format!("acc {:.3} {rate:.1} im/s {left}", t.accuracy()));
        })?;
        eval_bar.finish_and_clear();
        let eval_rate = test_tally.seen() as f64 / eval_start.elapsed().as_secs_f64();
        test_accuracy = test_tally.accuracy();
        if tta != Tta::None {
            let tta_tally = trainer.evaluate_tta(&test, tta, |_| {})?;
            say!(
                "epoch {epoch}: test acc {:.4} with {} test-time augmentation, {test_accuracy:.4} without",
                tta_tally.accuracy(),
                args.tta
            );
        }
        say!(
            "epoch {epoch}: train loss {:.4} acc {:.4} | test loss {:.4} acc {:.4} | \
             {train_rate:.1} img/s train, {eval_rate:.1} img/s eval",
            tally.mean_loss(),
            tally.accuracy(),
            test_tally.mean_loss(),
            test_accuracy,
        );
        if args.verbose {
            say!("  buffers the training steps allocated after step 1: {step_allocations}");
            if ranks > 1 {
                say!(
                    "  averaging gradients so far: {:.1} s on rank 0",
                    trainer.gradient_sync_seconds()
                );
            }
        }
        metrics.push(EpochRow {
            epoch,
            lr: last_lr,
            train: (tally.mean_loss(), tally.accuracy()),
            test: (test_tally.mean_loss(), test_accuracy),
            train_images_per_s: train_rate,
            eval_images_per_s: eval_rate,
        });
        if lead {
            metrics.write(&out)?;
            trainer.save(&checkpoint, &run_meta)?;
        }
    }
    Ok(lead.then_some(test_accuracy))
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(accuracy) => {
            if let Some(accuracy) = accuracy {
                println!("test_accuracy={accuracy:.4}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("train_cifar: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use liandan::data::cifar10::{RECORD_BYTES, TEST_FILE, TRAIN_FILES};
    use liandan::io::checkpoint::load_checkpoint;
    use std::collections::BTreeMap;

    /// A directory of synthetic CIFAR-10 files (random pixels, labels in turn), removed on
    /// drop.
    struct SyntheticData(PathBuf);

    impl SyntheticData {
        fn new(records_per_file: usize) -> SyntheticData {
            let dir = std::env::temp_dir().join(format!("liandan-resume-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let mut rng = liandan::Rng::new(5);
            for (f, name) in TRAIN_FILES.iter().chain([&TEST_FILE]).enumerate() {
                let mut bytes = Vec::with_capacity(records_per_file * RECORD_BYTES);
                for r in 0..records_per_file {
                    bytes.push(((f + r) % 10) as u8);
                    bytes.extend((1..RECORD_BYTES).map(|_| rng.below(256) as u8));
                }
                std::fs::write(dir.join(name), bytes).unwrap();
            }
            SyntheticData(dir)
        }
    }

    impl Drop for SyntheticData {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn args(data: &Path, out: &Path, extra: &[&str]) -> Args {
        let mut argv = vec![
            "train_cifar".to_string(),
            "--data".into(),
            data.display().to_string(),
            "--out".into(),
            out.display().to_string(),
            "--batch-size".into(),
            "4".into(),
            "--width-mult".into(),
            "0.25".into(),
            "--limit-train".into(),
            "8".into(),
            "--limit-test".into(),
            "4".into(),
        ];
        argv.extend(extra.iter().map(|s| s.to_string()));
        Args::try_parse_from(argv).unwrap()
    }

    /// Every tensor (model and optimizer) of a checkpoint, bit for bit, and its run
    /// entries.
    fn contents(
        path: &Path,
    ) -> (
        Vec<(String, Vec<usize>, Vec<u32>)>,
        BTreeMap<String, String>,
    ) {
        let ckpt = load_checkpoint(path).unwrap();
        let bits = ckpt
            .tensors
            .iter()
            .chain(&ckpt.optimizer_tensors)
            .map(|(n, s, v)| {
                (
                    n.clone(),
                    s.clone(),
                    v.iter().map(|x| x.to_bits()).collect(),
                )
            })
            .collect();
        (bits, ckpt.meta)
    }

    /// Training one epoch, then resuming for a second, gives the checkpoint two straight
    /// epochs give, bit for bit; `metrics.csv` keeps the first epoch's row. Also with two
    /// data-parallel ranks.
    #[test]
    fn a_resumed_run_equals_the_uninterrupted_one() {
        let data = SyntheticData::new(4);
        let (straight, split) = (data.0.join("straight"), data.0.join("split"));
        // The literal sequence (constant learning rate), and a cosine schedule spanning
        // the whole run while the first part stops after one epoch; on 2 ranks too.
        for schedule in [
            &["--schedule", "constant"][..],
            &["--schedule-epochs", "2"],
            &["--schedule-epochs", "2", "--local-devices", "2"],
        ] {
            let with = |epochs: &str, more: &[&str]| {
                let mut flags = vec!["--epochs", epochs];
                flags.extend(schedule);
                flags.extend(more);
                flags.iter().map(|s| s.to_string()).collect::<Vec<_>>()
            };
            let flags = with("2", &[]);
            let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
            run(args(&data.0, &straight, &flags)).unwrap();
            let flags = with("1", &[]);
            let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
            run(args(&data.0, &split, &flags)).unwrap();
            let ckpt = split.join("checkpoint.safetensors").display().to_string();
            let flags = with("2", &["--resume", &ckpt]);
            let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
            run(args(&data.0, &split, &flags)).unwrap();
            let (a, b) = (
                contents(&straight.join("checkpoint.safetensors")),
                contents(&split.join("checkpoint.safetensors")),
            );
            assert_eq!(a.1, b.1, "{schedule:?}: run entries");
            assert_eq!(a.0.len(), b.0.len());
            for (x, y) in a.0.iter().zip(&b.0) {
                assert!(x == y, "{schedule:?}: {} differs after resuming", x.0);
            }
            let rows = |dir: &Path| {
                let log = MetricsLog::resume(dir, usize::MAX).unwrap();
                log.rows()
                    .iter()
                    .map(|r| (r.epoch, r.lr, r.train, r.test))
                    .collect::<Vec<_>>()
            };
            assert_eq!(rows(&straight), rows(&split), "{schedule:?}: metrics.csv");
            assert_eq!(rows(&split).len(), 2);
        }
    }
}
