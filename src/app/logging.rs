//! Logging on stderr (SPEC §7), never stdout (stdout is data): each tracing event as
//! one line, `dgram: warning: message key=value`, the same shape as the error line.
//! Default `warn`; `-v` info, `-vv` debug, `-vvv` trace; `-q` errors only; `RUST_LOG`
//! (`LEVEL` or `TARGET=LEVEL,...`) overrides all of them.
//!
//! The subscriber is dgram's own, over tracing-subscriber's `Targets` filter. The fmt
//! layer it replaces needs a span registry, whose slab allocates and writes 32 KiB at
//! every start, and with the layer's code that was about 2% of a one-datagram `send`;
//! dgram has no spans to show.

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};

use crate::cli::LogOpts;

/// Install the stderr logger for the levels `opts` and `RUST_LOG` ask for; a `RUST_LOG`
/// that does not parse is ignored, and a warning says so (it would otherwise silently
/// change nothing), held until the first line logged or [`finish`].
pub fn init(opts: &LogOpts) {
    let rust_log = std::env::var_os("RUST_LOG").map(|v| v.to_string_lossy().into_owned());
    let (filter, ignored) = filter(opts, rust_log.as_deref());
    let mut log = StderrLog::new(filter);
    if let Some(text) = ignored {
        log = log.holding(&format!(
            "RUST_LOG={text:?} ignored: it takes LEVEL or TARGET=LEVEL,... (debug, dgram_cli=trace)"
        ));
    }
    // Only fails if a logger is already installed (a second call): keep that one.
    let _ = tracing::subscriber::set_global_default(log);
}

/// Write the warning still held, if nothing was logged to carry it: call once, at exit.
pub fn finish() {
    tracing::dispatcher::get_default(|dispatch| {
        if let Some(log) = dispatch.downcast_ref::<StderrLog>() {
            log.write_held();
        }
    });
}

/// Write a log line to stderr in one call. A line that cannot be written (stderr
/// closed) is not worth failing over.
fn write_stderr(line: &str) {
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// What is logged for `-q`/`-v...`, unless `rust_log` (the `RUST_LOG` value) parses: it
/// takes `LEVEL` or `TARGET=LEVEL,...` (tracing-subscriber's `Targets`, which needs no
/// regex engine: EnvFilter's made the binary larger and its start-up slower). An empty
/// `RUST_LOG` counts as unset. Also returns a `rust_log` that did not parse (ignored).
pub(crate) fn filter<'a>(opts: &LogOpts, rust_log: Option<&'a str>) -> (Targets, Option<&'a str>) {
    let level = match (opts.quiet, opts.verbose) {
        (true, _) => LevelFilter::ERROR,
        (_, 0) => LevelFilter::WARN,
        (_, 1) => LevelFilter::INFO,
        (_, 2) => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    };
    let flags = || Targets::new().with_default(level);
    match rust_log.filter(|text| !text.trim().is_empty()) {
        None => (flags(), None),
        Some(text) => match text.parse::<Targets>() {
            Ok(targets) => (targets, None),
            Err(_) => (flags(), Some(text)),
        },
    }
}

/// Events the filter lets through, written to stderr a line at a time.
struct StderrLog {
    filter: Targets,
    /// The most verbose level any target is logged at: tracing skips every event above
    /// it without asking.
    max: LevelFilter,
    /// Where a line goes: stderr (the tests keep the lines instead).
    write: fn(&str),
    /// A warning about dgram's own set-up (an ignored `RUST_LOG`), written just before
    /// the first line logged, or at exit: a server's first stderr line must be its
    /// `listening on`, and none of its events come before that.
    held: Option<String>,
    /// Whether `held` was written.
    held_written: AtomicBool,
}

impl StderrLog {
    fn new(filter: Targets) -> StderrLog {
        let max = filter
            .iter()
            .map(|(_, level)| level)
            .chain(filter.default_level())
            .max()
            .unwrap_or(LevelFilter::OFF);
        StderrLog {
            filter,
            max,
            write: write_stderr,
            held: None,
            held_written: AtomicBool::new(false),
        }
    }

    /// This logger with a warning held back (see `held`), unless warnings are not
    /// logged (`-q`).
    fn holding(mut self, message: &str) -> StderrLog {
        if self.filter.would_enable(module_path!(), &Level::WARN) {
            self.held = Some(format!("dgram: warning: {message}\n"));
        }
        self
    }

