//! When datagrams may leave: the count, the duration and the pace of a send (SPEC §4
//! send), asked without waiting, so one poll can wait for the schedule, replies and
//! stdin at once.

use std::time::{Duration, Instant};

use crate::pacing::TokenBucket;

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
