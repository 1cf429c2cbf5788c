//! Data-parallel training over a local group of ranks (threads sharing the test device):
//! 2 ranks × half a batch step for step like 1 rank × the whole batch, parameters
//! bitwise equal across the ranks after every step, and rank 0's start broadcast.

use std::collections::HashMap;
use std::time::Duration;

use liandan::autograd::{BatchStats, RunningStats, Tape};
use liandan::dist::{Communicator, GradientBuckets, SharedComm, broadcast_store, local_group};
use liandan::models::{MobileNetV2, MobileNetV2Config};
use liandan::nn::{self, Ctx, Module, ParamStore};
use liandan::ops::conv::Conv2dParams;
use liandan::ops::norm::BnAct;
use liandan::optim::{Optimizer, Sgd, SgdConfig};
use liandan::{Result, Rng, Tensor};

use crate::common::*;

const BATCH: usize = 8;
const STEPS: usize = 3;

/// A small convolutional net without batch norm: conv 3→4 (3×3, padding 1), ReLU,
/// global average pool, linear 4→3. Its parameters drawn from `seed`.
fn store(seed: u64) -> ParamStore {
    params(
        seed,
        [
            ("conv.weight", vec![4, 3, 3, 3], -0.5),
            ("conv.bias", vec![4], -0.5),
            ("fc.weight", vec![3, 4], -0.5),
            ("fc.bias", vec![3], -0.5),
        ],
    )
}

/// Parameters `(name, shape, lo)` drawn from `seed`, uniform in `[lo, lo + 1)`.
fn params<const N: usize>(seed: u64, specs: [(&str, Vec<usize>, f64); N]) -> ParamStore {
    let mut rng = Rng::new(seed);
    let mut store = ParamStore::new();
    for (name, shape, lo) in specs {
        let (t, _) = random_tensor(&mut rng, &shape, lo, lo + 1.0);
        store.insert_param(name, t).unwrap();
    }
    store
}

/// The whole run's data: per step, BATCH images of `pixels` values and their labels,
/// drawn from `seed`; `shift` changes the images of the batch's second half.
fn batches(seed: u64, pixels: usize, shift: impl Fn(f32) -> f32) -> Vec<(Vec<f32>, Vec<usize>)> {
    let mut rng = Rng::new(seed);
    (0..STEPS)
        .map(|_| {
            let mut images = random_values(&mut rng, BATCH * pixels, -1.0, 1.0);
            images[BATCH / 2 * pixels..]
                .iter_mut()
                .for_each(|v| *v = shift(*v));
            let labels = (0..BATCH).map(|_| rng.below(3) as usize).collect();
            (images, labels)
        })
        .collect()
}

/// Per step, BATCH images of 3×6×6 and their labels.
fn data() -> Vec<(Vec<f32>, Vec<usize>)> {
    batches(97, 3 * 36, |v| v)
}

/// The gradients of the mean cross-entropy over `images[range]`.
fn gradients(
    store: &ParamStore,
    (images, labels): &(Vec<f32>, Vec<usize>),
    range: std::ops::Range<usize>,
) -> Result<HashMap<String, Tensor>> {
    let n = range.len();
    let pixels = &images[range.start * 108..range.end * 108];
    let tape = Tape::new();
    let x = tape.input(Tensor::from_slice(device(), pixels, &[n, 3, 6, 6])?);
    let p = |name: &str| tape.param(name, store.get(name).unwrap().clone());
    let conv = Conv2dParams::square(1, 1, 1, 1);
    let y = tape.conv2d(&x, &p("conv.weight"), Some(&p("conv.bias")), &conv)?;
    let y = tape.relu(&y)?;
    let y = tape.global_avg_pool(&y)?;
    let y = tape.reshape(&y, &[n, 4])?;
    let logits = tape.linear(&y, &p("fc.weight"), Some(&p("fc.bias")))?;
    let loss = tape.cross_entropy(&logits, &labels[range], 0.0)?;
    tape.backward(&loss)?.by_name()
}

fn sgd() -> Sgd {
    Sgd::new(SgdConfig {
        momentum: 0.9,
        ..SgdConfig::default()
    })
    .unwrap()
}

fn values(store: &ParamStore) -> Vec<Vec<f32>> {
    store.params().map(|(_, t)| t.to_vec().unwrap()).collect()
}

