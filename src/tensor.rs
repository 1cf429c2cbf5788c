//! `Tensor`: an f32 array on the device, contiguous in row-major (NCHW) order.

use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result, arg_err, shape_err};
use crate::gpu::{Binding, Device, PooledBuffer};
use crate::rng::Rng;

/// An f32 tensor on a [`Device`]. Cloning is cheap and shares the storage; ops never
/// modify their inputs, so shared storage is never seen to change.
#[derive(Clone)]
pub struct Tensor {
    device: Device,
    storage: Arc<PooledBuffer>,
    /// Where the tensor starts in `storage`, in elements: 0, except for the windows ops
    /// take of tensors larger than one binding ([`Tensor::window`]).
    offset: usize,
    shape: Vec<usize>,
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor{:?}", self.shape)
    }
}

/// Elements in a tensor of `shape`, or an error when its bytes would overflow.
fn count(shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|n| n.checked_mul(4).is_some())
        .ok_or_else(|| Error::InvalidArgument(format!("shape {shape:?} has too many elements")))
}

/// Elements in a tensor of `shape` after checking that it fits one buffer, so nothing of
/// its size is allocated on the CPU first.
pub(crate) fn checked_count(device: &Device, shape: &[usize]) -> Result<usize> {
    let n = count(shape)?;
    device.check_size(|| format!("tensor {shape:?} (one buffer)"), n as u64 * 4)?;
    Ok(n)
}

impl Tensor {
    /// A tensor of `shape` whose contents are not yet written (the caller fills it).
    pub(crate) fn uninit(device: &Device, shape: &[usize]) -> Result<Tensor> {
        let bytes = checked_count(device, shape)? as u64 * 4;
        let tensor = Tensor {
            device: device.clone(),
            storage: Arc::new(device.storage(bytes)),
            offset: 0,
            shape: shape.to_vec(),
        };
        if let Some(value) = device.poison() {
            crate::ops::elementwise::fill(&tensor, value)?;
        }
        Ok(tensor)
    }

    /// A tensor of `shape` on the same device as `self`, contents not yet written.
    pub(crate) fn uninit_like(&self, shape: &[usize]) -> Result<Tensor> {
        Tensor::uninit(&self.device, shape)
    }

    /// A tensor holding `data` in row-major order; `data.len()` must equal the shape's count.
    pub fn from_vec(device: &Device, data: Vec<f32>, shape: &[usize]) -> Result<Tensor> {
        Tensor::from_slice(device, &data, shape)
    }

    /// Like [`Tensor::from_vec`], borrowing the data.
    pub fn from_slice(device: &Device, data: &[f32], shape: &[usize]) -> Result<Tensor> {
        let n = count(shape)?;
        if data.len() != n {
            return shape_err!(
                "from_vec: {} values do not fill shape {shape:?} ({n} elements)",
                data.len()
            );
        }
        let tensor = Tensor::uninit(device, shape)?;
        device.upload(&tensor.storage, bytemuck::cast_slice(data));
        Ok(tensor)
    }

    /// A tensor filled with `value`.
    pub fn full(device: &Device, shape: &[usize], value: f32) -> Result<Tensor> {
        let tensor = Tensor::uninit(device, shape)?;
        crate::ops::elementwise::fill(&tensor, value)?;
        Ok(tensor)
    }

    /// A tensor of zeros.
    pub fn zeros(device: &Device, shape: &[usize]) -> Result<Tensor> {
        Tensor::full(device, shape, 0.0)
    }

    /// A tensor of ones.
    pub fn ones(device: &Device, shape: &[usize]) -> Result<Tensor> {
        Tensor::full(device, shape, 1.0)
    }

    /// Standard-normal values; the same `seed` gives the same tensor on every run and adapter.
    pub fn randn(device: &Device, shape: &[usize], seed: u64) -> Result<Tensor> {
        let mut rng = Rng::new(seed);
        let n = checked_count(device, shape)?;
        let data = rng.normals(n, 0.0, 1.0);
        Tensor::from_vec(device, data, shape)
    }

    /// Values uniform in [0, 1); deterministic for a given `seed`.
    pub fn rand(device: &Device, shape: &[usize], seed: u64) -> Result<Tensor> {
        let mut rng = Rng::new(seed);
        let n = checked_count(device, shape)?;
        let data: Vec<f32> = (0..n).map(|_| rng.uniform() as f32).collect();
        Tensor::from_vec(device, data, shape)
    }

