//! When datagrams may leave: the count, the duration and the pace of a send (SPEC §4
//! send), asked without waiting, so one poll can wait for the schedule, replies and
//! stdin at once.

use std::time::{Duration, Instant};

use crate::base::histogram::Histogram;
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

/// How late each datagram of a replay left against the capture's schedule, in bounded
/// memory (a [`Histogram`] of microseconds: within 1%, exact below 128 µs).
#[derive(Debug, Clone, Default)]
pub struct Lateness(Histogram);

impl Lateness {
    /// One datagram, `late` after its time.
    pub fn record(&mut self, late: Duration) {
        self.0
            .record(late.as_micros().min(u128::from(u64::MAX)) as u64);
    }

    /// The p-th percentile in microseconds (nearest rank, within 1%; the last rank is the
    /// maximum, exact).
    pub fn percentile(&self, p: f64) -> u64 {
        self.0.percentile(p)
    }

    /// The latest.
    pub fn max_us(&self) -> u64 {
        self.0.max()
    }

    /// How many were recorded.
    pub fn len(&self) -> u64 {
        self.0.len()
    }

    /// True when none were.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
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
        // A replay held up for seconds: the median is read from the log buckets, within
        // 1%, not reported as the maximum.
        let mut l = Lateness::default();
        for ms in [0u64, 80, 160, 240, 320, 400, 480, 560, 640, 720] {
            l.record(Duration::from_millis(ms));
        }
        let p50 = l.percentile(50.0);
        assert!((316_800..=320_000).contains(&p50), "{p50}");
        let p90 = l.percentile(90.0);
        assert!((633_600..=640_000).contains(&p90), "{p90}");
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
