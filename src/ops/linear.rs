//! The fully connected layer (PyTorch's `F.linear`), forward and backward, as matrix
//! products: leading dims of the input are flattened into one `[M, in]` matrix so each
//! product is a single GEMM. No kernel of its own: `matmul` and a broadcast add.

use crate::error::{Result, shape_err};
use crate::tensor::Tensor;

/// `(M, in, out)` after checking that `weight` is `[out, in]` for `x` of shape `[.., in]`.
fn check(op: &str, x: &Tensor, weight: &Tensor) -> Result<(usize, usize, usize)> {
    x.check_same_device(weight, op)?;
    let Some(&in_features) = x.shape().last() else {
        return shape_err!("{op}: x must have at least 1 dim [.., in], got shape []");
    };
    match *weight.shape() {
        [out, w_in] if w_in == in_features => {
            let m = x.shape()[..x.ndim() - 1].iter().product();
            Ok((m, in_features, out))
        }
        _ => shape_err!(
            "{op}: weight of shape {:?} does not fit x of shape {:?}; expected \
             [out, {in_features}]",
            weight.shape(),
            x.shape()
        ),
    }
}

/// `x`'s shape with the last dim replaced by `out`.
fn out_shape(x: &Tensor, out: usize) -> Vec<usize> {
    let mut shape = x.shape().to_vec();
    if let Some(last) = shape.last_mut() {
        *last = out;
    }
    shape
}

/// `x · weightᵀ + bias` for `x` of shape `[.., in]`, `weight` `[out, in]` and `bias`
/// `[out]` (none when `None`); the result has shape `[.., out]`. An `Err` naming the
/// shapes when they do not fit.
pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let op = "linear";
    let (m, in_features, out) = check(op, x, weight)?;
    if let Some(b) = bias {
        x.check_same_device(b, op)?;
        if b.shape() != [out] {
            return shape_err!(
                "{op}: bias has shape {:?}, expected [{out}] for weight of shape {:?}",
                b.shape(),
                weight.shape()
            );
        }
    }
    let y = x.reshape(&[m, in_features])?.matmul_nt(weight)?;
    let y = match bias {
        Some(b) => y.add(b)?,
        None => y,
    };
    y.reshape(&out_shape(x, out))
}

/// Gradients of [`linear`] from `grad_y` (shape `[.., out]`), given the forward's `x` and
/// `weight`: `(dx, dweight, dbias)` with `dx = grad_y · weight` (shaped as `x`),
/// `dweight = grad_yᵀ · x` and `dbias = Σ grad_y` over every leading dim (`[out]`,
/// returned whether or not the forward had a bias). An `Err` naming the shapes when they
/// do not fit.
pub fn linear_backward(
    x: &Tensor,
    weight: &Tensor,
    grad_y: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    let op = "linear_backward";
    let (m, in_features, out) = check(op, x, weight)?;
    x.check_same_device(grad_y, op)?;
    let want = out_shape(x, out);
    if grad_y.shape() != want {
        return shape_err!(
            "{op}: grad_y has shape {:?}, expected {want:?} for x of shape {:?} and weight of \
             shape {:?}",
            grad_y.shape(),
            x.shape(),
            weight.shape()
        );
    }
    let g = grad_y.reshape(&[m, out])?;
    let x2 = x.reshape(&[m, in_features])?;
    let dx = g.matmul(weight)?.reshape(x.shape())?;
    let dweight = g.matmul_tn(&x2)?;
    let dbias = g.sum(&[0], false)?;
    Ok((dx, dweight, dbias))
}
