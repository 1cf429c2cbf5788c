//! Optimizers against f64 references of PyTorch's update rules (`torch.optim.SGD`,
//! `torch.optim.AdamW`), their errors and state round trips, and the learning-rate
//! schedules against their closed forms.

use std::collections::{BTreeMap, HashMap};

use liandan::nn::ParamStore;
use liandan::optim::{AdamW, AdamWConfig, Optimizer, Schedule, Sgd, SgdConfig};
use liandan::{Error, Rng, Tensor};

use crate::common::*;

/// GPU (f32) against the f64 reference, relative to max(|value|, 1).
const RTOL: f64 = 1e-5;
const STEPS: usize = 3;
/// Shapes of the trained parameters: odd sizes, and one past a workgroup (256).
const SHAPES: [&[usize]; 4] = [&[7, 5], &[33], &[3, 2, 2, 2], &[300]];

/// A store of random parameters `p0..p3`, a parameter `frozen` that never gets a gradient,
/// and a buffer; with the parameters' values in f64.
fn random_store(rng: &mut Rng) -> (ParamStore, Vec<Vec<f64>>) {
    let mut store = ParamStore::new();
    let mut values = Vec::new();
    for (i, shape) in SHAPES.iter().enumerate() {
        let (t, v) = random_tensor(rng, shape, -1.0, 1.0);
        store.insert_param(format!("p{i}"), t).unwrap();
        values.push(v);
    }
    store
        .insert_param("frozen", random_tensor(rng, &[4], -1.0, 1.0).0)
        .unwrap();
    store
        .insert_buffer("bn.running_var", random_tensor(rng, &[3], 0.5, 1.0).0)
        .unwrap();
    (store, values)
}

/// Random gradients for `p0..p3`.
fn random_grads(rng: &mut Rng) -> (HashMap<String, Tensor>, Vec<Vec<f64>>) {
    let mut grads = HashMap::new();
    let mut values = Vec::new();
    for (i, shape) in SHAPES.iter().enumerate() {
        let (t, v) = random_tensor(rng, shape, -1.0, 1.0);
        grads.insert(format!("p{i}"), t);
        values.push(v);
    }
    (grads, values)
}

/// PyTorch's SGD on one parameter (`_single_tensor_sgd`), in f64.
fn sgd_reference(c: &SgdConfig, lr: f64, p: &mut [f64], g: &[f64], buf: &mut Option<Vec<f64>>) {
    let (m, damp, wd) = (c.momentum as f64, c.dampening as f64, c.weight_decay as f64);
    let mut d: Vec<f64> = g.iter().zip(p.iter()).map(|(g, p)| g + wd * p).collect();
    if m != 0.0 {
        let b = match buf.take() {
            None => d.clone(),
            Some(b) => b
                .iter()
                .zip(&d)
                .map(|(b, d)| m * b + (1.0 - damp) * d)
                .collect(),
        };
        d = if c.nesterov {
            d.iter().zip(&b).map(|(d, b)| d + m * b).collect()
        } else {
            b.clone()
        };
        *buf = Some(b);
    }
    p.iter_mut().zip(&d).for_each(|(p, d)| *p -= lr * d);
}

/// PyTorch's AdamW on one parameter (`_single_tensor_adam` with decoupled decay), in f64.
fn adamw_reference(
    c: &AdamWConfig,
    lr: f64,
    t: i32,
    p: &mut [f64],
    g: &[f64],
    m: &mut [f64],
    v: &mut [f64],
) {
    let (b1, b2, eps, wd) = (
        c.beta1 as f64,
        c.beta2 as f64,
        c.eps as f64,
        c.weight_decay as f64,
    );
    let bias1 = 1.0 - b1.powi(t);
    let bias2 = 1.0 - b2.powi(t);
    for i in 0..p.len() {
        p[i] *= 1.0 - lr * wd;
        m[i] = b1 * m[i] + (1.0 - b1) * g[i];
        v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
        let denom = (v[i] / bias2).sqrt() + eps;
        p[i] -= lr * (m[i] / bias1) / denom;
    }
}

/// The learning rate of step `s`: varied, as a schedule would.
fn lr_of(s: usize) -> f32 {
    [0.1, 0.05, 0.02][s % 3]
}

fn values(store: &ParamStore, name: &str) -> Vec<f32> {
    store.get(name).unwrap().to_vec().unwrap()
}

