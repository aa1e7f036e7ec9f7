//! Platform I/O: batched receive and send, kernel drop counters, socket options socket2
//! lacks, and waiting on several descriptors.
//!
//! Linux gets `recvmmsg`/`sendmmsg` and `SO_MEMINFO` (`linux`); other Unix systems get
//! one-datagram-per-call equivalents with the same interface (`portable`), documented
//! in the README as the fallback.

#[cfg(test)]
pub(crate) mod counting_alloc;

use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;
use std::time::Duration;

mod fd;
mod poller;
pub use fd::{raise_open_files_limit, set_nonblocking};
pub use poller::{Event, Poller};

#[cfg(target_os = "linux")]
mod cmsg;
#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::{
    enable_gro, enable_pktinfo, enable_recverr, enable_timestamps, kernel_drops, probe_gso,
    send_batch, send_replies, send_segments, set_dont_fragment, take_error_report, RecvBatch,
    SendScratch,
};

#[cfg(not(target_os = "linux"))]
mod portable;
#[cfg(not(target_os = "linux"))]
pub use portable::{
    enable_gro, enable_pktinfo, enable_recverr, enable_timestamps, kernel_drops, probe_gso,
    send_batch, send_replies, send_segments, set_dont_fragment, take_error_report, RecvBatch,
    SendScratch,
};

/// One report of the socket's error queue (IP_RECVERR): `struct sock_extended_err`, the
/// node that sent it, and where the offending datagram was going.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorReport {
    pub errno: i32,
    /// 1 local, 2 ICMP, 3 ICMPv6 (`SO_EE_ORIGIN_*`).
    pub origin: u8,
    pub icmp_type: u8,
    pub icmp_code: u8,
    /// The path MTU for "fragmentation needed" / "packet too big".
    pub info: u32,
    /// Who reported it (`SO_EE_OFFENDER`), when known.
    pub offender: Option<IpAddr>,
    /// The offending datagram's destination.
    pub dest: Option<SocketAddr>,
}

impl ErrorReport {
    /// What is known of an error the kernel gave only as an errno (no error queue on this
    /// platform, or a report already taken): classified by the errno alone.
    pub fn from_errno(errno: i32) -> Self {
        ErrorReport {
            errno,
            origin: 0,
            icmp_type: 0,
            icmp_code: 0,
            info: 0,
            offender: None,
            dest: None,
        }
    }
}

/// What the kernel said about one received datagram.
#[derive(Clone, Copy, Debug)]
pub struct RecvMeta {
    /// The datagram's true length, even when it was cut to fit the buffer.
    pub len: usize,
    /// How many of its bytes are in the buffer.
    pub captured: usize,
    /// The sender, IPv4-mapped addresses already unwrapped.
    pub peer: SocketAddr,
    /// The address the datagram was sent to (IP_PKTINFO / IPV6_PKTINFO), when asked for.
    pub dst: Option<IpAddr>,
    /// When the kernel received it, in nanoseconds since the Unix epoch (SO_TIMESTAMPNS),
    /// when asked for: exact even for the datagrams of one batch.
    pub received_ns: Option<u64>,
}

/// Which control messages a [`RecvBatch`] asks the kernel for.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ancillary {
    /// UDP GRO segment sizes (the socket must have `UDP_GRO` on: [`enable_gro`]).
    pub gro: bool,
    /// Destination addresses (the socket must have PKTINFO on: [`enable_pktinfo`]).
    pub pktinfo: bool,
    /// Receive times (the socket must have SO_TIMESTAMPNS on: [`enable_timestamps`]).
    pub timestamps: bool,
}

/// One reply for [`send_replies`]: the payload, where to, and from which local address.
#[derive(Clone, Copy, Debug)]
pub struct Reply<'a> {
    pub payload: &'a [u8],
    pub to: SocketAddr,
    /// The source address to use (the request's destination), for wildcard binds.
    pub from: Option<IpAddr>,
}

/// Kill process group `pgid` with SIGKILL (a child started as its group's leader, and
/// everything it started). An already-gone group is not an error.
pub fn kill_group(pgid: u32) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return;
    };
    if pgid <= 1 {
        return; // never the whole session or init
    }
    // SAFETY: kill(2) with a negative pid names a process group; no memory is involved.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
}

