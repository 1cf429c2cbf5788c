//! safetensors checkpoints: bit-exact round trips, damaged or edited files as errors
//! (checksums; never panics), saves that fail without harming the previous checkpoint,
//! mismatches against the model reported at once, and optimizer state checked against the
//! model at load.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;

use liandan::io::{Checkpoint, apply_checkpoint, load_checkpoint, save_checkpoint};
use liandan::nn::ParamStore;
use liandan::optim::{AdamW, AdamWConfig, Optimizer, Sgd, SgdConfig};
use liandan::{Rng, Tensor};

use crate::common::*;

/// A fresh directory of its own for one test (removed by [`TempDir`]'s drop).
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("liandan-{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A store with two parameters and a buffer, with random values.
fn small_store(rng: &mut Rng) -> ParamStore {
    let mut store = ParamStore::new();
    store
        .insert_param(
            "conv.weight",
            random_tensor(rng, &[4, 3, 1, 1], -1.0, 1.0).0,
        )
        .unwrap();
    store
        .insert_param("conv.bias", random_tensor(rng, &[4], -1.0, 1.0).0)
        .unwrap();
    store
        .insert_buffer("bn.running_var", random_tensor(rng, &[4], 0.5, 1.5).0)
        .unwrap();
    store
}

/// The same names and shapes as `store`, all zeros (a freshly built model).
fn zeros_like(store: &ParamStore) -> ParamStore {
    let mut fresh = ParamStore::new();
    for (name, t) in store.params() {
        fresh
            .insert_param(name, Tensor::zeros(device(), t.shape()).unwrap())
            .unwrap();
    }
    for (name, t) in store.buffers() {
        fresh
            .insert_buffer(name, Tensor::zeros(device(), t.shape()).unwrap())
            .unwrap();
    }
    fresh
}

/// Values as bit patterns, so comparisons are exact (NaN included).
fn bits(t: &Tensor) -> Vec<u32> {
    t.to_vec().unwrap().iter().map(|v| v.to_bits()).collect()
}

/// Random gradients for every parameter of `store`.
fn random_grads(rng: &mut Rng, store: &ParamStore) -> HashMap<String, Tensor> {
    store
        .params()
        .map(|(n, t)| (n.to_string(), random_tensor(rng, t.shape(), -1.0, 1.0).0))
        .collect()
}

/// A store after two AdamW steps, the optimizer, and a run's meta map.
fn trained(rng: &mut Rng) -> (ParamStore, AdamW, BTreeMap<String, String>) {
    let mut store = small_store(rng);
    let mut opt = AdamW::new(AdamWConfig::default()).unwrap();
    for step in 0..2 {
        let grads = random_grads(rng, &store);
        opt.step(&mut store, &grads, 0.01 * (step + 1) as f32)
            .unwrap();
    }
    let meta: BTreeMap<String, String> = [
        ("epoch".to_string(), "3".to_string()),
        ("step".to_string(), "17".to_string()),
        ("schedule".to_string(), "cosine".to_string()),
    ]
    .into();
    (store, opt, meta)
}

#[test]
fn checkpoint_round_trips_bit_exactly() {
    let dir = TempDir::new("ckpt-roundtrip");
    let path = dir.join("model.safetensors");
    let mut rng = Rng::new(21);
    let (store, opt, meta) = trained(&mut rng);
    save_checkpoint(&path, &store, Some(&opt), &meta).unwrap();
    assert!(!dir.join("model.safetensors.tmp").exists());

    let ckpt = load_checkpoint(&path).unwrap();
    assert_eq!(ckpt.meta, meta, "the run's entries come back as given");
    assert_eq!(
        ckpt.optimizer_meta.get("kind").map(String::as_str),
        Some("adamw")
    );
    // Parameters and buffer; the optimizer's two moments of each parameter.
    assert_eq!(ckpt.tensors.len(), 3);
    assert_eq!(ckpt.optimizer_tensors.len(), 4);
    assert!(
        ckpt.optimizer_tensors
            .iter()
            .any(|(n, _, _)| n == "exp_avg.conv.bias")
    );

    let mut fresh = zeros_like(&store);
    let mut resumed = AdamW::new(AdamWConfig::default()).unwrap();
    apply_checkpoint(&ckpt, &mut fresh, device(), Some(&mut resumed)).unwrap();
    for (name, t, _) in store.iter_all() {
        assert_eq!(bits(t), bits(fresh.get(name).unwrap()), "{name}");
        assert_eq!(fresh.get(name).unwrap().shape(), t.shape());
    }
    let saved: HashMap<String, Tensor> = opt.state().into_iter().collect();
    let loaded: HashMap<String, Tensor> = resumed.state().into_iter().collect();
    assert_eq!(loaded.len(), saved.len());
    for (name, t) in &saved {
        assert_eq!(bits(t), bits(&loaded[name]), "{name}");
    }
    assert_eq!(resumed.state_meta(), opt.state_meta());

    // The resumed optimizer continues exactly as the original.
    let (mut store, mut opt) = (store, opt);
    let grads = random_grads(&mut rng, &store);
    opt.step(&mut store, &grads, 0.01).unwrap();
    resumed.step(&mut fresh, &grads, 0.01).unwrap();
    for (name, t) in store.params() {
        assert_eq!(
            bits(t),
            bits(fresh.get(name).unwrap()),
            "{name} after resuming"
        );
    }

    // Saving again over the same path replaces the file; without an optimizer there is
    // no optimizer state, and loading one into a model ignores any.
    let empty = BTreeMap::new();
    save_checkpoint(&path, &store, None, &empty).unwrap();
    let again = load_checkpoint(&path).unwrap();
    assert_eq!(again.tensors.len(), 3);
    assert!(again.optimizer_tensors.is_empty() && again.optimizer_meta.is_empty());
    assert!(again.meta.is_empty());
    apply_checkpoint(&ckpt, &mut fresh, device(), None).unwrap();
}

#[test]
fn damaged_files_are_errors_not_panics() {
    let dir = TempDir::new("ckpt-damaged");
    let good = dir.join("good.safetensors");
    let bad = dir.join("bad.safetensors");
    let mut rng = Rng::new(22);
    let (store, opt, meta) = trained(&mut rng);
    save_checkpoint(&good, &store, Some(&opt), &meta).unwrap();
    let bytes = fs::read(&good).unwrap();
    assert!(load_checkpoint(&good).is_ok());

    // Truncated at every byte offset. Shrinking one file in place is fast; rewriting it
    // from scratch each time is not (ext4 flushes a file truncated to zero and rewritten).
    fs::write(&bad, &bytes).unwrap();
    let file = fs::OpenOptions::new().write(true).open(&bad).unwrap();
    for len in (0..bytes.len()).rev() {
        file.set_len(len as u64).unwrap();
        let err = load_checkpoint(&bad).expect_err(&format!("truncated to {len} bytes"));
        assert!(err.to_string().contains("bad.safetensors"), "{err}");
    }

    // A header length past the end, then one bit flipped in each header byte, in place:
    // every flip must give an Err or a valid checkpoint, never a panic.
    let mut huge = bytes.clone();
    huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    fs::write(&bad, &huge).unwrap();
    assert!(load_checkpoint(&bad).is_err());
    fs::write(&bad, &bytes).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut flips = 0;
    for (i, &byte) in bytes.iter().enumerate().take(8 + header_len) {
        let flip = |byte: u8| {
            let mut f = &file;
            f.seek(SeekFrom::Start(i as u64)).unwrap();
            f.write_all(&[byte]).unwrap();
        };
        flip(byte ^ 0x20);
        flips += usize::from(load_checkpoint(&bad).is_err());
        flip(byte);
    }
    assert!(
        flips > header_len / 2,
        "only {flips} of {header_len} flips were noticed"
    );

    // Not F32.
    let f16 =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F16, vec![2], &[0u8; 4]).unwrap();
    fs::write(&bad, safetensors::serialize([("half", f16)], None).unwrap()).unwrap();
    let err = load_checkpoint(&bad).unwrap_err().to_string();
    assert!(err.contains("half") && err.contains("F16"), "{err}");

    // Missing.
    let err = load_checkpoint(dir.join("absent.safetensors")).unwrap_err();
    assert!(err.to_string().contains("absent.safetensors"), "{err}");
}

