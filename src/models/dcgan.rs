//! DCGAN for 32×32 images (Radford, Metz and Chintala, 2016), with the module names of
//! PyTorch's DCGAN example (`main.{i}`), one stage fewer for 32 pixels instead of 64.
//!
//! The generator maps noise `[N, nz, 1, 1]` to images `[N, 3, 32, 32]` in [-1, 1]: a 4×4
//! transposed convolution to a 4×4 grid, then three stride-2 transposed convolutions that
//! double it, batch norm and ReLU between, tanh at the end. The discriminator mirrors it
//! with stride-2 convolutions and LeakyReLU(0.2), batch norm after all but the first,
//! down to one logit per image (trained with binary cross-entropy with logits). The
//! paper's guidelines: no pooling, no fully connected hidden layers, batch norm in both,
//! weights from N(0, 0.02).

use crate::error::{Result, arg_err};
use crate::nn::{
    Activation, BatchNorm2d, BatchNorm2dConfig, Conv2d, Conv2dConfig, ConvTranspose2d,
    ConvTranspose2dConfig, Init, Scope, Sequential,
};

/// The paper's initializer for every convolution.
const INIT: Init = Init::Normal {
    mean: 0.0,
    std: 0.02,
};

fn bn(s: &mut Scope, c: usize) -> Result<BatchNorm2d> {
    BatchNorm2d::new(s, c, BatchNorm2dConfig::default())
}

fn check(what: &str, width: usize, nz: usize) -> Result<()> {
    if width == 0 || nz == 0 {
        return arg_err!("DCGAN {what}: width {width} and noise size {nz} must be positive");
    }
    Ok(())
}

/// The generator as a `Sequential` in `scope.main`: noise `[N, nz, 1, 1]` → images
/// `[N, 3, 32, 32]`; `width` is the last hidden layer's channels (the paper's 128 at 64
/// pixels; PyTorch's example uses 64).
pub fn generator(scope: &mut Scope, nz: usize, width: usize) -> Result<Sequential> {
    check("generator", width, nz)?;
    let up = |k: usize, s: usize, p: usize| {
        ConvTranspose2dConfig::new(k)
            .stride(s)
            .padding(p)
            .bias(false)
            .init(INIT)
    };
    Sequential::build(&mut scope.pp("main"), |l| {
        l.add(|s| ConvTranspose2d::new(s, nz, 4 * width, up(4, 1, 0)))?; // 4×4
        l.add(|s| bn(s, 4 * width))?;
        l.add_plain(Activation::Relu);
        l.add(|s| ConvTranspose2d::new(s, 4 * width, 2 * width, up(4, 2, 1)))?; // 8×8
        l.add(|s| bn(s, 2 * width))?;
        l.add_plain(Activation::Relu);
        l.add(|s| ConvTranspose2d::new(s, 2 * width, width, up(4, 2, 1)))?; // 16×16
        l.add(|s| bn(s, width))?;
        l.add_plain(Activation::Relu);
        l.add(|s| ConvTranspose2d::new(s, width, 3, up(4, 2, 1)))?; // 32×32
        l.add_plain(Activation::Tanh);
        Ok(())
    })
}

/// The discriminator as a `Sequential` in `scope.main`: images `[N, 3, 32, 32]` → one
/// logit each, `[N, 1, 1, 1]`.
pub fn discriminator(scope: &mut Scope, width: usize) -> Result<Sequential> {
    check("discriminator", width, 1)?;
    let down = |k: usize, s: usize, p: usize| {
        Conv2dConfig::new(k)
            .stride(s)
            .padding(p)
            .bias(false)
            .init(INIT)
    };
    let leaky = Activation::LeakyRelu(0.2);
    Sequential::build(&mut scope.pp("main"), |l| {
        l.add(|s| Conv2d::new(s, 3, width, down(4, 2, 1)))?; // 16×16
        l.add_plain(leaky);
        l.add(|s| Conv2d::new(s, width, 2 * width, down(4, 2, 1)))?; // 8×8
        l.add(|s| bn(s, 2 * width))?;
        l.add_plain(leaky);
        l.add(|s| Conv2d::new(s, 2 * width, 4 * width, down(4, 2, 1)))?; // 4×4
        l.add(|s| bn(s, 4 * width))?;
        l.add_plain(leaky);
        l.add(|s| Conv2d::new(s, 4 * width, 1, down(4, 1, 0)))?; // 1×1
        Ok(())
    })
}
