//! The `--stats` summary: counters kept during a run, printed once at the end on stderr,
//! as text or (with `--format json`) as one JSON object with the keys of SPEC §5.

use std::io::Write;
use std::time::Duration;

use serde::Serialize;

use crate::base::histogram::Histogram;
pub use crate::base::histogram::Percentiles;
use crate::wire::seq::SenderStats;

/// `1 datagram`, `2 datagrams`.
fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// A small bar chart of the values of `hist` (microseconds): up to `buckets` log-spaced
/// ranges from the smallest to the largest, one line each with its count.
pub fn bar_chart(hist: &Histogram, buckets: usize, width: usize) -> String {
    if hist.is_empty() {
        return String::new();
    }
    let (lo, hi) = (hist.min(), hist.max());
    // The largest sample lands in the last bucket by the clamp below, so the top edge
    // can be the largest sample itself.
    let (lo_f, hi_f) = (lo.max(1) as f64, hi.max(1) as f64);
    let buckets = if hi_f / lo_f < 1.01 {
        1
    } else {
        buckets.max(1)
    };
    let ratio = nth_root(hi_f / lo_f, buckets);
    let edges_f: Vec<f64> = (0..=buckets).map(|i| lo_f * ratio.powi(i as i32)).collect();
    let edges: Vec<u64> = edges_f.iter().map(|e| e.round() as u64).collect();
    let mut counts = vec![0u64; buckets];
    for (v, n) in hist.buckets() {
        // The bucket is how many inner edges the value has reached.
        let v = v.max(1) as f64;
        let i = edges_f[1..buckets].iter().take_while(|&&e| v >= e).count();
        counts[i] += n;
    }
    let most = counts.iter().copied().max().unwrap_or(1).max(1);
    let mut out = String::from("rtt distribution (µs):\n");
    for (i, &c) in counts.iter().enumerate() {
        let bar = ((c as f64 / most as f64) * width as f64).round() as usize;
        out.push_str(&format!(
            "{:>9}-{:<9} |{:<width$}| {c}\n",
            edges[i],
            edges[i + 1],
            "█".repeat(bar),
        ));
    }
    out
}