#[test]
fn failed_saves_leave_no_tmp_and_keep_the_old_checkpoint() {
    let dir = TempDir::new("ckpt-failed");
    let mut rng = Rng::new(23);
    let store = small_store(&mut rng);
    let meta = BTreeMap::new();

    // The directory does not exist.
    let nowhere = dir.join("no-such-dir").join("model.safetensors");
    let err = save_checkpoint(&nowhere, &store, None, &meta).unwrap_err();
    assert!(err.to_string().contains("model.safetensors"), "{err}");
    assert!(!dir.join("no-such-dir").exists());

    // The rename fails (the target is a directory): the .tmp written so far is removed.
    let target = dir.join("is-a-dir");
    fs::create_dir(&target).unwrap();
    fs::write(target.join("keep"), b"x").unwrap();
    assert!(save_checkpoint(&target, &store, None, &meta).is_err());
    assert!(!dir.join("is-a-dir.tmp").exists());
    assert!(target.join("keep").exists());

    // An existing checkpoint survives failed saves to its path, before and at the write.
    let path = dir.join("model.safetensors");
    save_checkpoint(&path, &store, None, &meta).unwrap();
    let before = fs::read(&path).unwrap();
    let (mut clashing, adamw, _) = trained(&mut rng);
    clashing
        .insert_param(
            "optimizer.exp_avg.conv.bias",
            Tensor::zeros(device(), &[4]).unwrap(),
        )
        .unwrap();
    let err = save_checkpoint(&path, &clashing, Some(&adamw), &meta).unwrap_err();
    assert!(
        err.to_string().contains("optimizer.exp_avg.conv.bias"),
        "{err}"
    );
    fs::create_dir(dir.join("model.safetensors.tmp")).unwrap(); // the .tmp cannot be created
    let other = small_store(&mut rng);
    assert!(save_checkpoint(&path, &other, None, &meta).is_err());
    // Entries the file keeps for itself.
    for key in ["format", "optimizer.kind", "checksum.meta"] {
        let reserved: BTreeMap<String, String> = [(key.to_string(), "x".to_string())].into();
        let err = save_checkpoint(dir.join("r.safetensors"), &store, None, &reserved);
        assert!(err.unwrap_err().to_string().contains(key));
    }
    assert_eq!(fs::read(&path).unwrap(), before);
    assert!(load_checkpoint(&path).is_ok());
}

