//! Linux: `recvmmsg`/`sendmmsg` batches, `SO_MEMINFO` drop counts, `IP_MTU_DISCOVER`.

use std::io;
use std::mem;
use std::os::fd::RawFd;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::cmsg::{cmsgs, extended_error, read};
use super::{empty_storage, sockaddr_to_std, Ancillary, RecvMeta};

mod send;
pub use send::{send_batch, send_replies, send_segments, SendScratch};

/// Room for the control messages of one datagram: a `UDP_GRO` int (24 bytes with its
/// header), an `in_pktinfo` (28) or `in6_pktinfo` (36), a `timespec` (32), with slack.
pub(super) const CONTROL_LEN: usize = 128;

/// Receive buffers for up to `slots` messages, filled by one `recvmmsg` call.
///
/// With UDP GRO on, one message may hold many datagrams the kernel coalesced (a GSO
/// sender's batch); they are split back here by the segment size the `UDP_GRO` cmsg gives
/// (the last may be shorter), so callers only ever see single datagrams.
pub struct RecvBatch {
    buf: Vec<u8>,
    slot_size: usize,
    keep: usize,
    addrs: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
    control: Vec<[u64; CONTROL_LEN / 8]>,
    ancillary: Ancillary,
    /// Per datagram: where it starts in `buf`, and what the kernel said of it.
    spans: Vec<(usize, RecvMeta)>,
    /// Messages the last call returned (fewer than datagrams with GRO).
    messages: usize,
}

impl RecvBatch {
    /// Room for `slots` datagrams (at least one), keeping up to `keep` bytes of each.
    pub fn new(slots: usize, keep: usize) -> Self {
        Self::with(slots, keep, Ancillary::default())
    }

    /// As [`new`](Self::new), asking for the control messages in `ancillary`. With GRO
    /// every slot holds a whole coalesced buffer (64 KiB) and `keep` applies to each
    /// datagram split from it.
    pub fn with(slots: usize, keep: usize, ancillary: Ancillary) -> Self {
        let slot_size = if ancillary.gro { LARGEST } else { keep };
        let slots = slots.max(1);
        let wants_control = ancillary.gro || ancillary.pktinfo || ancillary.timestamps;
        RecvBatch {
            buf: vec![0; slots * slot_size],
            slot_size,
            keep,
            addrs: vec![empty_storage(); slots],
            // SAFETY: iovec and mmsghdr are plain old data; zeroes are valid (null
            // pointers, zero lengths) and every field used is set before each call.
            iovs: vec![unsafe { mem::zeroed() }; slots],
            msgs: vec![unsafe { mem::zeroed() }; slots],
            control: if wants_control {
                vec![[0; CONTROL_LEN / 8]; slots]
            } else {
                Vec::new()
            },
            ancillary,
            spans: Vec::with_capacity(slots),
            messages: 0,
        }
    }

    /// How many messages one call can take.
    pub fn capacity(&self) -> usize {
        self.msgs.len()
    }

    /// How many messages the last [`recv`](Self::recv) took.
    pub fn messages(&self) -> usize {
        self.messages
    }

    /// Take up to `max` queued messages without blocking; returns how many datagrams
    /// they held (more than `max` only with GRO).
    ///
    /// `ErrorKind::WouldBlock` when none is queued. `MSG_TRUNC` makes the kernel report
    /// each datagram's real length even when its slot was smaller (udp(7)).
    pub fn recv(&mut self, fd: RawFd, max: usize) -> io::Result<usize> {
        let n = max.clamp(1, self.msgs.len());
        let msgs = self.prepare(n);
        // SAFETY: msgs[..n] point at live buffers owned by self, which nothing else
        // touches until the call returns.
        let got = unsafe {
            libc::recvmmsg(
                fd,
                msgs,
                n as libc::c_uint,
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                std::ptr::null_mut(),
            )
        };
        if got < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(self.finish(got as usize))
    }

    /// Point the first `n` headers at their slot, address and control buffers, for the
    /// kernel to fill; returns the headers.
    fn prepare(&mut self, n: usize) -> *mut libc::mmsghdr {
        // Every pointer the headers hold is derived from one `as_mut_ptr` of its array,
        // taken once, and no reference into those arrays is made until the call is
        // done: a `&mut` to one element would invalidate the pointers already handed out
        // (Stacked Borrows).
        let buf = self.buf.as_mut_ptr();
        let iovs = self.iovs.as_mut_ptr();
        let addrs = self.addrs.as_mut_ptr();
        let control = self.control.as_mut_ptr();
        let msgs = self.msgs.as_mut_ptr();
        let with_control = !self.control.is_empty();
        for i in 0..n {
            // SAFETY: i < n <= slots, the length of iovs, addrs and msgs (and of control
            // when it is not empty), and slot i of buf lies inside it.
            unsafe {
                let iov = iovs.add(i);
                (*iov).iov_base = buf.add(i * self.slot_size).cast();
                (*iov).iov_len = self.slot_size;
                let m = msgs.add(i);
                let hdr = &mut (*m).msg_hdr;
                hdr.msg_name = addrs.add(i).cast();
                hdr.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                hdr.msg_iov = iov;
                hdr.msg_iovlen = 1;
                if with_control {
                    hdr.msg_control = control.add(i).cast();
                    hdr.msg_controllen = CONTROL_LEN as _;
                } else {
                    hdr.msg_control = std::ptr::null_mut();
                    hdr.msg_controllen = 0;
                }
                hdr.msg_flags = 0;
                (*m).msg_len = 0;
            }
        }
        msgs
    }

