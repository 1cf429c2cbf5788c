//! Checks the MPI communicator under `mpirun` (`make test-dist` runs it on 2 and 3
//! ranks): all-reduce (sum and mean), broadcast and barrier against the values every
//! rank can work out, bitwise equal on every rank; data-parallel SGD steps of a small
//! network without batch norm (each rank a share of the batch) against the whole batch
//! on one rank, with the ranks' parameters bitwise equal after every step; and with
//! `--fail-rank R` that rank exits mid-run, with `--kill-rank R` is killed (SIGKILL), or
//! with `--error-rank R` meets an error and aborts the job, so the job must end with an
//! error rather than hang. With `--checkpoint PATH` rank 0 saves a checkpoint at every
//! step of the run-up to the failure, and `dist_check --verify-checkpoint PATH` (no
//! mpirun) then checks that the file the failure left is a whole checkpoint of one of
//! those steps.
//!
//! ```text
//! cargo build --release --features mpi --example dist_check
//! mpirun -np 3 target/release/examples/dist_check
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use liandan::autograd::Tape;
use liandan::dist::{Communicator, GradientBuckets, MpiComm, MpiRuntime, broadcast_store};
use liandan::io::checkpoint::{load_checkpoint, save_checkpoint};
use liandan::nn::ParamStore;
use liandan::ops::conv::Conv2dParams;
use liandan::optim::{Optimizer, Sgd, SgdConfig};
use liandan::{Device, Error, Result, Rng, Tensor};

/// Images per step, all ranks together (a multiple of 2 and 3).
const BATCH: usize = 12;
const STEPS: usize = 3;

/// A small network without batch norm: conv 3→4 (3×3, padding 1), ReLU, global average
/// pool, linear 4→3; its parameters drawn from `seed`.
fn store(device: &Device, seed: u64) -> Result<ParamStore> {
    let mut rng = Rng::new(seed);
    let mut store = ParamStore::new();
    for (name, shape) in [
        ("conv.weight", vec![4, 3, 3, 3]),
        ("conv.bias", vec![4]),
        ("fc.weight", vec![3, 4]),
        ("fc.bias", vec![3]),
    ] {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n).map(|_| rng.uniform_in(-0.5, 0.5) as f32).collect();
        store.insert_param(name, Tensor::from_slice(device, &values, &shape)?)?;
    }
    Ok(store)
}

/// Gradients of the mean cross-entropy over images `range` of a step's batch.
fn gradients(
    device: &Device,
    store: &ParamStore,
    (images, labels): &(Vec<f32>, Vec<usize>),
    range: std::ops::Range<usize>,
) -> Result<HashMap<String, Tensor>> {
    let n = range.len();
    let pixels = &images[range.start * 108..range.end * 108];
    let tape = Tape::new();
    let x = tape.input(Tensor::from_slice(device, pixels, &[n, 3, 6, 6])?);
    let p = |name: &str| -> Result<_> { Ok(tape.param(name, store.get(name)?.clone())) };
    let conv = Conv2dParams::square(1, 1, 1, 1);
    let y = tape.conv2d(&x, &p("conv.weight")?, Some(&p("conv.bias")?), &conv)?;
    let y = tape.reshape(&tape.global_avg_pool(&tape.relu(&y)?)?, &[n, 4])?;
    let logits = tape.linear(&y, &p("fc.weight")?, Some(&p("fc.bias")?))?;
    let loss = tape.cross_entropy(&logits, &labels[range], 0.0)?;
    tape.backward(&loss)?.by_name()
}

fn flat(store: &ParamStore) -> Result<Vec<f32>> {
    let mut v = Vec::new();
    for (_, t) in store.params() {
        v.extend(t.to_vec()?);
    }
    Ok(v)
}

