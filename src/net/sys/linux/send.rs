//! Linux's batched sends: `sendmmsg` of payloads (each to its address, from a chosen
//! source with a PKTINFO cmsg) and UDP GSO, with buffers kept between calls.

use std::io;
use std::mem;
use std::net::IpAddr;
use std::os::fd::RawFd;

use super::CONTROL_LEN;
use crate::net::sys::{std_to_sockaddr, Reply};

/// The buffers of a batched send, kept by the sender between calls: once grown to a
/// batch they are reused, so sending allocates nothing. Their pointers are set anew by
/// each call and mean nothing between calls.
#[derive(Default)]
pub struct SendScratch {
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
    names: Vec<(libc::sockaddr_storage, libc::socklen_t)>,
    controls: Vec<[u64; CONTROL_LEN / 8]>,
    /// Each reply's source address, and whether it goes to an IPv4 peer.
    sources: Vec<(Option<IpAddr>, bool)>,
}

/// Send `replies` from an unconnected socket in `sendmmsg` calls, each to its address and,
/// when `from` is set, from that source address (a PKTINFO cmsg: the reply leaves from
/// the address the request was sent to, even on a wildcard bind). At most 64 a call.
/// Returns how many were sent before an error, or the error when the first failed.
pub fn send_replies<'a>(
    fd: RawFd,
    ipv6_socket: bool,
    replies: impl IntoIterator<Item = Reply<'a>>,
    scratch: &mut SendScratch,
) -> io::Result<usize> {
    const MAX: usize = 64;
    let s = scratch;
    s.names.clear();
    s.iovs.clear();
    s.controls.clear();
    s.sources.clear();
    s.msgs.clear();
    for r in replies.into_iter().take(MAX) {
        s.names.push(std_to_sockaddr(r.to, ipv6_socket));
        s.iovs.push(libc::iovec {
            iov_base: r.payload.as_ptr() as *mut libc::c_void,
            iov_len: r.payload.len(),
        });
        s.controls.push([0; CONTROL_LEN / 8]);
        s.sources.push((r.from, r.to.is_ipv4()));
    }
    // The vectors above are complete: their elements stay where they are while the
    // headers below point at them, through pointers derived from one `as_mut_ptr` each.
    let (names, iovs, controls) = (
        s.names.as_mut_ptr(),
        s.iovs.as_mut_ptr(),
        s.controls.as_mut_ptr(),
    );
    for (i, &(source, to_ipv4)) in s.sources.iter().enumerate() {
        // SAFETY: plain old data; the pointers are set next, to buffers alive for the
        // call: i is below the length of names, iovs and controls, pushed together.
        let mut m: libc::mmsghdr = unsafe { mem::zeroed() };
        let hdr = &mut m.msg_hdr;
        unsafe {
            let name = names.add(i);
            hdr.msg_name = std::ptr::addr_of_mut!((*name).0).cast();
            hdr.msg_namelen = (*name).1;
            hdr.msg_iov = iovs.add(i);
        }
        hdr.msg_iovlen = 1;
        if let Some(from) = source {
            // SAFETY: as above; the control buffer has room for one pktinfo cmsg of
            // either family.
            hdr.msg_control = unsafe { controls.add(i) }.cast();
            hdr.msg_controllen = unsafe { write_pktinfo(hdr, from, to_ipv4) };
        }
        s.msgs.push(m);
    }
    // SAFETY: msgs point at names, iovecs, payloads and controls alive here.
    unsafe { sendmmsg_all(fd, &mut s.msgs) }
}

/// Write a source-address cmsg into `hdr`'s control buffer: `IP_PKTINFO` with
/// `ipi_spec_dst` for an IPv4 peer (also on a dual-stack IPv6 socket, where udpv6_sendmsg
/// hands mapped peers to the IPv4 path, which reads SOL_IP cmsgs), `IPV6_PKTINFO`
/// otherwise. Returns the control length to set.
///
/// # Safety
/// `hdr.msg_control` must point at at least `CONTROL_LEN` writable, aligned, zeroed bytes.
unsafe fn write_pktinfo(hdr: &mut libc::msghdr, from: IpAddr, to_ipv4: bool) -> usize {
    match (from, to_ipv4) {
        (IpAddr::V4(src), true) => {
            let size = mem::size_of::<libc::in_pktinfo>() as u32;
            hdr.msg_controllen = libc::CMSG_SPACE(size) as _;
            let cmsg = libc::CMSG_FIRSTHDR(hdr);
            (*cmsg).cmsg_level = libc::IPPROTO_IP;
            (*cmsg).cmsg_type = libc::IP_PKTINFO;
            (*cmsg).cmsg_len = libc::CMSG_LEN(size) as _;
            let mut info: libc::in_pktinfo = mem::zeroed();
            info.ipi_spec_dst.s_addr = u32::from(src).to_be();
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut libc::in_pktinfo, info);
            libc::CMSG_SPACE(size) as usize
        }
        (IpAddr::V6(src), false) => {
            let size = mem::size_of::<libc::in6_pktinfo>() as u32;
            hdr.msg_controllen = libc::CMSG_SPACE(size) as _;
            let cmsg = libc::CMSG_FIRSTHDR(hdr);
            (*cmsg).cmsg_level = libc::IPPROTO_IPV6;
            (*cmsg).cmsg_type = libc::IPV6_PKTINFO;
            (*cmsg).cmsg_len = libc::CMSG_LEN(size) as _;
            let mut info: libc::in6_pktinfo = mem::zeroed();
            info.ipi6_addr.s6_addr = src.octets();
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut libc::in6_pktinfo, info);
            libc::CMSG_SPACE(size) as usize
        }
        // A family mix cannot happen (the destination and the peer share a family);
        // without a cmsg the kernel picks the source.
        _ => 0,
    }
}

