//! What a forward pass needs besides its input.

use crate::autograd::{Tape, Var};
use crate::dist::SharedComm;
use crate::error::{Result, arg_err};
use crate::nn::ParamStore;
use crate::tensor::Tensor;

/// The store a pass reads: borrowed shared for evaluation, mutably for training (batch
/// norm writes its running statistics back).
enum Store<'a> {
    Shared(&'a ParamStore),
    Exclusive(&'a mut ParamStore),
}

/// What a forward pass needs besides its input: the tape, the model's tensors, and the
/// mode. Make one per pass: [`Ctx::train`] or [`Ctx::eval`].
pub struct Ctx<'a> {
    /// Where ops are recorded (a `Tape::no_grad()` one for inference).
    pub tape: &'a Tape,
    store: Store<'a>,
    train: bool,
    /// Seeds dropout; advanced at every dropout layer so each draws a fresh mask.
    seed: u64,
    /// The ranks batch norm's training statistics span, if any (sync batch norm).
    sync_bn: Option<SharedComm>,
}

impl<'a> Ctx<'a> {
    /// Training mode: batch statistics in batch norm (whose running statistics are
    /// written back to `store`), dropout active, its masks drawn from `seed`.
    pub fn train(tape: &'a Tape, store: &'a mut ParamStore, seed: u64) -> Self {
        Self {
            tape,
            store: Store::Exclusive(store),
            train: true,
            seed,
            sync_bn: None,
        }
    }

    /// Evaluation mode: batch norm's running statistics, no dropout; nothing is written.
    pub fn eval(tape: &'a Tape, store: &'a ParamStore) -> Self {
        Self {
            tape,
            store: Store::Shared(store),
            train: false,
            seed: 0,
            sync_bn: None,
        }
    }

    /// Whether this is a training pass.
    pub fn is_training(&self) -> bool {
        self.train
    }

    /// This context with batch norm's training statistics over every rank's batch of
    /// `comm`'s group (sync batch norm, PyTorch's `SyncBatchNorm`): each batch norm's
    /// forward and backward run collectives, so every rank must run the same model.
    /// Without it each rank normalizes with its own batch's statistics, as DDP does.
    pub fn with_sync_bn(mut self, comm: SharedComm) -> Self {
        self.sync_bn = Some(comm);
        self
    }

    /// The ranks batch norm's training statistics span ([`Ctx::with_sync_bn`]).
    pub fn sync_bn(&self) -> Option<&SharedComm> {
        self.sync_bn.as_ref()
    }

    /// The model's tensors.
    pub fn store(&self) -> &ParamStore {
        match &self.store {
            Store::Shared(s) => s,
            Store::Exclusive(s) => s,
        }
    }

    /// Replaces the stored tensor `name` (batch norm's running statistics, in training).
    pub(crate) fn set(&mut self, name: &str, tensor: Tensor) -> Result<()> {
        match &mut self.store {
            Store::Exclusive(s) => s.set(name, tensor),
            Store::Shared(_) => {
                arg_err!("{name:?} cannot be updated in an evaluation pass, which only reads")
            }
        }
    }

    /// The stored tensor `name` as a tape leaf whose gradient is reported under `name`.
    pub fn param(&self, name: &str) -> Result<Var> {
        Ok(self.tape.param(name, self.store().get(name)?.clone()))
    }

    /// A fresh seed for the next random layer (dropout).
    pub(crate) fn next_seed(&mut self) -> u64 {
        self.seed = self
            .seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.seed
    }
}