    /// Write the held warning, once. Without one (the usual case) it costs a branch.
    fn write_held(&self) {
        if let Some(line) = &self.held {
            if !self.held_written.swap(true, Ordering::Relaxed) {
                (self.write)(line);
            }
        }
    }
}

impl Subscriber for StderrLog {
    // Decided once per callsite: the filter does not change while dgram runs.
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if self.enabled(metadata) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.filter
            .would_enable(metadata.target(), metadata.level())
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.max)
    }

    fn event(&self, event: &Event<'_>) {
        self.write_held();
        (self.write)(&format_line(event));
    }

    // Spans (dgram opens none; a dependency might) are neither shown nor tracked.
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// `dgram: LEVEL: ` and the event's fields, in the order the event names them: the
/// message bare, the others as `name=value` (`Debug`, so a string is quoted), as
/// tracing-subscriber's fmt layer writes them; a newline at the end.
fn format_line(event: &Event<'_>) -> String {
    let level = match *event.metadata().level() {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    };
    let mut fields = Fields {
        line: format!("dgram: {level}: "),
        empty: true,
    };
    event.record(&mut fields);
    fields.line.push('\n');
    fields.line
}

/// The fields of one event, written into its line.
struct Fields {
    line: String,
    empty: bool,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.record_debug(field, &format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if !self.empty {
            self.line.push(' ');
        }
        self.empty = false;
        let name = field.name();
        let mut out = Escaped(&mut self.line);
        // Writing into a String cannot fail.
        let _ = match name {
            "message" => write!(out, "{value:?}"),
            name => write!(out, "{}={value:?}", name.trim_start_matches("r#")),
        };
    }
}

/// Writes into a line with the characters a terminal would act on made visible (ESC,
/// BEL, BS, FF, DEL and the C1 controls as `\x1b`, `\u{9b}`...), as tracing-subscriber
/// does: a field may carry a peer's bytes, and a log line must not drive the terminal.
struct Escaped<'a>(&'a mut String);