#[test]
fn two_ranks_with_half_batches_step_like_one_rank_with_the_whole() {
    let data = data();
    // One rank, the whole batch.
    let mut single = store(1);
    let mut opt = sgd();
    for batch in &data {
        let grads = gradients(&single, batch, 0..BATCH).unwrap();
        opt.step(&mut single, &grads, 0.1).unwrap();
    }
    let want = values(&single);

    // Two ranks, half the batch each; rank 1 starts from other parameters, which rank
    // 0's broadcast replaces.
    let comms = local_group(2, Duration::from_secs(120)).unwrap();
    let data = std::sync::Arc::new(data);
    let threads: Vec<_> = comms
        .into_iter()
        .map(|mut comm| {
            let data = data.clone();
            std::thread::spawn(move || -> Result<Vec<Vec<f32>>> {
                let rank = comm.rank();
                let mut store = store(1 + rank as u64);
                broadcast_store(&mut comm, &mut store)?;
                let mut opt = sgd();
                let half = BATCH / 2;
                let mut after_each = Vec::new();
                for batch in data.iter() {
                    let mut grads = gradients(&store, batch, rank * half..(rank + 1) * half)?;
                    // Small buckets: the conv bias, the conv weight alone, the fc pair.
                    let buckets = GradientBuckets { bucket_floats: 50 };
                    assert_eq!(buckets.average(&mut comm, &mut grads)?, 3);
                    opt.step(&mut store, &grads, 0.1)?;
                    after_each.push(values(&store).concat());
                }
                Ok(after_each)
            })
        })
        .collect();
    let ranks: Vec<Vec<Vec<f32>>> = threads
        .into_iter()
        .map(|t| t.join().unwrap().unwrap())
        .collect();
    let bits = |v: &[f32]| -> Vec<u32> { v.iter().map(|x| x.to_bits()).collect() };
    for (step, (a, b)) in ranks[0].iter().zip(&ranks[1]).enumerate() {
        assert_eq!(
            bits(a),
            bits(b),
            "step {step}: the ranks' parameters differ"
        );
    }
    assert_eq!(ranks[0].len(), STEPS);
    // The same up to float reassociation (a mean of two means of 4 against one of 8).
    let want: Vec<f64> = want.concat().iter().map(|&v| f64::from(v)).collect();
    let scale = vec![1.0; want.len()];
    let got = &ranks[0][STEPS - 1];
    assert_close_scaled("2 ranks × 4 against 1 × 8", got, &want, &scale, 1e-5);
}

