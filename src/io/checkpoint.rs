//! Training checkpoints as safetensors files.
//!
//! One file holds the model's parameters and buffers under their own names (F32; counters
//! such as batch norm's `num_batches_tracked` as I64 scalars, as PyTorch saves them), the
//! optimizer's state tensors under `optimizer.<name>` (F32), and text in the header's
//! `__metadata__`:
//! - the run's own entries (epoch, step, schedule, the model's name and configuration —
//!   whatever the caller passes);
//! - the optimizer's text state under `optimizer.<key>`;
//! - `format` = [`FORMAT`], and a CRC-32 of every tensor's bytes (`checksum.<name>`) and of
//!   all the other text (`checksum.meta`), so a flipped bit or an edited entry is an
//!   `Err` naming what is damaged, not a quietly wrong model.
//!
//! Any safetensors reader, PyTorch's included, can open the file, and files written by
//! others (a torchvision `state_dict` saved with safetensors) load too: without the
//! `format` entry there are no checksums to verify. Saving writes `<path>.tmp`, syncs it
//! and renames it over `path`, so a crash mid-save leaves the previous checkpoint whole.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};
use crate::gpu::Device;
use crate::nn::{ParamKind, ParamStore};
use crate::optim::Optimizer;
use crate::tensor::Tensor;

/// Prefix of the optimizer's state, tensors and text alike.
const OPTIMIZER_PREFIX: &str = "optimizer.";
/// Prefix of the checksums in the header.
const CHECKSUM_PREFIX: &str = "checksum.";
/// The checksum of the header's other entries.
const META_CHECKSUM: &str = "checksum.meta";
/// Header entry marking a liandan checkpoint (which carries checksums).
const FORMAT_KEY: &str = "format";
/// Its value.
pub const FORMAT: &str = "liandan-checkpoint-1";
/// How many mismatches an error lists before it only counts the rest.
const PROBLEMS_LISTED: usize = 12;

/// One tensor as read from a file: name, shape, values in row-major order.
pub type NamedValues = (String, Vec<usize>, Vec<f32>);

/// A checkpoint as read from disk, not yet on a device.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Checkpoint {
    /// The model's tensors (parameters and buffers), sorted by name.
    pub tensors: Vec<NamedValues>,
    /// The optimizer's state tensors, names without the `optimizer.` prefix, sorted.
    pub optimizer_tensors: Vec<NamedValues>,
    /// The optimizer's text state (kind, step counts), keys without the prefix.
    pub optimizer_meta: BTreeMap<String, String>,
    /// The run's entries as the saver passed them (epoch, step, model configuration...).
    pub meta: BTreeMap<String, String>,
}

/// An `Error::InvalidArgument` naming the checkpoint file.
fn file_err(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("checkpoint {}: {what}", path.display()))
}

/// The CRC-32 of `bytes`, as the header stores it.
fn checksum(bytes: &[u8]) -> String {
    format!("crc32:{:08x}", crc32fast::hash(bytes))
}

/// The CRC-32 of every header entry but the checksums, in key order.
fn meta_checksum(header: &BTreeMap<String, String>) -> String {
    let mut hasher = crc32fast::Hasher::new();
    for (key, value) in header {
        if !key.starts_with(CHECKSUM_PREFIX) {
            for part in [key.as_bytes(), &[0], value.as_bytes(), &[0]] {
                hasher.update(part);
            }
        }
    }
    format!("crc32:{:08x}", hasher.finalize())
}

/// Writes the store's parameters and buffers, the optimizer's state (when given) and
/// `meta` to a safetensors file at `path`. Each tensor is read back from the device once.
/// The file is written as `<path>.tmp`, synced, renamed over `path`, and the directory
/// synced: a crash at any point leaves either the old checkpoint or the new one, and a
/// failed save removes the `.tmp` file. An `Err` for a `meta` key the file reserves
/// (`format`, `optimizer.*`, `checksum.*`) or two tensors that would share a name.
pub fn save_checkpoint(
    path: impl AsRef<Path>,
    store: &ParamStore,
    optimizer: Option<&dyn Optimizer>,
    meta: &BTreeMap<String, String>,
) -> Result<()> {
    let path = path.as_ref();
    if let Some(key) = meta.keys().find(|k| {
        *k == FORMAT_KEY || k.starts_with(OPTIMIZER_PREFIX) || k.starts_with(CHECKSUM_PREFIX)
    }) {
        return Err(file_err(
            path,
            format!("the entry {key:?} is reserved for the file itself"),
        ));
    }
    let optimizer_state = optimizer.map(|o| o.state()).unwrap_or_default();
    // Counters are whole numbers, saved as I64 as PyTorch saves them (so PyTorch's
    // `load_state_dict` takes the file as it is); everything else F32.
    let named: Vec<(String, &Tensor, Dtype)> = store
        .iter_all()
        .map(|(name, t, kind)| {
            let dtype = match kind {
                ParamKind::Counter => Dtype::I64,
                _ => Dtype::F32,
            };
            (name.to_string(), t, dtype)
        })
        .chain(
            optimizer_state
                .iter()
                .map(|(name, t)| (format!("{OPTIMIZER_PREFIX}{name}"), t, Dtype::F32)),
        )
        .collect();
    let mut seen = HashSet::new();
    for (name, _, _) in &named {
        if !seen.insert(name.as_str()) {
            return Err(file_err(
                path,
                format!("two tensors would be saved as {name:?}"),
            ));
        }
    }
    let mut header = meta.clone();
    header.insert(FORMAT_KEY.into(), FORMAT.into());
    for (key, value) in optimizer.map(|o| o.state_meta()).unwrap_or_default() {
        header.insert(format!("{OPTIMIZER_PREFIX}{key}"), value);
    }
    let mut data = Vec::with_capacity(named.len());
    for (name, tensor, dtype) in named {
        let bytes = file_bytes(tensor, dtype)?;
        header.insert(format!("{CHECKSUM_PREFIX}{name}"), checksum(&bytes));
        data.push((name, tensor.shape().to_vec(), bytes, dtype));
    }
    header.insert(META_CHECKSUM.into(), meta_checksum(&header));
    write_safetensors(path, &data, Some(header))
}