#[test]
fn apply_reports_every_mismatch_at_once() {
    let d = device();
    let mut store = ParamStore::new();
    store
        .insert_param("a", Tensor::ones(d, &[2, 3]).unwrap())
        .unwrap();
    store
        .insert_param("b", Tensor::ones(d, &[4]).unwrap())
        .unwrap();
    store
        .insert_buffer("c", Tensor::ones(d, &[5]).unwrap())
        .unwrap();
    let ckpt = Checkpoint {
        tensors: vec![
            ("a".into(), vec![3, 2], vec![0.0; 6]),
            ("b".into(), vec![4], vec![0.0; 4]),
            ("d".into(), vec![1], vec![0.0]),
        ],
        ..Checkpoint::default()
    };
    let msg = apply_checkpoint(&ckpt, &mut store, d, None)
        .unwrap_err()
        .to_string();
    for part in [
        "\"a\"",
        "[3, 2]",
        "[2, 3]",
        "missing \"c\"",
        "unexpected \"d\"",
        "3 problems",
    ] {
        assert!(msg.contains(part), "{part} not in: {msg}");
    }
    // Nothing was applied, not even the tensor that matched.
    assert_eq!(store.get("b").unwrap().to_vec().unwrap(), vec![1.0; 4]);

    // Values that do not fill their shape.
    let short = Checkpoint {
        tensors: vec![("a".into(), vec![2, 3], vec![0.0; 5])],
        ..Checkpoint::default()
    };
    let msg = apply_checkpoint(&short, &mut store, d, None)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("5 values"), "{msg}");

    // A checkpoint of another model entirely: the first problems, then a count, not a
    // line per tensor.
    let other = Checkpoint {
        tensors: (0..40)
            .map(|i| (format!("layer{i}.weight"), vec![1], vec![0.0]))
            .collect(),
        ..Checkpoint::default()
    };
    let msg = apply_checkpoint(&other, &mut store, d, None)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("43 problems") && msg.contains("and 31 more"),
        "{msg}"
    );
    assert!(msg.len() < 1500, "{} characters: {msg}", msg.len());
}

