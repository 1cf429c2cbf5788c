//! Training an image classifier: steps, evaluation, checkpoints, and resumption that
//! continues exactly where a run stopped.
//!
//! A [`Trainer`] owns the model, its [`ParamStore`] and the optimizer, and counts epochs
//! and steps. Everything random in a step is a function of the seed and the step number
//! (the data order and augmentation of [`Loader::epoch`], the dropout masks here), so a
//! run resumed from a checkpoint takes exactly the steps the uninterrupted run took: its
//! parameters come out bit for bit the same.
//!
//! [`Trainer::distribute`] makes a trainer one rank of data-parallel training (see
//! [`crate::dist`]): gradients averaged over the ranks before each step, tallies summed.

mod tta;

use std::collections::BTreeMap;
use std::path::Path;

pub use tta::Tta;

use crate::autograd::Tape;
use crate::data::loader::{Batch, Loader};
use crate::dist::{Communicator, GradientBuckets, SharedComm, broadcast_buffers, broadcast_store};
use crate::error::{Error, Result, arg_err};
use crate::gpu::Device;
use crate::io::checkpoint::{apply_checkpoint, load_checkpoint, save_checkpoint};
use crate::nn::{Ctx, Module, ParamStore};
use crate::optim::{Optimizer, Schedule};
use crate::tensor::Tensor;

/// The weight of an auxiliary classifier's loss (GoogLeNet's, Inception v3's) in the
/// training loss, as the GoogLeNet paper sets it.
pub const AUX_LOSS_WEIGHT: f32 = 0.3;

/// What a training run is, besides its model and optimizer.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// The base learning rate.
    pub lr: f32,
    /// The learning-rate schedule's name (see [`Schedule::parse`]).
    pub schedule: String,
    /// Steps the schedule spans: the whole run's, even when it stops early to be resumed
    /// (a cosine over fewer steps would take other learning rates).
    pub schedule_steps: usize,
    /// Label smoothing of the cross-entropy loss (0 for none).
    pub label_smoothing: f32,
    /// Seeds the dropout masks, together with the step number.
    pub seed: u64,
}

/// Loss and accuracy summed over the batches of a pass.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Tally {
    loss_sum: f64,
    correct: usize,
    seen: usize,
}

impl Tally {
    /// Adds a batch: its mean `loss` and `logits` `[N, classes]`, both read back.
    fn add(&mut self, loss: &Tensor, logits: &Tensor, labels: &[usize]) -> Result<()> {
        let n = labels.len();
        self.loss_sum += loss.to_scalar()? as f64 * n as f64;
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

    /// The mean loss per image.
    pub fn mean_loss(&self) -> f64 {
        self.loss_sum / self.seen.max(1) as f64
    }

    /// The share of images whose highest logit is their label.
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.seen.max(1) as f64
    }

    /// Images counted.
    pub fn seen(&self) -> usize {
        self.seen
    }

    /// The sum of every rank's tally, on every rank.
    fn all_reduce(&mut self, comm: &mut dyn Communicator) -> Result<()> {
        // Counts stay exact in f32 up to 2^24 images.
        let mut v = [self.loss_sum as f32, self.correct as f32, self.seen as f32];
        comm.all_reduce_sum(&mut v)?;
        self.loss_sum = f64::from(v[0]);
        self.correct = v[1] as usize;
        self.seen = v[2] as usize;
        Ok(())
    }
}

/// What the trainer tells its caller after each training step.
#[derive(Clone, Copy, Debug)]
pub struct StepReport<'a> {
    /// Steps taken in the whole run, this one included.
    pub step: usize,
    /// Batches done in this epoch, this one included.
    pub batch: usize,
    /// The learning rate this step used.
    pub lr: f32,
    /// The epoch's figures so far.
    pub tally: &'a Tally,
}

/// A model in training: parameters, optimizer, schedule, and how far it has come.
pub struct Trainer {
    model: Box<dyn Module>,
    store: ParamStore,
    optimizer: Box<dyn Optimizer>,
    schedule: Schedule,
    config: TrainConfig,
    epoch: usize,
    step: usize,
    parallel: Option<Parallel>,
}