fn state_of(opt: &dyn Optimizer, name: &str) -> Vec<f32> {
    let state = opt.state();
    let (_, t) = state
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no state {name}"));
    t.to_vec().unwrap()
}

#[test]
fn sgd_matches_pytorch_reference() {
    let configs = [
        SgdConfig::default(),
        SgdConfig {
            weight_decay: 1e-2,
            ..SgdConfig::default()
        },
        SgdConfig {
            momentum: 0.9,
            dampening: 0.1,
            weight_decay: 5e-4,
            ..SgdConfig::default()
        },
        SgdConfig {
            momentum: 0.9,
            nesterov: true,
            weight_decay: 1e-2,
            ..SgdConfig::default()
        },
    ];
    let mut rng = Rng::new(11);
    for c in configs {
        let (mut store, mut want) = random_store(&mut rng);
        let frozen = values(&store, "frozen");
        let buffer = values(&store, "bn.running_var");
        let mut bufs: Vec<Option<Vec<f64>>> = vec![None; SHAPES.len()];
        let mut opt = Sgd::new(c).unwrap();
        for s in 0..STEPS {
            let (grads, g) = random_grads(&mut rng);
            opt.step(&mut store, &grads, lr_of(s)).unwrap();
            for i in 0..SHAPES.len() {
                sgd_reference(&c, lr_of(s) as f64, &mut want[i], &g[i], &mut bufs[i]);
            }
        }
        for i in 0..SHAPES.len() {
            let what = format!("SGD {c:?} p{i}");
            assert_close(&what, &values(&store, &format!("p{i}")), &want[i], RTOL);
            if let Some(b) = &bufs[i] {
                let got = state_of(&opt, &format!("momentum_buffer.p{i}"));
                assert_close(&format!("{what} momentum buffer"), &got, b, RTOL);
            }
        }
        // Without a gradient: untouched, and no state.
        assert_eq!(values(&store, "frozen"), frozen);
        assert_eq!(values(&store, "bn.running_var"), buffer);
        assert!(opt.state().iter().all(|(n, _)| !n.contains("frozen")));
        let expected_state = if c.momentum == 0.0 { 0 } else { SHAPES.len() };
        assert_eq!(opt.state().len(), expected_state);
    }
}

#[test]
fn adamw_matches_pytorch_reference() {
    let configs = [
        AdamWConfig::default(),
        AdamWConfig {
            beta1: 0.8,
            beta2: 0.99,
            eps: 1e-6,
            weight_decay: 0.1,
        },
    ];
    let mut rng = Rng::new(12);
    for c in configs {
        let (mut store, mut want) = random_store(&mut rng);
        let frozen = values(&store, "frozen");
        let mut m: Vec<Vec<f64>> = want.iter().map(|p| vec![0.0; p.len()]).collect();
        let mut v = m.clone();
        let mut opt = AdamW::new(c).unwrap();
        for s in 0..STEPS {
            let (grads, g) = random_grads(&mut rng);
            opt.step(&mut store, &grads, lr_of(s)).unwrap();
            for i in 0..SHAPES.len() {
                let lr = lr_of(s) as f64;
                adamw_reference(
                    &c,
                    lr,
                    s as i32 + 1,
                    &mut want[i],
                    &g[i],
                    &mut m[i],
                    &mut v[i],
                );
            }
        }
        for i in 0..SHAPES.len() {
            let what = format!("AdamW {c:?} p{i}");
            assert_close(&what, &values(&store, &format!("p{i}")), &want[i], RTOL);
            let got_m = state_of(&opt, &format!("exp_avg.p{i}"));
            assert_close(&format!("{what} exp_avg"), &got_m, &m[i], RTOL);
            let got_v = state_of(&opt, &format!("exp_avg_sq.p{i}"));
            assert_close(&format!("{what} exp_avg_sq"), &got_v, &v[i], RTOL);
            assert_eq!(opt.step_count(&format!("p{i}")), STEPS as u64);
        }
        assert_eq!(values(&store, "frozen"), frozen);
        assert_eq!(opt.step_count("frozen"), 0);
        assert_eq!(opt.state().len(), 2 * SHAPES.len());
    }
}

