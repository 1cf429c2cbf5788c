//! Training checkpoints as safetensors files.
//!
//! One file holds the model's parameters and buffers under their own names, the optimizer's
//! state under `optimizer.<name>` (all F32), and a text map (epoch, step, schedule and
//! optimizer meta) in the header's `__metadata__`. Any safetensors reader, PyTorch's
//! included, can open it. Saving writes `<path>.tmp`, syncs it and renames it over `path`,
//! so a crash mid-save leaves the previous checkpoint whole.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};
use crate::gpu::Device;
use crate::nn::ParamStore;
use crate::tensor::Tensor;

/// Prefix of the optimizer state's names in the file.
const OPTIMIZER_PREFIX: &str = "optimizer.";

/// A checkpoint as read from disk, not yet on a device.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Checkpoint {
    /// Every tensor in the file, sorted by name: name, shape, values in row-major order.
    /// Optimizer state is named `optimizer.<state name>`.
    pub tensors: Vec<(String, Vec<usize>, Vec<f32>)>,
    /// The header's `__metadata__` map (epoch, step, optimizer meta, ...).
    pub meta: BTreeMap<String, String>,
}

/// An `Error::InvalidArgument` naming the checkpoint file.
fn file_err(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("checkpoint {}: {what}", path.display()))
}

/// Writes the store's parameters and buffers, `optimizer_state` (as
/// [`crate::optim::Optimizer::state`] gives it) and `meta` to a safetensors file at `path`.
/// Each tensor is read back from the device once. The file is written as `<path>.tmp`,
/// synced, renamed over `path`, and the directory synced: a crash at any point leaves
/// either the old checkpoint or the new one, and a failed save removes the `.tmp` file.
pub fn save_checkpoint(
    path: impl AsRef<Path>,
    store: &ParamStore,
    optimizer_state: &[(String, Tensor)],
    meta: &BTreeMap<String, String>,
) -> Result<()> {
    let path = path.as_ref();
    let named: Vec<(String, &Tensor)> = store
        .iter_all()
        .map(|(name, t, _)| (name.to_string(), t))
        .chain(
            optimizer_state
                .iter()
                .map(|(name, t)| (format!("{OPTIMIZER_PREFIX}{name}"), t)),
        )
        .collect();
    let mut seen = HashSet::new();
    for (name, _) in &named {
        if !seen.insert(name.as_str()) {
            return Err(file_err(
                path,
                format!("two tensors would be saved as {name:?}"),
            ));
        }
    }
    // Little-endian bytes whatever the host, as the format requires.
    let mut data: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(named.len());
    for (name, tensor) in named {
        let bytes = tensor
            .to_vec()?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        data.push((name, tensor.shape().to_vec(), bytes));
    }
    let mut views = Vec::with_capacity(data.len());
    for (name, shape, bytes) in &data {
        let view = TensorView::new(Dtype::F32, shape.clone(), bytes)
            .map_err(|e| file_err(path, format!("tensor {name:?}: {e}")))?;
        views.push((name.as_str(), view));
    }
    let header_meta: HashMap<String, String> =
        meta.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let bytes = safetensors::serialize(views, Some(header_meta))
        .map_err(|e| file_err(path, format!("cannot serialize: {e}")))?;
    write_atomically(path, &bytes)
}

/// `<path>.tmp`, beside `path` (the rename must not cross file systems).
fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    let written = (|| -> std::result::Result<(), (&str, std::io::Error)> {
        let mut file = File::create(&tmp).map_err(|e| ("cannot create", e))?;
        file.write_all(bytes).map_err(|e| ("cannot write", e))?;
        // The data must be on disk before the rename makes it the checkpoint.
        file.sync_all().map_err(|e| ("cannot sync", e))?;
        drop(file);
        fs::rename(&tmp, path).map_err(|e| ("cannot rename over the checkpoint", e))
    })();
    if let Err((what, e)) = written {
        // Best effort: when the create itself failed there is nothing to remove.
        let _ = fs::remove_file(&tmp);
        return Err(file_err(path, format!("{what} ({}): {e}", tmp.display())));
    }
    sync_dir(path)
}

