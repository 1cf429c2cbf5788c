//! The GPU layer: the only module that names wgpu types.
//!
//! [`Device`] picks an adapter and owns the queue, a buffer pool by size class, a pipeline
//! cache, and the pending batch of recorded dispatches.

mod batch;
mod device;
mod grid;
mod kernel;
mod kernel_profile;
pub mod loops;
mod pool;

pub use device::{AdapterSummary, BackendChoice, Device, DeviceBuilder, DeviceLimits};
pub use grid::{Grid, Launch};
pub use kernel::{COMMON_WGSL, Kernel, full_source, is_prelude};
pub use kernel_profile::KernelTime;
pub use pool::PoolStats;

pub(crate) use device::Binding;
pub(crate) use kernel::kernel;
pub(crate) use pool::PooledBuffer;
