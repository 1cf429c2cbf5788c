//! Concat, split, chunk and channel shuffle against index-arithmetic references. They
//! only move values, so results must be bit-exact; their backwards are checked as inverse
//! permutations (round trips) and as adjoints (<f(x), y> = <x, f_backward(y)>).

use liandan::ops::channels::{
    channel_shuffle, channel_shuffle_backward, chunk, concat, concat_backward, split,
    split_backward,
};
use liandan::{Rng, Tensor};

use crate::common::*;
use crate::errors::{Kind, expect_err};

fn read(t: &Tensor) -> Vec<f32> {
    t.to_vec().unwrap()
}

/// `(outer, inner)` element counts around `axis`.
fn around(shape: &[usize], axis: usize) -> (usize, usize) {
    (
        shape[..axis].iter().product(),
        shape[axis + 1..].iter().product(),
    )
}

/// Reference concat of `(shape, values)` pairs along `axis`.
fn concat_reference(parts: &[(Vec<usize>, Vec<f64>)], axis: usize) -> Vec<f64> {
    let (outer, inner) = around(&parts[0].0, axis);
    let mut out = Vec::new();
    for o in 0..outer {
        for (shape, values) in parts {
            let row = shape[axis] * inner;
            out.extend_from_slice(&values[o * row..(o + 1) * row]);
        }
    }
    out
}

/// Reference split of `values` of `shape` into `sizes` along `axis`.
fn split_reference(values: &[f64], shape: &[usize], sizes: &[usize], axis: usize) -> Vec<Vec<f64>> {
    let (outer, inner) = around(shape, axis);
    let row = shape[axis] * inner;
    let mut start = 0;
    sizes
        .iter()
        .map(|&len| {
            let piece = (0..outer)
                .flat_map(|o| {
                    let from = o * row + start * inner;
                    values[from..from + len * inner].iter().copied()
                })
                .collect();
            start += len;
            piece
        })
        .collect()
}

/// Reference shuffle of an `[N, C, S]` layout: output channel `j · g + k` is input
/// channel `k · (C / g) + j`.
fn shuffle_reference(values: &[f64], n: usize, c: usize, s: usize, groups: usize) -> Vec<f64> {
    let per_group = c / groups;
    let mut out = vec![0.0; values.len()];
    for b in 0..n {
        for j in 0..per_group {
            for k in 0..groups {
                let (to, from) = (j * groups + k, k * per_group + j);
                for q in 0..s {
                    out[(b * c + to) * s + q] = values[(b * c + from) * s + q];
                }
            }
        }
    }
    out
}

fn as_f64(values: &[f32]) -> Vec<f64> {
    values.iter().map(|&v| f64::from(v)).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}

/// Asserts two inner products agree (they sum the same products in another order).
fn assert_adjoint(what: &str, lhs: f64, rhs: f64, magnitude: f64) {
    assert!(
        (lhs - rhs).abs() <= 1e-12 * magnitude.max(1.0),
        "{what}: <f(x), y> = {lhs} but <x, f_backward(y)> = {rhs}"
    );
}

#[test]
fn concat_and_split_match_reference_along_every_axis() {
    let mut rng = Rng::new(91);
    for trial in 0..24 {
        let ndim = 1 + trial % 4;
        let shape = random_shape(&mut rng, ndim, 20_000);
        let axis = rng.below(ndim as u64) as usize;
        let count = 1 + rng.below(4) as usize;
        // Lengths along the axis, an empty one now and then.
        let lens: Vec<usize> = (0..count)
            .map(|_| {
                if rng.below(8) == 0 {
                    0
                } else {
                    odd_size(&mut rng)
                }
            })
            .collect();
        let what = format!("concat of {count} along axis {axis} of {shape:?}, lengths {lens:?}");
        let mut parts = Vec::new();
        let mut tensors = Vec::new();
        for &len in &lens {
            let mut s = shape.clone();
            s[axis] = len;
            let (t, v) = random_tensor(&mut rng, &s, -1.0, 1.0);
            tensors.push(t);
            parts.push((s, v));
        }
        let refs: Vec<&Tensor> = tensors.iter().collect();
        let joined = concat(&refs, axis).unwrap();
        let mut want_shape = shape.clone();
        want_shape[axis] = lens.iter().sum();
        assert_eq!(joined.shape(), want_shape.as_slice(), "{what}");
        let want = concat_reference(&parts, axis);
        assert_eq!(as_f64(&read(&joined)), want, "{what}");

        // The backward of concat splits the gradient back: a round trip.
        let grads = concat_backward(&joined, &lens, axis).unwrap();
        for (k, (g, (s, v))) in grads.iter().zip(&parts).enumerate() {
            assert_eq!(g.shape(), s.as_slice(), "{what}: piece {k}");
            assert_eq!(&as_f64(&read(g)), v, "{what}: piece {k}");
        }

        // Split the joined tensor at other places, against the reference.
        let total: usize = lens.iter().sum();
        let first = if total == 0 {
            0
        } else {
            rng.below(total as u64 + 1) as usize
        };
        let sizes = [first, total - first];
        let pieces = split(&joined, &sizes, axis).unwrap();
        let want = split_reference(&want, &want_shape, &sizes, axis);
        for (k, (piece, w)) in pieces.iter().zip(&want).enumerate() {
            assert_eq!(
                &as_f64(&read(piece)),
                w,
                "{what}: split {sizes:?} piece {k}"
            );
        }
        let refs: Vec<&Tensor> = pieces.iter().collect();
        let back = split_backward(&refs, axis).unwrap();
        assert_eq!(
            read(&back),
            read(&joined),
            "{what}: split then its backward"
        );

        // Adjoint: <concat(xs), y> = Σ <xs_k, concat_backward(y)_k>.
        let (y, ys) = random_tensor(&mut rng, &want_shape, -1.0, 1.0);
        let lhs = dot(&as_f64(&read(&joined)), &ys);
        let rhs: f64 = concat_backward(&y, &lens, axis)
            .unwrap()
            .iter()
            .zip(&parts)
            .map(|(g, (_, v))| dot(&as_f64(&read(g)), v))
            .sum();
        assert_adjoint(&what, lhs, rhs, ys.len() as f64);
    }
}

