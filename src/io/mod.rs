//! Reading and writing files: safetensors checkpoints.

pub mod checkpoint;

pub use checkpoint::{Checkpoint, apply_checkpoint, load_checkpoint, save_checkpoint};
