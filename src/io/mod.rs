//! Reading and writing files: safetensors checkpoints.

pub mod checkpoint;

pub use checkpoint::{
    Checkpoint, apply_checkpoint, load_checkpoint, load_state_dict, save_checkpoint,
    save_state_dict,
};
