//! The one interface every layer and model offers: a forward pass on the tape.

use crate::autograd::Var;
use crate::error::Result;
use crate::nn::{BatchNorm2d, Ctx};
use crate::ops::norm::BnAct;

/// Something with a forward pass: a layer, a block, a whole model. Its tensors live in
/// the [`crate::nn::ParamStore`] the context carries, so a module itself is only the
/// structure (names and hyperparameters) and can be shared freely.
pub trait Module {
    /// The output for input `x`, recorded on `ctx.tape` (for a model: the logits).
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var>;

    /// The main output and any auxiliary ones: GoogLeNet's and Inception v3's auxiliary
    /// classifiers give theirs in training (a loss adds them, weighted); by default there
    /// are none.
    fn forward_aux(&self, ctx: &mut Ctx, x: &Var) -> Result<(Var, Vec<Var>)> {
        Ok((self.forward(ctx, x)?, Vec::new()))
    }

    /// The activation this module is, when the module before it can take it into its
    /// own pass ([`Module::forward_then`]); by default none.
    fn fusable_activation(&self) -> Option<BnAct> {
        None
    }

    /// The output of this module followed by `act` in one fused op, when this module can
    /// fuse it (batch norm); by default `None`, and the caller runs the two apart.
    fn forward_then(&self, ctx: &mut Ctx, x: &Var, act: BnAct) -> Option<Result<Var>> {
        let _ = (ctx, x, act);
        None
    }

    /// This module as a batch norm, which a module before it may fold into its own pass
    /// ([`Module::forward_then_batch_norm`]); by default `None`.
    fn as_batch_norm(&self) -> Option<&BatchNorm2d> {
        None
    }

    /// The output of this module, then `bn`, then `act`, fused where this module can (a
    /// convolution without a bias): in training, the convolution writes the moments the
    /// batch norm's statistics merge (no pass of their own over its output); in
    /// evaluation on a tape that records nothing (inference), it folds the batch norm
    /// (running statistics) and `act` into its last step. By default `None`, and the
    /// caller runs them apart.
    fn forward_then_batch_norm(
        &self,
        ctx: &mut Ctx,
        x: &Var,
        bn: &BatchNorm2d,
        act: BnAct,
    ) -> Option<Result<Var>> {
        let _ = (ctx, x, bn, act);
        None
    }
}

/// Class probabilities `[N, classes]` of a classifier for images `x` `[N, C, H, W]`: one
/// forward pass in evaluation mode (batch norm's running statistics, no dropout) on a
/// tape that records nothing, then a softmax. For the class itself, read the result with
/// [`crate::Tensor::argmax`] or [`crate::Tensor::topk`].
pub fn predict(
    model: &dyn Module,
    store: &crate::nn::ParamStore,
    x: &crate::tensor::Tensor,
) -> Result<crate::tensor::Tensor> {
    let tape = crate::autograd::Tape::no_grad();
    let input = tape.input(x.clone());
    let logits = model.forward(&mut Ctx::eval(&tape, store), &input)?;
    logits.value().softmax()
}
