//! Splitting long work so no invocation loops past the device's loop budget (see
//! [`crate::gpu::loops`]): a range of items cut into segments, each one invocation's (or
//! one workgroup's) share, whose partial results a second pass combines.

use std::ops::Range;

/// `total` items cut into `count` consecutive segments of `len` items (the last may be
/// shorter). Never empty: zero items make one empty segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Segments {
    pub count: usize,
    pub len: usize,
}

impl Segments {
    /// The fewest segments of at most `max_len` items (at least 1) that cover `total`,
    /// as even as that count allows.
    pub fn split(total: usize, max_len: usize) -> Segments {
        let count = total.div_ceil(max_len.max(1)).max(1);
        Segments {
            count,
            len: total.div_ceil(count).max(1),
        }
    }

    /// The items of segment `i` of `total`.
    pub fn range(&self, i: usize, total: usize) -> Range<usize> {
        (i * self.len).min(total)..((i + 1) * self.len).min(total)
    }
}

/// How many items one invocation may take when it spends `fixed` loop iterations on its
/// own and `per_item` on each item, under the loop `budget`; `None` when not even one fits.
pub(crate) fn items_within(budget: u64, fixed: u64, per_item: u64) -> Option<usize> {
    let items = budget.checked_sub(fixed)? / per_item.max(1);
    (items >= 1).then_some(items as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_cover_the_range_evenly_within_the_limit() {
        for total in [0usize, 1, 5, 64, 65, 1000, 65_536, 1 << 22] {
            for max_len in [1usize, 3, 64, 4096, 1 << 20] {
                let s = Segments::split(total, max_len);
                assert!(
                    s.len <= max_len.max(1) || total == 0,
                    "{total} {max_len}: {s:?}"
                );
                assert!(s.count * s.len >= total);
                assert!(
                    (s.count - 1) * s.len < total.max(1),
                    "{total} {max_len}: {s:?}"
                );
                let covered: usize = (0..s.count).map(|i| s.range(i, total).len()).sum();
                assert_eq!(covered, total);
            }
        }
        assert_eq!(items_within(100, 20, 8), Some(10));
        assert_eq!(items_within(100, 95, 8), None);
        assert_eq!(items_within(10, 20, 1), None);
    }
}