/// STEPS of SGD with momentum: data-parallel over the job's ranks, and (on every rank,
/// for comparison) on the whole batch alone.
fn training(comm: &mut MpiComm) -> Result<()> {
    let (rank, size) = (comm.rank(), comm.size());
    let device = Device::new()?;
    let mut rng = Rng::new(97);
    let data: Vec<(Vec<f32>, Vec<usize>)> = (0..STEPS)
        .map(|_| {
            let images = (0..BATCH * 108)
                .map(|_| rng.uniform_in(-1.0, 1.0) as f32)
                .collect();
            (images, (0..BATCH).map(|_| rng.below(3) as usize).collect())
        })
        .collect();
    let sgd = || {
        Sgd::new(SgdConfig {
            momentum: 0.9,
            ..SgdConfig::default()
        })
    };
    // Every rank starts from its own draw; rank 0's is broadcast.
    let mut shared = store(&device, 1 + rank as u64)?;
    broadcast_store(comm, &mut shared)?;
    let mut opt = sgd()?;
    let share = BATCH / size;
    for (step, batch) in data.iter().enumerate() {
        let mut grads = gradients(&device, &shared, batch, rank * share..(rank + 1) * share)?;
        GradientBuckets::default().average(comm, &mut grads)?;
        opt.step(&mut shared, &grads, 0.1)?;
        let mine = flat(&shared)?;
        let mut rank0 = mine.clone();
        comm.broadcast(&mut rank0, 0)?;
        check(
            &format!("step {step}: parameters bitwise equal to rank 0's"),
            mine.iter()
                .zip(&rank0)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
        )?;
    }
    let mut alone = store(&device, 1)?;
    let mut opt = sgd()?;
    for batch in &data {
        let grads = gradients(&device, &alone, batch, 0..BATCH)?;
        opt.step(&mut alone, &grads, 0.1)?;
    }
    let (got, want) = (flat(&shared)?, flat(&alone)?);
    let worst = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
        .fold(0.0f32, f32::max);
    check(
        &format!("{size} ranks × {share} images against 1 × {BATCH} (worst {worst:e})"),
        worst < 1e-5,
    )
}

fn check(what: &str, ok: bool) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::Distributed(format!("{what}: wrong result")))
    }
}

/// What goes wrong in the run-up, at its step 50, as the flags ask: a rank exits, is
/// killed (SIGKILL) or meets an error; rank 0 saves checkpoints there.
#[derive(Clone, Copy)]
struct Failures<'a> {
    fail_rank: Option<usize>,
    kill_rank: Option<usize>,
    error_rank: Option<usize>,
    checkpoint: Option<&'a Path>,
}

/// The steps of the run-up at which rank 0 saves a checkpoint (`--checkpoint`).
const SAVED_STEPS: std::ops::Range<usize> = 10..60;

/// Rank 0's checkpoint at `step` of the run-up: `store` (the network's starting
/// parameters), and the step in its entries.
fn save_at(path: &Path, step: usize, store: &ParamStore) -> Result<()> {
    let meta = BTreeMap::from([("step".to_string(), step.to_string())]);
    save_checkpoint(path, store, None, &meta)
}

/// `--verify-checkpoint`: the file at `path` loads, holds the network's starting
/// parameters bit for bit, and was saved at one of [`SAVED_STEPS`].
fn verify_checkpoint(path: &Path) -> Result<()> {
    let device = Device::new()?;
    let ckpt = load_checkpoint(path)?;
    let step: usize = ckpt
        .meta
        .get("step")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::InvalidArgument("checkpoint without a step".into()))?;
    check(
        &format!("checkpoint saved at step {step}"),
        SAVED_STEPS.contains(&step),
    )?;
    let want = store(&device, 1)?;
    check(
        "checkpoint's tensor count",
        ckpt.tensors.len() == want.params().count(),
    )?;
    for (name, t) in want.params() {
        let (_, shape, values) = ckpt
            .tensors
            .iter()
            .find(|(n, _, _)| n == name)
            .ok_or_else(|| Error::InvalidArgument(format!("checkpoint without {name}")))?;
        let same = shape == t.shape()
            && values
                .iter()
                .zip(t.to_vec()?)
                .all(|(a, b)| a.to_bits() == b.to_bits());
        check(&format!("checkpoint's {name}"), same)?;
    }
    println!(
        "dist_check: checkpoint {} intact (step {step})",
        path.display()
    );
    Ok(())
}