/// The width of the terminal on `fd` in columns (TIOCGWINSZ), if it is one and says.
pub fn terminal_columns(fd: RawFd) -> Option<u16> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` through the pointer, which is valid and
    // exclusively borrowed for the call.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut size as *mut libc::winsize) };
    (rc == 0 && size.ws_col > 0).then_some(size.ws_col)
}

/// The index of the interface called `name` (if_nametoindex(3)), or `None` if there is none.
pub fn if_nametoindex(name: &str) -> Option<u32> {
    let c_name = std::ffi::CString::new(name).ok()?;
    // SAFETY: c_name is a valid NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    (index != 0).then_some(index)
}

/// The interface's name for an index (if_indextoname(3)), if one exists.
pub fn if_indextoname(index: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: buf has IF_NAMESIZE bytes, as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: on success buf holds a NUL-terminated name.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

/// `MCAST_JOIN_SOURCE_GROUP` (RFC 3678), the protocol-independent source-specific join,
/// which socket2 does not wrap.
pub fn join_source_group(fd: RawFd, group: IpAddr, source: IpAddr, index: u32) -> io::Result<()> {
    let (level, ipv6) = match group {
        IpAddr::V4(_) => (libc::IPPROTO_IP, false),
        IpAddr::V6(_) => (libc::IPPROTO_IPV6, true),
    };
    // SAFETY: group_source_req is plain old data; all-zero is a valid value, filled below.
    let mut req: libc::group_source_req = unsafe { mem::zeroed() };
    req.gsr_interface = index;
    req.gsr_group = std_to_sockaddr(SocketAddr::new(group, 0), ipv6).0;
    req.gsr_source = std_to_sockaddr(SocketAddr::new(source, 0), ipv6).0;
    // SAFETY: req is a live group_source_req of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            libc::MCAST_JOIN_SOURCE_GROUP,
            (&req as *const libc::group_source_req).cast(),
            mem::size_of::<libc::group_source_req>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The socket address in a `sockaddr_storage` the kernel filled, or `None` for a family
/// other than IPv4/IPv6.
pub fn sockaddr_to_std(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
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
            // An IPv4 peer of a dual-stack socket is shown as the IPv4 it is.
            Some(match ip.to_ipv4_mapped() {
                Some(v4) => SocketAddr::new(IpAddr::V4(v4), addr.port()),
                None => SocketAddr::V6(addr),
            })
        }
        _ => None,
    }
}

/// `addr` as a `sockaddr_storage` for a socket of the given family: an IPv4 peer of an
/// IPv6 socket becomes IPv4-mapped. Returns the storage and its length.
pub fn std_to_sockaddr(
    addr: SocketAddr,
    ipv6_socket: bool,
) -> (libc::sockaddr_storage, libc::socklen_t) {
    let addr = match addr {
        SocketAddr::V4(v4) if ipv6_socket => {
            SocketAddr::V6(SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0))
        }
        other => other,
    };
    let mut storage = empty_storage();
    let len = match addr {
        SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            let sin = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = v4.port().to_be();
            sin.sin_addr.s_addr = u32::from(*v4.ip()).to_be();
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = v6.port().to_be();
            sin6.sin6_flowinfo = v6.flowinfo().to_be();
            sin6.sin6_addr.s6_addr = v6.ip().octets();
            sin6.sin6_scope_id = v6.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// One address of one interface, from `getifaddrs`.
#[derive(Clone, Copy, Debug)]
pub struct IfAddr {
    pub index: u32,
    pub addr: IpAddr,
    /// The IPv4 netmask (None for IPv6).
    pub netmask: Option<Ipv4Addr>,
}

/// Every IPv4 and IPv6 address of this host's interfaces.
pub fn interface_addrs() -> io::Result<Vec<IfAddr>> {
    let mut out = Vec::new();
    let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills ifap with a list we walk read-only and free once; each
    // sockaddr is read as the type its family says.
    unsafe {
        if libc::getifaddrs(&mut ifap) != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut cur = ifap;
        while !cur.is_null() {
            let ifa = &*cur;
            cur = ifa.ifa_next;
            if ifa.ifa_addr.is_null() {
                continue;
            }
            let index = libc::if_nametoindex(ifa.ifa_name);
            match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    let netmask = (!ifa.ifa_netmask.is_null()).then(|| {
                        let m = &*(ifa.ifa_netmask as *const libc::sockaddr_in);
                        Ipv4Addr::from(u32::from_be(m.sin_addr.s_addr))
                    });
                    let addr = IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)));
                    out.push(IfAddr {
                        index,
                        addr,
                        netmask,
                    });
                }
                libc::AF_INET6 => {
                    let sin6 = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    let addr = IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr));
                    out.push(IfAddr {
                        index,
                        addr,
                        netmask: None,
                    });
                }
                _ => {}
            }
        }
        libc::freeifaddrs(ifap);
    }
    Ok(out)
}

/// The broadcast addresses of this host's interfaces: each IPv4 address with its host
/// bits set (so loopback's 127.255.255.255 counts, though `lo` has no IFF_BROADCAST),
/// plus 255.255.255.255.
pub fn broadcast_addrs() -> io::Result<Vec<Ipv4Addr>> {
    let mut out = vec![Ipv4Addr::BROADCAST];
    for ifa in interface_addrs()? {
        let (IpAddr::V4(a), Some(m)) = (ifa.addr, ifa.netmask) else {
            continue;
        };
        let (a, m) = (u32::from(a), u32::from(m));
        // /31 and /32 networks have no broadcast address (RFC 3021).
        if m.count_ones() < 31 {
            let b = Ipv4Addr::from(a | !m);
            if !out.contains(&b) {
                out.push(b);
            }
        }
    }
    Ok(out)
}

/// A zeroed `sockaddr_storage`.
pub fn empty_storage() -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is plain old data; all zeroes is a valid value.
    unsafe { mem::zeroed() }
}

/// Wait until one of `fds` (any number) is readable or `timeout` passes (`None`: no
/// limit); `ready[i]` tells whether `fds[i]` is (all false on timeout), and the answer
/// whether any is. An interrupting signal returns `ErrorKind::Interrupted` for the
/// caller to look at its signal flags. Up to 8 descriptors are polled from the stack.
pub fn wait_readable_any(
    fds: &[RawFd],
    ready: &mut [bool],
    timeout: Option<Duration>,
) -> io::Result<bool> {
    const INLINE: usize = 8;
    let unset = libc::pollfd {
        fd: -1,
        events: libc::POLLIN,
        revents: 0,
    };
    let mut inline = [unset; INLINE];
    let mut heap = Vec::new();
    let polls: &mut [libc::pollfd] = if fds.len() <= INLINE {
        &mut inline[..fds.len()]
    } else {
        heap.resize(fds.len(), unset);
        &mut heap
    };
    for (p, &fd) in polls.iter_mut().zip(fds) {
        p.fd = fd;
    }
    poll(polls, timeout)?;
    // POLLERR/POLLHUP count as readable: the read that follows reports what happened.
    let mut any = false;
    for (r, p) in ready.iter_mut().zip(polls.iter()) {
        *r = p.revents != 0;
        any |= *r;
    }
    Ok(any)
}

/// [`wait_readable_any`] for one descriptor.
pub fn wait_readable(fd: RawFd, timeout: Option<Duration>) -> io::Result<bool> {
    wait_readable_any(&[fd], &mut [false], timeout)
}

/// `poll(2)` over `polls` (any number), retried on EINTR by the caller.
pub fn poll_fds(polls: &mut [libc::pollfd], timeout: Option<Duration>) -> io::Result<()> {
    poll(polls, timeout)
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

    /// The next `n` datagrams on `rx` (non-blocking), each wait bounded; then anything
    /// more already queued, which a test would see as too many.
    fn drain(rx: &UdpSocket, n: usize) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        let mut buf = [0u8; 100];
        while got.len() < n {
            let ready = wait_readable(rx.as_raw_fd(), Some(Duration::from_secs(5)));
            assert!(ready.unwrap(), "{} of {n} datagrams came", got.len());
            while let Ok(len) = rx.recv(&mut buf) {
                got.push(buf[..len].to_vec());
            }
        }
        got
    }

    #[test]
    fn one_scratch_serves_every_send_and_keeps_nothing_of_the_last() {
        let (a, b) = (
            UdpSocket::bind("127.0.0.1:0").unwrap(),
            UdpSocket::bind("127.0.0.1:0").unwrap(),
        );
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut scratch = SendScratch::default();
        let to = |s: &UdpSocket, payload: &'static [u8]| Reply {
            payload,
            to: s.local_addr().unwrap(),
            from: None,
        };
        let three = [to(&a, b"a1"), to(&b, b"b1"), to(&a, b"a2")];
        assert_eq!(
            send_replies(tx.as_raw_fd(), false, three, &mut scratch).unwrap(),
            3
        );
        // The same scratch, fewer replies: only this call's go, to their own peers.
        assert_eq!(
            send_replies(tx.as_raw_fd(), false, [to(&b, b"b2")], &mut scratch).unwrap(),
            1
        );
        assert_eq!(drain(&a, 2), [b"a1".to_vec(), b"a2".to_vec()]);
        assert_eq!(drain(&b, 2), [b"b1".to_vec(), b"b2".to_vec()]);
        // And a connected send after replies: no name is left in its headers.
        tx.connect(a.local_addr().unwrap()).unwrap();
        let one: [&[u8]; 1] = [b"a3"];
        assert_eq!(send_batch(tx.as_raw_fd(), one, &mut scratch).unwrap(), 1);
        assert_eq!(drain(&a, 1), [b"a3".to_vec()]);
    }

    #[test]
    fn batches_keep_boundaries_true_lengths_and_peers() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.connect(rx.local_addr().unwrap()).unwrap();
        let sizes = [0usize, 1, 100, 3000];
        let payloads: Vec<Vec<u8>> = sizes.iter().map(|&n| vec![0xab; n]).collect();
        let mut scratch = SendScratch::default();
        let refs = payloads.iter().map(Vec::as_slice);
        assert_eq!(send_batch(tx.as_raw_fd(), refs, &mut scratch).unwrap(), 4);

        // Slots of 100 bytes: the 3000-byte datagram is cut but its true length is kept.
        let mut batch = RecvBatch::new(8, 100);
        let ready = wait_readable(rx.as_raw_fd(), Some(Duration::from_secs(5))).unwrap();
        assert!(ready);
        let mut got = Vec::new();
        while got.len() < 4 {
            match batch.recv(rx.as_raw_fd(), 8) {
                Ok(n) => got.extend((0..n).map(|i| (batch.meta(i), batch.payload(i).to_vec()))),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    wait_readable(rx.as_raw_fd(), Some(Duration::from_secs(5))).unwrap();
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
        let other = UdpSocket::bind("127.0.0.1:0").unwrap();
        let fds = [other.as_raw_fd(), rx.as_raw_fd()];
        let mut ready = [true; 2];
        assert!(!wait_readable_any(&fds, &mut ready, Some(Duration::from_millis(10))).unwrap());
        assert_eq!(ready, [false, false]);
        // The descriptor that is readable, and only that one.
        other.send_to(b"x", rx.local_addr().unwrap()).unwrap();
        assert!(wait_readable_any(&fds, &mut ready, Some(Duration::from_secs(5))).unwrap());
        assert_eq!(ready, [false, true]);
    }

    #[test]
    fn wait_takes_more_descriptors_than_it_keeps_on_the_stack() {
        // guards: the wait polled a fixed [fd; 8] and panicked on a ninth descriptor.
        let socks: Vec<UdpSocket> = (0..12)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let fds: Vec<RawFd> = socks.iter().map(|s| s.as_raw_fd()).collect();
        socks[0]
            .send_to(b"x", socks[10].local_addr().unwrap())
            .unwrap();
        let mut ready = vec![false; fds.len()];
        assert!(wait_readable_any(&fds, &mut ready, Some(Duration::from_secs(5))).unwrap());
        let which: Vec<usize> = (0..fds.len()).filter(|&i| ready[i]).collect();
        assert_eq!(which, vec![10]);
    }

    #[test]
    fn kernel_drops_start_at_zero() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        // Elsewhere there is no SO_MEMINFO, and the answer is "not known".
        let want = cfg!(target_os = "linux").then_some(0);
        assert_eq!(kernel_drops(rx.as_raw_fd()), want);
    }
}
