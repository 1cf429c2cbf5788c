//! Checking that bad arguments come back as the right `Err`, naming the values at fault.

use liandan::{Error, Result};

/// Which [`Error`] a bad call must return.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// [`Error::Shape`]: operand shapes that do not fit.
    Shape,
    /// [`Error::InvalidArgument`]: a value out of range.
    Arg,
}

/// Asserts `result` is an `Err` of `kind` whose message holds every needle.
pub fn expect_err<T: std::fmt::Debug>(what: &str, result: Result<T>, kind: Kind, needles: &[&str]) {
    let msg = match (result, kind) {
        (Err(Error::Shape(msg)), Kind::Shape) | (Err(Error::InvalidArgument(msg)), Kind::Arg) => {
            msg
        }
        (other, _) => panic!("{what}: expected a {kind:?} error, got {other:?}"),
    };
    for needle in needles {
        assert!(msg.contains(needle), "{what}: {msg:?} lacks {needle:?}");
    }
}