    /// After the kernel filled `got` messages: each one's datagrams (several from one
    /// GRO buffer), with what the kernel said about them. Returns how many.
    fn finish(&mut self, got: usize) -> usize {
        self.spans.clear();
        self.messages = got;
        for i in 0..got {
            let len = self.msgs[i].msg_len as usize;
            let peer = sockaddr_to_std(&self.addrs[i])
                .unwrap_or_else(|| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
            let start = i * self.slot_size;
            let control = self.control_of(i);
            let (dst, received_ns) = (control.pktinfo, control.received_ns);
            let meta = |len: usize, captured: usize| RecvMeta {
                len,
                captured,
                peer,
                dst,
                received_ns,
            };
            match control.gro_segment.filter(|&seg| seg > 0 && seg < len) {
                Some(seg) => {
                    tracing::trace!(len, segment = seg, "GRO buffer split");
                    for off in (0..len).step_by(seg) {
                        let len = seg.min(len - off);
                        self.spans
                            .push((start + off, meta(len, len.min(self.keep))));
                    }
                }
                None => {
                    let captured = len.min(self.slot_size).min(self.keep);
                    self.spans.push((start, meta(len, captured)));
                }
            }
        }
        self.spans.len()
    }

    /// The control messages of message `i`: its GRO segment size and its destination.
    fn control_of(&self, i: usize) -> Control {
        let mut out = Control::default();
        if self.control.is_empty() {
            return out;
        }
        #[allow(clippy::unnecessary_cast)] // socklen_t on musl, size_t on glibc
        let len = (self.msgs[i].msg_hdr.msg_controllen as usize).min(CONTROL_LEN);
        for c in cmsgs(&as_bytes(&self.control[i])[..len]) {
            match (c.level, c.kind) {
                (libc::SOL_UDP, libc::UDP_GRO) if self.ancillary.gro => {
                    out.gro_segment =
                        read::<libc::c_int>(c.data).and_then(|s| usize::try_from(s).ok());
                }
                (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
                    if let Some(info) = read::<libc::in_pktinfo>(c.data) {
                        let dst = Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr));
                        out.pktinfo = Some(IpAddr::V4(dst));
                    }
                }
                (libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS) if self.ancillary.timestamps => {
                    out.received_ns = read::<libc::timespec>(c.data).and_then(|t| {
                        let ns = u64::try_from(t.tv_sec).ok()?.checked_mul(1_000_000_000)?;
                        ns.checked_add(u64::try_from(t.tv_nsec).ok()?)
                    });
                }
                (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                    if let Some(info) = read::<libc::in6_pktinfo>(c.data) {
                        let dst = IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr));
                        out.pktinfo = Some(dst.to_canonical());
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// What the kernel said about datagram `i` of the last [`recv`](Self::recv).
    pub fn meta(&self, i: usize) -> RecvMeta {
        self.spans[i].1
    }

    /// The captured bytes of datagram `i` of the last [`recv`](Self::recv).
    pub fn payload(&self, i: usize) -> &[u8] {
        let (start, meta) = self.spans[i];
        &self.buf[start..start + meta.captured]
    }
}

/// What the control messages of one received message said.
#[derive(Default)]
struct Control {
    gro_segment: Option<usize>,
    pktinfo: Option<IpAddr>,
    received_ns: Option<u64>,
}

/// A control buffer's bytes (it is `u64`s so that the kernel finds it aligned).
fn as_bytes(control: &[u64]) -> &[u8] {
    // SAFETY: any u64 is 8 initialised bytes; the slice covers exactly the same memory
    // and lives as long as `control`.
    unsafe { std::slice::from_raw_parts(control.as_ptr().cast::<u8>(), mem::size_of_val(control)) }
}

/// Slots of this size hold any UDP datagram and any coalesced GRO buffer.
const LARGEST: usize = 65_535;

/// Turn on UDP GRO (Linux 5.0): the kernel may hand over a GSO sender's batch as one
/// buffer with its segment size in a cmsg, which [`RecvBatch::with`] splits.
pub fn enable_gro(fd: RawFd) -> io::Result<()> {
    setsockopt_int(fd, libc::SOL_UDP, libc::UDP_GRO, 1)
}

/// Ask for each datagram's receive time (`SO_TIMESTAMPNS`): the kernel's clock when it
/// arrived, not when a batch was read.
pub fn enable_timestamps(fd: RawFd) -> io::Result<()> {
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)
}

/// Ask for each datagram's destination address: `IP_PKTINFO` (IPv4), `IPV6_RECVPKTINFO`
/// (IPv6, and `IP_PKTINFO` too so IPv4-mapped traffic on a dual-stack socket has it).
pub fn enable_pktinfo(fd: RawFd, ipv6: bool) -> io::Result<()> {
    if ipv6 {
        setsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)?;
        // Fails on a v6-only socket, which never sees IPv4 traffic anyway.
        let _ = setsockopt_int(fd, libc::IPPROTO_IP, libc::IP_PKTINFO, 1);
        Ok(())
    } else {
        setsockopt_int(fd, libc::IPPROTO_IP, libc::IP_PKTINFO, 1)
    }
}

