//! Batches for training and evaluation: seeded shuffling, random crop with zero padding,
//! random horizontal flip and per-channel normalization, prepared on a background thread.
//!
//! Everything random is a pure function of `(seed, epoch)`: the shuffle order comes from
//! one stream per epoch and each sample's crop and flip from its own stream keyed by its
//! position in the epoch. A resumed run therefore sees exactly the batches it would have
//! seen, and the background thread cannot change them by running ahead.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use super::cifar10::{CHANNELS, Cifar10, IMAGE_BYTES, MEAN, SIDE, STD};
use crate::error::{Result, arg_err};
use crate::rng::Rng;

/// Batches the background thread may hold ready: enough to hide one batch's preparation
/// behind a training step, few enough to bound memory (a 128-batch is 1.5 MiB).
const PREFETCH: usize = 2;

/// Stream tags, so the shuffle and the augmentation never draw from the same numbers.
const SHUFFLE_STREAM: u64 = 0x5348_5546; // "SHUF"
const AUGMENT_STREAM: u64 = 0x4155_474D; // "AUGM"

/// Random training augmentation, in torchvision's order: `RandomCrop(32, padding)`, then
/// `RandomHorizontalFlip()`, then `ToTensor()` and `Normalize(MEAN, STD)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Augment {
    /// Zero pixels added on each side before a random 32×32 window is taken (0 = no crop).
    pub crop_padding: usize,
    /// Mirror each image left-right with probability 0.5.
    pub flip: bool,
}

impl Augment {
    /// The usual CIFAR-10 recipe: 4-pixel padding and random flips.
    pub fn standard() -> Augment {
        Augment {
            crop_padding: 4,
            flip: true,
        }
    }
}

/// One batch on the CPU, ready for `Tensor::from_slice(&device, &batch.images,
/// &batch.shape())`.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// `len() × 3 × 32 × 32` normalized pixels, NCHW.
    pub images: Vec<f32>,
    /// The class (0..=9) of each image.
    pub labels: Vec<usize>,
    /// Which dataset record each image came from (for debugging and checks).
    pub indices: Vec<usize>,
}

impl Batch {
    /// Images in this batch.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the batch holds no images (never the case for a batch from a loader).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The NCHW shape of `images`: `[len(), 3, 32, 32]`.
    pub fn shape(&self) -> [usize; 4] {
        [self.len(), CHANNELS, SIDE, SIDE]
    }
}

/// How a sharded loader splits an epoch among ranks (see [`Loader::sharded`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Split {
    /// Equal shares, the order padded by repeating its start (training).
    Padded,
    /// Each record once (evaluation).
    Exact,
}

/// Turns a [`Cifar10`] data set into epochs of [`Batch`]es.
#[derive(Clone, Debug)]
pub struct Loader {
    dataset: Arc<Cifar10>,
    batch_size: usize,
    shuffle: bool,
    augment: Option<Augment>,
    seed: u64,
    drop_last: bool,
    /// This rank's share of each epoch, `(rank, ranks, split)`: `(0, 1, _)` takes all.
    shard: (usize, usize, Split),
}

impl Loader {
    /// A loader over `dataset` giving batches of `batch_size`. `shuffle` draws a new
    /// order each epoch; `augment` is `None` for evaluation (no crop, no flip, only
    /// normalization); `seed` fixes all randomness; `drop_last` skips a final batch
    /// smaller than `batch_size`.
    pub fn new(
        dataset: Arc<Cifar10>,
        batch_size: usize,
        shuffle: bool,
        augment: Option<Augment>,
        seed: u64,
        drop_last: bool,
    ) -> Result<Loader> {
        if batch_size == 0 {
            return arg_err!("loader: batch_size must be positive");
        }
        if dataset.is_empty() {
            return arg_err!("loader: the data set has no records");
        }
        if drop_last && batch_size > dataset.len() {
            return arg_err!(
                "loader: batch_size {batch_size} is larger than the {} records, so with \
                 drop_last an epoch would have no batches",
                dataset.len()
            );
        }
        if let Some(a) = augment
            && a.crop_padding > SIDE
        {
            // Beyond this a crop can be all padding: surely a mistake, not a recipe.
            return arg_err!(
                "loader: crop_padding {} is larger than the image side {SIDE}",
                a.crop_padding
            );
        }
        Ok(Loader {
            dataset,
            batch_size,
            shuffle,
            augment,
            seed,
            drop_last,
            shard: (0, 1, Split::Padded),
        })
    }

