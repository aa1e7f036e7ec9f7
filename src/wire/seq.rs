//! `--seq`: the sequence header at the start of each datagram, and what a receiver learns
//! from it (loss, reordering, duplicates, one-way delay, RFC 3550 jitter), in bounded
//! memory.
//!
//! The header, 24 bytes, big-endian:
//!
//! | offset | size | field                                            |
//! |--------|------|--------------------------------------------------|
//! | 0      | 4    | magic `DGSQ`                                     |
//! | 4      | 1    | version, 1                                       |
//! | 5      | 3    | reserved, zero                                   |
//! | 8      | 8    | sequence number, from 0                          |
//! | 16     | 8    | send time, nanoseconds since the Unix epoch      |

use std::time::{SystemTime, UNIX_EPOCH};

use crate::base::histogram::Histogram;

/// Length of the header.
pub const HEADER_LEN: usize = 24;
const MAGIC: &[u8; 4] = b"DGSQ";
const VERSION: u8 = 1;

/// A parsed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub seq: u64,
    pub sent_ns: u64,
}

/// Nanoseconds since the Unix epoch, now.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Write a header for `seq`, sent at `sent_ns`, into the first [`HEADER_LEN`] bytes of `buf`.
pub fn write(buf: &mut [u8], seq: u64, sent_ns: u64) {
    buf[..4].copy_from_slice(MAGIC);
    buf[4] = VERSION;
    buf[5..8].fill(0);
    buf[8..16].copy_from_slice(&seq.to_be_bytes());
    buf[16..24].copy_from_slice(&sent_ns.to_be_bytes());
}

/// The header at the start of `payload`, if it has one.
pub fn parse(payload: &[u8]) -> Option<Header> {
    if payload.len() < HEADER_LEN || &payload[..4] != MAGIC || payload[4] != VERSION {
        return None;
    }
    Some(Header {
        seq: u64::from_be_bytes(payload[8..16].try_into().ok()?),
        sent_ns: u64::from_be_bytes(payload[16..24].try_into().ok()?),
    })
}

/// Sequence numbers remembered per sender for duplicate detection (1 KiB of bits).
const WINDOW: u64 = 1 << 13;

/// What one sender's sequence numbers said.
#[derive(Clone, Debug)]
pub struct Tracker {
    /// Highest sequence number seen, if any.
    highest: Option<u64>,
    /// Bit `s % WINDOW` is set when `s` (within WINDOW below `highest`) was seen.
    seen: Vec<u64>,
    unique: u64,
    pub reordered: u64,
    pub duplicates: u64,
    /// The last arrival's transit time (arrival less send time, ns; the clocks' offset
    /// cancels in the differences).
    last_transit: Option<i64>,
    /// RFC 3550 §6.4.1 interarrival jitter, in nanoseconds.
    jitter_ns: f64,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker {
            highest: None,
            seen: vec![0; (WINDOW / 64) as usize],
            unique: 0,
            reordered: 0,
            duplicates: 0,
            last_transit: None,
            jitter_ns: 0.0,
        }
    }
}

impl Tracker {
    fn bit(&mut self, seq: u64) -> (&mut u64, u64) {
        let i = seq % WINDOW;
        (&mut self.seen[(i / 64) as usize], 1 << (i % 64))
    }

    /// Count one arrival of `seq`.
    pub fn record(&mut self, seq: u64) {
        match self.highest {
            Some(h) if seq <= h => {
                if h - seq >= WINDOW {
                    // Too old to tell a duplicate from a late arrival: call it late.
                    self.reordered += 1;
                    self.unique += 1;
                    return;
                }
                let (word, mask) = self.bit(seq);
                if *word & mask != 0 {
                    self.duplicates += 1;
                } else {
                    *word |= mask;
                    self.unique += 1;
                    self.reordered += 1;
                }
            }
            _ => {
                // New highest: forget the bits that slide out of the window.
                let from = self.highest.map_or(0, |h| h + 1);
                if seq - from >= WINDOW {
                    self.seen.fill(0);
                } else {
                    for s in from..seq {
                        let (word, mask) = self.bit(s);
                        *word &= !mask;
                    }
                }
                let (word, mask) = self.bit(seq);
                *word |= mask;
                self.highest = Some(seq);
                self.unique += 1;
            }
        }
    }

