//! Reports of a training run: the curves as a PNG plot.

pub mod plot;
