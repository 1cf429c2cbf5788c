//! AlexNet (Krizhevsky et al., 2012), as torchvision builds it (the one-tower variant of
//! "One weird trick"), and ZFNet (Zeiler and Fergus, 2013): the same network with the
//! smaller first filters and strides the visualizations led to.

use crate::autograd::Var;
use crate::error::{Result, arg_err};
use crate::nn::{
    Activation, AdaptiveAvgPool2d, Conv2d, Conv2dConfig, Ctx, Dropout, Flatten, Linear,
    LinearConfig, MaxPool2d, Module, Scope, Sequential,
};
use crate::ops::pool::Pool2d;

/// One convolution of `features`: output channels, kernel, stride, padding, and whether a
/// 3×3 max pool (stride 2, this padding) follows.
#[derive(Clone, Copy, Debug)]
struct ConvLayer {
    channels: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    pool: Option<usize>,
}

const fn conv(
    channels: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    pool: Option<usize>,
) -> ConvLayer {
    ConvLayer {
        channels,
        kernel,
        stride,
        padding,
        pool,
    }
}

/// AlexNet's five convolutions (torchvision: 64, 192, 384, 256, 256 channels).
const ALEXNET: [ConvLayer; 5] = [
    conv(64, 11, 4, 2, Some(0)),
    conv(192, 5, 1, 2, Some(0)),
    conv(384, 3, 1, 1, None),
    conv(256, 3, 1, 1, None),
    conv(256, 3, 1, 1, Some(0)),
];

/// ZFNet's (its Figure 3): 7×7 stride-2 first filters instead of 11×11 stride 4, a
/// stride-2 second layer, 96 / 256 / 384 / 384 / 256 channels; 224×224 input gives the
/// same 6×6×256 before the classifier. (Its local contrast normalization is left out.)
const ZFNET: [ConvLayer; 5] = [
    conv(96, 7, 2, 1, Some(1)),
    conv(256, 5, 2, 0, Some(1)),
    conv(384, 3, 1, 1, None),
    conv(384, 3, 1, 1, None),
    conv(256, 3, 1, 1, Some(0)),
];

/// AlexNet or ZFNet: `features`, 6×6 adaptive average pool, `classifier`.
pub struct AlexNet {
    features: Sequential,
    classifier: Sequential,
}

impl AlexNet {
    /// torchvision's AlexNet. `cifar`: the first convolution at stride 1 instead of 4,
    /// for 32×32 input (nothing else changes).
    pub fn original(scope: &mut Scope, num_classes: usize, cifar: bool) -> Result<Self> {
        let mut layers = ALEXNET;
        if cifar {
            layers[0].stride = 1;
        }
        Self::new(scope, &layers, num_classes)
    }

    /// ZFNet. `cifar`: the first two convolutions at stride 1, for 32×32 input.
    pub fn zfnet(scope: &mut Scope, num_classes: usize, cifar: bool) -> Result<Self> {
        let mut layers = ZFNET;
        if cifar {
            layers[0].stride = 1;
            layers[1].stride = 1;
        }
        Self::new(scope, &layers, num_classes)
    }

    fn new(scope: &mut Scope, layers: &[ConvLayer], num_classes: usize) -> Result<Self> {
        if num_classes == 0 {
            return arg_err!("AlexNet: num_classes must be positive");
        }
        let mut c_in = 3;
        let features = Sequential::build(&mut scope.pp("features"), |l| {
            for layer in layers {
                let cfg = Conv2dConfig::new(layer.kernel)
                    .stride(layer.stride)
                    .padding(layer.padding);
                l.add(|s| Conv2d::new(s, c_in, layer.channels, cfg))?;
                l.add_plain(Activation::Relu);
                if let Some(p) = layer.pool {
                    l.add_plain(MaxPool2d(
                        Pool2d::new((3, 3)).stride((2, 2)).padding((p, p)),
                    ));
                }
                c_in = layer.channels;
            }
            Ok(())
        })?;
        let linear = LinearConfig::default();
        let classifier = Sequential::build(&mut scope.pp("classifier"), |l| {
            l.add_plain(Dropout { p: 0.5 });
            l.add(|s| Linear::new(s, c_in * 6 * 6, 4096, linear))?;
            l.add_plain(Activation::Relu);
            l.add_plain(Dropout { p: 0.5 });
            l.add(|s| Linear::new(s, 4096, 4096, linear))?;
            l.add_plain(Activation::Relu);
            l.add(|s| Linear::new(s, 4096, num_classes, linear))?;
            Ok(())
        })?;
        Ok(Self {
            features,
            classifier,
        })
    }
}

impl Module for AlexNet {
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let y = self.features.forward(ctx, x)?;
        let y = AdaptiveAvgPool2d((6, 6)).forward(ctx, &y)?;
        let y = Flatten::default().forward(ctx, &y)?;
        self.classifier.forward(ctx, &y)
    }
}