/// One tensor as saved: name, shape, bytes, dtype.
type Saved = (String, Vec<usize>, Vec<u8>, Dtype);

/// A tensor's values as the file holds them: little-endian whatever the host, as the
/// format requires; counters as I64.
fn file_bytes(tensor: &Tensor, dtype: Dtype) -> Result<Vec<u8>> {
    let values = tensor.to_vec()?;
    Ok(match dtype {
        Dtype::I64 => values
            .iter()
            .flat_map(|v| (v.round() as i64).to_le_bytes())
            .collect(),
        _ => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    })
}

fn write_safetensors(
    path: &Path,
    data: &[Saved],
    header: Option<BTreeMap<String, String>>,
) -> Result<()> {
    let mut views = Vec::with_capacity(data.len());
    for (name, shape, bytes, dtype) in data {
        let view = TensorView::new(*dtype, shape.clone(), bytes)
            .map_err(|e| file_err(path, format!("tensor {name:?}: {e}")))?;
        views.push((name.as_str(), view));
    }
    let header = header.map(|h| h.into_iter().collect::<HashMap<String, String>>());
    let bytes = safetensors::serialize(views, header)
        .map_err(|e| file_err(path, format!("cannot serialize: {e}")))?;
    write_atomically(path, &bytes)
}

/// Writes the store's parameters and buffers as PyTorch's
/// `safetensors.torch.save_file(model.state_dict(), path)` would: the tensors under their
/// `state_dict` keys (F32; counters such as `num_batches_tracked` I64), nothing else in
/// the header. For weights to hand to PyTorch; [`save_checkpoint`] adds checksums and
/// the training state. Written atomically, as checkpoints are.
pub fn save_state_dict(path: impl AsRef<Path>, store: &ParamStore) -> Result<()> {
    let path = path.as_ref();
    let mut data = Vec::with_capacity(store.len());
    for (name, tensor, kind) in store.iter_all() {
        let dtype = match kind {
            ParamKind::Counter => Dtype::I64,
            _ => Dtype::F32,
        };
        data.push((
            name.to_string(),
            tensor.shape().to_vec(),
            file_bytes(tensor, dtype)?,
            dtype,
        ));
    }
    write_safetensors(path, &data, None)
}

/// Loads a `state_dict` file (torchvision's weights saved with safetensors, or one
/// [`save_state_dict`] or [`save_checkpoint`] wrote) into `store`: every name and shape
/// must match the model, or nothing changes and the `Err` lists what is missing,
/// unexpected or mis-shaped.
pub fn load_state_dict(
    path: impl AsRef<Path>,
    store: &mut ParamStore,
    device: &Device,
) -> Result<()> {
    apply_checkpoint(&load_checkpoint(path)?, store, device, None)
}

