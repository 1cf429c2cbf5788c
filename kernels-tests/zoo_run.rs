//! The zoo running: every model forward at a small input, one training step through the
//! deepest kinds of graph (residual, dense, multi-head), and weights round-tripping
//! through a torchvision-style file.

use std::collections::HashMap;

use liandan::Tensor;
use liandan::autograd::{Tape, Var};
use liandan::io::{load_state_dict, save_state_dict};
use liandan::models::zoo::{self, ZOO, ZooOptions};
use liandan::nn::{self, Ctx, Module, ParamStore};
use liandan::report::summary::layer_table;

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
fn mobilenet_v3_small_trains_a_step_at_32x32() {
    trains_a_step("mobilenet_v3_small", 0);
}

#[test]
fn shufflenet_v2_x0_5_trains_a_step_at_32x32() {
    trains_a_step("shufflenet_v2_x0_5", 0);
}

#[test]
fn shufflenet_v1_g3_trains_a_step_at_32x32() {
    trains_a_step("shufflenet_v1", 0);
}

#[test]
fn efficientnet_b0_trains_a_step_at_32x32() {
    trains_a_step("efficientnet_b0", 0);
}

/// Parameters (as `nn.specs` counts them) and MACs of convolutions and linear layers
/// (from a dry-run forward pass at batch 1) of zoo model `name` at `side`×`side`.
fn params_and_macs(name: &str, side: usize) -> (usize, u64) {
    let entry = zoo::find(name).unwrap();
    let d = dry_run_device();
    let (model, store) = nn::build(d, 0, |s| entry.build(s, &ZooOptions::new(1000))).unwrap();
    let tape = Tape::new();
    let x = tape.input(Tensor::zeros(d, &[1, 3, side, side]).unwrap());
    model.forward(&mut Ctx::eval(&tape, &store), &x).unwrap();
    let macs = layer_table(&tape.records()).iter().map(|r| r.macs).sum();
    (store.num_parameters(), macs)
}

