//! Sum, mean, max over axes and global average pooling against f64 references.

use liandan::{Error, Rng, Tensor};

use crate::common::*;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Sum,
    Mean,
    Max,
}

/// Reference reduction: values and the magnitude each value's rounding error scales with
/// (the sum of |terms| for sums and means; |value| for max, which is exact in f32).
fn reference(
    xs: &[f64],
    shape: &[usize],
    axes: &[usize],
    kind: Kind,
) -> (Vec<f64>, Vec<f64>, Vec<usize>) {
    let out_shape: Vec<usize> = (0..shape.len())
        .map(|d| if axes.contains(&d) { 1 } else { shape[d] })
        .collect();
    let n_out: usize = out_shape.iter().product();
    let mut acc = vec![
        if kind == Kind::Max {
            f64::NEG_INFINITY
        } else {
            0.0
        };
        n_out
    ];
    let mut mag = vec![0.0; n_out];
    let out_strides = strides(&out_shape);
    for (i, &v) in xs.iter().enumerate() {
        let idx = unravel(i, shape);
        let o: usize = (0..shape.len())
            .map(|d| {
                if axes.contains(&d) {
                    0
                } else {
                    idx[d] * out_strides[d]
                }
            })
            .sum();
        match kind {
            Kind::Max => acc[o] = acc[o].max(v),
            _ => acc[o] += v,
        }
        mag[o] += v.abs();
    }
    if kind == Kind::Max {
        mag = acc.iter().map(|v| v.abs()).collect();
    }
    let len: usize = axes.iter().map(|&a| shape[a]).product();
    if kind == Kind::Mean {
        for (a, m) in acc.iter_mut().zip(mag.iter_mut()) {
            *a /= len as f64;
            *m /= len as f64;
        }
    }
    (acc, mag, out_shape)
}

#[test]
fn reductions_match_reference_over_random_axes() {
    let mut rng = Rng::new(21);
    for trial in 0..60 {
        let ndim = 1 + rng.below(4) as usize;
        let shape = random_shape(&mut rng, ndim, 40_000);
        let mut axes: Vec<usize> = (0..ndim).filter(|_| rng.below(2) == 0).collect();
        if axes.is_empty() {
            axes.push(rng.below(ndim as u64) as usize);
        }
        if rng.below(2) == 0 {
            axes.reverse(); // order of axes does not matter
        }
        let keepdim = rng.below(2) == 0;
        let kind = [Kind::Sum, Kind::Mean, Kind::Max][trial % 3];
        let (x, xs) = random_tensor(&mut rng, &shape, -3.0, 3.0);
        let y = match kind {
            Kind::Sum => x.sum(&axes, keepdim),
            Kind::Mean => x.mean(&axes, keepdim),
            Kind::Max => x.max(&axes, keepdim),
        }
        .unwrap();
        let (want, mag, kept_shape) = reference(&xs, &shape, &axes, kind);
        let expect_shape: Vec<usize> = if keepdim {
            kept_shape
        } else {
            (0..ndim)
                .filter(|d| !axes.contains(d))
                .map(|d| shape[d])
                .collect()
        };
        assert_eq!(
            y.shape(),
            expect_shape.as_slice(),
            "{kind:?} {shape:?} axes {axes:?}"
        );
        let what = format!("{kind:?} of {shape:?} over {axes:?}");
        assert_close_scaled(&what, &y.to_vec().unwrap(), &want, &mag, 1e-5);
    }
}

#[test]
fn long_reductions_use_whole_workgroups_correctly() {
    // 1-output and few-output cases take the workgroup-per-output path.
    let mut rng = Rng::new(22);
    for shape in [vec![100_003], vec![3, 4_099], vec![2, 5, 1_000]] {
        let (x, xs) = random_tensor(&mut rng, &shape, -1.0, 1.0);
        let axes: Vec<usize> = (shape.len() - 1..shape.len()).collect();
        for kind in [Kind::Sum, Kind::Max] {
            let y = if kind == Kind::Sum {
                x.sum(&axes, false)
            } else {
                x.max(&axes, false)
            }
            .unwrap();
            let (want, mag, _) = reference(&xs, &shape, &axes, kind);
            assert_close_scaled(
                &format!("{kind:?} {shape:?}"),
                &y.to_vec().unwrap(),
                &want,
                &mag,
                1e-5,
            );
        }
    }
    let total = Tensor::ones(device(), &[7, 33, 65])
        .unwrap()
        .sum_all()
        .unwrap();
    assert_eq!(total.to_scalar().unwrap(), (7 * 33 * 65) as f32);
}

#[test]
fn global_average_pool_is_the_mean_over_h_and_w() {
    let mut rng = Rng::new(23);
    for _ in 0..6 {
        let shape = [
            1 + rng.below(3) as usize,
            odd_size(&mut rng),
            odd_size(&mut rng),
            odd_size(&mut rng),
        ];
        let (x, xs) = random_tensor(&mut rng, &shape, -2.0, 2.0);
        let y = x.global_avg_pool2d().unwrap();
        assert_eq!(y.shape(), &[shape[0], shape[1], 1, 1]);
        let (want, mag, _) = reference(&xs, &shape, &[2, 3], Kind::Mean);
        assert_close_scaled("global_avg_pool2d", &y.to_vec().unwrap(), &want, &mag, 1e-5);
    }
}

#[test]
fn mean_of_nothing_is_nan_and_sum_is_zero() {
    let x = Tensor::zeros(device(), &[3, 0]).unwrap();
    assert!(
        x.mean(&[1], false)
            .unwrap()
            .to_vec()
            .unwrap()
            .iter()
            .all(|v| v.is_nan())
    );
    assert_eq!(x.sum(&[1], false).unwrap().to_vec().unwrap(), vec![0.0; 3]);
    assert!(matches!(x.max(&[1], false), Err(Error::InvalidArgument(_))));
}

