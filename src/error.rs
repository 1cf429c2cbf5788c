//! The one error type of liandan: every fallible call returns [`Result`].

use std::fmt;

/// Everything that can go wrong in liandan, with a message that names the values at fault.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// No GPU adapter matched the request; the message says how to get one.
    NoAdapter(String),
    /// The adapter refused to create a device, a read-back failed, or wgpu reported an error.
    Device(String),
    /// Operand shapes do not fit together; the message names both shapes.
    Shape(String),
    /// An argument is out of range (an axis, a seed-free size, a non-finite scale...).
    InvalidArgument(String),
    /// A fault inside liandan (an op planned work it must not launch): a bug to report.
    Internal(String),
    /// A group of ranks could not meet (see [`crate::dist`]): a rank left, stalled past
    /// the timeout, or called another collective; the message names the rank.
    Distributed(String),
    /// A tensor is larger than one storage binding of this adapter allows.
    TooLarge {
        /// What was being created, e.g. `tensor [4096, 4096, 4]`.
        what: String,
        /// Its size in bytes.
        bytes: u64,
        /// The adapter's limit it passes: `max_buffer_size` for a tensor,
        /// `max_storage_buffer_binding_size` for what one kernel binds.
        limit: u64,
    },
}

/// `std::result::Result` with liandan's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoAdapter(msg) => write!(f, "no GPU adapter: {msg}"),
            Error::Device(msg) => write!(f, "device error: {msg}"),
            Error::Shape(msg) => write!(f, "shape error: {msg}"),
            Error::InvalidArgument(msg) => write!(f, "invalid argument: {msg}"),
            Error::Internal(msg) => write!(f, "internal error (a liandan bug): {msg}"),
            Error::Distributed(msg) => write!(f, "distributed training: {msg}"),
            Error::TooLarge { what, bytes, limit } => write!(
                f,
                "{what} needs {bytes} bytes, past this adapter's limit of {limit} bytes; \
                 split the work into smaller tensors"
            ),
        }
    }
}

impl std::error::Error for Error {}

/// Shorthand for returning an [`Error::Shape`] built with `format!`.
macro_rules! shape_err {
    ($($arg:tt)*) => { Err($crate::error::Error::Shape(format!($($arg)*))) };
}

/// Shorthand for returning an [`Error::InvalidArgument`] built with `format!`.
macro_rules! arg_err {
    ($($arg:tt)*) => { Err($crate::error::Error::InvalidArgument(format!($($arg)*))) };
}

pub(crate) use {arg_err, shape_err};
