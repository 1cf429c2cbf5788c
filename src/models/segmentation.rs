//! A small fully convolutional network for semantic segmentation: it down-samples with
//! strided convolutions, widens its receptive field with dilated ones, and up-samples
//! back with transposed convolutions, joined to the encoder's features by skip
//! connections (Long et al., 2015; Ronneberger et al., 2015; Yu and Koltun, 2016).
//!
//! - `encoder.0`: a 3×3 convolution at full resolution (its output is the first skip),
//!   then `encoder.1` and `encoder.2`, 3×3 stride-2 convolutions to 1/2 (the second
//!   skip) and 1/4 of the side.
//! - `context`: 3×3 convolutions at 1/4 with dilation rates [`CONTEXT_RATES`], each
//!   added to its input. Dilation grows the receptive field without parameters or
//!   down-sampling, but one rate repeated (2, 2, 2) only ever combines inputs at even
//!   offsets: a grid of holes ("gridding", Wang et al., 2018). Rates with no common
//!   factor, 1, 2 and 5, reach every offset within ±8 (see [`coverage`]).
//! - `decoder.0` and `decoder.2`: 4×4 stride-2 transposed convolutions back to 1/2 and
//!   to full resolution, each followed, after concatenating the skip of its resolution,
//!   by a 3×3 convolution (`decoder.1`, `decoder.3`).
//! - `head`: a 1×1 convolution to one score per class and pixel.
//!
//! Every convolution but the head is followed by batch norm and ReLU.

use crate::autograd::Var;
use crate::error::{Result, arg_err};
use crate::nn::{
    Activation, BatchNorm2d, BatchNorm2dConfig, Conv2d, Conv2dConfig, ConvTranspose2d,
    ConvTranspose2dConfig, Ctx, Fan, Init, Module, Scope, Sequential, conv_norm_act,
};

/// The context block's dilation rates: no common factor, so no gridding.
pub const CONTEXT_RATES: [usize; 3] = [1, 2, 5];

/// The offsets (along one axis, from -max to max) that stacked 3×3 convolutions with
/// dilation `rates` combine into one output: `true` where some path of taps reaches.
pub fn coverage(rates: &[usize]) -> Vec<bool> {
    let reach: usize = rates.iter().sum();
    let mut covered = vec![false; 2 * reach + 1];
    covered[reach] = true;
    for &r in rates {
        let before = covered.clone();
        for (i, &hit) in before.iter().enumerate() {
            if hit {
                covered[i - r] = true;
                covered[i + r] = true;
            }
        }
    }
    covered
}

fn conv(k: usize) -> Conv2dConfig {
    Conv2dConfig::new(k).init(Init::KaimingNormal(Fan::Out))
}

fn cbr(s: &mut Scope, c_in: usize, c_out: usize, cfg: Conv2dConfig) -> Result<Sequential> {
    let norm = BatchNorm2dConfig::default();
    conv_norm_act(s, c_in, c_out, cfg, norm, Some(Activation::Relu))
}

/// A transposed convolution doubling the side, batch norm, ReLU.
struct Up {
    conv: ConvTranspose2d,
    bn: BatchNorm2d,
}

impl Up {
    fn new(s: &mut Scope, c_in: usize, c_out: usize) -> Result<Self> {
        let cfg = ConvTranspose2dConfig::new(4)
            .stride(2)
            .padding(1)
            .bias(false)
            .init(Init::KaimingNormal(Fan::Out));
        Ok(Self {
            conv: ConvTranspose2d::new(&mut s.pp(0), c_in, c_out, cfg)?,
            bn: BatchNorm2d::new(&mut s.pp(1), c_out, BatchNorm2dConfig::default())?,
        })
    }
}

impl Module for Up {
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let y = self.conv.forward(ctx, x)?;
        let y = self.bn.forward(ctx, &y)?;
        ctx.tape.relu(&y)
    }
}

/// The network: see the module's documentation.
pub struct SegNet {
    encoder: [Sequential; 3],
    context: Vec<Sequential>,
    up: [Up; 2],
    fuse: [Sequential; 2],
    head: Conv2d,
}

impl SegNet {
    /// A network of base width `width` (channels at full resolution; doubled at each
    /// down-sampling) scoring `classes` classes per pixel. Its input sides must be
    /// multiples of 4.
    pub fn new(scope: &mut Scope, width: usize, classes: usize) -> Result<Self> {
        if width == 0 || classes == 0 {
            return arg_err!("SegNet: width {width} and classes {classes} must be positive");
        }
        let (c1, c2, c4) = (width, 2 * width, 4 * width);
        let same = |k: usize| conv(k).same_padding();
        let mut e = scope.pp("encoder");
        let encoder = [
            cbr(&mut e.pp(0), 3, c1, same(3))?,
            cbr(&mut e.pp(1), c1, c2, same(3).stride(2))?,
            cbr(&mut e.pp(2), c2, c4, same(3).stride(2))?,
        ];
        let mut c = scope.pp("context");
        let context = CONTEXT_RATES
            .iter()
            .enumerate()
            .map(|(i, &r)| cbr(&mut c.pp(i), c4, c4, conv(3).dilation(r).padding(r)))
            .collect::<Result<Vec<_>>>()?;
        let mut d = scope.pp("decoder");
        let up0 = Up::new(&mut d.pp(0), c4, c2)?;
        let fuse0 = cbr(&mut d.pp(1), 2 * c2, c2, same(3))?;
        let up1 = Up::new(&mut d.pp(2), c2, c1)?;
        let fuse1 = cbr(&mut d.pp(3), 2 * c1, c1, same(3))?;
        let head = Conv2d::new(&mut scope.pp("head"), c1, classes, conv(1))?;
        Ok(Self {
            encoder,
            context,
            up: [up0, up1],
            fuse: [fuse0, fuse1],
            head,
        })
    }
}

impl Module for SegNet {
    /// Scores `[N, classes, H, W]` for images `[N, 3, H, W]`.
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let multiple_of_4 = |d: usize| x.shape()[d].is_multiple_of(4);
        if x.shape().len() != 4 || !multiple_of_4(2) || !multiple_of_4(3) {
            return arg_err!(
                "SegNet: input {:?} must be [N, 3, H, W] with H and W multiples of 4",
                x.shape()
            );
        }
        let full = self.encoder[0].forward(ctx, x)?;
        let half = self.encoder[1].forward(ctx, &full)?;
        let mut y = self.encoder[2].forward(ctx, &half)?;
        for block in &self.context {
            let z = block.forward(ctx, &y)?;
            y = ctx.tape.add(&y, &z)?;
        }
        for (i, skip) in [&half, &full].into_iter().enumerate() {
            let up = self.up[i].forward(ctx, &y)?;
            let joined = ctx.tape.concat(&[&up, skip], 1)?;
            y = self.fuse[i].forward(ctx, &joined)?;
        }
        self.head.forward(ctx, &y)
    }
}

#[cfg(test)]
mod tests {
    use super::coverage;

    #[test]
    fn one_repeated_rate_leaves_holes_and_coprime_rates_do_not() {
        let holes = coverage(&[2, 2, 2]);
        assert_eq!(holes.len(), 13);
        assert!(holes.iter().step_by(2).all(|&c| c));
        assert!(holes.iter().skip(1).step_by(2).all(|&c| !c));
        assert!(coverage(&[1, 2, 5]).iter().all(|&c| c));
    }
}
