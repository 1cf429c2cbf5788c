//! The ShuffleNet V2 guideline networks (`liandan::bench::guidelines`) at a tiny size:
//! each builds and runs, keeps its input shape, writes every output element (outputs are
//! poisoned with NaN) without overflowing, and the settings compared within a guideline
//! have equal FLOPs within the guideline's stated tolerance.

use liandan::bench::guidelines::{DEPTH, Guideline, all, networks};

use crate::common::*;
use crate::errors::{Kind, expect_err};

/// Batch and spatial size of the smoke runs: small enough for a software adapter.
const BATCH: usize = 1;
const SIZE: usize = 8;

#[test]
fn every_network_runs_and_keeps_its_shape() {
    let nets = all(device(), BATCH, SIZE).unwrap();
    let count = |g| nets.iter().filter(|n| n.guideline == g).count();
    let counts = Guideline::ALL.map(count);
    assert_eq!(counts, [4, 4, 5, 12], "settings per guideline");
    for net in &nets {
        let what = format!("{} {}", net.guideline.name(), net.setting);
        let shape = net.input_shape().to_vec();
        assert_eq!(
            (shape[0], &shape[2..]),
            (BATCH, &[SIZE, SIZE][..]),
            "{what}"
        );
        let y = net.forward().unwrap();
        assert_eq!(y.shape(), &shape[..], "{what}: output shape");
        let values = y.to_vec().unwrap();
        assert!(
            values.iter().all(|v| v.is_finite()),
            "{what}: non-finite output"
        );
    }
}

#[test]
fn settings_of_a_guideline_have_equal_flops() {
    for g in Guideline::ALL {
        let nets = networks(device(), g, BATCH, SIZE).unwrap();
        for net in &nets {
            let base = nets.iter().find(|n| n.column == net.column).unwrap();
            let rel = (net.flops() as f64 / base.flops() as f64 - 1.0).abs();
            assert!(
                rel <= g.flop_tolerance(),
                "{} {}: {} multiply-adds, {:.2}% off {}'s {} (tolerance {}%)",
                g.name(),
                net.setting,
                net.flops(),
                100.0 * rel,
                base.setting,
                base.flops(),
                100.0 * g.flop_tolerance()
            );
        }
    }
    // The count itself, on G1's first setting: DEPTH blocks of two 128·128 1×1 convs.
    let g1 = networks(device(), Guideline::G1, BATCH, SIZE).unwrap();
    let positions = (BATCH * SIZE * SIZE) as u64;
    assert_eq!(g1[0].flops(), DEPTH as u64 * 2 * 128 * 128 * positions);
}

#[test]
fn bad_sizes_are_errors() {
    for (batch, size) in [(0, SIZE), (BATCH, 0)] {
        let result = networks(device(), Guideline::G1, batch, size).map(|n| n.len());
        expect_err("guideline networks", result, Kind::Arg, &["batch", "size"]);
    }
}
