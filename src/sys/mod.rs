//! Platform I/O: batched receive and send, kernel drop counters, socket options socket2
//! lacks, and waiting on several descriptors.
//!
//! Linux gets `recvmmsg`/`sendmmsg` and `SO_MEMINFO` ([`linux`]); other Unix systems get
//! one-datagram-per-call equivalents with the same interface ([`portable`]), documented
//! in the README as the fallback.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;
use std::time::Duration;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub(crate) use linux::{
    enable_gro, kernel_drops, send_batch, send_segments, set_dont_fragment, RecvBatch,
};

#[cfg(not(target_os = "linux"))]
mod portable;
#[cfg(not(target_os = "linux"))]
pub(crate) use portable::{
    enable_gro, kernel_drops, send_batch, send_segments, set_dont_fragment, RecvBatch,
};

/// What the kernel said about one received datagram.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RecvMeta {
    /// The datagram's true length, even when it was cut to fit the buffer.
    pub(crate) len: usize,
    /// How many of its bytes are in the buffer.
    pub(crate) captured: usize,
    /// The sender, IPv4-mapped addresses already unwrapped.
    pub(crate) peer: SocketAddr,
}

/// The socket address in a `sockaddr_storage` the kernel filled, or `None` for a family
/// other than IPv4/IPv6.
pub(crate) fn sockaddr_to_std(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, and
            // sockaddr_storage is large and aligned enough for any sockaddr.
            let sin = unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            let addr = SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                u32::from_be(sin6.sin6_flowinfo),
                sin6.sin6_scope_id,
            );
            Some(crate::addr::normalize(SocketAddr::V6(addr)))
        }
        _ => None,
    }
}

/// A zeroed `sockaddr_storage`.
pub(crate) fn empty_storage() -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is plain old data; all zeroes is a valid value.
    unsafe { mem::zeroed() }
}

/// Wait until one of `fds` is readable or `timeout` passes (`None`: no limit).
///
/// Returns which descriptors are readable (all false on timeout). An interrupting signal
/// returns `ErrorKind::Interrupted` for the caller to look at its signal flags.
pub(crate) fn wait_readable<const N: usize>(
    fds: [RawFd; N],
    timeout: Option<Duration>,
) -> io::Result<[bool; N]> {
    let mut polls = fds.map(|fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    });
    poll(&mut polls, timeout)?;
    // POLLERR/POLLHUP count as readable: the read that follows reports what happened.
    Ok(polls.map(|p| p.revents != 0))
}

#[cfg(target_os = "linux")]
fn poll(polls: &mut [libc::pollfd], timeout: Option<Duration>) -> io::Result<()> {
    // ppoll takes nanoseconds, so pacing at high rates sleeps as long as it means to.
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as _,
    });
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const _);
    // SAFETY: polls is a valid slice of pollfd; ts_ptr is null or points to a timespec
    // that lives across the call; a null sigmask keeps the current mask.
    let rc = unsafe {
        libc::ppoll(
            polls.as_mut_ptr(),
            polls.len() as libc::nfds_t,
            ts_ptr,
            std::ptr::null(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn poll(polls: &mut [libc::pollfd], timeout: Option<Duration>) -> io::Result<()> {
    // Round up: waking a little late is harmless, waking early would spin.
    let ms = timeout.map_or(-1, |t| {
        let ms = t.as_nanos().div_ceil(1_000_000);
        ms.min(i32::MAX as u128) as i32
    });
    // SAFETY: polls is a valid slice of pollfd.
    let rc = unsafe { libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, ms) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    #[test]
    fn batches_keep_boundaries_true_lengths_and_peers() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.connect(rx.local_addr().unwrap()).unwrap();
        let sizes = [0usize, 1, 100, 3000];
        let payloads: Vec<Vec<u8>> = sizes.iter().map(|&n| vec![0xab; n]).collect();
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        assert_eq!(send_batch(tx.as_raw_fd(), &refs).unwrap(), 4);

        // Slots of 100 bytes: the 3000-byte datagram is cut but its true length is kept.
        let mut batch = RecvBatch::new(8, 100);
        let [ready] = wait_readable([rx.as_raw_fd()], Some(Duration::from_secs(5))).unwrap();
        assert!(ready);
        let mut got = Vec::new();
        while got.len() < 4 {
            match batch.recv(rx.as_raw_fd(), 8) {
                Ok(n) => got.extend((0..n).map(|i| (batch.meta(i), batch.payload(i).to_vec()))),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    wait_readable([rx.as_raw_fd()], Some(Duration::from_secs(5))).unwrap();
                }
                Err(e) => panic!("{e}"),
            }
        }
        let lens: Vec<usize> = got.iter().map(|(m, _)| m.len).collect();
        assert_eq!(lens, sizes);
        let captured: Vec<usize> = got
            .iter()
            .map(|(m, p)| {
                assert_eq!(m.captured, p.len());
                p.len()
            })
            .collect();
        if cfg!(target_os = "linux") {
            assert_eq!(captured, [0, 1, 100, 100]);
        }
        assert!(got.iter().all(|(m, _)| m.peer == tx.local_addr().unwrap()));
        // Nothing left: a would-block error, not a hang.
        assert_eq!(
            batch.recv(rx.as_raw_fd(), 8).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
    }

    #[test]
    fn wait_times_out_when_nothing_arrives() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let [ready] = wait_readable([rx.as_raw_fd()], Some(Duration::from_millis(10))).unwrap();
        assert!(!ready);
    }

    #[test]
    fn kernel_drops_start_at_zero() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        if cfg!(target_os = "linux") {
            assert_eq!(kernel_drops(rx.as_raw_fd()), Some(0));
        }
    }
}
