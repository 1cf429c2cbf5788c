//! Building layers with bad or huge sizes: clear errors, never an abort or an overflow
//! (the test profile keeps overflow checks on, so an unchecked product fails here).

use liandan::nn::{
    self, Activation, BatchNorm2d, BatchNorm2dConfig, Conv2d, Conv2dConfig, ConvTranspose2d,
    ConvTranspose2dConfig, Linear, LinearConfig, ParamStore, Scope, conv_norm_act,
};
use liandan::optim::Schedule;
use liandan::{Error, Rng};

use crate::common::*;

#[test]
fn huge_layers_are_errors_before_anything_is_allocated() {
    let mut store = ParamStore::new();
    let mut rng = Rng::new(1);
    let mut root = Scope::new(&mut store, device(), &mut rng);
    // 2^40 weights: filling them on the CPU first would abort the process.
    let err = Linear::new(
        &mut root.pp("fc"),
        1 << 20,
        1 << 20,
        LinearConfig::default(),
    )
    .err()
    .expect("a 2^40-weight layer");
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    for (c_in, c_out, k) in [(1 << 32, 1 << 32, 3), (64, 1 << 33, 3), (3, 64, 1 << 31)] {
        let err = Conv2d::new(&mut root.pp("conv"), c_in, c_out, Conv2dConfig::new(k));
        assert!(err.is_err(), "({c_in}, {c_out}, {k})");
    }
    let up = ConvTranspose2d::new(
        &mut root.pp("up"),
        1 << 32,
        8,
        ConvTranspose2dConfig::new(4),
    );
    assert!(up.is_err());
    assert!(
        store.is_empty(),
        "a failed layer registered {} tensors",
        store.len()
    );
}

#[test]
fn zero_and_mismatched_sizes_are_errors_naming_them() {
    let mut store = ParamStore::new();
    let mut rng = Rng::new(2);
    let mut root = Scope::new(&mut store, device(), &mut rng);
    let msg = |r: liandan::Result<()>| r.unwrap_err().to_string();
    let text = msg(Conv2d::new(&mut root.pp("c"), 3, 8, Conv2dConfig::new(0)).map(|_| ()));
    assert!(text.contains("kernel") && text.contains("\"c\""), "{text}");
    let grouped = Conv2dConfig::new(1).groups(3);
    let text = msg(Conv2d::new(&mut root.pp("g"), 4, 6, grouped).map(|_| ()));
    assert!(text.contains("groups 3"), "{text}");
    // Kernel 0 once underflowed computing its padding, (k - 1) / 2.
    let norm = BatchNorm2dConfig::default();
    let relu = Some(Activation::Relu);
    let block = conv_norm_act(&mut root.pp("s"), 3, 8, Conv2dConfig::new(0), norm, relu);
    assert!(block.is_err());
    assert!(Linear::new(&mut root.pp("fc"), 0, 10, LinearConfig::default()).is_err());
    assert!(BatchNorm2d::new(&mut root.pp("bn"), 0, norm).is_err());
    assert!(store.is_empty());
}

#[test]
fn scopes_name_tensors_from_the_structure() {
    let (_, store) = nn::build(device(), 3, |root| {
        let mut features = root.pp("features");
        let block = conv_norm_act(
            &mut features.pp(0),
            3,
            8,
            Conv2dConfig::new(3).stride(2),
            BatchNorm2dConfig::default(),
            Some(Activation::Relu),
        )?;
        Ok(block)
    })
    .unwrap();
    let names: Vec<(&str, Vec<usize>)> = store
        .iter_all()
        .map(|(n, t, _)| (n, t.shape().to_vec()))
        .collect();
    assert_eq!(
        names,
        [
            ("features.0.0.weight", vec![8, 3, 3, 3]),
            ("features.0.1.weight", vec![8]),
            ("features.0.1.bias", vec![8]),
            ("features.0.1.running_mean", vec![8]),
            ("features.0.1.running_var", vec![8]),
            ("features.0.1.num_batches_tracked", vec![]),
        ]
    );
}

#[test]
fn schedules_of_any_length_do_not_overflow() {
    for name in ["constant", "step", "multistep", "cosine", "onecycle"] {
        let s = Schedule::parse(name, usize::MAX).unwrap();
        for step in [0, 1, usize::MAX / 2, usize::MAX] {
            assert!(s.lr(0.1, step).is_finite(), "{name} at {step}");
        }
    }
    // Milestones at floor(1/2) and floor(3/4) of the steps, as before.
    for total in [4, 5, 7, 100, 101] {
        let Schedule::MultiStep { milestones, .. } = Schedule::parse("multistep", total).unwrap()
        else {
            panic!("multistep");
        };
        assert_eq!(milestones, vec![total / 2, total * 3 / 4], "{total}");
    }
}