impl fmt::Write for Escaped<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for ch in text.chars() {
            match ch {
                '\x1b' | '\x07' | '\x08' | '\x0c' | '\x7f' => {
                    write!(self.0, "\\x{:02x}", ch as u32)?;
                }
                '\u{80}'..='\u{9f}' => write!(self.0, "\\u{{{:x}}}", ch as u32)?,
                _ => self.0.push(ch),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_v_shows_one_level_more_and_rust_log_overrides_them() {
        let count = |quiet: bool, verbose: u8, env: Option<&str>| {
            let opts = LogOpts { quiet, verbose };
            let (f, _) = filter(&opts, env);
            [
                Level::ERROR,
                Level::WARN,
                Level::INFO,
                Level::DEBUG,
                Level::TRACE,
            ]
            .into_iter()
            .filter(|l| f.would_enable("dgram_cli", l))
            .count()
        };
        assert_eq!(count(true, 0, None), 1, "-q: errors only");
        assert_eq!(count(true, 3, None), 1, "-q wins over -v");
        assert_eq!(count(false, 0, None), 2, "warnings by default");
        assert_eq!(count(false, 1, None), 3);
        assert_eq!(count(false, 2, None), 4);
        assert_eq!(count(false, 3, None), 5);
        assert_eq!(count(false, 9, None), 5);
        assert_eq!(count(true, 0, Some("debug")), 4, "RUST_LOG overrides -q");
        assert_eq!(count(false, 0, Some("dgram_cli=trace")), 5);
        assert_eq!(
            count(false, 1, Some("dgram_cli=loud")),
            3,
            "unparsable: ignored"
        );
        assert_eq!(count(false, 1, Some("")), 3, "empty: as if unset");
        assert_eq!(count(false, 1, Some("  ")), 3, "blank: as if unset");
        let quiet = LogOpts {
            quiet: false,
            verbose: 0,
        };
        assert_eq!(
            filter(&quiet, Some("dgram_cli=loud")).1,
            Some("dgram_cli=loud")
        );
        assert_eq!(filter(&quiet, Some("a=b=c")).1, Some("a=b=c"));
        assert_eq!(filter(&quiet, Some("info")).1, None);
        assert_eq!(filter(&quiet, Some("")).1, None);
        assert_eq!(filter(&quiet, None).1, None);
    }

    #[test]
    fn the_level_hint_is_the_most_verbose_target() {
        let hint = |text: &str| StderrLog::new(text.parse().unwrap()).max_level_hint();
        assert_eq!(hint("warn"), Some(LevelFilter::WARN));
        assert_eq!(hint("warn,dgram_cli=trace"), Some(LevelFilter::TRACE));
        assert_eq!(hint("hickory_proto=debug"), Some(LevelFilter::DEBUG));
        assert_eq!(hint("off"), Some(LevelFilter::OFF));
    }

    thread_local! {
        static LINES: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
    }

    fn keep(line: &str) {
        LINES.with(|lines| lines.borrow_mut().push(line.to_string()));
    }

    /// A logger with `RUST_LOG`-style `filter` whose lines are kept in `LINES`.
    fn kept(filter: &str) -> StderrLog {
        StderrLog {
            write: keep,
            ..StderrLog::new(filter.parse().unwrap())
        }
    }

    /// The lines the logger writes, with `RUST_LOG`-style `filter`, for what `f` logs.
    fn lines_of(filter: &str, f: impl FnOnce()) -> Vec<String> {
        LINES.with(|lines| lines.borrow_mut().clear());
        tracing::subscriber::with_default(kept(filter), f);
        LINES.with(|lines| lines.take())
    }

    /// The one line an event gives with everything logged.
    fn line_of(f: impl FnOnce()) -> String {
        let lines = lines_of("trace", f);
        assert_eq!(lines.len(), 1, "{lines:?}");
        lines[0].clone()
    }

    #[test]
    fn only_what_the_filter_lets_through_is_written() {
        let lines = lines_of("warn", || {
            tracing::info!("hidden");
            tracing::warn!("shown");
            tracing::error!("also shown");
        });
        assert_eq!(
            lines,
            ["dgram: warning: shown\n", "dgram: error: also shown\n"]
        );
        let lines = lines_of("warn,dgram_cli=debug", || {
            tracing::debug!("ours");
            tracing::debug!(target: "hickory_proto", "theirs");
            tracing::trace!("too detailed");
        });
        assert_eq!(lines, ["dgram: debug: ours\n"]);
        assert!(lines_of("off", || tracing::error!("x")).is_empty());
    }

    #[test]
    fn a_held_warning_comes_before_the_first_line_or_at_the_end_and_once() {
        LINES.with(|lines| lines.borrow_mut().clear());
        let first = kept("warn").holding("held");
        tracing::subscriber::with_default(first, || {
            tracing::info!("not logged: the held line waits");
            tracing::warn!("one");
            tracing::warn!("two");
        });
        assert_eq!(
            LINES.with(|lines| lines.take()),
            [
                "dgram: warning: held\n",
                "dgram: warning: one\n",
                "dgram: warning: two\n"
            ]
        );
        let quiet_run = kept("warn").holding("held");
        quiet_run.write_held();
        quiet_run.write_held();
        assert_eq!(LINES.with(|lines| lines.take()), ["dgram: warning: held\n"]);
        let errors_only = kept("error").holding("held");
        errors_only.write_held();
        assert!(LINES.with(|lines| lines.take()).is_empty(), "-q hides it");
    }

    #[test]
    fn a_line_is_the_level_the_message_and_the_fields_in_order() {
        let peer = "127.0.0.1:9";
        assert_eq!(
            line_of(|| tracing::warn!("no reply from {peer}")),
            "dgram: warning: no reply from 127.0.0.1:9\n"
        );
        assert_eq!(
            line_of(|| tracing::info!(count = 3, name = "a b", "sent")),
            "dgram: info: sent count=3 name=\"a b\"\n"
        );
        assert_eq!(
            line_of(|| tracing::error!(r#type = 1, "x")),
            "dgram: error: x type=1\n"
        );
        let err = std::io::Error::other("boom");
        assert_eq!(
            line_of(|| tracing::debug!(error = &err as &dyn std::error::Error, "failed")),
            "dgram: debug: failed error=boom\n"
        );
        assert_eq!(line_of(|| tracing::trace!("t")), "dgram: trace: t\n");
    }

    #[test]
    fn terminal_controls_in_a_field_are_made_visible() {
        let name = "evil\x1b[2J\x07\u{9b}31m";
        assert_eq!(
            line_of(|| tracing::warn!("query for {name}")),
            "dgram: warning: query for evil\\x1b[2J\\x07\\u{9b}31m\n"
        );
    }
}
