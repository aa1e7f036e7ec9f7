//! A histogram of non-negative values (microseconds, in practice) in bounded memory: 128
//! sub-buckets per power of two, so a percentile read from it is within 1% (1/128) of
//! the true one, whatever the number of values (HdrHistogram's log-linear layout, with
//! three significant binary digits more than needed for 1%). Values below 128 are exact.
//! About 58 KiB, allocated at the first value (a one-shot send that measures nothing
//! never pays for zeroing it): an hour of RTTs at 100k/s costs what one second does.

use serde::Serialize;

/// log2 of the sub-buckets per power of two.
const SUB_BITS: u32 = 7;
const SUB: u64 = 1 << SUB_BITS;

/// Counts of values by bucket, with the exact minimum and maximum.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    min: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: Vec::new(),
            total: 0,
            min: u64::MAX,
            max: 0,
        }
    }
}

/// Percentiles in microseconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Percentiles {
    pub min: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

impl Histogram {
    fn index(v: u64) -> usize {
        if v < SUB {
            return v as usize;
        }
        let exp = 63 - u64::from(v.leading_zeros()); // >= SUB_BITS
        let shift = exp - u64::from(SUB_BITS);
        let sub = (v >> shift) - SUB; // 0..SUB
        (SUB + shift * SUB + sub) as usize
    }

    fn lower_bound(i: usize) -> u64 {
        let i = i as u64;
        if i < SUB {
            return i;
        }
        let shift = (i - SUB) / SUB;
        let sub = (i - SUB) % SUB;
        (SUB + sub) << shift
    }

    /// Count one value.
    pub fn record(&mut self, v: u64) {
        if self.counts.is_empty() {
            // A bucket for every u64: the largest value's is the last.
            self.counts = vec![0; Histogram::index(u64::MAX) + 1];
        }
        self.counts[Self::index(v)] += 1;
        self.total += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    /// How many values were counted.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// True when none were.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The smallest value (exact); `u64::MAX` when empty.
    pub fn min(&self) -> u64 {
        self.min
    }

    /// The largest value (exact); 0 when empty.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The nearest-rank percentile `p` (0-100): the lower bound of the bucket holding
    /// that rank, clamped to the exact minimum and maximum (so the last rank is the
    /// maximum itself). 0 when empty.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((p / 100.0) * self.total as f64).ceil().max(1.0) as u64;
        if rank >= self.total {
            return self.max;
        }
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::lower_bound(i).clamp(self.min, self.max);
            }
        }
        self.max
    }

    /// min / p50 / p90 / p99 / max, or `None` when empty.
    pub fn summary(&self) -> Option<Percentiles> {
        (self.total > 0).then(|| Percentiles {
            min: self.min,
            p50: self.percentile(50.0),
            p90: self.percentile(90.0),
            p99: self.percentile(99.0),
            max: self.max,
        })
    }

    /// Each non-empty bucket as (a value in it, its count), smallest first: the lower
    /// bound, clamped to the exact minimum and maximum.
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, &c)| c > 0)
            .map(|(i, &c)| (Self::lower_bound(i).clamp(self.min, self.max), c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn buckets_tile_the_values_without_gaps() {
        // Every bucket up to the one holding u64::MAX: its lower bound maps back to it,
        // and the value just below the next bucket's bound is still its own.
        let last = Histogram::index(u64::MAX);
        assert_eq!(last, (SUB + 56 * SUB + 127) as usize);
        for i in 0..last {
            let (lo, next) = (Histogram::lower_bound(i), Histogram::lower_bound(i + 1));
            assert!(next > lo, "bucket {i}");
            assert_eq!(Histogram::index(lo), i, "lower bound {lo}");
            assert_eq!(Histogram::index(next - 1), i, "{}", next - 1);
        }
        assert_eq!(Histogram::index(127), 127);
        assert_eq!(Histogram::lower_bound(SUB as usize), 128);
        // Within 1%: a bucket is never wider than 1/128 of its lower bound.
        assert_eq!(Histogram::lower_bound(Histogram::index(1_000_000)), 999_424);
        assert_eq!(
            Histogram::lower_bound(Histogram::index(1_000_000) + 1),
            1_003_520
        );
    }

    #[test]
    fn percentiles_of_a_ramp_are_within_one_percent() {
        let mut h = Histogram::default();
        assert!(h.summary().is_none());
        assert_eq!(h.percentile(50.0), 0);
        for v in 1..=100_000u64 {
            h.record(v);
        }
        let p = h.summary().unwrap();
        assert_eq!((p.min, p.max), (1, 100_000));
        for (got, want) in [(p.p50, 50_000), (p.p90, 90_000), (p.p99, 99_000)] {
            assert!(got <= want && (want - got) * 100 <= want, "{got} vs {want}");
        }
        assert_eq!(h.len(), 100_000);
        assert_eq!(h.percentile(100.0), 100_000);
        let counted: u64 = h.buckets().map(|(_, c)| c).sum();
        assert_eq!(counted, 100_000);
    }

    #[test]
    fn small_values_are_exact() {
        let mut h = Histogram::default();
        for v in [3, 1, 2, 127, 5] {
            h.record(v);
        }
        assert_eq!(
            h.buckets().collect::<Vec<_>>(),
            [(1, 1), (2, 1), (3, 1), (5, 1), (127, 1)]
        );
        assert_eq!(h.percentile(60.0), 3);
        assert_eq!(h.max(), 127);
    }

    proptest! {
        #[test]
        fn buckets_contain_their_values(v in 0u64..u64::MAX / 4) {
            let i = Histogram::index(v);
            prop_assert!(Histogram::lower_bound(i) <= v);
            prop_assert!(Histogram::lower_bound(i + 1) > v);
        }

        #[test]
        fn every_percentile_is_within_one_percent_of_the_exact_one(
            mut values in proptest::collection::vec(0u64..10_000_000_000, 1..2000),
            p in 0.0f64..100.0,
        ) {
            let mut h = Histogram::default();
            for &v in &values {
                h.record(v);
            }
            values.sort_unstable();
            let rank = ((p / 100.0) * values.len() as f64).ceil().max(1.0) as usize;
            let exact = values[rank.min(values.len()) - 1];
            let got = h.percentile(p);
            prop_assert!(got <= exact && (exact - got) as f64 <= exact as f64 / 100.0, "{} vs {}", got, exact);
        }
    }
}
