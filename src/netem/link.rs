//! A bottleneck link (`--bandwidth RATE --queue N`): datagrams cross it one after another
//! at RATE bits per second, counting the IP and UDP headers as a link does; those waiting
//! (the one on the wire among them) are at most N, and the next is dropped at the tail,
//! as netem's `rate` with its `limit`. The time a datagram waits is real delay.
//!
//! The link keeps exact time of its own (when it is next free), so its long-run rate is
//! RATE however late the caller's timers fire.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// `--queue`'s default: netem's `limit`.
pub const DEFAULT_QUEUE: usize = 1000;

/// `--bandwidth` and `--queue`, with the headers of the family the datagrams go on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkSpec {
    /// Bits per second.
    pub rate: f64,
    /// IP and UDP header bytes counted with each payload: 28 on IPv4, 48 on IPv6.
    pub headers: usize,
    /// Datagrams waiting at most.
    pub queue: usize,
}

impl LinkSpec {
    /// How long `len` bytes of payload take to cross the link.
    pub fn transmit_time(&self, len: usize) -> Duration {
        Duration::from_secs_f64((len + self.headers) as f64 * 8.0 / self.rate)
    }
}

/// The link's state.
#[derive(Debug)]
pub struct Link {
    spec: LinkSpec,
    /// When the datagram last admitted has crossed.
    free_at: Option<Instant>,
    /// When each waiting datagram will have crossed, oldest first (grows to the queue's
    /// length once, then is reused).
    waiting: VecDeque<Instant>,
}

impl Link {
    pub fn new(spec: LinkSpec) -> Link {
        Link {
            spec,
            free_at: None,
            waiting: VecDeque::new(),
        }
    }

    /// A datagram of `len` payload bytes arrives at `now`: when it will have crossed the
    /// link, or None when the queue is full (dropped at the tail).
    pub fn admit(&mut self, len: usize, now: Instant) -> Option<Instant> {
        while self.waiting.front().is_some_and(|&t| t <= now) {
            self.waiting.pop_front();
        }
        if self.waiting.len() >= self.spec.queue {
            return None;
        }
        let start = self.free_at.map_or(now, |f| f.max(now));
        let done = start + self.spec.transmit_time(len);
        self.free_at = Some(done);
        self.waiting.push_back(done);
        Some(done)
    }

    /// Datagrams waiting (as of the last arrival).
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(rate: f64, queue: usize) -> LinkSpec {
        LinkSpec {
            rate,
            headers: 28,
            queue,
        }
    }

    #[test]
    fn a_backlog_leaves_at_the_rate_counting_the_headers() {
        // 8 Mbit/s, 972 + 28 bytes: 1 ms a datagram.
        let mut link = Link::new(spec(8e6, 10_000));
        let t0 = Instant::now();
        let done: Vec<Instant> = (0..5000).map(|_| link.admit(972, t0).unwrap()).collect();
        for (k, t) in done.iter().enumerate() {
            let want = Duration::from_millis(k as u64 + 1);
            let got = *t - t0;
            assert!(
                got.abs_diff(want) < Duration::from_micros(1),
                "{k}: {got:?}"
            );
        }
        // IPv6 counts 48: 952 bytes of payload take the same millisecond.
        let v6 = LinkSpec {
            headers: 48,
            ..spec(8e6, 1)
        };
        assert_eq!(v6.transmit_time(952), Duration::from_millis(1));
    }

    #[test]
    fn an_idle_link_takes_a_datagram_at_once_and_a_busy_one_after_the_last() {
        let mut link = Link::new(spec(8e6, 100));
        let t0 = Instant::now();
        let ms = Duration::from_millis(1);
        assert_eq!(link.admit(972, t0), Some(t0 + ms));
        // Arriving while the first crosses: after it.
        assert_eq!(link.admit(972, t0 + ms / 2), Some(t0 + 2 * ms));
        assert_eq!(link.waiting(), 2);
        // Arriving after both crossed: at once, the queue empty again.
        let later = t0 + 10 * ms;
        assert_eq!(link.admit(972, later), Some(later + ms));
        assert_eq!(link.waiting(), 1);
    }

    #[test]
    fn the_queue_drops_at_the_tail_and_frees_as_datagrams_cross() {
        let mut link = Link::new(spec(8e6, 3));
        let t0 = Instant::now();
        let ms = Duration::from_millis(1);
        for _ in 0..3 {
            assert!(link.admit(972, t0).is_some());
        }
        assert_eq!(link.admit(972, t0), None, "the fourth finds three waiting");
        assert_eq!(link.waiting(), 3);
        // The first has crossed at 1 ms: room for one, which leaves after the third.
        assert_eq!(link.admit(972, t0 + ms), Some(t0 + 4 * ms));
        assert_eq!(link.admit(972, t0 + ms), None);
    }
}