/// The models torchvision lacks against their papers' own figures, within 2%. Parameters
/// count every trained tensor (batch norm's scale and shift included); MACs count the
/// multiply-accumulates of convolutions and the classifier, as the papers' "mult-adds"
/// and ShuffleNet's "FLOPs" do.
#[test]
fn mobilenet_v1_and_shufflenet_v1_match_their_papers() {
    let within = |got: f64, want: f64, what: &str| {
        assert!(
            (got / want - 1.0).abs() <= 0.02,
            "{what}: {got} vs the paper's {want}"
        );
    };
    // MobileNet V1, Table 6 (width α at 224) and Table 7 (resolution ρ at α = 1).
    for (name, params, macs) in [
        ("mobilenet_v1", 4.2e6, 569e6),
        ("mobilenet_v1_0_75", 2.6e6, 325e6),
        ("mobilenet_v1_0_5", 1.3e6, 149e6),
    ] {
        let (p, m) = params_and_macs(name, 224);
        // The paper gives parameters to 0.1 M.
        assert!(
            (p as f64 - params).abs() <= 0.05e6,
            "{name}: {p} parameters, the paper {params}"
        );
        within(m as f64, macs, name);
    }
    for (side, macs) in [(192, 418e6), (160, 290e6), (128, 186e6)] {
        let (_, m) = params_and_macs("mobilenet_v1", side);
        within(m as f64, macs, &format!("mobilenet_v1 at {side}"));
    }
    // ShuffleNet 1×, Table 2: the complexity held near 140 MFLOPs for every group count.
    for (name, macs) in [
        ("mobilenet_v1_0_25", 41e6),
        ("shufflenet_v1_g1", 143e6),
        ("shufflenet_v1_g2", 140e6),
        ("shufflenet_v1", 137e6),
        ("shufflenet_v1_g4", 133e6),
        ("shufflenet_v1_g8", 137e6),
    ] {
        let (_, m) = params_and_macs(name, 224);
        within(m as f64, macs, name);
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

    // A checkpoint that says which model it holds rebuilds it by itself.
    let ckpt = dir.join("checkpoint.safetensors");
    let entry = zoo::find("resnet18").unwrap();
    liandan::io::save_checkpoint(&ckpt, &store, None, &zoo::model_meta(entry, &options)).unwrap();
    let (found, rebuilt, rebuilt_store) = zoo::load(&ckpt, device()).unwrap();
    assert_eq!(found.name, "resnet18");
    assert_eq!(eval_logits(rebuilt.as_ref(), &rebuilt_store, &x), before);
    let err = zoo::load(&path, device()).err().unwrap().to_string();
    assert!(
        err.contains("\"model\""),
        "a plain state_dict names no model: {err}"
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

/// The first `n` CIFAR-10 training images: the real ones where the data is
/// (`$CIFAR10_DIR` or the shared data beside the repository), else random pixels with
/// labels in turn.
fn first_images(n: usize) -> (liandan::data::cifar10::Cifar10, &'static str) {
    use liandan::data::cifar10::Cifar10;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        std::env::var_os("CIFAR10_DIR").map(std::path::PathBuf::from),
        Some(root.join("data/cifar-10-batches-bin")),
        Some(root.join("../shared/data/cifar-10-batches-bin")),
    ];
    for dir in candidates.into_iter().flatten() {
        if let Ok(data) = Cifar10::load_files(&[dir.join("data_batch_1.bin")]) {
            return (data.limit(n), "real");
        }
    }
    let mut rng = liandan::Rng::new(64);
    let pixels = (0..n * 3 * 32 * 32).map(|_| rng.below(256) as u8).collect();
    let labels = (0..n).map(|i| (i % 10) as u8).collect();
    (Cifar10::from_parts(pixels, labels).unwrap(), "synthetic")
}

/// One model of each family, its CIFAR variant, takes two SGD steps (momentum 0.9) on the
/// same `n` images; the loss, measured in training mode with the same dropout masks each
/// time, is finite and falls.
fn every_family_trains_two_steps(n: usize) {
    use liandan::data::loader::Loader;
    use liandan::optim::{Optimizer, Sgd, SgdConfig};
    let (data, kind) = first_images(n);
    let loader = Loader::new(std::sync::Arc::new(data), n, false, None, 0, false).unwrap();
    let batch = loader.epoch(0).next().unwrap();
    let x = Tensor::from_slice(device(), &batch.images, &batch.shape()).unwrap();
    let families = [
        "lenet5",
        "alexnet",
        "vgg11",
        "googlenet",
        "resnet18",
        "densenet121",
        "mobilenet_v3_small",
        "shufflenet_v2_x0_5",
        "efficientnet_b0",
    ];
    let mut seen = std::collections::BTreeSet::new();
    for name in families {
        seen.insert(zoo::find(name).unwrap().family);
        let options = ZooOptions {
            cifar: true,
            ..ZooOptions::new(10)
        };
        let (model, mut store) = build(name, &options, 9);
        let mut sgd = Sgd::new(SgdConfig {
            momentum: 0.9,
            ..SgdConfig::default()
        })
        .unwrap();
        // The loss (auxiliary heads weighted 0.3) and its gradients, the same seed each
        // time so dropout and stochastic depth draw the same masks.
        let loss_and_grads = |store: &mut ParamStore| {
            let tape = Tape::new();
            let input = tape.input(x.clone());
            let mut ctx = Ctx::train(&tape, store, 7);
            let (logits, aux) = model.forward_aux(&mut ctx, &input).unwrap();
            let mut loss = tape.cross_entropy(&logits, &batch.labels, 0.0).unwrap();
            for head in &aux {
                let l = tape.cross_entropy(head, &batch.labels, 0.0).unwrap();
                loss = tape.add(&loss, &tape.scale(&l, 0.3).unwrap()).unwrap();
            }
            let value = loss.value().to_scalar().unwrap();
            (value, tape.backward(&loss).unwrap().by_name().unwrap())
        };
        let mut losses = Vec::new();
        for _ in 0..2 {
            let (loss, grads) = loss_and_grads(&mut store);
            losses.push(loss);
            // EfficientNet's classifier starts wide (uniform within ±1/√classes): at 10
            // classes its first gradients are large, and a larger rate overshoots.
            sgd.step(&mut store, &grads, 0.01).unwrap();
        }
        losses.push(loss_and_grads(&mut store).0);
        assert!(
            losses.iter().all(|l| l.is_finite()) && losses[2] < losses[0],
            "{name} on {n} {kind} images: losses {losses:?}"
        );
    }
    let families: std::collections::BTreeSet<_> = ZOO.iter().map(|e| e.family).collect();
    assert_eq!(seen, families, "one model of every family");
}

/// The suite's size: 4 images. The CIFAR variants keep their first layers at full
/// resolution, so a step of GoogLeNet or DenseNet-121 on 64 images takes most of a minute
/// on lavapipe; the full check below runs on demand.
#[test]
fn every_family_trains_two_steps_with_a_falling_loss() {
    every_family_trains_two_steps(4);
}

/// The full check on 64 images: `cargo test --release --test kernels -- --ignored`.
#[test]
#[ignore = "minutes on a software adapter; run with --ignored"]
fn every_family_trains_two_steps_on_64_images() {
    every_family_trains_two_steps(64);
}

/// A profiled tape charges every op of a step to its kind, forward and backward, and
/// names the convolution forms; an ordinary tape reports nothing.
#[test]
fn a_profiled_step_is_broken_down_by_kind_of_op() {
    let (model, mut store) = build(
        "mobilenet_v3_small",
        &ZooOptions {
            cifar: true,
            ..ZooOptions::new(10)
        },
        2,
    );
    let tape = Tape::profiled();
    let x = tape.input(Tensor::randn(device(), &[2, 3, 32, 32], 3).unwrap());
    let logits = model
        .forward(&mut Ctx::train(&tape, &mut store, 0), &x)
        .unwrap();
    let loss = tape.cross_entropy(&logits, &[1, 2], 0.0).unwrap();
    tape.backward(&loss).unwrap();
    let rows = tape.profile();
    let row = |kind: &str| {
        rows.iter()
            .find(|r| r.kind == kind)
            .unwrap_or_else(|| panic!("{kind} in {rows:?}"))
    };
    assert_eq!(row("conv2d standard 3x3").count, 1); // the stem
    assert!(row("conv2d depthwise 3x3").count >= 1 && row("conv2d pointwise 1x1").count >= 1);
    assert!(row("batch_norm").count > 10);
    assert!(
        rows.iter()
            .all(|r| r.forward_s >= 0.0 && r.backward_s >= 0.0)
    );
    assert!(row("batch_norm").backward_s > 0.0);
    assert!(Tape::new().profile().is_empty());
}

/// Inference folds each batch norm (and its activation) into the convolution before it
/// (see `Module::forward_then_batch_norm`); a recording tape runs them apart. Both give
/// the same logits, with running statistics made non-trivial by a training forward.
#[test]
fn inference_with_folded_batch_norms_matches_the_recorded_forward() {
    let options = ZooOptions {
        cifar: true,
        ..ZooOptions::new(10)
    };
    let x = Tensor::randn(device(), &[2, 3, 32, 32], 11).unwrap();
    for name in [
        "mobilenet_v2",
        "mobilenet_v3_small",
        "resnet18",
        "efficientnet_b0",
    ] {
        let (model, mut store) = build(name, &options, 12);
        {
            let tape = Tape::new();
            let input = tape.input(x.clone());
            let mut ctx = Ctx::train(&tape, &mut store, 13);
            model.forward(&mut ctx, &input).unwrap();
        }
        let folded = eval_logits(model.as_ref(), &store, &x);
        let tape = Tape::new();
        let input = tape.input(x.clone());
        let mut ctx = Ctx::eval(&tape, &store);
        let apart = model
            .forward(&mut ctx, &input)
            .unwrap()
            .value()
            .to_vec()
            .unwrap();
        let scale = apart.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
        for (i, (a, b)) in folded.iter().zip(&apart).enumerate() {
            assert!(
                (a - b).abs() <= 1e-4 * scale,
                "{name} logit {i}: {a} vs {b}"
            );
        }
    }
}

/// A training step of MobileNetV2's CIFAR variant (forward with the fused batch norms,
/// cross-entropy, backward, SGD with momentum), then an inference forward with the folded
/// ones: once the optimizer's state exists, every buffer comes from the pool.
#[test]
fn training_steps_allocate_nothing_once_warm() {
    use liandan::Device;
    use liandan::optim::{Optimizer, Sgd, SgdConfig};
    // Its own device: other tests allocate on the shared one concurrently.
    let d = Device::new().unwrap();
    let options = ZooOptions {
        cifar: true,
        ..ZooOptions::new(10)
    };
    let entry = zoo::find("mobilenet_v2").unwrap();
    let (model, mut store) = nn::build(&d, 21, |s| entry.build(s, &options)).unwrap();
    let x = Tensor::randn(&d, &[4, 3, 32, 32], 22).unwrap();
    let mut sgd = Sgd::new(SgdConfig {
        momentum: 0.9,
        ..SgdConfig::default()
    })
    .unwrap();
    let mut round = |store: &mut ParamStore| {
        let tape = Tape::new();
        let input = tape.input(x.clone());
        let mut ctx = Ctx::train(&tape, store, 23);
        let logits = model.forward(&mut ctx, &input).unwrap();
        let loss = tape.cross_entropy(&logits, &[1, 2, 3, 4], 0.1).unwrap();
        let grads = tape.backward(&loss).unwrap().by_name().unwrap();
        sgd.step(store, &grads, 0.01).unwrap();
        eval_logits(model.as_ref(), store, &x);
    };
    // The first step creates the momentum buffers; the second's update needs one more of
    // each size while the old ones are alive. From then on, nothing new.
    round(&mut store);
    round(&mut store);
    let warm = d.pool_stats();
    for _ in 0..2 {
        round(&mut store);
    }
    let after = d.pool_stats();
    assert_eq!(
        after.allocations, warm.allocations,
        "training steps allocated: {warm:?} -> {after:?}"
    );
}
