//! Neural-network building blocks: the parameter store and the layers that read it.

pub mod layers;
pub mod params;

pub use layers::{Activation, BatchNorm2d, Conv2d, ConvBnAct, Ctx, Dropout, Linear};
pub use params::ParamStore;
