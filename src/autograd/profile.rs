//! Where a training step's time goes, per kind of op: a profiled tape
//! ([`Tape::profiled`]) waits for the device after every op, forward and backward, and
//! adds the time to the op's kind. Waiting after each op removes the overlap of
//! recording and running, so the total exceeds an unprofiled step: the shares are what
//! this measures.

use std::collections::HashMap;
use std::time::Instant;

use super::{Node, Op, Tape};
use crate::autograd::conv::ConvOp;
use crate::error::Result;
use crate::gpu::Device;

/// One kind of op's time in a profiled pass.
#[derive(Clone, Debug, PartialEq)]
pub struct ProfileRow {
    /// The kind: `conv2d depthwise 3x3`, `batch_norm`, `relu`, …
    pub kind: String,
    /// Ops of this kind recorded.
    pub count: usize,
    /// Seconds in their forward passes (with the device waited for).
    pub forward_s: f64,
    /// Seconds in their backward rules.
    pub backward_s: f64,
}

/// The times a profiled tape gathers.
#[derive(Debug)]
pub(crate) struct Profile {
    last: Instant,
    rows: HashMap<String, ProfileRow>,
}

impl Profile {
    pub(crate) fn new() -> Self {
        Self {
            last: Instant::now(),
            rows: HashMap::new(),
        }
    }

    fn row(&mut self, kind: String) -> &mut ProfileRow {
        self.rows.entry(kind.clone()).or_insert(ProfileRow {
            kind,
            count: 0,
            forward_s: 0.0,
            backward_s: 0.0,
        })
    }

    /// Charges the time since the last op to `kind`'s forward (after waiting for
    /// `device`).
    pub(crate) fn forward(&mut self, device: &Device, kind: String) -> Result<()> {
        device.synchronize()?;
        let now = Instant::now();
        let seconds = (now - self.last).as_secs_f64();
        let row = self.row(kind);
        row.count += 1;
        row.forward_s += seconds;
        self.last = now;
        Ok(())
    }

    /// Starts a new interval without charging it (after a leaf: nothing ran).
    pub(crate) fn restart(&mut self) {
        self.last = Instant::now();
    }

    /// Adds `seconds` of backward time to `kind`.
    pub(crate) fn backward(&mut self, kind: String, seconds: f64) {
        self.row(kind).backward_s += seconds;
    }

    fn report(&self) -> Vec<ProfileRow> {
        let mut rows: Vec<ProfileRow> = self.rows.values().cloned().collect();
        rows.sort_by(|a, b| (b.forward_s + b.backward_s).total_cmp(&(a.forward_s + a.backward_s)));
        rows
    }
}

/// The kind a profile charges `op` to: the op's name without its settings, and for a
/// convolution its form (depthwise, pointwise, grouped, or its kernel size).
pub(crate) fn kind(op: &Op, nodes: &[Node]) -> String {
    match op {
        Op::Conv(ConvOp::Conv2d { x, w, p, .. }) => {
            let (x, w) = (nodes[*x].value.shape(), nodes[*w].value.shape());
            let (c_in, (kh, kw)) = (x.get(1).copied().unwrap_or(0), (w[2], w[3]));
            let form = if p.groups > 1 && p.groups == c_in {
                "depthwise"
            } else if p.groups > 1 {
                "grouped"
            } else if (kh, kw) == (1, 1) {
                "pointwise"
            } else {
                "standard"
            };
            format!("conv2d {form} {kh}x{kw}")
        }
        other => other.name().split(' ').next().unwrap_or("").to_string(),
    }
}

impl Tape {
    /// A recording tape that times every op per kind, forward and backward (see
    /// [`Tape::profile`]); slower than [`Tape::new`], as it waits for the device after
    /// each op.
    pub fn profiled() -> Self {
        let tape = Tape::new();
        *tape.profile.borrow_mut() = Some(Profile::new());
        tape
    }

    /// The times a [`Tape::profiled`] tape gathered, the costliest kind first; empty
    /// for other tapes.
    pub fn profile(&self) -> Vec<ProfileRow> {
        self.profile
            .borrow()
            .as_ref()
            .map(Profile::report)
            .unwrap_or_default()
    }
}