    /// This loader taking rank `rank`'s share of every epoch among `ranks`, for
    /// data-parallel training (see [`crate::dist`]): every rank draws the same order from
    /// the same seed and takes every `ranks`-th record from `rank`, the order padded by
    /// repeating its start as PyTorch's DistributedSampler does, so every rank has as
    /// many batches and the ranks step together. A record's augmentation is the one it
    /// gets at that place of the whole order, as in a single-process run.
    pub fn sharded(self, rank: usize, ranks: usize) -> Result<Loader> {
        self.shard_as(rank, ranks, Split::Padded)
    }

    /// As [`Loader::sharded`], for evaluation: the records split exactly (no padding), so
    /// each is counted once; ranks may get one batch more or less than others.
    pub fn sharded_exact(self, rank: usize, ranks: usize) -> Result<Loader> {
        self.shard_as(rank, ranks, Split::Exact)
    }

    fn shard_as(mut self, rank: usize, ranks: usize, split: Split) -> Result<Loader> {
        if ranks == 0 || rank >= ranks {
            return arg_err!("loader: rank {rank} of {ranks} ranks");
        }
        self.shard = (rank, ranks, split);
        let len = self.len();
        if self.drop_last && self.batch_size > len {
            return arg_err!(
                "loader: batch_size {} is larger than rank {rank}'s {len} records of {}, so \
                 with drop_last an epoch would have no batches",
                self.batch_size,
                self.dataset.len()
            );
        }
        Ok(self)
    }

    /// Records this loader visits per epoch (its shard's).
    fn len(&self) -> usize {
        let (rank, ranks, split) = self.shard;
        let n = self.dataset.len();
        match split {
            Split::Padded => n.div_ceil(ranks),
            Split::Exact => (n + ranks - 1 - rank) / ranks,
        }
    }

    /// Batches in every epoch.
    pub fn batches_per_epoch(&self) -> usize {
        let n = self.len();
        if self.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }

    /// The data set this loader reads.
    pub fn dataset(&self) -> &Arc<Cifar10> {
        &self.dataset
    }

    /// The record indices epoch `epoch` visits, in order: a seeded permutation when
    /// shuffling, else `0..len`; of it this loader's shard (see [`Loader::sharded`]).
    pub fn order(&self, epoch: usize) -> Vec<usize> {
        let order = self.full_order(epoch);
        let (rank, ranks, split) = self.shard;
        match split {
            _ if ranks == 1 => order,
            Split::Padded => crate::dist::shard(&order, rank, ranks).expect("rank checked"),
            Split::Exact => order.into_iter().skip(rank).step_by(ranks).collect(),
        }
    }

