//! Training steps end to end: two SGD steps of the tape + GPU optimizer against the same
//! two steps computed on the CPU in f64, and resuming from a checkpoint reproducing an
//! uninterrupted run.

use std::collections::{BTreeMap, HashMap};

use liandan::autograd::{RunningStats, Tape};
use liandan::io::checkpoint::{apply_checkpoint, load_checkpoint, save_checkpoint};
use liandan::nn::ParamStore;
use liandan::ops::conv::Conv2dParams;
use liandan::optim::Optimizer;
use liandan::optim::sgd::{Sgd, SgdConfig};
use liandan::{Rng, Tensor};

use crate::autograd::{C, CLASSES, EPS, H, N, SMOOTHING, TARGETS, Values, W, loss, tensor};
use crate::common::*;

/// The trained tensors of the graph in `autograd.rs`, with their shapes.
const PARAMS: [(&str, usize); 6] = [
    ("conv.weight", 1),
    ("conv.bias", 2),
    ("bn.weight", 3),
    ("bn.bias", 4),
    ("fc.weight", 5),
    ("fc.bias", 6),
];

fn shape_of(field: usize) -> Vec<usize> {
    match field {
        1 => vec![C, C, 3, 3],
        2..=4 => vec![C],
        5 => vec![CLASSES, C],
        _ => vec![CLASSES],
    }
}

fn start_values(seed: u64) -> Values {
    let mut rng = Rng::new(seed);
    let mut r = |n: usize, lo: f64, hi: f64| -> Vec<f64> {
        random_values(&mut rng, n, lo, hi)
            .iter()
            .map(|&x| x as f64)
            .collect()
    };
    Values {
        x: r(N * C * H * W, -1.0, 1.0),
        conv_w: r(C * C * 9, -0.5, 0.5),
        conv_b: r(C, -0.5, 0.5),
        bn_w: r(C, 0.5, 1.5),
        bn_b: r(C, 0.5, 1.5),
        fc_w: r(CLASSES * C, -1.0, 1.0),
        fc_b: r(CLASSES, -0.5, 0.5),
    }
}

fn store_from(v: &Values) -> ParamStore {
    let mut v = v.clone();
    let mut store = ParamStore::new();
    for (name, f) in PARAMS {
        let values = v.fields()[f].clone();
        store
            .insert_param(name, tensor(&values, &shape_of(f)))
            .unwrap();
    }
    store
}

/// One GPU training step: forward on the tape, backward, SGD update.
fn gpu_step(store: &mut ParamStore, sgd: &mut Sgd, x: &Tensor, lr: f32) {
    let tape = Tape::new();
    let p = |name: &str| tape.param(name, store.get(name).unwrap().clone());
    let xin = tape.input(x.clone());
    let (zeros, ones) = (
        Tensor::zeros(device(), &[C]).unwrap(),
        Tensor::ones(device(), &[C]).unwrap(),
    );
    let y = tape
        .conv2d(
            &xin,
            &p("conv.weight"),
            Some(&p("conv.bias")),
            &Conv2dParams::square(1, 1, 1, 1),
        )
        .unwrap();
    let (y, _, _) = tape
        .batch_norm_train(
            &y,
            Some(&p("bn.weight")),
            Some(&p("bn.bias")),
            RunningStats {
                mean: &zeros,
                var: &ones,
            },
            0.1,
            EPS as f32,
        )
        .unwrap();
    let y = tape.relu6(&y).unwrap();
    let y = tape.add(&y, &xin).unwrap();
    let y = tape.global_avg_pool(&y).unwrap();
    let y = tape.reshape(&y, &[N, C]).unwrap();
    let logits = tape
        .linear(&y, &p("fc.weight"), Some(&p("fc.bias")))
        .unwrap();
    let l = tape
        .cross_entropy(&logits, &TARGETS, SMOOTHING as f32)
        .unwrap();
    let grads = tape.backward(&l).unwrap().by_name().unwrap();
    sgd.step(store, &grads, lr).unwrap();
}

