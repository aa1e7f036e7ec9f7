//! One direction's impairment as a pipeline, the same for echo's replies and each way
//! through a relay: every datagram goes in with a tag (where it goes, where from); its
//! fate is decided ([`Impairment::decide`]), it crosses the bottleneck if there is one
//! ([`Link`]), then waits out its delay on a bounded timer queue. A reordered one skips
//! the delay, past the delayed ones, as netem's `reorder`; with no delay to skip, it is
//! held back until the next has gone (or [`MAX_HOLD`] passes). What may leave now is
//! handed back at once. Buffers of datagrams that wait are reused: none is allocated per
//! datagram once the queue has grown.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::netem::impair::flip_bit;
use crate::netem::link::Link;
use crate::netem::{Impairment, Rng};

/// Delayed datagrams held at most; beyond, dropped and counted.
pub const TIMER_CAPACITY: usize = 100_000;
/// A held (reordered) datagram waits at most this long for a next one.
pub const MAX_HOLD: Duration = Duration::from_millis(100);
/// A datagram due this soon leaves now: no sleep is shorter (the kernel's default timer
/// slack), and the link keeps its own exact time, so its rate holds.
pub const SLACK: Duration = Duration::from_micros(50);
/// Spare buffers kept for reuse at most.
const SPARE: usize = 4096;

/// What the impairment did, for `--stats` (JSON keys as SPEC §12).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ShaperCounts {
    /// Dropped by `--drop`, or because the timer queue was full.
    pub dropped: u64,
    /// Runs of consecutive drops by `--drop` (a lone drop is a run of one).
    pub drop_bursts: u64,
    /// Waited on the timer queue (a delay, or the bottleneck's queue).
    pub delayed: u64,
    /// Sent past the delayed ones, or held back behind the next datagram.
    pub reordered: u64,
    /// Sent twice.
    pub duplicated: u64,
    /// One bit flipped (`--corrupt`).
    pub corrupted: u64,
    /// Over `--mtu`.
    pub mtu_dropped: u64,
    /// Found `--bandwidth`'s queue full.
    pub queue_dropped: u64,
    /// The most datagrams waiting for `--bandwidth`'s link at once.
    pub queue_peak: u64,
}

impl ShaperCounts {
    /// Each count with the words the text summaries give it, in SPEC §12's order.
    pub fn labelled(&self) -> [(u64, &'static str); 9] {
        [
            (self.dropped, "dropped by impairment"),
            (self.drop_bursts, "in drop bursts"),
            (self.delayed, "delayed"),
            (self.reordered, "reordered"),
            (self.duplicated, "duplicated"),
            (self.corrupted, "corrupted"),
            (self.mtu_dropped, "over --mtu"),
            (self.queue_dropped, "dropped by a full --queue"),
            (self.queue_peak, "queue peak"),
        ]
    }
}

/// A datagram waiting for its time, ordered by due time, then arrival.
#[derive(Debug)]
struct Delayed<T> {
    due: Instant,
    seq: u64,
    tag: T,
    payload: Vec<u8>,
    /// Reorder: when due, hold it back until the next datagram has gone.
    hold: bool,
}

impl<T> PartialEq for Delayed<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl<T> Eq for Delayed<T> {}
impl<T> PartialOrd for Delayed<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Delayed<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

/// One direction's impairment and the datagrams it holds.
pub struct Shaper<T> {
    impairment: Impairment,
    rng: Rng,
    /// The burst-loss chain's state, and whether the last datagram was dropped.
    in_burst: bool,
    last_dropped: bool,
    link: Option<Link>,
    timers: BinaryHeap<Reverse<Delayed<T>>>,
    capacity: usize,
    held: Option<(Delayed<T>, Instant)>,
    seq: u64,
    /// Buffers to reuse.
    spare: Vec<Vec<u8>>,
    /// What it did so far.
    pub counts: ShaperCounts,
}

impl<T: Copy> Shaper<T> {
    /// A shaper that decides with `impairment` from `seed`.
    pub fn new(impairment: Impairment, seed: u64) -> Self {
        Self::with_capacity(impairment, seed, TIMER_CAPACITY)
    }

    /// As [`new`](Self::new), holding at most `capacity` delayed datagrams.
    pub fn with_capacity(impairment: Impairment, seed: u64, capacity: usize) -> Self {
        Shaper {
            impairment,
            rng: Rng::new(seed),
            in_burst: false,
            last_dropped: false,
            link: impairment.link.map(Link::new),
            timers: BinaryHeap::new(),
            capacity,
            held: None,
            seq: 0,
            spare: Vec::new(),
            counts: ShaperCounts::default(),
        }
    }

    /// True when it does anything to traffic.
    pub fn is_active(&self) -> bool {
        self.impairment.is_active()
    }

    /// The impairment it applies.
    pub fn impairment(&self) -> &Impairment {
        &self.impairment
    }