    /// The whole data set's order for epoch `epoch`, the same on every rank.
    fn full_order(&self, epoch: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.dataset.len()).collect();
        if self.shuffle {
            let mut rng = stream(self.seed, &[SHUFFLE_STREAM, epoch as u64]);
            // Fisher–Yates: every permutation equally likely.
            for i in (1..order.len()).rev() {
                let j = rng.below(i as u64 + 1) as usize;
                order.swap(i, j);
            }
        }
        order
    }

    /// The batches of epoch `epoch`, prepared on a background thread a few batches ahead
    /// of the consumer. Dropping the iterator stops the thread. Should the thread fail
    /// to start, the batches are made on the calling thread instead: the same batches,
    /// only without the overlap.
    pub fn epoch(&self, epoch: usize) -> BatchIter {
        let plan = Arc::new(self.plan(epoch));
        let worker_plan = Arc::clone(&plan);
        let (tx, rx) = sync_channel(PREFETCH);
        let spawned = std::thread::Builder::new()
            .name(format!("liandan-loader-epoch-{epoch}"))
            .spawn(move || {
                for i in 0..worker_plan.batches {
                    // The receiver is gone once the iterator is dropped: stop early.
                    if tx.send(worker_plan.batch(i)).is_err() {
                        return;
                    }
                }
            });
        BatchIter {
            plan,
            next: 0,
            worker: spawned.ok().map(|handle| Worker { rx, handle }),
        }
    }

    /// Everything the worker needs for one epoch, fixed before it starts.
    fn plan(&self, epoch: usize) -> Plan {
        Plan {
            dataset: Arc::clone(&self.dataset),
            order: self.order(epoch),
            batch_size: self.batch_size,
            batches: self.batches_per_epoch(),
            augment: self.augment,
            seed: self.seed,
            epoch,
            shard: (self.shard.0, self.shard.1),
            table: normalize_table(),
        }
    }
}

/// One epoch's batches, in order; see [`Loader::epoch`].
pub struct BatchIter {
    plan: Arc<Plan>,
    next: usize,
    /// `None` when the thread could not be started (batches are then made inline) or
    /// after it failed.
    worker: Option<Worker>,
}

struct Worker {
    rx: Receiver<Batch>,
    handle: JoinHandle<()>,
}

