//! What a failed send or receive on a socket means to the user, and which ICMP report
//! stands behind it (SPEC §9): the interpretation that sits next to `icmp`.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::RawFd;

use crate::base::error::{usage, IoError};
use crate::net::icmp::{self, IcmpError};

/// The one place that turns a failed send or receive on a socket talking to `target`
/// into what the user reads, and its exit code (3, or 2 for a refused broadcast):
/// `connection refused: nothing is listening on 127.0.0.1:9`.
pub fn send_error(e: io::Error, target: SocketAddr) -> anyhow::Error {
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
pub fn net_error(fd: RawFd, e: io::Error, target: SocketAddr, ttl: Option<u32>) -> anyhow::Error {
    match crate::net::sys::take_error_report(fd) {
        Ok(Some(report)) => anyhow::Error::new(IcmpError {
            message: icmp::message(&report, target, ttl),
            report,
        }),
        _ => send_error(e, target),
    }
}

/// Sending to a broadcast address without `--broadcast`: exit 2, with the fix.
pub fn broadcast_refused(ip: IpAddr) -> anyhow::Error {
    usage!("{ip} is a broadcast address: add --broadcast to send to it")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::exit::{code_for, SYSTEM, USAGE};

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
}