    /// One datagram in: whatever may leave now (it, a copy, a datagram it releases from
    /// hold) is given to `out`, in order.
    pub fn push(&mut self, tag: T, payload: &[u8], now: Instant, out: &mut impl FnMut(T, &[u8])) {
        if !self.impairment.is_active() {
            out(tag, payload);
            return;
        }
        // What is due first, so that nothing overtakes a datagram whose time has come.
        self.tick(now, out);
        let decision = self.impairment.decide(&mut self.rng, &mut self.in_burst);
        if self
            .impairment
            .max_payload
            .is_some_and(|m| payload.len() > m)
        {
            self.counts.mtu_dropped += 1;
            return;
        }
        let first_of_run = decision.drop && !self.last_dropped;
        self.last_dropped = decision.drop;
        if decision.drop {
            self.counts.dropped += 1;
            self.counts.drop_bursts += u64::from(first_of_run);
            return;
        }
        if decision.copies == 2 {
            self.counts.duplicated += 1;
        }
        // Only a corrupted datagram is copied here (both copies of a duplicate carry the
        // same flipped bit); one that leaves at once goes from `payload` itself.
        let flipped = decision.flip.map(|at| {
            let mut b = self.buffer(payload);
            if flip_bit(&mut b, at) {
                self.counts.corrupted += 1;
            }
            b
        });
        // Reordered with a delay asked for: it goes at once, past the delayed ones (netem's
        // reorder); with none, it is held back until the next has gone.
        let jump = decision.hold && self.impairment.delays();
        if jump {
            self.counts.reordered += 1;
        }
        for copy in 0..decision.copies {
            let bytes = flipped.as_deref().unwrap_or(payload);
            let Some(crossed) = self.cross(bytes.len(), now) else {
                continue;
            };
            // Only the first copy of a duplicated datagram is reordered.
            let first = copy == 0;
            let due = crossed
                + if jump && first {
                    Duration::ZERO
                } else {
                    decision.delay
                };
            let hold = decision.hold && !jump && first;
            let now_due = due <= now + SLACK;
            if now_due && !(hold && self.held.is_none()) {
                out(tag, bytes);
                self.release_held(out);
                continue;
            }
            // It waits (on the timer queue, or held back): in a buffer of its own.
            self.seq += 1;
            let d = Delayed {
                due,
                seq: self.seq,
                tag,
                payload: self.buffer(bytes),
                hold,
            };
            if now_due {
                self.release(d, now, out);
            } else {
                self.wait(d);
            }
        }
        if let Some(b) = flipped {
            self.recycle(b);
        }
    }

    /// Onto the timer queue, or dropped (counted) when it is full.
    fn wait(&mut self, d: Delayed<T>) {
        if self.timers.len() < self.capacity {
            self.timers.push(Reverse(d));
            self.counts.delayed += 1;
        } else {
            self.counts.dropped += 1;
            self.recycle(d.payload);
        }
    }

    /// When a datagram of `len` bytes arriving at `now` is across the bottleneck (at once
    /// without one); None when the queue is full (counted).
    fn cross(&mut self, len: usize, now: Instant) -> Option<Instant> {
        let Some(link) = &mut self.link else {
            return Some(now);
        };
        let crossed = link.admit(len, now);
        match crossed {
            Some(_) => self.counts.queue_peak = self.counts.queue_peak.max(link.waiting() as u64),
            None => self.counts.queue_dropped += 1,
        }
        crossed
    }

    /// A buffer holding `payload`: a spare one when there is one.
    fn buffer(&mut self, payload: &[u8]) -> Vec<u8> {
        let mut b = self.spare.pop().unwrap_or_default();
        b.clear();
        b.extend_from_slice(payload);
        b
    }

    /// Keep a buffer for the next datagram (a bounded number of them).
    fn recycle(&mut self, b: Vec<u8>) {
        if self.spare.len() < SPARE && b.capacity() > 0 {
            self.spare.push(b);
        }
    }

    /// A datagram whose time has come: out, or held back once (reorder); a held one goes
    /// right after the next.
    fn release(&mut self, d: Delayed<T>, now: Instant, out: &mut impl FnMut(T, &[u8])) {
        if d.hold && self.held.is_none() {
            self.counts.reordered += 1;
            self.held = Some((d, now + MAX_HOLD));
            return;
        }
        out(d.tag, &d.payload);
        self.recycle(d.payload);
        self.release_held(out);
    }

    /// The held datagram, if any, goes now.
    fn release_held(&mut self, out: &mut impl FnMut(T, &[u8])) {
        if let Some((h, _)) = self.held.take() {
            out(h.tag, &h.payload);
            self.recycle(h.payload);
        }
    }

    /// Everything due by `now` (within [`SLACK`]) to `out`: delayed datagrams in due
    /// order, and a held one whose wait is over.
    pub fn tick(&mut self, now: Instant, out: &mut impl FnMut(T, &[u8])) {
        while self
            .timers
            .peek()
            .is_some_and(|Reverse(d)| d.due <= now + SLACK)
        {
            let Some(Reverse(d)) = self.timers.pop() else {
                break;
            };
            self.release(d, now, out);
        }
        if self.held.as_ref().is_some_and(|(_, due)| *due <= now) {
            self.release_held(out);
        }
    }

    /// When the next delayed or held datagram is due, if any.
    pub fn next_due(&self) -> Option<Instant> {
        let timer = self.timers.peek().map(|Reverse(d)| d.due);
        let held = self.held.as_ref().map(|(_, t)| *t);
        timer.into_iter().chain(held).min()
    }
}

#[cfg(test)]
mod tests;
