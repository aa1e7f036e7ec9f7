//! The exit codes of SPEC §6 and the map from an error to its code.
//!
//! Errors travel as `anyhow::Error`. Most of them are "network or system" failures
//! (exit 3); the few that mean something else carry a marker type somewhere in their
//! chain, and [`code_for`] looks for it.

use std::fmt;
use std::io;
use std::process::ExitCode;

/// Exit 0: success.
pub const SUCCESS: u8 = 0;
/// Exit 1: the expected did not happen (no reply, `--expect` mismatch, too few datagrams).
pub const UNMET: u8 = 1;
/// Exit 2: usage or invalid input.
pub const USAGE: u8 = 2;
/// Exit 3: network or system error.
pub const SYSTEM: u8 = 3;

/// Invalid input or usage: exit 2. Nothing has been sent when this is returned.
#[derive(Debug)]
pub struct Usage(pub String);

/// The expected did not happen: exit 1.
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
        ::anyhow::Error::new($crate::exit::Usage(format!($($arg)*)))
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

impl Ending {
    /// The process exit code: 0, or 128 + the signal number (130 for SIGINT, 143 for SIGTERM).
    pub fn code(self) -> ExitCode {
        match self {
            Ending::Done => ExitCode::from(SUCCESS),
            Ending::Signal(sig) => ExitCode::from(128u8.saturating_add(sig as u8)),
        }
    }
}

/// The exit code for an error: the marker types first, then the I/O error kind.
pub fn code_for(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.is::<StdoutClosed>() {
            return SUCCESS;
        }
        if cause.is::<Usage>() || cause.is::<crate::addr::AddrError>() {
            return USAGE;
        }
        if cause.is::<Unmet>() {
            return UNMET;
        }
    }
    SYSTEM
}

/// True when the error means stdout's reader went away, which ends the program quietly.
pub fn is_quiet(err: &anyhow::Error) -> bool {
    err.chain().any(|c| c.is::<StdoutClosed>())
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

/// The one place that turns a failed send or receive on a socket talking to `target`
/// into what the user reads, and its exit code (3, or 2 for a refused broadcast):
/// `connection refused: nothing is listening on 127.0.0.1:9`.
pub fn send_error(e: io::Error, target: std::net::SocketAddr) -> anyhow::Error {
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => {
            anyhow::anyhow!("connection refused: nothing is listening on {target}")
        }
        Some(libc::EACCES) if target.is_ipv4() => broadcast_refused(target.ip()),
        Some(libc::EMSGSIZE) => anyhow::anyhow!(
            "failed to send to {target}: message too long for the path (the MTU, with --dont-fragment)"
        ),
        Some(libc::EHOSTUNREACH | libc::ENETUNREACH) => {
            anyhow::anyhow!("host unreachable: {}", target.ip())
        }
        _ => anyhow::Error::new(IoError(e)).context(format!("failed to send to {target}")),
    }
}

/// As [`send_error`], with the details of the socket `fd`'s error queue when it has a
/// report (IP_RECVERR, Linux): which ICMP error, and who sent it (SPEC §9).
pub fn net_error(
    fd: std::os::fd::RawFd,
    e: io::Error,
    target: std::net::SocketAddr,
    ttl: Option<u32>,
) -> anyhow::Error {
    match crate::sys::take_error_report(fd) {
        Ok(Some(report)) => anyhow::Error::new(crate::icmp::IcmpError {
            message: crate::icmp::message(&report, target, ttl),
            report,
        }),
        _ => send_error(e, target),
    }
}

/// Sending to a broadcast address without `--broadcast`: exit 2, with the fix.
pub fn broadcast_refused(ip: std::net::IpAddr) -> anyhow::Error {
    usage!("{ip} is a broadcast address: add --broadcast to send to it")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_anywhere_in_the_chain_pick_the_code() {
        let e = usage!("bad port").context("parsing target");
        assert_eq!(code_for(&e), USAGE);
        let e = anyhow::Error::new(Unmet("no reply".into())).context("x");
        assert_eq!(code_for(&e), UNMET);
        let e: anyhow::Error = io::Error::from(io::ErrorKind::ConnectionRefused).into();
        assert_eq!(code_for(&e), SYSTEM);
        let e = anyhow::Error::new(StdoutClosed).context("writing");
        assert_eq!(code_for(&e), SUCCESS);
        assert!(is_quiet(&e));
    }

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

    #[test]
    fn send_errors_say_what_happened_and_pick_the_code() {
        let t: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
        let e = send_error(io::Error::from_raw_os_error(libc::ECONNREFUSED), t);
        assert_eq!(
            format!("{e:#}"),
            "connection refused: nothing is listening on 127.0.0.1:9"
        );
        assert_eq!(code_for(&e), SYSTEM);
        let e = send_error(io::Error::from_raw_os_error(libc::EACCES), t);
        assert!(format!("{e:#}").contains("add --broadcast"));
        assert_eq!(code_for(&e), USAGE);
        let e = send_error(io::Error::from_raw_os_error(libc::EMSGSIZE), t);
        assert!(format!("{e:#}").contains("message too long"));
        let e = send_error(io::Error::from_raw_os_error(libc::ENETUNREACH), t);
        assert_eq!(format!("{e:#}"), "host unreachable: 127.0.0.1");
        let e = send_error(io::Error::from_raw_os_error(libc::EIO), t);
        assert_eq!(
            format!("{e:#}"),
            "failed to send to 127.0.0.1:9: input/output error"
        );
        assert_eq!(code_for(&e), SYSTEM);
    }

    #[test]
    fn signal_endings_map_to_128_plus_signal() {
        assert_eq!(Ending::Signal(2).code(), ExitCode::from(130));
        assert_eq!(Ending::Signal(15).code(), ExitCode::from(143));
    }
}
