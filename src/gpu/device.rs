//! The device: adapter choice, and the entry points ops use to upload, dispatch and read.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::batch::{Batch, MAX_DISPATCHES_PER_BATCH};
use super::grid::Launch;
use super::kernel::{Kernel, PipelineCache};
use super::kernel_profile::{KernelProfile, KernelTime};
use super::loops::{DEFAULT_LOOP_BUDGET, LOOP_CAP, MIN_LOOP_BUDGET};
use super::pool::{BufferKind, BufferPool, PoolStats, PooledBuffer};
use crate::error::{Error, Result};

/// Bytes of the per-batch parameter arena (a uniform buffer bound at offsets).
const PARAMS_ARENA_BYTES: usize = 256 * 1024;

/// How to get a working adapter, for the `NoAdapter` error.
const HOW_TO_GET_AN_ADAPTER: &str = "on Debian/Ubuntu install the software Vulkan driver with \
    `apt-get install mesa-vulkan-drivers libvulkan1` (or run `make test`, which does it); \
    elsewhere install your GPU's driver";

/// Which graphics API to run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendChoice {
    /// Whatever is available, preferring Vulkan, Metal and DX12 over GL.
    Auto,
    /// Vulkan (Linux, Windows, Android; lavapipe as the software fallback).
    Vulkan,
    /// OpenGL / GLES.
    Gl,
    /// Metal (macOS, iOS).
    Metal,
    /// Direct3D 12 (Windows).
    Dx12,
}

impl BackendChoice {
    /// Parses the values of `LIANDAN_BACKEND`: `vulkan|gl|metal|dx12|auto`.
    pub fn parse(text: &str) -> Result<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(Self::Auto),
            "vulkan" | "vk" => Ok(Self::Vulkan),
            "gl" | "gles" | "opengl" => Ok(Self::Gl),
            "metal" => Ok(Self::Metal),
            "dx12" | "d3d12" => Ok(Self::Dx12),
            other => Err(Error::InvalidArgument(format!(
                "LIANDAN_BACKEND={other:?}: expected one of vulkan, gl, metal, dx12, auto"
            ))),
        }
    }

    fn backends(self) -> wgpu::Backends {
        match self {
            Self::Auto => wgpu::Backends::all(),
            Self::Vulkan => wgpu::Backends::VULKAN,
            Self::Gl => wgpu::Backends::GL,
            Self::Metal => wgpu::Backends::METAL,
            Self::Dx12 => wgpu::Backends::DX12,
        }
    }
}

/// What liandan runs on, in plain words.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    /// The adapter's name, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub name: String,
    /// `Vulkan`, `Gl`, `Metal`, `Dx12`.
    pub backend: String,
    /// `DiscreteGpu`, `IntegratedGpu`, `VirtualGpu`, `Cpu` or `Other`.
    pub device_type: String,
    /// Driver name and version information.
    pub driver: String,
    /// True for a software rasterizer (lavapipe, llvmpipe, WARP): slow, but real.
    pub is_software: bool,
    /// Smallest and largest subgroup size, when the adapter offers subgroup operations.
    pub subgroup_sizes: Option<(u32, u32)>,
}

/// A window of a buffer bound to one storage binding of a kernel: `size` bytes from
/// `offset`. A window never passes the device's binding limit (the launch is refused),
/// and its offset is a multiple of the storage offset alignment.
#[derive(Clone, Copy)]
pub(crate) struct Binding<'a> {
    pub(crate) buffer: &'a PooledBuffer,
    pub(crate) offset: u64,
    pub(crate) size: u64,
}

/// The device limits liandan requests and plans its launches with.
#[derive(Clone, Copy, Debug)]
pub struct DeviceLimits {
    /// Largest storage buffer binding, in bytes: the most one kernel sees of a tensor at
    /// once. Ops split larger tensors into windows of at most this size.
    pub max_storage_buffer_binding_size: u64,
    /// Largest buffer, in bytes: the largest tensor.
    pub max_buffer_size: u64,
    /// Storage windows start at multiples of this many bytes.
    pub min_storage_buffer_offset_alignment: u32,
    /// Workgroups per grid dimension in one dispatch.
    pub max_compute_workgroups_per_dimension: u32,
    /// Invocations in one workgroup.
    pub max_compute_invocations_per_workgroup: u32,
    /// Bytes of workgroup memory.
    pub max_compute_workgroup_storage_size: u32,
    /// Storage buffers one shader stage may bind.
    pub max_storage_buffers_per_shader_stage: u32,
}