/// `x^(1/n)` for `x >= 1`, by bisection on `powi`: the chart's only root, and no `powf`,
/// which would link libm into every start of dgram for one chart.
fn nth_root(x: f64, n: usize) -> f64 {
    let (mut lo, mut hi) = (1.0f64, x.max(1.0));
    for _ in 0..100 {
        let mid = (lo + hi) / 2.0;
        if mid.powi(n as i32) < x {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// Everything a run counted. Fields that do not apply to a subcommand stay `None` and are
/// left out of the output.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub received: Option<u64>,
    pub bytes: u64,
    pub elapsed_s: f64,
    pub rate_pps: f64,
    /// Bits of UDP payload per second (`bytes` over the run), as iperf3 counts them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bitrate_bps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filtered: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_drops: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reordered: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicates: Option<u64>,
    /// Datagrams without a `--seq` header, when others had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub non_seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_us: Option<Percentiles>,
    /// One-way delay of `--seq` datagrams (sender clock to receiver clock).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owd_us: Option<Percentiles>,
    /// RFC 3550 interarrival jitter of the busiest `--seq` sender.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jitter_us: Option<f64>,
    /// Each `--seq` sender's counts, the busiest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub senders: Option<Vec<SenderStats>>,
}

impl Summary {
    /// Set `elapsed_s` and `rate_pps` from the run's length and the datagrams counted
    /// (sent for a sender, received for a receiver).
    pub fn finish(&mut self, elapsed: Duration, datagrams: u64) {
        self.elapsed_s = elapsed.as_secs_f64();
        self.rate_pps = if self.elapsed_s > 0.0 {
            datagrams as f64 / self.elapsed_s
        } else {
            0.0
        };
    }

    /// A receiver's `--seq` lines: loss, reordering, jitter and one-way delay, then each
    /// sender's when there are several.
    fn seq_lines(&self, lines: &mut Vec<String>) {
        let mut line = format!(
            "seq: lost {}, reordered {}, duplicates {}",
            self.lost.unwrap_or(0),
            self.reordered.unwrap_or(0),
            self.duplicates.unwrap_or(0)
        );
        if let Some(n) = self.non_seq {
            line.push_str(&format!(", without a header {n}"));
        }
        if let Some(j) = self.jitter_us {
            line.push_str(&format!(", jitter {j:.1} µs"));
        }
        if let Some(o) = &self.owd_us {
            line.push_str(&format!(
                "; one-way delay min/p50/p90/p99/max = {}/{}/{}/{}/{} µs",
                o.min, o.p50, o.p90, o.p99, o.max
            ));
        }
        lines.push(line);
        // More than one sender: each on its own line.
        let several = self.senders.as_ref().is_some_and(|v| v.len() > 1);
        for s in self.senders.iter().flatten().filter(|_| several) {
            lines.push(format!(
                "  from {}: received {}, lost {}, reordered {}, duplicates {}, jitter {:.1} µs",
                s.peer, s.received, s.lost, s.reordered, s.duplicates, s.jitter_us
            ));
        }
    }

    /// Set `bitrate_bps` from `bytes` of payload over the run (after [`finish`](Self::finish)).
    pub fn bitrate_of(&mut self, bytes: u64) {
        self.bitrate_bps = Some(bytes as f64 * 8.0 / self.elapsed_s.max(1e-9));
    }

    /// The summary as text lines.
    pub fn text(&self) -> String {
        let mut lines = Vec::new();
        let bitrate = self
            .bitrate_bps
            .map(|b| format!(", {}", crate::base::units::human_bitrate(b)))
            .unwrap_or_default();
        let took = format!(
            "in {:.3}s ({:.1} datagrams/s{bitrate})",
            self.elapsed_s, self.rate_pps
        );
        if let Some(sent) = self.sent {
            let bytes = if self.received.is_some() {
                String::new()
            } else {
                format!(", {} bytes", self.bytes)
            };
            lines.push(format!("sent {}{bytes} {took}", plural(sent, "datagram")));
        }
        if let Some(received) = self.received {
            let mut line = format!(
                "received {}, {} bytes",
                plural(received, "datagram"),
                self.bytes
            );
            if self.sent.is_none() {
                line.push_str(&format!(" {took}"));
            }
            if let Some(lost) = self.lost {
                let sent = self.sent.unwrap_or(0).max(1);
                line.push_str(&format!(
                    ", lost {lost} ({:.1}%)",
                    100.0 * lost as f64 / sent as f64
                ));
            }
            lines.push(line);
        }
        let mut extra = Vec::new();
        if let Some(n) = self.truncated {
            extra.push(format!("truncated {n}"));
        }
        if let Some(n) = self.filtered {
            extra.push(format!("filtered {n}"));
        }
        if self.received.is_some() && self.sent.is_none() {
            extra.push(match self.kernel_drops {
                Some(n) => format!("kernel drops {n}"),
                None => "kernel drops n/a".to_string(),
            });
        }
        if !extra.is_empty() {
            lines.push(extra.join(", "));
        }
        if self.sent.is_none() && (self.lost.is_some() || self.owd_us.is_some()) {
            self.seq_lines(&mut lines);
        } else if self.sent.is_some() && (self.reordered.is_some() || self.duplicates.is_some()) {
            lines.push(format!(
                "replies reordered {}, duplicated {}",
                self.reordered.unwrap_or(0),
                self.duplicates.unwrap_or(0)
            ));
        }
        if let Some(rtt) = &self.rtt_us {
            lines.push(format!(
                "rtt min/p50/p90/p99/max = {}/{}/{}/{}/{} µs",
                rtt.min, rtt.p50, rtt.p90, rtt.p99, rtt.max
            ));
        }
        lines.join("\n") + "\n"
    }

    /// Print on stderr: one JSON object when `json`, text lines otherwise. Errors writing
    /// to stderr are ignored: there is nowhere left to report them.
    pub fn print(&self, json: bool) {
        let _ = std::io::stderr().write_all(self.render(json).as_bytes());
    }

    /// What [`Summary::print`] writes: one JSON object, or the text lines.
    pub fn render(&self, json: bool) -> String {
        if json {
            serde_json::to_string(self).expect("a summary serializes") + "\n"
        } else {
            self.text()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(samples: &[u64]) -> Histogram {
        let mut h = Histogram::default();
        for &v in samples {
            h.record(v);
        }
        h
    }

    #[test]
    fn nth_roots_are_exact_to_the_last_digits() {
        for (x, n, root) in [
            (1000.0, 3, 10.0),
            (2.0, 1, 2.0),
            (1.0, 8, 1.0),
            (1e7, 7, 10.0),
        ] {
            let r = nth_root(x, n);
            assert!((r - root).abs() < 1e-12 * root, "{x}^(1/{n}) = {r}");
        }
        assert!((nth_root(2.0, 2) - std::f64::consts::SQRT_2).abs() < 1e-15);
    }

    #[test]
    fn bar_charts_count_every_sample_once() {
        let samples: Vec<u64> = (0..1000).map(|i| 50 + (i % 100) * (i % 7)).collect();
        let chart = bar_chart(&hist(&samples), 8, 30);
        let total: u64 = chart
            .lines()
            .skip(1)
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum();
        assert_eq!(total, 1000);
        assert_eq!(chart.lines().count(), 9);
        assert!(chart.contains('█'));
        // One value, or none: still sensible.
        assert_eq!(bar_chart(&hist(&[7, 7, 7]), 8, 10).lines().count(), 2);
        assert_eq!(bar_chart(&hist(&[]), 8, 10), "");
    }

    #[test]
    fn bar_charts_are_log_spaced_from_the_smallest_to_the_largest_sample() {
        let row = |lo: u64, hi: u64, bar: &str, n: u64| format!("{lo:>9}-{hi:<9} |{bar}| {n}\n");
        let head = "rtt distribution (µs):\n";
        assert_eq!(
            bar_chart(&hist(&[1, 2, 3, 50]), 2, 4),
            format!("{head}{}{}", row(1, 7, "████", 3), row(7, 50, "█   ", 1))
        );
        assert_eq!(
            bar_chart(&hist(&[150, 100, 1000]), 2, 3),
            format!(
                "{head}{}{}",
                row(100, 316, "███", 2),
                row(316, 1000, "██ ", 1)
            )
        );
        assert_eq!(
            bar_chart(&hist(&[1000, 10_000_000]), 2, 2),
            format!(
                "{head}{}{}",
                row(1000, 100_000, "██", 1),
                row(100_000, 10_000_000, "██", 1)
            )
        );
        // A range of 1% or more is worth the buckets asked for; less is one bucket.
        assert_eq!(bar_chart(&hist(&[100, 200]), 2, 1).lines().count(), 3);
        assert_eq!(bar_chart(&hist(&[100, 101]), 2, 1).lines().count(), 3);
        assert_eq!(bar_chart(&hist(&[1000, 1009]), 2, 1).lines().count(), 2);
        assert_eq!(
            bar_chart(&hist(&[100, 100]), 2, 1),
            format!("{head}{}", row(100, 100, "█", 2))
        );
    }

    #[test]
    fn a_run_of_no_time_has_no_rate() {
        let mut s = Summary::default();
        s.finish(Duration::ZERO, 5);
        assert_eq!(s.rate_pps, 0.0);
        s.finish(Duration::from_millis(500), 5);
        assert_eq!(s.rate_pps, 10.0);
    }

    #[test]
    fn a_sender_and_a_receiver_each_get_their_own_lines() {
        let sender = Summary {
            sent: Some(1),
            bytes: 4,
            lost: Some(1),
            reordered: Some(2),
            ..Summary::default()
        };
        let text = sender.text();
        assert!(text.starts_with("sent 1 datagram, 4 bytes in"), "{text}");
        assert!(text.contains("replies reordered 2, duplicated 0"), "{text}");
        assert!(
            !text.contains("kernel drops") && !text.contains("seq:"),
            "{text}"
        );
        // With replies counted too (send -r): still the sender's lines.
        let text = Summary {
            received: Some(1),
            ..sender
        }
        .text();
        assert!(text.contains("received 1 datagram, 4 bytes"), "{text}");
        assert!(!text.contains("kernel drops"), "{text}");
        let receiver = Summary {
            received: Some(2),
            owd_us: Some(Percentiles {
                min: 1,
                p50: 2,
                p90: 3,
                p99: 4,
                max: 5,
            }),
            reordered: Some(0),
            ..Summary::default()
        };
        let text = receiver.text();
        assert!(text.contains("received 2 datagrams"), "{text}");
        assert!(text.contains("kernel drops n/a"), "{text}");
        assert!(
            text.contains("seq: lost 0, reordered 0, duplicates 0; one-way delay min/p50/p90/p99/max = 1/2/3/4/5 µs"),
            "{text}"
        );
        assert!(!text.contains("replies"), "{text}");
        let receiver = Summary {
            received: Some(2),
            reordered: Some(1),
            ..Summary::default()
        };
        let text = receiver.text();
        assert!(
            !text.contains("replies") && !text.contains("seq:"),
            "{text}"
        );
    }

    #[test]
    fn json_keeps_only_what_applies() {
        let mut s = Summary {
            received: Some(3),
            bytes: 12,
            truncated: Some(0),
            filtered: Some(1),
            kernel_drops: Some(0),
            ..Summary::default()
        };
        s.finish(Duration::from_secs(2), 3);
        let v: serde_json::Value = serde_json::to_value(&s).unwrap();
        assert_eq!(v["received"], 3);
        assert_eq!(v["rate_pps"], 1.5);
        assert!(v.get("sent").is_none() && v.get("rtt_us").is_none());
        let text = s.text();
        assert!(
            text.contains("received 3 datagrams, 12 bytes in 2.000s (1.5 datagrams/s)"),
            "{text}"
        );
        assert!(
            text.contains("truncated 0, filtered 1, kernel drops 0"),
            "{text}"
        );
    }
}