/// `<path>.tmp`, beside `path` (the rename must not cross file systems).
fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Writes `bytes` to `path` through a synced temporary file and a rename; used for
/// checkpoints and every other file a run must not leave half-written.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    let written = (|| -> std::result::Result<(), (&str, std::io::Error)> {
        let mut file = File::create(&tmp).map_err(|e| ("cannot create", e))?;
        file.write_all(bytes).map_err(|e| ("cannot write", e))?;
        // The data must be on disk before the rename makes it the file.
        file.sync_all().map_err(|e| ("cannot sync", e))?;
        drop(file);
        fs::rename(&tmp, path).map_err(|e| ("cannot rename over the file", e))
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
/// tensor that is not F32, a tensor or the header text failing its checksum) is an `Err`
/// naming the file and the fault.
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
    let header: BTreeMap<String, String> = header
        .metadata()
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // Only liandan's own files carry checksums; then every one must be there and hold.
    let checked = header.contains_key(FORMAT_KEY);
    let damaged = |what: String| file_err(path, format!("{what}: the file is damaged or edited"));
    if checked && header.get(META_CHECKSUM) != Some(&meta_checksum(&header)) {
        return Err(damaged("the header's entries fail their checksum".into()));
    }
    let mut ckpt = Checkpoint::default();
    for (name, view) in file.tensors() {
        if !matches!(view.dtype(), Dtype::F32 | Dtype::I64) {
            return Err(file_err(
                path,
                format!(
                    "tensor {name:?} is {:?}; only F32 (and I64 counters, such as batch \
                     norm's num_batches_tracked) are supported",
                    view.dtype()
                ),
            ));
        }
        if checked
            && header.get(&format!("{CHECKSUM_PREFIX}{name}")) != Some(&checksum(view.data()))
        {
            return Err(damaged(format!("tensor {name:?} fails its checksum")));
        }
        let values = match view.dtype() {
            // Counts: exact in f32 up to 2^24.
            Dtype::I64 => view
                .data()
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
                .collect(),
            _ => view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        };
        let shape = view.shape().to_vec();
        match name.strip_prefix(OPTIMIZER_PREFIX) {
            Some(state) => ckpt
                .optimizer_tensors
                .push((state.to_string(), shape, values)),
            None => ckpt.tensors.push((name, shape, values)),
        }
    }
    ckpt.tensors.sort_by(|a, b| a.0.cmp(&b.0));
    ckpt.optimizer_tensors.sort_by(|a, b| a.0.cmp(&b.0));
    for (key, value) in header {
        if let Some(state) = key.strip_prefix(OPTIMIZER_PREFIX) {
            ckpt.optimizer_meta.insert(state.to_string(), value);
        } else if key != FORMAT_KEY && !key.starts_with(CHECKSUM_PREFIX) {
            ckpt.meta.insert(key, value);
        }
    }
    Ok(ckpt)
}

/// `problems` as one message: the first [`PROBLEMS_LISTED`], then how many more.
fn list_problems(what: &str, problems: &[String]) -> Error {
    let shown = problems.len().min(PROBLEMS_LISTED);
    let mut message = format!(
        "{what} ({} problems): {}",
        problems.len(),
        problems[..shown].join("; ")
    );
    if problems.len() > shown {
        message.push_str(&format!("; and {} more", problems.len() - shown));
    }
    Error::InvalidArgument(message)
}

/// Each tensor's values must fill its shape, and no name may repeat.
fn check_values(tensors: &[NamedValues], prefix: &str, problems: &mut Vec<String>) {
    let mut seen = HashSet::new();
    for (name, shape, values) in tensors {
        if !seen.insert(name.as_str()) {
            problems.push(format!("{prefix}{name:?} appears twice"));
        }
        let numel = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if numel != Some(values.len()) {
            problems.push(format!(
                "{prefix}{name:?} has {} values for shape {shape:?}",
                values.len()
            ));
        }
    }
}

/// Puts a checkpoint's parameters and buffers into `store` and, when `optimizer` is
/// given, its state into the optimizer (without one, the optimizer state is ignored, as
/// for inference). Every name and shape is checked first — the model's against `store`,
/// the optimizer's by [`Optimizer::load_state`] — and any mismatch is an `Err` listing
/// the first problems and counting the rest; `store` and the optimizer are then unchanged.
pub fn apply_checkpoint(
    ckpt: &Checkpoint,
    store: &mut ParamStore,
    device: &Device,
    optimizer: Option<&mut dyn Optimizer>,
) -> Result<()> {
    let mut problems = Vec::new();
    check_values(&ckpt.tensors, "", &mut problems);
    check_values(&ckpt.optimizer_tensors, OPTIMIZER_PREFIX, &mut problems);
    let model: HashMap<&str, (&[usize], &[f32])> = ckpt
        .tensors
        .iter()
        .map(|(name, shape, values)| (name.as_str(), (shape.as_slice(), values.as_slice())))
        .collect();
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
        return Err(list_problems(
            "checkpoint does not match the model",
            &problems,
        ));
    }
    // Upload everything, and let the optimizer check its state, before replacing
    // anything, so a failure anywhere changes nothing.
    let mut uploaded = Vec::with_capacity(model.len());
    for (name, _, _) in store.iter_all() {
        let (shape, values) = model[name];
        uploaded.push((name.to_string(), Tensor::from_slice(device, values, shape)?));
    }
    if let Some(optimizer) = optimizer {
        let mut state = HashMap::with_capacity(ckpt.optimizer_tensors.len());
        for (name, shape, values) in &ckpt.optimizer_tensors {
            state.insert(name.clone(), Tensor::from_slice(device, values, shape)?);
        }
        optimizer.load_state(store, &state, &ckpt.optimizer_meta)?;
    }
    for (name, tensor) in uploaded {
        store.set(&name, tensor)?;
    }
    Ok(())
}
