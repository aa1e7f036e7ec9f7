//! When datagrams may leave: the count, the duration and the pace of a send (SPEC §4
//! send), asked without waiting, so one poll can wait for the schedule, replies and
//! stdin at once.

use std::time::{Duration, Instant};

use crate::netem::pacing::TokenBucket;

/// Counts, deadline and pacing: how many datagrams may go now.
#[derive(Debug)]
pub struct Schedule {
    remaining: Option<u64>,
    deadline: Option<Instant>,
    pacer: Option<TokenBucket>,
}

/// The schedule's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poll {
    /// Send up to this many now.
    Go(usize),
    /// Ask again at this instant.
    Wait(Instant),
    /// The count is reached or the duration is over.
    Done,
}

impl Schedule {
    /// At most `count` datagrams, for at most `duration`, paced to `rate` per second.
    pub fn new(
        count: Option<u64>,
        duration: Option<Duration>,
        rate: Option<f64>,
        start: Instant,
    ) -> Self {
        Schedule {
            remaining: count,
            deadline: duration.map(|d| start + d),
            pacer: rate.map(|r| TokenBucket::pacer(r, start)),
        }
    }

    /// Without waiting: how many of up to `max` datagrams may go now, or when to ask again.
    /// What is granted is taken from the pace: call [`sent`](Self::sent) with what went.
    pub fn poll(&mut self, max: usize, now: Instant) -> Poll {
        let want = self.remaining.map_or(max, |r| r.min(max as u64) as usize);
        if want == 0 || self.deadline.is_some_and(|d| now >= d) {
            return Poll::Done;
        }
        let Some(pacer) = &mut self.pacer else {
            return Poll::Go(want);
        };
        match pacer.take(now, want as u64) as usize {
            0 => {
                let wake = now + pacer.wait_time(now);
                Poll::Wait(self.deadline.map_or(wake, |d| wake.min(d)))
            }
            granted => Poll::Go(granted),
        }
    }

    /// `n` datagrams went.
    pub fn sent(&mut self, n: usize) {
        if let Some(r) = &mut self.remaining {
            *r = r.saturating_sub(n as u64);
        }
    }
}

/// How late datagrams left against their schedule (`--replay`), in bounded memory: exact
/// microseconds up to 100 ms (the usual range, where a few microseconds matter), and
/// beyond it the log buckets of [`crate::wire::seq::Histogram`] (within about 3%), so a
/// replay held up for seconds still has a true median.
#[derive(Debug, Clone)]
pub struct Lateness {
    buckets: Vec<u32>,
    /// Everything past the exact range.
    over: crate::wire::seq::Histogram,
    n: u64,
    max_us: u64,
}

/// The exact range, in microseconds.
const EXACT_US: usize = 100_000;

impl Default for Lateness {
    fn default() -> Self {
        Lateness {
            buckets: vec![0; EXACT_US],
            over: crate::wire::seq::Histogram::default(),
            n: 0,
            max_us: 0,
        }
    }
}

impl Lateness {
    /// One datagram, `late` after its time.
    pub fn record(&mut self, late: Duration) {
        let us = late.as_micros().min(u128::from(u64::MAX)) as u64;
        match self.buckets.get_mut(us as usize) {
            Some(b) => *b = b.saturating_add(1),
            None => self.over.record(us),
        }
        self.n += 1;
        self.max_us = self.max_us.max(us);
    }

    /// The p-th percentile in microseconds (nearest rank): exact within the exact range,
    /// within about 3% past it.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.n == 0 {
            return 0;
        }
        let rank = ((p / 100.0) * self.n as f64).ceil().max(1.0) as u64;
        if rank >= self.n {
            return self.max_us; // the last rank is the maximum, kept exactly
        }
        let mut seen = 0u64;
        for (us, &c) in self.buckets.iter().enumerate() {
            seen += u64::from(c);
            if seen >= rank {
                return us as u64;
            }
        }
        // The rank falls among the values past the exact range: that rank of theirs.
        let beyond = self.n - seen;
        self.over
            .percentile((rank - seen) as f64 * 100.0 / beyond as f64)
    }

    /// The latest.
    pub fn max_us(&self) -> u64 {
        self.max_us
    }

    /// How many were recorded.
    pub fn len(&self) -> u64 {
        self.n
    }

    /// True when none were.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_limits_what_is_granted() {
        let now = Instant::now();
        let mut s = Schedule::new(Some(5), None, None, now);
        assert_eq!(s.poll(64, now), Poll::Go(5));
        s.sent(3);
        assert_eq!(s.poll(64, now), Poll::Go(2));
        s.sent(2);
        assert_eq!(s.poll(64, now), Poll::Done);
        let mut s = Schedule::new(None, None, None, now);
        assert_eq!(s.poll(7, now), Poll::Go(7));
    }

    #[test]
    fn lateness_percentiles_come_from_bounded_buckets() {
        let mut l = Lateness::default();
        assert!(l.is_empty());
        assert_eq!(l.percentile(50.0), 0);
        for us in 1..=100u64 {
            l.record(Duration::from_micros(us));
        }
        assert_eq!(l.percentile(50.0), 50);
        assert_eq!(l.percentile(99.0), 99);
        assert_eq!(l.max_us(), 100);
        l.record(Duration::from_secs(3));
        assert_eq!(l.max_us(), 3_000_000);
        assert_eq!(l.percentile(100.0), 3_000_000);
        assert_eq!(l.len(), 101);
        assert!(!l.is_empty());
        // Most of them past the exact range (a replay held up for seconds): the median is
        // read from the log buckets, within 3%, not reported as the maximum.
        let mut l = Lateness::default();
        for ms in [0u64, 80, 160, 240, 320, 400, 480, 560, 640, 720] {
            l.record(Duration::from_millis(ms));
        }
        let p50 = l.percentile(50.0);
        assert!((312_000..=320_000).contains(&p50), "{p50}");
        let p90 = l.percentile(90.0);
        assert!((624_000..=640_000).contains(&p90), "{p90}");
        assert_eq!(l.percentile(100.0), 720_000);
        assert_eq!(l.percentile(10.0), 0);
    }

    #[test]
    fn the_duration_ends_it() {
        let now = Instant::now();
        let mut s = Schedule::new(None, Some(Duration::from_secs(1)), None, now);
        assert_eq!(s.poll(1, now + Duration::from_millis(999)), Poll::Go(1));
        assert_eq!(s.poll(1, now + Duration::from_secs(1)), Poll::Done);
    }

    #[test]
    fn pacing_waits_for_the_next_token_but_never_past_the_deadline() {
        let now = Instant::now();
        let mut s = Schedule::new(None, None, Some(10.0), now);
        assert_eq!(s.poll(64, now), Poll::Go(1));
        s.sent(1);
        match s.poll(64, now) {
            Poll::Wait(at) => {
                let wait = at - now;
                assert!(wait > Duration::from_millis(90) && wait <= Duration::from_millis(100));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s.poll(64, now + Duration::from_millis(100)), Poll::Go(1));
        let mut s = Schedule::new(None, Some(Duration::from_millis(10)), Some(1.0), now);
        assert_eq!(s.poll(1, now), Poll::Go(1));
        assert_eq!(
            s.poll(1, now + Duration::from_millis(1)),
            Poll::Wait(now + Duration::from_millis(10))
        );
    }
}
