//! Echo's per-source rate limit: a token bucket per source address, in a table of bounded
//! size, so a flood from many forged sources cannot grow memory.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

use crate::netem::pacing::TokenBucket;

/// Per-source token buckets, at most `capacity` of them.
///
/// Two generations of a hash map stand in for an LRU: lookups hit `young` or `old` (and
/// move an old entry back to `young`); when `young` reaches half the capacity, `old` is
/// dropped whole and `young` becomes `old`. Every operation is O(1) amortised, memory is
/// bounded by `capacity` entries, and a source that keeps sending keeps its bucket.
/// A source evicted and seen again starts with a full burst: the bound on state wins
/// over exactness for sources outside the most recent `capacity / 2`.
pub struct SourceLimiter {
    rate: f64,
    burst: f64,
    capacity: usize,
    young: HashMap<IpAddr, TokenBucket>,
    old: HashMap<IpAddr, TokenBucket>,
}

impl SourceLimiter {
    /// `rate` replies per second per source, bursts of `burst`, at most `capacity` sources.
    pub fn new(rate: f64, burst: f64, capacity: usize) -> Self {
        let capacity = capacity.max(2);
        SourceLimiter {
            rate,
            burst,
            capacity,
            young: HashMap::with_capacity(capacity / 2),
            old: HashMap::new(),
        }
    }

    /// True when `source` may get a reply now (and takes its token).
    pub fn allow(&mut self, source: IpAddr, now: Instant) -> bool {
        let source = source.to_canonical();
        if let Some(bucket) = self.young.get_mut(&source) {
            return bucket.take(now, 1) == 1;
        }
        let mut bucket = self
            .old
            .remove(&source)
            .unwrap_or_else(|| TokenBucket::new(self.rate, self.burst, self.burst, now));
        let allowed = bucket.take(now, 1) == 1;
        if self.young.len() >= self.capacity / 2 {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(source, bucket);
        allowed
    }

    /// How many sources are tracked now (never more than the capacity).
    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.young.len() + self.old.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::time::Duration;

    #[test]
    fn a_source_is_remembered_while_others_come_and_go() {
        // guards: the generations must rotate at half the capacity, not at every source
        let now = Instant::now();
        let mut l = SourceLimiter::new(1.0, 2.0, 100);
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let mut allowed = 0;
        for i in 0..20u8 {
            if l.allow(a, now) {
                allowed += 1;
            }
            // Another source between each of a's: a's bucket must survive them.
            assert!(l.allow(IpAddr::V4(Ipv4Addr::new(10, 1, 0, i)), now));
        }
        assert_eq!(
            allowed, 2,
            "a's burst of 2, then nothing in the same instant"
        );
        assert!(l.tracked() <= 100 && l.tracked() >= 21);
    }

    fn src(i: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))
    }

    #[test]
    fn a_source_gets_its_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut l = SourceLimiter::new(10.0, 5.0, 100);
        let allowed = (0..20).filter(|_| l.allow(src(1), t0)).count();
        assert_eq!(allowed, 5);
        assert!(l.allow(src(1), t0 + Duration::from_millis(100)));
        assert!(!l.allow(src(1), t0 + Duration::from_millis(100)));
        // Another source is not affected.
        assert!(l.allow(src(2), t0));
    }

    #[test]
    fn state_stays_bounded_under_many_sources() {
        let t0 = Instant::now();
        let mut l = SourceLimiter::new(10.0, 5.0, 1000);
        for i in 0..100_000 {
            l.allow(src(i), t0);
            assert!(l.tracked() <= 1000);
        }
    }

    #[test]
    fn a_busy_source_keeps_its_bucket_across_generations() {
        let t0 = Instant::now();
        let mut l = SourceLimiter::new(1.0, 3.0, 10);
        for _ in 0..3 {
            assert!(l.allow(src(0), t0));
        }
        // Many other sources pass through; src(0) keeps asking, so it is never evicted
        // and never gets a fresh burst.
        for i in 1..100 {
            l.allow(src(i), t0);
            assert!(!l.allow(src(0), t0), "after {i} others");
        }
    }

    #[test]
    fn mapped_sources_share_the_ipv4_bucket() {
        let t0 = Instant::now();
        let mut l = SourceLimiter::new(1.0, 1.0, 10);
        assert!(l.allow("127.0.0.1".parse().unwrap(), t0));
        assert!(!l.allow("::ffff:127.0.0.1".parse().unwrap(), t0));
    }
}
