//! Building layers with bad or huge sizes: clear errors, never an abort or an overflow
//! (the test profile keeps overflow checks on, so an unchecked product fails here).

use liandan::nn::{
    Activation, BatchNorm2d, Conv2d, ConvBnAct, ConvTranspose2d, Linear, ParamStore,
};
use liandan::ops::conv::{Conv2dParams, ConvTranspose2dParams};
use liandan::optim::Schedule;
use liandan::{Error, Rng};

use crate::common::*;

#[test]
fn huge_layers_are_errors_before_anything_is_allocated() {
    let d = device();
    let mut rng = Rng::new(1);
    let mut store = ParamStore::new();
    // 2^40 weights: filling them on the CPU first would abort the process.
    let err = Linear::new(&mut store, d, &mut rng, "fc", (1 << 20, 1 << 20), 0.01)
        .err()
        .expect("a 2^40-weight layer");
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    let p = Conv2dParams::default();
    for (c_in, c_out, k) in [(1 << 32, 1 << 32, 3), (64, 1 << 33, 3), (3, 64, 1 << 31)] {
        let err = Conv2d::new(&mut store, d, &mut rng, "conv", (c_in, c_out, k), p, true);
        assert!(err.is_err(), "({c_in}, {c_out}, {k})");
    }
    let tp = ConvTranspose2dParams::default();
    let err = ConvTranspose2d::new(&mut store, d, &mut rng, "up", (1 << 32, 8, 4), tp, true);
    assert!(err.is_err());
    assert!(
        store.is_empty(),
        "a failed layer registered {} tensors",
        store.len()
    );
}

#[test]
fn zero_and_mismatched_sizes_are_errors_naming_them() {
    let d = device();
    let mut rng = Rng::new(2);
    let mut store = ParamStore::new();
    let msg = |r: liandan::Result<()>| r.unwrap_err().to_string();
    let p = Conv2dParams::default();
    let text = msg(Conv2d::new(&mut store, d, &mut rng, "c", (3, 8, 0), p, false).map(|_| ()));
    assert!(text.contains("kernel"), "{text}");
    let grouped = Conv2dParams::square(1, 0, 1, 3);
    let text =
        msg(Conv2d::new(&mut store, d, &mut rng, "g", (4, 6, 1), grouped, false).map(|_| ()));
    assert!(text.contains("groups 3"), "{text}");
    // Kernel 0 once underflowed computing its padding, (k - 1) / 2.
    let relu = Some(Activation::Relu);
    let text = msg(ConvBnAct::new(&mut store, d, &mut rng, "s", (3, 8, 0), 1, 1, relu).map(|_| ()));
    assert!(text.contains("kernel"), "{text}");
    assert!(Linear::new(&mut store, d, &mut rng, "fc", (0, 10), 0.01).is_err());
    assert!(BatchNorm2d::new(&mut store, d, "bn", 0).is_err());
    assert!(store.is_empty());
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
