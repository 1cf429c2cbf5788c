//! VGG (Simonyan and Zisserman, 2014), built as torchvision builds it: `features` from the
//! paper's Table 1 (3×3 convolutions, "M" a 2×2 max pool), optional batch norm, a 7×7
//! adaptive average pool and the three-layer `classifier`.

use crate::autograd::Var;
use crate::error::{Result, arg_err};
use crate::nn::{
    Activation, AdaptiveAvgPool2d, BatchNorm2d, BatchNorm2dConfig, Conv2d, Conv2dConfig, Ctx,
    Dropout, Fan, Flatten, Init, Linear, LinearConfig, MaxPool2d, Module, Scope, Sequential,
};
use crate::ops::pool::Pool2d;

/// One entry of a configuration: a 3×3 convolution to this many channels, or a max pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    /// 3×3 convolution, padding 1, to this many channels (then ReLU).
    Conv(usize),
    /// 2×2 max pool, stride 2 ("M" in the paper).
    Pool,
}

use Layer::{Conv as C, Pool as M};

/// Configuration A: VGG-11.
#[rustfmt::skip]
pub const VGG11: &[Layer] = &[C(64), M, C(128), M, C(256), C(256), M, C(512), C(512), M, C(512), C(512), M];
/// Configuration B: VGG-13.
#[rustfmt::skip]
pub const VGG13: &[Layer] = &[
    C(64), C(64), M, C(128), C(128), M, C(256), C(256), M, C(512), C(512), M, C(512), C(512), M,
];
/// Configuration D: VGG-16.
#[rustfmt::skip]
pub const VGG16: &[Layer] = &[
    C(64), C(64), M, C(128), C(128), M, C(256), C(256), C(256), M, C(512), C(512), C(512), M,
    C(512), C(512), C(512), M,
];
/// Configuration E: VGG-19.
#[rustfmt::skip]
pub const VGG19: &[Layer] = &[
    C(64), C(64), M, C(128), C(128), M, C(256), C(256), C(256), C(256), M, C(512), C(512),
    C(512), C(512), M, C(512), C(512), C(512), C(512), M,
];

/// VGG: `features`, 7×7 adaptive average pool, `classifier` (4096, 4096, classes).
pub struct Vgg {
    features: Sequential,
    classifier: Sequential,
}

impl Vgg {
    /// Builds VGG from `layers` (one of [`VGG11`] … [`VGG19`]), with batch norm after each
    /// convolution when `batch_norm`, initialized as torchvision initializes it. At 32×32
    /// input the five pools leave 1×1, which the adaptive pool spreads to 7×7: the network
    /// runs unchanged on CIFAR-sized images.
    pub fn new(
        scope: &mut Scope,
        layers: &[Layer],
        batch_norm: bool,
        num_classes: usize,
    ) -> Result<Self> {
        if num_classes == 0 {
            return arg_err!("VGG: num_classes must be positive");
        }
        let conv = Conv2dConfig::new(3)
            .padding(1)
            .init(Init::KaimingNormal(Fan::Out));
        let mut c_in = 3;
        let features = Sequential::build(&mut scope.pp("features"), |l| {
            for layer in layers {
                match *layer {
                    Layer::Pool => {
                        l.add_plain(MaxPool2d(Pool2d::new((2, 2))));
                    }
                    Layer::Conv(c_out) => {
                        l.add(|s| Conv2d::new(s, c_in, c_out, conv))?;
                        if batch_norm {
                            l.add(|s| BatchNorm2d::new(s, c_out, BatchNorm2dConfig::default()))?;
                        }
                        l.add_plain(Activation::Relu);
                        c_in = c_out;
                    }
                }
            }
            Ok(())
        })?;
        let linear = LinearConfig::init_zero_bias(Init::Normal {
            mean: 0.0,
            std: 0.01,
        });
        let classifier = Sequential::build(&mut scope.pp("classifier"), |l| {
            l.add(|s| Linear::new(s, c_in * 7 * 7, 4096, linear))?;
            l.add_plain(Activation::Relu);
            l.add_plain(Dropout { p: 0.5 });
            l.add(|s| Linear::new(s, 4096, 4096, linear))?;
            l.add_plain(Activation::Relu);
            l.add_plain(Dropout { p: 0.5 });
            l.add(|s| Linear::new(s, 4096, num_classes, linear))?;
            Ok(())
        })?;
        Ok(Self {
            features,
            classifier,
        })
    }
}

impl Module for Vgg {
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let y = self.features.forward(ctx, x)?;
        let y = AdaptiveAvgPool2d((7, 7)).forward(ctx, &y)?;
        let y = Flatten::default().forward(ctx, &y)?;
        self.classifier.forward(ctx, &y)
    }
}
