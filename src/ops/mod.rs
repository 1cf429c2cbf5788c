//! Ops: one module per kernel family, mirroring `shaders/`. Each op checks its arguments,
//! returning an `Err` that names the shapes or values at fault, then records its dispatches.

mod batch_norm;
pub mod channels;
pub mod conv;
pub mod dropout;
pub mod elementwise;
pub mod linear;
pub mod loss;
pub mod matmul;
mod matmul_windows;
pub mod norm;
pub mod pool;
mod rank;
pub mod reduce;
pub mod softmax;

mod layout;
mod segments;
pub(crate) mod windows;

/// The most dimensions the strided kernels (broadcasting, reductions) index, after
/// neighbouring dimensions have been merged.
pub const MAX_KERNEL_DIMS: usize = 8;
