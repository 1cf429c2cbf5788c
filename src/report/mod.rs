//! Reports of a training run: the per-epoch table and its curves as a PNG plot.

pub mod metrics;
pub mod plot;