/// Syncs the directory holding `path`, so the rename itself survives a crash.
#[cfg(unix)]
fn sync_dir(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| file_err(path, format!("saved, but cannot sync its directory: {e}")))
}

/// Directories cannot be opened as files elsewhere; the rename is as durable as the OS
/// makes it.
#[cfg(not(unix))]
fn sync_dir(_path: &Path) -> Result<()> {
    Ok(())
}

/// Reads a checkpoint file. Anything wrong with it (missing, truncated, a bad header, a
/// tensor that is not F32) is an `Err` naming the file and the fault.
pub fn load_checkpoint(path: impl AsRef<Path>) -> Result<Checkpoint> {
    let path = path.as_ref();
    let bytes = fs::read(path).map_err(|e| file_err(path, format!("cannot read: {e}")))?;
    let invalid = |e: safetensors::SafeTensorError| {
        file_err(
            path,
            format!("not a valid safetensors file ({} bytes): {e}", bytes.len()),
        )
    };
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(invalid)?;
    let file = SafeTensors::deserialize(&bytes).map_err(invalid)?;
    let mut tensors = Vec::with_capacity(file.len());
    for (name, view) in file.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(file_err(
                path,
                format!(
                    "tensor {name:?} is {:?}, only F32 is supported",
                    view.dtype()
                ),
            ));
        }
        let values = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        tensors.push((name, view.shape().to_vec(), values));
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let meta = header
        .metadata()
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(Checkpoint { tensors, meta })
}

/// Puts a checkpoint's parameters and buffers into `store` and returns its optimizer state
/// on `device` (names without the `optimizer.` prefix, ready for
/// [`crate::optim::Optimizer::load_state`]). Every name and shape is checked first, and
/// every mismatch (missing, unexpected, different shape) is reported in one `Err`; the
/// store is then unchanged.
pub fn apply_checkpoint(
    ckpt: &Checkpoint,
    store: &mut ParamStore,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    let mut problems = Vec::new();
    let mut model: HashMap<&str, (&[usize], &[f32])> = HashMap::new();
    let mut optimizer: Vec<(&str, &[usize], &[f32])> = Vec::new();
    let mut seen = HashSet::new();
    for (name, shape, values) in &ckpt.tensors {
        if !seen.insert(name.as_str()) {
            problems.push(format!("{name:?} appears twice"));
            continue;
        }
        let numel = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if numel != Some(values.len()) {
            problems.push(format!(
                "{name:?} has {} values for shape {shape:?}",
                values.len()
            ));
        }
        if let Some(state) = name.strip_prefix(OPTIMIZER_PREFIX) {
            optimizer.push((state, shape, values));
        } else {
            model.insert(name, (shape, values));
        }
    }
    for (name, tensor, _) in store.iter_all() {
        match model.get(name) {
            None => problems.push(format!(
                "missing {name:?} (model shape {:?})",
                tensor.shape()
            )),
            Some((shape, _)) if *shape != tensor.shape() => problems.push(format!(
                "{name:?} has shape {shape:?} in the checkpoint, {:?} in the model",
                tensor.shape()
            )),
            Some(_) => {}
        }
    }
    let mut unexpected: Vec<_> = model
        .iter()
        .filter(|(name, _)| !store.contains(name))
        .map(|(name, (shape, _))| format!("unexpected {name:?} (shape {shape:?})"))
        .collect();
    unexpected.sort();
    problems.extend(unexpected);
    if !problems.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "checkpoint does not match the model ({} problems): {}",
            problems.len(),
            problems.join("; ")
        )));
    }
    // Upload everything before replacing anything, so a failed upload changes nothing.
    let mut uploaded = Vec::with_capacity(model.len());
    for (name, _, _) in store.iter_all() {
        let (shape, values) = model[name];
        uploaded.push((name.to_string(), Tensor::from_slice(device, values, shape)?));
    }
    let mut state = HashMap::with_capacity(optimizer.len());
    for (name, shape, values) in optimizer {
        state.insert(name.to_string(), Tensor::from_slice(device, values, shape)?);
    }
    for (name, tensor) in uploaded {
        store.set(&name, tensor)?;
    }
    Ok(state)
}
