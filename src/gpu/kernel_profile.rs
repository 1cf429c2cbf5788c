//! Where the device's time goes, per kernel: with [`Device::set_kernel_profile`] on, every
//! launch is submitted alone and waited for, and its wall time is charged to its kernel
//! file and entry point. The waits make the whole run slower, so the shares are what
//! this measures; the tape's profile ([`crate::autograd::Tape::profiled`]) says which
//! ops launched the kernels.
//!
//! [`Device::set_kernel_profile`]: super::Device::set_kernel_profile

use std::collections::HashMap;

/// One kernel's launches in a profiled run.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelTime {
    /// `file.wgsl:entry`, with the variant preludes' names when it has them.
    pub kernel: String,
    /// How many launches.
    pub launches: u64,
    /// Seconds from submitting each launch to its end, summed.
    pub seconds: f64,
}

/// The times gathered so far, by kernel.
#[derive(Default)]
pub(crate) struct KernelProfile {
    times: HashMap<String, (u64, f64)>,
}

impl KernelProfile {
    pub(crate) fn add(&mut self, kernel: String, seconds: f64) {
        let entry = self.times.entry(kernel).or_default();
        entry.0 += 1;
        entry.1 += seconds;
    }

    /// The kernels, slowest first.
    pub(crate) fn rows(&self) -> Vec<KernelTime> {
        let mut rows: Vec<KernelTime> = self
            .times
            .iter()
            .map(|(kernel, &(launches, seconds))| KernelTime {
                kernel: kernel.clone(),
                launches,
                seconds,
            })
            .collect();
        rows.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_sum_launches_and_come_slowest_first() {
        let mut p = KernelProfile::default();
        p.add("a.wgsl:main".into(), 1.0);
        p.add("b.wgsl:main".into(), 3.0);
        p.add("a.wgsl:main".into(), 0.5);
        let rows = p.rows();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].kernel, "b.wgsl:main");
        assert_eq!((rows[1].launches, rows[1].seconds), (2, 1.5));
    }
}
