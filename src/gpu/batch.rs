//! Batched recording: dispatches append to one pending command encoder and compute pass;
//! the batch is submitted on read-back, on `Device::flush`, or when it passes its bound.
//!
//! Each dispatch's small parameter block goes into a CPU-side arena that is uploaded with
//! one `write_buffer` just before the batch is submitted. Queue order makes that safe even
//! while the previous batch, which used the same arena buffer, is still running.

/// Most dispatches in one batch before it is submitted on its own.
pub(crate) const MAX_DISPATCHES_PER_BATCH: usize = 1024;

/// The pending batch of work.
pub(crate) struct Batch {
    encoder: Option<wgpu::CommandEncoder>,
    pass: Option<wgpu::ComputePass<'static>>,
    /// Parameter blocks of this batch, laid out at `param_align` offsets.
    params: Vec<u8>,
    dispatches: usize,
}

impl Batch {
    pub(crate) fn new() -> Self {
        Self {
            encoder: None,
            pass: None,
            params: Vec::new(),
            dispatches: 0,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.encoder.is_none()
    }

    pub(crate) fn dispatches(&self) -> usize {
        self.dispatches
    }

    /// Whether a parameter block of `len` bytes still fits the arena of `capacity` bytes.
    pub(crate) fn params_fit(&self, len: usize, align: usize, capacity: usize) -> bool {
        self.params.len().next_multiple_of(align) + len <= capacity
    }

    /// Appends a parameter block; returns its offset in the arena.
    pub(crate) fn push_params(&mut self, data: &[u8], align: usize) -> u64 {
        let offset = self.params.len().next_multiple_of(align);
        self.params.resize(offset, 0);
        self.params.extend_from_slice(data);
        offset as u64
    }

    fn encoder(&mut self, device: &wgpu::Device) -> &mut wgpu::CommandEncoder {
        self.encoder.get_or_insert_with(|| {
            device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("liandan batch"),
            })
        })
    }

    /// The open compute pass, begun if needed.
    pub(crate) fn pass(&mut self, device: &wgpu::Device) -> &mut wgpu::ComputePass<'static> {
        if self.pass.is_none() {
            let pass = self
                .encoder(device)
                .begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("liandan compute"),
                    timestamp_writes: None,
                })
                .forget_lifetime();
            self.pass = Some(pass);
        }
        self.dispatches += 1;
        self.pass.as_mut().expect("pass just opened")
    }

    /// The encoder with no pass open, for copies.
    pub(crate) fn encoder_for_copy(&mut self, device: &wgpu::Device) -> &mut wgpu::CommandEncoder {
        self.pass = None;
        self.encoder(device)
    }

    /// Uploads the parameter arena and submits the batch; the batch is empty afterwards.
    pub(crate) fn submit(&mut self, queue: &wgpu::Queue, params_buffer: &wgpu::Buffer) {
        self.pass = None;
        if let Some(encoder) = self.encoder.take() {
            if !self.params.is_empty() {
                queue.write_buffer(params_buffer, 0, &self.params);
            }
            queue.submit([encoder.finish()]);
        }
        self.params.clear();
        self.dispatches = 0;
    }
}