    /// `start, start + step, ...` up to but excluding `end`, as a 1-D tensor (like
    /// `torch.arange`).
    pub fn arange(device: &Device, start: f32, end: f32, step: f32) -> Result<Tensor> {
        if step == 0.0 || !step.is_finite() || !start.is_finite() || !end.is_finite() {
            return arg_err!("arange({start}, {end}, {step}): step must be finite and non-zero");
        }
        let n = ((end as f64 - start as f64) / step as f64).ceil().max(0.0);
        let bytes = n * 4.0;
        let limit = device.limits().max_storage_buffer_binding_size as f64;
        if bytes > limit {
            return arg_err!("arange({start}, {end}, {step}): {n} elements do not fit one tensor");
        }
        let n = n as usize;
        let data: Vec<f32> = (0..n)
            .map(|i| (start as f64 + i as f64 * step as f64) as f32)
            .collect();
        Tensor::from_vec(device, data, &[n])
    }

    /// Copies the values back to the CPU, in row-major order. Waits for pending work.
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        let bytes = self.device.read(
            &self.storage,
            self.offset as u64 * 4,
            self.numel() as u64 * 4,
        )?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// The single value of a one-element tensor.
    pub fn to_scalar(&self) -> Result<f32> {
        if self.numel() != 1 {
            return shape_err!(
                "to_scalar: tensor of shape {:?} is not one value",
                self.shape
            );
        }
        Ok(self.to_vec()?[0])
    }

    /// The same data under another shape with the same element count (no copy).
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        if count(shape)? != self.numel() {
            return shape_err!(
                "reshape: {:?} ({} elements) cannot become {shape:?} ({} elements)",
                self.shape,
                self.numel(),
                count(shape)?
            );
        }
        Ok(Tensor {
            device: self.device.clone(),
            storage: self.storage.clone(),
            offset: self.offset,
            shape: shape.to_vec(),
        })
    }

    /// The `shape`d tensor whose elements are this one's from `start` on, sharing its
    /// storage: a window that lets a kernel bind part of a tensor larger than one binding.
    /// `start` must keep the window's offset aligned for binding (see
    /// [`crate::ops::windows`]).
    pub(crate) fn window(&self, start: usize, shape: &[usize]) -> Result<Tensor> {
        let n = count(shape)?;
        let align = self.device.limits().min_storage_buffer_offset_alignment as usize;
        let offset = self.offset + start;
        if start + n > self.numel() || !(offset * 4).is_multiple_of(align) {
            return Err(Error::Internal(format!(
                "window {shape:?} at element {start} of tensor {:?}: past its end or not \
                 aligned to {align} bytes",
                self.shape
            )));
        }
        Ok(Tensor {
            device: self.device.clone(),
            storage: self.storage.clone(),
            offset,
            shape: shape.to_vec(),
        })
    }

    /// The sizes of the dimensions, outermost first.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of dimensions.
    pub fn ndim(&self) -> usize {
        self.shape.len()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The device holding the data.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The binding of this tensor's elements: from its offset, rounded up to 16 bytes
    /// (kernels read some operands as vec4s) within the buffer.
    pub(crate) fn buffer(&self) -> Binding<'_> {
        let offset = self.offset as u64 * 4;
        let bytes = (self.numel() as u64 * 4).max(4).next_multiple_of(16);
        Binding {
            buffer: &self.storage,
            offset,
            size: bytes.min(self.storage.size() - offset),
        }
    }

    /// Whether no other tensor shares this one's storage (no clone, view or reshape of
    /// it lives): then an op that owns it may write its result there, and nobody can see
    /// the change.
    pub(crate) fn is_sole_owner(&self) -> bool {
        Arc::strong_count(&self.storage) == 1 && self.offset == 0
    }

    /// Whether `self` and `other` are the same tensor: the same storage, offset and shape.
    pub(crate) fn is_same_tensor(&self, other: &Tensor) -> bool {
        self.shares_storage(other) && self.offset == other.offset && self.shape == other.shape
    }

    /// Whether `self` and `other` share storage.
    pub(crate) fn shares_storage(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.storage, &other.storage)
    }

    /// An error unless `other` lives on the same device.
    pub(crate) fn check_same_device(&self, other: &Tensor, op: &str) -> Result<()> {
        if !self.device.same_as(&other.device) {
            return arg_err!(
                "{op}: tensors {:?} and {:?} live on different devices",
                self.shape,
                other.shape
            );
        }
        Ok(())
    }
}
