//! The relay's limits in time: `--duration`, `--timeout` (idle), and `--count` with its
//! grace for the last replies.

use std::time::Instant;

use super::{Plan, COUNT_GRACE};

/// Where the run stands against those limits.
pub(super) struct Clock {
    end: Option<Instant>,
    pub(super) last_traffic: Instant,
    counted_at: Option<Instant>,
}

/// What the limits say now.
pub(super) enum Check {
    Go,
    /// `--duration` passed, or `--count` was reached and the relay has been quiet.
    End,
    /// Nothing for `--timeout`, `--count` not reached.
    Idle,
}

impl Clock {
    pub(super) fn new(plan: &Plan) -> Clock {
        let start = Instant::now();
        Clock {
            end: plan.duration.map(|d| start + d),
            last_traffic: start,
            counted_at: None,
        }
    }

    pub(super) fn check(&mut self, plan: &Plan, counted: bool, now: Instant) -> Check {
        if counted && self.counted_at.is_none() {
            self.counted_at = Some(now);
        }
        if self.end.is_some_and(|e| now >= e) {
            return Check::End;
        }
        if let Some(at) = self.counted_at {
            if now >= self.last_traffic.max(at) + COUNT_GRACE {
                return Check::End;
            }
        } else if plan.timeout.is_some_and(|t| now >= self.last_traffic + t) {
            return Check::Idle;
        }
        Check::Go
    }

    /// The earliest of the limits' instants.
    pub(super) fn deadline(&self, plan: &Plan) -> Option<Instant> {
        [
            self.end,
            plan.timeout.map(|t| self.last_traffic + t),
            self.counted_at
                .map(|c| self.last_traffic.max(c) + COUNT_GRACE),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}
