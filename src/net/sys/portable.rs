//! Other Unix systems (macOS, the BSDs): one `recvmsg`/`send` per datagram.
//!
//! There is no portable `MSG_TRUNC`-on-input, so each slot holds the largest UDP payload
//! and `--max-size` is applied after the read: the true length is still known.

use std::io;
use std::mem;
use std::os::fd::RawFd;

use super::{empty_storage, sockaddr_to_std, std_to_sockaddr, Ancillary, RecvMeta, Reply};

const LARGEST: usize = 65_535;

/// One receive buffer; the interface matches the Linux batch.
pub struct RecvBatch {
    buf: Vec<u8>,
    max_size: usize,
    meta: Option<RecvMeta>,
}

impl RecvBatch {
    /// A buffer for one datagram; `slot_size` is what is kept of each.
    pub fn new(_slots: usize, slot_size: usize) -> Self {
        RecvBatch {
            buf: vec![0; LARGEST],
            max_size: slot_size,
            meta: None,
        }
    }

    /// Take one queued datagram without blocking (`WouldBlock` when none).
    pub fn recv(&mut self, fd: RawFd, _max: usize) -> io::Result<usize> {
        let mut addr = empty_storage();
        let mut iov = libc::iovec {
            iov_base: self.buf.as_mut_ptr().cast(),
            iov_len: self.buf.len(),
        };
        // SAFETY: plain old data, every pointer field is set below.
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_name = (&mut addr as *mut libc::sockaddr_storage).cast();
        msg.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        // SAFETY: msg points at buffers alive for the call.
        let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let len = n as usize;
        let peer =
            sockaddr_to_std(&addr).unwrap_or_else(|| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
        self.meta = Some(RecvMeta {
            len,
            captured: len.min(self.max_size),
            peer,
            dst: None,
            received_ns: None,
        });
        Ok(1)
    }

    /// No GRO, PKTINFO or timestamps here: the same as [`RecvBatch::new`] (destinations unknown).
    pub fn with(slots: usize, keep: usize, _ancillary: Ancillary) -> Self {
        Self::new(slots, keep)
    }

    /// One message per call here.
    pub fn capacity(&self) -> usize {
        1
    }

    /// How many messages the last [`recv`](Self::recv) took.
    pub fn messages(&self) -> usize {
        usize::from(self.meta.is_some())
    }

    /// What the kernel said about the datagram.
    pub fn meta(&self, _i: usize) -> RecvMeta {
        self.meta.expect("recv returned a datagram")
    }

    /// The captured bytes.
    pub fn payload(&self, i: usize) -> &[u8] {
        &self.buf[..self.meta(i).captured]
    }
}

/// Send `payloads` on a connected socket, one `send` each.
pub fn send_batch<'a>(
    fd: RawFd,
    payloads: impl IntoIterator<Item = &'a [u8]>,
    _scratch: &mut SendScratch,
) -> io::Result<usize> {
    let mut sent = 0;
    for (i, p) in payloads.into_iter().enumerate() {
        // SAFETY: p is a live slice.
        let rc = unsafe { libc::send(fd, p.as_ptr().cast(), p.len(), 0) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            return if i == 0 { Err(err) } else { Ok(i) };
        }
        sent += 1;
    }
    Ok(sent)
}

/// Nothing to keep between sends here (one call per datagram); the interface matches
/// the Linux batch's.
#[derive(Default)]
pub struct SendScratch;

/// Not available here: stats say "n/a".
pub fn kernel_drops(_fd: RawFd) -> Option<u64> {
    None
}

/// Not implemented on this platform.
pub fn set_dont_fragment(_fd: RawFd, _ipv6: bool) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "--dont-fragment is supported on Linux only",
    ))
}

/// No UDP GRO here.
pub fn enable_gro(_fd: RawFd) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

/// No UDP GSO here: callers fall back to [`send_batch`].
pub fn send_segments(_fd: RawFd, _buf: &[u8], _segment: u16) -> io::Result<usize> {
    Err(io::ErrorKind::Unsupported.into())
}

/// No PKTINFO here: destinations stay unknown and replies leave from the bound address.
pub fn enable_pktinfo(_fd: RawFd, _ipv6: bool) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

/// No receive timestamps read here: callers take the time after the read.
pub fn enable_timestamps(_fd: RawFd) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

/// One `sendto` per reply; the source is whatever the socket is bound to.
pub fn send_replies<'a>(
    fd: RawFd,
    ipv6_socket: bool,
    replies: impl IntoIterator<Item = Reply<'a>>,
    _scratch: &mut SendScratch,
) -> io::Result<usize> {
    let mut sent = 0;
    for (i, r) in replies.into_iter().enumerate() {
        let (addr, len) = std_to_sockaddr(r.to, ipv6_socket);
        // SAFETY: the payload and address are live for the call.
        let rc = unsafe {
            libc::sendto(
                fd,
                r.payload.as_ptr().cast(),
                r.payload.len(),
                0,
                (&addr as *const libc::sockaddr_storage).cast(),
                len,
            )
        };
        if rc < 0 {
            let err = io::Error::last_os_error();
            return if i == 0 { Err(err) } else { Ok(i) };
        }
        sent += 1;
    }
    Ok(sent)
}

/// No error queue here: errors are the plain errno (the documented fallback).
pub fn enable_recverr(_fd: RawFd, _ipv6: bool) -> io::Result<()> {
    Ok(())
}

/// No error queue here.
pub fn take_error_report(_fd: RawFd) -> io::Result<Option<super::ErrorReport>> {
    Ok(None)
}

/// No UDP GSO here.
pub fn probe_gso(_fd: RawFd) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}
