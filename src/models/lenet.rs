//! LeNet-5 (LeCun et al., 1998), for tests and teaching: C1 (6 maps, 5×5), S2 (2×2
//! average), C3 (16, 5×5), S4, C5 (120, 5×5), F6 (84), the output layer; tanh between, as
//! the paper has it. It takes 32×32 images: MNIST's 28×28 padded by 2, or CIFAR-10's.

use crate::autograd::Var;
use crate::error::{Result, arg_err};
use crate::nn::{
    Activation, AvgPool2d, Conv2d, Conv2dConfig, Ctx, Flatten, Linear, LinearConfig, Module, Scope,
    Sequential,
};
use crate::ops::pool::Pool2d;

/// LeNet-5: `features` (C1 … C5) and `classifier` (F6, output).
pub struct LeNet5 {
    features: Sequential,
    classifier: Sequential,
}

impl LeNet5 {
    /// LeNet-5 for images of `in_channels` (1 for MNIST, 3 for CIFAR-10), with PyTorch's
    /// default initialization.
    pub fn new(scope: &mut Scope, in_channels: usize, num_classes: usize) -> Result<Self> {
        if num_classes == 0 || in_channels == 0 {
            return arg_err!("LeNet-5: in_channels and num_classes must be positive");
        }
        let subsample = AvgPool2d::new(Pool2d::new((2, 2)));
        let features = Sequential::build(&mut scope.pp("features"), |l| {
            l.add(|s| Conv2d::new(s, in_channels, 6, Conv2dConfig::new(5)))?;
            l.add_plain(Activation::Tanh);
            l.add_plain(subsample);
            l.add(|s| Conv2d::new(s, 6, 16, Conv2dConfig::new(5)))?;
            l.add_plain(Activation::Tanh);
            l.add_plain(subsample);
            l.add(|s| Conv2d::new(s, 16, 120, Conv2dConfig::new(5)))?;
            l.add_plain(Activation::Tanh);
            Ok(())
        })?;
        let classifier = Sequential::build(&mut scope.pp("classifier"), |l| {
            l.add(|s| Linear::new(s, 120, 84, LinearConfig::default()))?;
            l.add_plain(Activation::Tanh);
            l.add(|s| Linear::new(s, 84, num_classes, LinearConfig::default()))?;
            Ok(())
        })?;
        Ok(Self {
            features,
            classifier,
        })
    }
}

impl Module for LeNet5 {
    fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var> {
        let y = self.features.forward(ctx, x)?;
        let y = Flatten::default().forward(ctx, &y)?;
        self.classifier.forward(ctx, &y)
    }
}
