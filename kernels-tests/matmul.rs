//! Matrix products against an f64 reference: every transpose combination, batches with
//! broadcasting, odd sizes, both kernels.

use liandan::ops::matmul::{MatmulKernel, matmul_with};
use liandan::{Error, Rng, Tensor};

use crate::common::*;

/// Reference `op(A)·op(B)` for one batch entry, plus Σ|a||b| per output (the scale the
/// rounding error grows with).
#[allow(clippy::too_many_arguments)]
fn reference(
    a: &[f64],
    b: &[f64],
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
) -> (Vec<f64>, Vec<f64>) {
    let mut c = vec![0.0; m * n];
    let mut mag = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            for p in 0..k {
                let av = if ta { a[p * m + i] } else { a[i * k + p] };
                let bv = if tb { b[j * k + p] } else { b[p * n + j] };
                c[i * n + j] += av * bv;
                mag[i * n + j] += (av * bv).abs();
            }
        }
    }
    (c, mag)
}

fn kernels() -> Vec<MatmulKernel> {
    let mut kinds = vec![MatmulKernel::Portable, MatmulKernel::Tiled];
    if device().summary().subgroup_sizes == Some((8, 8)) {
        kinds.push(MatmulKernel::Subgroup8);
    }
    kinds
}

#[allow(clippy::too_many_arguments)]
fn check(
    rng: &mut Rng,
    batch_a: &[usize],
    batch_b: &[usize],
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
    rtol: f64,
) {
    let mut sa = batch_a.to_vec();
    sa.extend(if ta { [k, m] } else { [m, k] });
    let mut sb = batch_b.to_vec();
    sb.extend(if tb { [n, k] } else { [k, n] });
    let (a, av) = random_tensor(rng, &sa, -1.0, 1.0);
    let (b, bv) = random_tensor(rng, &sb, -1.0, 1.0);
    let (ca, cb) = (
        batch_a.iter().product::<usize>(),
        batch_b.iter().product::<usize>(),
    );
    let batches = ca.max(cb);
    let mut want = Vec::new();
    let mut mag = Vec::new();
    for z in 0..batches {
        let za = if ca == 1 { 0 } else { z };
        let zb = if cb == 1 { 0 } else { z };
        let (c, s) = reference(
            &av[za * m * k..(za + 1) * m * k],
            &bv[zb * n * k..(zb + 1) * n * k],
            m,
            n,
            k,
            ta,
            tb,
        );
        want.extend(c);
        mag.extend(s);
    }
    for kind in kernels() {
        let c = matmul_with(&a, &b, ta, tb, kind).unwrap();
        let what = format!(
            "{kind:?} {sa:?}{} · {sb:?}{}",
            if ta { "ᵀ" } else { "" },
            if tb { "ᵀ" } else { "" }
        );
        assert_eq!(*c.shape().last().unwrap(), n, "{what}");
        assert_eq!(c.shape()[c.ndim() - 2], m, "{what}");
        assert_close_scaled(&what, &c.to_vec().unwrap(), &want, &mag, rtol);
    }
}

#[test]
fn matmul_matches_reference_for_every_transpose_and_odd_sizes() {
    let mut rng = Rng::new(41);
    for trial in 0..40 {
        let (m, n, k) = (odd_size(&mut rng), odd_size(&mut rng), odd_size(&mut rng));
        let (ta, tb) = (trial % 2 == 1, trial / 2 % 2 == 1);
        check(&mut rng, &[], &[], m, n, k, ta, tb, 1e-5);
    }
    // Sizes that span several workgroup tiles in both directions.
    check(&mut rng, &[], &[], 130, 71, 37, false, false, 1e-5);
    check(&mut rng, &[], &[], 65, 129, 64, true, true, 1e-5);
}

#[test]
fn batched_matmul_with_broadcast_batches() {
    let mut rng = Rng::new(42);
    check(&mut rng, &[3], &[3], 7, 5, 9, false, false, 1e-5);
    check(&mut rng, &[2, 3], &[2, 3], 33, 7, 16, false, true, 1e-5);
    check(&mut rng, &[4], &[], 5, 65, 3, false, true, 1e-5); // x · Wᵀ over a batch
    check(&mut rng, &[], &[3], 6, 7, 8, true, false, 1e-5);
    check(&mut rng, &[1], &[5], 9, 3, 12, false, false, 1e-5);
}

