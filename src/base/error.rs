//! The error vocabulary: what a failure means to the person who ran dgram, without
//! deciding what the process does about it. The exit-code policy over these types is
//! `app::exit`; what a failed send or ICMP report means is `net::errors`.
//!
//! Errors travel as `anyhow::Error`. The few that mean something other than "network
//! or system failure" carry one of the marker types below somewhere in their chain.

use std::fmt;
use std::io;

/// Invalid input or usage (exit 2). Nothing has been sent when this is returned.
#[derive(Debug)]
pub struct Usage(pub String);

/// The expected did not happen (exit 1).
#[derive(Debug)]
pub struct Unmet(pub String);

/// Stdout was closed by its reader (`| head`): a quiet exit 0.
#[derive(Debug)]
pub struct StdoutClosed;

macro_rules! message_error {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl std::error::Error for $t {}
    };
}
message_error!(Usage);
message_error!(Unmet);

impl fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("stdout closed")
    }
}
impl std::error::Error for StdoutClosed {}

/// `Err(Usage)` with a formatted message, as an `anyhow::Error`.
macro_rules! usage {
    ($($arg:tt)*) => {
        ::anyhow::Error::new($crate::base::error::Usage(format!($($arg)*)))
    };
}
pub(crate) use usage;

/// How a run that did not fail ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Everything asked for happened.
    Done,
    /// Stopped by a signal (its number), after flushing output and printing stats.
    Signal(i32),
}

/// The short, lower-case description of an I/O error, without std's "(os error N)".
///
/// `failed to bind ...: address already in use` reads better than
/// `Address already in use (os error 98)`.
pub fn describe_io(err: &io::Error) -> String {
    let text = match err.raw_os_error() {
        Some(code) => {
            let s = io::Error::from_raw_os_error(code).to_string();
            match s.rfind(" (os error") {
                Some(i) => s[..i].to_string(),
                None => s,
            }
        }
        None => err.to_string(),
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

/// An I/O error wrapped so that it prints as [`describe_io`] does.
#[derive(Debug)]
pub struct IoError(pub io::Error);

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&describe_io(&self.0))
    }
}

impl std::error::Error for IoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        None
    }
}

/// Extension for `io::Result`: attach an action ("failed to bind to 127.0.0.1:53") and
/// print the OS error briefly.
pub trait IoContext<T> {
    /// Wrap the error as `{what}: {short os error}`.
    fn io_context<F: FnOnce() -> String>(self, what: F) -> anyhow::Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn io_context<F: FnOnce() -> String>(self, what: F) -> anyhow::Result<T> {
        self.map_err(|e| anyhow::Error::new(IoError(e)).context(what()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_print_short_and_lower_case() {
        let e = io::Error::from_raw_os_error(libc::EADDRINUSE);
        assert_eq!(describe_io(&e), "address already in use");
        let r: io::Result<()> = Err(e);
        let e = r
            .io_context(|| "failed to bind to 127.0.0.1:53".into())
            .unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            "failed to bind to 127.0.0.1:53: address already in use"
        );
    }
}
