//! Dispatch grids: how many workgroups a launch needs, folded into the adapter's limits.

use crate::error::{Error, Result};

/// The workgroups of one launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grid {
    /// `count` workgroups numbered 0..count; folded over y and z when `count` passes the
    /// per-dimension limit. Kernels rebuild the linear number with `group_index` from
    /// `shaders/common.wgsl` and skip numbers past `count`.
    Linear(u64),
    /// An explicit 3-D grid; an `Err` when a dimension passes the limit.
    Xyz([u32; 3]),
}

/// One launch's work: its grid of workgroups and the most loop iterations any one of its
/// invocations runs, all loops together (see [`crate::gpu::loops`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Launch {
    /// The workgroups.
    pub grid: Grid,
    /// Loop iterations per invocation, at most.
    pub trips: u64,
}

impl Grid {
    /// This grid, each invocation running at most `trips` loop iterations in all.
    pub fn trips(self, trips: u64) -> Launch {
        Launch { grid: self, trips }
    }

    /// One workgroup per `per_group` items of `items`.
    pub fn for_items(items: u64, per_group: u64) -> Grid {
        Grid::Linear(items.div_ceil(per_group))
    }

    /// The `[x, y, z]` to dispatch, within `max_per_dim` per dimension.
    pub fn fold(self, max_per_dim: u32) -> Result<[u32; 3]> {
        let max = max_per_dim as u64;
        match self {
            Grid::Linear(count) => {
                let y_z = count.div_ceil(max);
                let z = y_z.div_ceil(max);
                if z > max {
                    return Err(Error::InvalidArgument(format!(
                        "a launch of {count} workgroups is more than {max}^3"
                    )));
                }
                let y = y_z.div_ceil(z.max(1));
                let x = count.div_ceil((y * z).max(1));
                Ok([x as u32, y as u32, z as u32])
            }
            Grid::Xyz(dims) => {
                if dims.iter().any(|&d| d > max_per_dim) {
                    return Err(Error::InvalidArgument(format!(
                        "dispatch grid {dims:?} passes the adapter's limit of {max_per_dim} \
                         workgroups per dimension"
                    )));
                }
                Ok(dims)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Grid;

    #[test]
    fn linear_grids_fold_to_cover_every_group_within_the_limit() {
        for count in [
            0u64,
            1,
            7,
            65_535,
            65_536,
            70_000,
            1 << 24,
            65_535 * 65_535 + 3,
        ] {
            let [x, y, z] = Grid::Linear(count).fold(65_535).unwrap();
            assert!(x <= 65_535 && y <= 65_535 && z <= 65_535);
            let covered = x as u64 * y as u64 * z as u64;
            assert!(covered >= count, "{count}: {x}x{y}x{z}");
            // Slack stays below one row of x.
            assert!(
                covered - count < x as u64 * 2 + 1 || count == 0,
                "{count}: {x}x{y}x{z}"
            );
        }
        assert!(Grid::Xyz([70_000, 1, 1]).fold(65_535).is_err());
    }
}