/// A file damaged where its tensors' data lies, or with an edited header entry, fails its
/// checksums with an error naming what is damaged: a flipped bit, a weight turned NaN,
/// an edited epoch.
#[test]
fn damaged_data_and_edited_entries_fail_their_checksums() {
    let dir = TempDir::new("ckpt-checksums");
    let path = dir.join("model.safetensors");
    let mut rng = Rng::new(24);
    let (store, opt, meta) = trained(&mut rng);
    save_checkpoint(&path, &store, Some(&opt), &meta).unwrap();
    let bytes = fs::read(&path).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let data_start = 8 + header_len;
    let parsed = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    for (name, view) in parsed.tensors() {
        // Where this tensor's bytes start in the file.
        let offset = view.data().as_ptr() as usize - bytes.as_ptr() as usize;
        assert!(offset >= data_start);
        let mut flipped = bytes.clone();
        flipped[offset] ^= 0x01;
        fs::write(&path, &flipped).unwrap();
        let err = load_checkpoint(&path).unwrap_err().to_string();
        assert!(
            err.contains(&name) && err.contains("checksum"),
            "{name}: {err}"
        );
        let mut nan = bytes.clone();
        nan[offset..offset + 4].copy_from_slice(&f32::NAN.to_le_bytes());
        fs::write(&path, &nan).unwrap();
        assert!(load_checkpoint(&path).is_err(), "{name} made NaN");
    }
    // "epoch":"3" → "epoch":"4", same length, still valid JSON.
    let text = String::from_utf8_lossy(&bytes[8..data_start]).to_string();
    let at = 8 + text.find("\"epoch\":\"3\"").expect("the epoch entry") + "\"epoch\":\"".len();
    let mut edited = bytes.clone();
    edited[at] = b'4';
    fs::write(&path, &edited).unwrap();
    let err = load_checkpoint(&path).unwrap_err().to_string();
    assert!(err.contains("header") && err.contains("checksum"), "{err}");
    fs::write(&path, &bytes).unwrap();
    assert!(load_checkpoint(&path).is_ok());

    // A file from elsewhere (a torchvision state_dict saved with safetensors) carries no
    // checksums, and loads.
    let values: Vec<u8> = [1.5f32, -2.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2], &values).unwrap();
    fs::write(
        &path,
        safetensors::serialize([("fc.bias", view)], None).unwrap(),
    )
    .unwrap();
    let ckpt = load_checkpoint(&path).unwrap();
    assert_eq!(
        ckpt.tensors,
        vec![("fc.bias".into(), vec![2], vec![1.5, -2.0])]
    );
}

/// Optimizer state is checked against the model when it is loaded, not at the first step
/// after: state for a parameter the model lacks, or a momentum buffer of another shape,
/// is an `Err` naming it, and nothing changes.
#[test]
fn optimizer_state_must_fit_the_model_at_load() {
    let d = device();
    let mut rng = Rng::new(25);
    let store = small_store(&mut rng);
    let mut sgd = Sgd::new(SgdConfig {
        momentum: 0.9,
        ..SgdConfig::default()
    })
    .unwrap();
    let kind: BTreeMap<String, String> = [("kind".to_string(), "sgd".to_string())].into();
    let buffer = |shape: &[usize]| Tensor::zeros(d, shape).unwrap();
    for (state, needle) in [
        (("momentum_buffer.fc.weight", buffer(&[4])), "fc.weight"),
        (("momentum_buffer.conv.bias", buffer(&[5])), "[5]"),
        (("momentum_buffer.bn.running_var", buffer(&[4])), "buffer"),
    ] {
        let tensors: HashMap<String, Tensor> = [(state.0.to_string(), state.1)].into();
        let err = sgd
            .load_state(&store, &tensors, &kind)
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{needle}: {err}");
        assert!(sgd.state().is_empty(), "a failed load changed the state");
    }
    // Through a checkpoint: the model's tensors stay as they were too.
    let dir = TempDir::new("ckpt-optimizer-fit");
    let path = dir.join("model.safetensors");
    let (trained_store, adamw, meta) = trained(&mut rng);
    save_checkpoint(&path, &trained_store, Some(&adamw), &meta).unwrap();
    let ckpt = load_checkpoint(&path).unwrap();
    let mut fresh = zeros_like(&trained_store);
    let mut wrong_kind = Sgd::new(SgdConfig::default()).unwrap();
    let err = apply_checkpoint(&ckpt, &mut fresh, d, Some(&mut wrong_kind)).unwrap_err();
    assert!(err.to_string().contains("adamw"), "{err}");
    for (name, t) in fresh.params() {
        assert!(
            t.to_vec().unwrap().iter().all(|&v| v == 0.0),
            "{name} changed"
        );
    }
}