/// The socket's count of datagrams the kernel dropped (receive queue full, bad checksum),
/// read with `SO_MEMINFO` (index `SK_MEMINFO_DROPS`): exact at the time of the call,
/// unlike the `SO_RXQ_OVFL` cmsg, which lags at the end of a flood.
pub fn kernel_drops(fd: RawFd) -> Option<u64> {
    const SK_MEMINFO_VARS: usize = 9;
    const SK_MEMINFO_DROPS: usize = 8;
    let mut info = [0u32; SK_MEMINFO_VARS];
    let mut len = mem::size_of_val(&info) as libc::socklen_t;
    // SAFETY: info is a writable buffer of len bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_MEMINFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    (rc == 0 && len as usize > SK_MEMINFO_DROPS * 4).then(|| u64::from(info[SK_MEMINFO_DROPS]))
}

/// Set the DF bit (IPv4) / forbid local fragmentation (IPv6): `IP_PMTUDISC_DO` (ip(7)).
/// A datagram larger than the path MTU then fails with `EMSGSIZE` instead of fragmenting.
pub fn set_dont_fragment(fd: RawFd, ipv6: bool) -> io::Result<()> {
    let (level, name, value) = if ipv6 {
        (
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_DO,
        )
    } else {
        (
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_DO,
        )
    };
    setsockopt_int(fd, level, name, value)
}

/// Whether the kernel takes UDP GSO on this socket: set `UDP_SEGMENT` (a socket option
/// that only says the segment size of later sends; nothing is sent).
pub fn probe_gso(fd: RawFd) -> io::Result<()> {
    setsockopt_int(fd, libc::IPPROTO_UDP, libc::UDP_SEGMENT, 1400)
}

/// Queue ICMP errors on the socket (IP_RECVERR / IPV6_RECVERR, ip(7), ipv6(7)), so an
/// error says what happened and who said so, on unconnected sockets too. On an IPv6
/// socket both are set: IPv4-mapped peers report through IP_RECVERR.
pub fn enable_recverr(fd: RawFd, ipv6: bool) -> io::Result<()> {
    if ipv6 {
        setsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVERR, 1)?;
        // Dual-stack sockets: best effort.
        let _ = setsockopt_int(fd, libc::IPPROTO_IP, libc::IP_RECVERR, 1);
        Ok(())
    } else {
        setsockopt_int(fd, libc::IPPROTO_IP, libc::IP_RECVERR, 1)
    }
}

/// Take one report from the socket's error queue (`MSG_ERRQUEUE`), or `None` when it is
/// empty. Draining it matters: a queued error keeps poll reporting POLLERR.
pub fn take_error_report(fd: RawFd) -> io::Result<Option<super::ErrorReport>> {
    let mut data = [0u8; 512];
    let mut control = [0u64; 64];
    let mut name = empty_storage();
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: plain old data; the pointers are set to buffers alive for the call.
    let mut hdr: libc::msghdr = unsafe { mem::zeroed() };
    hdr.msg_name = (&mut name as *mut libc::sockaddr_storage).cast();
    hdr.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    hdr.msg_iov = &mut iov;
    hdr.msg_iovlen = 1;
    hdr.msg_control = control.as_mut_ptr().cast();
    hdr.msg_controllen = mem::size_of_val(&control) as _;
    // SAFETY: hdr points at buffers alive for the call.
    let rc = unsafe { libc::recvmsg(fd, &mut hdr, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::WouldBlock => Ok(None),
            _ => Err(e),
        };
    }
    let dest = sockaddr_to_std(&name);
    #[allow(clippy::unnecessary_cast)] // socklen_t on musl, size_t on glibc
    let len = (hdr.msg_controllen as usize).min(mem::size_of_val(&control));
    let report = cmsgs(&as_bytes(&control)[..len])
        .filter(|c| {
            (c.level, c.kind) == (libc::IPPROTO_IP, libc::IP_RECVERR)
                || (c.level, c.kind) == (libc::IPPROTO_IPV6, libc::IPV6_RECVERR)
        })
        .find_map(|c| extended_error(c.data))
        .map(|(ee, offender)| super::ErrorReport {
            errno: ee.ee_errno as i32,
            origin: ee.ee_origin,
            icmp_type: ee.ee_type,
            icmp_code: ee.ee_code,
            info: ee.ee_info,
            offender,
            dest,
        });
    if report.is_some() {
        return Ok(report);
    }
    Ok(None)
}

