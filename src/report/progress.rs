//! The live progress line of long sends (SPEC §4 send): sent/total, rate, time left, on
//! stderr, only when stderr is a terminal and `-q` was not given.
//!
//! Drawn here rather than by a progress-bar crate: one `\r` line redrawn at most ten
//! times a second is all it is, and indicatif (with its float maths) cost every start
//! of dgram a load of libm and ~7% of a one-datagram send, which is where dgram is used
//! most. [`render`] is pure and tested; [`Progress`] only decides when to draw.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Sends planned to last at least this long get a line from the start; others only once
/// they have taken this long.
const LONG: Duration = Duration::from_secs(1);

/// The least time between two redraws.
const REDRAW: Duration = Duration::from_millis(100);

/// What a send is bounded by, which decides what "done" means on the line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Goal {
    /// `--count N` of a fixed payload.
    Count(u64),
    /// `--duration D`.
    Duration(Duration),
    /// `dgram scan` of N ports (counted as they come to a state).
    Ports(u64),
}

/// A progress line that may never be shown.
pub struct Progress {
    goal: Option<Goal>,
    enabled: bool,
    shown: bool,
    drawn: bool,
    start: Instant,
    next_draw: Instant,
}

impl Progress {
    /// For a send of `total` datagrams and/or lasting `duration`, at `rate` if paced.
    pub fn new(total: Option<u64>, duration: Option<Duration>, rate: Option<f64>) -> Self {
        let goal = match (total, duration) {
            (Some(t), _) if t > 1 => Some(Goal::Count(t)),
            (_, Some(d)) => Some(Goal::Duration(d)),
            _ => None,
        };
        let enabled = goal.is_some()
            && std::io::stderr().is_terminal()
            && tracing::enabled!(tracing::Level::WARN);
        let planned = match (total, rate, duration) {
            (_, _, Some(d)) => d,
            (Some(t), Some(r), None) => Duration::from_secs_f64(t as f64 / r),
            _ => Duration::ZERO,
        };
        let start = Instant::now();
        Progress {
            goal,
            enabled,
            shown: planned >= LONG,
            drawn: false,
            start,
            next_draw: start,
        }
    }

    /// For a scan of `total` ports at `rate` probes/s (None: as fast as they answer).
    pub fn ports(total: u64, rate: Option<f64>) -> Self {
        let mut p = Progress::new(Some(total), None, rate);
        p.goal = (total > 1).then_some(Goal::Ports(total));
        p
    }

    /// `sent` datagrams have gone so far (a scan: ports done).
    pub fn update(&mut self, sent: u64) {
        let (true, Some(goal)) = (self.enabled, self.goal) else {
            return;
        };
        let now = Instant::now();
        if !self.due(now) {
            return;
        }
        let columns = crate::net::sys::terminal_columns(2).unwrap_or(80);
        let line = render(sent, goal, now - self.start, columns);
        // One write a redraw: the line is never seen half drawn.
        let _ = std::io::stderr().write_all(format!("\r{line}\x1b[K").as_bytes());
        self.drawn = true;
    }

    /// Whether to redraw at `now`: once the send has shown itself long (planned so, or
    /// running for a second), at most every [`REDRAW`].
    fn due(&mut self, now: Instant) -> bool {
        if !self.shown {
            if now - self.start < LONG {
                return false;
            }
            self.shown = true;
        }
        if now < self.next_draw {
            return false;
        }
        self.next_draw = now + REDRAW;
        true
    }

    /// When a loop that waits should wake to redraw the line (None: it is never drawn).
    pub fn wake(&self) -> Option<Instant> {
        if !self.enabled || self.goal.is_none() {
            return None;
        }
        Some(if self.shown {
            self.next_draw
        } else {
            self.start + LONG
        })
    }

    /// Clear the line: the summary follows on a clean stderr.
    pub fn finish(&mut self) {
        if std::mem::take(&mut self.drawn) {
            let _ = std::io::stderr().write_all(b"\r\x1b[K");
        }
    }
}

/// The progress line after `sent` datagrams in `elapsed`, fitted to `columns` (one
/// column is left free, so the cursor never wraps): the counts, the rate, the time left,
/// then a bar in what room remains.
pub fn render(sent: u64, goal: Goal, elapsed: Duration, columns: u16) -> String {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { sent as f64 / secs } else { 0.0 };
    let mut line = String::new();
    let (done, left) = match goal {
        Goal::Count(total) | Goal::Ports(total) => {
            let _ = match goal {
                Goal::Ports(_) => write!(line, "scanned {sent}/{total} ports"),
                _ => write!(line, "sent {sent}/{total} datagrams"),
            };
            let rest = total.saturating_sub(sent);
            let left = (rate > 0.0).then(|| Duration::from_secs_f64(rest as f64 / rate));
            (sent as f64 / total.max(1) as f64, left)
        }
        Goal::Duration(d) => {
            let _ = write!(line, "sent {sent} datagrams");
            let done = secs / d.as_secs_f64().max(1e-9);
            (done, Some(d.saturating_sub(elapsed)))
        }
    };
    let _ = write!(line, "  {rate:.0}/s  ");
    match left {
        Some(left) => {
            let _ = write!(line, "{} left", short_duration(left));
        }
        None => line.push_str("? left"),
    }
    let room = usize::from(columns).saturating_sub(1);
    // A bar only where it has room to mean something.
    let bar = room.saturating_sub(line.len() + 4);
    if bar >= 10 {
        let filled = ((done.clamp(0.0, 1.0) * bar as f64) as usize).min(bar);
        line.push_str("  [");
        line.extend(std::iter::repeat_n('#', filled));
        line.extend(std::iter::repeat_n('-', bar - filled));
        line.push(']');
    }
    // ASCII only, so cutting at a byte is cutting at a character.
    line.truncate(room);
    line
}