/// A trainer's part in data-parallel training.
struct Parallel {
    comm: SharedComm,
    buckets: GradientBuckets,
    /// Whether batch norm's training statistics span every rank's batch.
    sync_bn: bool,
    /// Seconds spent averaging gradients once every rank's backward was done: reading
    /// them back, the collectives, uploading.
    sync_seconds: f64,
}

impl Trainer {
    /// A trainer at epoch 0, step 0. An `Err` for an unknown schedule or non-finite
    /// settings.
    pub fn new(
        model: Box<dyn Module>,
        store: ParamStore,
        mut optimizer: Box<dyn Optimizer>,
        config: TrainConfig,
    ) -> Result<Trainer> {
        let schedule = Schedule::parse(&config.schedule, config.schedule_steps)?;
        if !config.lr.is_finite() || config.lr < 0.0 {
            return arg_err!(
                "trainer: learning rate {} must be finite and >= 0",
                config.lr
            );
        }
        // The optimizer's state exists from the first step on, so later steps allocate
        // nothing.
        optimizer.reserve(&store)?;
        Ok(Trainer {
            model,
            store,
            optimizer,
            schedule,
            config,
            epoch: 0,
            step: 0,
            parallel: None,
        })
    }

    /// Makes this trainer one rank of data-parallel training over `comm` (after any
    /// resume: every rank must be at rank 0's epoch and step). Its parameters and buffers
    /// become rank 0's now; from then on each step averages the gradients
    /// over the ranks (in `buckets`) before the optimizer, so the parameters stay bitwise
    /// equal, and an epoch's and an evaluation's tallies are summed over the ranks (an
    /// evaluation first takes rank 0's batch-norm statistics: each rank's own are of its
    /// shard). Give each rank its shard of the data ([`Loader::sharded`]) and the global
    /// batch divided among them; save checkpoints on rank 0 only.
    pub fn distribute(
        &mut self,
        mut comm: Box<dyn Communicator>,
        buckets: GradientBuckets,
    ) -> Result<()> {
        // Ranks resumed from different checkpoints would step out of line.
        let mine = [self.epoch as f32, self.step as f32];
        let mut lead = mine;
        comm.broadcast(&mut lead, 0)?;
        if lead != mine {
            return Err(Error::Distributed(format!(
                "rank {} is at epoch {} step {}, rank 0 at epoch {} step {}: every rank must \
                 resume from the same checkpoint",
                comm.rank(),
                self.epoch,
                self.step,
                lead[0],
                lead[1]
            )));
        }
        broadcast_store(&mut *comm, &mut self.store)?;
        self.parallel = Some(Parallel {
            comm: SharedComm::new(comm),
            buckets,
            sync_bn: false,
            sync_seconds: 0.0,
        });
        Ok(())
    }

    /// From the next step on, batch norm's training statistics span every rank's batch
    /// (sync batch norm, `--sync-bn`; see [`Ctx::with_sync_bn`]) instead of each rank's
    /// own: the batch statistics of the global batch, at two small collectives per batch
    /// norm per step. An `Err` unless the trainer is distributed ([`Trainer::distribute`]).
    pub fn sync_batch_norm(&mut self) -> Result<()> {
        match &mut self.parallel {
            Some(p) => {
                p.sync_bn = true;
                Ok(())
            }
            None => arg_err!("trainer: sync batch norm needs a distributed trainer"),
        }
    }

    /// This trainer's rank and the number of ranks: `(0, 1)` unless distributed.
    pub fn rank(&self) -> (usize, usize) {
        self.parallel
            .as_ref()
            .map_or((0, 1), |p| (p.comm.rank(), p.comm.size()))
    }

    /// Seconds this rank has spent averaging gradients with the others so far, counted
    /// from when every rank's backward was done (the exchange alone, not the wait for the
    /// slowest rank).
    pub fn gradient_sync_seconds(&self) -> f64 {
        self.parallel.as_ref().map_or(0.0, |p| p.sync_seconds)
    }

