//! safetensors checkpoints: bit-exact round trips, damaged files as errors (never panics),
//! saves that fail without harming the previous checkpoint, and mismatches against the
//! model reported all at once.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;

use liandan::io::{Checkpoint, apply_checkpoint, load_checkpoint, save_checkpoint};
use liandan::nn::ParamStore;
use liandan::optim::{AdamW, AdamWConfig, Optimizer};
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

/// A store after two AdamW steps, the optimizer, and a meta map with its state.
fn trained(rng: &mut Rng) -> (ParamStore, AdamW, BTreeMap<String, String>) {
    let mut store = small_store(rng);
    let mut opt = AdamW::new(AdamWConfig::default()).unwrap();
    for step in 0..2 {
        let grads: HashMap<String, Tensor> = store
            .params()
            .map(|(n, t)| (n.to_string(), random_tensor(rng, t.shape(), -1.0, 1.0).0))
            .collect();
        opt.step(&mut store, &grads, 0.01 * (step + 1) as f32)
            .unwrap();
    }
    let mut meta: BTreeMap<String, String> = [
        ("epoch".to_string(), "3".to_string()),
        ("step".to_string(), "17".to_string()),
        ("schedule".to_string(), "cosine".to_string()),
    ]
    .into();
    meta.extend(
        opt.state_meta()
            .into_iter()
            .map(|(k, v)| (format!("optimizer.{k}"), v)),
    );
    (store, opt, meta)
}

#[test]
fn checkpoint_round_trips_bit_exactly() {
    let dir = TempDir::new("ckpt-roundtrip");
    let path = dir.join("model.safetensors");
    let mut rng = Rng::new(21);
    let (store, opt, meta) = trained(&mut rng);
    save_checkpoint(&path, &store, &opt.state(), &meta).unwrap();
    assert!(!dir.join("model.safetensors.tmp").exists());

    let ckpt = load_checkpoint(&path).unwrap();
    assert_eq!(ckpt.meta, meta);
    // Parameters, buffer, and the optimizer's two moments of each parameter.
    assert_eq!(ckpt.tensors.len(), 3 + 4);
    assert!(
        ckpt.tensors
            .iter()
            .any(|(n, _, _)| n == "optimizer.exp_avg.conv.bias")
    );

    let mut fresh = zeros_like(&store);
    let state = apply_checkpoint(&ckpt, &mut fresh, device()).unwrap();
    for (name, t, _) in store.iter_all() {
        assert_eq!(bits(t), bits(fresh.get(name).unwrap()), "{name}");
        assert_eq!(fresh.get(name).unwrap().shape(), t.shape());
    }
    let saved: HashMap<String, Tensor> = opt.state().into_iter().collect();
    assert_eq!(state.len(), saved.len());
    for (name, t) in &saved {
        assert_eq!(bits(t), bits(&state[name]), "{name}");
    }

    // The resumed optimizer continues exactly as the original.
    let mut resumed = AdamW::new(AdamWConfig::default()).unwrap();
    resumed.load_state(&state).unwrap();
    let opt_meta: BTreeMap<String, String> = ckpt
        .meta
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("optimizer.")?.to_string(), v.clone())))
        .collect();
    resumed.load_state_meta(&opt_meta).unwrap();
    let (mut store, mut opt) = (store, opt);
    let grads: HashMap<String, Tensor> = store
        .params()
        .map(|(n, t)| {
            (
                n.to_string(),
                random_tensor(&mut rng, t.shape(), -1.0, 1.0).0,
            )
        })
        .collect();
    opt.step(&mut store, &grads, 0.01).unwrap();
    resumed.step(&mut fresh, &grads, 0.01).unwrap();
    for (name, t) in store.params() {
        assert_eq!(
            bits(t),
            bits(fresh.get(name).unwrap()),
            "{name} after resuming"
        );
    }

    // Saving again over the same path replaces the file.
    let empty = BTreeMap::new();
    save_checkpoint(&path, &store, &[], &empty).unwrap();
    let again = load_checkpoint(&path).unwrap();
    assert_eq!(again.tensors.len(), 3);
    assert!(again.meta.is_empty());
}

#[test]
fn damaged_files_are_errors_not_panics() {
    let dir = TempDir::new("ckpt-damaged");
    let good = dir.join("good.safetensors");
    let bad = dir.join("bad.safetensors");
    let mut rng = Rng::new(22);
    let (store, opt, meta) = trained(&mut rng);
    save_checkpoint(&good, &store, &opt.state(), &meta).unwrap();
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
    let err = save_checkpoint(&nowhere, &store, &[], &meta).unwrap_err();
    assert!(err.to_string().contains("model.safetensors"), "{err}");
    assert!(!dir.join("no-such-dir").exists());

    // The rename fails (the target is a directory): the .tmp written so far is removed.
    let target = dir.join("is-a-dir");
    fs::create_dir(&target).unwrap();
    fs::write(target.join("keep"), b"x").unwrap();
    assert!(save_checkpoint(&target, &store, &[], &meta).is_err());
    assert!(!dir.join("is-a-dir.tmp").exists());
    assert!(target.join("keep").exists());

    // An existing checkpoint survives failed saves to its path, before and at the write.
    let path = dir.join("model.safetensors");
    save_checkpoint(&path, &store, &[], &meta).unwrap();
    let before = fs::read(&path).unwrap();
    let clash = [(
        "exp_avg.conv.bias".to_string(),
        Tensor::zeros(device(), &[4]).unwrap(),
    )];
    let mut clashing = small_store(&mut rng);
    clashing
        .insert_param(
            "optimizer.exp_avg.conv.bias",
            Tensor::zeros(device(), &[4]).unwrap(),
        )
        .unwrap();
    let err = save_checkpoint(&path, &clashing, &clash, &meta).unwrap_err();
    assert!(
        err.to_string().contains("optimizer.exp_avg.conv.bias"),
        "{err}"
    );
    fs::create_dir(dir.join("model.safetensors.tmp")).unwrap(); // the .tmp cannot be created
    let other = small_store(&mut rng);
    assert!(save_checkpoint(&path, &other, &[], &meta).is_err());
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
            ("optimizer.exp_avg.a".into(), vec![2, 3], vec![0.0; 6]),
        ],
        meta: BTreeMap::new(),
    };
    let msg = apply_checkpoint(&ckpt, &mut store, d)
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
        meta: BTreeMap::new(),
    };
    let msg = apply_checkpoint(&short, &mut store, d)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("5 values"), "{msg}");
}
