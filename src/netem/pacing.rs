//! A token bucket: send's `--rate` and `--interval`, and the servers' per-source limit.

use std::time::{Duration, Instant};

/// Tokens accrue at `rate` per second up to `burst`; each datagram takes one.
/// Over any span `t` from a full bucket, at most `rate × t + burst` are granted.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A bucket that holds `burst` tokens (at least one) and starts with `initial`.
    pub fn new(rate: f64, burst: f64, initial: f64, now: Instant) -> Self {
        let burst = burst.max(1.0);
        TokenBucket {
            rate,
            burst,
            tokens: initial.min(burst),
            last: now,
        }
    }

    /// Pacing for a sender: the first datagram leaves at once, and the bucket holds 2 ms
    /// of tokens, or up to 20 ms of them where that is at most 64 datagrams, and never
    /// fewer than two: a late wake-up from sleep, or a few ms without the CPU on a busy
    /// machine, is caught up without a long burst (with one token, every wake's lateness
    /// was lost: `--rate 500` sent 476 a second).
    pub fn pacer(rate: f64, now: Instant) -> Self {
        let burst = (rate * 0.002).max((rate * 0.02).min(64.0)).floor().max(2.0);
        TokenBucket::new(rate, burst, 1.0, now)
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        self.last = now;
    }

    /// Take up to `want` whole tokens; returns how many were granted.
    pub fn take(&mut self, now: Instant, want: u64) -> u64 {
        self.refill(now);
        let granted = (self.tokens.floor() as u64).min(want);
        self.tokens -= granted as f64;
        granted
    }

    /// How long until one whole token is available (zero if one is).
    pub fn wait_time(&mut self, now: Instant) -> Duration {
        self.refill(now);
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_wait_is_for_the_missing_part_of_a_token() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10.0, 1.0, 0.0, t0);
        // Half a token has accrued after 50 ms: the other half takes 50 ms more.
        let wait = b.wait_time(t0 + Duration::from_millis(50));
        assert!((wait.as_secs_f64() - 0.050).abs() < 1e-6, "{wait:?}");
        assert_eq!(b.wait_time(t0 + Duration::from_millis(100)), Duration::ZERO);
    }

    #[test]
    fn a_pacer_sends_the_first_at_once_then_at_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::pacer(10.0, t0);
        assert_eq!(b.take(t0, 5), 1);
        assert_eq!(b.take(t0, 5), 0);
        assert_eq!(b.wait_time(t0), Duration::from_millis(100));
        assert_eq!(b.take(t0 + Duration::from_millis(100), 5), 1);
        // Idle for a long time: the burst (2 at this rate) caps what is owed.
        assert_eq!(b.take(t0 + Duration::from_secs(10), 100), 2);
        // 20 ms of catching up where that is at most 64 datagrams; 2 ms above.
        for (rate, burst) in [(1250.0, 25), (500.0, 10), (10_000.0, 64), (89_285.7, 178)] {
            let mut b = TokenBucket::pacer(rate, t0);
            assert_eq!(
                b.take(t0 + Duration::from_secs(10), 10_000),
                burst,
                "{rate}"
            );
        }
    }

    #[test]
    fn a_sender_that_always_wakes_late_keeps_the_rate() {
        // Every sleep ends 10% of an interval late (timer slack): the pace holds anyway.
        let t0 = Instant::now();
        let mut b = TokenBucket::pacer(500.0, t0);
        let (mut now, mut sent) = (t0, 0u64);
        while sent < 5000 {
            let wait = b.wait_time(now);
            if !wait.is_zero() {
                now += wait + Duration::from_micros(200);
            }
            sent += b.take(now, 1);
        }
        let rate = sent as f64 / (now - t0).as_secs_f64();
        assert!((rate - 500.0).abs() < 1.0, "{rate}");
    }

    #[test]
    fn high_rates_grant_in_batches() {
        let t0 = Instant::now();
        let mut b = TokenBucket::pacer(1_000_000.0, t0);
        assert_eq!(b.take(t0, 64), 1);
        assert_eq!(b.take(t0 + Duration::from_micros(100), 1000), 100);
        assert_eq!(b.take(t0 + Duration::from_secs(1), 100_000), 2000);
    }

    proptest! {
        #[test]
        fn never_more_than_rate_times_t_plus_burst(
            rate in 1.0f64..100_000.0,
            burst in 1.0f64..1000.0,
            steps in proptest::collection::vec((0u64..50_000, 1u64..500), 1..50),
        ) {
            let t0 = Instant::now();
            let mut b = TokenBucket::new(rate, burst, burst, t0);
            let mut now = t0;
            let mut granted = 0u64;
            for (dt_us, want) in steps {
                now += Duration::from_micros(dt_us);
                granted += b.take(now, want);
                let limit = rate * (now - t0).as_secs_f64() + burst.max(1.0);
                prop_assert!(granted as f64 <= limit + 1e-6, "{granted} > {limit}");
            }
        }
    }
}