/// Send `buf` on a connected socket as datagrams of `segment` bytes each (the last may be
/// shorter) in one call, with UDP GSO (`UDP_SEGMENT` cmsg, Linux 4.18). At most 64
/// segments and 65,507 bytes (IPv4) per call.
///
/// Fails with `EINVAL`/`EIO`/`ENOPROTOOPT` where the kernel or the route cannot do GSO:
/// the caller falls back to [`send_batch`].
pub fn send_segments(fd: RawFd, buf: &[u8], segment: u16) -> io::Result<usize> {
    let mut iov = libc::iovec {
        iov_base: buf.as_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(mem::size_of::<u16>() as u32) } as usize;
    let mut control = [0u64; 4];
    debug_assert!(space <= mem::size_of_val(&control));
    // SAFETY: plain old data; every field used is set below.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: msg_control points at `space` zeroed, aligned bytes: room for one cmsg
    // carrying a u16, which is what is written.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_UDP;
        (*cmsg).cmsg_type = libc::UDP_SEGMENT;
        (*cmsg).cmsg_len = libc::CMSG_LEN(mem::size_of::<u16>() as u32) as _;
        std::ptr::copy_nonoverlapping(
            (&segment as *const u16).cast::<u8>(),
            libc::CMSG_DATA(cmsg),
            mem::size_of::<u16>(),
        );
    }
    // SAFETY: msg points at iov, buf and control, all alive for the call.
    let rc = unsafe { libc::sendmsg(fd, &msg, 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(buf.len().div_ceil(usize::from(segment).max(1)))
}

/// Send `payloads` on a connected socket, one datagram each, in `sendmmsg` calls of up to
/// 1024 (UIO_MAXIOV). Returns how many were sent before an error, or the error when the
/// first one failed. A blocking socket blocks for room in its send buffer.
pub fn send_batch<'a>(
    fd: RawFd,
    payloads: impl IntoIterator<Item = &'a [u8]>,
    scratch: &mut SendScratch,
) -> io::Result<usize> {
    const MAX: usize = 1024;
    let s = scratch;
    s.iovs.clear();
    s.iovs
        .extend(payloads.into_iter().take(MAX).map(|p| libc::iovec {
            iov_base: p.as_ptr() as *mut libc::c_void,
            iov_len: p.len(),
        }));
    s.msgs.clear();
    let iovs = s.iovs.as_mut_ptr();
    for i in 0..s.iovs.len() {
        // SAFETY: plain old data; zeroes mean "no name, no control". i is below the
        // length of iovs, whose pointer is taken once.
        let mut m: libc::mmsghdr = unsafe { mem::zeroed() };
        m.msg_hdr.msg_iov = unsafe { iovs.add(i) };
        m.msg_hdr.msg_iovlen = 1;
        s.msgs.push(m);
    }
    // SAFETY: msgs point at iovecs and payloads alive for the call.
    unsafe { sendmmsg_all(fd, &mut s.msgs) }
}

/// `sendmmsg` until every message went, an error stopped it, or a signal was retried.
/// Returns how many were sent, or the error when the first one failed.
///
/// # Safety
/// Every pointer in `msgs` must point at memory that stays valid for the call.
unsafe fn sendmmsg_all(fd: RawFd, msgs: &mut [libc::mmsghdr]) -> io::Result<usize> {
    let n = msgs.len();
    let mut sent = 0;
    while sent < n {
        let rc = libc::sendmmsg(fd, msgs[sent..].as_mut_ptr(), (n - sent) as libc::c_uint, 0);
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