fn run() -> Result<()> {
    let arg = |name: &str| -> Option<String> { std::env::args().skip_while(|a| a != name).nth(1) };
    let flag = |name: &str| -> Option<usize> { arg(name).and_then(|v| v.parse().ok()) };
    if let Some(path) = arg("--verify-checkpoint") {
        return verify_checkpoint(Path::new(&path));
    }
    let checkpoint = arg("--checkpoint").map(PathBuf::from);
    let failures = Failures {
        fail_rank: flag("--fail-rank"),
        kill_rank: flag("--kill-rank"),
        error_rank: flag("--error-rank"),
        checkpoint: checkpoint.as_deref(),
    };
    let mpi = MpiRuntime::init()?;
    let mut comm = mpi.world();
    let (rank, size) = (comm.rank(), comm.size());
    if let Err(e) = collectives_and_training(&mut comm, failures) {
        // Returning would leave the other ranks waiting in MPI's finalize.
        eprintln!("dist_check: rank {rank}: {e}");
        mpi.abort(1);
    }
    println!("dist_check: rank {rank} of {size}: all collectives right, training equal");
    Ok(())
}

fn collectives_and_training(comm: &mut MpiComm, failures: Failures) -> Result<()> {
    let Failures {
        fail_rank,
        kill_rank,
        error_rank,
        checkpoint,
    } = failures;
    let (rank, size) = (comm.rank(), comm.size());
    let n = size as f32;
    let ranks_sum = (0..size).sum::<usize>() as f32;

    let mut sum = vec![rank as f32, 1.0, 0.1 * (rank + 1) as f32];
    comm.all_reduce_sum(&mut sum)?;
    check("all_reduce_sum", sum[0] == ranks_sum && sum[1] == n)?;
    let mut mean = vec![2.0 * rank as f32; 5];
    comm.all_reduce_mean(&mut mean)?;
    check(
        "all_reduce_mean",
        mean.iter().all(|&m| (m - 2.0 * ranks_sum / n).abs() < 1e-6),
    )?;
    let mut cast = vec![rank as f32 + 10.0; 4];
    comm.broadcast(&mut cast, size - 1)?;
    check("broadcast", cast == vec![size as f32 + 9.0; 4])?;
    comm.barrier()?;
    // Every rank holds the same bits: rank 0's, compared on every rank.
    let mut bits: Vec<f32> = sum.clone();
    comm.broadcast(&mut bits, 0)?;
    check(
        "bitwise equal sums",
        bits.iter()
            .zip(&sum)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
    )?;
    // What rank 0 saves: the network's starting parameters, made once.
    let mut saved: Option<ParamStore> = None;
    for step in 0..100 {
        if Some(rank) == fail_rank && step == 50 {
            eprintln!("dist_check: rank {rank} exits at step {step} (asked to)");
            std::process::exit(3);
        }
        if Some(rank) == kill_rank && step == 50 {
            eprintln!("dist_check: rank {rank} kills itself (SIGKILL) at step {step} (asked to)");
            // The shell's own `kill` (a builtin everywhere): no kill binary needed.
            let _ = std::process::Command::new("sh")
                .args(["-c", "kill -KILL $PPID"])
                .status();
            std::thread::sleep(std::time::Duration::from_secs(60));
            return Err(Error::Distributed(format!(
                "rank {rank} outlived its SIGKILL"
            )));
        }
        if Some(rank) == error_rank && step == 50 {
            return Err(Error::Distributed(format!(
                "rank {rank} fails at step {step} (asked to)"
            )));
        }
        if let Some(path) = checkpoint.filter(|_| rank == 0 && SAVED_STEPS.contains(&step)) {
            save_at(path, step, saved.get_or_insert(store(&Device::new()?, 1)?))?;
        }
        let mut v = [(rank * step) as f32];
        comm.all_reduce_sum(&mut v)?;
        check("repeated all_reduce_sum", v[0] == (step as f32) * ranks_sum)?;
    }
    training(comm)
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dist_check: {e}");
            ExitCode::FAILURE
        }
    }
}
