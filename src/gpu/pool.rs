//! A pool of storage buffers, bucketed by size class.
//!
//! Buffers go back to the pool when the last handle drops and are handed out again for the
//! next request of the same class. All GPU work runs in one queue in recording order, so a
//! buffer released while earlier dispatches still read it is safe to reuse: every later use
//! is recorded after those dispatches, and wgpu orders them with barriers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What a pooled buffer is used for; each kind has its own free lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum BufferKind {
    /// Tensor storage: read and written by kernels, copy source and destination.
    Storage,
    /// Staging for read-back: mapped for reading on the CPU.
    ReadBack,
}

impl BufferKind {
    fn usages(self) -> wgpu::BufferUsages {
        match self {
            BufferKind::Storage => {
                wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST
            }
            BufferKind::ReadBack => wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        }
    }
}

/// Counters of the buffer pool, for tests and diagnostics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Buffers created on the device since the pool was made.
    pub allocations: u64,
    /// Requests served from a free list without creating a buffer.
    pub reuses: u64,
    /// Bytes held by all buffers the pool has created and not trimmed.
    pub bytes_held: u64,
    /// Buffers waiting in free lists right now.
    pub free_buffers: u64,
    /// Bytes of the buffers on loan right now (tensors alive, staging in flight).
    pub bytes_in_use: u64,
    /// The most `bytes_in_use` has been since the pool was made or
    /// [`crate::Device::reset_peak_memory`]: a workload's peak device memory.
    pub peak_bytes_in_use: u64,
}

#[derive(Default)]
struct PoolState {
    free: HashMap<(BufferKind, u64), Vec<wgpu::Buffer>>,
    stats: PoolStats,
}

/// The pool itself; cheap to clone (shared state).
#[derive(Clone)]
pub(crate) struct BufferPool {
    device: wgpu::Device,
    /// Upper bound of a class, so a rounded-up class never passes the binding limit.
    max_class: u64,
    state: Arc<Mutex<PoolState>>,
}

/// The size class a request of `bytes` falls in: four classes per power of two, so at most
/// a quarter of a buffer is slack, and never below 256 bytes.
pub(crate) fn size_class(bytes: u64) -> u64 {
    if bytes <= 256 {
        return 256;
    }
    let top = 63 - bytes.leading_zeros() as u64; // floor(log2(bytes))
    let step = 1u64 << (top - 2);
    bytes.div_ceil(step) * step
}

impl BufferPool {
    pub(crate) fn new(device: wgpu::Device, max_class: u64) -> Self {
        Self {
            device,
            max_class,
            state: Arc::default(),
        }
    }

    /// A buffer of at least `bytes` bytes. The caller has checked `bytes` against the limits.
    pub(crate) fn acquire(&self, kind: BufferKind, bytes: u64) -> PooledBuffer {
        // Near the limit the class would pass it; then the request is served exactly.
        let class = size_class(bytes).min(self.max_class.max(bytes.next_multiple_of(256)));
        let mut state = self.state.lock().unwrap();
        state.stats.bytes_in_use += class;
        state.stats.peak_bytes_in_use = state.stats.peak_bytes_in_use.max(state.stats.bytes_in_use);
        let reused = state.free.get_mut(&(kind, class)).and_then(Vec::pop);
        let buffer = match reused {
            Some(buffer) => {
                state.stats.reuses += 1;
                state.stats.free_buffers -= 1;
                buffer
            }
            None => {
                state.stats.allocations += 1;
                state.stats.bytes_held += class;
                drop(state);
                self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("liandan pooled buffer"),
                    size: class,
                    usage: kind.usages(),
                    mapped_at_creation: false,
                })
            }
        };
        PooledBuffer {
            buffer: Some(buffer),
            kind,
            class,
            pool: self.state.clone(),
        }
    }

    /// Starts measuring the peak from the bytes in use now.
    pub(crate) fn reset_peak(&self) {
        let mut state = self.state.lock().unwrap();
        state.stats.peak_bytes_in_use = state.stats.bytes_in_use;
    }

    pub(crate) fn stats(&self) -> PoolStats {
        self.state.lock().unwrap().stats
    }

    /// Destroys every buffer in the free lists, returning their memory to the device.
    pub(crate) fn trim(&self) {
        let mut state = self.state.lock().unwrap();
        let mut freed = 0;
        for ((_, class), buffers) in state.free.drain() {
            freed += class * buffers.len() as u64;
        }
        state.stats.bytes_held -= freed;
        state.stats.free_buffers = 0;
    }
}

/// A buffer on loan from the pool; it goes back when dropped.
pub(crate) struct PooledBuffer {
    buffer: Option<wgpu::Buffer>,
    kind: BufferKind,
    class: u64,
    pool: Arc<Mutex<PoolState>>,
}

impl PooledBuffer {
    pub(crate) fn raw(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("buffer present until drop")
    }

    /// The buffer's size in bytes (its size class: at least what was asked for).
    pub(crate) fn size(&self) -> u64 {
        self.class
    }
}

impl PooledBuffer {
    /// Destroys the buffer instead of returning it to the pool (for a buffer left in an
    /// unknown state, e.g. a mapping that never finished).
    pub(crate) fn discard(mut self) {
        if let Some(buffer) = self.buffer.take() {
            let mut state = self.pool.lock().unwrap();
            state.stats.bytes_held -= self.class;
            state.stats.bytes_in_use -= self.class;
            buffer.destroy();
        }
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let Some(buffer) = self.buffer.take() {
            let mut state = self.pool.lock().unwrap();
            state.stats.free_buffers += 1;
            state.stats.bytes_in_use -= self.class;
            state
                .free
                .entry((self.kind, self.class))
                .or_default()
                .push(buffer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::size_class;

    #[test]
    fn size_classes_cover_the_request_with_at_most_a_quarter_slack() {
        for bytes in [
            1u64,
            255,
            256,
            257,
            300,
            1000,
            1024,
            1025,
            4096 + 1,
            1 << 27,
        ] {
            let class = size_class(bytes);
            assert!(class >= bytes && class >= 256, "{bytes} -> {class}");
            assert!(class <= 256.max(bytes + bytes / 4), "{bytes} -> {class}");
        }
        assert_eq!(size_class(1025), 1280);
    }
}