#[test]
fn a_rank_gone_mid_run_fails_the_other_naming_it() {
    let comms = local_group(2, Duration::from_secs(120)).unwrap();
    let threads: Vec<_> = comms
        .into_iter()
        .map(|mut comm| {
            std::thread::spawn(move || -> Result<()> {
                let mut store = store(1);
                let mut grads = gradients(&store, &data()[0], 0..4)?;
                GradientBuckets::default().average(&mut comm, &mut grads)?;
                if comm.rank() == 1 {
                    panic!("rank 1 dies mid-run (this panic is the test's)");
                }
                broadcast_store(&mut comm, &mut store)
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join()).collect();
    assert!(results[1].is_err(), "rank 1 panicked");
    match &results[0] {
        Ok(Err(liandan::Error::Distributed(why))) => {
            assert!(why.contains("rank 1") && why.contains("panicked"), "{why}")
        }
        other => panic!("rank 0: {other:?}"),
    }
}

/// Sync batch norm's net: a pointwise convolution 3→4 (no bias; on 8×8 images, so on
/// lavapipe it writes its moments on the way), batch norm and ReLU, global average pool,
/// linear 4→3.
fn bn_store(seed: u64) -> ParamStore {
    params(
        seed,
        [
            ("conv.weight", vec![4, 3, 1, 1], -0.5),
            ("bn.weight", vec![4], 0.5),
            ("bn.bias", vec![4], -0.5),
            ("fc.weight", vec![3, 4], -0.5),
            ("fc.bias", vec![3], -0.5),
        ],
    )
}

/// Per step, BATCH images of 3×8×8, each half of the batch with its own offset so that
/// the halves' statistics differ, and their labels.
fn bn_data() -> Vec<(Vec<f32>, Vec<usize>)> {
    batches(98, 192, |v| v * 3.0 + 2.0)
}

/// The gradients of the mean cross-entropy over `images[range]` through the BN net,
/// batch norm's statistics over `sync`'s ranks when given; `running` (mean, var) updated.
fn bn_gradients(
    store: &ParamStore,
    running: &mut (Tensor, Tensor),
    (images, labels): &(Vec<f32>, Vec<usize>),
    range: std::ops::Range<usize>,
    sync: Option<&SharedComm>,
) -> Result<HashMap<String, Tensor>> {
    let n = range.len();
    let pixels = &images[range.start * 192..range.end * 192];
    let tape = Tape::new();
    let x = tape.input(Tensor::from_slice(device(), pixels, &[n, 3, 8, 8])?);
    let p = |name: &str| tape.param(name, store.get(name).unwrap().clone());
    let (y, moments) = tape.conv2d_with_moments(&x, &p("conv.weight"), &Conv2dParams::default())?;
    let stats = BatchStats {
        moments: moments.as_ref(),
        sync,
    };
    let stored = RunningStats {
        mean: &running.0,
        var: &running.1,
    };
    let affine = (Some(&p("bn.weight")), Some(&p("bn.bias")));
    let (y, mean, var) =
        tape.batch_norm_act_train_from(&y, stats, affine, stored, (0.1, 1e-5), BnAct::Relu)?;
    *running = (mean, var);
    let y = tape.global_avg_pool(&y)?;
    let y = tape.reshape(&y, &[n, 4])?;
    let logits = tape.linear(&y, &p("fc.weight"), Some(&p("fc.bias")))?;
    let loss = tape.cross_entropy(&logits, &labels[range], 0.0)?;
    tape.backward(&loss)?.by_name()
}

/// STEPS steps of the BN net on 2 ranks × half the batch, batch norm synchronized or
/// not: each rank's parameters then running statistics after every step.
fn two_bn_ranks(sync_bn: bool) -> Vec<Vec<Vec<f32>>> {
    let data = std::sync::Arc::new(bn_data());
    let comms = local_group(2, Duration::from_secs(120)).unwrap();
    let threads: Vec<_> = comms
        .into_iter()
        .map(|mut comm| {
            let data = data.clone();
            std::thread::spawn(move || -> Result<Vec<Vec<f32>>> {
                let rank = comm.rank();
                let mut store = bn_store(1 + rank as u64);
                broadcast_store(&mut comm, &mut store)?;
                let shared = SharedComm::new(Box::new(comm));
                let mut running = (
                    Tensor::zeros(device(), &[4])?,
                    Tensor::ones(device(), &[4])?,
                );
                let mut opt = sgd();
                let half = BATCH / 2;
                let mut after_each = Vec::new();
                for batch in data.iter() {
                    let range = rank * half..(rank + 1) * half;
                    let sync = sync_bn.then_some(&shared);
                    let mut grads = bn_gradients(&store, &mut running, batch, range, sync)?;
                    GradientBuckets::default().average(&mut **shared.lock(), &mut grads)?;
                    opt.step(&mut store, &grads, 0.1)?;
                    let mut now = values(&store).concat();
                    now.extend(running.0.to_vec()?);
                    now.extend(running.1.to_vec()?);
                    after_each.push(now);
                }
                Ok(after_each)
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().unwrap().unwrap())
        .collect()
}

/// Sync batch norm: 2 ranks × half the batch step like 1 rank × the whole batch, batch
/// norm included (the halves' statistics differ: the second half is shifted and
/// scaled), parameters and running statistics bitwise equal across the ranks after every
/// step; without sync each rank normalizes its half with its own statistics, which this
/// data tells apart.
#[test]
fn two_ranks_with_sync_batch_norm_step_like_one_rank_with_the_whole() {
    let data = bn_data();
    let mut single = bn_store(1);
    let mut running = (
        Tensor::zeros(device(), &[4]).unwrap(),
        Tensor::ones(device(), &[4]).unwrap(),
    );
    let mut opt = sgd();
    for batch in &data {
        let grads = bn_gradients(&single, &mut running, batch, 0..BATCH, None).unwrap();
        opt.step(&mut single, &grads, 0.1).unwrap();
    }
    let mut want = values(&single).concat();
    want.extend(running.0.to_vec().unwrap());
    want.extend(running.1.to_vec().unwrap());
    let want: Vec<f64> = want.iter().map(|&v| f64::from(v)).collect();
    let scale = vec![1.0; want.len()];

    let ranks = two_bn_ranks(true);
    let bits = |v: &[f32]| -> Vec<u32> { v.iter().map(|x| x.to_bits()).collect() };
    assert_eq!(ranks[0].len(), STEPS);
    for (step, (a, b)) in ranks[0].iter().zip(&ranks[1]).enumerate() {
        assert_eq!(bits(a), bits(b), "step {step}: the ranks differ");
    }
    let got = &ranks[0][STEPS - 1];
    assert_close_scaled(
        "sync batch norm, 2 ranks × 4 against 1 × 8",
        got,
        &want,
        &scale,
        1e-5,
    );

    // Per-rank statistics are another computation: far from the single rank's.
    let apart = &two_bn_ranks(false)[0][STEPS - 1];
    let gap = apart
        .iter()
        .zip(&want)
        .map(|(&g, &w)| (f64::from(g) - w).abs())
        .fold(0.0, f64::max);
    assert!(
        gap > 1e-3,
        "per-rank batch norm within {gap} of the whole batch's"
    );
}

/// One training pass of MobileNetV2-CIFAR (width 0.25, no dropout) on images `range` of
/// `images` (`[8, 3, 16, 16]`): the gradients, averaged over `comm`'s ranks when given,
/// batch norm's statistics over them with `sync_bn`. Every rank builds the same model
/// from the same seed.
fn mobilenet_gradients(
    images: &[f32],
    range: std::ops::Range<usize>,
    comm: Option<(&SharedComm, bool)>,
) -> Result<Vec<(String, Vec<f32>)>> {
    let config = MobileNetV2Config {
        width_mult: 0.25,
        dropout: 0.0,
        ..MobileNetV2Config::cifar10()
    };
    let (model, mut store) = nn::build(device(), 5, |s| MobileNetV2::new(s, config))?;
    let n = range.len();
    let pixels = &images[range.start * 768..range.end * 768];
    let tape = Tape::new();
    let mut ctx = Ctx::train(&tape, &mut store, 0);
    if let Some((comm, true)) = comm {
        ctx = ctx.with_sync_bn(comm.clone());
    }
    let x = tape.input(Tensor::from_slice(device(), pixels, &[n, 3, 16, 16])?);
    let logits = model.forward(&mut ctx, &x)?;
    let labels: Vec<usize> = range.map(|i| i * 7 % 10).collect();
    let loss = tape.cross_entropy(&logits, &labels, 0.0)?;
    let mut grads = tape.backward(&loss)?.by_name()?;
    if let Some((comm, _)) = comm {
        GradientBuckets::default().average(&mut **comm.lock(), &mut grads)?;
    }
    let mut named: Vec<(String, Vec<f32>)> = grads
        .into_iter()
        .map(|(k, t)| Ok((k, t.to_vec()?)))
        .collect::<Result<_>>()?;
    named.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(named)
}

/// The difference between two sets of gradients (the same names, in the same order),
/// relative to the second: ‖a - b‖ / ‖b‖ over all of them. Per-tensor figures would not
/// do: the bias gradients of batch norms whose outputs feed another batch norm sum to
/// about 0 (what that batch norm's backward projects out), so their values are rounding
/// noise; and a few channels of this small network at 2×2 pixels are nearly constant,
/// so their statistics amplify rounding. Two single-process runs whose reductions split
/// differently (the tight loop budget) differ by 0.0104 in this measure.
fn l2_gap(a: &[(String, Vec<f32>)], b: &[(String, Vec<f32>)]) -> f64 {
    assert_eq!(a.len(), b.len());
    let (mut d, mut n) = (0.0f64, 0.0f64);
    for ((na, va), (nb, vb)) in a.iter().zip(b) {
        assert_eq!(na, nb);
        for (x, y) in va.iter().zip(vb) {
            d += f64::from(x - y).powi(2);
            n += f64::from(*y).powi(2);
        }
    }
    (d / n).sqrt()
}

/// Sync batch norm through a whole network: MobileNetV2-CIFAR's averaged gradients on 2
/// ranks × 4 images equal the gradients on 8 images in one (residual blocks, batch norms
/// with and without ReLU6, their statistics from the convolutions' moments where those
/// write them and from a pass elsewhere), as closely as two single-process runs do
/// (0.0104 here); with per-rank statistics they are 1.6 apart.
#[test]
fn sync_batch_norm_gives_mobilenet_v2_the_whole_batch_gradients() {
    let mut rng = Rng::new(99);
    let images = std::sync::Arc::new(random_values(&mut rng, 8 * 768, -1.0, 1.0));
    let want = mobilenet_gradients(&images, 0..8, None).unwrap();
    let two_ranks = |sync_bn: bool| {
        let comms = local_group(2, Duration::from_secs(120)).unwrap();
        let threads: Vec<_> = comms
            .into_iter()
            .map(|comm| {
                let images = images.clone();
                std::thread::spawn(move || {
                    let rank = comm.rank();
                    let shared = SharedComm::new(Box::new(comm));
                    let range = rank * 4..(rank + 1) * 4;
                    mobilenet_gradients(&images, range, Some((&shared, sync_bn)))
                })
            })
            .collect();
        let mut ranks: Vec<_> = threads
            .into_iter()
            .map(|t| t.join().unwrap().unwrap())
            .collect();
        assert_eq!(ranks[0], ranks[1], "the ranks' averaged gradients differ");
        ranks.swap_remove(0)
    };
    let synced = l2_gap(&two_ranks(true), &want);
    assert!(synced < 0.05, "sync batch norm: gradients off by {synced}");
    let apart = l2_gap(&two_ranks(false), &want);
    assert!(
        apart > 0.5,
        "per-rank batch norm within {apart} of the whole batch's"
    );
}

/// Batch norm `x` (`[n, 3]`) in training over `comm`'s ranks: the output, or the error.
fn synced_batch_norm(comm: &SharedComm, x: &[f32]) -> Result<Vec<f32>> {
    let tape = Tape::new();
    let n = x.len() / 3;
    let input = tape.input(Tensor::from_slice(device(), x, &[n, 3])?);
    let (mean, var) = (
        Tensor::zeros(device(), &[3])?,
        Tensor::ones(device(), &[3])?,
    );
    let stats = BatchStats {
        moments: None,
        sync: Some(comm),
    };
    let running = RunningStats {
        mean: &mean,
        var: &var,
    };
    let none = (None, None);
    let (y, _, _) =
        tape.batch_norm_act_train_from(&input, stats, none, running, (0.1, 1e-5), BnAct::Identity)?;
    y.value().to_vec()
}

/// With sync batch norm, one value per channel on each of 2 ranks is a batch of 2: the
/// output is that of the 2 rows normalized together; one value on a group of one rank
/// is an error naming the count over all ranks.
#[test]
fn sync_batch_norm_counts_the_values_of_every_rank() {
    let rows = [[1.0f32, -2.0, 0.5], [3.0, 4.0, -0.5]];
    let threads: Vec<_> = local_group(2, Duration::from_secs(120))
        .unwrap()
        .into_iter()
        .map(|comm| {
            std::thread::spawn(move || {
                let rank = comm.rank();
                synced_batch_norm(&SharedComm::new(Box::new(comm)), &rows[rank])
            })
        })
        .collect();
    let got: Vec<Vec<f32>> = threads
        .into_iter()
        .map(|t| t.join().unwrap().unwrap())
        .collect();
    for c in 0..3 {
        let (a, b) = (f64::from(rows[0][c]), f64::from(rows[1][c]));
        let (mean, var) = ((a + b) / 2.0, (a - b).powi(2) / 4.0);
        for (rank, v) in [a, b].into_iter().enumerate() {
            let want = (v - mean) / (var + 1e-5).sqrt();
            let g = f64::from(got[rank][c]);
            assert!(
                (g - want).abs() < 1e-5,
                "rank {rank} channel {c}: {g} vs {want}"
            );
        }
    }
    let alone = local_group(1, Duration::from_secs(10))
        .unwrap()
        .pop()
        .unwrap();
    let err = synced_batch_norm(&SharedComm::new(Box::new(alone)), &rows[0])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("over all ranks") && err.contains("got 1"),
        "{err}"
    );
}