const SGD: SgdConfig = SgdConfig {
    momentum: 0.9,
    dampening: 0.0,
    nesterov: false,
    weight_decay: 5e-4,
};

#[test]
fn two_sgd_steps_match_a_cpu_reference() {
    let mut v = start_values(71);
    let mut store = store_from(&v);
    let mut sgd = Sgd::new(SGD).unwrap();
    let x = tensor(&v.x, &[N, C, H, W]);
    let lrs = [0.1, 0.05];
    for lr in lrs {
        gpu_step(&mut store, &mut sgd, &x, lr);
    }
    // The CPU: gradients by central differences of the f64 loss, then PyTorch's SGD rule.
    let mut buffers: HashMap<usize, Vec<f64>> = HashMap::new();
    for lr in lrs {
        let mut grads: Vec<(usize, Vec<f64>)> = Vec::new();
        for (_, f) in PARAMS {
            let len = v.fields()[f].len();
            let g: Vec<f64> = (0..len)
                .map(|i| {
                    let (mut up, mut down) = (v.clone(), v.clone());
                    up.fields()[f][i] += 1e-5;
                    down.fields()[f][i] -= 1e-5;
                    (loss(&up) - loss(&down)) / 2e-5
                })
                .collect();
            grads.push((f, g));
        }
        for (f, g) in grads {
            let fields = v.fields();
            let p = &mut *fields[f];
            let d: Vec<f64> = g
                .iter()
                .zip(p.iter())
                .map(|(g, p)| g + SGD.weight_decay as f64 * p)
                .collect();
            let buf = match buffers.remove(&f) {
                None => d,
                Some(b) => b
                    .iter()
                    .zip(&d)
                    .map(|(b, d)| SGD.momentum as f64 * b + d)
                    .collect(),
            };
            for (p, b) in p.iter_mut().zip(&buf) {
                *p -= lr as f64 * b;
            }
            buffers.insert(f, buf);
        }
    }
    for (name, f) in PARAMS {
        let got = store.get(name).unwrap().to_vec().unwrap();
        let want = v.fields()[f].clone();
        assert_close(&format!("{name} after 2 steps"), &got, &want, 1e-4);
    }
}

#[test]
fn resuming_from_a_checkpoint_reproduces_the_uninterrupted_run() {
    let v = start_values(72);
    let x = tensor(&v.x, &[N, C, H, W]);
    let lrs = [0.1, 0.08, 0.06, 0.04];

    let mut straight = store_from(&v);
    let mut sgd = Sgd::new(SGD).unwrap();
    for lr in lrs {
        gpu_step(&mut straight, &mut sgd, &x, lr);
    }

    let mut first = store_from(&v);
    let mut sgd = Sgd::new(SGD).unwrap();
    for lr in &lrs[..2] {
        gpu_step(&mut first, &mut sgd, &x, *lr);
    }
    let path =
        std::env::temp_dir().join(format!("liandan-resume-{}.safetensors", std::process::id()));
    let meta: BTreeMap<String, String> = [("step".to_string(), "2".to_string())].into();
    save_checkpoint(&path, &first, Some(&sgd), &meta).unwrap();
    drop((first, sgd));

    // A fresh start: new store (different initial values), new optimizer, then the file.
    let mut resumed = store_from(&start_values(99));
    let mut sgd = Sgd::new(SGD).unwrap();
    let ckpt = load_checkpoint(&path).unwrap();
    apply_checkpoint(&ckpt, &mut resumed, device(), Some(&mut sgd)).unwrap();
    assert_eq!(ckpt.meta, meta);
    for lr in &lrs[2..] {
        gpu_step(&mut resumed, &mut sgd, &x, *lr);
    }
    std::fs::remove_file(&path).unwrap();
    for (name, _) in PARAMS {
        let a = straight.get(name).unwrap().to_vec().unwrap();
        let b = resumed.get(name).unwrap().to_vec().unwrap();
        let want: Vec<f64> = a.iter().map(|&v| v as f64).collect();
        assert_close(&format!("{name}: resumed vs straight"), &b, &want, 1e-6);
    }
}