    /// Epochs completed.
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// Optimizer steps taken.
    pub fn step(&self) -> usize {
        self.step
    }

    /// The model's tensors.
    pub fn store(&self) -> &ParamStore {
        &self.store
    }

    /// The run's settings.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The learning rate of step `step`.
    pub fn lr_at(&self, step: usize) -> f32 {
        self.schedule.lr(self.config.lr, step)
    }

    /// Trains one epoch (the next one) on `loader`, calling `on_step` after each step.
    /// Stops with an `Err` at the first step whose loss is not finite (the run has
    /// diverged; the last checkpoint is the place to go back to).
    pub fn train_epoch(
        &mut self,
        loader: &Loader,
        mut on_step: impl FnMut(&StepReport),
    ) -> Result<Tally> {
        let mut tally = Tally::default();
        for (i, batch) in loader.epoch(self.epoch).enumerate() {
            let lr = self.lr_at(self.step);
            let (loss, logits) = self.train_step(&batch, lr)?;
            tally.add(&loss, &logits, &batch.labels)?;
            let loss = tally.mean_loss();
            self.step += 1;
            if !loss.is_finite() {
                return Err(Error::InvalidArgument(format!(
                    "training diverged at step {}: the loss is {loss}; lower the learning rate \
                     (it was {lr}) and resume from the last checkpoint",
                    self.step
                )));
            }
            on_step(&StepReport {
                step: self.step,
                batch: i + 1,
                lr,
                tally: &tally,
            });
        }
        self.epoch += 1;
        if let Some(p) = &mut self.parallel {
            tally.all_reduce(&mut **p.comm.lock())?;
        }
        Ok(tally)
    }

    /// The device the model's tensors live on.
    fn device(&self) -> Result<Device> {
        match self.store.iter_all().next() {
            Some((_, t, _)) => Ok(t.device().clone()),
            None => arg_err!("trainer: the model has no tensors"),
        }
    }