/// Picks an adapter and makes a [`Device`]. `Device::new()` is `DeviceBuilder::from_env()`.
#[derive(Clone, Debug)]
pub struct DeviceBuilder {
    backend: BackendChoice,
    adapter_name: Option<String>,
    max_binding_bytes: Option<u64>,
    local_rank: usize,
}

impl Default for DeviceBuilder {
    fn default() -> Self {
        Self {
            backend: BackendChoice::Auto,
            adapter_name: None,
            max_binding_bytes: None,
            local_rank: 0,
        }
    }
}

impl DeviceBuilder {
    /// Reads `LIANDAN_BACKEND` (`vulkan|gl|metal|dx12|auto`) and `LIANDAN_ADAPTER` (a
    /// case-insensitive substring of the adapter's name).
    pub fn from_env() -> Result<Self> {
        let backend = match std::env::var("LIANDAN_BACKEND") {
            Ok(text) => BackendChoice::parse(&text)?,
            Err(_) => BackendChoice::Auto,
        };
        let adapter_name = std::env::var("LIANDAN_ADAPTER")
            .ok()
            .filter(|s| !s.is_empty());
        Ok(Self {
            backend,
            adapter_name,
            max_binding_bytes: None,
            local_rank: 0,
        })
    }

    /// For data-parallel ranks on one machine: the `rank`-th of the best adapters (those
    /// of the best kind, in the order the system lists them), wrapping around when there
    /// are fewer, so each rank of a box with several GPUs takes its own. Rank 0 is the
    /// default choice.
    pub fn local_rank(mut self, rank: usize) -> Self {
        self.local_rank = rank;
        self
    }

    /// Restricts the search to one backend.
    pub fn backend(mut self, backend: BackendChoice) -> Self {
        self.backend = backend;
        self
    }

    /// Picks the adapter whose name contains `name` (case-insensitive).
    pub fn adapter_name(mut self, name: impl Into<String>) -> Self {
        self.adapter_name = Some(name.into());
        self
    }

    /// Caps the storage binding size below the adapter's own (rounded down to a multiple
    /// of 256 bytes, at least 64 KiB): the engine then runs as on an adapter with that
    /// limit, splitting larger tensors. For tests and for checking a model will run on
    /// smaller adapters (WebGPU's default is 128 MiB).
    pub fn max_binding_bytes(mut self, bytes: u64) -> Self {
        self.max_binding_bytes = Some((bytes / 256 * 256).max(1 << 16));
        self
    }

    /// Finds the adapter and creates the device with the adapter's own limits (the
    /// binding size capped by [`DeviceBuilder::max_binding_bytes`]).
    pub fn build(self) -> Result<Device> {
        // GL only when asked for or when nothing else exists: probing it is slow and noisy.
        let wanted = self.backend.backends();
        let mut adapters = enumerate(wanted & !wgpu::Backends::GL);
        if adapters.is_empty() && wanted.contains(wgpu::Backends::GL) {
            adapters = enumerate(wgpu::Backends::GL);
        }
        if adapters.is_empty() {
            return Err(Error::NoAdapter(format!(
                "no adapter for backend {:?}; {HOW_TO_GET_AN_ADAPTER}",
                self.backend
            )));
        }
        let names: Vec<String> = adapters
            .iter()
            .map(|a| format!("{} ({:?})", a.get_info().name, a.get_info().backend))
            .collect();
        let wanted = self.adapter_name.as_deref().map(str::to_lowercase);
        let matching = adapters
            .into_iter()
            .filter(|a| match &wanted {
                Some(w) => a.get_info().name.to_lowercase().contains(w),
                None => true,
            })
            .collect::<Vec<_>>();
        let best = matching.iter().map(|a| preference(&a.get_info())).min();
        let mut best_ones: Vec<wgpu::Adapter> = matching
            .into_iter()
            .filter(|a| Some(preference(&a.get_info())) == best)
            .collect();
        let adapter = (!best_ones.is_empty())
            .then(|| {
                let i = self.local_rank % best_ones.len();
                best_ones.swap_remove(i)
            })
            .ok_or_else(|| {
                Error::NoAdapter(format!(
                    "no adapter name contains {:?} (LIANDAN_ADAPTER); found: {}",
                    self.adapter_name.unwrap_or_default(),
                    names.join(", ")
                ))
            })?;
        Device::from_adapter(adapter, self.max_binding_bytes)
    }
}

