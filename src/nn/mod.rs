//! Neural-network building blocks: the parameter store and the layers that read it.

pub mod layers;
pub mod module;
pub mod params;

pub use layers::{
    Activation, BatchNorm2d, Conv2d, ConvBnAct, ConvTranspose2d, Ctx, Dropout, Linear,
    SqueezeExcite,
};
pub use module::Module;
pub use params::ParamStore;
