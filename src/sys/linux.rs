//! Linux: `recvmmsg`/`sendmmsg` batches, `SO_MEMINFO` drop counts, `IP_MTU_DISCOVER`.

use std::io;
use std::mem;
use std::os::fd::RawFd;

use super::{empty_storage, sockaddr_to_std, RecvMeta};

/// Receive buffers for up to `slots` datagrams of up to `slot_size` bytes each, filled
/// by one `recvmmsg` call.
pub(crate) struct RecvBatch {
    buf: Vec<u8>,
    slot_size: usize,
    addrs: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
    meta: Vec<RecvMeta>,
}

impl RecvBatch {
    /// Room for `slots` datagrams (at least one) of `slot_size` bytes.
    pub(crate) fn new(slots: usize, slot_size: usize) -> Self {
        let slots = slots.max(1);
        RecvBatch {
            buf: vec![0; slots * slot_size],
            slot_size,
            addrs: vec![empty_storage(); slots],
            // SAFETY: iovec and mmsghdr are plain old data; zeroes are valid (null
            // pointers, zero lengths) and every field used is set before each call.
            iovs: vec![unsafe { mem::zeroed() }; slots],
            msgs: vec![unsafe { mem::zeroed() }; slots],
            meta: Vec::with_capacity(slots),
        }
    }

    /// Take up to `max` queued datagrams without blocking.
    ///
    /// `ErrorKind::WouldBlock` when none is queued. `MSG_TRUNC` makes the kernel report
    /// each datagram's real length even when its slot was smaller (udp(7)).
    pub(crate) fn recv(&mut self, fd: RawFd, max: usize) -> io::Result<usize> {
        let n = max.clamp(1, self.msgs.len());
        let base = self.buf.as_mut_ptr();
        for i in 0..n {
            // SAFETY: i < slots, so the slot lies inside buf.
            self.iovs[i].iov_base = unsafe { base.add(i * self.slot_size) }.cast();
            self.iovs[i].iov_len = self.slot_size;
            let hdr = &mut self.msgs[i].msg_hdr;
            hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            hdr.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdr.msg_iov = &mut self.iovs[i];
            hdr.msg_iovlen = 1;
            hdr.msg_control = std::ptr::null_mut();
            hdr.msg_controllen = 0;
            hdr.msg_flags = 0;
            self.msgs[i].msg_len = 0;
        }
        // SAFETY: msgs[..n] point at live buffers owned by self for the whole call.
        let got = unsafe {
            libc::recvmmsg(
                fd,
                self.msgs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                std::ptr::null_mut(),
            )
        };
        if got < 0 {
            return Err(io::Error::last_os_error());
        }
        let got = got as usize;
        self.meta.clear();
        for i in 0..got {
            let len = self.msgs[i].msg_len as usize;
            let peer = sockaddr_to_std(&self.addrs[i])
                .unwrap_or_else(|| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
            self.meta.push(RecvMeta {
                len,
                captured: len.min(self.slot_size),
                peer,
            });
        }
        Ok(got)
    }

    /// What the kernel said about datagram `i` of the last [`recv`](Self::recv).
    pub(crate) fn meta(&self, i: usize) -> RecvMeta {
        self.meta[i]
    }

    /// The captured bytes of datagram `i` of the last [`recv`](Self::recv).
    pub(crate) fn payload(&self, i: usize) -> &[u8] {
        let start = i * self.slot_size;
        &self.buf[start..start + self.meta[i].captured]
    }
}

/// Send `payloads` on a connected socket, one datagram each, in `sendmmsg` calls of up to
/// 1024 (UIO_MAXIOV). Returns how many were sent before an error, or the error when the
/// first one failed. A blocking socket blocks for room in its send buffer.
pub(crate) fn send_batch(fd: RawFd, payloads: &[&[u8]]) -> io::Result<usize> {
    const MAX: usize = 1024;
    let n = payloads.len().min(MAX);
    let mut iovs: Vec<libc::iovec> = payloads[..n]
        .iter()
        .map(|p| libc::iovec {
            iov_base: p.as_ptr() as *mut libc::c_void,
            iov_len: p.len(),
        })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = iovs
        .iter_mut()
        .map(|iov| {
            // SAFETY: plain old data; zeroes mean "no name, no control".
            let mut m: libc::mmsghdr = unsafe { mem::zeroed() };
            m.msg_hdr.msg_iov = iov;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    let mut sent = 0;
    while sent < n {
        // SAFETY: msgs[sent..n] point at iovecs and payloads alive for the call.
        let rc =
            unsafe { libc::sendmmsg(fd, msgs[sent..].as_mut_ptr(), (n - sent) as libc::c_uint, 0) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return if sent == 0 { Err(err) } else { Ok(sent) };
        }
        sent += rc as usize;
    }
    Ok(sent)
}

/// The socket's count of datagrams the kernel dropped (receive queue full, bad checksum),
/// read with `SO_MEMINFO` (index `SK_MEMINFO_DROPS`): exact at the time of the call,
/// unlike the `SO_RXQ_OVFL` cmsg, which lags at the end of a flood.
pub(crate) fn kernel_drops(fd: RawFd) -> Option<u64> {
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
pub(crate) fn set_dont_fragment(fd: RawFd, ipv6: bool) -> io::Result<()> {
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