/// `7s`, `3m05s`, `2h14m`: the time left, to the second below an hour.
fn short_duration(d: Duration) -> String {
    let s = d.as_secs() + u64::from(d.subsec_millis() >= 500);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WIDE: u16 = 200;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn a_count_shows_sent_of_total_the_rate_and_the_time_left() {
        let line = render(250, Goal::Count(1000), secs(2.5), WIDE);
        assert!(
            line.starts_with("sent 250/1000 datagrams  100/s  8s left  ["),
            "{line}"
        );
    }

    #[test]
    fn a_scan_shows_ports_done_of_total() {
        let line = render(500, Goal::Ports(2000), secs(5.0), WIDE);
        assert!(
            line.starts_with("scanned 500/2000 ports  100/s  15s left  [#####"),
            "{line}"
        );
    }

    #[test]
    fn a_duration_shows_what_was_sent_and_the_time_that_remains() {
        let line = render(3000, Goal::Duration(secs(10.0)), secs(3.0), WIDE);
        assert!(
            line.starts_with("sent 3000 datagrams  1000/s  7s left  ["),
            "{line}"
        );
        // 3 s of 10: the bar is 30% full.
        let bar = &line[line.find('[').unwrap() + 1..line.len() - 1];
        let hashes = bar.chars().filter(|&c| c == '#').count();
        assert_eq!(hashes, bar.len() * 3 / 10, "{line}");
        // Past its end (the last batch still going), nothing is left, not a negative.
        let over = render(10, Goal::Duration(secs(1.0)), secs(1.2), WIDE);
        assert!(over.contains("  0s left"), "{over}");
        assert!(!over.contains('-'), "a full bar: {over}");
    }

    #[test]
    fn before_anything_is_timed_the_time_left_is_unknown_not_infinite() {
        let line = render(0, Goal::Count(10), Duration::ZERO, WIDE);
        assert!(
            line.starts_with("sent 0/10 datagrams  0/s  ? left  ["),
            "{line}"
        );
        assert!(!line.contains("inf") && !line.contains("NaN"), "{line}");
    }

    #[test]
    fn the_bar_fills_in_proportion_and_ends_at_the_terminal_edge() {
        for (sent, filled) in [(0, 0), (500, 25), (1000, 50), (5000, 50)] {
            let line = render(sent, Goal::Count(1000), secs(1.0), 80);
            assert_eq!(line.len(), 79, "one column free: {line}");
            let bar = &line[line.find('[').unwrap() + 1..line.len() - 1];
            let hashes = bar.chars().filter(|&c| c == '#').count();
            let expected = bar.len() * filled / 50;
            assert_eq!(hashes, expected, "{sent}: {line}");
            assert!(line.ends_with(']'), "{line}");
        }
    }

    #[test]
    fn a_narrow_terminal_drops_the_bar_then_cuts_the_line() {
        let line = render(5, Goal::Count(10), secs(1.0), 45);
        assert_eq!(line, "sent 5/10 datagrams  5/s  1s left");
        let cut = render(5, Goal::Count(10), secs(1.0), 11);
        assert_eq!(cut, "sent 5/10 ");
        assert_eq!(render(5, Goal::Count(10), secs(1.0), 0), "");
    }

    /// Which of the instants `at` (ms from the start) draw, for a send planned `long`.
    fn draws(long: bool, at: &[u64]) -> Vec<u64> {
        let mut p = Progress::new(
            None,
            Some(Duration::from_secs(if long { 5 } else { 0 })),
            None,
        );
        p.shown = long;
        let start = p.start;
        at.iter()
            .copied()
            .filter(|&ms| p.due(start + Duration::from_millis(ms)))
            .collect()
    }

    #[test]
    fn a_long_send_draws_at_once_then_ten_times_a_second_at_most() {
        assert_eq!(
            draws(true, &[0, 50, 99, 100, 150, 199, 200, 450]),
            [0, 100, 200, 450]
        );
    }

    #[test]
    fn a_send_not_planned_long_draws_only_once_it_has_taken_a_second() {
        assert_eq!(draws(false, &[0, 500, 999, 1000, 1050, 1100]), [1000, 1100]);
    }

    #[test]
    fn times_left_are_short_and_rounded() {
        let cases = [
            (0.4, "0s"),
            (0.5, "1s"),
            (59.4, "59s"),
            (60.0, "1m00s"),
            (185.0, "3m05s"),
            (3599.0, "59m59s"),
            (3600.0, "1h00m"),
            (8050.0, "2h14m"),
        ];
        for (s, want) in cases {
            assert_eq!(short_duration(secs(s)), want, "{s}");
        }
    }
}