/// Every adapter of `backends`.
fn enumerate(backends: wgpu::Backends) -> Vec<wgpu::Adapter> {
    if backends.is_empty() {
        return Vec::new();
    }
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    pollster::block_on(instance.enumerate_adapters(backends))
}

/// Lower is better: real GPUs first, then software; native APIs before GL.
fn preference(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let kind = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    };
    let api = u8::from(info.backend == wgpu::Backend::Gl);
    (kind, api)
}

/// A GPU device with its queue, buffer pool, pipeline cache and pending batch of work.
/// Cheap to clone: clones share everything.
#[derive(Clone)]
pub struct Device {
    inner: Arc<Inner>,
}

struct Inner {
    device: wgpu::Device,
    queue: wgpu::Queue,
    summary: AdapterSummary,
    limits: wgpu::Limits,
    pool: BufferPool,
    pipelines: Mutex<PipelineCache>,
    batch: Mutex<Batch>,
    params_buffer: wgpu::Buffer,
    param_align: usize,
    /// The first error wgpu reported outside an error scope, surfaced at the next sync.
    reported_error: Arc<Mutex<Option<String>>>,
    /// 0, or `1 << 32 | value bits`: new tensors are filled with that value (see `set_poison`).
    poison: AtomicU64,
    /// Most loop iterations one invocation may run (see `set_loop_budget`).
    loop_budget: AtomicU64,
    /// Launches are checked but not run (see `set_dry_run`).
    dry_run: AtomicBool,
    /// Kernel launches recorded since the device was made.
    dispatches: AtomicU64,
    /// Per-kernel times, while profiling (see `set_kernel_profile`).
    kernel_profile: Mutex<Option<KernelProfile>>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("adapter", &self.inner.summary.name)
            .field("backend", &self.inner.summary.backend)
            .finish()
    }
}

impl Device {
    /// The adapter chosen by `LIANDAN_BACKEND` and `LIANDAN_ADAPTER`, or the best one found.
    pub fn new() -> Result<Self> {
        DeviceBuilder::from_env()?.build()
    }

    /// A builder to choose the backend and adapter in code.
    pub fn builder() -> DeviceBuilder {
        DeviceBuilder::default()
    }

    fn from_adapter(adapter: wgpu::Adapter, max_binding_bytes: Option<u64>) -> Result<Self> {
        let info = adapter.get_info();
        let features = adapter.features() & wgpu::Features::SUBGROUP;
        let mut limits = adapter.limits();
        if let Some(cap) = max_binding_bytes {
            limits.max_storage_buffer_binding_size =
                limits.max_storage_buffer_binding_size.min(cap);
        }
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("liandan"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| Error::Device(format!("{} refused a device: {e}", info.name)))?;

        let reported_error: Arc<Mutex<Option<String>>> = Arc::default();
        let slot = reported_error.clone();
        device.on_uncaptured_error(Arc::new(move |error: wgpu::Error| {
            slot.lock()
                .unwrap()
                .get_or_insert_with(|| error.to_string());
        }));

        let subgroup_sizes = features
            .contains(wgpu::Features::SUBGROUP)
            .then_some((info.subgroup_min_size, info.subgroup_max_size));
        let summary = AdapterSummary {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            driver: format!("{} {}", info.driver, info.driver_info)
                .trim()
                .to_string(),
            is_software: info.device_type == wgpu::DeviceType::Cpu,
            subgroup_sizes,
        };
        let params_buffer = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("liandan params arena"),
            size: PARAMS_ARENA_BYTES as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let max_class = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        Ok(Device {
            inner: Arc::new(Inner {
                pool: BufferPool::new(device.clone(), max_class),
                param_align: limits.min_uniform_buffer_offset_alignment.max(16) as usize,
                device,
                queue,
                summary,
                limits,
                pipelines: Mutex::default(),
                batch: Mutex::new(Batch::new()),
                params_buffer,
                reported_error,
                poison: AtomicU64::new(0),
                loop_budget: AtomicU64::new(DEFAULT_LOOP_BUDGET),
                dry_run: AtomicBool::new(false),
                dispatches: AtomicU64::new(0),
                kernel_profile: Mutex::new(None),
            }),
        })
    }