#[test]
fn chunk_follows_torch_chunk_sizes() {
    let mut rng = Rng::new(92);
    // (axis length, chunks, expected lengths) as torch.chunk gives them.
    let table: [(usize, usize, &[usize]); 8] = [
        (6, 3, &[2, 2, 2]),
        (6, 4, &[2, 2, 2]),
        (5, 2, &[3, 2]),
        (7, 3, &[3, 3, 1]),
        (2, 5, &[1, 1]),
        (1, 1, &[1]),
        (0, 3, &[0, 0, 0]),
        (65, 4, &[17, 17, 17, 14]),
    ];
    for (len, chunks, want_lens) in table {
        let shape = [3, len, 5];
        let what = format!("chunk of {shape:?} into {chunks} along axis 1");
        let (x, xs) = random_tensor(&mut rng, &shape, -1.0, 1.0);
        let pieces = chunk(&x, chunks, 1).unwrap();
        let lens: Vec<usize> = pieces.iter().map(|p| p.shape()[1]).collect();
        assert_eq!(lens, want_lens, "{what}");
        let want = split_reference(&xs, &shape, want_lens, 1);
        for (k, (piece, w)) in pieces.iter().zip(&want).enumerate() {
            assert_eq!(&as_f64(&read(piece)), w, "{what}: piece {k}");
        }
        let refs: Vec<&Tensor> = pieces.iter().collect();
        assert_eq!(
            as_f64(&read(&split_backward(&refs, 1).unwrap())),
            xs,
            "{what}"
        );
    }
}

