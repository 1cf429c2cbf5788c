//! The zoo running: every model forward at a small input, one training step through the
//! deepest kinds of graph (residual, dense, multi-head), and weights round-tripping
//! through a torchvision-style file.

use std::collections::HashMap;

use liandan::Tensor;
use liandan::autograd::{Tape, Var};
use liandan::io::{load_state_dict, save_state_dict};
use liandan::models::zoo::{self, ZOO, ZooOptions};
use liandan::nn::{self, Ctx, Module, ParamStore};

use crate::common::*;

/// Builds zoo model `name` with `options` on the test device.
fn build(name: &str, options: &ZooOptions, seed: u64) -> (Box<dyn Module>, ParamStore) {
    let entry = zoo::find(name).unwrap();
    nn::build(device(), seed, |s| entry.build(s, options)).unwrap()
}

fn eval_logits(model: &dyn Module, store: &ParamStore, x: &Tensor) -> Vec<f32> {
    let tape = Tape::no_grad();
    let input = tape.input(x.clone());
    let mut ctx = Ctx::eval(&tape, store);
    model
        .forward(&mut ctx, &input)
        .unwrap()
        .value()
        .to_vec()
        .unwrap()
}

#[test]
fn every_model_runs_forward_at_its_smallest_input() {
    for entry in ZOO {
        let side = entry
            .min_input
            .max(64)
            .min(entry.input_size)
            .max(entry.min_input);
        let options = ZooOptions::new(10);
        let (model, store) = build(entry.name, &options, 1);
        let x = Tensor::randn(device(), &[1, 3, side, side], 2).unwrap();
        let logits = eval_logits(model.as_ref(), &store, &x);
        assert_eq!(logits.len(), 10, "{} at {side}×{side}", entry.name);
        assert!(
            logits.iter().all(|v| v.is_finite()),
            "{} at {side}×{side}: {logits:?}",
            entry.name
        );
    }
}

/// One training step of `name` at 32×32 (batch 2): the loss, with auxiliary heads
/// weighted 0.3 as GoogLeNet's paper does, gives every parameter a finite gradient of
/// its shape.
fn trains_a_step(name: &str, aux_heads: usize) {
    let (model, mut store) = build(name, &ZooOptions::new(10), 3);
    let x = Tensor::randn(device(), &[2, 3, 32, 32], 4).unwrap();
    let tape = Tape::new();
    let input = tape.input(x);
    let mut ctx = Ctx::train(&tape, &mut store, 5);
    let (logits, aux) = model.forward_aux(&mut ctx, &input).unwrap();
    assert_eq!(aux.len(), aux_heads, "{name}");
    let targets = [1, 7];
    let mut loss: Var = tape.cross_entropy(&logits, &targets, 0.0).unwrap();
    for head in &aux {
        let l = tape.cross_entropy(head, &targets, 0.0).unwrap();
        loss = tape.add(&loss, &tape.scale(&l, 0.3).unwrap()).unwrap();
    }
    let grads: HashMap<String, Tensor> = tape.backward(&loss).unwrap().by_name().unwrap();
    let params: Vec<(String, Vec<usize>)> = store
        .params()
        .map(|(n, t)| (n.to_string(), t.shape().to_vec()))
        .collect();
    assert_eq!(
        grads.len(),
        params.len(),
        "{name}: a gradient for every parameter"
    );
    for (p, shape) in params {
        let g = &grads[&p];
        assert_eq!(g.shape(), shape.as_slice(), "{name}: {p}");
        let values = g.to_vec().unwrap();
        assert!(
            values.iter().all(|v| v.is_finite()),
            "{name}: {p} has a non-finite gradient"
        );
    }
    if aux_heads > 0 {
        // The heads were in the loss: their classifier gradients are not all zero.
        let g = grads["aux1.fc2.weight"].to_vec().unwrap();
        assert!(g.iter().any(|&v| v != 0.0), "{name}: aux1 got no gradient");
    }
}

#[test]
fn resnet18_trains_a_step_at_32x32() {
    trains_a_step("resnet18", 0);
}

#[test]
fn densenet121_trains_a_step_at_32x32() {
    trains_a_step("densenet121", 0);
}

#[test]
fn googlenet_trains_a_step_at_32x32_with_its_auxiliary_heads() {
    trains_a_step("googlenet", 2);
}

/// Random weights written as torchvision's `state_dict` file and read into a fresh
/// model give the same logits, with the running statistics and counters carried over.
#[test]
fn weights_round_trip_through_a_torchvision_style_file() {
    let dir = std::env::temp_dir().join(format!("liandan-zoo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("resnet18.safetensors");
    let options = ZooOptions {
        cifar: true,
        ..ZooOptions::new(10)
    };
    let (model, mut store) = build("resnet18", &options, 6);
    // One training pass moves the running statistics off their initial values.
    let x = Tensor::randn(device(), &[2, 3, 32, 32], 7).unwrap();
    {
        let tape = Tape::no_grad();
        let input = tape.input(x.clone());
        let mut ctx = Ctx::train(&tape, &mut store, 8);
        model.forward(&mut ctx, &input).unwrap();
    }
    let before = eval_logits(model.as_ref(), &store, &x);
    save_state_dict(&path, &store).unwrap();

    let (fresh, mut loaded) = build("resnet18", &options, 99);
    assert_ne!(eval_logits(fresh.as_ref(), &loaded, &x), before);
    load_state_dict(&path, &mut loaded, device()).unwrap();
    assert_eq!(eval_logits(fresh.as_ref(), &loaded, &x), before);
    assert_eq!(
        loaded
            .get("bn1.num_batches_tracked")
            .unwrap()
            .to_vec()
            .unwrap(),
        vec![1.0]
    );

    // The file is a plain state_dict: the keys and nothing else.
    let bytes = std::fs::read(&path).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert!(header.metadata().is_none());
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(file.len(), store.len());
    assert_eq!(
        file.tensor("layer1.0.bn1.num_batches_tracked")
            .unwrap()
            .dtype(),
        safetensors::Dtype::I64
    );

    // A file for another model: one error listing what is missing, extra and mis-shaped.
    let (_, mut other) = build("resnet34", &ZooOptions::new(10), 1);
    let err = load_state_dict(&path, &mut other, device())
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing \"layer1.2.conv1.weight\""), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_tape_dump_is_the_models_graph() {
    let (model, store) = build("lenet5", &ZooOptions::new(10), 1);
    let tape = Tape::new();
    let x = tape.input(Tensor::randn(device(), &[1, 3, 32, 32], 1).unwrap());
    let mut ctx = Ctx::eval(&tape, &store);
    model.forward(&mut ctx, &x).unwrap();
    let dump = tape.dump();
    for expected in ["conv2d", "features.0.weight", "linear", "[1, 10]"] {
        assert!(dump.contains(expected), "{expected} not in\n{dump}");
    }
}