    /// What adapter this device runs on.
    pub fn summary(&self) -> &AdapterSummary {
        &self.inner.summary
    }

    /// The limits this device was created with.
    pub fn limits(&self) -> DeviceLimits {
        let l = &self.inner.limits;
        DeviceLimits {
            max_storage_buffer_binding_size: l.max_storage_buffer_binding_size,
            max_buffer_size: l.max_buffer_size,
            min_storage_buffer_offset_alignment: l.min_storage_buffer_offset_alignment,
            max_compute_workgroups_per_dimension: l.max_compute_workgroups_per_dimension,
            max_compute_invocations_per_workgroup: l.max_compute_invocations_per_workgroup,
            max_compute_workgroup_storage_size: l.max_compute_workgroup_storage_size,
            max_storage_buffers_per_shader_stage: l.max_storage_buffers_per_shader_stage,
        }
    }

    /// Whether two `Device` values are the same device.
    pub fn same_as(&self, other: &Device) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// With `Some(value)`, every tensor an op creates is filled with `value` before the op
    /// writes it, so an element a kernel forgets to write shows up (use NaN). Costs one
    /// extra fill per tensor; meant for tests and debugging.
    pub fn set_poison(&self, value: Option<f32>) {
        let word = value.map_or(0, |v| (1u64 << 32) | u64::from(v.to_bits()));
        self.inner.poison.store(word, Ordering::Relaxed);
    }

    /// The value new tensors are filled with, if poisoning is on.
    pub fn poison(&self) -> Option<f32> {
        let word = self.inner.poison.load(Ordering::Relaxed);
        (word >> 32 == 1).then(|| f32::from_bits(word as u32))
    }

    /// The most loop iterations one kernel invocation may run, all its loops together
    /// (see [`crate::gpu::loops`]). Ops split longer work into several invocations.
    pub fn loop_budget(&self) -> u64 {
        self.inner.loop_budget.load(Ordering::Relaxed)
    }

    /// Sets the loop budget, within [`MIN_LOOP_BUDGET`]..=[`LOOP_CAP`]. A small budget
    /// makes every op take its split paths on small shapes (tests use it); results do not
    /// change beyond float rounding.
    pub fn set_loop_budget(&self, trips: u64) -> Result<()> {
        if !(MIN_LOOP_BUDGET..=LOOP_CAP).contains(&trips) {
            return Err(Error::InvalidArgument(format!(
                "loop budget {trips} must be within {MIN_LOOP_BUDGET}..={LOOP_CAP}"
            )));
        }
        self.inner.loop_budget.store(trips, Ordering::Relaxed);
        Ok(())
    }

    /// With `true`, kernel launches are planned and checked as always but not run:
    /// every tensor is allocated as in a real run, and holds garbage. For measuring a
    /// workload's memory and shapes without its compute (`model_summary` sizes a
    /// training step of any model this way).
    pub fn set_dry_run(&self, dry_run: bool) {
        self.inner.dry_run.store(dry_run, Ordering::Relaxed);
    }

    /// Kernel launches recorded on this device so far (a step's count is the difference
    /// across it).
    pub fn dispatch_count(&self) -> u64 {
        self.inner.dispatches.load(Ordering::Relaxed)
    }

    /// With `true`, every kernel launch from now on is submitted alone and waited for,
    /// and its time charged to its kernel (see [`Device::kernel_profile`]); `false` stops
    /// and forgets. Much slower: for finding where a workload's time goes.
    pub fn set_kernel_profile(&self, on: bool) {
        *self.inner.kernel_profile.lock().unwrap() = on.then(KernelProfile::default);
    }

    /// The per-kernel times gathered since [`Device::set_kernel_profile`]`(true)`,
    /// slowest first; empty when not profiling.
    pub fn kernel_profile(&self) -> Vec<KernelTime> {
        let profile = self.inner.kernel_profile.lock().unwrap();
        profile.as_ref().map_or_else(Vec::new, KernelProfile::rows)
    }

    /// Starts a new peak in [`PoolStats::peak_bytes_in_use`] from the memory in use now.
    pub fn reset_peak_memory(&self) {
        self.inner.pool.reset_peak();
    }

    /// Counters of the buffer pool.
    pub fn pool_stats(&self) -> PoolStats {
        self.inner.pool.stats()
    }