    /// One arrival's transit time (arrival less send time, in ns), in arrival order: the
    /// jitter of RFC 3550 §6.4.1, J += (|D| − J)/16, where D is the difference between
    /// this transit and the last (the arrival spacing less the send spacing).
    pub fn arrived(&mut self, transit_ns: i64) {
        if let Some(last) = self.last_transit {
            let d = transit_ns.saturating_sub(last).unsigned_abs() as f64;
            self.jitter_ns += (d - self.jitter_ns) / 16.0;
        }
        self.last_transit = Some(transit_ns);
    }

    /// The interarrival jitter so far, in microseconds.
    pub fn jitter_us(&self) -> f64 {
        self.jitter_ns / 1000.0
    }

    /// Datagrams that arrived, duplicates included.
    pub fn received(&self) -> u64 {
        self.unique + self.duplicates
    }

    /// Datagrams missing: sequence numbers up to the highest seen that never arrived (the
    /// sender numbers from 0, so missing first datagrams count too).
    pub fn lost(&self) -> u64 {
        self.highest
            .map_or(0, |h| (h + 1).saturating_sub(self.unique))
    }
}

/// One sender's `--seq` counts (`--stats`' JSON `senders`).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SenderStats {
    pub peer: String,
    pub received: u64,
    pub lost: u64,
    pub reordered: u64,
    pub duplicates: u64,
    /// RFC 3550 interarrival jitter.
    pub jitter_us: f64,
}

/// To the nanosecond, in microseconds: no digits below the clock's.
fn round3(us: f64) -> f64 {
    (us * 1000.0).round() / 1000.0
}

/// Sender trackers at most: a flood from forged sources must not grow memory.
pub const MAX_SENDERS: usize = 4096;

/// What `--seq` datagrams told a receiver, over every sender.
#[derive(Default)]
pub struct Accounting {
    senders: std::collections::HashMap<std::net::SocketAddr, Tracker>,
    /// One-way delay in microseconds (sender's clock to ours).
    pub owd: Histogram,
    /// Datagrams without a header.
    pub non_seq: u64,
    /// Datagrams with a header from senders beyond [`MAX_SENDERS`].
    pub untracked: u64,
}

impl Accounting {
    /// Count one datagram from `peer`, received at `now_ns`.
    pub fn record(&mut self, peer: std::net::SocketAddr, payload: &[u8], now_ns: u64) {
        let Some(h) = parse(payload) else {
            self.non_seq += 1;
            return;
        };
        let full = self.senders.len() >= MAX_SENDERS;
        let t = match self.senders.get_mut(&peer) {
            Some(t) => t,
            None if full => {
                self.untracked += 1;
                return;
            }
            None => self.senders.entry(peer).or_default(),
        };
        t.record(h.seq);
        t.arrived(
            (i128::from(now_ns) - i128::from(h.sent_ns)).clamp(i64::MIN.into(), i64::MAX.into())
                as i64,
        );
        self.owd.record(now_ns.saturating_sub(h.sent_ns) / 1000);
    }

    /// Each sender's counts, the busiest (most datagrams) first.
    pub fn senders(&self) -> Vec<SenderStats> {
        let mut all: Vec<SenderStats> = self
            .senders
            .iter()
            .map(|(peer, t)| SenderStats {
                peer: peer.to_string(),
                received: t.received(),
                lost: t.lost(),
                reordered: t.reordered,
                duplicates: t.duplicates,
                jitter_us: round3(t.jitter_us()),
            })
            .collect();
        all.sort_by(|a, b| {
            b.received
                .cmp(&a.received)
                .then_with(|| a.peer.cmp(&b.peer))
        });
        all
    }

    /// The busiest sender's jitter in microseconds, as iperf3 reports one stream's.
    pub fn jitter_us(&self) -> Option<f64> {
        self.senders
            .values()
            .max_by_key(|t| t.received())
            .map(|t| round3(t.jitter_us()))
    }

    /// True when any header was seen.
    pub fn has_seq(&self) -> bool {
        !self.senders.is_empty()
    }