/// An optimizer rebuilt from `state()` and `state_meta()` continues exactly as the
/// original does (same kernel, same inputs: bit-identical).
#[test]
fn optimizer_state_round_trips() {
    let mut rng = Rng::new(13);
    let sgd = SgdConfig {
        momentum: 0.9,
        nesterov: true,
        ..SgdConfig::default()
    };
    let makers: [&dyn Fn() -> Box<dyn Optimizer>; 2] =
        [&|| Box::new(Sgd::new(sgd).unwrap()), &|| {
            Box::new(AdamW::new(AdamWConfig::default()).unwrap())
        }];
    for make in makers {
        let (mut store, _) = random_store(&mut rng);
        let mut opt = make();
        let (grads, _) = random_grads(&mut rng);
        opt.step(&mut store, &grads, 0.1).unwrap();
        let mut resumed = make();
        let state: HashMap<String, Tensor> = opt.state().into_iter().collect();
        let meta: BTreeMap<String, String> = opt.state_meta().into_iter().collect();
        resumed.load_state(&store, &state, &meta).unwrap();
        let mut store2 = store.clone();
        let (grads, _) = random_grads(&mut rng);
        opt.step(&mut store, &grads, 0.05).unwrap();
        resumed.step(&mut store2, &grads, 0.05).unwrap();
        for (name, t) in store.params() {
            assert_eq!(t.to_vec().unwrap(), values(&store2, name), "{name}");
        }
    }
}

fn err_text(r: liandan::Result<()>) -> String {
    match r {
        Err(e) => e.to_string(),
        Ok(()) => panic!("expected an error"),
    }
}

#[test]
fn optimizer_errors_leave_everything_unchanged() {
    let mut rng = Rng::new(14);
    let (mut store, _) = random_store(&mut rng);
    let before: Vec<Vec<f32>> = store.params().map(|(_, t)| t.to_vec().unwrap()).collect();
    let optimizers: Vec<Box<dyn Optimizer>> = vec![
        Box::new(
            Sgd::new(SgdConfig {
                momentum: 0.9,
                ..SgdConfig::default()
            })
            .unwrap(),
        ),
        Box::new(AdamW::new(AdamWConfig::default()).unwrap()),
    ];
    for mut opt in optimizers {
        let (mut grads, _) = random_grads(&mut rng);
        grads.insert("nope".into(), Tensor::zeros(device(), &[2]).unwrap());
        let msg = err_text(opt.step(&mut store, &grads, 0.1));
        assert!(msg.contains("nope"), "{msg}");

        let (mut grads, _) = random_grads(&mut rng);
        grads.insert("p1".into(), Tensor::zeros(device(), &[32]).unwrap());
        let err = opt.step(&mut store, &grads, 0.1).unwrap_err();
        assert!(matches!(err, Error::Shape(_)), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("[33]") && msg.contains("[32]"), "{msg}");

        let (mut grads, _) = random_grads(&mut rng);
        grads.insert(
            "bn.running_var".into(),
            Tensor::zeros(device(), &[3]).unwrap(),
        );
        let msg = err_text(opt.step(&mut store, &grads, 0.1));
        assert!(msg.contains("buffer"), "{msg}");

        let (grads, _) = random_grads(&mut rng);
        for lr in [-1.0, f32::NAN, f32::INFINITY] {
            assert!(opt.step(&mut store, &grads, lr).is_err(), "lr {lr}");
        }
        assert!(opt.state().is_empty());

        let bad: HashMap<String, Tensor> = [(
            "velocity.p0".to_string(),
            Tensor::zeros(device(), &[7, 5]).unwrap(),
        )]
        .into();
        let own_kind: BTreeMap<String, String> = opt.state_meta().into_iter().collect();
        let msg = err_text(opt.load_state(&store, &bad, &own_kind));
        assert!(msg.contains("velocity.p0"), "{msg}");
        let other_kind: BTreeMap<String, String> = [("kind".into(), "lion".into())].into();
        let msg = err_text(opt.load_state(&store, &HashMap::new(), &other_kind));
        assert!(msg.contains("lion"), "{msg}");
    }
    let after: Vec<Vec<f32>> = store.params().map(|(_, t)| t.to_vec().unwrap()).collect();
    assert_eq!(before, after);

    // State of the wrong shape, moments without a step count or with an unreadable one:
    // errors at load, and the state stays empty.
    let mut opt = AdamW::new(AdamWConfig::default()).unwrap();
    let moments = |shape: &[usize]| -> HashMap<String, Tensor> {
        ["exp_avg.p0", "exp_avg_sq.p0"]
            .iter()
            .map(|k| (k.to_string(), Tensor::zeros(device(), shape).unwrap()))
            .collect()
    };
    let steps =
        |t: &str| -> BTreeMap<String, String> { [("step.p0".to_string(), t.to_string())].into() };
    let p0_shape = store.get("p0").unwrap().shape().to_vec();
    for (tensors, meta, needle) in [
        (moments(&[5, 7]), steps("4"), "[5, 7]"),
        (moments(&p0_shape), BTreeMap::new(), "step count"),
        (moments(&p0_shape), steps("x"), "\"x\""),
        (HashMap::new(), steps("4"), "p0"),
    ] {
        let msg = err_text(opt.load_state(&store, &tensors, &meta));
        assert!(msg.contains(needle), "{needle}: {msg}");
        assert!(opt.state().is_empty() && opt.step_count("p0") == 0);
    }
    opt.load_state(&store, &moments(&p0_shape), &steps("4"))
        .unwrap();
    assert_eq!(opt.step_count("p0"), 4);

    // Hyperparameters out of PyTorch's ranges.
    for c in [
        SgdConfig {
            nesterov: true,
            ..SgdConfig::default()
        },
        SgdConfig {
            momentum: -0.1,
            ..SgdConfig::default()
        },
        SgdConfig {
            weight_decay: f32::NAN,
            ..SgdConfig::default()
        },
    ] {
        assert!(Sgd::new(c).is_err(), "{c:?}");
    }
    for c in [
        AdamWConfig {
            beta1: 1.0,
            ..AdamWConfig::default()
        },
        AdamWConfig {
            beta2: -0.5,
            ..AdamWConfig::default()
        },
        AdamWConfig {
            eps: -1.0,
            ..AdamWConfig::default()
        },
    ] {
        assert!(AdamW::new(c).is_err(), "{c:?}");
    }
}