impl Iterator for BatchIter {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.next >= self.plan.batches {
            return None;
        }
        let i = self.next;
        self.next += 1;
        if let Some(worker) = &self.worker {
            if let Ok(batch) = worker.rx.recv() {
                return Some(batch);
            }
            // The worker stopped before sending every batch, which only a panic does:
            // pass the panic on rather than end the epoch short without a word.
            if let Some(worker) = self.worker.take()
                && let Err(panic) = worker.handle.join()
            {
                std::panic::resume_unwind(panic);
            }
        }
        Some(self.plan.batch(i))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.plan.batches - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for BatchIter {}

impl Drop for BatchIter {
    fn drop(&mut self) {
        if let Some(Worker { rx, handle }) = self.worker.take() {
            // Closing the channel first wakes a worker blocked on a full channel, so the
            // join below returns after at most the batch it is making.
            drop(rx);
            let _ = handle.join();
        }
    }
}

/// One epoch, fully determined: batch `i` depends only on these fields and `i`.
struct Plan {
    dataset: Arc<Cifar10>,
    order: Vec<usize>,
    batch_size: usize,
    batches: usize,
    augment: Option<Augment>,
    seed: u64,
    epoch: usize,
    /// `(rank, ranks)` of a sharded loader: position p of this rank's order is position
    /// p · ranks + rank of the whole epoch's.
    shard: (usize, usize),
    table: [[f32; 256]; CHANNELS],
}

impl Plan {
    /// Batch `i` of the epoch (`i < batches`).
    fn batch(&self, i: usize) -> Batch {
        let start = i * self.batch_size;
        let end = (start + self.batch_size).min(self.order.len());
        let indices = self.order[start..end].to_vec();
        let mut images = vec![0.0; indices.len() * IMAGE_BYTES];
        for (k, (&index, out)) in indices
            .iter()
            .zip(images.chunks_exact_mut(IMAGE_BYTES))
            .enumerate()
        {
            let (pad, dy, dx, flip) = match self.augment {
                Some(augment) => {
                    // Keyed by position in the whole epoch's order, so a sample's crop
                    // does not depend on which thread makes it, on how many batches came
                    // before, or on how many ranks share the epoch.
                    let (rank, ranks) = self.shard;
                    let position = ((start + k) * ranks + rank) as u64;
                    let mut rng = stream(self.seed, &[AUGMENT_STREAM, self.epoch as u64, position]);
                    let (dy, dx, flip) = draw(&mut rng, augment);
                    (augment.crop_padding, dy, dx, flip)
                }
                None => (0, 0, 0, false),
            };
            write_sample(
                self.dataset.image(index),
                pad,
                dy,
                dx,
                flip,
                &self.table,
                out,
            );
        }
        let labels = indices.iter().map(|&i| self.dataset.label(i)).collect();
        Batch {
            images,
            labels,
            indices,
        }
    }
}

/// A generator for the sub-stream `parts` of `seed`: chaining SplitMix64 outputs gives
/// each (seed, parts) an unrelated starting state.
fn stream(seed: u64, parts: &[u64]) -> Rng {
    let state = parts
        .iter()
        .fold(seed, |state, &part| Rng::new(state ^ part).next_u64());
    Rng::new(state)
}

/// A sample's crop offsets (each in `0..=2*padding`, the window's corner in the padded
/// image) and whether it is flipped.
fn draw(rng: &mut Rng, augment: Augment) -> (usize, usize, bool) {
    let span = 2 * augment.crop_padding as u64 + 1;
    let dy = rng.below(span) as usize;
    let dx = rng.below(span) as usize;
    let flip = augment.flip && rng.below(2) == 1;
    (dy, dx, flip)
}

/// `table[c][p]` = pixel value `p` of channel `c` scaled to [0, 1] and normalized. A
/// table makes the per-pixel work one lookup, and padding is pixel 0, so it normalizes
/// to `(0 - mean) / std` exactly as torchvision's pad-then-normalize does.
fn normalize_table() -> [[f32; 256]; CHANNELS] {
    let mut table = [[0.0; 256]; CHANNELS];
    for (c, row) in table.iter_mut().enumerate() {
        for (p, v) in row.iter_mut().enumerate() {
            *v = (p as f32 / 255.0 - MEAN[c]) / STD[c];
        }
    }
    table
}

/// Writes one augmented, normalized image into `out` (3×32×32): the 32×32 window at
/// `(dy, dx)` of the image padded by `pad` zeros each side, mirrored when `flip`.
fn write_sample(
    image: &[u8],
    pad: usize,
    dy: usize,
    dx: usize,
    flip: bool,
    table: &[[f32; 256]; CHANNELS],
    out: &mut [f32],
) {
    let side = SIDE as isize;
    for (c, (plane, out_plane)) in image
        .chunks_exact(SIDE * SIDE)
        .zip(out.chunks_exact_mut(SIDE * SIDE))
        .enumerate()
    {
        let lut = &table[c];
        for (y, out_row) in out_plane.chunks_exact_mut(SIDE).enumerate() {
            let sy = (y + dy) as isize - pad as isize;
            if !(0..side).contains(&sy) {
                out_row.fill(lut[0]);
                continue;
            }
            let row = &plane[sy as usize * SIDE..][..SIDE];
            for (x, v) in out_row.iter_mut().enumerate() {
                // The flip mirrors the cropped window, as RandomCrop then flip does.
                let cx = if flip { SIDE - 1 - x } else { x };
                let sx = (cx + dx) as isize - pad as isize;
                *v = if (0..side).contains(&sx) {
                    lut[row[sx as usize] as usize]
                } else {
                    lut[0]
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::cifar10::tests::record;

    /// `n` distinct synthetic images, labels `i % 10`.
    fn synthetic(n: usize) -> Arc<Cifar10> {
        let labels = (0..n).map(|i| (i % 10) as u8).collect();
        let images = (0..n)
            .flat_map(|i| record(0, 13 * i)[1..].to_vec())
            .collect();
        Arc::new(Cifar10::from_parts(images, labels).unwrap())
    }

    /// The image normalized with no augmentation, straight from the formula.
    fn normalized(image: &[u8]) -> Vec<f32> {
        image
            .iter()
            .enumerate()
            .map(|(p, &v)| {
                let c = p / (SIDE * SIDE);
                (v as f32 / 255.0 - MEAN[c]) / STD[c]
            })
            .collect()
    }

    /// The torchvision recipe spelled out: pad into a (32+2p)² canvas of zeros, take the
    /// window at (dy, dx), mirror, normalize.
    fn reference(image: &[u8], pad: usize, dy: usize, dx: usize, flip: bool) -> Vec<f32> {
        let big = SIDE + 2 * pad;
        let mut out = Vec::with_capacity(IMAGE_BYTES);
        for c in 0..CHANNELS {
            let mut canvas = vec![0u8; big * big];
            for y in 0..SIDE {
                for x in 0..SIDE {
                    canvas[(y + pad) * big + x + pad] = image[c * SIDE * SIDE + y * SIDE + x];
                }
            }
            for y in 0..SIDE {
                for x in 0..SIDE {
                    let wx = if flip { SIDE - 1 - x } else { x };
                    let v = canvas[(y + dy) * big + wx + dx];
                    out.push((v as f32 / 255.0 - MEAN[c]) / STD[c]);
                }
            }
        }
        out
    }

    #[test]
    fn shuffle_is_a_seeded_permutation_per_epoch() {
        let data = synthetic(100);
        let loader = Loader::new(data.clone(), 8, true, None, 7, false).unwrap();
        let e0 = loader.order(0);
        assert_eq!(e0, loader.order(0));
        assert_eq!(
            e0,
            Loader::new(data.clone(), 8, true, None, 7, false)
                .unwrap()
                .order(0)
        );
        assert_ne!(e0, loader.order(1));
        assert_ne!(
            e0,
            Loader::new(data.clone(), 8, true, None, 8, false)
                .unwrap()
                .order(0)
        );
        assert_ne!(e0, (0..100).collect::<Vec<_>>());
        let mut sorted = e0.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());

        let plain = Loader::new(data, 8, false, None, 7, false).unwrap();
        assert_eq!(plain.order(3), (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn batches_follow_the_order_with_matching_labels() {
        let data = synthetic(37);
        let loader = Loader::new(data.clone(), 5, true, None, 1, false).unwrap();
        let batches: Vec<Batch> = loader.epoch(2).collect();
        let visited: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
        assert_eq!(visited, loader.order(2));
        for b in &batches {
            assert_eq!(b.images.len(), b.len() * IMAGE_BYTES);
            assert_eq!(b.shape(), [b.len(), 3, 32, 32]);
            for (k, &i) in b.indices.iter().enumerate() {
                assert_eq!(b.labels[k], data.label(i));
            }
        }
    }

    #[test]
    fn no_augmentation_is_exact_normalization() {
        let data = synthetic(6);
        for augment in [
            None,
            Some(Augment {
                crop_padding: 0,
                flip: false,
            }),
        ] {
            let loader = Loader::new(data.clone(), 4, false, augment, 3, false).unwrap();
            for b in loader.epoch(0) {
                for (k, &i) in b.indices.iter().enumerate() {
                    let got = &b.images[k * IMAGE_BYTES..(k + 1) * IMAGE_BYTES];
                    assert_eq!(got, normalized(data.image(i)).as_slice());
                }
            }
        }
    }

    #[test]
    fn crop_and_flip_match_the_padded_reference() {
        let data = synthetic(1);
        let image = data.image(0);
        let table = normalize_table();
        let mut out = vec![0.0; IMAGE_BYTES];
        for dy in 0..=8 {
            for dx in 0..=8 {
                for flip in [false, true] {
                    write_sample(image, 4, dy, dx, flip, &table, &mut out);
                    assert_eq!(out, reference(image, 4, dy, dx, flip), "{dy} {dx} {flip}");
                }
            }
        }
        // Padding normalizes as a zero pixel: the top-left corner of the (0, 0) window.
        write_sample(image, 4, 0, 0, false, &table, &mut out);
        assert_eq!(out[0], (0.0 - MEAN[0]) / STD[0]);
        // A forced flip with no crop mirrors every row.
        write_sample(image, 0, 0, 0, true, &table, &mut out);
        let plain = normalized(image);
        for row in 0..CHANNELS * SIDE {
            let mirrored: Vec<f32> = plain[row * SIDE..][..SIDE].iter().rev().copied().collect();
            assert_eq!(&out[row * SIDE..][..SIDE], mirrored.as_slice());
        }
    }

    #[test]
    fn crop_offsets_stay_in_the_padded_image() {
        let mut rng = Rng::new(5);
        let mut seen = [[false; 9]; 2];
        let mut flips = 0;
        for _ in 0..2000 {
            let (dy, dx, flip) = draw(&mut rng, Augment::standard());
            assert!(dy <= 8 && dx <= 8);
            seen[0][dy] = true;
            seen[1][dx] = true;
            flips += flip as usize;
        }
        assert!(
            seen.iter().flatten().all(|&s| s),
            "every offset 0..=8 occurs"
        );
        assert!((900..1100).contains(&flips), "{flips} flips in 2000");
        let no_flip = Augment {
            crop_padding: 0,
            flip: false,
        };
        assert_eq!(draw(&mut rng, no_flip), (0, 0, false));
    }

    #[test]
    fn flip_alone_gives_original_or_mirror_about_half_the_time() {
        let data = synthetic(200);
        let flip_only = Augment {
            crop_padding: 0,
            flip: true,
        };
        let loader = Loader::new(data.clone(), 64, false, Some(flip_only), 9, false).unwrap();
        let mut mirrored = 0;
        for b in loader.epoch(0) {
            for (k, &i) in b.indices.iter().enumerate() {
                let got = &b.images[k * IMAGE_BYTES..(k + 1) * IMAGE_BYTES];
                if got == reference(data.image(i), 0, 0, 0, true).as_slice() {
                    mirrored += 1;
                } else {
                    assert_eq!(got, normalized(data.image(i)).as_slice());
                }
            }
        }
        assert!((60..140).contains(&mirrored), "{mirrored} of 200 mirrored");
    }

    #[test]
    fn batch_counts_with_and_without_drop_last() {
        let data = synthetic(10);
        let keep = Loader::new(data.clone(), 4, true, None, 0, false).unwrap();
        assert_eq!(keep.batches_per_epoch(), 3);
        let sizes: Vec<usize> = keep.epoch(0).map(|b| b.len()).collect();
        assert_eq!(sizes, [4, 4, 2]);
        assert_eq!(keep.epoch(0).len(), 3);

        let drop = Loader::new(data.clone(), 4, true, None, 0, true).unwrap();
        assert_eq!(drop.batches_per_epoch(), 2);
        let sizes: Vec<usize> = drop.epoch(0).map(|b| b.len()).collect();
        assert_eq!(sizes, [4, 4]);

        let exact = Loader::new(data, 5, false, None, 0, true).unwrap();
        assert_eq!(exact.batches_per_epoch(), 2);
    }

    #[test]
    fn background_batches_equal_synchronous_ones() {
        let data = synthetic(50);
        let loader = Loader::new(data, 8, true, Some(Augment::standard()), 11, false).unwrap();
        for epoch in [0, 4] {
            let plan = loader.plan(epoch);
            let threaded: Vec<Batch> = loader.epoch(epoch).collect();
            assert_eq!(threaded.len(), plan.batches);
            for (i, b) in threaded.iter().enumerate() {
                assert_eq!(*b, plan.batch(i));
            }
            // Resuming sees the same batches; another epoch sees different ones.
            assert_eq!(threaded, loader.epoch(epoch).collect::<Vec<_>>());
        }
        assert_ne!(
            loader.epoch(0).next().unwrap(),
            loader.epoch(1).next().unwrap()
        );
    }

    #[test]
    fn dropping_the_iterator_stops_the_thread() {
        let data = synthetic(64);
        let loader = Loader::new(data, 1, true, Some(Augment::standard()), 2, false).unwrap();
        let mut it = loader.epoch(0);
        assert!(it.next().is_some());
        // The worker is blocked on a full channel with 60-odd batches to go; the drop
        // must wake and join it, or this test hangs.
        drop(it);
        drop(loader.epoch(1)); // dropped before any batch is taken
    }

    #[test]
    fn bad_settings_are_errors() {
        let data = synthetic(10);
        assert!(Loader::new(data.clone(), 0, true, None, 0, false).is_err());
        assert!(Loader::new(data.clone(), 11, true, None, 0, true).is_err());
        assert!(Loader::new(data.clone(), 11, true, None, 0, false).is_ok());
        let huge = Augment {
            crop_padding: 33,
            flip: false,
        };
        assert!(Loader::new(data, 4, true, Some(huge), 0, false).is_err());
        let empty = Arc::new(Cifar10::from_parts(vec![], vec![]).unwrap());
        assert!(Loader::new(empty, 4, true, None, 0, false).is_err());
    }

    #[test]
    fn real_test_set_normalizes_to_about_zero_mean_unit_std() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/data/cifar-10-batches-bin");
        if !dir.join("test_batch.bin").exists() {
            println!("skipped: no CIFAR-10 at {}", dir.display());
            return;
        }
        let test = Arc::new(Cifar10::load_test(&dir).unwrap());
        let loader = Loader::new(test, 500, false, None, 0, false).unwrap();
        let mut sum = [0f64; CHANNELS];
        let mut sum_sq = [0f64; CHANNELS];
        let mut count = 0f64;
        for b in loader.epoch(0) {
            for image in b.images.chunks_exact(IMAGE_BYTES) {
                for (c, plane) in image.chunks_exact(SIDE * SIDE).enumerate() {
                    for &v in plane {
                        sum[c] += v as f64;
                        sum_sq[c] += (v as f64) * (v as f64);
                    }
                }
                count += (SIDE * SIDE) as f64;
            }
        }
        // The test set's statistics are close to the training set's; a swapped channel
        // order would put a mean off by about 0.18.
        for c in 0..CHANNELS {
            let mean = sum[c] / count;
            let std = (sum_sq[c] / count - mean * mean).sqrt();
            assert!(mean.abs() < 0.05, "channel {c}: mean {mean}");
            assert!((0.9..1.1).contains(&std), "channel {c}: std {std}");
        }
    }

    /// Two ranks' shards of a training loader: the same batch count each, together every
    /// record (the padding repeating the order's start), and each record's image (crop
    /// and flip included) the one the single-process loader makes at that place of the
    /// order. An evaluation shard splits exactly.
    #[test]
    fn shards_step_together_and_augment_as_one_process() {
        let data = synthetic(11);
        let one = Loader::new(data.clone(), 2, true, Some(Augment::standard()), 7, true).unwrap();
        let ranks: Vec<Loader> = (0..2).map(|r| one.clone().sharded(r, 2).unwrap()).collect();
        let whole = one.order(3);
        let single: Vec<Batch> =
            Loader::new(data.clone(), 1, true, Some(Augment::standard()), 7, false)
                .unwrap()
                .epoch(3)
                .collect();
        for (r, loader) in ranks.iter().enumerate() {
            assert_eq!(
                loader.batches_per_epoch(),
                3,
                "rank {r}: ceil(11 / 2) = 6 records"
            );
            let order = loader.order(3);
            assert_eq!(order.len(), 6);
            for (i, &index) in order.iter().enumerate() {
                assert_eq!(index, whole[(2 * i + r) % 11]);
            }
            for (b, batch) in loader.epoch(3).enumerate() {
                for (k, image) in batch.images.chunks(IMAGE_BYTES).enumerate() {
                    let place = 2 * (2 * b + k) + r;
                    if place < 11 {
                        assert_eq!(image, &single[place].images[..], "rank {r} place {place}");
                    }
                }
            }
        }
        let mut seen: Vec<usize> = ranks.iter().flat_map(|l| l.order(3)).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 11);
        let eval = Loader::new(data, 4, false, None, 7, false).unwrap();
        let parts: Vec<Vec<usize>> = (0..3)
            .map(|r| eval.clone().sharded_exact(r, 3).unwrap().order(0))
            .collect();
        assert_eq!(parts.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4, 3]);
        assert_eq!(parts.concat().len(), 11);
        assert!(eval.clone().sharded(3, 3).is_err());
        assert!(eval.sharded_exact(0, 0).is_err());
    }
}
