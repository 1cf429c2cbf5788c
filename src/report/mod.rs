//! Reports: a training run's per-epoch table and its curves as a PNG plot, and a
//! model's per-layer summary, and the pictures examples write.

pub mod image;
pub mod metrics;
pub mod plot;
pub mod summary;
