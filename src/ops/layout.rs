//! Shape arithmetic shared by the strided kernels: broadcasting, strides, merging of
//! neighbouring dimensions, and packing for the kernels' uniform blocks.

use super::MAX_KERNEL_DIMS;
use crate::error::{Result, shape_err};

/// Row-major element strides of a contiguous tensor of `shape`.
pub(crate) fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * shape[d + 1];
    }
    strides
}

/// The shape two operands broadcast to (NumPy rules: align right, sizes equal or 1).
pub(crate) fn broadcast_shape(op: &str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i < n - a.len() {
            1
        } else {
            a[i - (n - a.len())]
        };
        let db = if i < n - b.len() {
            1
        } else {
            b[i - (n - b.len())]
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return shape_err!(
                    "{op}: shapes {a:?} and {b:?} do not broadcast (dimension {i} of the \
                     aligned shapes is {da} vs {db})"
                );
            }
        };
    }
    Ok(out)
}

/// Strides of `shape` (contiguous) as seen from `out`: right-aligned, 0 where broadcast.
pub(crate) fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let own = contiguous_strides(shape);
    let lead = out.len() - shape.len();
    (0..out.len())
        .map(|i| {
            if i < lead || shape[i - lead] == 1 {
                0
            } else {
                own[i - lead]
            }
        })
        .collect()
}

/// Drops size-1 dimensions and merges neighbours that every operand walks contiguously
/// (`stride[outer] == stride[inner] * size[inner]`), so kernels index as few dimensions as
/// possible. Returns the merged shape and each operand's merged strides.
pub(crate) fn merge_dims(shape: &[usize], strides: &[Vec<usize>]) -> (Vec<usize>, Vec<Vec<usize>>) {
    let mut out_shape: Vec<usize> = Vec::new();
    let mut out_strides: Vec<Vec<usize>> = vec![Vec::new(); strides.len()];
    for d in 0..shape.len() {
        if shape[d] == 1 {
            continue;
        }
        let mergeable = !out_shape.is_empty()
            && strides
                .iter()
                .zip(&out_strides)
                .all(|(s, merged)| *merged.last().unwrap() == s[d] * shape[d]);
        if mergeable {
            *out_shape.last_mut().unwrap() *= shape[d];
            for (s, merged) in strides.iter().zip(out_strides.iter_mut()) {
                *merged.last_mut().unwrap() = s[d];
            }
        } else {
            out_shape.push(shape[d]);
            for (s, merged) in strides.iter().zip(out_strides.iter_mut()) {
                merged.push(s[d]);
            }
        }
    }
    (out_shape, out_strides)
}

/// Packs up to [`MAX_KERNEL_DIMS`] sizes for a `array<vec4<u32>, 2>` uniform field.
pub(crate) fn pack_dims(op: &str, values: &[usize]) -> Result<[u32; MAX_KERNEL_DIMS]> {
    if values.len() > MAX_KERNEL_DIMS {
        return shape_err!(
            "{op}: {} dimensions remain after merging ({values:?}); at most {MAX_KERNEL_DIMS} \
             are supported",
            values.len()
        );
    }
    let mut packed = [0u32; MAX_KERNEL_DIMS];
    for (p, &v) in packed.iter_mut().zip(values) {
        *p = v as u32;
    }
    Ok(packed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy_rules() {
        assert_eq!(
            broadcast_shape("t", &[2, 3, 4, 5], &[3, 1, 1]).unwrap(),
            [2, 3, 4, 5]
        );
        assert_eq!(broadcast_shape("t", &[1], &[7, 2]).unwrap(), [7, 2]);
        let err = broadcast_shape("add", &[2, 3], &[4, 3])
            .unwrap_err()
            .to_string();
        assert!(err.contains("[2, 3]") && err.contains("[4, 3]"), "{err}");
    }

    #[test]
    fn per_channel_operand_merges_to_three_dims() {
        let out = [2, 3, 4, 5];
        let a = broadcast_strides(&out, &out);
        let b = broadcast_strides(&[1, 3, 1, 1], &out);
        let (shape, strides) = merge_dims(&out, &[a, b]);
        assert_eq!(shape, [2, 3, 20]);
        assert_eq!(strides, [vec![60, 20, 1], vec![0, 1, 0]]);
    }
}