#[test]
fn param_store_api() {
    let d = device();
    let mut store = ParamStore::new();
    store
        .insert_param("conv.weight", Tensor::zeros(d, &[8, 3, 3, 3]).unwrap())
        .unwrap();
    store
        .insert_param("conv.bias", Tensor::zeros(d, &[8]).unwrap())
        .unwrap();
    store
        .insert_buffer("bn.running_mean", Tensor::zeros(d, &[8]).unwrap())
        .unwrap();
    assert!(
        store
            .insert_buffer("conv.bias", Tensor::zeros(d, &[8]).unwrap())
            .is_err()
    );
    assert_eq!(store.len(), 3);
    assert_eq!(store.num_parameters(), 8 * 27 + 8);
    let names: Vec<&str> = store.params().map(|(n, _)| n).collect();
    assert_eq!(names, ["conv.weight", "conv.bias"]);
    let names: Vec<&str> = store.buffers().map(|(n, _)| n).collect();
    assert_eq!(names, ["bn.running_mean"]);
    assert_eq!(store.iter_all().count(), 3);
    let msg = store.get("fc.weight").unwrap_err().to_string();
    assert!(msg.contains("fc.weight"), "{msg}");
    let msg = err_text(store.set("conv.bias", Tensor::zeros(d, &[9]).unwrap()));
    assert!(msg.contains("[8]") && msg.contains("[9]"), "{msg}");
    assert!(
        store
            .set("fc.bias", Tensor::zeros(d, &[8]).unwrap())
            .is_err()
    );
    store
        .set("conv.bias", Tensor::ones(d, &[8]).unwrap())
        .unwrap();
    assert_eq!(values(&store, "conv.bias"), vec![1.0; 8]);
}

fn close(a: f32, b: f64) -> bool {
    (a as f64 - b).abs() <= 1e-6 * b.abs().max(1e-3)
}