#[test]
fn long_inner_dimension_within_1e4() {
    let mut rng = Rng::new(43);
    check(&mut rng, &[], &[], 33, 65, 1030, false, false, 1e-4);
    check(&mut rng, &[], &[], 17, 9, 1024, true, true, 1e-4);
}

#[test]
fn matmul_shape_errors_name_both_shapes() {
    let a = Tensor::zeros(device(), &[4, 5]).unwrap();
    let b = Tensor::zeros(device(), &[6, 7]).unwrap();
    match a.matmul(&b) {
        Err(Error::Shape(msg)) => {
            assert!(msg.contains("[4, 5]") && msg.contains("[6, 7]"), "{msg}")
        }
        other => panic!("expected a shape error, got {other:?}"),
    }
    let v = Tensor::zeros(device(), &[5]).unwrap();
    assert!(matches!(a.matmul(&v), Err(Error::Shape(_))));
    let x = Tensor::zeros(device(), &[2, 4, 5]).unwrap();
    let y = Tensor::zeros(device(), &[3, 5, 2]).unwrap();
    assert!(matches!(x.matmul(&y), Err(Error::Shape(_))));
}

#[test]
fn empty_inner_dimension_gives_zeros() {
    let a = Tensor::zeros(device(), &[3, 0]).unwrap();
    let b = Tensor::zeros(device(), &[0, 2]).unwrap();
    assert_eq!(a.matmul(&b).unwrap().to_vec().unwrap(), vec![0.0; 6]);
}

#[test]
fn batches_past_the_grid_limit_run_in_parts() {
    // 70,000 products is more than one grid dimension's 65,535 workgroups.
    let batches = 70_000;
    let a: Vec<f32> = (0..batches * 2).map(|i| (i % 7) as f32).collect();
    let b: Vec<f32> = (0..batches * 2).map(|i| (i % 5) as f32 - 2.0).collect();
    let ta = Tensor::from_slice(device(), &a, &[batches, 1, 2]).unwrap();
    let tb = Tensor::from_slice(device(), &b, &[batches, 2, 1]).unwrap();
    let c = ta.matmul(&tb).unwrap().to_vec().unwrap();
    for z in 0..batches {
        let want = a[2 * z] * b[2 * z] + a[2 * z + 1] * b[2 * z + 1];
        assert_eq!(c[z], want, "product {z}");
    }
}

/// The tests above again on a device with the smallest loop budget, where every op takes
/// its split paths (segments, split-K, column ranges) on these small shapes.
mod at_the_tight_loop_budget {
    use crate::common::{tight_budget_device, with_device};

    #[test]
    fn matmul_matches_reference_for_every_transpose_and_odd_sizes() {
        with_device(
            tight_budget_device(),
            super::matmul_matches_reference_for_every_transpose_and_odd_sizes,
        );
    }

    #[test]
    fn batched_matmul_with_broadcast_batches() {
        with_device(
            tight_budget_device(),
            super::batched_matmul_with_broadcast_batches,
        );
    }

    #[test]
    fn long_inner_dimension_within_1e4() {
        with_device(
            tight_budget_device(),
            super::long_inner_dimension_within_1e4,
        );
    }
}

/// Products whose K runs past lavapipe's loop cap (65,535 iterations per invocation,
/// which once stopped `ones[1, 2^19] · ones[2^19, 1]` at 262,140): split along K.
mod past_the_loop_cap {
    use super::*;

    #[test]
    fn a_long_dot_product_counts_every_term() {
        let k = 1 << 19;
        let a = Tensor::ones(device(), &[1, k]).unwrap();
        let b = Tensor::ones(device(), &[k, 1]).unwrap();
        for kernel in kernels() {
            let c = matmul_with(&a, &b, false, false, kernel).unwrap();
            assert_eq!(c.to_vec().unwrap(), [k as f32], "{kernel:?}");
        }
    }

    #[test]
    fn long_products_match_the_reference() {
        let mut rng = Rng::new(44);
        check(&mut rng, &[], &[], 3, 2, 300_001, false, true, 1e-4);
        check(&mut rng, &[2], &[2], 2, 9, 70_001, true, false, 1e-4);
    }

    /// At a loop budget of the whole cap, each K-slice loops right up to it: a kernel
    /// whose loops cost more than its declared count would come up short here.
    #[test]
    fn slices_at_the_cap_are_counted_right() {
        with_device(cap_budget_device(), || {
            let mut rng = Rng::new(45);
            check(&mut rng, &[], &[], 3, 2, 270_000, false, true, 1e-4);
        });
    }
}