    /// Frees the buffers waiting in the pool (memory in use stays in use).
    pub fn trim_pool(&self) {
        self.inner.pool.trim();
    }

    /// How many distinct pipelines have been compiled so far.
    pub fn pipelines_compiled(&self) -> usize {
        self.inner.pipelines.lock().unwrap().len()
    }

    /// Submits the pending batch without waiting for it.
    pub fn flush(&self) -> Result<()> {
        self.submit_batch();
        self.take_reported_error()
    }

    /// Submits the pending batch and waits until the device has finished all work.
    pub fn synchronize(&self) -> Result<()> {
        self.submit_batch();
        self.wait()?;
        self.take_reported_error()
    }

    fn submit_batch(&self) {
        let mut batch = self.inner.batch.lock().unwrap();
        batch.submit(&self.inner.queue, &self.inner.params_buffer);
    }

    fn wait(&self) -> Result<()> {
        self.inner
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| Error::Device(format!("waiting for the device failed: {e}")))
    }

    fn take_reported_error(&self) -> Result<()> {
        match self.inner.reported_error.lock().unwrap().take() {
            Some(message) => Err(Error::Device(message)),
            None => Ok(()),
        }
    }

    /// Checks that a tensor of `bytes` fits one buffer.
    pub(crate) fn check_size(&self, what: impl FnOnce() -> String, bytes: u64) -> Result<()> {
        let limit = self.inner.limits.max_buffer_size;
        if bytes > limit {
            return Err(Error::TooLarge {
                what: what(),
                bytes,
                limit,
            });
        }
        Ok(())
    }

    /// Refuses windows past the binding limit or off the offset alignment: an op that
    /// lets one through has not split its tensors, and wgpu would otherwise fail on
    /// validation instead of returning an `Err`.
    fn check_bindings(&self, kernel: &Kernel, entry: &str, buffers: &[Binding]) -> Result<()> {
        let limits = &self.inner.limits;
        let align = u64::from(limits.min_storage_buffer_offset_alignment);
        for (i, b) in buffers.iter().enumerate() {
            if b.size > limits.max_storage_buffer_binding_size {
                return Err(Error::TooLarge {
                    what: format!(
                        "operand {i} of {}:{entry} (one storage binding; this op does not \
                         split its tensors into windows)",
                        kernel.name
                    ),
                    bytes: b.size,
                    limit: limits.max_storage_buffer_binding_size,
                });
            }
            if b.size == 0 || !b.offset.is_multiple_of(align) || b.offset + b.size > b.buffer.size()
            {
                return Err(Error::Internal(format!(
                    "{}:{entry}: operand {i} window {}+{} of a {}-byte buffer is empty, \
                     past its end or not aligned to {align}",
                    kernel.name,
                    b.offset,
                    b.size,
                    b.buffer.size()
                )));
            }
        }
        Ok(())
    }

    /// A storage buffer of at least `bytes` bytes from the pool; contents undefined.
    pub(crate) fn storage(&self, bytes: u64) -> PooledBuffer {
        self.inner.pool.acquire(BufferKind::Storage, bytes)
    }

    /// Writes `data` to the start of `buffer`, after all work recorded so far.
    pub(crate) fn upload(&self, buffer: &PooledBuffer, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        // write_buffer runs before the next submission's commands; submitting the pending
        // batch first keeps the write after every dispatch recorded so far.
        let mut batch = self.inner.batch.lock().unwrap();
        if !batch.is_empty() {
            batch.submit(&self.inner.queue, &self.inner.params_buffer);
        }
        self.inner.queue.write_buffer(buffer.raw(), 0, data);
    }

    /// Reads `bytes` bytes of `buffer` from `offset` once all recorded work has run.
    pub(crate) fn read(&self, buffer: &PooledBuffer, offset: u64, bytes: u64) -> Result<Vec<u8>> {
        if bytes == 0 {
            return Ok(Vec::new());
        }
        let staging = self.inner.pool.acquire(BufferKind::ReadBack, bytes);
        {
            let mut batch = self.inner.batch.lock().unwrap();
            batch
                .encoder_for_copy(&self.inner.device)
                .copy_buffer_to_buffer(buffer.raw(), offset, staging.raw(), 0, bytes);
            batch.submit(&self.inner.queue, &self.inner.params_buffer);
        }
        let slice = staging.raw().slice(..bytes);
        let (sender, receiver) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |result| {
            let _ = sender.send(result);
        });
        if let Err(e) = self.wait() {
            staging.discard(); // its mapping may still be pending: keep it out of the pool
            return Err(e);
        }
        let mapped = receiver
            .recv()
            .map_err(|_| Error::Device("read-back never completed".into()))?;
        let data = match mapped {
            Ok(()) => {
                let data = slice.get_mapped_range().map(|view| view.to_vec());
                staging.raw().unmap();
                data.map_err(|e| Error::Device(format!("reading a mapped buffer failed: {e:?}")))
            }
            Err(e) => Err(Error::Device(format!(
                "mapping a read-back buffer failed: {e}"
            ))),
        };
        self.take_reported_error()?;
        data
    }

    /// Records one kernel launch. Storage `buffers` bind at 0..n in order; `params`, when
    /// not empty, is a uniform block bound at n. A launch whose invocations would loop
    /// past the loop budget is refused: an op that lets that happen has a bug, and the
    /// kernel would otherwise return wrong numbers on lavapipe.
    pub(crate) fn dispatch(
        &self,
        kernel: &Kernel,
        entry: &'static str,
        overrides: &[(&'static str, f64)],
        buffers: &[Binding],
        params: &[u32],
        launch: Launch,
    ) -> Result<()> {
        if self.inner.kernel_profile.lock().unwrap().is_none() {
            return self.record(kernel, entry, overrides, buffers, params, launch);
        }
        // Profiling: what came before runs first, then this launch alone.
        self.synchronize()?;
        let start = std::time::Instant::now();
        self.record(kernel, entry, overrides, buffers, params, launch)?;
        self.synchronize()?;
        let seconds = start.elapsed().as_secs_f64();
        if let Some(profile) = self.inner.kernel_profile.lock().unwrap().as_mut() {
            profile.add(format!("{}:{entry}", kernel.name), seconds);
        }
        Ok(())
    }

    /// Records one kernel launch into the pending batch (see `dispatch`).
    fn record(
        &self,
        kernel: &Kernel,
        entry: &'static str,
        overrides: &[(&'static str, f64)],
        buffers: &[Binding],
        params: &[u32],
        launch: Launch,
    ) -> Result<()> {
        self.check_bindings(kernel, entry, buffers)?;
        let budget = self.loop_budget();
        if launch.trips > budget {
            return Err(Error::Internal(format!(
                "{}:{entry} would run {} loop iterations per invocation, past the loop \
                 budget of {budget} (lavapipe stops loops silently at {LOOP_CAP}); the op \
                 should have split this work",
                kernel.name, launch.trips
            )));
        }
        let [x, y, z] = launch
            .grid
            .fold(self.inner.limits.max_compute_workgroups_per_dimension)?;
        if x == 0 || y == 0 || z == 0 || self.inner.dry_run.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.inner.dispatches.fetch_add(1, Ordering::Relaxed);
        let pipeline =
            self.inner
                .pipelines
                .lock()
                .unwrap()
                .get(&self.inner.device, kernel, entry, overrides);

        let mut param_bytes: Vec<u8> = bytemuck::cast_slice(params).to_vec();
        param_bytes.resize(param_bytes.len().next_multiple_of(16), 0);
        let align = self.inner.param_align;
        let mut batch = self.inner.batch.lock().unwrap();
        if batch.dispatches() >= MAX_DISPATCHES_PER_BATCH
            || !batch.params_fit(param_bytes.len(), align, PARAMS_ARENA_BYTES)
        {
            batch.submit(&self.inner.queue, &self.inner.params_buffer);
        }
        let mut entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: b.buffer.raw(),
                    offset: b.offset,
                    size: std::num::NonZeroU64::new(b.size),
                }),
            })
            .collect();
        if !param_bytes.is_empty() {
            let offset = batch.push_params(&param_bytes, align);
            entries.push(wgpu::BindGroupEntry {
                binding: buffers.len() as u32,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &self.inner.params_buffer,
                    offset,
                    size: std::num::NonZeroU64::new(param_bytes.len() as u64),
                }),
            });
        }
        let bind_group = self
            .inner
            .device
            .create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(entry),
                layout: &pipeline.layout,
                entries: &entries,
            });
        let pass = batch.pass(&self.inner.device);
        pass.set_pipeline(&pipeline.pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(x, y, z);
        Ok(())
    }
}