#[test]
fn bad_axes_are_errors() {
    let x = Tensor::zeros(device(), &[2, 3]).unwrap();
    for (axes, needle) in [
        (vec![2], "axis 2"),
        (vec![0, 0], "twice"),
        (vec![], "no axes"),
    ] {
        match x.sum(&axes, false) {
            Err(Error::InvalidArgument(msg)) => assert!(msg.contains(needle), "{msg}"),
            other => panic!("sum over {axes:?}: expected an error, got {other:?}"),
        }
    }
    assert!(matches!(
        x.global_avg_pool2d(),
        Err(Error::InvalidArgument(_))
    ));
}

/// The tests above again on a device with the smallest loop budget, where every op takes
/// its split paths (segments, split-K, column ranges) on these small shapes.
mod at_the_tight_loop_budget {
    use crate::common::{tight_budget_device, with_device};

    #[test]
    fn reductions_match_reference_over_random_axes() {
        with_device(
            tight_budget_device(),
            super::reductions_match_reference_over_random_axes,
        );
    }

    #[test]
    fn long_reductions_use_whole_workgroups_correctly() {
        with_device(
            tight_budget_device(),
            super::long_reductions_use_whole_workgroups_correctly,
        );
    }

    #[test]
    fn global_average_pool_is_the_mean_over_h_and_w() {
        with_device(
            tight_budget_device(),
            super::global_average_pool_is_the_mean_over_h_and_w,
        );
    }
}

/// Reductions past lavapipe's loop cap (65,535 iterations per invocation, which once cut
/// `sum_all` of 2^22 ones short at 43,690): split into segments and combined.
mod past_the_loop_cap {
    use super::*;

    #[test]
    fn every_element_of_a_long_reduction_counts() {
        let n = 1 << 22;
        let ones = Tensor::full(device(), &[n], 1.0).unwrap();
        assert_eq!(ones.sum_all().unwrap().to_scalar().unwrap(), n as f32);
        assert_eq!(ones.mean(&[0], false).unwrap().to_scalar().unwrap(), 1.0);
        // The maximum is the very last element.
        let ramp = Tensor::arange(device(), 0.0, n as f32, 1.0).unwrap();
        let max = ramp.max(&[0], false).unwrap().to_scalar().unwrap();
        assert_eq!(max, (n - 1) as f32);
    }

    #[test]
    fn long_reductions_match_the_reference() {
        let mut rng = Rng::new(24);
        for (shape, axes) in [
            (vec![3, 1 << 21], vec![1]),
            (vec![1 << 20, 3], vec![0]),
            (vec![2, 1 << 10, 4, 1 << 9], vec![1, 3]),
        ] {
            let (x, xs) = random_tensor(&mut rng, &shape, -1.0, 1.0);
            for kind in [Kind::Sum, Kind::Mean, Kind::Max] {
                let y = match kind {
                    Kind::Sum => x.sum(&axes, true),
                    Kind::Mean => x.mean(&axes, true),
                    Kind::Max => x.max(&axes, true),
                }
                .unwrap();
                let (want, mag, _) = reference(&xs, &shape, &axes, kind);
                let what = format!("{kind:?} of {shape:?} over {axes:?}");
                assert_close_scaled(&what, &y.to_vec().unwrap(), &want, &mag, 1e-5);
            }
        }
    }
}

#[test]
fn max_propagates_nan_as_pytorch() {
    // PyTorch: max over [1, NaN, 3] is NaN, wherever the NaN sits and however long the
    // reduction (a long one combines partial maxima).
    let x = Tensor::from_vec(device(), vec![1.0, f32::NAN, 3.0], &[3]).unwrap();
    assert!(x.max(&[0], false).unwrap().to_scalar().unwrap().is_nan());
    for at in [0, 77_777, (1 << 20) - 1] {
        let mut values = vec![2.0f32; 1 << 20];
        values[at] = f32::NAN;
        let x = Tensor::from_vec(device(), values, &[1 << 20]).unwrap();
        let max = x.max(&[0], false).unwrap().to_scalar().unwrap();
        assert!(max.is_nan(), "NaN at {at}: max {max}");
    }
    // Infinities are ordinary values.
    let x = Tensor::from_vec(device(), vec![f32::NEG_INFINITY, -1.0], &[2]).unwrap();
    assert_eq!(x.max(&[0], false).unwrap().to_scalar().unwrap(), -1.0);
}

/// `argmax` and `topk` over the last axis: largest first, ties by index, NaN first (as
/// PyTorch), and a k out of range is an error naming it.
#[test]
fn argmax_and_topk_rank_each_row() {
    let t = Tensor::from_vec(
        device(),
        vec![1.0, 3.0, 3.0, 2.0, f32::NAN, 0.0, 5.0, -1.0],
        &[2, 4],
    )
    .unwrap();
    assert_eq!(t.argmax().unwrap(), vec![1, 0]);
    let top = t.topk(3).unwrap();
    assert_eq!(top[0], vec![(1, 3.0), (2, 3.0), (3, 2.0)]);
    assert_eq!(top[1][0].0, 0);
    assert!(top[1][0].1.is_nan());
    assert_eq!(&top[1][1..], &[(2, 5.0), (1, 0.0)]);
    let err = t.topk(5).unwrap_err().to_string();
    assert!(err.contains("k = 5") && err.contains("[2, 4]"), "{err}");
    assert!(t.topk(0).is_err());
}