    /// One optimization step; returns the loss and logits (still on the device).
    fn train_step(&mut self, batch: &Batch, lr: f32) -> Result<(Tensor, Tensor)> {
        let device = self.device()?;
        let tape = Tape::new();
        let x = tape.input(Tensor::from_slice(&device, &batch.images, &batch.shape())?);
        let seed = self.config.seed ^ (self.step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut ctx = Ctx::train(&tape, &mut self.store, seed);
        if let Some(p) = self.parallel.as_ref().filter(|p| p.sync_bn) {
            ctx = ctx.with_sync_bn(p.comm.clone());
        }
        let (logits, aux) = self.model.forward_aux(&mut ctx, &x)?;
        let smoothing = self.config.label_smoothing;
        let mut loss = tape.cross_entropy(&logits, &batch.labels, smoothing)?;
        for head in &aux {
            let head_loss = tape.cross_entropy(head, &batch.labels, smoothing)?;
            loss = tape.add(&loss, &tape.scale(&head_loss, AUX_LOSS_WEIGHT)?)?;
        }
        let mut grads = tape.backward(&loss)?.by_name()?;
        if let Some(p) = &mut self.parallel {
            // Every rank's backward run to its end first, so that the time measured is
            // the exchange alone: reading the gradients back, the collectives, uploading.
            device.synchronize()?;
            let mut comm = p.comm.lock();
            comm.barrier()?;
            let start = std::time::Instant::now();
            p.buckets.average(&mut **comm, &mut grads)?;
            p.sync_seconds += start.elapsed().as_secs_f64();
        }
        self.optimizer.step(&mut self.store, &grads, lr)?;
        Ok((loss.value().clone(), logits.value().clone()))
    }

    /// Loss and accuracy on `loader` in evaluation mode (batch norm's running statistics,
    /// no dropout), calling `on_batch` after each batch.
    pub fn evaluate(&mut self, loader: &Loader, on_batch: impl FnMut(&Tally)) -> Result<Tally> {
        self.evaluate_tta(loader, Tta::None, on_batch)
    }

    /// [`Trainer::evaluate`] with the softmax averaged over `tta`'s views of each image;
    /// the loss is the cross-entropy of the averaged probabilities.
    pub fn evaluate_tta(
        &mut self,
        loader: &Loader,
        tta: Tta,
        mut on_batch: impl FnMut(&Tally),
    ) -> Result<Tally> {
        let mut tally = Tally::default();
        let device = self.device()?;
        let smoothing = self.config.label_smoothing;
        if let Some(p) = &mut self.parallel {
            broadcast_buffers(&mut **p.comm.lock(), &mut self.store)?;
        }
        for batch in loader.epoch(0) {
            let shape = batch.shape();
            let views = tta.views(&batch.images, shape);
            let tape = Tape::no_grad();
            let logits = if views.len() == 1 {
                self.logits(&tape, &device, &views[0], &shape)?
            } else {
                let mut sum: Option<Tensor> = None;
                for view in &views {
                    let p = self.logits(&tape, &device, view, &shape)?.softmax()?;
                    sum = Some(match sum {
                        None => p,
                        Some(s) => s.add(&p)?,
                    });
                }
                let mean = sum
                    .expect("at least one view")
                    .scale(1.0 / views.len() as f32)?;
                mean.log()?
            };
            let logits = tape.input(logits);
            let loss = tape.cross_entropy(&logits, &batch.labels, smoothing)?;
            tally.add(loss.value(), logits.value(), &batch.labels)?;
            on_batch(&tally);
        }
        if let Some(p) = &mut self.parallel {
            tally.all_reduce(&mut **p.comm.lock())?;
        }
        Ok(tally)
    }

    /// The model's logits for `images` in evaluation mode.
    fn logits(
        &self,
        tape: &Tape,
        device: &Device,
        images: &[f32],
        shape: &[usize],
    ) -> Result<Tensor> {
        let x = tape.input(Tensor::from_slice(device, images, shape)?);
        let mut ctx = Ctx::eval(tape, &self.store);
        Ok(self.model.forward(&mut ctx, &x)?.value().clone())
    }

    /// Saves a checkpoint at `path` (atomically): parameters, buffers, optimizer state,
    /// where the run is (`epoch`, `step`) and its settings, plus the caller's `meta`.
    pub fn save(&self, path: &Path, meta: &BTreeMap<String, String>) -> Result<()> {
        let mut all = meta.clone();
        let c = &self.config;
        for (key, value) in [
            ("epoch", self.epoch.to_string()),
            ("step", self.step.to_string()),
            ("lr", c.lr.to_string()),
            ("schedule", c.schedule.clone()),
            ("schedule_steps", c.schedule_steps.to_string()),
            ("label_smoothing", c.label_smoothing.to_string()),
            ("seed", c.seed.to_string()),
        ] {
            all.insert(key.to_string(), value);
        }
        save_checkpoint(path, &self.store, Some(&*self.optimizer), &all)
    }

    /// Continues from the checkpoint at `path`: parameters, buffers, optimizer state, and
    /// the epoch and step it was saved at. Returns the checkpoint's entries (the run's
    /// settings then, for the caller to compare with now's). On any `Err` the trainer is
    /// unchanged.
    pub fn resume(&mut self, path: &Path) -> Result<BTreeMap<String, String>> {
        let ckpt = load_checkpoint(path)?;
        let number = |key: &str| -> Result<usize> {
            let value = ckpt.meta.get(key).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "checkpoint {}: no {key:?} entry, so it is not a training checkpoint",
                    path.display()
                ))
            })?;
            value.parse().map_err(|_| {
                Error::InvalidArgument(format!(
                    "checkpoint {}: {key:?} = {value:?} is not a whole number",
                    path.display()
                ))
            })
        };
        let (epoch, step) = (number("epoch")?, number("step")?);
        let device = self.device()?;
        apply_checkpoint(&ckpt, &mut self.store, &device, Some(&mut *self.optimizer))?;
        self.epoch = epoch;
        self.step = step;
        Ok(ckpt.meta)
    }
}
