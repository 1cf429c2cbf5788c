//! Shared test support: the device, random data, and comparison against references.

use std::cell::Cell;
use std::sync::OnceLock;

use liandan::gpu::loops::{LOOP_CAP, MIN_LOOP_BUDGET};
use liandan::{Device, Rng, Tensor};

/// A device with poisoning on (every tensor an op creates starts as NaN) and `budget`
/// loop iterations per invocation.
fn make_device(budget: Option<u64>) -> Device {
    let device = Device::new().unwrap_or_else(|e| panic!("kernel tests need an adapter: {e}"));
    device.set_poison(Some(f32::NAN));
    if let Some(budget) = budget {
        device.set_loop_budget(budget).unwrap();
    }
    device
}

thread_local! {
    /// The device `device()` hands out on this thread (each test runs on its own).
    static CURRENT: Cell<Option<&'static Device>> = const { Cell::new(None) };
}

/// The device the running test uses: the shared one (default loop budget), unless the
/// test runs inside [`with_device`].
pub fn device() -> &'static Device {
    static DEVICE: OnceLock<Device> = OnceLock::new();
    CURRENT
        .get()
        .unwrap_or_else(|| DEVICE.get_or_init(|| make_device(None)))
}

/// A device with the smallest loop budget: every op takes its split paths (segmented
/// reductions, split-K products, rows in column ranges) on small shapes.
pub fn tight_budget_device() -> &'static Device {
    static DEVICE: OnceLock<Device> = OnceLock::new();
    DEVICE.get_or_init(|| make_device(Some(MIN_LOOP_BUDGET)))
}

/// A device whose loop budget is lavapipe's whole cap: each op plans invocations that
/// loop right up to it, so an op that counts its loops short of what the driver counts
/// returns wrong numbers there (on lavapipe), where the default budget's margin would
/// hide it.
pub fn cap_budget_device() -> &'static Device {
    static DEVICE: OnceLock<Device> = OnceLock::new();
    DEVICE.get_or_init(|| make_device(Some(LOOP_CAP)))
}

/// Runs `f` with [`device()`] returning `d` on this thread.
pub fn with_device<R>(d: &'static Device, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<&'static Device>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT.set(self.0);
        }
    }
    let _restore = Restore(CURRENT.replace(Some(d)));
    f()
}

/// Sizes the sweeps draw from: the odd ones that catch edge handling, and a few others.
pub const ODD_SIZES: [usize; 9] = [1, 2, 3, 5, 7, 16, 33, 65, 4];

/// A random size from [`ODD_SIZES`].
pub fn odd_size(rng: &mut Rng) -> usize {
    ODD_SIZES[rng.below(ODD_SIZES.len() as u64) as usize]
}

/// A random shape of `ndim` dims whose element count stays under `max_numel`.
pub fn random_shape(rng: &mut Rng, ndim: usize, max_numel: usize) -> Vec<usize> {
    loop {
        let shape: Vec<usize> = (0..ndim).map(|_| odd_size(rng)).collect();
        if shape.iter().product::<usize>() <= max_numel {
            return shape;
        }
    }
}

/// `n` values uniform in [lo, hi), rounded to f32 (the reference sees exactly what the
/// GPU sees).
pub fn random_values(rng: &mut Rng, n: usize, lo: f64, hi: f64) -> Vec<f32> {
    (0..n).map(|_| rng.uniform_in(lo, hi) as f32).collect()
}

/// A tensor of random values and the same values widened to f64.
pub fn random_tensor(rng: &mut Rng, shape: &[usize], lo: f64, hi: f64) -> (Tensor, Vec<f64>) {
    let n = shape.iter().product();
    let values = random_values(rng, n, lo, hi);
    let tensor = Tensor::from_slice(device(), &values, shape).unwrap();
    (tensor, values.iter().map(|&v| v as f64).collect())
}

/// Asserts `got[i]` is within `rtol · max(|want[i]|, scale[i])` of `want[i]` for every i;
/// `scale` is the magnitude the rounding error grows with (1 for pointwise ops, the sum
/// of |terms| for sums and products). NaN anywhere fails.
pub fn assert_close_scaled(what: &str, got: &[f32], want: &[f64], scale: &[f64], rtol: f64) {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: {} values, expected {}",
        got.len(),
        want.len()
    );
    for i in 0..want.len() {
        let tol = rtol * want[i].abs().max(scale[i]);
        let diff = (got[i] as f64 - want[i]).abs();
        assert!(
            diff <= tol,
            "{what}: element {i} is {}, reference {} (|diff| {diff:e} > tol {tol:e})",
            got[i],
            want[i]
        );
    }
}

/// [`assert_close_scaled`] with scale 1 everywhere.
pub fn assert_close(what: &str, got: &[f32], want: &[f64], rtol: f64) {
    assert_close_scaled(what, got, want, &vec![1.0; want.len()], rtol);
}

/// Row-major strides of `shape`.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

/// The multi-index of flat position `i` in `shape`.
pub fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = i % shape[d];
        i /= shape[d];
    }
    idx
}

/// A device whose storage bindings hold only 64 KiB (16,384 floats): tensors past that
/// are split into windows by every op that supports them, on small shapes.
pub fn small_binding_device() -> &'static Device {
    static DEVICE: OnceLock<Device> = OnceLock::new();
    DEVICE.get_or_init(|| {
        let device = liandan::gpu::DeviceBuilder::from_env()
            .and_then(|b| b.max_binding_bytes(1 << 16).build())
            .unwrap_or_else(|e| panic!("kernel tests need an adapter: {e}"));
        device.set_poison(Some(f32::NAN));
        device
    })
}

/// A device in dry-run mode: launches are planned and checked but not run, so a model's
/// shapes and MACs are counted without its compute (the values are garbage).
pub fn dry_run_device() -> &'static Device {
    static DEVICE: OnceLock<Device> = OnceLock::new();
    DEVICE.get_or_init(|| {
        let device = make_device(None);
        device.set_poison(None);
        device.set_dry_run(true);
        device
    })
}