    /// Lost, reordered and duplicated datagrams, over every sender.
    pub fn totals(&self) -> (u64, u64, u64) {
        self.senders.values().fold((0, 0, 0), |(l, r, d), t| {
            (l + t.lost(), r + t.reordered, d + t.duplicates)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn headers_round_trip_and_others_are_not_headers() {
        let mut buf = vec![0xaa; 40];
        write(&mut buf, 7, 123_456_789);
        assert_eq!(
            parse(&buf),
            Some(Header {
                seq: 7,
                sent_ns: 123_456_789
            })
        );
        assert_eq!(&buf[24..], &[0xaa; 16]);
        assert_eq!(parse(&buf[..23]), None);
        // Exactly a header is a header; another magic or version is not.
        assert_eq!(parse(&buf[..24]).map(|h| h.seq), Some(7));
        let mut other = buf.clone();
        other[0] = b'X';
        assert_eq!(parse(&other), None);
        let mut other = buf.clone();
        other[4] = 2;
        assert_eq!(parse(&other), None);
        assert_eq!(parse(b"hello world, this is not a header"), None);
    }

    #[test]
    fn now_is_read_from_the_clock() {
        // After 2020-01-01, and moving.
        let a = now_ns();
        assert!(a > 1_577_836_800_000_000_000, "{a}");
        std::thread::sleep(std::time::Duration::from_millis(2)); // for the clock to move
        assert!(now_ns() > a);
    }

    fn track(seqs: &[u64]) -> Tracker {
        let mut t = Tracker::default();
        for &s in seqs {
            t.record(s);
        }
        t
    }

    #[test]
    fn loss_reordering_and_duplicates_are_counted() {
        let t = track(&[0, 1, 2, 3]);
        assert_eq!((t.lost(), t.reordered, t.duplicates), (0, 0, 0));
        let t = track(&[0, 2, 3, 5]);
        assert_eq!(t.lost(), 2);
        let t = track(&[0, 2, 1, 3]);
        assert_eq!((t.lost(), t.reordered, t.duplicates), (0, 1, 0));
        let t = track(&[0, 1, 1, 2, 0]);
        assert_eq!((t.lost(), t.reordered, t.duplicates), (0, 0, 2));
        // The first datagrams lost count too: the sender numbers from 0.
        assert_eq!(track(&[3, 4]).lost(), 3);
    }

    #[test]
    fn the_window_slides_without_false_duplicates() {
        let mut t = Tracker::default();
        for s in 0..200_000 {
            t.record(s);
        }
        t.record(200_000 + 3 * WINDOW);
        t.record(199_999 + 3 * WINDOW);
        assert_eq!(t.duplicates, 0);
        assert_eq!(t.reordered, 1);
    }

    #[test]
    fn arrivals_older_than_the_window_are_late_and_a_short_jump_keeps_the_bits() {
        let mut t = Tracker::default();
        t.record(5 * WINDOW);
        // Too old to remember: late and unique, never a duplicate, however often.
        t.record(WINDOW);
        t.record(WINDOW);
        assert_eq!((t.reordered, t.duplicates), (2, 0));
        assert_eq!(t.lost(), 5 * WINDOW + 1 - 3);
        // A jump ahead within the window forgets only what slid out of it.
        let mut t = track(&[10_000, 10_001, 10_002]);
        t.record(10_020);
        t.record(10_001);
        assert_eq!((t.reordered, t.duplicates), (0, 1));
    }

    #[test]
    fn accounting_keeps_each_sender_apart_and_bounds_how_many() {
        let header = |seq: u64, sent_ns: u64| {
            let mut b = vec![0; HEADER_LEN];
            write(&mut b, seq, sent_ns);
            b
        };
        let a: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: std::net::SocketAddr = "127.0.0.1:2".parse().unwrap();
        let mut acc = Accounting::default();
        assert!(!acc.has_seq());
        acc.record(a, b"no header", 0);
        assert!(!acc.has_seq());
        // a: 0, 2, 1, 1 (one lost... found late, one duplicate); b: 3 (three lost).
        for seq in [0, 2, 1, 1] {
            acc.record(a, &header(seq, 1_000_000), 3_000_000);
        }
        acc.record(b, &header(3, 2_000_000), 3_000_000);
        assert!(acc.has_seq());
        assert_eq!(acc.totals(), (3, 1, 1));
        assert_eq!(acc.non_seq, 1);
        // One-way delay in µs, a duplicate's too: 2000 µs from a, 1000 µs from b.
        let owd = acc.owd.summary().unwrap();
        assert_eq!((owd.min, owd.max), (1000, 2000));
        // Past MAX_SENDERS, a new sender is counted as untracked, a known one still tracked.
        for port in 3..(MAX_SENDERS as u16 + 1) {
            acc.record(([127, 0, 0, 1], port).into(), &header(0, 0), 0);
        }
        acc.record(([127, 0, 0, 2], 1).into(), &header(0, 0), 0);
        assert_eq!(acc.untracked, 1);
        acc.record(a, &header(3, 0), 0);
        assert_eq!(acc.untracked, 1);
        assert_eq!(acc.totals(), (3, 1, 1));
    }

    #[test]
    fn jitter_is_rfc_3550s_running_mean_of_the_transit_differences() {
        // Sent every 1 ms, arriving every 1 ms but one 400 µs late: D is +400 µs then
        // −400 µs, then 0; J moves by 1/16 of |D| − J each time.
        let mut t = Tracker::default();
        let arrivals_us = [0i64, 1000, 2400, 3000, 4000];
        for (k, at) in arrivals_us.iter().enumerate() {
            t.arrived((at - 1000 * k as i64) * 1000);
        }
        let mut j = 0.0f64;
        for d in [0.0, 400.0, 400.0, 0.0] {
            j += (d - j) / 16.0;
        }
        assert!((t.jitter_us() - j).abs() < 1e-9, "{} vs {j}", t.jitter_us());
        assert!((j - 45.410).abs() < 0.001, "{j}");
        // Perfect spacing, whatever the clocks' offset: none.
        let mut t = Tracker::default();
        for _ in 0..100 {
            t.arrived(5_000_000_007);
        }
        assert_eq!(t.jitter_us(), 0.0);
    }

    #[test]
    fn the_busiest_senders_jitter_is_the_one_reported() {
        let header = |seq: u64, sent_ns: u64| {
            let mut b = vec![0; HEADER_LEN];
            write(&mut b, seq, sent_ns);
            b
        };
        let (a, b): (std::net::SocketAddr, std::net::SocketAddr) = (
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        );
        let mut acc = Accounting::default();
        assert_eq!(acc.jitter_us(), None);
        // a: three datagrams sent 1 ms apart, arriving evenly; b: two, the second 1 ms late.
        for k in 0..3u64 {
            acc.record(a, &header(k, k * 1_000_000), 10_000_000 + k * 1_000_000);
        }
        acc.record(b, &header(0, 0), 10_000_000);
        acc.record(b, &header(1, 1_000_000), 12_000_000);
        assert_eq!(acc.jitter_us(), Some(0.0), "a sent most");
        let s = acc.senders();
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].peer.as_str(), s[0].received, s[0].jitter_us),
            ("127.0.0.1:1", 3, 0.0)
        );
        assert_eq!(
            (s[1].peer.as_str(), s[1].received, s[1].jitter_us),
            ("127.0.0.1:2", 2, 62.5)
        );
        assert_eq!((s[1].lost, s[1].reordered, s[1].duplicates), (0, 0, 0));
        // A duplicate arrived, so it counts as received.
        acc.record(b, &header(1, 1_000_000), 12_000_000);
        let s = acc.senders();
        assert_eq!((s[1].received, s[1].duplicates), (3, 1));
    }

    proptest! {
        #[test]
        fn tracker_accounting_is_exact_for_any_arrival_order(mut seqs in proptest::collection::vec(0u64..500, 0..400)) {
            let t = track(&seqs);
            seqs.sort_unstable();
            let total = seqs.len() as u64;
            seqs.dedup();
            let unique = seqs.len() as u64;
            prop_assert_eq!(t.duplicates, total - unique);
            let expected = seqs.last().map_or(0, |h| h + 1);
            prop_assert_eq!(t.lost(), expected - unique);
        }
    }
}