#[test]
fn schedules_match_closed_forms() {
    use std::f64::consts::PI;
    let base = 0.1f32;
    let b = base as f64;

    assert_eq!(Schedule::Constant.lr(base, 12345), base);

    let step = Schedule::Step {
        step_size: 10,
        gamma: 0.5,
    };
    for (s, want) in [(0, b), (9, b), (10, b * 0.5), (19, b * 0.5), (20, b * 0.25)] {
        assert!(
            close(step.lr(base, s), want),
            "step at {s}: {}",
            step.lr(base, s)
        );
    }

    let multi = Schedule::MultiStep {
        milestones: vec![5, 8],
        gamma: 0.1,
    };
    for (s, want) in [
        (0, b),
        (4, b),
        (5, b * 0.1),
        (7, b * 0.1),
        (8, b * 0.01),
        (100, b * 0.01),
    ] {
        assert!(
            close(multi.lr(base, s), want),
            "multistep at {s}: {}",
            multi.lr(base, s)
        );
    }

    let t = 100;
    let cosine = Schedule::Cosine {
        total_steps: t,
        min_lr: 0.001,
    };
    let cos_at = |s: f64| 0.001 + (b - 0.001) * (1.0 + (PI * s / t as f64).cos()) / 2.0;
    for s in [0, 25, 50, 75, 100] {
        assert!(close(cosine.lr(base, s), cos_at(s as f64)), "cosine at {s}");
    }
    assert!(close(cosine.lr(base, 0), b));
    assert!(close(cosine.lr(base, 50), (b + 0.001) / 2.0));
    assert!(close(cosine.lr(base, 100), 0.001));
    assert!(close(cosine.lr(base, 150), 0.001), "stays at min_lr past T");

    // OneCycle (PyTorch, two phases, cosine): peak at step pct_start·T - 1.
    let one = Schedule::OneCycle {
        total_steps: t,
        max_lr: Some(1.0),
        pct_start: 0.3,
        div_factor: 25.0,
        final_div_factor: 1e4,
    };
    assert!(close(one.lr(base, 0), 1.0 / 25.0));
    assert!(close(one.lr(base, 29), 1.0));
    assert!(close(
        one.lr(base, 14),
        0.04 + (1.0 - 0.04) * (1.0 - (PI * 14.0 / 29.0).cos()) / 2.0
    ));
    assert!(close(one.lr(base, 99), 0.04 / 1e4));
    assert!(close(one.lr(base, 500), 0.04 / 1e4));
    let peak = (0..t).max_by(|&x, &y| one.lr(base, x).total_cmp(&one.lr(base, y)));
    assert_eq!(peak, Some(29));
    // Without max_lr the peak is the base rate.
    let one_base = Schedule::parse("onecycle", t).unwrap();
    assert!(close(one_base.lr(base, 29), b));

    let warm = Schedule::Warmup {
        steps: 4,
        inner: Box::new(Schedule::Cosine {
            total_steps: 10,
            min_lr: 0.0,
        }),
    };
    for s in 0..4 {
        assert!(
            close(warm.lr(base, s), b * (s + 1) as f64 / 5.0),
            "warm-up at {s}"
        );
    }
    assert!(close(warm.lr(base, 4), b));
    assert!(close(warm.lr(base, 9), b / 2.0));
    assert!(close(warm.lr(base, 14), 0.0));
}

#[test]
fn schedule_parse() {
    let t = 90;
    assert_eq!(Schedule::parse("constant", t).unwrap(), Schedule::Constant);
    assert_eq!(
        Schedule::parse("Step", t).unwrap(),
        Schedule::Step {
            step_size: 30,
            gamma: 0.1
        }
    );
    assert_eq!(
        Schedule::parse("multistep", 100).unwrap(),
        Schedule::MultiStep {
            milestones: vec![50, 75],
            gamma: 0.1
        }
    );
    assert_eq!(
        Schedule::parse("cosine", t).unwrap(),
        Schedule::Cosine {
            total_steps: t,
            min_lr: 0.0
        }
    );
    assert!(matches!(
        Schedule::parse("onecycle", t).unwrap(),
        Schedule::OneCycle {
            total_steps: 90,
            max_lr: None,
            ..
        }
    ));
    let msg = Schedule::parse("exponential", t).unwrap_err().to_string();
    assert!(
        msg.contains("exponential") && msg.contains("cosine"),
        "{msg}"
    );
    assert!(Schedule::parse("cosine", 0).is_err());
    assert!(Schedule::parse("onecycle", 1).is_err());
    assert!(
        Schedule::Step {
            step_size: 0,
            gamma: 0.1
        }
        .validate()
        .is_err()
    );
    let bad_pct = Schedule::OneCycle {
        total_steps: 10,
        max_lr: None,
        pct_start: 1.5,
        div_factor: 25.0,
        final_div_factor: 1e4,
    };
    assert!(bad_pct.validate().is_err());
}