#[test]
fn channel_shuffle_matches_reference_and_its_backward_inverts_it() {
    // The ShuffleNet example: 6 channels in 2 groups come out as 0 3 1 4 2 5.
    let x = Tensor::arange(device(), 0.0, 6.0, 1.0).unwrap();
    let got = read(&channel_shuffle(&x.reshape(&[1, 6, 1, 1]).unwrap(), 2).unwrap());
    assert_eq!(got, [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    let got = read(&channel_shuffle(&x.reshape(&[1, 6]).unwrap(), 3).unwrap());
    assert_eq!(got, [0.0, 2.0, 4.0, 1.0, 3.0, 5.0]);

    let mut rng = Rng::new(93);
    for trial in 0..16 {
        let ndim = 2 + trial % 3;
        let mut shape = random_shape(&mut rng, ndim, 20_000);
        shape[1] = [4, 6, 12, 15, 16, 24, 1, 33][trial % 8];
        let c = shape[1];
        let divisors: Vec<usize> = (1..=c).filter(|&g| c.is_multiple_of(g)).collect();
        let groups = divisors[rng.below(divisors.len() as u64) as usize];
        let what = format!("channel_shuffle {shape:?} in {groups} groups");
        let (n, s) = (shape[0], shape[2..].iter().product());
        let (x, xs) = random_tensor(&mut rng, &shape, -1.0, 1.0);
        let y = channel_shuffle(&x, groups).unwrap();
        assert_eq!(y.shape(), shape.as_slice(), "{what}");
        assert_eq!(
            as_f64(&read(&y)),
            shuffle_reference(&xs, n, c, s, groups),
            "{what}"
        );
        // The backward is the inverse permutation, a shuffle in C / groups groups.
        let back = channel_shuffle_backward(&y, groups).unwrap();
        assert_eq!(read(&back), read(&x), "{what}: backward after forward");
        let inverse = shuffle_reference(&xs, n, c, s, c / groups);
        let got = read(&channel_shuffle_backward(&x, groups).unwrap());
        assert_eq!(as_f64(&got), inverse, "{what}: backward");
        let forward_again =
            read(&channel_shuffle(&channel_shuffle_backward(&x, groups).unwrap(), groups).unwrap());
        assert_eq!(forward_again, read(&x), "{what}: forward after backward");
        // Adjoint: <shuffle(x), r> = <x, shuffle_backward(r)>.
        let (r, rs) = random_tensor(&mut rng, &shape, -1.0, 1.0);
        let lhs = dot(&as_f64(&read(&y)), &rs);
        let rhs = dot(
            &xs,
            &as_f64(&read(&channel_shuffle_backward(&r, groups).unwrap())),
        );
        assert_adjoint(&what, lhs, rhs, xs.len() as f64);
    }
}

#[test]
fn bad_arguments_are_errors_naming_the_values() {
    let dev = device();
    let t = |shape: &[usize]| Tensor::zeros(dev, shape).unwrap();
    let (a, b, c) = (t(&[2, 3, 4]), t(&[2, 5, 4]), t(&[2, 3, 5]));
    let flat = t(&[6]);
    let cases: Vec<(&str, liandan::Result<()>, Kind, &[&str])> = vec![
        (
            "concat nothing",
            concat(&[], 0).map(|_| ()),
            Kind::Arg,
            &["no tensors"],
        ),
        (
            "concat axis",
            concat(&[&a, &b], 3).map(|_| ()),
            Kind::Arg,
            &["axis 3", "[2, 3, 4]", "3 dims"],
        ),
        (
            "concat other dims",
            concat(&[&a, &b, &c], 1).map(|_| ()),
            Kind::Shape,
            &["tensor 2", "[2, 3, 5]", "tensor 0", "[2, 3, 4]", "axis 1"],
        ),
        (
            "concat ranks",
            concat(&[&a, &flat], 0).map(|_| ()),
            Kind::Shape,
            &["tensor 1", "[6]", "[2, 3, 4]"],
        ),
        (
            "split sum",
            split(&a, &[1, 1], 1).map(|_| ()),
            Kind::Shape,
            &["[1, 1]", "3", "axis 1", "[2, 3, 4]"],
        ),
        (
            "split overflowing sizes",
            split(&a, &[usize::MAX, 4], 1).map(|_| ()),
            Kind::Shape,
            &["do not sum to 3"],
        ),
        (
            "split no sizes",
            split(&a, &[], 1).map(|_| ()),
            Kind::Arg,
            &["no sizes", "[2, 3, 4]"],
        ),
        (
            "split axis",
            split(&a, &[2], 5).map(|_| ()),
            Kind::Arg,
            &["axis 5", "[2, 3, 4]"],
        ),
        (
            "chunk zero",
            chunk(&a, 0, 1).map(|_| ()),
            Kind::Arg,
            &["chunks", "0", "[2, 3, 4]"],
        ),
        (
            "chunk axis",
            chunk(&a, 2, 3).map(|_| ()),
            Kind::Arg,
            &["axis 3"],
        ),
        (
            "concat_backward sizes",
            concat_backward(&a, &[2, 2], 1).map(|_| ()),
            Kind::Shape,
            &["[2, 2]", "3"],
        ),
        (
            "split_backward mismatch",
            split_backward(&[&a, &c], 1).map(|_| ()),
            Kind::Shape,
            &["[2, 3, 5]", "[2, 3, 4]"],
        ),
        (
            "shuffle groups not dividing",
            channel_shuffle(&a, 2).map(|_| ()),
            Kind::Arg,
            &["groups 2", "3 channels", "[2, 3, 4]"],
        ),
        (
            "shuffle zero groups",
            channel_shuffle(&a, 0).map(|_| ()),
            Kind::Arg,
            &["groups 0"],
        ),
        (
            "shuffle 1-D",
            channel_shuffle(&flat, 1).map(|_| ()),
            Kind::Arg,
            &["at least 2 dims", "[6]"],
        ),
        (
            "shuffle backward groups",
            channel_shuffle_backward(&b, 3).map(|_| ()),
            Kind::Arg,
            &["groups 3", "5 channels"],
        ),
    ];
    for (what, result, kind, needles) in cases {
        expect_err(what, result, kind, needles);
    }
}
