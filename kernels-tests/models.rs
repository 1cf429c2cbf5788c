//! Model assembly: MobileNetV2 matches torchvision's parameter names and count, and its
//! CIFAR variant runs forward and backward at 32×32.

use liandan::Tensor;
use liandan::autograd::Tape;
use liandan::models::{MobileNetV2, MobileNetV2Config};
use liandan::nn::{self, Ctx, Module};

use crate::common::*;

#[test]
fn mobilenet_v2_has_torchvisions_names_and_parameter_count() {
    let (_, store) = nn::build(device(), 0, |s| {
        MobileNetV2::new(s, MobileNetV2Config::imagenet(1000))
    })
    .unwrap();
    assert_eq!(store.num_parameters(), 3_504_872);
    let names: Vec<&str> = store.iter_all().map(|(n, _, _)| n).collect();
    for expected in [
        "features.0.0.weight",
        "features.0.1.running_var",
        "features.1.conv.0.0.weight", // t = 1: depthwise first
        "features.1.conv.1.weight",
        "features.1.conv.2.bias",
        "features.2.conv.0.0.weight", // t = 6: expansion first
        "features.2.conv.1.0.weight",
        "features.2.conv.2.weight",
        "features.2.conv.3.running_mean",
        "features.17.conv.3.weight",
        "features.18.0.weight",
        "features.18.1.bias",
        "classifier.1.weight",
        "classifier.1.bias",
    ] {
        assert!(names.contains(&expected), "missing {expected}");
    }
    assert_eq!(
        store.get("features.2.conv.1.0.weight").unwrap().shape(),
        &[96, 1, 3, 3]
    );
    assert_eq!(
        store.get("classifier.1.weight").unwrap().shape(),
        &[1000, 1280]
    );
}

#[test]
fn cifar_mobilenet_v2_trains_a_step_at_32x32() {
    let (model, mut store) = nn::build(device(), 1, |s| {
        MobileNetV2::new(s, MobileNetV2Config::cifar10())
    })
    .unwrap();
    let x = Tensor::randn(device(), &[2, 3, 32, 32], 2).unwrap();
    let tape = Tape::new();
    let input = tape.input(x.clone());
    let mut ctx = Ctx::train(&tape, &mut store, 3);
    let logits = model.forward(&mut ctx, &input).unwrap();
    assert_eq!(logits.shape(), &[2, 10]);
    let loss = tape.cross_entropy(&logits, &[3, 7], 0.1).unwrap();
    let l = loss.value().to_scalar().unwrap();
    assert!(l.is_finite() && l > 0.0, "loss {l}");
    let grads = tape.backward(&loss).unwrap().by_name().unwrap();
    // Every parameter receives a gradient, of its own shape.
    let params: Vec<(String, Vec<usize>)> = store
        .params()
        .map(|(n, t)| (n.to_string(), t.shape().to_vec()))
        .collect();
    assert_eq!(grads.len(), params.len());
    for (name, shape) in params {
        assert_eq!(grads[&name].shape(), shape.as_slice(), "{name}");
    }
    // The running statistics moved off their initial values.
    let rm = store
        .get("features.0.1.running_mean")
        .unwrap()
        .to_vec()
        .unwrap();
    assert!(rm.iter().any(|&v| v != 0.0));
    // Evaluation on a no_grad tape records nothing and gives finite logits.
    let eval = Tape::no_grad();
    let input = eval.input(x);
    let mut ctx = Ctx::eval(&eval, &store);
    let logits = model.forward(&mut ctx, &input).unwrap();
    assert!(eval.is_empty());
    assert!(
        logits
            .value()
            .to_vec()
            .unwrap()
            .iter()
            .all(|v| v.is_finite())
    );
}
