//! The live progress line of long sends (SPEC §4 send): sent/total, rate, time left, on
//! stderr, only when stderr is a terminal and `-q` was not given. Drawn by indicatif,
//! which limits its own redraw rate, so an update per batch costs an atomic store.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Sends planned to last at least this long get a line from the start; others only once
/// they have taken this long.
const LONG: Duration = Duration::from_secs(1);

/// A progress line that may never be shown.
pub struct Progress {
    bar: Option<ProgressBar>,
    enabled: bool,
    total: Option<u64>,
    duration: Option<Duration>,
    start: Instant,
}

impl Progress {
    /// For a send of `total` datagrams and/or lasting `duration`, at `rate` if paced.
    pub fn new(total: Option<u64>, duration: Option<Duration>, rate: Option<f64>) -> Self {
        let enabled = std::io::stderr().is_terminal()
            && tracing::enabled!(tracing::Level::WARN)
            && (total.is_some_and(|t| t > 1) || duration.is_some());
        let mut p = Progress {
            bar: None,
            enabled,
            total,
            duration,
            start: Instant::now(),
        };
        let planned = match (total, rate, duration) {
            (_, _, Some(d)) => d,
            (Some(t), Some(r), None) => Duration::from_secs_f64(t as f64 / r),
            _ => Duration::ZERO,
        };
        if enabled && planned >= LONG {
            p.show();
        }
        p
    }

    fn show(&mut self) {
        let (len, template) = match (self.total, self.duration) {
            (Some(t), _) => (
                t,
                "sent {pos}/{len} datagrams  {per_sec}  {eta} left  {wide_bar}",
            ),
            (None, Some(d)) => (d.as_millis() as u64, "{msg}  {eta} left  {wide_bar}"),
            (None, None) => return,
        };
        let style =
            ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar());
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr_with_hz(10))
            .with_style(style);
        self.bar = Some(bar);
    }

    /// `sent` datagrams have gone so far.
    pub fn update(&mut self, sent: u64) {
        if !self.enabled {
            return;
        }
        if self.bar.is_none() {
            if self.start.elapsed() < LONG {
                return;
            }
            self.show();
        }
        if let Some(bar) = &self.bar {
            if self.total.is_some() {
                bar.set_position(sent);
            } else {
                let elapsed = self.start.elapsed();
                bar.set_position(elapsed.as_millis() as u64);
                let rate = sent as f64 / elapsed.as_secs_f64().max(1e-9);
                bar.set_message(format!("sent {sent} datagrams  {rate:.0}/s"));
            }
        }
    }

    /// Clear the line: the summary follows on a clean stderr.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