fn setsockopt_int(fd: RawFd, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: value is a live c_int of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const i32).cast(),
            mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_headers_stay_valid_together_while_the_kernel_fills_them() {
        // guards: the set-up took `&mut self.addrs[i]` / `&mut self.iovs[i]` per header,
        // each invalidating the pointers already handed out (Stacked Borrows). What the
        // kernel does is done here by hand, through every header, after all were set:
        // Miri (`cargo +nightly miri test --lib net::sys`) checks the pointers are valid.
        let ancillary = Ancillary {
            gro: false,
            pktinfo: true,
            timestamps: false,
        };
        let mut b = RecvBatch::with(4, 32, ancillary);
        let msgs = b.prepare(3);
        for i in 0..3u8 {
            // SAFETY: prepare set 3 headers pointing into b's buffers, untouched since.
            unsafe {
                let m = msgs.add(usize::from(i));
                let hdr = &mut (*m).msg_hdr;
                let iov = &*hdr.msg_iov;
                assert!(iov.iov_len >= 5);
                std::ptr::write_bytes(iov.iov_base.cast::<u8>(), b'a' + i, 5);
                let sin = hdr.msg_name.cast::<libc::sockaddr_in>();
                (*sin).sin_family = libc::AF_INET as _;
                (*sin).sin_port = (9000 + u16::from(i)).to_be();
                (*sin).sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, 1]).to_be();
                hdr.msg_controllen = 0;
                (*m).msg_len = 5;
            }
        }
        assert_eq!(b.finish(3), 3);
        for i in 0..3u8 {
            assert_eq!(b.payload(usize::from(i)), [b'a' + i; 5]);
            let meta = b.meta(usize::from(i));
            assert_eq!(meta.peer, ([127, 0, 0, 1], 9000 + u16::from(i)).into());
            assert_eq!((meta.len, meta.captured, meta.dst), (5, 5, None));
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "real sockets: Miri has none")]
    fn each_datagram_of_a_batch_has_its_own_arrival_time() {
        use std::net::UdpSocket;
        use std::os::fd::AsRawFd;
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        enable_timestamps(rx.as_raw_fd()).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap();
        // The kernel turns receive stamping on from a work queue (net_enable_timestamp):
        // until it has run, a datagram is stamped when read. "zero" goes first, and the
        // 3 ms that space the arrivals give the queue its time.
        let before = crate::wire::seq::now_ns();
        for (k, msg) in [&b"zero"[..], b"one", b"two"].into_iter().enumerate() {
            if k > 0 {
                std::thread::sleep(std::time::Duration::from_millis(3));
            }
            tx.send_to(msg, to).unwrap();
        }
        let ancillary = Ancillary {
            timestamps: true,
            ..Ancillary::default()
        };
        let mut b = RecvBatch::with(4, 32, ancillary);
        assert_eq!(b.recv(rx.as_raw_fd(), 4).unwrap(), 3, "all in one read");
        assert_eq!(b.payload(2), b"two");
        let (t1, t2) = (
            b.meta(1).received_ns.unwrap(),
            b.meta(2).received_ns.unwrap(),
        );
        assert!(
            t1 >= before && t2 <= crate::wire::seq::now_ns(),
            "{before} {t1} {t2}"
        );
        assert!(
            t2 >= t1 + 3_000_000,
            "3 ms apart, not the read's one time: {t1} {t2}"
        );
        // Not asked for: none.
        tx.send_to(b"three", rx.local_addr().unwrap()).unwrap();
        let mut plain = RecvBatch::new(4, 32);
        crate::net::sys::wait_readable(rx.as_raw_fd(), Some(std::time::Duration::from_secs(5)))
            .unwrap();
        assert_eq!(plain.recv(rx.as_raw_fd(), 4).unwrap(), 1);
        assert_eq!(plain.meta(0).received_ns, None);
    }
}
